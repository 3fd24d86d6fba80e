//! Whole messages: what each type says ([`Body`]), which objects it
//! carries, and the validated value [`Message`] with `parse`,
//! `buffer_len` and `emit`; [`peek`] for messages that do not parse.

use super::header::HeaderView;
use super::objects::{
    emit_object, error_body, fixed, flowspec_body, parse_error, parse_flowspec, parse_path_id, parse_plugin,
    parse_record, parse_route, path_id_body, plugin_body, record_body, route_body, ExplicitRoute, FlowSpec, HopError,
    ObjIter, PathId, Plugin, RawObject, StatusRecord,
};
use super::{
    be32, be64, msg, obj, WireError, HASH_LEN, HEADER_LEN, MAX_LABEL, MAX_MESSAGE_LEN, OBJECT_HEADER_LEN, SECRET_LEN,
    VERSION,
};
use serde::{Deserialize, Serialize};

/// The CREATE_PATH message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Create {
    /// PATH_ID.
    pub path: PathId,
    /// EXPLICIT_ROUTE.
    pub route: ExplicitRoute,
    /// FLOWSPEC.
    pub flowspec: FlowSpec,
    /// PLUGIN objects.
    pub plugins: Vec<Plugin>,
    /// RESOURCES: bandwidth in bits/s (0: best effort).
    pub bandwidth_bps: u64,
    /// REFRESH: the interval the initiator refreshes at, ms.
    pub refresh_ms: u32,
    /// AUTH: SHA-256 of the release secret.
    pub auth: [u8; HASH_LEN],
}

/// What a message says, by type. `hop` is the sender's hop index in
/// upstream messages and the receiver's in downstream ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Body {
    /// CREATE_PATH: reserve, then forward to the next hop.
    Create(Create),
    /// COMMIT: the sender (hop `hop`) installed its state; its in label.
    Commit {
        /// PATH_ID.
        path: PathId,
        /// HOP: the sender's index.
        hop: u8,
        /// LABEL allocated by the sender.
        label: u32,
        /// PATH_MTU: the largest IP packet the sender takes in, the rest
        /// of the path included (none: not known).
        mtu: Option<u16>,
    },
    /// REFUSE: setup failed at `error.hop`.
    Refuse {
        /// PATH_ID.
        path: PathId,
        /// HOP: the sender's index.
        hop: u8,
        /// ERROR.
        error: HopError,
    },
    /// RELEASE_PATH: tear down, authenticated by the secret.
    Release {
        /// PATH_ID.
        path: PathId,
        /// HOP: the receiver's index.
        hop: u8,
        /// SECRET.
        secret: [u8; SECRET_LEN],
    },
    /// REFRESH: keep the state alive.
    Refresh {
        /// PATH_ID.
        path: PathId,
        /// HOP: the receiver's index.
        hop: u8,
    },
    /// PATH_DOWN: the path broke at `error.hop`.
    PathDown {
        /// PATH_ID.
        path: PathId,
        /// HOP: the sender's index.
        hop: u8,
        /// ERROR.
        error: HopError,
    },
    /// STATUS request, collecting one record per visit.
    StatusRequest {
        /// PATH_ID.
        path: PathId,
        /// HOP: the receiver's index.
        hop: u8,
        /// Records of the visits upstream of the receiver.
        records: Vec<StatusRecord>,
    },
    /// STATUS reply, travelling back to the initiator.
    StatusReply {
        /// PATH_ID.
        path: PathId,
        /// HOP: the sender's index.
        hop: u8,
        /// One record per visit reached.
        records: Vec<StatusRecord>,
        /// Why the request stopped early, if it did.
        error: Option<HopError>,
    },
    /// ACK of the message with the header's sequence number.
    Ack,
}

impl Body {
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        match self {
            Body::Create(_) => msg::CREATE,
            Body::Commit { .. } => msg::COMMIT,
            Body::Refuse { .. } => msg::REFUSE,
            Body::Release { .. } => msg::RELEASE,
            Body::Refresh { .. } => msg::REFRESH,
            Body::PathDown { .. } => msg::PATH_DOWN,
            Body::StatusRequest { .. } => msg::STATUS_REQUEST,
            Body::StatusReply { .. } => msg::STATUS_REPLY,
            Body::Ack => msg::ACK,
        }
    }

    /// Name for logs and counters.
    pub fn name(&self) -> &'static str {
        type_name(self.msg_type())
    }
}

/// Name of a message type.
pub fn type_name(t: u8) -> &'static str {
    match t {
        msg::CREATE => "CREATE_PATH",
        msg::COMMIT => "COMMIT",
        msg::REFUSE => "REFUSE",
        msg::RELEASE => "RELEASE_PATH",
        msg::REFRESH => "REFRESH",
        msg::PATH_DOWN => "PATH_DOWN",
        msg::STATUS_REQUEST => "STATUS",
        msg::STATUS_REPLY => "STATUS_REPLY",
        msg::ACK => "ACK",
        _ => "unknown",
    }
}

/// A whole message: sequence number, body, and unknown objects to pass on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Sequence number (per sender; for an ACK, the acknowledged one).
    pub seq: u32,
    /// What it says.
    pub body: Body,
    /// Unknown objects of kind `0b11xxxxxx`, emitted after the known ones.
    pub forward: Vec<RawObject>,
}

/// Which known objects each message type carries: (kind, mandatory,
/// repeatable).
fn allowed(t: u8) -> &'static [(u8, bool, bool)] {
    use obj::*;
    match t {
        msg::CREATE => &[
            (PATH_ID, true, false),
            (EXPLICIT_ROUTE, true, false),
            (FLOWSPEC, true, false),
            (PLUGIN, false, true),
            (RESOURCES, true, false),
            (REFRESH, true, false),
            (AUTH, true, false),
        ],
        msg::COMMIT => &[
            (PATH_ID, true, false),
            (HOP, true, false),
            (LABEL, true, false),
            (PATH_MTU, false, false),
        ],
        msg::REFUSE | msg::PATH_DOWN => &[(PATH_ID, true, false), (HOP, true, false), (ERROR, true, false)],
        msg::RELEASE => &[(PATH_ID, true, false), (HOP, true, false), (SECRET, true, false)],
        msg::REFRESH => &[(PATH_ID, true, false), (HOP, true, false)],
        msg::STATUS_REQUEST => &[(PATH_ID, true, false), (HOP, true, false), (STATUS_RECORD, false, true)],
        msg::STATUS_REPLY => &[
            (PATH_ID, true, false),
            (HOP, true, false),
            (STATUS_RECORD, false, true),
            (ERROR, false, false),
        ],
        _ => &[],
    }
}

/// Every object a message may carry, parsed.
#[derive(Default)]
struct Slots {
    path: Option<PathId>,
    hop: Option<u8>,
    flowspec: Option<FlowSpec>,
    route: Option<ExplicitRoute>,
    plugins: Vec<Plugin>,
    bandwidth: Option<u64>,
    refresh: Option<u32>,
    auth: Option<[u8; HASH_LEN]>,
    secret: Option<[u8; SECRET_LEN]>,
    label: Option<u32>,
    mtu: Option<u16>,
    error: Option<HopError>,
    records: Vec<StatusRecord>,
}

/// What can be read of a message that may not parse: enough to
/// acknowledge it and to tell the sender what was wrong with a CREATE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peek {
    /// Message type.
    pub msg_type: u8,
    /// Sequence number.
    pub seq: u32,
    /// PATH_ID, if one parses.
    pub path: Option<PathId>,
    /// HOP, or the current index of an EXPLICIT_ROUTE.
    pub hop: Option<u8>,
}

/// Read the header and what objects can be read of a message that
/// [`Message::parse`] may reject. `None` when the header itself is bad
/// (then nobody can be answered).
pub fn peek(b: &[u8]) -> Option<Peek> {
    let h = HeaderView::new_checked(b).ok()?;
    let mut p = Peek {
        msg_type: h.msg_type(),
        seq: h.seq(),
        path: None,
        hop: None,
    };
    for o in ObjIter::new(b, HEADER_LEN) {
        let Ok((at, kind, body)) = o else { break };
        match kind {
            obj::PATH_ID => p.path = parse_path_id(body, at).ok().or(p.path),
            obj::HOP if body.len() == 1 => p.hop = Some(body[0]),
            obj::EXPLICIT_ROUTE if !body.is_empty() => p.hop = Some(body[0]),
            _ => {}
        }
    }
    Some(p)
}

impl Message {
    /// A message with nothing to pass on.
    pub fn new(seq: u32, body: Body) -> Message {
        Message {
            seq,
            body,
            forward: Vec::new(),
        }
    }

    /// Parse one datagram. Never panics.
    pub fn parse(b: &[u8]) -> Result<Message, WireError> {
        Self::parse_counting(b).map(|(m, _)| m)
    }

    /// [`Message::parse`], also returning how many unknown objects were
    /// ignored (kind `0b10xxxxxx`) or kept to pass on (`0b11xxxxxx`).
    pub fn parse_counting(b: &[u8]) -> Result<(Message, usize), WireError> {
        let h = HeaderView::new_checked(b)?;
        let t = h.msg_type();
        let allow = allowed(t);
        let mut s = Slots::default();
        let mut seen: u32 = 0;
        let mut forward = Vec::new();
        let mut unknown = 0;
        for o in ObjIter::new(b, HEADER_LEN) {
            let (at, kind, body) = o?;
            let Some(&(_, _, repeat)) = allow.iter().find(|a| a.0 == kind) else {
                if (obj::PATH_ID..=obj::STATUS_RECORD).contains(&kind) || kind == obj::PATH_MTU {
                    return Err(WireError::UnexpectedObject { kind, at });
                }
                match kind >> 6 {
                    0 | 1 => return Err(WireError::UnknownObject { kind, at }),
                    2 => {}
                    _ => forward.push(RawObject {
                        kind,
                        body: body.to_vec(),
                    }),
                }
                unknown += 1;
                continue;
            };
            // Known kinds are < 32, or PATH_MTU (13 in its low five bits):
            // one bit each.
            let bit = 1u32 << (kind & 0x1f);
            if !repeat && seen & bit != 0 {
                return Err(WireError::DuplicateObject { kind, at });
            }
            seen |= bit;
            match kind {
                obj::PATH_ID => s.path = Some(parse_path_id(body, at)?),
                obj::HOP => s.hop = Some(fixed::<1>(body, kind, at)?[0]),
                obj::FLOWSPEC => s.flowspec = Some(parse_flowspec(body, at)?),
                obj::EXPLICIT_ROUTE => s.route = Some(parse_route(body, at)?),
                obj::PLUGIN => s.plugins.push(parse_plugin(body, at)?),
                obj::RESOURCES => s.bandwidth = Some(be64(&fixed::<8>(body, kind, at)?)),
                obj::REFRESH => {
                    let r = be32(&fixed::<4>(body, kind, at)?);
                    if r == 0 {
                        return Err(WireError::BadRefresh { at });
                    }
                    s.refresh = Some(r)
                }
                obj::AUTH => s.auth = Some(fixed(body, kind, at)?),
                obj::SECRET => s.secret = Some(fixed(body, kind, at)?),
                obj::LABEL => {
                    let l = be32(&fixed::<4>(body, kind, at)?);
                    if l > MAX_LABEL {
                        return Err(WireError::BadLabel { at });
                    }
                    s.label = Some(l)
                }
                obj::PATH_MTU => s.mtu = Some(u16::from_be_bytes(fixed::<2>(body, kind, at)?)),
                obj::ERROR => s.error = Some(parse_error(body, at)?),
                obj::STATUS_RECORD => s.records.push(parse_record(body, at)?),
                _ => return Err(WireError::UnknownObject { kind, at }),
            }
        }
        for &(kind, mandatory, _) in allow {
            if mandatory && seen & (1u32 << (kind & 0x1f)) == 0 {
                return Err(WireError::MissingObject { kind });
            }
        }
        let missing = |kind| WireError::MissingObject { kind };
        let path = s.path.ok_or(missing(obj::PATH_ID));
        let hop = s.hop.ok_or(missing(obj::HOP));
        let body = match t {
            msg::CREATE => {
                let route = s.route.ok_or(missing(obj::EXPLICIT_ROUTE))?;
                let flowspec = s.flowspec.ok_or(missing(obj::FLOWSPEC))?;
                if s.plugins.iter().any(|p| p.hop as usize >= route.hops.len()) {
                    return Err(WireError::BadHopIndex { at: 0 });
                }
                if flowspec.src.addr().is_ipv4() != flowspec.dst.addr().is_ipv4() {
                    return Err(WireError::BadAddressFamily { at: 0 });
                }
                Body::Create(Create {
                    path: path?,
                    route,
                    flowspec,
                    plugins: s.plugins,
                    bandwidth_bps: s.bandwidth.ok_or(missing(obj::RESOURCES))?,
                    refresh_ms: s.refresh.ok_or(missing(obj::REFRESH))?,
                    auth: s.auth.ok_or(missing(obj::AUTH))?,
                })
            }
            msg::COMMIT => Body::Commit {
                path: path?,
                hop: hop?,
                label: s.label.ok_or(missing(obj::LABEL))?,
                mtu: s.mtu,
            },
            msg::REFUSE => Body::Refuse {
                path: path?,
                hop: hop?,
                error: s.error.ok_or(missing(obj::ERROR))?,
            },
            msg::PATH_DOWN => Body::PathDown {
                path: path?,
                hop: hop?,
                error: s.error.ok_or(missing(obj::ERROR))?,
            },
            msg::RELEASE => Body::Release {
                path: path?,
                hop: hop?,
                secret: s.secret.ok_or(missing(obj::SECRET))?,
            },
            msg::REFRESH => Body::Refresh { path: path?, hop: hop? },
            msg::STATUS_REQUEST => Body::StatusRequest {
                path: path?,
                hop: hop?,
                records: s.records,
            },
            msg::STATUS_REPLY => Body::StatusReply {
                path: path?,
                hop: hop?,
                records: s.records,
                error: s.error,
            },
            _ => Body::Ack,
        };
        Ok((
            Message {
                seq: h.seq(),
                body,
                forward,
            },
            unknown,
        ))
    }

    /// The objects in emission order: (kind, body).
    fn objects(&self) -> Result<Vec<(u8, Vec<u8>)>, WireError> {
        let mut o: Vec<(u8, Vec<u8>)> = Vec::new();
        let path_obj = |p: &PathId| (obj::PATH_ID, path_id_body(p));
        let hop_obj = |h: u8| (obj::HOP, vec![h]);
        match &self.body {
            Body::Create(c) => {
                o.push(path_obj(&c.path));
                o.push((obj::EXPLICIT_ROUTE, route_body(&c.route)?));
                o.push((obj::FLOWSPEC, flowspec_body(&c.flowspec)?));
                for p in &c.plugins {
                    o.push((obj::PLUGIN, plugin_body(p)?));
                }
                o.push((obj::RESOURCES, c.bandwidth_bps.to_be_bytes().to_vec()));
                o.push((obj::REFRESH, c.refresh_ms.to_be_bytes().to_vec()));
                o.push((obj::AUTH, c.auth.to_vec()));
            }
            Body::Commit { path, hop, label, mtu } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
                o.push((obj::LABEL, label.to_be_bytes().to_vec()));
                if let Some(m) = mtu {
                    o.push((obj::PATH_MTU, m.to_be_bytes().to_vec()));
                }
            }
            Body::Refuse { path, hop, error } | Body::PathDown { path, hop, error } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
                o.push((obj::ERROR, error_body(error)));
            }
            Body::Release { path, hop, secret } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
                o.push((obj::SECRET, secret.to_vec()));
            }
            Body::Refresh { path, hop } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
            }
            Body::StatusRequest { path, hop, records } | Body::StatusReply { path, hop, records, .. } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
                for r in records {
                    o.push((obj::STATUS_RECORD, record_body(r)));
                }
                if let Body::StatusReply { error: Some(e), .. } = &self.body {
                    o.push((obj::ERROR, error_body(e)));
                }
            }
            Body::Ack => {}
        }
        for r in &self.forward {
            o.push((r.kind, r.body.clone()));
        }
        Ok(o)
    }

    /// Octets [`Message::emit`] writes.
    pub fn buffer_len(&self) -> Result<usize, WireError> {
        let n = HEADER_LEN
            + self
                .objects()?
                .iter()
                .map(|(_, b)| OBJECT_HEADER_LEN + b.len())
                .sum::<usize>();
        if n > MAX_MESSAGE_LEN {
            return Err(WireError::TooLong);
        }
        Ok(n)
    }

    /// Write the message into the first [`Message::buffer_len`] octets of
    /// `buf`; returns that length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let objects = self.objects()?;
        let n = HEADER_LEN + objects.iter().map(|(_, b)| OBJECT_HEADER_LEN + b.len()).sum::<usize>();
        if n > MAX_MESSAGE_LEN
            || objects
                .iter()
                .any(|(_, b)| b.len() + OBJECT_HEADER_LEN > MAX_MESSAGE_LEN)
        {
            return Err(WireError::TooLong);
        }
        if buf.len() < n {
            return Err(WireError::BufferTooShort);
        }
        let mut h = HeaderView::new_unchecked(&mut buf[..HEADER_LEN]);
        h.set_version(VERSION);
        h.set_msg_type(self.body.msg_type());
        h.set_length(n as u16);
        h.set_seq(self.seq);
        let mut off = HEADER_LEN;
        for (kind, body) in &objects {
            off += emit_object(&mut buf[off..], *kind, body);
        }
        Ok(n)
    }

    /// The message as a new datagram.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut v = vec![0; self.buffer_len()?];
        self.emit(&mut v)?;
        Ok(v)
    }
}
