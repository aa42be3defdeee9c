//! Where a reply goes: a file or FIFO named by a FIFO request, or the
//! bound address of a unix socket client. A target outlives the request
//! when a transaction reports later, so it can be written into the
//! transaction (as bytes) and delivered from whichever process ends it.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTarget {
    /// A FIFO the client reads, or a report file (created if absent).
    File(PathBuf),
    /// A unix datagram socket address.
    Unix(PathBuf),
}

/// How long to wait for a FIFO reply's reader to appear.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub retries: u32,
    pub pause: Duration,
}

impl Patience {
    /// SER's FIFO server: 4 retries, 80 ms apart.
    pub const FIFO_SERVER: Patience = Patience {
        retries: 4,
        pause: Duration::from_millis(80),
    };
    /// Workers and the timer never wait for a reader.
    pub const NONE: Patience = Patience {
        retries: 0,
        pause: Duration::ZERO,
    };
}

/// How long a write to a slow reader may take in total.
const WRITE_BUDGET: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{0}: is a symbolic link, a directory or has several links; not written")]
    Unsafe(PathBuf),
    #[error("{0}: no reader")]
    NoReader(PathBuf),
    #[error("{path}: {err}")]
    Io {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{0}: the reader does not keep up; reply cut short")]
    Slow(PathBuf),
}

impl ReplyTarget {
    /// The bytes stored with a transaction.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, p) = match self {
            ReplyTarget::File(p) => (b'F', p),
            ReplyTarget::Unix(p) => (b'U', p),
        };
        let mut out = vec![tag];
        out.extend_from_slice(p.as_os_str().as_encoded_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<ReplyTarget> {
        let (tag, rest) = b.split_first()?;
        let path = PathBuf::from(std::str::from_utf8(rest).ok()?);
        match tag {
            b'F' => Some(ReplyTarget::File(path)),
            b'U' => Some(ReplyTarget::Unix(path)),
            _ => None,
        }
    }

    /// Write `bytes` to the target. `mode` is used when a report file is
    /// created; `patience` says how long a FIFO's reader may be awaited.
    /// A unix socket client is never waited for: its report is dropped
    /// when its queue is full (the unix socket server's own replies may
    /// wait, see `ctl::outbox`; reports come from workers and the timer).
    pub fn deliver(&self, bytes: &[u8], mode: u32, patience: Patience) -> Result<(), DeliverError> {
        match self {
            ReplyTarget::File(p) => deliver_file(p, bytes, mode, patience),
            ReplyTarget::Unix(p) => deliver_unix(p, bytes),
        }
    }
}

fn io(path: &Path, err: std::io::Error) -> DeliverError {
    DeliverError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Opens a reply FIFO (non-blocking, waiting a little for its reader) or
/// a report file (created, or truncated if it is ours). Never follows a
/// symlink, never writes through a second hard link.
fn open_reply(path: &Path, mode: u32, patience: Patience) -> Result<std::fs::File, DeliverError> {
    let flags = libc::O_NONBLOCK | libc::O_NOFOLLOW;
    let mut attempt = 0;
    let file = loop {
        let existing = std::fs::symlink_metadata(path).ok();
        let r = match &existing {
            Some(m) if m.file_type().is_fifo() => OpenOptions::new()
                .write(true)
                .custom_flags(flags)
                .open(path),
            Some(m) if m.file_type().is_file() && m.uid() == nix::unistd::geteuid().as_raw() => {
                // Truncated only once checked below.
                OpenOptions::new()
                    .write(true)
                    .custom_flags(flags)
                    .open(path)
            }
            Some(_) => return Err(DeliverError::Unsafe(path.to_path_buf())),
            None => OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode & 0o666)
                .custom_flags(flags)
                .open(path),
        };
        match r {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if attempt >= patience.retries {
                    return Err(DeliverError::NoReader(path.to_path_buf()));
                }
                attempt += 1;
                std::thread::sleep(patience.pause);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // Created by someone else between the two calls: look again.
                if attempt >= patience.retries.max(1) {
                    return Err(io(path, e));
                }
                attempt += 1;
            }
            Err(e) => return Err(io(path, e)),
        }
    };
    // What was opened is what was checked: a FIFO or a regular file with
    // one link (not a hard link planted to make us overwrite something).
    let m = file.metadata().map_err(|e| io(path, e))?;
    if m.nlink() != 1 || !(m.file_type().is_fifo() || m.file_type().is_file()) {
        return Err(DeliverError::Unsafe(path.to_path_buf()));
    }
    if m.file_type().is_file() {
        file.set_len(0).map_err(|e| io(path, e))?;
    }
    Ok(file)
}

fn deliver_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    patience: Patience,
) -> Result<(), DeliverError> {
    let mut f = open_reply(path, mode, patience)?;
    let deadline = Instant::now() + WRITE_BUDGET;
    let mut rest = bytes;
    while !rest.is_empty() {
        match f.write(rest) {
            Ok(0) => return Err(DeliverError::Slow(path.to_path_buf())),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(DeliverError::Slow(path.to_path_buf()));
                }
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            Err(e) => return Err(io(path, e)),
        }
    }
    Ok(())
}

fn deliver_unix(path: &Path, bytes: &[u8]) -> Result<(), DeliverError> {
    crate::net::send_unix_datagram(path, bytes, Duration::ZERO).map_err(|e| match e {
        crate::net::UnixSendError::Io(err) => io(path, err),
        other => io(path, std::io::Error::other(other.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ser-target-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&d);
        d
    }

    #[test]
    fn encode_decode() {
        for t in [
            ReplyTarget::File("/tmp/hh".into()),
            ReplyTarget::Unix("/tmp/x.sock".into()),
        ] {
            assert_eq!(ReplyTarget::decode(&t.encode()), Some(t));
        }
        assert_eq!(ReplyTarget::decode(b"Xfoo"), None);
        assert_eq!(ReplyTarget::decode(b""), None);
    }

    #[test]
    fn report_file_is_created_then_rewritten() {
        let p = tmp("file");
        let t = ReplyTarget::File(p.clone());
        t.deliver(b"200 ok\n", 0o600, Patience::NONE).unwrap();
        t.deliver(b"408 timeout\n", 0o600, Patience::NONE).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"408 timeout\n");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn symlinks_and_hard_links_are_refused() {
        let victim = tmp("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = tmp("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let r = ReplyTarget::File(link.clone()).deliver(b"x", 0o600, Patience::NONE);
        assert!(matches!(r, Err(DeliverError::Unsafe(_))), "{r:?}");
        let hard = tmp("hard");
        std::fs::hard_link(&victim, &hard).unwrap();
        let r = ReplyTarget::File(hard.clone()).deliver(b"x", 0o600, Patience::NONE);
        assert!(matches!(r, Err(DeliverError::Unsafe(_))), "{r:?}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        for p in [victim, link, hard] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn fifo_without_reader_gives_up() {
        let p = tmp("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let t0 = Instant::now();
        let patience = Patience {
            retries: 2,
            pause: Duration::from_millis(10),
        };
        let r = ReplyTarget::File(p.clone()).deliver(b"x", 0o600, patience);
        assert!(matches!(r, Err(DeliverError::NoReader(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(1));
        // With a reader it is written.
        let mut rd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        ReplyTarget::File(p.clone())
            .deliver(b"200 ok\n", 0o600, Patience::NONE)
            .unwrap();
        let mut got = String::new();
        std::io::Read::read_to_string(&mut rd, &mut got).unwrap();
        assert_eq!(got, "200 ok\n");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn unix_target() {
        let p = tmp("sock");
        let rx = UnixDatagram::bind(&p).unwrap();
        ReplyTarget::Unix(p.clone())
            .deliver(b"200 OK\n", 0, Patience::NONE)
            .unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"200 OK\n");
        std::fs::remove_file(&p).unwrap();
        assert!(ReplyTarget::Unix(p)
            .deliver(b"x", 0, Patience::NONE)
            .is_err());
    }
}
