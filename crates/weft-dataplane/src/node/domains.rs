//! The domain tree on the node (the model is [`crate::domain`]): creating,
//! listing, changing and destroying domains, placing instances, filters
//! and visits in them, and charging them memory. The scheduler that serves
//! their queues is [`super::sched`].
//!
//! **Decisions.**
//! * A path's chain holds only instances of the path's own domain
//!   ([`Node::bind`], [`Node::place`] refuse otherwise): the chain's CPU is
//!   charged to one domain, and destroying a domain never leaves another
//!   domain's path holding a dangling instance.
//! * Memory is charged up the tree: a charge must fit the domain's limit
//!   and every ancestor's, and is refused whole otherwise
//!   ([`DomainError::MemoryLimit`]); a domain can never hold another
//!   domain's memory because nothing is lent between siblings.
//! * A WebAssembly instance created in a domain with a memory limit
//!   reserves its memory cap, lowered to what the domain has left
//!   ([`crate::Element::limit_memory`]): growth past it fails inside the
//!   instance (a memory fault of that instance), never in a neighbour.

use super::{Hook, Node, NodeError};
use crate::domain::{
    check_name, DomainCounters, DomainError, DomainId, DomainInfo, DomainLimits, DomainObject, DomainRemoved,
    DomainSpec, DomainUsage, Member, SchedClass,
};
use crate::element::InstanceId;
use crate::node::{FilterId, FilterSpec, Owner};
use crate::token_bucket::TokenBucket;
use std::collections::VecDeque;

/// A hook told about every domain destroyed (see
/// [`Node::on_domain_removed`]).
pub type DomainHook = Box<dyn FnMut(&DomainRemoved) + Send>;

/// What a queued packet charges its domain's memory: the pool's buffer
/// size, whatever the frame's length (that is what it holds).
pub const BUFFER_CHARGE: u64 = weft_packet::buf::DEFAULT_CAPACITY as u64;

/// A packet waiting in a domain's queue: what it matched, so the round
/// that serves it runs that filter's chain and then the rest of the data
/// path from that hook on.
pub(super) struct Queued {
    pub(super) hook: Hook,
    pub(super) filter: FilterId,
    pub(super) pkt: weft_packet::Packet,
}

/// One domain's state on the node.
pub(super) struct DomainSlot {
    pub(super) name: String,
    pub(super) parent: Option<DomainId>,
    pub(super) owner: Option<Owner>,
    pub(super) key: Option<String>,
    pub(super) limits: DomainLimits,
    pub(super) class: SchedClass,
    pub(super) children: Vec<DomainId>,
    pub(super) objects: Vec<DomainObject>,
    pub(super) usage: DomainUsage,
    pub(super) counters: DomainCounters,
    /// Packets waiting for the scheduler, with the hook and filter they
    /// matched; allocated to `limits.queue_len` when the domain is made
    /// (the hot path never grows it).
    pub(super) queue: VecDeque<Queued>,
    /// Deficit round robin: CPU nanoseconds the domain may still use in
    /// this round (fair class).
    pub(super) deficit: i64,
    /// CPU charged in the current round (against `limits.cpu_ns`).
    pub(super) round_ns: u64,
    /// Recent CPU per packet, ns: how many packets a service takes.
    pub(super) avg_pkt_ns: u64,
    /// The round in which `cpu_limited` was last counted.
    pub(super) limited_round: u64,
}

impl DomainSlot {
    fn new(spec: &DomainSpec, parent: Option<DomainId>) -> DomainSlot {
        DomainSlot {
            name: spec.name.clone(),
            parent,
            owner: spec.owner.clone(),
            key: spec.key.clone(),
            limits: spec.limits,
            class: spec.class,
            children: Vec::new(),
            objects: Vec::new(),
            usage: DomainUsage::default(),
            counters: DomainCounters::default(),
            queue: VecDeque::with_capacity(spec.limits.queue_len as usize),
            deficit: 0,
            round_ns: 0,
            avg_pkt_ns: 0,
            limited_round: 0,
        }
    }

    pub(super) fn root() -> DomainSlot {
        DomainSlot::new(
            &DomainSpec {
                name: "root".into(),
                limits: DomainLimits {
                    queue_len: 0,
                    ..Default::default()
                },
                ..Default::default()
            },
            None,
        )
    }
}

fn check_spec(limits: &DomainLimits, class: &SchedClass) -> Result<(), DomainError> {
    if limits.queue_len > 65_536 {
        return Err(DomainError::Invalid(format!(
            "queue_len {} is over 65536 packets",
            limits.queue_len
        )));
    }
    if limits.bandwidth_bps == Some(0) {
        return Err(DomainError::Invalid(
            "bandwidth 0 would stop every out-channel; give a rate or none".into(),
        ));
    }
    if let SchedClass::Fair { weight: 0 } = class {
        return Err(DomainError::Invalid("a fair weight is at least 1".into()));
    }
    Ok(())
}

impl Node {
    pub(super) fn dom(&self, id: DomainId) -> Result<&DomainSlot, NodeError> {
        self.domains
            .get(id.0 as usize)
            .and_then(|d| d.as_ref())
            .ok_or(NodeError::Domain(DomainError::Unknown(id)))
    }

    pub(super) fn dom_mut(&mut self, id: DomainId) -> Result<&mut DomainSlot, NodeError> {
        self.domains
            .get_mut(id.0 as usize)
            .and_then(|d| d.as_mut())
            .ok_or(NodeError::Domain(DomainError::Unknown(id)))
    }

    /// Create a domain under `spec.parent`; returns its handle.
    pub fn add_domain(&mut self, spec: DomainSpec) -> Result<DomainId, NodeError> {
        check_name(&spec.name).map_err(|e| NodeError::Domain(DomainError::Invalid(e)))?;
        check_spec(&spec.limits, &spec.class).map_err(NodeError::Domain)?;
        self.dom(spec.parent)?;
        if self.domain_named(&spec.name).is_ok() {
            return Err(NodeError::Domain(DomainError::NameTaken(spec.name)));
        }
        let id = DomainId(self.domains.len() as u32);
        self.domains.push(Some(DomainSlot::new(&spec, Some(spec.parent))));
        self.dom_mut(spec.parent)?.children.push(id);
        self.sched_refresh();
        tracing::info!(node = %self.name, domain = %id, name = %spec.name, class = %spec.class, "domain created");
        self.mark_stale();
        Ok(id)
    }

    /// The domain of that name.
    pub fn domain_named(&self, name: &str) -> Result<DomainId, NodeError> {
        self.domains
            .iter()
            .enumerate()
            .find(|(_, d)| d.as_ref().is_some_and(|d| d.name == name))
            .map(|(i, _)| DomainId(i as u32))
            .ok_or_else(|| NodeError::Domain(DomainError::UnknownName(name.to_string())))
    }

    /// A domain named by its id (`3`) or its name (`alice`).
    pub fn resolve_domain(&self, name_or_id: &str) -> Result<DomainId, NodeError> {
        match name_or_id.parse::<DomainId>() {
            Ok(id) => self.dom(id).map(|_| id),
            Err(_) => self.domain_named(name_or_id),
        }
    }

    /// One domain, with its members and counters.
    pub fn domain(&self, id: DomainId) -> Result<DomainInfo, NodeError> {
        let d = self.dom(id)?;
        let mut members: Vec<Member> = Vec::new();
        for (i, inst) in self.instances.iter().enumerate() {
            if inst.as_ref().is_some_and(|x| x.domain == id) {
                members.push(Member::Instance(InstanceId(i as u32)));
            }
        }
        for f in self.filters.iter().filter(|f| f.domain == id) {
            members.push(Member::Filter(f.id));
        }
        let mut visits: Vec<u32> = self
            .visit_domain
            .iter()
            .filter(|(l, d)| **d == id && self.labels.contains_key(l))
            .map(|(l, _)| *l)
            .collect();
        visits.sort_unstable();
        members.extend(visits.into_iter().map(Member::Visit));
        let mut usage = d.usage;
        usage.queued = d.queue.len() as u32;
        Ok(DomainInfo {
            id,
            name: d.name.clone(),
            parent: d.parent,
            owner: d.owner.clone(),
            key: d.key.clone(),
            limits: d.limits,
            class: d.class,
            children: d.children.clone(),
            members,
            objects: d.objects.clone(),
            usage,
            counters: d.counters,
        })
    }

    /// Every domain, the root first, in creation order.
    pub fn domains(&self) -> Vec<DomainInfo> {
        (0..self.domains.len() as u32)
            .filter_map(|i| self.domain(DomainId(i)).ok())
            .collect()
    }

    /// `id` and every domain under it, parents before children.
    pub fn domain_subtree(&self, id: DomainId) -> Result<Vec<DomainId>, NodeError> {
        self.dom(id)?;
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            if let Ok(d) = self.dom(out[i]) {
                out.extend(d.children.iter().copied());
            }
            i += 1;
        }
        Ok(out)
    }

    /// `id` and its ancestors up to the root (control paths only: it
    /// allocates).
    fn ancestry(&self, id: DomainId) -> Vec<DomainId> {
        let mut out = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            out.push(c);
            cur = self.parent_of(c);
        }
        out
    }

    #[inline]
    fn parent_of(&self, id: DomainId) -> Option<DomainId> {
        self.domains
            .get(id.0 as usize)
            .and_then(|d| d.as_ref())
            .and_then(|d| d.parent)
    }

    /// Change a domain's limits. A lower memory limit than the domain
    /// holds now is refused (nothing already granted is taken back).
    pub fn set_domain_limits(&mut self, id: DomainId, limits: DomainLimits) -> Result<(), NodeError> {
        let class = self.dom(id)?.class;
        check_spec(&limits, &class).map_err(NodeError::Domain)?;
        let d = self.dom_mut(id)?;
        if let Some(m) = limits.memory {
            if m < d.usage.memory {
                return Err(NodeError::Domain(DomainError::MemoryLimit {
                    domain: id,
                    need: d.usage.memory,
                    limit: m,
                }));
            }
        }
        if !id.is_root() && limits.queue_len as usize > d.queue.capacity() {
            d.queue.reserve_exact(limits.queue_len as usize - d.queue.len());
        }
        d.limits = limits;
        Ok(())
    }

    /// Change a domain's scheduling class.
    pub fn set_domain_class(&mut self, id: DomainId, class: SchedClass) -> Result<(), NodeError> {
        let limits = self.dom(id)?.limits;
        check_spec(&limits, &class).map_err(NodeError::Domain)?;
        let d = self.dom_mut(id)?;
        d.class = class;
        d.deficit = 0;
        Ok(())
    }

    /// Change a domain's owner (principal name and key).
    pub fn set_domain_owner(
        &mut self,
        id: DomainId,
        owner: Option<Owner>,
        key: Option<String>,
    ) -> Result<(), NodeError> {
        let d = self.dom_mut(id)?;
        d.owner = owner;
        d.key = key;
        Ok(())
    }

    /// The domain a member belongs to.
    pub fn domain_of(&self, m: Member) -> Result<DomainId, NodeError> {
        match m {
            Member::Instance(id) => Ok(self.inst(id)?.domain),
            Member::Filter(id) => self
                .filters
                .iter()
                .find(|f| f.id == id)
                .map(|f| f.domain)
                .ok_or(NodeError::UnknownFilter(id)),
            Member::Visit(l) => {
                if !self.labels.contains_key(&l) {
                    return Err(NodeError::UnknownLabel(l));
                }
                Ok(self.visit_domain.get(&l).copied().unwrap_or(DomainId::ROOT))
            }
        }
    }

    /// Move a member into domain `to`. An instance carries its memory
    /// reservation with it (refused when `to` cannot hold it) and must not
    /// be bound in another domain's path; a filter's chain must already be
    /// in `to` (place its instances first).
    pub fn place(&mut self, m: Member, to: DomainId) -> Result<(), NodeError> {
        self.dom(to)?;
        match m {
            Member::Instance(id) => {
                let (from, reserved) = {
                    let i = self.inst(id)?;
                    (i.domain, i.reserved)
                };
                if from == to {
                    return Ok(());
                }
                if let Some(f) = self.filters.iter().find(|f| f.chain.contains(&id) && f.domain != to) {
                    return Err(NodeError::Domain(DomainError::Invalid(format!(
                        "instance {id} is in the path of filter {} of domain {}; move or unbind it first",
                        f.id, f.domain
                    ))));
                }
                self.charge_memory(to, reserved)?;
                self.uncharge(from, reserved, false);
                self.charge_instance_memory(to, reserved as i64);
                self.charge_instance_memory(from, -(reserved as i64));
                self.inst_mut(id)?.domain = to;
            }
            Member::Filter(fid) => {
                let f = self
                    .filters
                    .iter()
                    .find(|f| f.id == fid)
                    .ok_or(NodeError::UnknownFilter(fid))?;
                for i in &f.chain {
                    let d = self.inst(*i)?.domain;
                    if d != to {
                        return Err(NodeError::Domain(DomainError::Invalid(format!(
                            "filter {fid}'s path holds instance {i} of domain {d}; a path runs only its own domain's instances"
                        ))));
                    }
                }
                let steer = f.steer;
                if let Some(f) = self.filters.iter_mut().find(|f| f.id == fid) {
                    f.domain = to;
                }
                if steer != 0 {
                    self.visit_domain.insert(steer, to);
                }
                self.mark_stale();
            }
            Member::Visit(l) => {
                let st = self.labels.get(&l).ok_or(NodeError::UnknownLabel(l))?;
                for i in st.chain.iter() {
                    let d = self.inst(*i)?.domain;
                    if d != to {
                        return Err(NodeError::Domain(DomainError::Invalid(format!(
                            "visit {l} runs instance {i} of domain {d}; place its instances first"
                        ))));
                    }
                }
                if let Some(fid) = st.steering {
                    return self.place(Member::Filter(fid), to);
                }
                self.visit_domain.insert(l, to);
            }
        }
        Ok(())
    }

    /// Create an instance in domain `domain` (see [`Node::create_instance`]).
    /// In a domain with a memory limit, an instance with a memory cap (a
    /// WebAssembly plugin) reserves it, lowered to what the domain and its
    /// ancestors have left less room for a full queue of the domain's
    /// packets (`queue_len` × [`BUFFER_CHARGE`]); refused with [`DomainError::MemoryLimit`] when
    /// even its initial memory does not fit.
    pub fn create_instance_in(&mut self, domain: DomainId, class: &str, config: &str) -> Result<InstanceId, NodeError> {
        self.dom(domain)?;
        let id = self.create_instance(class, config)?;
        if domain.is_root() {
            return Ok(id);
        }
        if let Err(e) = self.place(Member::Instance(id), domain) {
            self.instances[id.0 as usize] = None;
            return Err(e);
        }
        if let Err(e) = self.reserve_instance_memory(id) {
            self.instances[id.0 as usize] = None;
            return Err(e);
        }
        Ok(id)
    }

    /// Reserve an instance's memory in its domain (see
    /// [`Node::create_instance_in`]).
    fn reserve_instance_memory(&mut self, id: InstanceId) -> Result<(), NodeError> {
        let domain = self.inst(id)?.domain;
        let Some(cap) = self.inst_mut(id)?.element.memory_cap() else {
            return Ok(());
        };
        // The domain's queue must still be able to hold its packets
        // (each charges a buffer): an instance that took every byte would
        // leave its own domain dropping everything as over its memory.
        let queue_room = u64::from(self.dom(domain)?.limits.queue_len) * BUFFER_CHARGE;
        let headroom = self.memory_headroom(domain).saturating_sub(queue_room);
        let want = cap.min(headroom);
        if want < cap {
            let inst = self.inst_mut(id)?;
            if inst.element.limit_memory(want).is_err() {
                let held = inst.element.memory_bytes();
                let need = self.dom(domain)?.usage.memory + held;
                self.count_alloc_failure(domain);
                return Err(NodeError::Domain(DomainError::MemoryLimit {
                    domain,
                    need,
                    limit: self.dom(domain)?.limits.memory.unwrap_or(u64::MAX),
                }));
            }
        }
        self.charge_memory(domain, want)?;
        self.charge_instance_memory(domain, want as i64);
        self.inst_mut(id)?.reserved = want;
        Ok(())
    }

    pub(super) fn release_instance_memory(&mut self, domain: DomainId, reserved: u64) {
        if reserved > 0 {
            self.uncharge(domain, reserved, false);
            self.charge_instance_memory(domain, -(reserved as i64));
        }
    }

    fn charge_instance_memory(&mut self, domain: DomainId, delta: i64) {
        for a in self.ancestry(domain) {
            if let Ok(d) = self.dom_mut(a) {
                d.usage.instance_memory = d.usage.instance_memory.saturating_add_signed(delta);
            }
        }
    }

    /// What `domain` can still be charged before it or an ancestor reaches
    /// its memory limit (`u64::MAX`: no limit anywhere).
    pub fn memory_headroom(&self, domain: DomainId) -> u64 {
        self.ancestry(domain)
            .into_iter()
            .filter_map(|a| self.dom(a).ok())
            .filter_map(|d| d.limits.memory.map(|m| m.saturating_sub(d.usage.memory)))
            .min()
            .unwrap_or(u64::MAX)
    }

    fn count_alloc_failure(&mut self, domain: DomainId) {
        if let Ok(d) = self.dom_mut(domain) {
            d.counters.alloc_failures += 1;
        }
    }

    /// Charge `bytes` of memory to `domain` (and its ancestors): packet
    /// buffers a channel holds, for instance. All or nothing: over the
    /// domain's or an ancestor's limit it is refused, counted as an
    /// allocation failure, and nothing is charged.
    pub fn charge_memory(&mut self, domain: DomainId, bytes: u64) -> Result<(), NodeError> {
        // Walks the parents in place: queueing a packet charges its buffer
        // here, on the hot path, which must not allocate.
        self.dom(domain)?;
        let mut cur = Some(domain);
        while let Some(a) = cur {
            let d = self.dom(a)?;
            if let Some(limit) = d.limits.memory {
                let need = d.usage.memory.saturating_add(bytes);
                if need > limit {
                    self.count_alloc_failure(domain);
                    return Err(NodeError::Domain(DomainError::MemoryLimit { domain: a, need, limit }));
                }
            }
            cur = d.parent;
        }
        let mut cur = Some(domain);
        while let Some(a) = cur {
            let Ok(d) = self.dom_mut(a) else { break };
            d.usage.memory += bytes;
            cur = d.parent;
        }
        Ok(())
    }

    /// Charge packet buffers: as [`Node::charge_memory`], and counted as
    /// buffers in the usage.
    pub fn charge_buffers(&mut self, domain: DomainId, bytes: u64) -> Result<(), NodeError> {
        self.charge_memory(domain, bytes)?;
        let mut cur = Some(domain);
        while let Some(a) = cur {
            let Ok(d) = self.dom_mut(a) else { break };
            d.usage.buffers += bytes;
            cur = d.parent;
        }
        Ok(())
    }

    /// Give back what [`Node::charge_buffers`] charged.
    pub fn release_buffers(&mut self, domain: DomainId, bytes: u64) {
        self.uncharge(domain, bytes, true);
    }

    /// Give back what [`Node::charge_memory`] charged.
    pub fn release_memory(&mut self, domain: DomainId, bytes: u64) {
        self.uncharge(domain, bytes, false);
    }

    pub(super) fn uncharge(&mut self, domain: DomainId, bytes: u64, buffers: bool) {
        let mut cur = Some(domain);
        while let Some(a) = cur {
            let Ok(d) = self.dom_mut(a) else { break };
            d.usage.memory = d.usage.memory.saturating_sub(bytes);
            if buffers {
                d.usage.buffers = d.usage.buffers.saturating_sub(bytes);
            }
            cur = d.parent;
        }
    }

    /// Charge CPU a domain caused outside its chains (a channel's copy, for
    /// instance), nanoseconds; it counts against the domain's limit in the
    /// current scheduling round.
    pub fn charge_cpu(&mut self, domain: DomainId, ns: u64) -> Result<(), NodeError> {
        let d = self.dom_mut(domain)?;
        d.counters.cpu_ns += ns;
        d.round_ns += ns;
        Ok(())
    }

    /// A token bucket for one out-channel of `domain`, from its bandwidth
    /// limit (bytes per second, burst in bytes); `None` when the domain has
    /// no bandwidth limit. Each out-channel takes its own.
    pub fn domain_bucket(&self, domain: DomainId) -> Result<Option<TokenBucket>, NodeError> {
        let l = self.dom(domain)?.limits;
        Ok(match (l.bandwidth_bps, l.burst()) {
            (Some(bps), Some(burst)) => Some(TokenBucket::new((bps / 8).max(1), burst)),
            _ => None,
        })
    }

    /// Register an object another subsystem keeps in `domain` (listed
    /// with the domain, handed to the destroy hooks when it goes).
    pub fn domain_attach(&mut self, domain: DomainId, obj: DomainObject) -> Result<(), NodeError> {
        let d = self.dom_mut(domain)?;
        if !d.objects.contains(&obj) {
            d.objects.push(obj);
        }
        Ok(())
    }

    /// Forget an object registered with [`Node::domain_attach`] (the
    /// subsystem destroyed it itself).
    pub fn domain_detach(&mut self, domain: DomainId, obj: &DomainObject) -> Result<(), NodeError> {
        self.dom_mut(domain)?.objects.retain(|o| o != obj);
        Ok(())
    }

    /// Call `hook` with what every later [`Node::remove_domain`] destroyed
    /// (the domains, their objects), after the node freed its own part, so
    /// subsystems such as channels destroy theirs.
    pub fn on_domain_removed(&mut self, hook: DomainHook) {
        self.domain_hooks.push(hook);
    }

    /// Add a filter in domain `domain` (see [`Node::add_filter`]); the
    /// chain's instances must be in that domain.
    pub fn add_filter_in(&mut self, domain: DomainId, spec: FilterSpec) -> Result<FilterId, NodeError> {
        self.dom(domain)?;
        for i in &spec.chain {
            let d = self.inst(*i)?.domain;
            if d != domain {
                return Err(NodeError::Domain(DomainError::Invalid(format!(
                    "instance {i} is in domain {d}, not {domain}; a path runs only its own domain's instances"
                ))));
            }
        }
        let id = self.add_filter(spec)?;
        if let Some(f) = self.filters.iter_mut().find(|f| f.id == id) {
            f.domain = domain;
        }
        Ok(id)
    }

    /// Destroy a domain, its children and everything in them: filters and
    /// visits, instances (memory reservations released), queued packets
    /// (buffers back to the pool), objects other subsystems registered
    /// (handed to the [`Node::on_domain_removed`] hooks). The root cannot
    /// be removed.
    pub fn remove_domain(&mut self, id: DomainId) -> Result<DomainRemoved, NodeError> {
        if id.is_root() {
            return Err(NodeError::Domain(DomainError::Root));
        }
        let sub = self.domain_subtree(id)?;
        let inside = |d: DomainId| sub.contains(&d);
        let mut out = DomainRemoved {
            domains: sub.clone(),
            ..Default::default()
        };
        // Paths first, so no filter still names an instance.
        let fids: Vec<FilterId> = self.filters.iter().filter(|f| inside(f.domain)).map(|f| f.id).collect();
        for f in &fids {
            let _ = self.remove_filter(*f);
        }
        out.filters = fids;
        let labels: Vec<u32> = self
            .visit_domain
            .iter()
            .filter(|(_, d)| inside(**d))
            .map(|(l, _)| *l)
            .collect();
        for l in &labels {
            self.visit_domain.remove(l);
            if self.labels.remove(l).is_some() {
                out.visits.push(*l);
            }
        }
        out.visits.sort_unstable();
        for i in 0..self.instances.len() {
            let mine = self.instances[i].as_ref().is_some_and(|x| inside(x.domain));
            if mine {
                let id = InstanceId(i as u32);
                self.resolvers.retain(|r| *r != id);
                self.instances[i] = None;
                out.instances.push(id);
            }
        }
        let (freed_mem, freed_inst, freed_buf) = {
            let u = self.dom(id)?.usage;
            (u.memory, u.instance_memory, u.buffers)
        };
        let parent = self.dom(id)?.parent.unwrap_or(DomainId::ROOT);
        for d in sub.iter().rev() {
            if let Some(mut slot) = self.domains[d.0 as usize].take() {
                for q in slot.queue.drain(..) {
                    self.pool.free(q.pkt);
                    self.sched.queued -= 1;
                    out.packets_freed += 1;
                }
                out.objects.append(&mut slot.objects);
            }
        }
        out.memory_freed = freed_mem;
        self.uncharge(parent, freed_buf, true);
        self.uncharge(parent, freed_mem - freed_buf.min(freed_mem), false);
        self.charge_instance_memory(parent, -(freed_inst as i64));
        if let Ok(p) = self.dom_mut(parent) {
            p.children.retain(|c| *c != id);
        }
        self.sched_refresh();
        self.mark_stale();
        for h in self.domain_hooks.iter_mut() {
            h(&out);
        }
        tracing::info!(
            node = %self.name, domain = %id, domains = out.domains.len(), instances = out.instances.len(),
            filters = out.filters.len(), packets = out.packets_freed, "domain removed"
        );
        Ok(out)
    }
}
