//! A test server module (WASI HTTP proxy world) that does what the path
//! says, so the host's bounds can be tested:
//!
//! * `/ok` — `200 ok`; `/count` — a counter kept in the instance;
//! * `/spin` — loops forever (the CPU budget);
//! * `/sleep` — waits forever on a timer, using no CPU (the request timeout);
//! * `/grow` — allocates 1 MiB after 1 MiB and keeps it (the memory cap);
//! * `/noanswer` — returns without a response;
//! * `/fetch/HOST:PORT/PATH` — an outgoing request to `http://HOST:PORT/PATH`
//!   (the egress policy), answered with the origin's status and body, or
//!   `502` and the error.

use std::cell::Cell;
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

struct Srv;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn reply(out: ResponseOutparam, status: u16, body: &[u8]) {
    let r = OutgoingResponse::new(Fields::new());
    let _ = r.set_status_code(status);
    let b = r.body().expect("body");
    ResponseOutparam::set(out, Ok(r));
    let s = b.write().expect("stream");
    for c in body.chunks(4096) {
        let _ = s.blocking_write_and_flush(c);
    }
    drop(s);
    let _ = OutgoingBody::finish(b, None);
}

fn fetch(target: &str) -> Result<(u16, Vec<u8>), String> {
    let (auth, path) = target.split_once('/').unwrap_or((target, ""));
    let req = OutgoingRequest::new(Fields::new());
    let _ = req.set_scheme(Some(&Scheme::Http));
    let _ = req.set_authority(Some(auth));
    let _ = req.set_path_with_query(Some(&format!("/{path}")));
    let f = wasi::http::outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    f.subscribe().block();
    let resp = f
        .get()
        .ok_or("no response")?
        .map_err(|_| "taken")?
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = resp.consume().map_err(|_| "body")?;
    let s = body.stream().map_err(|_| "stream")?;
    let mut v = Vec::new();
    while let Ok(c) = s.blocking_read(65536) {
        v.extend_from_slice(&c);
    }
    Ok((status, v))
}

impl Guest for Srv {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let path = req.path_with_query().unwrap_or_default();
        match path.as_str() {
            "/ok" => reply(out, 200, b"ok"),
            "/count" => {
                let n = COUNT.with(|c| {
                    c.set(c.get() + 1);
                    c.get()
                });
                reply(out, 200, n.to_string().as_bytes())
            }
            "/spin" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "/sleep" => loop {
                wasi::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000).block();
            },
            "/grow" => {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                loop {
                    keep.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "/noanswer" => drop(out),
            p if p.starts_with("/fetch/") => match fetch(&p["/fetch/".len()..]) {
                Ok((status, body)) => reply(out, status, &body),
                Err(e) => reply(out, 502, e.as_bytes()),
            },
            _ => reply(out, 404, b"not found"),
        }
    }
}

wasi::http::proxy::export!(Srv);
