use super::*;

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(text, "test.toml")
}

fn build(text: &str) -> Result<(Node, Applied), ConfigError> {
    parse(text)?.build()
}

#[test]
fn probe() {
    let e = build("[node]\nname = \"r1\"\nbogus = 1\n").unwrap_err();
    println!("{e}");
    let e = build("[node]\nname = \"r1\"\n[[port]]\nname = \"eth0\"\nmac = \"zz\"\n").unwrap_err();
    println!("{e}");
    let e = build("[node]\nname = \"r1\"\n[[port]]\nname = \"eth0\"\nmac = \"02:00:00:00:00:01\"\n[[route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.0.0.9\"\n").unwrap_err();
    println!("{e}");
}
