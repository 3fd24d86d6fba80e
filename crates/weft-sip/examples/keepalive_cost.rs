//! What KeepAlive's SIP inspection costs per datagram, natively (the wasm
//! module's frames are opaque to `perf`): `weft_sip::keepalive::answer` on
//! the REGISTER `weft bench --only netserv` offers at 340 bytes, on keep-
//! alives, and a full `Message::parse` of the REGISTER (what `answer` did
//! for every datagram before it judged only keep-alive candidates).
//!
//! `cargo run --release -p weft-sip --example keepalive_cost [ITERATIONS]`

use std::hint::black_box;
use std::time::Instant;
use weft_sip::keepalive::answer;
use weft_sip::Message;

/// A REGISTER padded (an X-Pad header) to `len` bytes, as the benchmark's.
fn register(len: usize) -> Vec<u8> {
    let head = "REGISTER sip:10.0.1.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:40000;branch=z9hG4bK-1\r\nFrom: <sip:u@10.0.1.2>;tag=1\r\nTo: <sip:u@10.0.1.2>\r\nCall-ID: 1@10.0.0.2\r\nCSeq: 1 REGISTER\r\nX-Pad: ";
    let tail = "\r\nContent-Length: 0\r\n\r\n";
    let mut m = head.as_bytes().to_vec();
    m.resize(len - tail.len(), b'a');
    m.extend_from_slice(tail.as_bytes());
    m
}

fn time(name: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    println!("{name:<40} {:>8.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let reg = register(340 - 42);
    let options: &[u8] =
        b"OPTIONS sip:s SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.2:6000;branch=z9hG4bK-9\r\nFrom: <sip:ua@x>;tag=1\r\nTo: <sip:s@x>\r\nCall-ID: c9\r\nCSeq: 9 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let notify: &[u8] = b"NOTIFY sip:srv@10.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.2:6000;branch=z9hG4bK-7\r\nFrom: <sip:ua@x>;tag=1\r\nTo: <sip:srv@x>\r\nCall-ID: c7\r\nCSeq: 3 NOTIFY\r\nEvent: keep-alive\r\nContent-Length: 0\r\n\r\n";
    let mut out = vec![0u8; weft_sip::msg::MAX_LEN];
    println!("per call, {n} calls:");
    time("answer(REGISTER, 298 B)", n, || {
        black_box(answer(black_box(&reg), &mut out)).ok();
    });
    time("Message::parse(REGISTER, 298 B)", n, || {
        black_box(Message::parse(black_box(&reg))).ok();
    });
    time("answer(OPTIONS) -> 200 OK", n, || {
        black_box(answer(black_box(options), &mut out)).ok();
    });
    time("answer(NOTIFY keep-alive) -> 200 OK", n, || {
        black_box(answer(black_box(notify), &mut out)).ok();
    });
    time("answer(CRLF ping) -> pong", n, || {
        black_box(answer(black_box(b"\r\n\r\n"), &mut out)).ok();
    });
}
