//! The unix datagram socket transport: one datagram out, one back. The
//! server answers to the sender's address, so we bind a socket of our own
//! first (an unbound sender could not be answered).
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::transport::{io_err, unique_name, TempPath, TransportError};

/// Room for the largest reply we accept; a `ul_dump` of a busy registrar
/// is the big one. A longer datagram is cut here.
const MAX_REPLY: usize = 256 * 1024;

/// Sends `request` to the socket at `server` and returns the reply datagram.
pub fn exchange(
    server: &Path,
    request: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, TransportError> {
    match std::fs::metadata(server) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(TransportError::WrongFileType {
                path: server.to_path_buf(),
                expected: "unix socket",
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(TransportError::NotRunning {
                path: server.to_path_buf(),
                reason: "no such socket",
            })
        }
        Err(e) => return Err(io_err("stat", server)(e)),
    }

    let local = PathBuf::from(format!("/tmp/{}.sock", unique_name("serctl")));
    // Left behind by a crashed run with our pid: ours to reuse.
    let _ = std::fs::remove_file(&local);
    let sock = UnixDatagram::bind(&local).map_err(io_err("bind", &local))?;
    let _guard = TempPath(local.clone());
    // Only we (and root) may send to the reply address.
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod", &local))?;
    // A ser that dropped privileges must be able to send to it.
    super::access::grant(server, &local)?;
    sock.set_read_timeout(Some(timeout))
        .map_err(io_err("set timeout on", &local))?;
    sock.set_write_timeout(Some(timeout))
        .map_err(io_err("set timeout on", &local))?;

    match sock.send_to(request, server) {
        Ok(n) if n == request.len() => {}
        Ok(_) => {
            let e = io::Error::new(io::ErrorKind::WriteZero, "datagram cut short");
            return Err(io_err("send to", server)(e));
        }
        Err(e) => return Err(send_error(server, timeout, e)),
    }

    let mut buf = vec![0u8; MAX_REPLY];
    match sock.recv(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Ok(buf)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(TransportError::Timeout {
                path: server.to_path_buf(),
                timeout,
            })
        }
        Err(e) => Err(io_err("receive from", server)(e)),
    }
}

fn send_error(server: &Path, timeout: Duration, e: io::Error) -> TransportError {
    let path = server.to_path_buf();
    match e.kind() {
        // A socket file whose owner is gone: ser died without cleaning up.
        io::ErrorKind::ConnectionRefused => TransportError::NotRunning {
            path,
            reason: "nobody listens on",
        },
        io::ErrorKind::NotFound => TransportError::NotRunning {
            path,
            reason: "no such socket",
        },
        // The server's receive queue stayed full for the whole timeout.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            TransportError::Timeout { path, timeout }
        }
        _ => io_err("send to", server)(e),
    }
}
