//! The FIFO transport: the request goes into the server's FIFO as one
//! atomic write, the reply comes back through a FIFO we create and name in
//! the request's first line.
//!
//! Waiting for the reply: the reply FIFO is read non-blocking in short
//! sleeps until the deadline. poll() would not help: a FIFO that no writer
//! has opened yet reads as end-of-file, so "data arrived and the writer
//! closed" has to be watched for anyway. For a command-line tool a few
//! milliseconds of latency cost nothing.
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::stat::Mode;

use super::proto;
use super::transport::{io_err, unique_name, TempPath, TransportError};

/// Writes to a pipe are atomic up to PIPE_BUF (4096 on Linux); a longer
/// request could interleave with another client's and corrupt both.
pub const MAX_REQUEST: usize = 4095;

/// How long to sleep between two looks at the reply FIFO.
const READ_SLICE: Duration = Duration::from_millis(5);

/// Sends `cmd` with `params` through the server FIFO at `server` and
/// returns the raw reply the server wrote into our reply FIFO in `reply_dir`.
pub fn exchange(
    server: &Path,
    reply_dir: &Path,
    cmd: &str,
    params: &[&str],
    timeout: Duration,
) -> Result<Vec<u8>, TransportError> {
    check_server_fifo(server)?;
    let name = unique_name("serctl_reply");
    let request = proto::build_request(cmd, &name, params)?;
    if request.len() > MAX_REQUEST {
        return Err(TransportError::TooLong {
            path: server.to_path_buf(),
            len: request.len(),
            max: MAX_REQUEST,
        });
    }

    let reply_path = reply_dir.join(&name);
    // Left behind by a crashed run with our pid: ours to reuse.
    let _ = std::fs::remove_file(&reply_path);
    nix::unistd::mkfifo(&reply_path, Mode::S_IRUSR | Mode::S_IWUSR)
        .map_err(|e| io_err("mkfifo", &reply_path)(io::Error::from(e)))?;
    let _guard = TempPath(reply_path.clone());
    // mkfifo's mode passes through the umask; make it exactly 0600.
    std::fs::set_permissions(&reply_path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod", &reply_path))?;
    // A ser that dropped privileges must be able to write it.
    super::access::grant(server, &reply_path)?;
    // Open our end before sending: the server opens the reply FIFO
    // non-blocking for writing, which fails while nobody reads it.
    let mut reply = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&reply_path)
        .map_err(io_err("open", &reply_path))?;

    send(server, &request)?;
    read_reply(&mut reply, server, timeout)
}

fn check_server_fifo(server: &Path) -> Result<(), TransportError> {
    match std::fs::metadata(server) {
        Ok(m) if m.file_type().is_fifo() => Ok(()),
        // Writing into a regular file would just append to it, silently.
        Ok(_) => Err(TransportError::WrongFileType {
            path: server.to_path_buf(),
            expected: "FIFO",
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(TransportError::NotRunning {
            path: server.to_path_buf(),
            reason: "no such FIFO",
        }),
        Err(e) => Err(io_err("stat", server)(e)),
    }
}

/// One non-blocking open and one write: a FIFO without a reader refuses
/// the open (ENXIO) instead of hanging until someone comes.
fn send(server: &Path, request: &[u8]) -> Result<(), TransportError> {
    let mut fifo = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(server)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => TransportError::NotRunning {
                path: server.to_path_buf(),
                reason: "no reader on",
            },
            _ => io_err("open", server)(e),
        })?;
    match fifo.write(request) {
        Ok(n) if n == request.len() => Ok(()),
        Ok(_) => Err(io_err("write to", server)(io::Error::new(
            io::ErrorKind::WriteZero,
            "request cut short",
        ))),
        Err(e) => Err(io_err("write to", server)(e)),
    }
}

/// Reads until the server has written and closed, or the deadline passes.
/// A non-blocking FIFO reads 0 both before the writer opened and after it
/// closed, so EOF only counts once data has arrived.
fn read_reply(
    reply: &mut File,
    server: &Path,
    timeout: Duration,
) -> Result<Vec<u8>, TransportError> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match reply.read(&mut chunk) {
            Ok(0) if !out.is_empty() => return Ok(out),
            Ok(0) => {}
            Ok(n) => {
                out.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io_err("read reply for", server)(e)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(TransportError::Timeout {
                path: server.to_path_buf(),
                timeout,
            });
        }
        std::thread::sleep(READ_SLICE.min(deadline - now));
    }
}
