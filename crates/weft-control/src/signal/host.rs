//! A requester on an ordinary Linux host: [`Requester`] drives a
//! (non-capable) [`weft_signal::Agent`] over a [`RouterAlertSocket`] and
//! the wall clock — what `weft signal setup|remove|probe|trigger` and the
//! end-to-end tests use to signal from a host toward a destination.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_io::router_alert::{source_toward, RouterAlertSocket};
use weft_repo::SecretKey;
use weft_signal::{Agent, AgentConfig, Entry, Event, NullEnv, Request, RequestError, Signed, Signer, WireError};

/// A `weft keygen` key as a request signer.
pub struct KeySigner(pub SecretKey);

impl Signer for KeySigner {
    fn public_key(&self) -> [u8; 32] {
        self.0.public().to_bytes()
    }
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg)
    }
}

/// The answer to one request: the response's flags and the stack, first
/// node first.
#[derive(Clone, Debug)]
pub struct Answer {
    /// [`weft_signal::wire::ResponseMsg`]'s flags.
    pub flags: u8,
    /// Entries in path order.
    pub stack: Vec<Entry>,
    /// From sending to the answer.
    pub elapsed: Duration,
}

/// Error of the [`Requester`].
#[derive(Debug, thiserror::Error)]
pub enum RequesterError {
    /// A socket call failed.
    #[error("{0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    /// The request does not encode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The agent refused to send it.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// A requester. See the module documentation.
pub struct Requester {
    agent: Agent,
    sock: RouterAlertSocket,
    start: Instant,
    events: Vec<(Event, Instant)>,
    sent: Vec<([u8; 16], Instant)>,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester")
            .field("sock", &self.sock)
            .finish_non_exhaustive()
    }
}

impl Requester {
    /// A requester sending from an ephemeral UDP port of the family of
    /// `toward` (its responses come back to that port).
    pub fn new(toward: IpAddr) -> Result<Requester, RequesterError> {
        let bind: SocketAddr = if toward.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = RouterAlertSocket::bind(bind).map_err(|e| RequesterError::Io("bind", e))?;
        let origin = source_toward(toward).map_err(|e| RequesterError::Io("route", e))?;
        let mut cfg = AgentConfig::requester(vec![origin]);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        cfg.unix_offset_ns = unix;
        let mut seed = [0u8; 32];
        let _ = getrandom::fill(&mut seed);
        cfg.nonce_seed = seed;
        cfg.initial_seq = u32::from_le_bytes([seed[0], seed[1], seed[2], seed[3]]);
        Ok(Requester {
            agent: Agent::new(cfg),
            sock,
            start: Instant::now(),
            events: Vec::new(),
            sent: Vec::new(),
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The address requests go out from (the flow's origin).
    pub fn origin(&self) -> IpAddr {
        self.agent.config().addresses[0]
    }

    /// `req` with a fresh nonce and the time, signed.
    pub fn sign(&mut self, req: Request, signer: &dyn Signer) -> Result<Signed, RequesterError> {
        let now = self.now();
        Ok(self.agent.sign(now, req, signer)?)
    }

    /// Send a signed request; its answer comes from [`Requester::wait`].
    pub fn send(&mut self, signed: Signed) -> Result<(), RequesterError> {
        let now = self.now();
        let nonce = signed.request().nonce;
        let origin = self.origin();
        self.agent.send(now, signed, origin, &mut NullEnv)?;
        self.sent.push((nonce, Instant::now()));
        self.flush()
    }

    /// Keep the last SETUP of `session` refreshed every `every`.
    pub fn keep_refreshed(
        &mut self,
        session: weft_signal::SessionId,
        every: Duration,
        signer: weft_signal::BoxSigner,
    ) -> Result<(), RequesterError> {
        let now = self.now();
        self.agent
            .keep_refreshed(now, session, every.as_nanos() as u64, signer)?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RequesterError> {
        while let Some(t) = self.agent.poll_transmit() {
            let dst = SocketAddr::new(t.dst, t.dst_port);
            self.sock
                .send_to(&t.payload, dst, t.router_alert)
                .map_err(|e| RequesterError::Io("send", e))?;
        }
        while let Some(e) = self.agent.poll_event() {
            self.events.push((e, Instant::now()));
        }
        Ok(())
    }

    /// Run the agent until `deadline`: receive, time out, send.
    pub fn run_until(&mut self, deadline: Instant) -> Result<(), RequesterError> {
        let mut buf = vec![0u8; 2048];
        loop {
            let now_i = Instant::now();
            if now_i >= deadline {
                return Ok(());
            }
            let mut wait = deadline - now_i;
            if let Some(t) = self.agent.poll_timeout() {
                let due = Duration::from_nanos(t.saturating_sub(self.now()));
                wait = wait.min(due);
            }
            let got = self
                .sock
                .recv_from(&mut buf, wait)
                .map_err(|e| RequesterError::Io("receive", e))?;
            let now = self.now();
            if let Some((n, from)) = got {
                let to = self.origin();
                self.agent.handle_datagram(now, from, to, &buf[..n], &mut NullEnv);
            }
            if self.agent.poll_timeout().is_some_and(|t| t <= now) {
                self.agent.handle_timeout(now, &mut NullEnv);
            }
            self.flush()?;
        }
    }

    /// Wait at most `timeout` for the answer to the request with `nonce`.
    pub fn wait(&mut self, nonce: [u8; 16], timeout: Duration) -> Result<Option<Answer>, RequesterError> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(a) = self.take(nonce) {
                return Ok(Some(a));
            }
            if Instant::now() >= end {
                return Ok(None);
            }
            let step = (Instant::now() + Duration::from_millis(50)).min(end);
            self.run_until(step)?;
        }
    }

    fn take(&mut self, nonce: [u8; 16]) -> Option<Answer> {
        let i = self
            .events
            .iter()
            .position(|(e, _)| matches!(e, Event::Response { nonce: n, .. } if *n == nonce))?;
        let (Event::Response { flags, stack, .. }, at) = self.events.remove(i) else {
            return None;
        };
        let elapsed = self
            .sent
            .iter()
            .find(|(n, _)| *n == nonce)
            .map(|(_, t)| at.duration_since(*t))
            .unwrap_or_default();
        Some(Answer { flags, stack, elapsed })
    }

    /// Answers that came for requests nobody waits for (refreshes).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events).into_iter().map(|(e, _)| e).collect()
    }
}
