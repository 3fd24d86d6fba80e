//! The element contract — **API Boundary**.
//!
//! Everything that processes packets (built-in native elements, WebAssembly
//! plugins, later eBPF programs) implements [`Element`]; code above the engine
//! never needs to know which kind it holds.
//!
//! Life cycle (Click's staging): a class's factory parses the configuration
//! without side effects and returns the element ([`ElementClass::create`]);
//! the engine then calls [`Element::initialize`] to acquire resources; on
//! replacement [`Element::import_state`] takes the state the predecessor
//! exported. A failure at any stage leaves the running pipeline whole.
//!
//! At run time the engine calls [`Element::process_batch`] once per batch
//! (default: [`Element::process`] per packet) and acts on each packet's
//! [`Verdict`]. An element may emit new packets (a reply, a copy) through
//! [`Ctx::emit`]. Operators reach an instance through [`Element::control`]
//! (PromethOS' control port: request → reply), [`Element::report`] (the
//! read-only reporting port) and [`Element::configure`] (LANA's `set
//! key=value`, and whole reconfiguration).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use weft_packet::{Packet, PacketPool, PortId};

/// A node-unique instance identifier, shown as `#N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub u32);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl std::str::FromStr for InstanceId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t.rsplit_once('#').map(|(_, n)| n).unwrap_or(t);
        t.parse::<u32>()
            .map(InstanceId)
            .map_err(|_| format!("bad instance id {s:?}: expected #N"))
    }
}

/// What happens to a packet after an element has seen it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Verdict {
    /// Pass to the next element, then on through the node.
    #[default]
    Continue,
    /// Discard (counted against the instance).
    Drop,
    /// The element has taken the packet (answered it, queued a copy, …); the
    /// engine recycles the buffer and counts it as consumed, not dropped.
    Consume,
    /// Send the frame out of this port as it is, skipping the rest of the
    /// chain and routing (tc's `mirred redirect`).
    Redirect(PortId),
}

/// Where a packet emitted by an element goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmitTo {
    /// Out of this port, as it is.
    Port(PortId),
    /// Into the node's own output path (OUTPUT hook, routing, POSTROUTING):
    /// for packets the element originates, such as replies.
    Route,
}

/// Error returned by element factories and handlers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElementError {
    /// The configuration is not valid for this class.
    #[error("bad configuration: {0}")]
    Config(String),
    /// A control request was not understood or refused.
    #[error("bad control request: {0}")]
    Control(String),
    /// The class does not support this operation.
    #[error("{0} is not supported by this element")]
    Unsupported(&'static str),
    /// A resource could not be acquired in [`Element::initialize`] (memory,
    /// randomness, a compiled module).
    #[error("resource unavailable: {0}")]
    Resource(String),
    /// Exported state could not be taken over.
    #[error("state not taken: {0}")]
    State(String),
}

/// Configuration arguments: PromethOS' `--config "65536"` (positional words)
/// and LANA's `key=value` pairs, from one string.
///
/// Words are separated by white space or commas; a word with `=` is a named
/// argument. `"65536"` → positional `["65536"]`; `"rate=65536 burst=1500"` →
/// named `rate`, `burst`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Args {
    /// Positional words in order.
    pub positional: Vec<String>,
    /// Named `key=value` arguments.
    pub named: BTreeMap<String, String>,
}

impl Args {
    /// Parse a configuration string.
    pub fn parse(s: &str) -> Args {
        let mut a = Args::default();
        for w in s
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
        {
            match w.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    a.named.insert(k.to_string(), v.to_string());
                }
                _ => a.positional.push(w.to_string()),
            }
        }
        a
    }

    /// The named argument `key`, else positional word `pos`.
    pub fn get(&self, key: &str, pos: usize) -> Option<&str> {
        self.named
            .get(key)
            .map(String::as_str)
            .or_else(|| self.positional.get(pos).map(String::as_str))
    }

    /// [`Args::get`] parsed as `T`; `Ok(None)` when absent, an error naming
    /// the key when present but unparsable.
    pub fn get_parsed<T: std::str::FromStr>(&self, key: &str, pos: usize) -> Result<Option<T>, ElementError> {
        match self.get(key, pos) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|_| ElementError::Config(format!("{key}: cannot parse {v:?}"))),
        }
    }

    /// The arguments as text with secret values (`key=`, `secret=`,
    /// `password=`, `psk=`) replaced by `<redacted>`: what listings and
    /// reports show, so a key given to `encrypt` never leaves the node.
    pub fn redacted(&self) -> String {
        let mut a = self.clone();
        for (k, v) in a.named.iter_mut() {
            if matches!(k.as_str(), "key" | "secret" | "password" | "psk") {
                *v = "<redacted>".into();
            }
        }
        a.to_string()
    }

    /// Apply `key=value` on top of these arguments (LANA's `set`).
    pub fn with(&self, key: &str, value: &str) -> Args {
        let mut a = self.clone();
        a.named.insert(key.to_string(), value.to_string());
        a
    }
}

impl fmt::Display for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in &self.positional {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(p)?;
        }
        for (k, v) in &self.named {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// What an element sees of the node while it processes packets.
pub struct Ctx<'a> {
    /// The node's clock, nanoseconds (virtual in the emulator).
    pub now_ns: u64,
    /// The instance being run.
    pub instance: InstanceId,
    pub(crate) pool: &'a mut PacketPool,
    pub(crate) emitted: &'a mut Vec<(EmitTo, Packet)>,
}

impl<'a> Ctx<'a> {
    /// A context for driving an element outside a node (tests, benchmarks,
    /// other hosts such as the WebAssembly runtime's tests).
    pub fn new(
        now_ns: u64,
        instance: InstanceId,
        pool: &'a mut PacketPool,
        emitted: &'a mut Vec<(EmitTo, Packet)>,
    ) -> Self {
        Ctx {
            now_ns,
            instance,
            pool,
            emitted,
        }
    }

    /// Emit a new packet.
    pub fn emit(&mut self, to: EmitTo, pkt: Packet) {
        self.emitted.push((to, pkt));
    }

    /// A packet buffer holding a copy of `frame`, from the node's pool.
    pub fn alloc(&mut self, frame: &[u8]) -> Packet {
        self.pool.alloc(frame)
    }
}

/// The element contract. See the module documentation.
pub trait Element: Send + 'static {
    /// Acquire resources (files, sockets, memory) after the configuration was
    /// parsed. Default: nothing to acquire.
    fn initialize(&mut self) -> Result<(), ElementError> {
        Ok(())
    }

    /// Process one packet.
    fn process(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict;

    /// A hint for elements attached at the routing step
    /// ([`crate::Node::attach_resolver`]): called with each received
    /// batch, raw (not yet parsed), before the first of its packets is
    /// processed, so the table lookups `process` will make can begin early
    /// and their cache misses overlap instead of following one another. It
    /// must change nothing observable. Default: nothing.
    fn prefetch(&mut self, _pkts: &[Packet]) {}

    /// Process a batch; `verdicts[i]` is set for `pkts[i]` (both the same
    /// length, all `Continue` on entry). Override to amortize per-call costs.
    fn process_batch(&mut self, cx: &mut Ctx<'_>, pkts: &mut [Packet], verdicts: &mut [Verdict]) {
        for (p, v) in pkts.iter_mut().zip(verdicts.iter_mut()) {
            *v = self.process(cx, p);
        }
    }

    /// Reconfigure from a whole argument set (the previous one with LANA's
    /// `set key=value` applied, or a new `--config`). On error the element must
    /// be unchanged.
    fn configure(&mut self, _args: &Args) -> Result<(), ElementError> {
        Err(ElementError::Unsupported("reconfiguration"))
    }

    /// The control port: a request, a reply. Default: the request is a new
    /// configuration (PromethOS: `echo '#1' 131072 > …/management`).
    ///
    /// Convention: a request starting with a bare verb (letters only, such
    /// as `reset`) or a `#` comment is a command; anything else is a
    /// configuration, which the node records as the instance's
    /// configuration when accepted.
    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        self.configure(&Args::parse(request))?;
        Ok("ok".into())
    }

    /// The read-only reporting port.
    fn report(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// The largest IP packet (of family IPv6 when `ipv6`, else IPv4) this
    /// element may be given so that what it passes on is at most `room`
    /// octets of IP packet. Explicit paths use it to compute the MTU they
    /// offer at their ingress (`docs/pbr.md` §5): an element that grows
    /// packets (an encapsulation such as `encrypt`) must override it.
    /// Default: `room` (the element never grows a packet).
    fn mtu_before(&self, _ipv6: bool, room: usize) -> usize {
        room
    }

    /// Export state for a successor (replacement). `None`: nothing to carry.
    fn export_state(&mut self) -> Option<serde_json::Value> {
        None
    }

    /// Take over a predecessor's exported state. On error the element must be
    /// left usable (as if freshly configured).
    fn import_state(&mut self, _state: serde_json::Value) -> Result<(), ElementError> {
        Err(ElementError::Unsupported("state import"))
    }
}

/// Access a handler allows (Click's `=h count read-only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read through `report`.
    Read,
    /// Written through `control` or `set`.
    Write,
}

/// Documentation of a class: what `weft fb ls` / the API show.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ClassDoc {
    /// One line.
    pub summary: String,
    /// Configuration keys and positional words.
    pub config: String,
    /// Handlers: name, access, meaning.
    pub handlers: Vec<(String, Access, String)>,
}

/// Where a class's code came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum ClassKind {
    /// Built-in Rust.
    Native,
    /// A WebAssembly module (content hash, hex sha256).
    Wasm {
        /// sha256 of the module.
        hash: String,
    },
}

/// A factory: parse a configuration, return an element (no side effects).
pub type Factory = Arc<dyn Fn(&Args) -> Result<Box<dyn Element>, ElementError> + Send + Sync>;

/// An element class: a name, documentation and a factory. Several instances
/// of one class with different configurations coexist (PromethOS'
/// flexibility); compiled code is shared through the factory.
#[derive(Clone)]
pub struct ElementClass {
    /// Class name, as filters and the CLI name it.
    pub name: String,
    /// Where the code came from.
    pub kind: ClassKind,
    /// Documentation.
    pub doc: ClassDoc,
    /// The factory.
    pub factory: Factory,
}

impl fmt::Debug for ElementClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElementClass")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl ElementClass {
    /// A native class from a plain function.
    pub fn native<F>(name: &str, doc: ClassDoc, factory: F) -> Self
    where
        F: Fn(&Args) -> Result<Box<dyn Element>, ElementError> + Send + Sync + 'static,
    {
        ElementClass {
            name: name.to_string(),
            kind: ClassKind::Native,
            doc,
            factory: Arc::new(factory),
        }
    }

    /// Stage 1 and 2: parse `args` and initialize.
    pub fn create(&self, args: &Args) -> Result<Box<dyn Element>, ElementError> {
        let mut e = (self.factory)(args)?;
        e.initialize()?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_parse() {
        let a = Args::parse("65536");
        assert_eq!(a.get("rate", 0), Some("65536"));
        let a = Args::parse("rate=1, burst=2 x");
        assert_eq!(a.get("rate", 0), Some("1"));
        assert_eq!(a.get("burst", 9), Some("2"));
        assert_eq!(a.positional, vec!["x"]);
        assert_eq!(a.get_parsed::<u32>("rate", 0).unwrap(), Some(1));
        assert!(Args::parse("rate=x").get_parsed::<u32>("rate", 0).is_err());
        assert_eq!(Args::parse("a b=c").to_string(), "a b=c");
        assert_eq!(Args::parse("key=00ff x=1").redacted(), "key=<redacted> x=1");
    }

    #[test]
    fn instance_id_parse() {
        assert_eq!("#3".parse::<InstanceId>().unwrap(), InstanceId(3));
        assert_eq!("ratelimit#12".parse::<InstanceId>().unwrap(), InstanceId(12));
        assert_eq!("7".parse::<InstanceId>().unwrap(), InstanceId(7));
        assert!("#x".parse::<InstanceId>().is_err());
    }
}
