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
//! key=value`, and whole reconfiguration). What each of those ports
//! answers is declared as data, Click's `add_handlers`: every element
//! names its handlers with [`Element::handlers`] (its class documents the
//! same list in [`ClassDoc::handlers`]), and listings show them; the
//! free-text control request stays the transport.

use crate::icmp_limit::IcmpLimiter;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use weft_packet::{Packet, PacketPool, PortId};

/// Who created an instance or a filter, as the control plane tells the
/// node ([`crate::Node::set_owner`]): a principal's name. `None` is the operator:
/// what the node's own configuration, its operator and its daemons create.
/// The engine only keeps it; `weft-control` decides what it allows.
pub type Owner = Arc<str>;

/// A filter identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FilterId(pub u32);

impl fmt::Display for FilterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

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
/// Two readings of the same text. **Native elements** read the parsed
/// form: words are separated by white space or commas, a word with `=` is a
/// named argument (`"65536"` → positional `["65536"]`; `"rate=65536,
/// burst=1500"` → named `rate`, `burst`; a repeated key keeps its last
/// value). **WebAssembly plugins** receive the [text as written](Args::text),
/// byte for byte, less the host's own keys ([`Args::text_without`]), and
/// listings show that text: a plugin configured `block=5001,5002` gets
/// exactly `block=5001,5002`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Args {
    /// Positional words in order.
    pub positional: Vec<String>,
    /// Named `key=value` arguments.
    pub named: BTreeMap<String, String>,
    /// The configuration as written.
    #[serde(default)]
    text: String,
}

/// Keys whose values listings and logs never show.
const SECRET_KEYS: &[&str] = &["key", "secret", "password", "psk"];

/// The words of `s` with their byte ranges: runs of characters that are
/// not white space (nor commas, with `commas`).
fn words(s: &str, commas: bool) -> impl Iterator<Item = (usize, usize)> + '_ {
    let sep = move |c: char| c.is_whitespace() || commas && c == ',';
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + s[at..].find(|c: char| !sep(c))?;
        let end = s[start..].find(sep).map_or(s.len(), |e| start + e);
        at = end;
        Some((start, end))
    })
}

/// `text` less its words `KEY=…` for `keys` (see [`Args::text_without`]).
fn cut(t: &str, keys: &[&str], commas: bool) -> String {
    let all: Vec<(usize, usize)> = words(t, commas).collect();
    let drop = |&(s, e): &(usize, usize)| t[s..e].split_once('=').is_some_and(|(k, _)| keys.contains(&k));
    let kept: Vec<usize> = (0..all.len()).filter(|&i| !drop(&all[i])).collect();
    let (Some(&first), Some(&last)) = (kept.first(), kept.last()) else {
        return String::new();
    };
    let mut out = String::with_capacity(t.len());
    // What precedes the first word, as written.
    out.push_str(&t[..all[0].0.min(all[first].0)]);
    for (n, &i) in kept.iter().enumerate() {
        let (s, e) = all[i];
        out.push_str(&t[s..e]);
        if n + 1 < kept.len() {
            // The separator that followed this word in the text.
            out.push_str(&t[e..all[i + 1].0]);
        }
    }
    // What follows the last word, as written.
    if last == all.len() - 1 {
        out.push_str(&t[all[last].1..]);
    }
    out
}

/// `text` with `key=value` appended as a word after `cut`.
fn appended(mut text: String, key: &str, value: &str) -> String {
    text.truncate(text.trim_end().len());
    if !text.trim_start().is_empty() {
        text.push(' ');
    } else {
        text.clear();
    }
    text.push_str(key);
    text.push('=');
    text.push_str(value);
    text
}

impl Args {
    /// Parse a configuration string.
    pub fn parse(s: &str) -> Args {
        let mut a = Args {
            text: s.to_string(),
            ..Args::default()
        };
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

    /// The configuration exactly as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value of the last white-space separated word `key=VALUE` of the
    /// text (commas do not separate here): how the host reads its own keys
    /// out of a plugin's configuration without interpreting the rest.
    pub fn word_value(&self, key: &str) -> Option<&str> {
        words(&self.text, false)
            .filter_map(|(s, e)| self.text[s..e].split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }

    /// The text as written less every white-space separated word `KEY=…`
    /// whose key is in `keys`; the white space that separated a removed
    /// word from its neighbours closes up (`"a on_fault=pass b"` → `"a
    /// b"`), and nothing else changes: commas, quotes, repeated keys and
    /// the order of words stay as written.
    pub fn text_without(&self, keys: &[&str]) -> String {
        cut(&self.text, keys, false)
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

    /// The text as written with secret values (`key=`, `secret=`,
    /// `password=`, `psk=`) replaced by `<redacted>`: what listings and
    /// reports show, so a key given to `encrypt` never leaves the node.
    ///
    /// A secret starts after `KEY=` at the start of the text or after white
    /// space or a comma (wherever either reading sees a word start), and
    /// runs to the next white space — past commas, so a comma-separated
    /// tail is hidden too — or, when it opens with a quote, to the matching
    /// quote.
    pub fn redacted(&self) -> String {
        let t = &self.text;
        let mut out = String::with_capacity(t.len());
        let mut i = 0;
        let mut word_start = true;
        while i < t.len() {
            let rest = &t[i..];
            if word_start {
                if let Some(k) = SECRET_KEYS
                    .iter()
                    .find(|k| rest.starts_with(*k) && rest[k.len()..].starts_with('='))
                {
                    out.push_str(k);
                    out.push_str("=<redacted>");
                    let v = &rest[k.len() + 1..];
                    let len = match v.chars().next() {
                        Some(q @ ('"' | '\'')) => v[1..].find(q).map_or(v.len(), |e| e + 2),
                        _ => v.find(char::is_whitespace).unwrap_or(v.len()),
                    };
                    i += k.len() + 1 + len;
                    word_start = false;
                    continue;
                }
            }
            let Some(c) = rest.chars().next() else { break };
            out.push(c);
            word_start = c.is_whitespace() || c == ',';
            i += c.len_utf8();
        }
        out
    }

    /// Apply `key=value` on top of these arguments (LANA's `set`), in the
    /// parsed reading: every `key=…` of the text (a word between white
    /// space or commas) goes, with its separator, and `key=value` is
    /// appended (`"rate=1,burst=2"` → `"burst=2 rate=5"`).
    pub fn with(&self, key: &str, value: &str) -> Args {
        Args::parse(&appended(cut(&self.text, &[key], true), key, value))
    }

    /// [`Args::with`] in the text-as-written reading of WebAssembly
    /// plugins: only white-space separated words `key=…` go (a comma is
    /// part of a value: `"block=5001,5002 x"` → `"x block=6000"`).
    pub fn with_word(&self, key: &str, value: &str) -> Args {
        Args::parse(&appended(cut(&self.text, &[key], false), key, value))
    }
}

/// The text as written.
impl fmt::Display for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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
    /// The node's ICMP error limiter (none outside a node: no limit).
    pub(crate) icmp: Option<&'a mut IcmpLimiter>,
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
            icmp: None,
        }
    }

    /// The same context, with `limiter` answering
    /// [`Ctx::icmp_error_allowed`] (as the node's does inside a node).
    pub fn with_icmp_limiter(mut self, limiter: &'a mut IcmpLimiter) -> Self {
        self.icmp = Some(limiter);
        self
    }

    /// Ask before originating an ICMP or ICMPv6 error: `true` takes a
    /// token from the node's one ICMP error limiter
    /// ([`crate::icmp_limit`]), which the engine's own errors pass too;
    /// `false` means the node's budget is spent and the error must not be
    /// sent. Outside a node (a context made by [`Ctx::new`] alone) every
    /// error is allowed.
    pub fn icmp_error_allowed(&mut self) -> bool {
        match self.icmp.as_deref_mut() {
            Some(l) => l.allow(self.now_ns),
            None => true,
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

    /// The handlers this element answers (Click's `add_handlers`, as
    /// data): the keys its [`Element::report`] carries and the requests its
    /// [`Element::control`] takes, each with one line. `weft instance ls
    /// --long` and the API's instance view list them. Every built-in
    /// element declares its own; default: none declared.
    fn handlers(&self) -> Vec<Handler> {
        Vec::new()
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

    /// The most linear memory the element may grow to, bytes (a
    /// WebAssembly plugin's cap); `None`: it holds no memory worth
    /// accounting (native elements). A domain with a memory limit reserves
    /// this much for the instance ([`crate::Node::create_instance_in`]).
    fn memory_cap(&self) -> Option<u64> {
        None
    }

    /// Lower the element's memory cap to `bytes` (its domain has no more
    /// to give it): growth past it then fails inside the element, as an
    /// allocation failure. Refused when it already holds more.
    fn limit_memory(&mut self, bytes: u64) -> Result<(), ElementError> {
        let _ = bytes;
        Ok(())
    }

    /// Memory the element holds now, bytes.
    fn memory_bytes(&mut self) -> u64 {
        0
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

/// One handler of an element (Click's `add_handlers` entry): a name, its
/// access, and one line saying what it reads or does. A read handler is a
/// key of the element's report; a write handler is a control request (its
/// first word, or a configuration key).
///
/// On the wire (the API's class and instance views) a handler is the
/// array `[name, access, about]`, the form class documentation has always
/// had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handler {
    /// Name: a report key, a control verb or a configuration key.
    pub name: Cow<'static, str>,
    /// Read (report) or write (control, `set`).
    pub access: Access,
    /// One line.
    pub about: Cow<'static, str>,
}

impl Handler {
    /// A read handler (a key of the report).
    pub const fn read(name: &'static str, about: &'static str) -> Handler {
        Handler {
            name: Cow::Borrowed(name),
            access: Access::Read,
            about: Cow::Borrowed(about),
        }
    }

    /// A write handler (a control request or configuration key).
    pub const fn write(name: &'static str, about: &'static str) -> Handler {
        Handler {
            name: Cow::Borrowed(name),
            access: Access::Write,
            about: Cow::Borrowed(about),
        }
    }
}

impl serde::Serialize for Handler {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.name, self.access, &self.about).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Handler {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (name, access, about) = <(String, Access, String)>::deserialize(d)?;
        Ok(Handler {
            name: Cow::Owned(name),
            access,
            about: Cow::Owned(about),
        })
    }
}

/// Documentation of a class: what `weft fb ls` / the API show.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ClassDoc {
    /// One line.
    pub summary: String,
    /// Configuration keys and positional words.
    pub config: String,
    /// Handlers: the same list its elements give in [`Element::handlers`].
    pub handlers: Vec<Handler>,
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
    fn the_text_is_kept_as_written() {
        // The parsed form splits at commas, sorts and collapses keys; the
        // text does none of that.
        let a = Args::parse("block=5001,5002 b=2 b=1");
        assert_eq!(a.text(), "block=5001,5002 b=2 b=1");
        assert_eq!(a.get("block", 9), Some("5001"));
        assert_eq!(a.positional, vec!["5002"]);
        assert_eq!(a.get("b", 9), Some("1"));
        assert_eq!(a.to_string(), "block=5001,5002 b=2 b=1");
    }

    #[test]
    fn text_without_removes_whole_words_and_closes_up() {
        let w = |s: &str| Args::parse(s).text_without(&["on_fault", "max_faults"]);
        assert_eq!(w("a on_fault=pass b"), "a b");
        assert_eq!(w("on_fault=pass a"), "a");
        assert_eq!(w("a on_fault=pass"), "a");
        assert_eq!(w("a on_fault=pass max_faults=2"), "a");
        assert_eq!(w("on_fault=pass max_faults=2"), "");
        assert_eq!(
            w("  x=\"1, 2\"\ton_fault=drop  y=3,y=4 y=5\n"),
            "  x=\"1, 2\"\ty=3,y=4 y=5\n"
        );
        assert_eq!(
            w("a,on_fault=pass b"),
            "a,on_fault=pass b",
            "only white space separates host words"
        );
        assert_eq!(w(""), "");
        let a = Args::parse("max_faults=1 on_fault=drop x max_faults=5");
        assert_eq!(a.word_value("max_faults"), Some("5"), "the last one");
        assert_eq!(a.word_value("on_fault"), Some("drop"));
        assert_eq!(a.word_value("x"), None);
    }

    #[test]
    fn redaction_hides_secrets_in_either_reading() {
        let r = |s: &str| Args::parse(s).redacted();
        assert_eq!(r("x=1,key=00ff,y=2 z=3"), "x=1,key=<redacted> z=3");
        assert_eq!(r("psk=\"a b\" n=1"), "psk=<redacted> n=1");
        assert_eq!(r("monkey=1 key=2"), "monkey=1 key=<redacted>");
        assert_eq!(r("secret='x"), "secret=<redacted>");
        assert_eq!(r("passwords=1"), "passwords=1");
    }

    #[test]
    fn set_replaces_the_key_in_the_text() {
        // The parsed reading: commas separate.
        let a = Args::parse("x rate=2 burst=3,rate=4").with("rate", "9");
        assert_eq!(a.text(), "x burst=3 rate=9");
        assert_eq!(a.get("rate", 9), Some("9"));
        assert_eq!(Args::parse("rate=1,burst=2").with("rate", "5").text(), "burst=2 rate=5");
        assert_eq!(Args::parse("a, rate=1, b").with("rate", "5").text(), "a, b rate=5");
        assert_eq!(Args::parse("").with("k", "v").text(), "k=v");
        assert_eq!(Args::parse("  ").with("k", "v").text(), "k=v");
        // The text-as-written reading: a comma belongs to the value.
        let a = Args::parse("block=5001,5002 x").with_word("block", "6000");
        assert_eq!(a.text(), "x block=6000");
        let a = Args::parse("a,block=1 block=2").with_word("block", "3");
        assert_eq!(a.text(), "a,block=1 block=3");
    }

    proptest::proptest! {
        /// Any text: no panic; removing words keeps every other word in
        /// order; `with`/`with_word` leave exactly one `key=value` word
        /// of that key, last; redaction shows no secret value.
        #[test]
        fn text_operations_on_any_text(t in "[a-z=, \t\n\"'é]{0,40}", v in "[a-z0-9]{1,4}") {
            let a = Args::parse(&t);
            let keep = |w: &&str| !w.starts_with("on_fault=") && !w.starts_with("k=");
            let cut = a.text_without(&["on_fault", "k"]);
            proptest::prop_assert_eq!(
                cut.split_whitespace().collect::<Vec<_>>(),
                t.split_whitespace().filter(keep).collect::<Vec<_>>()
            );
            for b in [a.with("k", &v), a.with_word("k", &v)] {
                let kv = format!("k={v}");
                let last = b.text().split_whitespace().last();
                proptest::prop_assert_eq!(last, Some(kv.as_str()));
                proptest::prop_assert_eq!(b.get("k", usize::MAX), Some(v.as_str()));
            }
            let r = Args::parse(&format!("{t} key=SECRET,x psk=\"SE CRET\"")).redacted();
            proptest::prop_assert!(!r.contains("SECRET") && !r.contains("SE CRET"), "{}", r);
        }
    }

    #[test]
    fn a_handler_is_a_name_access_about_array_on_the_wire() {
        let h = Handler::read("packets", "packets seen");
        let j = serde_json::to_value(&h).unwrap();
        assert_eq!(j, serde_json::json!(["packets", "read", "packets seen"]));
        assert_eq!(serde_json::from_value::<Handler>(j).unwrap(), h);
        let w: Handler = serde_json::from_str(r#"["reset","write","zero"]"#).unwrap();
        assert_eq!(w, Handler::write("reset", "zero"));
        assert!(serde_json::from_str::<Handler>(r#"["reset","erase","zero"]"#).is_err());
    }

    #[test]
    fn instance_id_parse() {
        assert_eq!("#3".parse::<InstanceId>().unwrap(), InstanceId(3));
        assert_eq!("ratelimit#12".parse::<InstanceId>().unwrap(), InstanceId(12));
        assert_eq!("7".parse::<InstanceId>().unwrap(), InstanceId(7));
        assert!("#x".parse::<InstanceId>().is_err());
    }
}
