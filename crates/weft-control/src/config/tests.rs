use super::*;
use weft_dataplane::RouteKind;

fn build(text: &str) -> Result<(Node, Applied), ConfigError> {
    NodeConfig::parse(text, "test.toml")?.build()
}

const GOOD: &str = r#"
[node]
name = "r1"

[api]
socket = "/tmp/weft-r1-test.sock"
tcp = "127.0.0.1:7070"
group = "0"

[[principal]]
name = "ops"
token_sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
rights = ["all"]

[[principal]]
name = "alice"
key = "2073e3741be0e4f824d67922f7c41c92eaa23e717d95dd7a4787937420e2496a"
uid = 1001
rights = ["read", "filter"]
prefixes = ["10.1.0.0/16"]
classes = ["counter"]

[[port]]
name = "eth0"
mac = "02:00:00:00:00:01"
addrs = ["10.0.0.1/24", "2001:db8::1/64"]

[[port]]
name = "eth1"
mac = "02:00:00:00:01:01"
mtu = 9000
addrs = ["10.0.1.1/24"]

[[route]]
prefix = "default"
via = "10.0.0.254"

[[route]]
prefix = "192.0.2.0/24"
port = "eth1"

[[neighbor]]
port = "eth0"
ip = "10.0.0.254"
mac = "02:00:00:00:00:fe"

[[instance]]
name = "count"
class = "counter"

[[instance]]
name = "slow"
class = "ratelimit"
config = "65536"

[[filter]]
proto = "udp"
src = "129.132.66.115"
dport = 6060
chain = ["slow", "count"]

[[filter]]
hook = "forward"
in_port = "eth1"
proto = "tcp"
dst = "10.0.0.0/8"
sport = "1000-2000"
plugin = "ratelimit"
autoinstance = true
config = "131072"
"#;

#[test]
fn a_good_file_applies() {
    let cfg = NodeConfig::parse(GOOD, "r1.toml").unwrap();
    assert_eq!(cfg.name(), "r1");
    let api = cfg.api_settings().unwrap();
    assert_eq!(api.tcp, Some("127.0.0.1:7070".parse().unwrap()));
    assert_eq!(api.group, Some(0));
    let alice = api.policy.by_uid(1001).unwrap();
    assert_eq!(alice.name, "alice");
    assert!(alice.has(crate::auth::Right::Filter) && !alice.has(crate::auth::Right::Route));
    assert_eq!(api.policy.by_token("password").unwrap().name, "ops");
    assert!(api.policy.by_token("Password").is_none());
    let (node, applied) = cfg.build().unwrap();

    let ports = node.ports();
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0].cfg.mac, [2, 0, 0, 0, 0, 1]);
    assert_eq!(ports[0].cfg.mtu, 1500);
    assert_eq!(ports[1].cfg.mtu, 9000);
    assert_eq!(node.addresses().len(), 3);

    let routes = node.routes();
    let default = routes.iter().find(|r| r.prefix.prefix_len() == 0).unwrap();
    assert_eq!(default.via, Some("10.0.0.254".parse().unwrap()));
    assert_eq!((default.port, default.kind), (0, RouteKind::Static));
    let r = routes.iter().find(|r| r.prefix.to_string() == "192.0.2.0/24").unwrap();
    assert_eq!(r.port, 1);
    assert!(routes
        .iter()
        .any(|r| r.kind == RouteKind::Connected && r.prefix.to_string() == "10.0.1.0/24"));
    assert_eq!(node.neighbors().len(), 1);

    assert_eq!(applied.instances["count"], InstanceId(1));
    assert_eq!(applied.instances["slow"], InstanceId(2));
    let insts = node.instances();
    assert_eq!(insts.len(), 3, "two named instances and one autoinstance");
    assert_eq!(insts[1].config, "65536");

    let filters = node.filters();
    assert_eq!(filters.len(), 2);
    let f = &filters[0];
    assert_eq!(f.hook, Hook::Prerouting);
    assert_eq!(f.m.proto, Some(17));
    assert_eq!(f.m.src, Some("129.132.66.115/32".parse().unwrap()));
    assert_eq!(f.m.dport, Some((6060, 6060)));
    let chain: Vec<InstanceId> = f.chain.iter().map(|c| c.0).collect();
    assert_eq!(chain, vec![InstanceId(2), InstanceId(1)]);
    let g = &filters[1];
    assert_eq!(g.hook, Hook::Forward);
    assert_eq!(g.m.in_port, Some(1));
    assert_eq!(g.m.sport, Some((1000, 2000)));
    assert_eq!(g.chain, vec![(InstanceId(3), "ratelimit".to_string())]);
    assert_eq!(applied.filters[1].1, Some(InstanceId(3)));
    assert_eq!(node.instances()[2].config, "131072");
}

/// docs/config.md's full example is examples/r1.toml, from `[node]` on.
#[test]
fn the_documented_example_is_the_shipped_one() {
    let file = include_str!("../../../../examples/r1.toml");
    let doc = include_str!("../../../../docs/config.md");
    let heading = "This is `examples/r1.toml`:\n\n```toml\n";
    let start = doc.find(heading).expect("the example's heading") + heading.len();
    let body = &doc[start..start + doc[start..].find("```").unwrap()];
    assert_eq!(body, &file[file.find("[node]").unwrap()..]);
}

#[test]
fn the_shipped_example_applies() {
    let text = include_str!("../../../../examples/r1.toml");
    let (node, _) = build(text).unwrap();
    assert!(!node.filters().is_empty());
}

/// Asserts the error names `test.toml:LINE:` and mentions `what`.
#[track_caller]
fn fails_at(text: &str, line: usize, what: &str) {
    let e = match build(text) {
        Ok(_) => panic!("expected an error at line {line}"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert_eq!(e.line(), Some(line), "{msg}");
    assert!(msg.starts_with(&format!("test.toml:{line}:")), "{msg}");
    assert!(msg.contains(what), "{msg} does not mention {what:?}");
}

const HEAD: &str =
    "[node]\nname = \"r1\"\n[[port]]\nname = \"eth0\"\nmac = \"02:00:00:00:00:01\"\naddrs = [\"10.0.0.1/24\"]\n";

#[test]
fn unknown_key() {
    fails_at(
        &format!("{HEAD}[[route]]\nprefix = \"10.9.0.0/16\"\ngateway = \"10.0.0.9\"\n"),
        9,
        "gateway",
    );
    fails_at("[node]\nname = \"r1\"\n[nod]\n", 3, "nod");
}

#[test]
fn api_and_principal_errors_point_at_their_value() {
    // TCP without a principal that can authenticate over the network.
    fails_at(
        "[node]\nname = \"r1\"\n[api]\ntcp = \"0.0.0.0:7070\"\n",
        4,
        "needs authentication",
    );
    let p = "[node]\nname = \"r1\"\n[[principal]]\nname = \"a\"\n";
    fails_at(
        &format!("{p}uid = 7\nrights = [\"read\", \"write\"]\n"),
        6,
        "unknown right \"write\"",
    );
    fails_at(&format!("{p}rights = [\"read\"]\n"), 4, "no credential");
    fails_at(&format!("{p}token_sha256 = \"abc\"\nrights = []\n"), 5, "64 hex digits");
    fails_at(&format!("{p}key = \"00\"\nrights = []\n"), 5, "public key");
    fails_at(
        &format!("{p}uid = 7\nrights = []\n[[principal]]\nname = \"b\"\nuid = 7\nrights = []\n"),
        3,
        "share a credential",
    );
    fails_at(
        "[node]\nname = \"r1\"\n[api]\ngroup = \"no-such-group-weft\"\n",
        4,
        "unknown group",
    );
}

#[test]
fn bad_mac() {
    fails_at(
        "[node]\nname = \"r1\"\n\n[[port]]\nname = \"eth0\"\nmac = \"02:00:00:00:00:0g\"\n",
        6,
        "MAC",
    );
}

#[test]
fn unknown_class() {
    fails_at(
        &format!("{HEAD}[[instance]]\nname = \"x\"\nclass = \"nosuch\"\n"),
        9,
        "nosuch",
    );
    fails_at(
        &format!("{HEAD}[[filter]]\nproto = \"udp\"\nplugin = \"nosuch\"\nautoinstance = true\n"),
        9,
        "nosuch",
    );
}

#[test]
fn undefined_instance_label() {
    let text = format!(
        "{HEAD}[[instance]]\nname = \"c\"\nclass = \"counter\"\n\n[[filter]]\nproto = \"udp\"\nchain = [\"c\",\n  \"nope\"]\n"
    );
    fails_at(&text, 14, "\"nope\" is not defined");
}

#[test]
fn bad_port_range() {
    fails_at(
        &format!("{HEAD}[[filter]]\nproto = \"udp\"\ndport = \"2000-1000\"\n"),
        9,
        "port range",
    );
    fails_at(&format!("{HEAD}[[filter]]\nsport = \"99999\"\n"), 8, "port range");
}

#[test]
fn other_semantic_errors_point_at_their_line() {
    fails_at(
        &format!("{HEAD}[[route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.7.0.9\"\n"),
        9,
        "not on a connected",
    );
    fails_at(
        &format!("{HEAD}[[route]]\nprefix = \"10.9.0.0/33\"\nvia = \"10.0.0.9\"\n"),
        8,
        "bad prefix",
    );
    // One route per prefix, as `weft route add` (and `ip route add`) insist.
    fails_at(
        &format!("{HEAD}[[route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.0.0.9\"\n[[route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.0.0.8\"\n"),
        10,
        "a route for 10.9.0.0/16 exists",
    );
    fails_at(
        &format!("{HEAD}[[route]]\nprefix = \"10.0.0.0/24\"\nvia = \"10.0.0.9\"\n"),
        7,
        "a route for 10.0.0.0/24 exists",
    );
    fails_at(&format!("{HEAD}[[filter]]\nin_port = \"eth9\"\n"), 8, "eth9");
    fails_at(&format!("{HEAD}[[filter]]\nhook = \"sideways\"\n"), 8, "unknown hook");
    fails_at(&format!("{HEAD}[[filter]]\nproto = \"udpx\"\n"), 8, "bad protocol");
    fails_at(&format!("{HEAD}[[filter]]\nplugin = \"counter\"\n"), 8, "autoinstance");
    fails_at(
        &format!(
            "{HEAD}[[instance]]\nname = \"a\"\nclass = \"counter\"\n[[instance]]\nname = \"a\"\nclass = \"counter\"\n"
        ),
        11,
        "twice",
    );
    fails_at(
        "[node]\nname = \"r1\"\nclasses = [\"counter\", \"nosuch\"]\n",
        3,
        "nosuch",
    );
    fails_at("[node]\nname = \"r1\"\n[[port]]\nname = \"eth0\"\n", 3, "mac");
    fails_at("[node]\nname = \"r1\"\n[[port]\n", 3, "");
}

/// `[node] icmp_rate` / `icmp_burst` set the node's one ICMP error limiter;
/// absent, Linux's defaults; too large, an error at the value.
#[test]
fn icmp_rate_and_burst() {
    let (n, _) = build(HEAD).unwrap();
    assert_eq!(n.icmp_rate(), (1000, 50));
    let text = HEAD.replace("name = \"r1\"\n", "name = \"r1\"\nicmp_rate = 10\nicmp_burst = 3\n");
    let (n, _) = build(&text).unwrap();
    assert_eq!(n.icmp_rate(), (10, 3));
    let text = HEAD.replace("name = \"r1\"\n", "name = \"r1\"\nicmp_rate = 5\n");
    assert_eq!(build(&text).unwrap().0.icmp_rate(), (5, 50));
    fails_at(
        &HEAD.replace("name = \"r1\"\n", "name = \"r1\"\nicmp_burst = 2000000\n"),
        3,
        "at most",
    );
}

#[test]
fn ports_need_their_protocol() {
    // As iptables refuses `--dport` without `-p`.
    fails_at(
        &format!("{HEAD}[[filter]]\ndport = 6060\nplugin = \"counter\"\nautoinstance = true\n"),
        7,
        "need the protocol named",
    );
    fails_at(
        &format!("{HEAD}[[filter]]\nproto = \"icmp\"\nsport = \"1-9\"\n"),
        7,
        "tcp and udp only, not icmp",
    );
    build(&format!("{HEAD}[[filter]]\nproto = \"tcp\"\ndport = 6060\n")).unwrap();
}
