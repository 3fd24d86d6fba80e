//! Answering one NodeOS request: specifications checked and turned into
//! node objects, handles checked against the caller.

use super::element::Handoff;
use super::{pattern, secret, Chan, ChanCounters, Kind, NodeOsService, MAX_CHANS_PER_PRINCIPAL};
use crate::auth::{Principal, Right};
use std::sync::Arc;
use weft_dataplane::domain::{DomainLimits, DomainObject, DomainSpec as NodeDomainSpec, DEFAULT_QUEUE_LEN};
use weft_dataplane::{DomainId, FilterSpec, Hook, Node, NodeError, SchedClass};
use weft_nodeos::{
    ApiError, Call, ChanHandle, ChanStats, Code, CutChanSpec, DemuxKey, DomainHandle, DomainSpec, DomainView,
    InChanSpec, MemifInfo, OutChanSpec, Reply, PROTOCOL,
};

pub(crate) struct Caller {
    pub(crate) principal: Arc<Principal>,
    pub(crate) uid: u32,
}

impl Caller {
    fn owner(&self) -> Option<Arc<str>> {
        self.principal.owner()
    }
}

fn err(code: Code, m: impl Into<String>) -> ApiError {
    ApiError::new(code, m)
}

fn node_err(e: NodeError) -> ApiError {
    let m = e.to_string();
    let code = match &e {
        NodeError::Domain(weft_dataplane::DomainError::MemoryLimit { .. }) => Code::Limit,
        NodeError::Domain(weft_dataplane::DomainError::Unknown(_)) => Code::NotFound,
        NodeError::Domain(_) => Code::BadSpec,
        _ => Code::Internal,
    };
    err(code, m)
}

pub(crate) fn handle(
    s: &mut NodeOsService,
    node: &mut Node,
    caller: &Caller,
    now_ns: u64,
    call: Call,
) -> Result<Reply, ApiError> {
    match call {
        Call::Hello => Ok(Reply::Hello {
            principal: caller.principal.name.clone(),
            node: node.name().to_string(),
            protocol: PROTOCOL,
        }),
        Call::Time => Ok(Reply::Time { now_ns }),
        Call::DomainCreate { spec } => domain_create(node, caller, &spec),
        Call::DomainDestroy { domain } => {
            let d = own_domain(node, caller, domain)?;
            if d.is_root() {
                return Err(err(Code::Refused, "the root domain cannot be destroyed"));
            }
            node.remove_domain(d).map_err(node_err)?;
            // The hook queued the channels; let go of them now so the
            // answer reflects it.
            s.reap_removed(node);
            Ok(Reply::Done { done: true })
        }
        Call::DomainList => {
            let domains = node
                .domains()
                .into_iter()
                .filter(|d| !d.id.is_root() && mine(caller, d.owner.as_deref()))
                .map(|d| DomainView {
                    domain: d.id.0 as u64,
                    name: d.name,
                    parent: d.parent.map(|p| p.0 as u64),
                    chans: s
                        .chans
                        .iter()
                        .filter(|(_, c)| c.domain == d.id)
                        .map(|(h, _)| *h)
                        .collect(),
                })
                .collect();
            Ok(Reply::Domains { domains })
        }
        Call::InChanCreate { spec } => in_chan(s, node, caller, &spec),
        Call::OutChanCreate { spec } => out_chan(s, node, caller, &spec),
        Call::CutChanCreate { spec } => cut_chan(s, node, caller, &spec),
        Call::ChanDestroy { chan } => {
            own_chan(s, caller, chan)?;
            s.destroy_chan(node, chan);
            Ok(Reply::Done { done: true })
        }
        Call::ChanStats { chan } => {
            let c = own_chan(s, caller, chan)?;
            Ok(Reply::Stats { stats: stats(node, c) })
        }
        Call::ChanSetLayer { chan, max_layer } => {
            let c = own_chan(s, caller, chan)?;
            if c.kind != Kind::Cut {
                return Err(err(
                    Code::BadSpec,
                    format!("channel {chan} is not a cut-through channel"),
                ));
            }
            let i = c
                .instance
                .ok_or_else(|| err(Code::NotFound, format!("channel {chan} has no data plane")))?;
            let req = match max_layer {
                Some(l) => format!("layer {l}"),
                None => "layer all".into(),
            };
            node.control(i, &req).map_err(node_err)?;
            Ok(Reply::Done { done: true })
        }
        Call::Events => {
            let events = s
                .events
                .get_mut(&caller.owner())
                .map(|q| q.drain(..).collect())
                .unwrap_or_default();
            Ok(Reply::Events { events })
        }
    }
}

fn mine(caller: &Caller, owner: Option<&str>) -> bool {
    caller.principal.is_operator() || owner.is_some_and(|o| o == caller.principal.name)
}

/// A domain handle the caller may use. Another principal's domain and one
/// that does not exist get the same answer, so handles cannot be probed.
fn own_domain(node: &Node, caller: &Caller, h: DomainHandle) -> Result<DomainId, ApiError> {
    let id = u32::try_from(h)
        .map(DomainId)
        .map_err(|_| err(Code::NotFound, format!("no domain {h}")))?;
    match node.domain(id) {
        Ok(d) if mine(caller, d.owner.as_deref()) => Ok(id),
        Ok(_) => Err(err(Code::NotYours, format!("domain {h} is not yours"))),
        Err(_) => Err(err(Code::NotFound, format!("no domain {h}"))),
    }
}

fn own_chan<'a>(s: &'a NodeOsService, caller: &Caller, h: ChanHandle) -> Result<&'a Chan, ApiError> {
    match s.chans.get(&h) {
        Some(c) if mine(caller, c.owner.as_deref()) => Ok(c),
        Some(_) => Err(err(Code::NotYours, format!("channel {h} is not yours"))),
        None => Err(err(Code::NotFound, format!("no channel {h}"))),
    }
}

fn domain_create(node: &mut Node, caller: &Caller, spec: &DomainSpec) -> Result<Reply, ApiError> {
    caller
        .principal
        .need(Right::Filter, "create NodeOS domains")
        .map_err(|e| err(Code::Refused, e.message))?;
    let parent = match spec.parent {
        Some(p) => own_domain(node, caller, p)?,
        None => DomainId::ROOT,
    };
    let class = match &spec.class {
        Some(c) => c.parse::<SchedClass>().map_err(|e| err(Code::BadSpec, e))?,
        None => SchedClass::default(),
    };
    let l = spec.limits;
    let limits = DomainLimits {
        cpu_ns: l.cpu_ns,
        wasm_epochs: None,
        memory: l.memory,
        bandwidth_bps: l.bandwidth_bps,
        burst_bytes: l.burst_bytes,
        queue_len: l.queue_len.unwrap_or(DEFAULT_QUEUE_LEN),
    };
    if limits.queue_len == 0 || limits.queue_len > 65_536 {
        return Err(err(Code::BadSpec, "queue_len: 1 to 65536"));
    }
    let d = node
        .add_domain(NodeDomainSpec {
            name: spec.name.clone(),
            parent,
            owner: caller.owner(),
            key: None,
            limits,
            class,
        })
        .map_err(node_err)?;
    Ok(Reply::Domain { domain: d.0 as u64 })
}

fn check_quota(s: &NodeOsService, caller: &Caller) -> Result<(), ApiError> {
    if caller.principal.is_operator() {
        return Ok(());
    }
    let n = s.chans.values().filter(|c| mine(caller, c.owner.as_deref())).count();
    if n >= MAX_CHANS_PER_PRINCIPAL {
        return Err(err(
            Code::Limit,
            format!("at most {MAX_CHANS_PER_PRINCIPAL} channels per principal"),
        ));
    }
    Ok(())
}

/// Compile a key and check the caller may divert what it matches.
fn key_filter(
    node: &Node,
    caller: &Caller,
    key: &DemuxKey,
) -> Result<(weft_dataplane::Match, Vec<pattern::Pattern>), ApiError> {
    let (m, pats) = pattern::compile(key, |name| node.port_id(name).ok()).map_err(|e| err(Code::BadSpec, e))?;
    let dst = if m.dst.is_some_and(|d| d.prefix_len() == 0) {
        None
    } else {
        m.dst
    };
    caller
        .principal
        .need_prefix(Right::Filter, dst, "open a channel")
        .map_err(|e| err(Code::Refused, e.message))?;
    Ok((m, pats))
}

fn new_handle(s: &mut NodeOsService) -> ChanHandle {
    let h = s.next_chan;
    s.next_chan += 1;
    h
}

/// The filter + `nodeos-chan` instance of a channel, in its domain.
fn install(
    s: &mut NodeOsService,
    node: &mut Node,
    h: ChanHandle,
    domain: DomainId,
    m: weft_dataplane::Match,
    ho: Handoff,
) -> Result<(weft_dataplane::InstanceId, weft_dataplane::FilterId), ApiError> {
    if let Ok(mut r) = s.registry.lock() {
        r.insert(h, ho);
    }
    let inst = match node.create_instance_in(domain, super::CLASS, &format!("chan={h}")) {
        Ok(i) => i,
        Err(e) => {
            if let Ok(mut r) = s.registry.lock() {
                r.remove(&h);
            }
            return Err(node_err(e));
        }
    };
    let spec = FilterSpec {
        hook: Some(Hook::Prerouting),
        m,
        chain: vec![inst],
        position: Some(0),
    };
    match node.add_filter_in(domain, spec) {
        Ok(f) => Ok((inst, f)),
        Err(e) => {
            let _ = node.remove_instance(inst);
            if let Ok(mut r) = s.registry.lock() {
                r.remove(&h);
            }
            Err(node_err(e))
        }
    }
}

/// A new channel of `kind` in `domain` for `caller`, attached to nothing yet.
fn chan(kind: Kind, domain: DomainId, caller: &Caller) -> Chan {
    Chan {
        kind,
        domain,
        owner: caller.owner(),
        uid: caller.uid,
        memif: None,
        filter: None,
        instance: None,
        link: None,
        app: None,
        from: None,
        bucket: None,
        out: ChanCounters::default(),
    }
}

/// Hang channel `h` on its domain (so it goes with it) and keep it.
fn register(s: &mut NodeOsService, node: &mut Node, h: ChanHandle, c: Chan) {
    let _ = node.domain_attach(
        c.domain,
        DomainObject {
            kind: format!("{}chan", c.kind.as_str()),
            id: h,
        },
    );
    s.chans.insert(h, c);
}

fn memif_info(s: &NodeOsService, id: u32, secret: &str) -> MemifInfo {
    MemifInfo {
        socket: s.memif_path().display().to_string(),
        id,
        secret: secret.to_string(),
    }
}

fn in_chan(s: &mut NodeOsService, node: &mut Node, caller: &Caller, spec: &InChanSpec) -> Result<Reply, ApiError> {
    let domain = own_domain(node, caller, spec.domain)?;
    check_quota(s, caller)?;
    let (m, patterns) = key_filter(node, caller, &spec.key)?;
    let h = new_handle(s);
    let ho = Handoff {
        cut: false,
        patterns,
        bucket: None,
        layer_offset: None,
        ring: None,
    };
    let (inst, f) = install(s, node, h, domain, m, ho)?;
    let id = h as u32;
    let sec = secret();
    let c = Chan {
        memif: Some((id, sec.clone())),
        filter: Some(f),
        instance: Some(inst),
        ..chan(Kind::In, domain, caller)
    };
    register(s, node, h, c);
    Ok(Reply::Chan {
        chan: h,
        memif: Some(memif_info(s, id, &sec)),
    })
}

fn bucket_for(
    node: &Node,
    domain: DomainId,
    bps: Option<u64>,
) -> Result<Option<weft_dataplane::TokenBucket>, ApiError> {
    let dom = node.domain_bucket(domain).map_err(node_err)?;
    let dom_rate = dom.as_ref().map(|b| b.rate() * 8);
    match (bps, dom_rate) {
        (Some(b), Some(d)) if b > d => Err(err(
            Code::Limit,
            format!("bandwidth {b} bit/s is over the domain's {d} bit/s"),
        )),
        (Some(0), _) => Err(err(Code::BadSpec, "bandwidth_bps must be positive")),
        (Some(b), _) => Ok(Some(weft_dataplane::TokenBucket::new(
            (b / 8).max(1),
            (b / 8 / 100).max(1_500),
        ))),
        (None, _) => Ok(dom),
    }
}

fn out_chan(s: &mut NodeOsService, node: &mut Node, caller: &Caller, spec: &OutChanSpec) -> Result<Reply, ApiError> {
    let domain = own_domain(node, caller, spec.domain)?;
    check_quota(s, caller)?;
    caller
        .principal
        .need(Right::Filter, "open an out-channel")
        .map_err(|e| err(Code::Refused, e.message))?;
    let bucket = bucket_for(node, domain, spec.bandwidth_bps)?;
    let memif = match spec.attach {
        Some(a) => {
            let c = own_chan(s, caller, a)?;
            if c.kind != Kind::In || c.domain != domain {
                return Err(err(
                    Code::BadSpec,
                    format!("channel {a} is not an in-channel of domain {}", spec.domain),
                ));
            }
            if s.chans.values().any(|o| o.kind == Kind::Out && o.memif == c.memif) {
                return Err(err(
                    Code::BadSpec,
                    format!("channel {a}'s interface already has an out-channel"),
                ));
            }
            c.memif
                .clone()
                .ok_or_else(|| err(Code::Internal, "in-channel without memif"))?
        }
        None => {
            let h = s.next_chan;
            (h as u32, secret())
        }
    };
    let h = new_handle(s);
    let info = memif_info(s, memif.0, &memif.1);
    let c = Chan {
        memif: Some(memif),
        bucket,
        ..chan(Kind::Out, domain, caller)
    };
    register(s, node, h, c);
    Ok(Reply::Chan {
        chan: h,
        memif: Some(info),
    })
}

fn cut_chan(s: &mut NodeOsService, node: &mut Node, caller: &Caller, spec: &CutChanSpec) -> Result<Reply, ApiError> {
    let domain = own_domain(node, caller, spec.domain)?;
    check_quota(s, caller)?;
    let (m, patterns) = key_filter(node, caller, &spec.key)?;
    if spec.layer_offset.is_some() && m.proto != Some(17) {
        return Err(err(Code::BadSpec, "layer_offset needs a udp protocol spec"));
    }
    let bucket = bucket_for(node, domain, spec.bandwidth_bps)?;
    let h = new_handle(s);
    let ho = Handoff {
        cut: true,
        patterns,
        bucket,
        layer_offset: spec.layer_offset,
        ring: None,
    };
    let (inst, f) = install(s, node, h, domain, m, ho)?;
    let c = Chan {
        filter: Some(f),
        instance: Some(inst),
        ..chan(Kind::Cut, domain, caller)
    };
    register(s, node, h, c);
    Ok(Reply::Chan { chan: h, memif: None })
}

fn stats(node: &Node, c: &Chan) -> ChanStats {
    let el: ChanCounters = c
        .instance
        .and_then(|i| node.report(i).ok())
        .and_then(|r| serde_json::from_value(r["element"].clone()).ok())
        .unwrap_or_default();
    let src = if c.kind == Kind::Out { &c.out } else { &el };
    ChanStats {
        kind: c.kind.as_str().to_string(),
        domain: c.domain.0 as u64,
        attached: c.app.is_some(),
        packets: src.packets,
        bytes: src.bytes,
        dropped_full: src.dropped_full,
        dropped_detached: src.dropped_detached,
        dropped_bandwidth: src.dropped_bandwidth,
        dropped_layer: src.dropped_layer,
        bad_desc: src.bad_desc,
        layer_bytes: src.layer_bytes.clone(),
    }
}
