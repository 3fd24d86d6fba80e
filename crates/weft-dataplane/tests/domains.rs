//! Domains on a node: the tree, membership, memory charged up the tree,
//! destruction of a subtree and what it frees.

use std::sync::{Arc, Mutex};
use weft_dataplane::domain::{DomainError, DomainLimits, DomainObject, DomainSpec, Member};
use weft_dataplane::element::{ClassDoc, Ctx, Element, ElementClass, Verdict};
use weft_dataplane::{DomainId, FilterSpec, Hook, Match, Node, NodeError};
use weft_packet::Packet;

struct Pass;
impl Element for Pass {
    fn process(&mut self, _cx: &mut Ctx<'_>, _p: &mut Packet) -> Verdict {
        Verdict::Continue
    }
}

fn node() -> Node {
    let mut n = Node::new("d");
    n.add_class(ElementClass::native("pass", ClassDoc::default(), |_| {
        Ok(Box::new(Pass))
    }))
    .unwrap();
    n
}

fn spec(name: &str, parent: DomainId, memory: Option<u64>) -> DomainSpec {
    DomainSpec {
        name: name.into(),
        parent,
        limits: DomainLimits {
            memory,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn the_root_holds_what_names_no_domain_and_cannot_be_removed() {
    let mut n = node();
    let i = n.create_instance("pass", "").unwrap();
    assert_eq!(n.domain_of(Member::Instance(i)).unwrap(), DomainId::ROOT);
    assert_eq!(n.domains().len(), 1);
    assert_eq!(n.domains()[0].name, "root");
    assert_eq!(
        n.remove_domain(DomainId::ROOT),
        Err(NodeError::Domain(DomainError::Root))
    );
}

#[test]
fn names_are_unique_and_handles_are_never_reused() {
    let mut n = node();
    let a = n.add_domain(spec("alice", DomainId::ROOT, None)).unwrap();
    assert!(matches!(
        n.add_domain(spec("alice", DomainId::ROOT, None)),
        Err(NodeError::Domain(DomainError::NameTaken(_)))
    ));
    assert!(matches!(
        n.add_domain(spec("x", DomainId(99), None)),
        Err(NodeError::Domain(DomainError::Unknown(DomainId(99))))
    ));
    n.remove_domain(a).unwrap();
    let b = n.add_domain(spec("alice", DomainId::ROOT, None)).unwrap();
    assert_ne!(a, b, "a destroyed handle names nothing, not its successor");
    assert!(n.domain(a).is_err());
    assert_eq!(n.resolve_domain("alice").unwrap(), b);
    assert_eq!(n.resolve_domain(&b.0.to_string()).unwrap(), b);
}

#[test]
fn a_path_runs_only_its_own_domains_instances() {
    let mut n = node();
    let a = n.add_domain(spec("a", DomainId::ROOT, None)).unwrap();
    let b = n.add_domain(spec("b", DomainId::ROOT, None)).unwrap();
    let ia = n.create_instance_in(a, "pass", "").unwrap();
    let ib = n.create_instance_in(b, "pass", "").unwrap();
    let f = FilterSpec {
        hook: Some(Hook::Prerouting),
        m: Match::default(),
        chain: vec![ia],
        position: None,
    };
    assert!(n.add_filter_in(b, f.clone()).is_err());
    let fa = n.add_filter_in(a, f).unwrap();
    assert!(n.bind(ib, fa, None).is_err(), "b's instance in a's path");
    assert!(n.place(Member::Instance(ia), b).is_err(), "bound in a's path");
    assert_eq!(n.domain_of(Member::Filter(fa)).unwrap(), a);
}

#[test]
fn memory_is_charged_up_the_tree_and_refused_whole_over_any_limit() {
    let mut n = node();
    let parent = n.add_domain(spec("p", DomainId::ROOT, Some(1000))).unwrap();
    let c1 = n.add_domain(spec("c1", parent, Some(800))).unwrap();
    let c2 = n.add_domain(spec("c2", parent, None)).unwrap();
    n.charge_buffers(c1, 700).unwrap();
    // c2 has no limit of its own, but its parent has 300 left.
    let e = n.charge_buffers(c2, 400).unwrap_err();
    assert!(matches!(e, NodeError::Domain(DomainError::MemoryLimit { domain, .. }) if domain == parent));
    assert_eq!(n.domain(c2).unwrap().usage.memory, 0, "nothing charged");
    assert_eq!(n.domain(c2).unwrap().counters.alloc_failures, 1);
    assert_eq!(n.domain(c1).unwrap().usage.memory, 700, "c1 untouched");
    n.charge_buffers(c2, 300).unwrap();
    assert_eq!(n.domain(parent).unwrap().usage.memory, 1000);
    n.release_buffers(c1, 700);
    assert_eq!(n.domain(parent).unwrap().usage.memory, 300);
    assert!(n
        .set_domain_limits(
            parent,
            DomainLimits {
                memory: Some(100),
                ..Default::default()
            }
        )
        .is_err());
}

#[test]
fn removing_a_domain_destroys_its_subtree_and_tells_the_hooks() {
    let mut n = node();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    n.on_domain_removed(Box::new(move |r| s2.lock().unwrap().push(r.clone())));
    let t = n.add_domain(spec("tenant", DomainId::ROOT, Some(1 << 20))).unwrap();
    let c = n.add_domain(spec("tenant.video", t, None)).unwrap();
    let other = n.add_domain(spec("other", DomainId::ROOT, None)).unwrap();
    let i = n.create_instance_in(c, "pass", "").unwrap();
    let keep = n.create_instance_in(other, "pass", "").unwrap();
    let f = n
        .add_filter_in(
            c,
            FilterSpec {
                hook: Some(Hook::Prerouting),
                m: Match::default(),
                chain: vec![i],
                position: None,
            },
        )
        .unwrap();
    let ch = DomainObject {
        kind: "inchan".into(),
        id: 7,
    };
    n.domain_attach(c, ch.clone()).unwrap();
    n.charge_buffers(c, 4096).unwrap();
    let r = n.remove_domain(t).unwrap();
    assert_eq!(r.domains, vec![t, c]);
    assert_eq!(r.instances, vec![i]);
    assert_eq!(r.filters, vec![f]);
    assert_eq!(r.objects, vec![ch]);
    assert_eq!(r.memory_freed, 4096);
    assert!(n.instances().iter().all(|x| x.id != i));
    assert!(n.filters().is_empty());
    assert!(n.domain(c).is_err());
    assert_eq!(n.domain_of(Member::Instance(keep)).unwrap(), other);
    assert_eq!(n.domain(DomainId::ROOT).unwrap().children, vec![other]);
    assert_eq!(n.domain(DomainId::ROOT).unwrap().usage.memory, 0);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn an_out_channel_bucket_comes_from_the_bandwidth_limit() {
    let mut n = node();
    let d = n
        .add_domain(DomainSpec {
            name: "bw".into(),
            limits: DomainLimits {
                bandwidth_bps: Some(8_000_000),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
    let b = n.domain_bucket(d).unwrap().unwrap();
    assert_eq!(b.rate(), 1_000_000, "bytes per second");
    assert_eq!(b.burst(), 10_000, "10 ms at the rate");
    assert!(n.domain_bucket(DomainId::ROOT).unwrap().is_none());
}
