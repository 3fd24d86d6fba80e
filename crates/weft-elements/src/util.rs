//! Small helpers shared by the elements: argument checking, documentation
//! rows, packet/byte tallies.

use serde::{Deserialize, Serialize};
use weft_dataplane::{Args, ClassDoc, ElementError, Handler};

/// Reject keys and positional words a class does not know, so a typo
/// (`rat=65536`) is an error instead of a silently ignored setting.
pub(crate) fn check_args(args: &Args, class: &str, keys: &[&str], positional: usize) -> Result<(), ElementError> {
    if let Some(k) = args.named.keys().find(|k| !keys.contains(&k.as_str())) {
        let known = if keys.is_empty() {
            "none".to_string()
        } else {
            keys.join(", ")
        };
        return Err(ElementError::Config(format!(
            "{class}: unknown key {k:?} (known keys: {known})"
        )));
    }
    if let Some(w) = args.positional.get(positional) {
        return Err(ElementError::Config(format!("{class}: unexpected word {w:?}")));
    }
    Ok(())
}

/// A `u64` argument (named `key` or positional `pos`), with the class in the
/// error.
pub(crate) fn get_u64(args: &Args, class: &str, key: &str, pos: usize) -> Result<Option<u64>, ElementError> {
    args.get_parsed::<u64>(key, pos)
        .map_err(|e| ElementError::Config(format!("{class}: {e}")))
}

/// A port number argument.
pub(crate) fn get_port(args: &Args, class: &str, key: &str, pos: usize) -> Result<Option<u16>, ElementError> {
    args.get_parsed::<u16>(key, pos)
        .map_err(|e| ElementError::Config(format!("{class}: {e}")))
}

/// A control request that is `reset` (case-insensitive, surrounding blanks
/// ignored).
pub(crate) fn is_reset(request: &str) -> bool {
    request.trim().eq_ignore_ascii_case("reset")
}

/// The error for a control request an element without configuration does
/// not understand.
pub(crate) fn only_reset(class: &str, request: &str) -> ElementError {
    ElementError::Control(format!(
        "{class}: unknown request {:?} (expected `reset`)",
        request.trim()
    ))
}

/// A [`ClassDoc`] from string slices and the class's handlers.
pub(crate) fn doc(summary: &str, config: &str, handlers: &[Handler]) -> ClassDoc {
    ClassDoc {
        summary: summary.to_string(),
        config: config.to_string(),
        handlers: handlers.to_vec(),
    }
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Packets.
    pub packets: u64,
    /// Frame bytes (Ethernet header included).
    pub bytes: u64,
}

impl Tally {
    /// Count one packet of `len` bytes. Counters wrap rather than panic: an
    /// imported state may start them anywhere.
    #[inline]
    pub(crate) fn add(&mut self, len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(len as u64);
    }
}
