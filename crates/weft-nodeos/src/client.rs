//! A blocking client of the NodeOS control socket.

use crate::proto::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use weft_memif::io::{Client as MemifClient, ClientConfig, ClientError};

/// Error returned by [`NodeOs`] calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed.
    #[error("nodeos socket: {0}")]
    Io(#[from] std::io::Error),
    /// The node answered with an error.
    #[error("nodeos: {0}")]
    Api(#[from] ApiError),
    /// The node's answer could not be read.
    #[error("nodeos: unreadable response: {0}")]
    Protocol(String),
    /// Attaching to a channel's memif failed.
    #[error("nodeos: {0}")]
    Memif(#[from] ClientError),
}

/// A connection to a node's NodeOS socket.
pub struct NodeOs {
    w: UnixStream,
    r: BufReader<UnixStream>,
    next: u64,
    line: String,
}

impl NodeOs {
    /// Connect to the socket at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<NodeOs, Error> {
        let w = UnixStream::connect(path)?;
        w.set_read_timeout(Some(Duration::from_secs(10)))?;
        let r = BufReader::new(w.try_clone()?);
        Ok(NodeOs {
            w,
            r,
            next: 1,
            line: String::new(),
        })
    }

    /// Send one call and wait for its answer.
    pub fn call(&mut self, call: Call) -> Result<Reply, Error> {
        let id = self.next;
        self.next += 1;
        let mut b = serde_json::to_vec(&Request { id, call }).map_err(|e| Error::Protocol(e.to_string()))?;
        b.push(b'\n');
        self.w.write_all(&b)?;
        self.line.clear();
        if self.r.read_line(&mut self.line)? == 0 {
            return Err(Error::Protocol("the node closed the socket".into()));
        }
        let resp: Response = serde_json::from_str(&self.line).map_err(|e| Error::Protocol(e.to_string()))?;
        if resp.id != id {
            return Err(Error::Protocol(format!("answer to {} for request {id}", resp.id)));
        }
        match (resp.ok, resp.error) {
            (_, Some(e)) => Err(Error::Api(e)),
            (Some(r), None) => Ok(r),
            (None, None) => Err(Error::Protocol("empty response".into())),
        }
    }

    fn unexpected(r: Reply) -> Error {
        Error::Protocol(format!("unexpected reply {r:?}"))
    }

    /// Who the node says we are, and its name.
    pub fn hello(&mut self) -> Result<(String, String), Error> {
        match self.call(Call::Hello)? {
            Reply::Hello { principal, node, .. } => Ok((principal, node)),
            r => Err(Self::unexpected(r)),
        }
    }

    /// The node's clock, ns.
    pub fn time(&mut self) -> Result<u64, Error> {
        match self.call(Call::Time)? {
            Reply::Time { now_ns } => Ok(now_ns),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Create a domain.
    pub fn domain_create(&mut self, spec: &DomainSpec) -> Result<DomainHandle, Error> {
        match self.call(Call::DomainCreate { spec: spec.clone() })? {
            Reply::Domain { domain } => Ok(domain),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Destroy a domain with everything in it.
    pub fn domain_destroy(&mut self, domain: DomainHandle) -> Result<(), Error> {
        self.call(Call::DomainDestroy { domain }).map(|_| ())
    }

    /// The caller's domains.
    pub fn domains(&mut self) -> Result<Vec<DomainView>, Error> {
        match self.call(Call::DomainList)? {
            Reply::Domains { domains } => Ok(domains),
            r => Err(Self::unexpected(r)),
        }
    }

    fn chan(&mut self, call: Call) -> Result<(ChanHandle, Option<MemifInfo>), Error> {
        match self.call(call)? {
            Reply::Chan { chan, memif } => Ok((chan, memif)),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Open an in-channel; attach to its packets with [`NodeOs::attach`].
    pub fn in_chan(&mut self, spec: &InChanSpec) -> Result<(ChanHandle, MemifInfo), Error> {
        let (c, m) = self.chan(Call::InChanCreate { spec: spec.clone() })?;
        Ok((c, m.ok_or_else(|| Error::Protocol("no memif in reply".into()))?))
    }

    /// Open an out-channel.
    pub fn out_chan(&mut self, spec: &OutChanSpec) -> Result<(ChanHandle, MemifInfo), Error> {
        let (c, m) = self.chan(Call::OutChanCreate { spec: spec.clone() })?;
        Ok((c, m.ok_or_else(|| Error::Protocol("no memif in reply".into()))?))
    }

    /// Open a cut-through channel.
    pub fn cut_chan(&mut self, spec: &CutChanSpec) -> Result<ChanHandle, Error> {
        Ok(self.chan(Call::CutChanCreate { spec: spec.clone() })?.0)
    }

    /// Destroy a channel.
    pub fn chan_destroy(&mut self, chan: ChanHandle) -> Result<(), Error> {
        self.call(Call::ChanDestroy { chan }).map(|_| ())
    }

    /// A channel's counters.
    pub fn chan_stats(&mut self, chan: ChanHandle) -> Result<ChanStats, Error> {
        match self.call(Call::ChanStats { chan })? {
            Reply::Stats { stats } => Ok(stats),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Set a cut-through channel's layer cut-off.
    pub fn chan_set_layer(&mut self, chan: ChanHandle, max_layer: Option<u8>) -> Result<(), Error> {
        self.call(Call::ChanSetLayer { chan, max_layer }).map(|_| ())
    }

    /// Events since the last call.
    pub fn events(&mut self) -> Result<Vec<Event>, Error> {
        match self.call(Call::Events)? {
            Reply::Events { events } => Ok(events),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Attach to a channel's packets (memif client; blocks until connected).
    pub fn attach(info: &MemifInfo, app: &str) -> Result<MemifClient, Error> {
        let cfg = ClientConfig {
            id: info.id,
            secret: info.secret.clone(),
            app: app.to_string(),
            ..ClientConfig::default()
        };
        Ok(MemifClient::connect(Path::new(&info.socket), &cfg)?)
    }
}
