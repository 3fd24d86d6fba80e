//! Unix sockets that strangers can neither reach nor impersonate.
//!
//! * [`bind`] creates the socket's directory when missing (mode 0750), binds
//!   the socket and gives it mode 0660 and, when asked, a group — the
//!   operators' group, as BIRD's `-g` and FRR's vty group. It refuses to
//!   start over a socket file it did not create (another user's file is
//!   never used nor removed), over anything that is not a socket, or in a
//!   directory others may write to (unless sticky, like `/tmp`).
//! * [`check_server`] is the client's side: before a command talks to a
//!   node, the process serving the socket must be root, the caller itself,
//!   or the owner of a directory only it can write to; otherwise it may be
//!   an impostor that bound the path first.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Error returned by [`bind`] and [`check_server`].
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another process answers on the socket.
    #[error("{0}: another node or process is serving on this socket")]
    InUse(PathBuf),
    /// The path is somebody else's.
    #[error("{path}: {why}; refusing to use or remove it")]
    NotOurs {
        /// The path.
        path: PathBuf,
        /// Whose it is and why that matters.
        why: String,
    },
    /// A system call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// No such group.
    #[error("unknown group {0:?} (not a number and not in /etc/group)")]
    UnknownGroup(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// This process's effective user id (the owner of `/proc/self`).
pub fn euid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// A group id from a number or a name in `/etc/group`.
pub fn group_id(group: &str) -> Result<u32, SocketError> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.split(':');
                (f.next() == Some(group)).then(|| f.nth(1).and_then(|g| g.parse().ok()))?
            })
        })
        .ok_or_else(|| SocketError::UnknownGroup(group.to_string()))
}

/// Whether a directory with these metadata keeps strangers out of the
/// names in it: owned by us or root, and writable by no one else unless
/// sticky (then nobody may remove or rename another's file).
fn dir_is_safe(m: &std::fs::Metadata, me: u32) -> bool {
    let mode = m.mode();
    (m.uid() == me || m.uid() == 0) && (mode & 0o022 == 0 || mode & 0o1000 != 0)
}

/// Bind a Unix socket at `path` (see the module documentation). `group`
/// is a gid for the directory (when this call creates it or owns it) and
/// the socket. Must run inside a tokio runtime.
pub async fn bind(path: &Path, group: Option<u32>) -> Result<tokio::net::UnixListener, SocketError> {
    let me = euid();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&dir)
            .map_err(io("creating", &dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).map_err(io("chmod", &dir))?;
        if let Some(g) = group {
            std::os::unix::fs::chown(&dir, None, Some(g)).map_err(io("chgrp", &dir))?;
        }
    } else if let Some(g) = group {
        let m = std::fs::metadata(&dir).map_err(io("reading", &dir))?;
        if m.uid() == me && m.gid() != g {
            std::os::unix::fs::chown(&dir, None, Some(g)).map_err(io("chgrp", &dir))?;
        }
    }
    let dm = std::fs::metadata(&dir).map_err(io("reading", &dir))?;
    if !dir_is_safe(&dm, me) {
        return Err(SocketError::NotOurs {
            path: dir,
            why: format!(
                "the directory belongs to uid {} with mode {:o}: others could replace the socket",
                dm.uid(),
                dm.mode() & 0o7777
            ),
        });
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("reading", path)(e)),
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            if !m.file_type().is_socket() {
                return Err(SocketError::NotOurs {
                    path: path.to_path_buf(),
                    why: "it exists and is not a socket".into(),
                });
            }
            if m.uid() != me {
                return Err(SocketError::NotOurs {
                    path: path.to_path_buf(),
                    why: format!(
                        "the socket was created by uid {}, not by this process's user (uid {me})",
                        m.uid()
                    ),
                });
            }
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(SocketError::InUse(path.to_path_buf()));
            }
            tracing::info!(socket = %path.display(), "removing our stale socket file");
            std::fs::remove_file(path).map_err(io("removing stale socket", path))?;
        }
    }
    let l = tokio::net::UnixListener::bind(path).map_err(io("binding", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io("chmod", path))?;
    if let Some(g) = group {
        std::os::unix::fs::chown(path, None, Some(g)).map_err(io("chgrp", path))?;
    }
    Ok(l)
}

/// The client's check of the process serving `path` on `stream` (see the
/// module documentation). Returns the server's uid.
pub fn check_server(stream: &tokio::net::UnixStream, path: &Path) -> Result<u32, SocketError> {
    let cred = stream
        .peer_cred()
        .map_err(io("reading the peer credentials of", path))?;
    let (server, me) = (cred.uid(), euid());
    if server == 0 || server == me {
        return Ok(server);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let dm = std::fs::metadata(dir).map_err(io("reading", dir))?;
    if dm.uid() == server && dm.mode() & 0o022 == 0 {
        return Ok(server);
    }
    Err(SocketError::NotOurs {
        path: path.to_path_buf(),
        why: format!(
            "it is served by uid {server}, which is neither root, you (uid {me}) nor the owner of {}",
            dir.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("weft-unix-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[tokio::test]
    async fn bind_makes_a_closed_directory_and_socket() {
        let d = tmp("mk");
        let s = d.join("run/n.sock");
        let l = bind(&s, None).await.unwrap();
        let dm = std::fs::metadata(d.join("run")).unwrap();
        assert_eq!(dm.mode() & 0o777, 0o750);
        assert_eq!(std::fs::metadata(&s).unwrap().mode() & 0o777, 0o660);
        // A second bind while the first serves is refused.
        let c = tokio::spawn(async move {
            let _ = l.accept().await;
        });
        assert!(matches!(bind(&s, None).await, Err(SocketError::InUse(_))));
        c.abort();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_stale_socket_of_ours_is_replaced_and_other_files_are_refused() {
        let d = tmp("stale");
        std::fs::create_dir_all(&d).unwrap();
        let s = d.join("n.sock");
        drop(std::os::unix::net::UnixListener::bind(&s).unwrap());
        bind(&s, None).await.unwrap();
        let f = d.join("file.sock");
        std::fs::write(&f, b"x").unwrap();
        let e = bind(&f, None).await.unwrap_err().to_string();
        assert!(e.contains("not a socket") && e.contains("refusing"), "{e}");
        // A directory others may write to (and not sticky) is refused.
        let open = d.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = bind(&open.join("n.sock"), None).await.unwrap_err().to_string();
        assert!(e.contains("others could replace"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn groups_by_number_and_name() {
        assert_eq!(group_id("0").unwrap(), 0);
        assert_eq!(group_id("root").unwrap(), 0);
        assert!(group_id("no-such-group-weft").is_err());
    }
}
