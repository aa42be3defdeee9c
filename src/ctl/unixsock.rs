//! SER 0.9's unix socket server (`unix_sock=`, `-x`; 2.x's `unixsock`
//! module): one request per datagram, the same commands as the FIFO, the
//! reply one datagram back to the sender's bound address.

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::outbox::Outbox;
use super::registry::Registry;
use super::reply::Reply;
use super::request::{parse_head, Dialect, TextLines};
use super::target::ReplyTarget;

/// Longest request datagram read.
const MAX_REQUEST: usize = 64 * 1024;
/// Longest reply sent: what a unix datagram can carry with the kernel's
/// default buffer limits. Longer replies are cut at a line boundary.
pub const MAX_REPLY: usize = 200 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UnixSockError {
    #[error("unix_sock {path}: exists and is not a socket; remove it or choose another path")]
    InTheWay { path: PathBuf },
    #[error("unix_sock {path}: another server answers on it; is ser already running?")]
    Busy { path: PathBuf },
    #[error("unix_sock {path}: {err}")]
    Io {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("unix_sock {path}: chown: {err}")]
    Chown { path: PathBuf, err: nix::Error },
}

#[derive(Debug)]
pub struct CtlSocket {
    pub path: PathBuf,
    sock: UnixDatagram,
}

/// Bind the server socket, replacing a stale one from an earlier run,
/// with `mode` and, when given, `owner` and `group` (who may send to it).
pub fn prepare(
    path: &Path,
    mode: u32,
    owner: Option<nix::unistd::Uid>,
    group: Option<nix::unistd::Gid>,
) -> Result<CtlSocket, UnixSockError> {
    let io = |err| UnixSockError::Io {
        path: path.to_path_buf(),
        err,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A live server would accept this datagram.
            let probe = UnixDatagram::unbound().map_err(io)?;
            if probe.send_to(b"", path).is_ok() {
                return Err(UnixSockError::Busy { path: path.into() });
            }
            log::warn!("unix_sock {}: stale socket replaced", path.display());
            std::fs::remove_file(path).map_err(io)?;
        }
        Ok(_) => return Err(UnixSockError::InTheWay { path: path.into() }),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let sock = UnixDatagram::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777)).map_err(io)?;
    if owner.is_some() || group.is_some() {
        nix::unistd::chown(path, owner, group).map_err(|err| UnixSockError::Chown {
            path: path.into(),
            err,
        })?;
    }
    // Replies may be large (`ps`, `t_hash`): ask for room to send them.
    let _ = nix::sys::socket::setsockopt(
        &sock,
        nix::sys::socket::sockopt::SndBuf,
        &(MAX_REPLY + 4096),
    );
    Ok(CtlSocket {
        path: path.into(),
        sock,
    })
}

/// Cut a rendered reply to what one datagram carries.
fn fit(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() <= MAX_REPLY {
        return bytes;
    }
    let note = b"... (reply truncated)\n";
    let cut = bytes[..MAX_REPLY - note.len()]
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    bytes.truncate(cut);
    bytes.extend_from_slice(note);
    bytes
}

/// Serve one request datagram; returns what to send back.
pub fn answer(registry: &Registry, datagram: &[u8], sender: Option<&Path>) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(datagram);
    let mut lines = TextLines::new(&text);
    let first = super::request::LineSource::next_line(&mut lines).unwrap_or_default();
    let reply = match parse_head(&first, Dialect::Unix) {
        Err(_) => Some(Reply::new(400, "First line malformed")),
        Ok(head) => {
            let target = sender.map(|p| ReplyTarget::Unix(p.to_path_buf()));
            registry
                .serve(&head, &mut lines, Dialect::Unix, target.as_ref())
                .reply
        }
    };
    reply.map(|r| fit(r.render(Dialect::Unix)))
}

/// The loop of one unix socket server process. Never returns.
///
/// Nothing here blocks but `poll`: the socket is non-blocking (siblings
/// sharing it may take a datagram first), and a reply that finds its
/// client's queue full waits in an [`Outbox`] for at most `send_timeout`
/// (`unix_tx_timeout`) while other clients are served.
pub fn serve(sock: &CtlSocket, registry: &Registry, send_timeout: Duration) -> i32 {
    if let Err(e) = sock.sock.set_nonblocking(true) {
        log::error!("unix_sock: {e}");
        return 1;
    }
    let mut outbox = Outbox::new(send_timeout, MAX_REPLY + 4096);
    let mut buf = vec![0u8; MAX_REQUEST];
    log::info!("unix socket server on {}", sock.path.display());
    loop {
        let (readable, writable) = wait(&sock.sock, &outbox);
        for (peer, why) in outbox.progress(&writable, Instant::now()) {
            crate::warn_limited!("unix_sock: reply to {} dropped: {why}", peer.display());
        }
        if !readable {
            continue;
        }
        let (n, addr) = match sock.sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {
                continue
            }
            Err(e) => {
                log::error!("unix_sock: recv: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if n == 0 {
            continue;
        }
        let sender = addr.as_pathname().map(Path::to_path_buf);
        let Some(out) = answer(registry, &buf[..n], sender.as_deref()) else {
            continue;
        };
        match &sender {
            Some(p) => {
                for (peer, why) in outbox.send(&sock.sock, p, out, Instant::now()) {
                    crate::warn_limited!("unix_sock: reply to {} dropped: {why}", peer.display());
                }
            }
            None => {
                crate::warn_limited!("unix_sock: a client without a bound address gets no reply")
            }
        }
    }
}

/// Waits until a request arrives, a parked reply can go, one's time is
/// up, or the heartbeat is due. Returns whether the server socket is readable and which parked
/// sockets are writable.
fn wait(sock: &UnixDatagram, outbox: &Outbox) -> (bool, Vec<bool>) {
    let mut fds = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    fds.extend(outbox.poll_fds());
    // Idle or not, the wait ends in time for the next heartbeat.
    let left = outbox
        .next_deadline()
        .map(|d| d.saturating_duration_since(Instant::now()));
    let ms = crate::proc::shared::beat_wait(left).as_millis().max(1);
    let timeout = PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX));
    let ready = |f: &PollFd<'_>, what: PollFlags| {
        f.revents()
            .is_some_and(|r| r.intersects(what | PollFlags::POLLERR | PollFlags::POLLHUP))
    };
    match poll(&mut fds, timeout) {
        Ok(_) => (
            ready(&fds[0], PollFlags::POLLIN),
            fds[1..]
                .iter()
                .map(|f| ready(f, PollFlags::POLLOUT))
                .collect(),
        ),
        Err(nix::errno::Errno::EINTR) => (false, vec![false; fds.len() - 1]),
        Err(e) => {
            log::error!("unix_sock: poll: {e}");
            std::thread::sleep(Duration::from_millis(100));
            (false, vec![false; fds.len() - 1])
        }
    }
}

/// Remove the socket file at exit.
pub fn remove(path: &Path) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_and_unknown() {
        let r = Registry::with_core();
        assert_eq!(
            answer(&r, b"hello\n", None).unwrap(),
            b"400 First line malformed\n"
        );
        assert_eq!(
            answer(&r, b":nosuch:\n", None).unwrap(),
            b"500 Command nosuch not found\n"
        );
        assert_eq!(answer(&r, b":print:\nhi\n", None).unwrap(), b"200 OK\nhi\n");
    }

    #[test]
    fn long_replies_are_cut_at_a_line() {
        let long: Vec<u8> = "0123456789\n".repeat(30_000).into_bytes();
        let f = fit(long);
        assert!(f.len() <= MAX_REPLY);
        assert!(f.ends_with(b"... (reply truncated)\n"));
    }
}
