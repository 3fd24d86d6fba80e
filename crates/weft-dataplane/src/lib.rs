//! # weft-dataplane — the packet engine
//!
//! * [`element`] — the element contract (**API Boundary**): [`Element`],
//!   [`Verdict`], [`ElementClass`], [`Args`].
//! * [`classifier`] — filters on the 6-tuple, matched in rule order with a
//!   lookup that does not grow linearly with the rule count.
//! * [`domain`] — domains (Snow on Silk): the accounts CPU, memory,
//!   bandwidth and queues are charged to, and the schedulers' classes.
//! * [`fib`] — longest-prefix-match routes for IPv4 and IPv6.
//! * [`icmp_limit`] — the node's one ICMP error limiter, which the engine's
//!   errors and elements' errors all pass.
//! * [`neigh`] — ARP / neighbour discovery cache.
//! * [`vcpu`] — a virtual CPU for the domain schedulers' tests and demo.
//! * [`token_bucket`] — the one token bucket every rate limit uses.
//! * [`node`] — [`Node`], the node handle and the data path over one
//!   immutable [`node::Pipeline`] snapshot.
//!
//! **Architecture invariant:** this crate knows nothing about HTTP, wasm,
//! sockets or clocks: time comes in as `now_ns`, frames come in and go out as
//! [`weft_packet::Packet`] batches.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod classifier;
pub mod domain;
pub mod element;
pub mod fib;
pub mod fuzzing;
pub mod icmp_limit;
pub mod neigh;
pub mod node;
pub mod token_bucket;
pub mod vcpu;

pub use classifier::Match;
pub use domain::{DomainError, DomainId, DomainInfo, DomainLimits, DomainSpec, Member, SchedClass, DEFAULT_QUEUE_LEN};
pub use element::{
    Access, Args, ClassDoc, Ctx, Element, ElementClass, ElementError, EmitTo, Handler, InstanceId, Verdict,
};
pub use fib::{Route, RouteKind};
pub use icmp_limit::IcmpLimiter;
pub use node::{
    DomainHook, DropReason, FilterId, FilterSpec, Hook, LabelInfo, LabelOut, Node, NodeError, Owned, Owner, PortConfig,
    BUFFER_CHARGE, ETHERTYPE_MPLS, LABEL_TTL, MPLS_UDP_PORT,
};
pub use token_bucket::TokenBucket;
