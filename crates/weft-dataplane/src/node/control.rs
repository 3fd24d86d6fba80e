//! The control side of the node's processing: classes, instances and
//! their handlers, filters and the chains bound to them, replacement, the
//! routing step's resolvers, and who owns what. Each change that the data
//! path must see marks the snapshot stale ([`Node::mark_stale`]).

use super::{Hook, InstanceStats, Node, NodeError};
use crate::classifier::Match;
use crate::domain::{DomainError, DomainId};
use crate::element::{Args, ClassDoc, ClassKind, Element, ElementClass, Handler, InstanceId};
pub use crate::element::{FilterId, Owner};
use serde::{Deserialize, Serialize};

pub(super) struct Instance {
    pub(super) class: String,
    /// The class's code when the instance was made: a newer version of a
    /// plugin registered under the same name leaves it running this one.
    pub(super) code: ClassKind,
    pub(super) args: Args,
    pub(super) element: Box<dyn Element>,
    pub(super) stats: InstanceStats,
    pub(super) generation: u32,
    pub(super) owner: Option<Owner>,
    /// The domain it belongs to, and the memory reserved there for it.
    pub(super) domain: DomainId,
    pub(super) reserved: u64,
}

/// Something a principal can own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owned {
    /// An instance.
    Instance(InstanceId),
    /// A filter.
    Filter(FilterId),
}

/// An instance as listed by [`Node::instances`].
#[derive(Clone, Debug, Serialize)]
pub struct InstanceInfo {
    /// Node-unique id.
    pub id: InstanceId,
    /// Class name.
    pub class: String,
    /// The code it runs: native, or the WebAssembly module (by hash) its
    /// class had when the instance was created or last replaced.
    pub code: ClassKind,
    /// Current configuration, as written (secrets redacted).
    pub config: String,
    /// How many times the instance was replaced.
    pub generation: u32,
    /// Filters whose chains include this instance.
    pub filters: Vec<FilterId>,
    /// Attached at the routing step (see [`Node::attach_resolver`]).
    pub resolver: bool,
    /// Engine counters.
    pub stats: InstanceStats,
    /// Who created it (None: the operator).
    pub owner: Option<Owner>,
    /// The handlers its element answers ([`Element::handlers`]).
    pub handlers: Vec<Handler>,
}

/// A filter to add: a match at a hook and the chain of instances
/// packets matching it run through.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterSpec {
    /// Hook.
    pub hook: Option<Hook>,
    /// Match.
    #[serde(flatten)]
    pub m: Match,
    /// Instances in chain order.
    #[serde(default)]
    pub chain: Vec<InstanceId>,
    /// Rule position within the hook (0 = first); `None` appends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

#[derive(Clone, Debug)]
pub(super) struct Filter {
    pub(super) id: FilterId,
    pub(super) hook: Hook,
    pub(super) m: Match,
    pub(super) chain: Vec<InstanceId>,
    /// A steering filter's visit label (0: an ordinary filter).
    pub(super) steer: u32,
    pub(super) owner: Option<Owner>,
    /// The domain the path belongs to: its chain's CPU is charged there,
    /// and outside the root its packets wait in that domain's queue.
    pub(super) domain: DomainId,
}

/// A filter as listed by [`Node::filters`] (rule order within each hook).
#[derive(Clone, Debug, Serialize)]
pub struct FilterInfo {
    /// Id.
    pub id: FilterId,
    /// Hook.
    pub hook: Hook,
    /// Match.
    #[serde(flatten)]
    pub m: Match,
    /// Instances in chain order, with their classes.
    pub chain: Vec<(InstanceId, String)>,
    /// Packets matched.
    pub hits: u64,
    /// Who created it (None: the operator).
    pub owner: Option<Owner>,
}

impl Node {
    /// Register a class (LANA `add`).
    pub fn add_class(&mut self, class: ElementClass) -> Result<(), NodeError> {
        if self.classes.contains_key(&class.name) {
            return Err(NodeError::ClassExists(class.name));
        }
        self.classes.insert(class.name.clone(), class);
        Ok(())
    }

    /// Register or replace a class definition (existing instances keep the
    /// code they were created with).
    pub fn upsert_class(&mut self, class: ElementClass) {
        self.classes.insert(class.name.clone(), class);
    }

    /// Unregister a class (LANA `rm`); refused while instances exist.
    pub fn remove_class(&mut self, name: &str) -> Result<(), NodeError> {
        if !self.classes.contains_key(name) {
            return Err(NodeError::UnknownClass(name.to_string()));
        }
        let users: Vec<String> = self.instance_ids_of(name).iter().map(|i| i.to_string()).collect();
        if !users.is_empty() {
            return Err(NodeError::ClassInUse(name.to_string(), users.join(", ")));
        }
        self.classes.remove(name);
        Ok(())
    }

    fn instance_ids_of(&self, class: &str) -> Vec<InstanceId> {
        self.instances
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|x| x.class == class).map(|_| InstanceId(i as u32)))
            .collect()
    }

    /// The registered classes: name, kind, documentation.
    pub fn classes(&self) -> Vec<(String, ClassKind, ClassDoc)> {
        self.classes
            .values()
            .map(|c| (c.name.clone(), c.kind.clone(), c.doc.clone()))
            .collect()
    }

    /// True when a class of that name is registered.
    pub fn has_class(&self, name: &str) -> bool {
        self.classes.contains_key(name)
    }

    /// Create an instance of `class` configured by `config`.
    pub fn create_instance(&mut self, class: &str, config: &str) -> Result<InstanceId, NodeError> {
        let cls = self
            .classes
            .get(class)
            .ok_or_else(|| NodeError::UnknownClass(class.to_string()))?;
        let args = Args::parse(config);
        let element = cls.create(&args)?;
        let id = InstanceId(self.instances.len() as u32);
        self.instances.push(Some(Instance {
            class: class.to_string(),
            code: cls.kind.clone(),
            args,
            element,
            stats: InstanceStats::default(),
            generation: 0,
            owner: None,
            domain: DomainId::ROOT,
            reserved: 0,
        }));
        tracing::info!(node = %self.name, %id, class, config = %Args::parse(config).redacted(), "instance created");
        Ok(id)
    }

    pub(super) fn inst(&self, id: InstanceId) -> Result<&Instance, NodeError> {
        self.instances
            .get(id.0 as usize)
            .and_then(|s| s.as_ref())
            .ok_or(NodeError::UnknownInstance(id))
    }

    pub(super) fn inst_mut(&mut self, id: InstanceId) -> Result<&mut Instance, NodeError> {
        self.instances
            .get_mut(id.0 as usize)
            .and_then(|s| s.as_mut())
            .ok_or(NodeError::UnknownInstance(id))
    }

    /// Remove an instance; refused while it is bound to a filter, attached
    /// at the routing step or used by an explicit-path visit.
    pub fn remove_instance(&mut self, id: InstanceId) -> Result<(), NodeError> {
        self.inst(id)?;
        let mut users: Vec<String> = self.filters_of(id).iter().map(|f| f.to_string()).collect();
        if self.resolvers.contains(&id) {
            users.push("the routing step".into());
        }
        if self.labels_use(id) {
            users.push("an explicit-path visit".into());
        }
        if !users.is_empty() {
            return Err(NodeError::InstanceInUse(id, users.join(", ")));
        }
        let (domain, reserved) = {
            let i = self.inst(id)?;
            (i.domain, i.reserved)
        };
        self.release_instance_memory(domain, reserved);
        self.instances[id.0 as usize] = None;
        Ok(())
    }

    fn filters_of(&self, id: InstanceId) -> Vec<FilterId> {
        self.filters
            .iter()
            .filter(|f| f.chain.contains(&id))
            .map(|f| f.id)
            .collect()
    }

    /// Reconfigure an instance with a whole new configuration string.
    pub fn configure(&mut self, id: InstanceId, config: &str) -> Result<(), NodeError> {
        let inst = self.inst_mut(id)?;
        let args = Args::parse(config);
        inst.element.configure(&args)?;
        inst.args = args;
        Ok(())
    }

    /// LANA's `set key=value` on an instance.
    /// A plugin reads its configuration as written, where a comma belongs
    /// to a value, so only white-space separated words are replaced there
    /// ([`Args::with_word`]); native elements read commas as separators.
    pub fn set(&mut self, id: InstanceId, key: &str, value: &str) -> Result<(), NodeError> {
        let inst = self.inst_mut(id)?;
        let args = match inst.code {
            ClassKind::Wasm { .. } => inst.args.with_word(key, value),
            _ => inst.args.with(key, value),
        };
        inst.element.configure(&args)?;
        inst.args = args;
        Ok(())
    }

    /// The control port: send a request, get the reply.
    ///
    /// Convention shared by all elements: a request whose first word is a
    /// bare verb (letters only, no `=`, e.g. `reset`) or a `#` comment (a
    /// script's first line) is a command; anything else (`131072`,
    /// `rate=131072`) is a new configuration, and once the element accepts
    /// it the node records it as the instance's configuration, so listings
    /// show what is in force.
    pub fn control(&mut self, id: InstanceId, request: &str) -> Result<String, NodeError> {
        let inst = self.inst_mut(id)?;
        let reply = inst.element.control(request)?;
        let first = request.split_whitespace().next().unwrap_or("");
        let is_verb = first.starts_with('#')
            || !first.is_empty() && first.chars().all(|c| c.is_ascii_alphabetic() || c == '-' || c == '_');
        if !is_verb && !first.is_empty() {
            inst.args = Args::parse(request);
        }
        Ok(reply)
    }

    /// The reporting port: the element's report plus engine counters.
    pub fn report(&self, id: InstanceId) -> Result<serde_json::Value, NodeError> {
        let inst = self.inst(id)?;
        Ok(serde_json::json!({
            "id": id.to_string(),
            "class": inst.class,
            "config": inst.args.redacted(),
            "generation": inst.generation,
            "engine": inst.stats,
            "element": inst.element.report(),
        }))
    }

    /// All instances.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.instances
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref().map(|inst| {
                    let id = InstanceId(i as u32);
                    InstanceInfo {
                        id,
                        class: inst.class.clone(),
                        code: inst.code.clone(),
                        config: inst.args.redacted(),
                        generation: inst.generation,
                        filters: self.filters_of(id),
                        resolver: self.resolvers.contains(&id),
                        stats: inst.stats,
                        owner: inst.owner.clone(),
                        handlers: inst.element.handlers(),
                    }
                })
            })
            .collect()
    }

    /// Replace an instance's element by a new one of `class` (LANA
    /// `replace`), keeping its id and so every binding. With `keep_state` the
    /// old element's exported state is imported into the new one; if that
    /// fails the old element stays in place and the error is returned. The
    /// swap happens between batches: no packet is lost or reordered.
    pub fn replace(
        &mut self,
        id: InstanceId,
        class: &str,
        config: Option<&str>,
        keep_state: bool,
    ) -> Result<(), NodeError> {
        let cls = self
            .classes
            .get(class)
            .ok_or_else(|| NodeError::UnknownClass(class.to_string()))?
            .clone();
        let inst = self.inst_mut(id)?;
        let args = config.map(Args::parse).unwrap_or_else(|| inst.args.clone());
        let mut fresh = cls.create(&args)?;
        if keep_state {
            if let Some(state) = inst.element.export_state() {
                fresh.import_state(state)?;
            }
        }
        let old_class = std::mem::replace(&mut inst.class, class.to_string());
        inst.code = cls.kind.clone();
        inst.element = fresh;
        inst.args = args;
        inst.generation += 1;
        tracing::info!(node = %self.name, %id, from = %old_class, to = class, keep_state, "instance replaced");
        self.mark_stale();
        Ok(())
    }

    // ----- the routing step ------------------------------------------------

    /// Attach instance `id` at the routing step (DESIGN §3 step 4): it sees
    /// every packet addressed to one of the node's addresses that carries
    /// IPv4 options or an IPv6 extension header, after PREROUTING and
    /// before INPUT — a DataRouter resolving the tag at its pointer. If it
    /// rewrote the destination (and returns `Continue`), the packet is
    /// routed again to its new destination; if it is still addressed to the
    /// node it goes to INPUT. Packets without options never reach it, and no
    /// classifier runs for it: the test is two bytes of the parsed header.
    /// Attaching twice is a no-op; several resolvers run in attach order.
    pub fn attach_resolver(&mut self, id: InstanceId) -> Result<(), NodeError> {
        self.inst(id)?;
        if !self.resolvers.contains(&id) {
            self.resolvers.push(id);
            self.mark_stale();
        }
        Ok(())
    }

    /// Detach a routing-step instance (see [`Node::attach_resolver`]).
    pub fn detach_resolver(&mut self, id: InstanceId) -> Result<(), NodeError> {
        self.inst(id)?;
        let n = self.resolvers.len();
        self.resolvers.retain(|r| *r != id);
        if self.resolvers.len() != n {
            self.mark_stale();
        }
        Ok(())
    }

    // ----- filters and their chains ----------------------------------------

    /// Add a filter; returns its id.
    pub fn add_filter(&mut self, spec: FilterSpec) -> Result<FilterId, NodeError> {
        Ok(self.add_filters(vec![spec])?[0])
    }

    /// Add several filters and publish one snapshot for all of them (a rule
    /// set of thousands loads in one classifier build, not thousands). All or
    /// nothing: on an error no filter is added.
    pub fn add_filters(&mut self, specs: Vec<FilterSpec>) -> Result<Vec<FilterId>, NodeError> {
        for spec in &specs {
            spec.hook.ok_or(NodeError::NoHook)?;
            for i in &spec.chain {
                self.inst(*i)?;
            }
        }
        let mut ids = Vec::with_capacity(specs.len());
        for spec in specs {
            let hook = spec.hook.ok_or(NodeError::NoHook)?;
            let id = FilterId(self.next_filter);
            self.next_filter += 1;
            let f = Filter {
                id,
                hook,
                m: spec.m,
                chain: spec.chain,
                steer: 0,
                owner: None,
                domain: DomainId::ROOT,
            };
            // Position counts rules within the hook.
            let idx = match spec.position {
                None => self.filters.len(),
                Some(pos) => self
                    .filters
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| g.hook == hook)
                    .nth(pos)
                    .map(|(i, _)| i)
                    .unwrap_or(self.filters.len()),
            };
            self.filters.insert(idx, f);
            if self.filter_hits.len() <= id.0 as usize {
                self.filter_hits.resize(id.0 as usize + 1, 0);
            }
            ids.push(id);
        }
        self.mark_stale();
        Ok(ids)
    }

    /// Record who created `what` (None: the operator).
    pub fn set_owner(&mut self, what: Owned, owner: Option<Owner>) -> Result<(), NodeError> {
        match what {
            Owned::Instance(id) => self.inst_mut(id)?.owner = owner,
            Owned::Filter(id) => {
                self.filters
                    .iter_mut()
                    .find(|f| f.id == id)
                    .ok_or(NodeError::UnknownFilter(id))?
                    .owner = owner
            }
        }
        Ok(())
    }

    /// Who created `what` (None: the operator).
    pub fn owner(&self, what: Owned) -> Result<Option<Owner>, NodeError> {
        Ok(match what {
            Owned::Instance(id) => self.inst(id)?.owner.clone(),
            Owned::Filter(id) => self
                .filters
                .iter()
                .find(|f| f.id == id)
                .ok_or(NodeError::UnknownFilter(id))?
                .owner
                .clone(),
        })
    }

    /// Remove a filter (its instances stay).
    pub fn remove_filter(&mut self, id: FilterId) -> Result<(), NodeError> {
        let i = self
            .filters
            .iter()
            .position(|f| f.id == id)
            .ok_or(NodeError::UnknownFilter(id))?;
        self.filters.remove(i);
        // A steering filter takes its explicit-path visit with it.
        self.labels.retain(|_, st| st.steering != Some(id));
        self.mark_stale();
        Ok(())
    }

    /// Bind an instance into a filter's chain at `position` (None: at the end).
    pub fn bind(&mut self, id: InstanceId, filter: FilterId, position: Option<usize>) -> Result<(), NodeError> {
        let idd = self.inst(id)?.domain;
        let f = self
            .filters
            .iter_mut()
            .find(|f| f.id == filter)
            .ok_or(NodeError::UnknownFilter(filter))?;
        if f.chain.contains(&id) {
            return Err(NodeError::AlreadyBound(id, filter));
        }
        if f.domain != idd {
            return Err(NodeError::Domain(DomainError::Invalid(format!(
                "instance {id} is in domain {idd}, filter {filter} in domain {}; a path runs only its own domain's instances",
                f.domain
            ))));
        }
        let pos = position.unwrap_or(f.chain.len()).min(f.chain.len());
        f.chain.insert(pos, id);
        self.mark_stale();
        Ok(())
    }

    /// Take an instance out of a filter's chain.
    pub fn unbind(&mut self, id: InstanceId, filter: FilterId) -> Result<(), NodeError> {
        let f = self
            .filters
            .iter_mut()
            .find(|f| f.id == filter)
            .ok_or(NodeError::UnknownFilter(filter))?;
        let before = f.chain.len();
        f.chain.retain(|i| *i != id);
        if f.chain.len() == before {
            return Err(NodeError::NotBound(id, filter));
        }
        self.mark_stale();
        Ok(())
    }

    /// Filters in rule order.
    pub fn filters(&self) -> Vec<FilterInfo> {
        let mut v: Vec<FilterInfo> = self
            .filters
            .iter()
            .map(|f| FilterInfo {
                id: f.id,
                hook: f.hook,
                m: f.m.clone(),
                chain: f
                    .chain
                    .iter()
                    .map(|i| {
                        (
                            *i,
                            self.inst(*i).map(|x| x.class.clone()).unwrap_or_else(|_| "?".into()),
                        )
                    })
                    .collect(),
                hits: self.filter_hits.get(f.id.0 as usize).copied().unwrap_or(0),
                owner: f.owner.clone(),
            })
            .collect();
        v.sort_by_key(|f| f.hook);
        v
    }
}
