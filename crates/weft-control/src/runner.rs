//! [`NodeRunner`]: owns a [`Node`] on a dedicated thread; [`NodeHandle`]s
//! (cheap to clone, usable from async and blocking code) send it closures.
//!
//! Commands are applied between batches, on the node's own thread, so the
//! data path takes no locks: the control plane never touches node state from
//! another thread (DESIGN section 4: the node handle is the only way in).
//!
//! The loop: run queued commands, let the daemons and the node catch up
//! ([`Node::tick`]), and wait for the next command until the node or a
//! daemon next needs time ([`Node::poll_timeout`], the PBR agent's): the
//! node is driven sans-IO and says when to wake it, so an idle node
//! sleeps instead of ticking on a grid. The clock is nanoseconds since the
//! thread started ([`crate::clock`]).
//!
//! A runner started with [`NodeRunner::spawn_with_io`] also owns the node's
//! port drivers (`weft_io`: VXLAN, AF_PACKET) and the optional TUN punt, and
//! polls them on the same thread: receive up to [`IO_BATCH`] frames per
//! port → [`Node::receive`] → tick → punt / inject node-local traffic →
//! [`Node::take_tx`] → send. While frames flow it busy-polls; after
//! [`SPIN`] without work it sleeps in `poll(2)` on the ports' descriptors
//! and a wake-up socket that [`NodeHandle`] writes to after queueing a
//! command, until the node's or a daemon's next deadline or the next link
//! read, whichever comes first. Link state is read a few times a second and
//! reported with [`Node::set_port_up`]; a read that fails leaves the state
//! as it was.
//!
//! Protocol [`Daemons`] (the PBR agent) live on the same thread: polled
//! after each round of receive, before the tick and the punt, so they take
//! their own node-local packets and their timers run on the node's clock.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use weft_dataplane::Node;
use weft_io::{IoCounters, PortDriver};
use weft_packet::PortId;

/// Frames taken from one port per round (a NIC driver's NAPI budget is 64;
/// 32 keeps the batch in L1 and the other ports served).
pub const IO_BATCH: usize = 32;
/// How long the I/O loop keeps polling after the last frame before it
/// sleeps in `poll(2)`: a wake-up costs tens of microseconds, so a short
/// spin keeps a steady flow from paying one per batch.
pub const SPIN: Duration = Duration::from_micros(200);
/// How often link state is read.
pub const LINK_POLL: Duration = Duration::from_millis(250);

type Command = Box<dyn FnOnce(&mut Node, &mut Daemons) + Send>;

enum Msg {
    Run(Command),
    Stop,
}

/// Error returned by [`NodeHandle::call`] when the node thread is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node has stopped")]
pub struct NodeStopped;

/// Error returned by [`NodeHandle::call_pbr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoPbr {
    /// The node thread is gone.
    #[error("the node has stopped")]
    Stopped,
    /// The node does not take part in explicit paths.
    #[error("PBR is not enabled on this node (add a [pbr] section to its configuration)")]
    Disabled,
}

/// Error returned by [`NodeHandle::call_signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoSignal {
    /// The node thread is gone.
    #[error("the node has stopped")]
    Stopped,
    /// The node does not take part in on-path signaling.
    #[error("signaling is not enabled on this node (add a [signal] section to its configuration)")]
    Disabled,
}

/// Protocol daemons that live on the node's thread beside it (sans-IO
/// state machines driven with the node's clock after each round of I/O):
/// the PBR agent and the signaling agent.
pub struct Daemons {
    start: Instant,
    /// The explicit-path daemon, when enabled ([`NodeHandle::enable_pbr`]).
    pub pbr: Option<crate::pbr::PbrNode>,
    /// The on-path signaling daemon, when enabled
    /// ([`NodeHandle::enable_signal`]).
    pub signal: Option<crate::signal::SignalNode>,
    /// The NodeOS service (channels for programs outside the node), when
    /// enabled ([`NodeHandle::enable_nodeos_blocking`]).
    pub nodeos: Option<crate::nodeos::NodeOsService>,
}

impl Daemons {
    fn new(start: Instant) -> Daemons {
        Daemons {
            start,
            pbr: None,
            signal: None,
            nodeos: None,
        }
    }

    /// Nanoseconds on the node thread's clock: the time the node is given.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The same clock in the PBR agent's milliseconds ([`crate::clock`]).
    pub fn now_ms(&self) -> u64 {
        crate::clock::pbr_now(self.now_ns())
    }

    /// Let every daemon take its packets, run its timers and send, at
    /// `now_ns`.
    fn poll(&mut self, node: &mut Node, now_ns: u64) {
        if let Some(p) = self.pbr.as_mut() {
            p.poll(node, crate::clock::pbr_now(now_ns));
        }
        if let Some(s) = self.signal.as_mut() {
            s.poll(node, now_ns);
        }
        if let Some(n) = self.nodeos.as_mut() {
            n.poll(node, now_ns);
        }
    }

    /// When a daemon next needs [`Daemons::poll`], datagrams aside (ns).
    fn poll_timeout(&self) -> Option<u64> {
        let pbr = self
            .pbr
            .as_ref()
            .and_then(|p| p.poll_timeout().map(crate::clock::pbr_due));
        let nodeos = self.nodeos.as_ref().and_then(|n| n.poll_timeout());
        earliest(
            earliest(pbr, self.signal.as_ref().and_then(|s| s.poll_timeout())),
            nodeos,
        )
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When the node or one of its daemons next needs time (ns).
fn next_deadline(node: &Node, daemons: &Daemons) -> Option<u64> {
    earliest(node.poll_timeout(), daemons.poll_timeout())
}

/// Let the daemons and the node catch up at `now`: the daemons take their
/// packets and run due timers, then the node ticks if anything is due
/// (what the daemons sent is due at once).
fn catch_up(node: &mut Node, daemons: &mut Daemons, now: u64) {
    daemons.poll(node, now);
    if node.poll_timeout().is_some_and(|t| t <= now) {
        node.tick(now);
    }
}

/// A port's I/O counters as last published by the runner (twice a second).
#[derive(Clone, Debug)]
pub struct PortIo {
    /// The node's port name.
    pub port: String,
    /// `vxlan`, `afpacket`, `tun` (the punt).
    pub kind: &'static str,
    /// Where it is attached.
    pub describe: String,
    /// The driver's counters.
    pub counters: IoCounters,
}

/// A cloneable handle to a node running on its own thread.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Msg>,
    /// Written to after a command is queued, to wake an I/O loop that
    /// sleeps in `poll(2)`.
    wake: Option<Arc<UnixDatagram>>,
    io: Arc<Mutex<Vec<PortIo>>>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeHandle")
    }
}

impl NodeHandle {
    /// Run `f` on the node between batches and return its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, NodeStopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut Node) -> R + Send + 'static,
    {
        self.call_daemons(move |n, _| f(n)).await
    }

    /// Run `f` on the node and its daemons between batches.
    pub async fn call_daemons<R, F>(&self, f: F) -> Result<R, NodeStopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut Node, &mut Daemons) -> R + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Run(Box::new(move |n: &mut Node, d: &mut Daemons| {
                // The caller may have gone away (a dropped HTTP request); the
                // command has been applied all the same.
                let _ = tx.send(f(n, d));
            })))
            .map_err(|_| NodeStopped)?;
        self.wake();
        rx.await.map_err(|_| NodeStopped)
    }

    /// Run `f` on the node and its PBR daemon (with the node thread's clock
    /// in milliseconds).
    pub async fn call_pbr<R, F>(&self, f: F) -> Result<R, NoPbr>
    where
        R: Send + 'static,
        F: FnOnce(&mut Node, &mut crate::pbr::PbrNode, u64) -> R + Send + 'static,
    {
        self.call_daemons(move |n, d| {
            let now = d.now_ms();
            d.pbr.as_mut().map(|p| f(n, p, now)).ok_or(NoPbr::Disabled)
        })
        .await
        .map_err(|_| NoPbr::Stopped)?
    }

    /// Start the node's PBR daemon (it listens on UDP 7077 from now on).
    pub async fn enable_pbr(&self, cfg: crate::pbr::PbrConfig) -> Result<(), NodeStopped> {
        self.call_daemons(move |n, d| {
            if d.pbr.is_none() {
                d.pbr = Some(crate::pbr::PbrNode::new(n, cfg));
            }
        })
        .await
    }

    /// Run `f` on the node and its signaling daemon (with the node thread's
    /// clock in nanoseconds).
    pub async fn call_signal<R, F>(&self, f: F) -> Result<R, NoSignal>
    where
        R: Send + 'static,
        F: FnOnce(&mut Node, &mut crate::signal::SignalNode, u64) -> R + Send + 'static,
    {
        self.call_daemons(move |n, d| {
            let now = d.now_ns();
            d.signal.as_mut().map(|s| f(n, s, now)).ok_or(NoSignal::Disabled)
        })
        .await
        .map_err(|_| NoSignal::Stopped)?
    }

    /// Start the node's signaling daemon, built by `make` on the node
    /// thread at its clock (it listens on UDP 270 from now on).
    pub async fn enable_signal<F>(&self, make: F) -> Result<(), NodeStopped>
    where
        F: FnOnce(&mut Node, u64) -> crate::signal::SignalNode + Send + 'static,
    {
        self.call_daemons(move |n, d| {
            if d.signal.is_none() {
                let now = d.now_ns();
                d.signal = Some(make(n, now));
            }
        })
        .await
    }

    /// Start the NodeOS service on the node's thread (sockets in
    /// `cfg.dir`); a second call leaves the running one alone. Blocking.
    pub fn enable_nodeos_blocking(
        &self,
        cfg: crate::nodeos::NodeOsConfig,
    ) -> Result<Result<(), crate::nodeos::StartError>, NodeStopped> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Msg::Run(Box::new(move |n: &mut Node, d: &mut Daemons| {
                let r = if d.nodeos.is_none() {
                    crate::nodeos::NodeOsService::start(n, cfg).map(|s| d.nodeos = Some(s))
                } else {
                    Ok(())
                };
                let _ = tx.send(r);
            })))
            .map_err(|_| NodeStopped)?;
        self.wake();
        rx.recv().map_err(|_| NodeStopped)
    }

    /// Have the node thread run its daemons soon (a fetch finished) without
    /// waiting for anything.
    pub fn nudge(&self) {
        if self
            .tx
            .send(Msg::Run(Box::new(|_: &mut Node, _: &mut Daemons| {})))
            .is_ok()
        {
            self.wake();
        }
    }

    /// [`NodeHandle::call`] for blocking code (never from inside an async
    /// runtime's worker).
    pub fn call_blocking<R, F>(&self, f: F) -> Result<R, NodeStopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut Node) -> R + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Run(Box::new(move |n: &mut Node, _: &mut Daemons| {
                let _ = tx.send(f(n));
            })))
            .map_err(|_| NodeStopped)?;
        self.wake();
        rx.blocking_recv().map_err(|_| NodeStopped)
    }

    fn wake(&self) {
        if let Some(w) = &self.wake {
            // Non-blocking; a full socket means a wake-up is pending anyway.
            let _ = w.send(&[1]);
        }
    }

    /// The port drivers' I/O counters (empty for a node without drivers).
    pub fn io_counters(&self) -> Vec<PortIo> {
        self.io.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The clock the runner charges domains' CPU with: the node's thread runs
/// to completion on its core, so the time a batch or a round takes on a
/// monotonic clock is the CPU it used (a thread CPU clock would also count
/// nothing while the kernel sends, which is plain forwarding's work).
fn wall_clock() -> weft_dataplane::node::CpuClock {
    let base = std::time::Instant::now();
    Box::new(move || base.elapsed().as_nanos() as u64)
}

/// Owns a node's thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct NodeRunner {
    handle: NodeHandle,
    thread: Option<JoinHandle<Node>>,
}

impl NodeRunner {
    /// Start `node` on a new thread named after it.
    pub fn spawn(mut node: Node) -> std::io::Result<NodeRunner> {
        node.set_cpu_clock(wall_clock());
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread = std::thread::Builder::new()
            .name(format!("weft-node-{}", node.name()))
            .spawn(move || run(node, rx))?;
        Ok(NodeRunner {
            handle: NodeHandle {
                tx,
                wake: None,
                io: Arc::default(),
            },
            thread: Some(thread),
        })
    }

    /// Start `node` on a new thread that also polls its port drivers (each
    /// attached to the node port it names) and, if given, the TUN punt for
    /// node-local traffic.
    pub fn spawn_with_io(
        mut node: Node,
        ports: weft_io::Drivers,
        punt: Option<weft_io::tun::TunPunt>,
    ) -> std::io::Result<NodeRunner> {
        node.set_cpu_clock(wall_clock());
        let (tx, rx) = mpsc::channel::<Msg>();
        let (wake_tx, wake_rx) = UnixDatagram::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let io: Arc<Mutex<Vec<PortIo>>> = Arc::default();
        let io2 = io.clone();
        let thread = std::thread::Builder::new()
            .name(format!("weft-node-{}", node.name()))
            .spawn(move || run_io(node, rx, wake_rx, ports, punt, io2))?;
        Ok(NodeRunner {
            handle: NodeHandle {
                tx,
                wake: Some(Arc::new(wake_tx)),
                io,
            },
            thread: Some(thread),
        })
    }

    /// A handle to send commands with.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Stop the thread after the commands already queued, and take the node
    /// back.
    pub fn stop(mut self) -> Option<Node> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Option<Node> {
        let t = self.thread.take()?;
        let _ = self.handle.tx.send(Msg::Stop);
        self.handle.wake();
        match t.join() {
            Ok(n) => Some(n),
            Err(_) => {
                tracing::error!("the node thread panicked");
                None
            }
        }
    }
}

impl Drop for NodeRunner {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn run(mut node: Node, rx: mpsc::Receiver<Msg>) -> Node {
    let start = Instant::now();
    let mut daemons = Daemons::new(start);
    tracing::debug!(node = node.name(), "node thread started");
    loop {
        let now = daemons.now_ns();
        let msg = match next_deadline(&node, &daemons) {
            Some(t) => rx.recv_timeout(Duration::from_nanos(t.saturating_sub(now))),
            // Nothing is due however long we wait: sleep until a command.
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(Msg::Run(cmd)) => {
                cmd(&mut node, &mut daemons);
                // Drain what else is queued before catching up, so a burst
                // of CLI commands is handled in one round.
                loop {
                    match rx.try_recv() {
                        Ok(Msg::Run(cmd)) => cmd(&mut node, &mut daemons),
                        Ok(Msg::Stop) | Err(mpsc::TryRecvError::Disconnected) => return node,
                        Err(mpsc::TryRecvError::Empty) => break,
                    }
                }
            }
            Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return node,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = daemons.now_ns();
        catch_up(&mut node, &mut daemons, now);
    }
}

fn publish_io(
    node: &Node,
    ports: &[(PortId, Box<dyn PortDriver>)],
    punt: Option<&weft_io::tun::TunPunt>,
    io: &Mutex<Vec<PortIo>>,
) {
    let names = node.ports();
    let mut v: Vec<PortIo> = ports
        .iter()
        .map(|(pid, d)| PortIo {
            port: names
                .get(*pid as usize)
                .map(|p| p.cfg.name.clone())
                .unwrap_or_else(|| pid.to_string()),
            kind: d.kind(),
            describe: d.describe(),
            counters: d.counters().clone(),
        })
        .collect();
    if let Some(t) = punt {
        v.push(PortIo {
            port: t.name().to_string(),
            kind: "tun",
            describe: format!("tun {} (node-local punt)", t.name()),
            counters: t.counters().clone(),
        });
    }
    if let Ok(mut g) = io.lock() {
        *g = v;
    }
}

/// The loop of a node with port drivers (see the module documentation).
fn run_io(
    mut node: Node,
    rx: mpsc::Receiver<Msg>,
    wake: UnixDatagram,
    mut ports: weft_io::Drivers,
    mut punt: Option<weft_io::tun::TunPunt>,
    io: Arc<Mutex<Vec<PortIo>>>,
) -> Node {
    let start = Instant::now();
    let mut daemons = Daemons::new(start);
    let mut fds: Vec<std::os::fd::RawFd> = ports.iter().filter_map(|(_, d)| d.fd()).collect();
    if let Some(t) = &punt {
        fds.push(t.fd());
    }
    fds.push(wake.as_raw_fd());
    let mut link: Vec<Option<bool>> = vec![None; ports.len()];
    let mut batch = Vec::with_capacity(IO_BATCH);
    let mut out = Vec::with_capacity(IO_BATCH * 2);
    let mut last_work = Instant::now();
    let mut last_link = start - LINK_POLL;
    let mut link_errors: Option<Instant> = None;
    let mut last_publish = start;
    let mut wake_buf = [0u8; 64];
    for (_, d) in &ports {
        tracing::info!(node = node.name(), port = %d.describe(), "port driver attached");
    }
    loop {
        loop {
            match rx.try_recv() {
                Ok(Msg::Run(cmd)) => cmd(&mut node, &mut daemons),
                Ok(Msg::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                    publish_io(&node, &ports, punt.as_ref(), &io);
                    return node;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        let now = daemons.now_ns();
        let mut work = 0;
        for (pid, d) in ports.iter_mut() {
            let n = d.recv(&mut node, &mut batch, IO_BATCH);
            if n > 0 {
                node.receive(now, *pid, &mut batch);
                work += n;
            }
        }
        if let Some(t) = punt.as_mut() {
            work += t.inject(&mut node, IO_BATCH);
        }
        // Daemons take their packets before the punt takes the rest.
        catch_up(&mut node, &mut daemons, now);
        if let Some(t) = punt.as_mut() {
            t.punt(&mut node);
        }
        for (pid, d) in ports.iter_mut() {
            node.take_tx(*pid, &mut out);
            if !out.is_empty() {
                d.send(&mut node, &mut out);
            }
        }
        let t = Instant::now();
        if t.duration_since(last_link) >= LINK_POLL {
            last_link = t;
            for (i, (pid, d)) in ports.iter_mut().enumerate() {
                let up = match d.link_up() {
                    None => continue,
                    Some(Ok(up)) => up,
                    // A failed read says nothing about the link: keep what
                    // we knew (reporting it down would stop forwarding).
                    Some(Err(e)) => {
                        if link_errors.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10)) {
                            link_errors = Some(t);
                            tracing::warn!(node = node.name(), port = %d.describe(), error = %e, "cannot read the link state; keeping the last known");
                        }
                        continue;
                    }
                };
                if link[i] != Some(up) {
                    if link[i].is_some() || !up {
                        tracing::warn!(node = node.name(), port = %d.describe(), up, "link {}", if up { "up" } else { "down" });
                    }
                    link[i] = Some(up);
                    let _ = node.set_port_up(*pid, up);
                }
            }
        }
        if t.duration_since(last_publish) >= Duration::from_millis(500) {
            last_publish = t;
            publish_io(&node, &ports, punt.as_ref(), &io);
        }
        if work > 0 {
            last_work = t;
        } else if t.duration_since(last_work) >= SPIN && !ports.iter().any(|(_, d)| d.ready()) {
            // (A ring block handed over while we spun would make poll(2)
            // return at once; the check saves the call.)
            // Until the node or a daemon needs time, or the next link read.
            let link_due = LINK_POLL.saturating_sub(t.duration_since(last_link));
            let wait = match next_deadline(&node, &daemons) {
                Some(d) => link_due.min(Duration::from_nanos(d.saturating_sub(daemons.now_ns()))),
                None => link_due,
            };
            // Rounded up: a wake-up before the deadline would find nothing due.
            let wait_ms = wait.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            if let Err(e) = weft_io::wait_readable(&fds, wait_ms) {
                tracing::warn!(error = %e, "poll");
                std::thread::sleep(Duration::from_millis(1));
            }
            while wake.recv(&mut wake_buf).is_ok() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_run_on_the_node_thread() {
        let r = NodeRunner::spawn(Node::new("t")).unwrap();
        let h = r.handle();
        let name = h.call_blocking(|n| n.name().to_string()).unwrap();
        assert_eq!(name, "t");
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let n = rt.block_on(h.call(|n| n.routes().len())).unwrap();
        assert_eq!(n, 0);
        let node = r.stop().unwrap();
        assert_eq!(node.name(), "t");
        assert_eq!(h.call_blocking(|_| ()), Err(NodeStopped));
    }
}
