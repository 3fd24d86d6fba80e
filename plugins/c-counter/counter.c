/*
 * counter in C: proof that Weft's plugin ABI v1 is language-neutral.
 *
 * Counts packets and bytes; control "reset" zeroes them; report and state are
 * {"packets":N,"bytes":N} (the native counter's format). Built by
 * plugins/build.sh:
 *   clang --target=wasm32 -nostdlib -Wl,--no-entry -Wl,--export-dynamic -O2 \
 *         -o target/plugins/c-counter.wasm plugins/c-counter/counter.c
 * No libc: everything below is freestanding C.
 */

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;

#define IMPORT(n) __attribute__((import_module("weft"), import_name(#n)))
#define EXPORT(n) __attribute__((export_name(#n)))

/* ABI v1 constants (crates/weft-plugin-sdk/src/abi.rs). */
#define ABI_VERSION 1
#define DESC_SIZE 64
#define ARENA_LEN (64 * DESC_SIZE + 128 * 1024)
#define DESC_LEN 4

IMPORT(reply) void weft_reply(const void *ptr, int len);

static u8 arena[ARENA_LEN] __attribute__((aligned(16)));
static u64 packets, bytes;

EXPORT(weft_abi_version) int abi_version(void) { return ABI_VERSION; }

/* The host's arena; anything larger than it is refused. */
EXPORT(weft_alloc) int alloc(int len) { return len >= 0 && len <= ARENA_LEN ? (int)(long)arena : 0; }

static int is_blank(const u8 *p, int n) {
    for (int i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n') return 0;
    return 1;
}

static void say(const char *s) {
    int n = 0;
    while (s[n]) n++;
    weft_reply(s, n);
}

EXPORT(weft_init) int init(const u8 *cfg, int len) {
    if (!is_blank(cfg, len)) {
        say("c-counter takes no configuration");
        return 1;
    }
    packets = bytes = 0;
    return 0;
}

static u32 rd32(const u8 *p) { return p[0] | (p[1] << 8) | (p[2] << 16) | ((u32)p[3] << 24); }

/* Once per batch: n descriptors at d; verdicts stay 0 (continue). */
EXPORT(weft_process) int process(const u8 *d, int n) {
    for (int i = 0; i < n; i++) {
        packets += 1;
        bytes += rd32(d + i * DESC_SIZE + DESC_LEN);
    }
    return 0;
}

static void put_u64(u64 v) {
    char buf[20];
    int i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    weft_reply(buf + i, (int)sizeof buf - i);
}

static void put_counts(void) {
    say("{\"packets\":");
    put_u64(packets);
    say(",\"bytes\":");
    put_u64(bytes);
    say("}");
}

EXPORT(weft_control) int control(const u8 *req, int len) {
    if (len == 5 && req[0] == 'r' && req[1] == 'e' && req[2] == 's' && req[3] == 'e' && req[4] == 't') {
        packets = bytes = 0;
        say("ok");
        return 0;
    }
    say("c-counter: the only request is `reset`");
    return 1;
}

EXPORT(weft_report) int report(void) {
    put_counts();
    return 0;
}

EXPORT(weft_export_state) int export_state(void) {
    put_counts();
    return 0;
}

/* The value of "key": in flat JSON, or -1. */
static long long json_num(const u8 *s, int len, const char *key) {
    int k = 0;
    while (key[k]) k++;
    for (int i = 0; i + k + 2 < len; i++) {
        if (s[i] != '"') continue;
        int j = 0;
        while (j < k && s[i + 1 + j] == (u8)key[j]) j++;
        if (j < k || s[i + 1 + k] != '"') continue;
        int p = i + 2 + k;
        while (p < len && (s[p] == ':' || s[p] == ' ')) p++;
        if (p >= len || s[p] < '0' || s[p] > '9') return -1;
        long long v = 0;
        while (p < len && s[p] >= '0' && s[p] <= '9') v = v * 10 + (s[p++] - '0');
        return v;
    }
    return -1;
}

EXPORT(weft_import_state) int import_state(const u8 *s, int len) {
    long long p = json_num(s, len, "packets"), b = json_num(s, len, "bytes");
    if (p < 0 || b < 0) {
        say("c-counter: state needs \"packets\" and \"bytes\"");
        return 1;
    }
    packets = (u64)p;
    bytes = (u64)b;
    return 0;
}
