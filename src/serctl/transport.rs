//! Which management interface to talk to, and the one operation both offer:
//! send a request, wait for its reply.
use std::fmt;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::jsonrpc::{self, Endpoint};
use super::proto::{self, BuildError, Reply, ReplyError};
use super::{fifo, unixsock};

/// Where SER 0.9 setups usually put the unix control socket.
pub const DEFAULT_UNIXSOCK: &str = "/tmp/ser_sock";
/// SER's default FIFO (`fifo="/tmp/ser_fifo"` in the sample ser.cfg).
pub const DEFAULT_FIFO: &str = "/tmp/ser_fifo";
/// How long to wait for a reply unless `-t` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// One of ser's management interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The unix datagram socket (`unix_sock=` / `-x`).
    UnixSock(PathBuf),
    /// The FIFO (`fifo=` / `-i`); replies come back through a FIFO the
    /// client creates in `reply_dir` (the server's `fifo_dir`, `/tmp/`).
    Fifo {
        /// The server's FIFO.
        path: PathBuf,
        /// The directory the server writes replies into.
        reply_dir: PathBuf,
    },
    /// JSON-RPC (`jsonrpc_socket=` / `jsonrpc_listen=`): the same
    /// commands, one request per connection.
    JsonRpc(Endpoint),
}

/// The server could not be asked, or its answer could not be read. All of
/// these end `serctl` with exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The request could not be framed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Something came back, but not a reply.
    #[error("bad reply from {path}: {source}")]
    Reply {
        /// The server's path.
        path: PathBuf,
        /// What was wrong with it.
        source: ReplyError,
    },
    /// Nobody listens on the path (no FIFO reader, socket refused, missing).
    #[error("ser is not running ({reason} {path})")]
    NotRunning {
        /// The server's path.
        path: PathBuf,
        /// "no reader on", "no such file", "connection refused on" ...
        reason: &'static str,
    },
    /// The path exists but is not the kind of file the transport needs.
    #[error("{path} is not a {expected}")]
    WrongFileType {
        /// The path.
        path: PathBuf,
        /// "FIFO" or "unix socket".
        expected: &'static str,
    },
    /// The FIFO request would not fit in one atomic pipe write.
    #[error("request of {len} bytes is too long for {path} (at most {max})")]
    TooLong {
        /// The server's FIFO.
        path: PathBuf,
        /// The request's length.
        len: usize,
        /// The longest request that is written atomically.
        max: usize,
    },
    /// No (complete) reply within the timeout.
    #[error("no reply from {path} within {timeout:?}")]
    Timeout {
        /// The server's path.
        path: PathBuf,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("bind", "send to", "read" ...).
        op: &'static str,
        /// The file it was done on.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl Transport {
    /// The server's path.
    pub fn path(&self) -> PathBuf {
        match self {
            Transport::UnixSock(p) => p.clone(),
            Transport::Fifo { path, .. } => path.clone(),
            Transport::JsonRpc(e) => e.display_path(),
        }
    }

    /// A FIFO transport replying through `/tmp`, as SER's default `fifo_dir`.
    pub fn fifo(path: impl Into<PathBuf>) -> Self {
        Transport::Fifo {
            path: path.into(),
            reply_dir: PathBuf::from("/tmp"),
        }
    }

    /// The choice when none of `-s`, `-f`, `-j` is given: the environment
    /// (`SER_JSONRPC`, `SER_UNIXSOCK`, then `SER_FIFO`), then
    /// `/tmp/ser_sock` if it is a socket, else `/tmp/ser_fifo`.
    pub fn from_env(
        jsonrpc: Option<String>,
        unixsock: Option<PathBuf>,
        fifo: Option<PathBuf>,
    ) -> Self {
        if let Some(j) = jsonrpc.filter(|j| !j.is_empty()) {
            return Transport::JsonRpc(Endpoint::parse(&j));
        }
        if let Some(p) = unixsock.filter(|p| !p.as_os_str().is_empty()) {
            return Transport::UnixSock(p);
        }
        if let Some(p) = fifo.filter(|p| !p.as_os_str().is_empty()) {
            return Transport::fifo(p);
        }
        let sock = Path::new(DEFAULT_UNIXSOCK);
        match std::fs::metadata(sock) {
            Ok(m) if m.file_type().is_socket() => Transport::UnixSock(sock.to_path_buf()),
            _ => Transport::fifo(DEFAULT_FIFO),
        }
    }

    /// Sends `cmd` with `params` and waits up to `timeout` for the reply.
    pub fn exchange(
        &self,
        cmd: &str,
        params: &[&str],
        timeout: Duration,
    ) -> Result<Reply, TransportError> {
        let raw = match self {
            Transport::UnixSock(path) => {
                // The socket server answers to the sender's address, so the
                // reply name is not used.
                let req = proto::build_request(cmd, "", params)?;
                unixsock::exchange(path, &req, timeout)?
            }
            Transport::Fifo { path, reply_dir } => {
                fifo::exchange(path, reply_dir, cmd, params, timeout)?
            }
            Transport::JsonRpc(ep) => return jsonrpc::exchange(ep, cmd, params, timeout),
        };
        proto::parse_reply(&raw).map_err(|source| TransportError::Reply {
            path: self.path(),
            source,
        })
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::UnixSock(p) => write!(f, "unix socket {}", p.display()),
            Transport::Fifo { path, .. } => write!(f, "FIFO {}", path.display()),
            Transport::JsonRpc(e) => write!(f, "JSON-RPC {e}"),
        }
    }
}

/// A name no other request of this or any other live process uses: pid
/// plus a per-process counter (several requests per run, e.g. `moni`).
pub(crate) fn unique_name(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
}

/// A file of ours (reply FIFO, bound socket) that must disappear however
/// the exchange ends.
pub(crate) struct TempPath(pub(crate) PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        // Nothing useful to do if it is already gone.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Wraps an OS error with what was being done and on which path.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> TransportError + 'a {
    move |source| TransportError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_over_defaults_and_socket_over_fifo() {
        let t = Transport::from_env(None, Some("/a/sock".into()), Some("/a/fifo".into()));
        assert_eq!(t, Transport::UnixSock("/a/sock".into()));
        let t = Transport::from_env(None, None, Some("/a/fifo".into()));
        assert_eq!(t, Transport::fifo("/a/fifo"));
        let t = Transport::from_env(None, Some("".into()), Some("/a/fifo".into()));
        assert_eq!(t, Transport::fifo("/a/fifo"));
        let t = Transport::from_env(Some("127.0.0.1:5081".into()), Some("/a/sock".into()), None);
        assert_eq!(t, Transport::JsonRpc(Endpoint::parse("127.0.0.1:5081")));
        let t = Transport::from_env(Some("".into()), None, Some("/a/fifo".into()));
        assert_eq!(t, Transport::fifo("/a/fifo"));
    }

    #[test]
    fn default_depends_on_what_exists() {
        let t = Transport::from_env(None, None, None);
        let sock_exists =
            std::fs::metadata(DEFAULT_UNIXSOCK).is_ok_and(|m| m.file_type().is_socket());
        if sock_exists {
            assert_eq!(t, Transport::UnixSock(DEFAULT_UNIXSOCK.into()));
        } else {
            assert_eq!(t, Transport::fifo(DEFAULT_FIFO));
        }
    }

    #[test]
    fn unique_names_differ_and_are_valid_reply_names() {
        let a = unique_name("serctl_reply");
        let b = unique_name("serctl_reply");
        assert_ne!(a, b);
        assert!(proto::build_request("ps", &a, &[]).is_ok());
    }

    #[test]
    fn temp_path_removes_its_file() {
        let p = std::env::temp_dir().join(unique_name("serctl_tmp_test"));
        std::fs::write(&p, b"x").unwrap_or_else(|e| panic!("{e}"));
        drop(TempPath(p.clone()));
        assert!(!p.exists());
    }
}
