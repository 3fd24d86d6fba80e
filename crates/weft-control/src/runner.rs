//! [`NodeRunner`]: owns a [`Node`] on a dedicated thread; [`NodeHandle`]s
//! (cheap to clone, usable from async and blocking code) send it closures.
//!
//! Commands are applied between batches, on the node's own thread, so the
//! data path takes no locks: the control plane never touches node state from
//! another thread (DESIGN section 4: the node handle is the only way in).
//!
//! The loop: run queued commands, advance the node's clock with
//! [`Node::tick`], and wait for the next command at most [`TICK`]. Port
//! drivers (VXLAN, AF_PACKET) will be polled here too once a node process
//! has I/O backends; until then there is nothing else to do.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use weft_dataplane::Node;

/// How long the loop sleeps waiting for a command before it ticks anyway.
/// Neighbour retries are counted in seconds (see `weft_dataplane::neigh`), so
/// 10 ms is far finer than they need and costs nothing measurable.
pub const TICK: Duration = Duration::from_millis(10);

type Command = Box<dyn FnOnce(&mut Node) + Send>;

enum Msg {
    Run(Command),
    Stop,
}

/// Error returned by [`NodeHandle::call`] when the node thread is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node has stopped")]
pub struct NodeStopped;

/// A cloneable handle to a node running on its own thread.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Msg>,
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
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Run(Box::new(move |n: &mut Node| {
                // The caller may have gone away (a dropped HTTP request); the
                // command has been applied all the same.
                let _ = tx.send(f(n));
            })))
            .map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
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
            .send(Msg::Run(Box::new(move |n: &mut Node| {
                let _ = tx.send(f(n));
            })))
            .map_err(|_| NodeStopped)?;
        rx.blocking_recv().map_err(|_| NodeStopped)
    }
}

/// Owns a node's thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct NodeRunner {
    handle: NodeHandle,
    thread: Option<JoinHandle<Node>>,
}

impl NodeRunner {
    /// Start `node` on a new thread named after it.
    pub fn spawn(node: Node) -> std::io::Result<NodeRunner> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread = std::thread::Builder::new()
            .name(format!("weft-node-{}", node.name()))
            .spawn(move || run(node, rx))?;
        Ok(NodeRunner {
            handle: NodeHandle { tx },
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
    let now_ns = |start: Instant| start.elapsed().as_nanos() as u64;
    tracing::debug!(node = node.name(), "node thread started");
    loop {
        match rx.recv_timeout(TICK) {
            Ok(Msg::Run(cmd)) => {
                cmd(&mut node);
                // Drain what else is queued before the next tick, so a burst
                // of CLI commands is not paced by the tick.
                loop {
                    match rx.try_recv() {
                        Ok(Msg::Run(cmd)) => cmd(&mut node),
                        Ok(Msg::Stop) | Err(mpsc::TryRecvError::Disconnected) => return node,
                        Err(mpsc::TryRecvError::Empty) => break,
                    }
                }
            }
            Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return node,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        node.tick(now_ns(start));
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
