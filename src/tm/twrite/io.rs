//! Handing the description to the application: a FIFO write or a unix
//! datagram. Neither may hold a worker up: the FIFO is opened and written
//! without blocking, the datagram send is bounded by `unix_tx_timeout`.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use super::error::TwriteError;

/// Writes `bytes` to the FIFO at `path` in one `write`, never blocking.
pub fn write_fifo(path: &Path, bytes: &[u8]) -> Result<(), TwriteError> {
    // Refuse a regular file up front: writing a request into it would
    // "succeed" and nobody would ever answer.
    match std::fs::metadata(path) {
        Ok(m) if !m.file_type().is_fifo() => return Err(TwriteError::NotFifo),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(TwriteError::Missing),
        Err(e) => return Err(TwriteError::Io(e)),
    }
    // O_NONBLOCK: open fails at once with ENXIO when there is no reader,
    // and a full pipe gives EAGAIN instead of stalling a SIP worker.
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => TwriteError::NoReader,
            Some(libc::ENOENT) => TwriteError::Missing,
            _ => TwriteError::Io(e),
        })?;
    match f.write(bytes) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(n) => Err(TwriteError::Short {
            written: n,
            len: bytes.len(),
        }),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(TwriteError::Full),
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Err(TwriteError::NoReader),
        Err(e) => Err(TwriteError::Io(e)),
    }
}

/// Sends `bytes` as one datagram to the unix socket at `path`, waiting at
/// most `timeout` for room in the receiver's queue (zero: do not wait).
/// The sending socket is unbound: the application answers through the
/// FIFO/unixsock interface with `t_reply`, not to this socket.
pub fn write_unix(path: &Path, bytes: &[u8], timeout: Duration) -> Result<(), TwriteError> {
    use crate::net::UnixSendError as E;
    crate::net::send_unix_datagram(path, bytes, timeout).map_err(|e| match e {
        E::Timeout => TwriteError::Timeout,
        E::Missing => TwriteError::Missing,
        E::Refused => TwriteError::Refused,
        E::TooLarge => TwriteError::TooLarge,
        E::Short { written, len } => TwriteError::Short { written, len },
        E::Io(e) => TwriteError::Io(e),
    })
}
