//! The JSON-RPC server process: a unix stream socket and/or a loopback
//! TCP port, one request per connection.
//!
//! Framing: the client sends one JSON-RPC request object (whitespace
//! around it allowed) and may keep its side open; the server parses what
//! has arrived after every read, runs the request once the value is
//! complete, writes one response object followed by LF, and closes. A
//! notification (no `id`) is run and the connection closed unanswered.
//!
//! One process serves every connection without blocking on any of them:
//! a client has [`READ_TIMEOUT`] to send its request and
//! [`WRITE_TIMEOUT`] to take its response, more than [`MAX_REQUEST`]
//! bytes are refused, and at most [`MAX_CONNS`] connections are open (a
//! newcomer beyond that is closed at once). A command that reports later
//! (`t_uac_dlg`) gets a private unix datagram address to report to, as a
//! unix socket client has, and its connection waits for that report.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::Value;

use super::codec::{self, Framed, MAX_REQUEST};
use super::dispatch::{self, Answer};
use crate::ctl::registry::Registry;
use crate::ctl::target::ReplyTarget;

/// How long a client has to send its whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take its response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a later report is awaited: longer than tm's longest final
/// reply timer, after which tm reports 408 itself.
pub const REPORT_WAIT: Duration = Duration::from_secs(300);
/// Connections served at once.
pub const MAX_CONNS: usize = 64;
/// After the response, how long the rest of an unread request is
/// drained (closing with unread input would reset the connection and
/// could lose the response on its way).
const LINGER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum JsonRpcError {
    #[error("jsonrpc_socket {path}: exists and is not a socket; remove it or choose another path")]
    InTheWay { path: PathBuf },
    #[error("jsonrpc_socket {path}: another server answers on it; is ser already running?")]
    Busy { path: PathBuf },
    #[error("jsonrpc_socket {path}: {err}")]
    Io {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("jsonrpc_socket {path}: chown: {err}")]
    Chown { path: PathBuf, err: nix::Error },
    #[error("jsonrpc_listen {addr}: {err}")]
    Tcp {
        addr: SocketAddr,
        #[source]
        err: std::io::Error,
    },
}

/// The bound listening sockets, made before the fork.
#[derive(Debug, Default)]
pub struct Listeners {
    pub unix: Option<(PathBuf, UnixListener)>,
    pub tcp: Option<TcpListener>,
}

/// Binds the configured listeners: the unix socket (replacing a stale
/// one, with `mode` and owner) and the loopback TCP address.
pub fn prepare(
    path: Option<&Path>,
    tcp: Option<SocketAddr>,
    mode: u32,
    owner: Option<nix::unistd::Uid>,
    group: Option<nix::unistd::Gid>,
) -> Result<Listeners, JsonRpcError> {
    let mut l = Listeners::default();
    if let Some(path) = path {
        let io = |err| JsonRpcError::Io {
            path: path.to_path_buf(),
            err,
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(JsonRpcError::Busy { path: path.into() });
                }
                log::warn!("jsonrpc_socket {}: stale socket replaced", path.display());
                std::fs::remove_file(path).map_err(io)?;
            }
            Ok(_) => return Err(JsonRpcError::InTheWay { path: path.into() }),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let sock = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io)?;
        if owner.is_some() || group.is_some() {
            nix::unistd::chown(path, owner, group).map_err(|err| JsonRpcError::Chown {
                path: path.into(),
                err,
            })?;
        }
        sock.set_nonblocking(true).map_err(io)?;
        l.unix = Some((path.to_path_buf(), sock));
    }
    if let Some(addr) = tcp {
        let terr = |err| JsonRpcError::Tcp { addr, err };
        let sock = TcpListener::bind(addr).map_err(terr)?;
        sock.set_nonblocking(true).map_err(terr)?;
        l.tcp = Some(sock);
    }
    Ok(l)
}

/// Removes the unix socket file at exit (the supervisor calls this).
pub fn remove(l: &Listeners) {
    if let Some((path, _)) = &l.unix {
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.file_type().is_socket() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    /// Never raises SIGPIPE on a client that went away.
    fn send(&self, bytes: &[u8]) -> std::io::Result<usize> {
        use nix::sys::socket::{send, MsgFlags};
        send(
            std::os::fd::AsRawFd::as_raw_fd(&self.fd()),
            bytes,
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        )
        .map_err(std::io::Error::from)
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

/// The private address a later report comes to; removed when dropped.
struct ReportSock {
    path: PathBuf,
    sock: UnixDatagram,
}

impl ReportSock {
    fn bind() -> std::io::Result<ReportSock> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = crate::ctl::settings()
            .reply_dir
            .join(format!("ser_jsonrpc_{}_{n}", std::process::id()));
        // A leftover of an earlier process with our pid is ours.
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path)?;
        let rs = ReportSock { path, sock };
        std::fs::set_permissions(&rs.path, std::fs::Permissions::from_mode(0o600))?;
        rs.sock.set_nonblocking(true)?;
        Ok(rs)
    }
}

impl Drop for ReportSock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

enum State {
    Reading,
    Waiting {
        report: ReportSock,
        id: Value,
    },
    Writing {
        out: Vec<u8>,
        pos: usize,
    },
    /// Response sent (or none due): reading what is left until EOF.
    Draining,
    Done,
}

struct Conn {
    stream: Stream,
    state: State,
    buf: Vec<u8>,
    deadline: Instant,
}

impl Conn {
    fn new(stream: Stream, now: Instant) -> Conn {
        Conn {
            stream,
            state: State::Reading,
            buf: Vec::new(),
            deadline: now + READ_TIMEOUT,
        }
    }

    fn respond(&mut self, v: &Value, now: Instant) {
        self.state = State::Writing {
            out: codec::encode(v),
            pos: 0,
        };
        self.deadline = now + WRITE_TIMEOUT;
    }

    fn linger(&mut self, now: Instant) {
        self.stream.shutdown_write();
        self.state = State::Draining;
        self.deadline = now + LINGER;
    }

    /// What to poll for, and on which descriptor.
    fn interest(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        match &self.state {
            State::Reading | State::Draining => Some((self.stream.fd(), PollFlags::POLLIN)),
            State::Waiting { report, .. } => Some((report.sock.as_fd(), PollFlags::POLLIN)),
            State::Writing { .. } => Some((self.stream.fd(), PollFlags::POLLOUT)),
            State::Done => None,
        }
    }

    /// The descriptor is ready: make progress.
    fn ready(&mut self, registry: &Registry, now: Instant) {
        match &mut self.state {
            State::Reading => self.read_request(registry, now),
            State::Waiting { report, id } => {
                let mut buf = vec![0u8; crate::ctl::unixsock::MAX_REPLY];
                match report.sock.recv(&mut buf) {
                    Ok(n) => {
                        let v = dispatch::report(id.clone(), &buf[..n]);
                        self.respond(&v, now);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => {
                        crate::warn_limited!("jsonrpc: report socket: {e}");
                        self.state = State::Done;
                    }
                }
            }
            State::Writing { out, pos } => match self.stream.send(&out[*pos..]) {
                Ok(n) => {
                    *pos += n;
                    if *pos >= out.len() {
                        self.linger(now);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.state = State::Done,
            },
            State::Draining => {
                let mut chunk = [0u8; 4096];
                match self.stream.read(&mut chunk) {
                    Ok(0) => self.state = State::Done,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => self.state = State::Done,
                }
            }
            State::Done => {}
        }
    }

    fn read_request(&mut self, registry: &Registry, now: Instant) {
        let mut chunk = [0u8; 16 * 1024];
        let n = match self.stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => return,
            Err(_) => {
                self.state = State::Done;
                return;
            }
        };
        if n == 0 {
            // The client closed its side: what it sent is all there is.
            match codec::frame(&self.buf) {
                Framed::Incomplete if self.buf.iter().all(u8::is_ascii_whitespace) => {
                    self.state = State::Done
                }
                Framed::Incomplete => self.respond(&codec::incomplete_error().to_value(), now),
                Framed::Error(e) => self.respond(&e.to_value(), now),
                Framed::Request(r) => self.run(registry, r, now),
            }
            return;
        }
        // One byte past the limit is enough to refuse.
        let room = (MAX_REQUEST + 1).saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&chunk[..n.min(room)]);
        match codec::frame(&self.buf) {
            Framed::Incomplete => {}
            Framed::Error(e) => self.respond(&e.to_value(), now),
            Framed::Request(r) => self.run(registry, r, now),
        }
    }

    fn run(&mut self, registry: &Registry, req: codec::Request, now: Instant) {
        self.buf = Vec::new();
        // Only a request with an id can be answered later.
        let report = match req.id {
            Some(_) => match ReportSock::bind() {
                Ok(r) => Some(r),
                Err(e) => {
                    crate::warn_limited!("jsonrpc: no report address: {e}");
                    None
                }
            },
            None => None,
        };
        let target = report.as_ref().map(|r| ReplyTarget::Unix(r.path.clone()));
        match dispatch::serve(registry, &req, target.as_ref()) {
            Answer::Now(v) => self.respond(&v, now),
            Answer::Nothing => self.linger(now),
            Answer::Later => match report {
                Some(report) => {
                    self.state = State::Waiting {
                        report,
                        id: req.id.unwrap_or(Value::Null),
                    };
                    self.deadline = now + REPORT_WAIT;
                }
                None => {
                    let e = codec::RpcError::new(
                        req.id.unwrap_or(Value::Null),
                        codec::COMMAND_FAILED,
                        "the command reports later, and no address to report to could be made",
                    );
                    self.respond(&e.to_value(), now);
                }
            },
        }
    }

    /// The deadline passed.
    fn expire(&mut self, now: Instant) {
        match &self.state {
            State::Reading if self.buf.iter().all(u8::is_ascii_whitespace) => {
                self.state = State::Done
            }
            State::Reading => {
                let mut e = codec::incomplete_error();
                e.message = format!(
                    "parse error: no complete request within {} s",
                    READ_TIMEOUT.as_secs()
                );
                self.respond(&e.to_value(), now);
                self.buf = Vec::new();
            }
            State::Waiting { id, .. } => {
                let e = codec::RpcError::new(
                    id.clone(),
                    codec::COMMAND_FAILED,
                    "no report from the command in time",
                );
                self.respond(&e.to_value(), now);
            }
            State::Writing { .. } => {
                crate::warn_limited!("jsonrpc: a client did not take its response; dropped");
                self.state = State::Done;
            }
            State::Draining | State::Done => self.state = State::Done,
        }
    }
}

/// The server process's loop. Never returns.
pub fn serve(l: &Listeners, registry: &Registry) -> i32 {
    let mut conns: Vec<Conn> = Vec::new();
    if let Some((p, _)) = &l.unix {
        log::info!("jsonrpc server on {}", p.display());
    }
    if let Some(t) = &l.tcp {
        if let Ok(a) = t.local_addr() {
            log::info!("jsonrpc server on tcp {a}");
        }
    }
    loop {
        let now = Instant::now();
        let (unix_ready, tcp_ready, ready) = wait(l, &conns, now);
        let now = Instant::now();
        if unix_ready {
            if let Some((_, s)) = &l.unix {
                while let Ok((c, _)) = s.accept() {
                    admit(&mut conns, Stream::Unix(c), now);
                }
            }
        }
        if tcp_ready {
            if let Some(s) = &l.tcp {
                while let Ok((c, _)) = s.accept() {
                    admit(&mut conns, Stream::Tcp(c), now);
                }
            }
        }
        for (c, r) in conns.iter_mut().zip(ready) {
            if r {
                c.ready(registry, now);
            }
        }
        let now = Instant::now();
        for c in conns.iter_mut() {
            if now >= c.deadline {
                c.expire(now);
            }
        }
        conns.retain(|c| !matches!(c.state, State::Done));
    }
}

fn admit(conns: &mut Vec<Conn>, s: Stream, now: Instant) {
    let nonblocking = match &s {
        Stream::Unix(u) => u.set_nonblocking(true),
        Stream::Tcp(t) => t.set_nonblocking(true),
    };
    if nonblocking.is_err() {
        return;
    }
    if conns.len() >= MAX_CONNS {
        crate::warn_limited!("jsonrpc: {MAX_CONNS} connections open; a new one closed");
        return;
    }
    conns.push(Conn::new(s, now));
}

/// Polls the listeners and every connection until something is ready,
/// the nearest deadline or the next heartbeat. Returns readiness of the unix listener, the TCP
/// listener, and each connection (in order).
fn wait(l: &Listeners, conns: &[Conn], now: Instant) -> (bool, bool, Vec<bool>) {
    let mut fds = Vec::with_capacity(conns.len() + 2);
    let unix_at = l.unix.as_ref().map(|(_, s)| {
        fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        fds.len() - 1
    });
    let tcp_at = l.tcp.as_ref().map(|s| {
        fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        fds.len() - 1
    });
    let mut at = Vec::with_capacity(conns.len());
    for c in conns {
        at.push(c.interest().map(|(fd, ev)| {
            fds.push(PollFd::new(fd, ev));
            fds.len() - 1
        }));
    }
    // Idle or not, the wait ends in time for the next heartbeat.
    let left = conns
        .iter()
        .map(|c| c.deadline)
        .min()
        .map(|d| d.saturating_duration_since(now));
    let ms = crate::proc::shared::beat_wait(left).as_millis().max(1);
    let timeout = PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX));
    if let Err(e) = poll(&mut fds, timeout) {
        if e != nix::errno::Errno::EINTR {
            log::error!("jsonrpc: poll: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
        return (false, false, vec![false; conns.len()]);
    }
    let is_ready = |i: Option<usize>| {
        i.and_then(|i| fds[i].revents()).is_some_and(|r| {
            r.intersects(
                PollFlags::POLLIN | PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP,
            )
        })
    };
    (
        is_ready(unix_at),
        is_ready(tcp_at),
        at.into_iter().map(is_ready).collect(),
    )
}
