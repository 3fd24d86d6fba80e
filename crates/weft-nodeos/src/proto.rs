//! The NodeOS control protocol: one JSON object per line over a Unix
//! stream socket, a request and its response (same `id`), in order.
//!
//! ```text
//! → {"id":1,"call":{"op":"domain_create","spec":{"name":"video","limits":{"bandwidth_bps":8000000}}}}
//! ← {"id":1,"ok":{"domain":7}}
//! → {"id":2,"call":{"op":"in_chan_create","spec":{"domain":7,"key":{"proto":"if0/ipv4/udp","addr":"dport=5004"}}}}
//! ← {"id":2,"ok":{"chan":1,"memif":{"socket":"/run/weft/n1/memif.sock","id":1,"secret":"…"}}}
//! → {"id":3,"call":{"op":"chan_destroy","chan":99}}
//! ← {"id":3,"error":{"code":"not_found","message":"no channel 99"}}
//! ```
//!
//! **Specifications and objects** (NodeOS §2.2): every `spec` is a plain
//! value whose life is the call; what a create returns is a **handle**
//! (a number) naming an object that lives until destroyed — explicitly,
//! with its domain, or when the application attached to it goes. A handle
//! is checked against the caller: an object in a domain another principal
//! owns is refused (`not_yours`) exactly like one that does not exist
//! would be named, so handles cannot be probed.
//!
//! [`parse_request`] never panics; a line longer than [`MAX_LINE`] or not a
//! request is answered with `malformed` and the connection stays usable.

use serde::{Deserialize, Serialize};

/// Longest request line accepted (bytes, newline excluded).
pub const MAX_LINE: usize = 16 * 1024;
/// Protocol version, sent in `hello`.
pub const PROTOCOL: u32 = 1;

/// A domain handle.
pub type DomainHandle = u64;
/// A channel handle.
pub type ChanHandle = u64;

/// One request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Echoed in the response.
    pub id: u64,
    /// What to do.
    pub call: Call,
}

/// The calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Call {
    /// Who am I, which node, which protocol version.
    Hello,
    /// The node's clock (nanoseconds since the node started).
    Time,
    /// Create a domain (a child of `spec.parent`, default the caller's
    /// top: the root for the operator).
    DomainCreate {
        /// The domain.
        spec: DomainSpec,
    },
    /// Destroy a domain, its children and all their channels.
    DomainDestroy {
        /// Which.
        domain: DomainHandle,
    },
    /// The caller's domains.
    DomainList,
    /// An in-channel: matching packets go to a memif ring.
    InChanCreate {
        /// The channel.
        spec: InChanSpec,
    },
    /// An out-channel: packets from a memif ring go out through the node.
    OutChanCreate {
        /// The channel.
        spec: OutChanSpec,
    },
    /// A cut-through channel: matching packets are forwarded by the node
    /// without the application, within a bandwidth.
    CutChanCreate {
        /// The channel.
        spec: CutChanSpec,
    },
    /// Destroy a channel.
    ChanDestroy {
        /// Which.
        chan: ChanHandle,
    },
    /// A channel's counters.
    ChanStats {
        /// Which.
        chan: ChanHandle,
    },
    /// Change a cut-through channel's layer cut-off (the wavelet dropper's
    /// control: packets of layers above `max_layer` are dropped).
    ChanSetLayer {
        /// Which.
        chan: ChanHandle,
        /// Highest layer passed (`None`: all).
        max_layer: Option<u8>,
    },
    /// Events since the last call (attachments, applications gone,
    /// domains destroyed), oldest first.
    Events,
}

/// Limits of a domain (`None`: none of its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// CPU per scheduling round, nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Memory, bytes.
    pub memory: Option<u64>,
    /// Output bandwidth per out-channel, bits per second.
    pub bandwidth_bps: Option<u64>,
    /// Its burst, bytes.
    pub burst_bytes: Option<u64>,
    /// Packets its queue holds.
    pub queue_len: Option<u32>,
}

/// A domain to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// Node-unique name.
    pub name: String,
    /// Parent (one of the caller's domains; default: the caller's top).
    #[serde(default)]
    pub parent: Option<DomainHandle>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Scheduling class: `priority:N`, `fair:W`, `deadline:T`.
    #[serde(default)]
    pub class: Option<String>,
}

/// A demultiplexing key (NodeOS `an_DemuxKey` with its protocol and
/// address specifications).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemuxKey {
    /// Protocol spec: `[PORT/]ipv4|ipv6[/udp|tcp|icmp|PROTO]`, e.g.
    /// `if0/ipv4/udp`.
    pub proto: String,
    /// Address spec: space-separated `src=PREFIX dst=PREFIX sport=P[-Q]
    /// dport=P[-Q]`, e.g. `dst=10.0.2.0/24 dport=5004`.
    #[serde(default)]
    pub addr: Option<String>,
    /// Masked byte patterns, all of which must match.
    #[serde(default)]
    pub patterns: Vec<BytePattern>,
}

/// `(packet[offset..] & mask) == value`, offsets from the start of the
/// IP header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BytePattern {
    /// Offset from the start of the IP header.
    pub offset: u16,
    /// Bytes, hex (at most 16 bytes).
    pub value: String,
    /// Mask, hex, as long as `value` (default: all ones).
    #[serde(default)]
    pub mask: Option<String>,
}

/// An in-channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InChanSpec {
    /// Its domain.
    pub domain: DomainHandle,
    /// Which packets.
    pub key: DemuxKey,
}

/// An out-channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutChanSpec {
    /// Its domain.
    pub domain: DomainHandle,
    /// Bandwidth, bits per second (at most the domain's; default the
    /// domain's).
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
    /// Share the memif interface of this in-channel (an active path: the
    /// application reads and writes one interface, as DPDK's testpmd does).
    #[serde(default)]
    pub attach: Option<ChanHandle>,
}

/// A cut-through channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutChanSpec {
    /// Its domain.
    pub domain: DomainHandle,
    /// Which packets.
    pub key: DemuxKey,
    /// Bandwidth, bits per second (default: the domain's).
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
    /// Layered stream: the layer is the byte at this offset of the UDP
    /// payload (enables `chan_set_layer` and per-layer counters).
    #[serde(default)]
    pub layer_offset: Option<u16>,
}

/// Where to attach to a channel's packets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemifInfo {
    /// The memif socket.
    pub socket: String,
    /// Interface id.
    pub id: u32,
    /// Secret.
    pub secret: String,
}

/// A domain as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainView {
    /// Handle.
    pub domain: DomainHandle,
    /// Name.
    pub name: String,
    /// Parent.
    pub parent: Option<DomainHandle>,
    /// Its channels.
    pub chans: Vec<ChanHandle>,
}

/// A channel's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChanStats {
    /// `in`, `out`, `cut`.
    pub kind: String,
    /// Its domain.
    pub domain: DomainHandle,
    /// Whether an application is attached (in/out).
    pub attached: bool,
    /// Packets delivered (in: to the ring; out: into the node; cut: passed).
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Dropped: the ring was full (the application did not read).
    pub dropped_full: u64,
    /// Dropped: no application attached.
    pub dropped_detached: u64,
    /// Dropped: over the channel's bandwidth.
    pub dropped_bandwidth: u64,
    /// Dropped: layer above the cut-off.
    pub dropped_layer: u64,
    /// Descriptors refused (bad offset, length or region).
    pub bad_desc: u64,
    /// Per layer: offered bytes (cut channels with a layer offset).
    pub layer_bytes: Vec<u64>,
}

/// An event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An application attached to a channel's memif.
    Attached {
        /// Channel.
        chan: ChanHandle,
        /// Its name.
        app: String,
    },
    /// The application left or died; the channel waits for another.
    Detached {
        /// Channel.
        chan: ChanHandle,
        /// Why.
        reason: String,
    },
    /// A channel was destroyed (with its domain, for instance).
    ChanGone {
        /// Channel.
        chan: ChanHandle,
    },
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// `hello`.
    Hello {
        /// The caller's principal.
        principal: String,
        /// Node name.
        node: String,
        /// [`PROTOCOL`].
        protocol: u32,
    },
    /// `time`.
    Time {
        /// Node clock, ns.
        now_ns: u64,
    },
    /// `domain_create`.
    Domain {
        /// Handle.
        domain: DomainHandle,
    },
    /// `domain_list`.
    Domains {
        /// The caller's domains.
        domains: Vec<DomainView>,
    },
    /// `*_chan_create`.
    Chan {
        /// Handle.
        chan: ChanHandle,
        /// Where to attach (in / out channels).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memif: Option<MemifInfo>,
    },
    /// `chan_stats`.
    Stats {
        /// Counters.
        stats: ChanStats,
    },
    /// `events`.
    Events {
        /// Oldest first.
        events: Vec<Event>,
    },
    /// Done, nothing to say.
    Done {
        /// Always true.
        done: bool,
    },
}

/// Error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Not a request (bad JSON, unknown op or field, too long).
    Malformed,
    /// A specification is invalid (bad key, prefix, pattern, class).
    BadSpec,
    /// No such object.
    NotFound,
    /// The object belongs to another principal's domain.
    NotYours,
    /// The caller lacks the right.
    Refused,
    /// A limit (memory, bandwidth, channel count) refused it.
    Limit,
    /// The node failed.
    Internal,
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// Kind.
    pub code: Code,
    /// What was wrong, for a human.
    pub message: String,
}

impl ApiError {
    /// An error of `code`.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// A response line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// The request's id (0 when the request could not be read).
    pub id: u64,
    /// Success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Reply>,
    /// Failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Response {
    /// The response to request `id`.
    pub fn of(id: u64, r: Result<Reply, ApiError>) -> Response {
        match r {
            Ok(v) => Response {
                id,
                ok: Some(v),
                error: None,
            },
            Err(e) => Response {
                id,
                ok: None,
                error: Some(e),
            },
        }
    }
}

/// Read one request line. Never panics.
pub fn parse_request(line: &[u8]) -> Result<Request, (u64, ApiError)> {
    if line.len() > MAX_LINE {
        return Err((
            0,
            ApiError::new(Code::Malformed, format!("request longer than {MAX_LINE} bytes")),
        ));
    }
    serde_json::from_slice::<Request>(line).map_err(|e| {
        // Echo the id when the line is an object with one, so the client
        // can tell which request failed.
        let id = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_u64()))
            .unwrap_or(0);
        (id, ApiError::new(Code::Malformed, format!("not a request: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_from_their_documented_form() {
        let r = parse_request(
            br#"{"id":2,"call":{"op":"in_chan_create","spec":{"domain":7,"key":{"proto":"if0/ipv4/udp","addr":"dport=5004"}}}}"#,
        )
        .unwrap();
        assert_eq!(r.id, 2);
        let Call::InChanCreate { spec } = r.call else { panic!() };
        assert_eq!(spec.domain, 7);
        assert_eq!(spec.key.proto, "if0/ipv4/udp");
        assert_eq!(spec.key.addr.as_deref(), Some("dport=5004"));
        assert_eq!(
            parse_request(br#"{"id":1,"call":{"op":"time"}}"#).unwrap().call,
            Call::Time
        );
    }

    #[test]
    fn malformed_requests_say_why_and_keep_the_id() {
        for (line, id) in [
            (&br#"{"id":5,"call":{"op":"launch_missiles"}}"#[..], 5),
            (br#"{"id":6,"call":{"op":"chan_destroy"}}"#, 6),
            (br#"{"id":7,"call":{"op":"time"},"extra":1}"#, 7),
            (br#"not json"#, 0),
            (br#"[1,2]"#, 0),
        ] {
            let (i, e) = parse_request(line).unwrap_err();
            assert_eq!((i, e.code), (id, Code::Malformed), "{}", String::from_utf8_lossy(line));
            assert!(!e.message.is_empty());
        }
        let long = vec![b' '; MAX_LINE + 1];
        assert_eq!(parse_request(&long).unwrap_err().1.code, Code::Malformed);
    }

    #[test]
    fn responses_are_ok_or_error() {
        let r = Response::of(3, Ok(Reply::Chan { chan: 1, memif: None }));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"id":3,"ok":{"chan":1}}"#);
        let r = Response::of(4, Err(ApiError::new(Code::NotFound, "no channel 99")));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":4,"error":{"code":"not_found","message":"no channel 99"}}"#
        );
    }
}
