//! The node behind the agent ([`super::env`]) call by call: the policy's
//! refusals, the install's checks, what a finished fetch installs and who
//! owns it, and removal.

use super::env::{EnvState, InstallStats, NodeEnv};
use super::fetch::{Fetched, FetchedModule};
use super::*;
use crate::auth::{Credential, Limits, Policy, Principal, Right};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_dataplane::element::ClassKind;
use weft_dataplane::{Node, Owned, PortConfig};
use weft_signal::{
    Code, Context, Env, Filter, Install, Kind, Module, ModuleKind, Reason, Request, ServerPort, SessionId,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node() -> Node {
    let mut n = Node::new("n");
    for c in weft_elements::classes() {
        n.upsert_class(c);
    }
    for (i, a) in ["10.1.0.1/24", "10.9.0.1/24"].iter().enumerate() {
        n.add_port(PortConfig {
            name: format!("p{i}"),
            mac: [2, 0, 0, 0, 0, i as u8 + 1],
            mtu: 1500,
            addrs: vec![a.parse().unwrap()],
        })
        .unwrap();
    }
    // The provider's network is behind p1.
    n.add_route("10.2.0.0/16".parse().unwrap(), Some(ip("10.9.0.2")), None)
        .unwrap();
    n
}

fn key(seed: u8) -> weft_repo::SecretKey {
    weft_repo::SecretKey::from_seed([seed; 32])
}

fn provider() -> Principal {
    Principal {
        name: "provider".into(),
        rights: BTreeSet::from([Right::Signal]),
        prefixes: Some(vec!["10.2.0.0/16".parse().unwrap()]),
        classes: Some(vec!["netmon".into()]),
        signers: Vec::new(),
        server_ports: vec!["tcp:8080".parse().unwrap()],
        limits: Limits {
            instances: Some(1),
            memory_mib: None,
            lifetime_s: Some(7200),
        },
        reverse_path: false,
    }
}

fn policy(p: Vec<(Principal, u8)>) -> Arc<Policy> {
    Arc::new(
        Policy::new(
            p.into_iter()
                .map(|(p, k)| (p, vec![Credential::Key(key(k).public())]))
                .collect(),
        )
        .unwrap(),
    )
}

/// A fetcher that records what was asked and hands out what the test
/// queues.
#[derive(Clone, Default)]
struct Fake {
    asked: Arc<Mutex<Vec<FetchSpec>>>,
    done: Arc<Mutex<VecDeque<Fetched>>>,
}

impl ModuleFetcher for Fake {
    fn fetch(&mut self, spec: FetchSpec) {
        self.asked.lock().unwrap().push(spec);
    }
    fn poll(&mut self) -> Option<Fetched> {
        self.done.lock().unwrap().pop_front()
    }
}

fn state(policy: Arc<Policy>, fetcher: Option<Fake>) -> EnvState {
    EnvState {
        policy,
        accounts: Box::new(NodeAccounts {
            memory_per_instance_mib: 16,
        }),
        fetcher: fetcher.map(|f| Box::new(f) as Box<dyn ModuleFetcher>),
        servers: None,
        repos: vec!["http://10.9.9.9:7080".into()],
        slots: HashMap::new(),
        stats: InstallStats::default(),
        max_sessions: 8,
    }
}

fn setup(k: u8) -> Request {
    let mut r = Request::new(Kind::Setup, SessionId([1; 16]), ip("10.1.0.10"));
    r.key = key(k).public().to_bytes();
    r.module = Some(Module {
        kind: ModuleKind::Packet,
        name: "netmon".into(),
        version: "1.0".into(),
    });
    r.code = Some(Code {
        url: "http://10.9.9.9:7080".into(),
        sha256: [0xaa; 32],
    });
    r.filter = Some(Filter {
        proto: Some(17),
        dports: (5060, 5060),
        dst: Some("10.2.0.0/16".parse().unwrap()),
    });
    r.lifetime_s = Some(600);
    r
}

fn ctx(origin: &str) -> Context {
    Context {
        origin: ip(origin),
        upstream: None,
        now_unix: 0,
    }
}

/// A plugin-like class named `name` (the counter's code, marked as wasm).
fn class(name: &str) -> weft_dataplane::ElementClass {
    let mut c = weft_elements::classes()
        .into_iter()
        .find(|c| c.name == "counter")
        .unwrap();
    c.name = name.into();
    c.kind = ClassKind::Wasm { hash: "aa".repeat(32) };
    c
}

fn fetched(name: &str, version: &str) -> FetchedModule {
    FetchedModule {
        class: class(name),
        version: version.into(),
        signer: "0123456789abcdef".into(),
        fetch: Duration::from_millis(3),
        verify: Duration::from_millis(1),
        compile: Duration::from_millis(20),
    }
}

fn refused(r: Result<weft_signal::Grant, weft_signal::Refusal>) -> Reason {
    r.expect_err("refused").reason
}

#[test]
fn the_policy_refuses_with_the_reason() {
    let mut n = node();
    let mut read_only = provider();
    read_only.name = "reader".into();
    read_only.rights = BTreeSet::from([Right::Read]);
    let mut st = state(policy(vec![(provider(), 1), (read_only, 2)]), Some(Fake::default()));
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
    };
    let c = ctx("10.2.0.10");
    assert_eq!(env.authorize(&setup(1), &c).unwrap().principal, "provider");
    // Not a principal; a principal without `signal`.
    assert_eq!(refused(env.authorize(&setup(9), &c)), Reason::UnknownKey);
    assert_eq!(refused(env.authorize(&setup(2), &c)), Reason::NotAllowed);
    // ... which may still PROBE with `read`.
    let mut p = Request::new(Kind::Probe, SessionId([2; 16]), ip("10.1.0.10"));
    p.key = key(2).public().to_bytes();
    assert!(env.authorize(&p, &c).is_ok());
    // Another module, a prefix outside, a lifetime above its limit.
    let mut r = setup(1);
    r.module.as_mut().unwrap().name = "other".into();
    assert_eq!(refused(env.authorize(&r, &c)), Reason::ModuleNotAllowed);
    let mut r = setup(1);
    r.filter.as_mut().unwrap().dst = Some("10.3.0.0/16".parse().unwrap());
    let e = env.authorize(&r, &c).unwrap_err();
    assert_eq!(e.reason, Reason::Prefix);
    assert!(e.text.contains("10.2.0.0/16"), "{e}");
    let mut r = setup(1);
    r.filter.as_mut().unwrap().dst = None;
    assert_eq!(refused(env.authorize(&r, &c)), Reason::Prefix);
    let mut r = setup(1);
    r.lifetime_s = Some(7201);
    assert_eq!(refused(env.authorize(&r, &c)), Reason::BadLifetime);
    // Server ports: 8080 yes, 9090 no.
    let mut r = setup(1);
    r.module.as_mut().unwrap().kind = ModuleKind::Server;
    r.filter = None;
    r.server_ports = vec![ServerPort { proto: 6, port: 8080 }];
    assert!(env.authorize(&r, &c).is_ok());
    r.server_ports = vec![ServerPort { proto: 6, port: 9090 }];
    assert_eq!(refused(env.authorize(&r, &c)), Reason::Port);
}

/// REMOVE needs `signal` like SETUP; PROBE needs `signal` or `read`.
#[test]
fn remove_and_probe_need_their_rights() {
    let mut n = node();
    let mut reader = provider();
    reader.name = "reader".into();
    reader.rights = BTreeSet::from([Right::Read]);
    let mut filterer = provider();
    filterer.name = "filterer".into();
    filterer.rights = BTreeSet::from([Right::Filter]);
    let mut st = state(
        policy(vec![(provider(), 1), (reader, 2), (filterer, 3)]),
        Some(Fake::default()),
    );
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
    };
    let c = ctx("10.2.0.10");
    let req = |kind: Kind, k: u8| {
        let mut r = Request::new(kind, SessionId([3; 16]), ip("10.1.0.10"));
        r.key = key(k).public().to_bytes();
        r
    };
    assert!(env.authorize(&req(Kind::Remove, 1), &c).is_ok());
    assert_eq!(refused(env.authorize(&req(Kind::Remove, 2), &c)), Reason::NotAllowed);
    assert_eq!(refused(env.authorize(&req(Kind::Remove, 9), &c)), Reason::UnknownKey);
    assert!(env.authorize(&req(Kind::Probe, 1), &c).is_ok());
    assert!(env.authorize(&req(Kind::Probe, 2), &c).is_ok());
    let e = env.authorize(&req(Kind::Probe, 3), &c).unwrap_err();
    assert_eq!(e.reason, Reason::NotAllowed);
    assert!(e.text.contains("read"), "{e}");
}

#[test]
fn reverse_path_checks_the_route_back_toward_the_origin() {
    let mut n = node();
    let mut p = provider();
    p.reverse_path = true;
    let mut st = state(policy(vec![(p, 1)]), Some(Fake::default()));
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
    };
    // The provider (10.2.0.10) is behind p1, where 10.2.0.0/16 routes: ok.
    assert!(env.authorize(&setup(1), &ctx("10.2.0.10")).is_ok());
    // A request claiming to come from the client side: refused.
    let e = env.authorize(&setup(1), &ctx("10.1.0.10")).unwrap_err();
    assert_eq!(e.reason, Reason::Prefix);
    assert!(e.text.contains("reverse-path"), "{e}");
}

#[test]
fn installs_check_dependencies_code_servers_and_what_is_hosted() {
    let mut n = node();
    let fake = Fake::default();
    let mut st = state(policy(vec![(provider(), 1)]), Some(fake.clone()));
    let g = weft_signal::Grant {
        principal: "provider".into(),
    };
    let s = SessionId([1; 16]);
    {
        let mut env = NodeEnv {
            node: &mut n,
            st: &mut st,
        };
        let mut r = setup(1);
        r.dependencies = vec!["counter".into(), "xcache".into()];
        let e = env.install(s, &r, &g).unwrap_err();
        assert_eq!(e.reason, Reason::MissingDependency);
        assert!(e.text.contains("xcache"));
        let mut r = setup(1);
        r.code.as_mut().unwrap().url = "http://169.254.169.254".into();
        let e = env.install(s, &r, &g).unwrap_err();
        assert_eq!(e.reason, Reason::UnlistedCodeServer);
        assert!(e.text.contains("http://10.9.9.9:7080"), "{e}");
        let mut r = setup(1);
        r.module.as_mut().unwrap().name = "counter".into();
        assert_eq!(env.install(s, &r, &g).unwrap_err().reason, Reason::ModuleRejected);
        let mut r = setup(1);
        r.module.as_mut().unwrap().kind = ModuleKind::Server;
        r.filter = None;
        r.server_ports = vec![ServerPort { proto: 6, port: 8080 }];
        assert_eq!(env.install(s, &r, &g).unwrap_err().reason, Reason::Unsupported);
    }
    // Nothing was fetched for any of them.
    assert!(fake.asked.lock().unwrap().is_empty());
    // Without [plugins], packet modules are unsupported.
    let mut st2 = state(policy(vec![(provider(), 1)]), None);
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st2,
    };
    assert_eq!(env.install(s, &setup(1), &g).unwrap_err().reason, Reason::Unsupported);
}

#[test]
fn a_fetched_module_is_instantiated_owned_and_removed() {
    let mut n = node();
    let fake = Fake::default();
    let mut st = state(policy(vec![(provider(), 1)]), Some(fake.clone()));
    let g = weft_signal::Grant {
        principal: "provider".into(),
    };
    let s = SessionId([1; 16]);
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
    };
    assert_eq!(env.install(s, &setup(1), &g).unwrap(), Install::Pending);
    let asked = fake.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].name, "netmon");
    assert_eq!(asked[0].sha256, "aa".repeat(32));
    assert_eq!(asked[0].url, "http://10.9.9.9:7080");
    // The wrong version is refused and nothing is installed.
    let r = env.fetched(s, Ok(fetched("netmon", "2.0"))).unwrap().unwrap_err();
    assert_eq!(r.reason, Reason::ModuleRejected);
    assert!(r.text.contains("version 2.0, not 1.0"), "{r}");
    assert!(env.node.instances().iter().all(|i| i.class != "netmon"));
    // Again, right this time: an instance and a filter, both the provider's.
    env.install(s, &setup(1), &g).unwrap();
    let inst = env.fetched(s, Ok(fetched("netmon", "1.0"))).unwrap().unwrap();
    let id = weft_dataplane::InstanceId(inst.instance.unwrap());
    let t = inst.timing.unwrap();
    assert_eq!((t.fetch_us, t.verify_us, t.compile_us), (3000, 1000, 20000));
    assert_eq!(
        env.node.owner(Owned::Instance(id)).unwrap().as_deref(),
        Some("provider")
    );
    let f = env.node.filters();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].owner.as_deref(), Some("provider"));
    assert_eq!(f[0].m.dport, Some((5060, 5060)));
    assert_eq!(f[0].m.proto, Some(17));
    assert_eq!(f[0].chain[0].0, id);
    // The principal holds its one instance: another SETUP is refused.
    let e = env.authorize(&setup(1), &ctx("10.2.0.10")).unwrap_err();
    assert_eq!(e.reason, Reason::Resources);
    assert!(e.text.contains("1 of its 1 instances"), "{e}");
    // A class with the same hash is here now: a second session installs at once.
    let s2 = SessionId([2; 16]);
    let mut st_ok = provider();
    st_ok.limits.instances = None;
    env.st.policy = policy(vec![(st_ok, 1)]);
    match env.install(s2, &setup(1), &g).unwrap() {
        Install::Done(i) => assert_eq!(i.timing.unwrap().fetch_us, 0),
        Install::Pending => panic!("the class is here"),
    }
    assert_eq!(fake.asked.lock().unwrap().len(), 2, "no third fetch");
    // Removing takes the filter and the instance away.
    env.remove(s);
    env.remove(s2);
    assert!(env.node.filters().is_empty());
    assert!(env.node.instances().iter().all(|i| i.class != "netmon"));
    // A fetch that ends after its session went installs nothing.
    assert!(env.fetched(s, Ok(fetched("netmon", "1.0"))).is_none());
}
