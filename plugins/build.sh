#!/usr/bin/env bash
# Build every example and test plugin to target/plugins/*.wasm (in the main
# workspace's target directory). Installs what is missing: the Rust
# wasm32-unknown-unknown target, and clang + lld for the C plugin.
# Server modules (WASI HTTP proxy components: ActiveCDN, the test module)
# build for wasm32-wasip2, installed here when missing.
# Idempotent: returns at once when every output is newer than every source.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
root="$(dirname "$here")"
out="${WEFT_PLUGIN_DIR:-$root/target/plugins}"
rust_plugins=(counter head netmonitor layerdrop rewrite noop spin grow panic badlen badpkt echo keepalive sipoc mediarelay)
outputs=()
for p in "${rust_plugins[@]}"; do outputs+=("$out/$p.wasm"); done
server_modules=(activecdn srvtest)
outputs+=("$out/counter_v2.wasm" "$out/c-counter.wasm")
for p in "${server_modules[@]}"; do outputs+=("$out/$p.wasm"); done

up_to_date() {
    local newest_src oldest_out f
    for f in "${outputs[@]}"; do [[ -f "$f" ]] || return 1; done
    newest_src=$(find "$here" "$root/crates/weft-plugin-sdk" "$root/crates/weft-sip" \( -name target -prune \) -o -type f \
        \( -name '*.rs' -o -name '*.toml' -o -name '*.c' -o -name build.sh \) -printf '%T@\n' | sort -n | tail -1)
    oldest_out=$(stat -c '%Y' "${outputs[@]}" | sort -n | head -1)
    [[ "${newest_src%.*}" -lt "$oldest_out" ]]
}
if up_to_date; then exit 0; fi

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
find_wasm_ld() { command -v wasm-ld || command -v wasm-ld-14 || ls /usr/lib/llvm-*/bin/wasm-ld 2>/dev/null | head -1; }
if ! command -v clang >/dev/null || [[ -z "$(find_wasm_ld)" ]]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang lld >/dev/null
fi

mkdir -p "$out"
cd "$here"
# Explicit target directories: a CARGO_TARGET_DIR in the environment must not
# send the artifacts elsewhere than where they are copied from, and counter v2
# (same crate, another feature set) gets its own so the two never share an
# output file.
cargo build -q --release -p weft-plugin-counter --features v2 --target-dir "$here/target/v2"
cp target/v2/wasm32-unknown-unknown/release/weft_plugin_counter.wasm "$out/counter_v2.wasm"
args=()
for p in "${rust_plugins[@]}"; do args+=(-p "weft-plugin-$p"); done
cargo build -q --release "${args[@]}" --target-dir "$here/target"
for p in "${rust_plugins[@]}"; do
    cp "target/wasm32-unknown-unknown/release/weft_plugin_${p}.wasm" "$out/$p.wasm"
done
args=()
for p in "${server_modules[@]}"; do args+=(-p "weft-server-$p"); done
cargo build -q --release "${args[@]}" --target wasm32-wasip2 --target-dir "$here/target"
for p in "${server_modules[@]}"; do
    cp "target/wasm32-wasip2/release/weft_server_${p}.wasm" "$out/$p.wasm"
done

# clang finds wasm-ld on PATH; Debian's lld package names it wasm-ld-NN.
ld_dir="$(mktemp -d)"
trap 'rm -rf "$ld_dir"' EXIT
ln -s "$(find_wasm_ld)" "$ld_dir/wasm-ld"
PATH="$ld_dir:$PATH" clang --target=wasm32 -nostdlib -Wl,--no-entry -Wl,--export-dynamic -O2 \
    -o "$out/c-counter.wasm" c-counter/counter.c
touch "${outputs[@]}"
