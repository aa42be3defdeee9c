//! One datagram to a unix socket by path, from an unbound socket: how ser
//! answers unix-socket clients (`ctl`) and hands requests to applications
//! (`t_write_unix`). Each caller maps the failure kinds to its own policy.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum UnixSendError {
    /// The receiver's queue stayed full for the whole timeout.
    #[error("the receiver's queue stayed full")]
    Timeout,
    /// Nothing at that path.
    #[error("no socket there")]
    Missing,
    /// A socket file nobody is bound to.
    #[error("nobody listens on it")]
    Refused,
    /// Larger than a datagram to that socket may be.
    #[error("too large for one datagram")]
    TooLarge,
    #[error("only {written} of {len} bytes sent")]
    Short { written: usize, len: usize },
    #[error("{0}")]
    Io(io::Error),
}

/// Send `bytes` to the socket at `path`, waiting at most `timeout` for
/// room in its queue (zero: do not wait at all).
pub fn send_unix_datagram(
    path: &Path,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), UnixSendError> {
    let sock = UnixDatagram::unbound().map_err(UnixSendError::Io)?;
    if timeout.is_zero() {
        sock.set_nonblocking(true).map_err(UnixSendError::Io)?;
    } else {
        sock.set_write_timeout(Some(timeout))
            .map_err(UnixSendError::Io)?;
    }
    match sock.send_to(bytes, path) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(n) => Err(UnixSendError::Short {
            written: n,
            len: bytes.len(),
        }),
        Err(e) => Err(match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => UnixSendError::Timeout,
            io::ErrorKind::NotFound => UnixSendError::Missing,
            io::ErrorKind::ConnectionRefused => UnixSendError::Refused,
            _ if e.raw_os_error() == Some(libc::EMSGSIZE) => UnixSendError::TooLarge,
            _ => UnixSendError::Io(e),
        }),
    }
}
