//! SER's FIFO server: `fifo="/tmp/ser_fifo"`. The supervisor creates the
//! named pipe and opens it (for reading, and once for writing so that the
//! pipe never reports end-of-file between writers); one forked process
//! reads requests from it and writes each reply to the file or FIFO the
//! request names.
//!
//! Writers are shell scripts: each request is expected in one atomic
//! write, but nothing is trusted. A request whose rest does not arrive
//! within [`REQUEST_TIMEOUT`] is answered `400` and dropped; a request
//! head that arrives while an earlier request waits for its rest ends the
//! earlier one (its writer gave up) and is served; lines outside any
//! request are skipped.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::registry::Registry;
use super::reply::Reply;
use super::request::{looks_like_head, parse_head, trim_line, Dialect, Head, LineSource, NoLine};
use super::target::{Patience, ReplyTarget};

/// How long the rest of a started request may take to arrive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// A line longer than this is not a request line: it is dropped.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FifoError {
    #[error("fifo {path}: {what}")]
    InTheWay { path: PathBuf, what: &'static str },
    #[error("fifo {path}: another server is reading it; is ser already running?")]
    Busy { path: PathBuf },
    #[error("fifo {path}: {err}")]
    Io {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("fifo {path}: {err}")]
    Sys { path: PathBuf, err: nix::Error },
}

/// The created and opened pipe, ready to be served after the fork.
#[derive(Debug)]
pub struct FifoPipe {
    pub path: PathBuf,
    reader: File,
    /// Held so that the pipe has a writer at all times (no EOF).
    _writer: File,
}

/// Create (or take over a stale) FIFO at `path` with `mode` and owner.
/// A live server already reading it, or anything but a FIFO in the way,
/// refuses the start: deleting someone's file is never right.
pub fn prepare(
    path: &Path,
    mode: u32,
    owner: Option<nix::unistd::Uid>,
    group: Option<nix::unistd::Gid>,
) -> Result<FifoPipe, FifoError> {
    let io = |err| FifoError::Io {
        path: path.to_path_buf(),
        err,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => {
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
            {
                Ok(_) => return Err(FifoError::Busy { path: path.into() }),
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    log::warn!(
                        "fifo {}: stale pipe from an earlier run replaced",
                        path.display()
                    );
                    std::fs::remove_file(path).map_err(io)?;
                }
                Err(e) => return Err(io(e)),
            }
        }
        Ok(_) => {
            return Err(FifoError::InTheWay {
                path: path.into(),
                what: "exists and is not a FIFO; remove it or choose another fifo=",
            })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let m = nix::sys::stat::Mode::from_bits_truncate(mode as libc::mode_t);
    nix::unistd::mkfifo(path, m).map_err(|err| FifoError::Sys {
        path: path.into(),
        err,
    })?;
    // mkfifo applies the umask; the operator's fifo_mode is meant as is.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777)).map_err(io)?;
    if owner.is_some() || group.is_some() {
        nix::unistd::chown(path, owner, group).map_err(|err| FifoError::Sys {
            path: path.into(),
            err,
        })?;
    }
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let writer = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    Ok(FifoPipe {
        path: path.into(),
        reader,
        _writer: writer,
    })
}

/// Where the server's bytes come from: the pipe, or (for the fuzz target)
/// a byte string cut into writes.
pub trait FifoInput {
    /// Appends what is available to `buf`, waiting until `deadline`
    /// (forever when `None`). `false` when the deadline passed with
    /// nothing new, or the input has ended.
    fn fill(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> bool;
    /// No more bytes will ever come (never, for the pipe).
    fn ended(&self) -> bool {
        false
    }
}

/// The read end of the pipe.
struct Pipe<'a>(&'a File);

/// Lines from the input. Within a request (`deadline` set) a missing rest
/// is waited for until the deadline; between requests, forever.
struct PipeLines<'a> {
    input: &'a mut dyn FifoInput,
    buf: &'a mut Vec<u8>,
    deadline: Option<Instant>,
    /// Had to wait for input since the request began.
    waited: bool,
    registry: &'a Registry,
}

impl PipeLines<'_> {
    fn take_line(&mut self) -> Option<String> {
        let pos = memchr::memchr(b'\n', self.buf)?;
        let raw: Vec<u8> = self.buf.drain(..=pos).collect();
        let text = String::from_utf8_lossy(&raw);
        Some(trim_line(&text).to_string())
    }
}

impl FifoInput for Pipe<'_> {
    fn fill(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> bool {
        loop {
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    Some(left)
                }
            };
            // Idle, or waiting for a slow writer's rest: beat meanwhile,
            // so neither looks like a stalled server.
            let wait = crate::proc::shared::beat_wait(left);
            let timeout =
                PollTimeout::from(u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX));
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("fifo: poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match (&*self.0).read(&mut chunk) {
                Ok(0) => continue,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    continue
                }
                Err(e) => {
                    log::error!("fifo: read: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

impl LineSource for PipeLines<'_> {
    fn next_line(&mut self) -> Result<String, NoLine> {
        loop {
            if let Some(line) = self.take_line() {
                if self.waited
                    && self.deadline.is_some()
                    && looks_like_head(&line, |c| self.registry.find(c).is_some())
                {
                    return Err(NoLine::Overtaken(line));
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                crate::warn_limited!("fifo: a line of more than {MAX_LINE} bytes dropped");
                self.buf.clear();
            }
            if self.deadline.is_some() {
                self.waited = true;
            }
            if !self.input.fill(self.buf, self.deadline) {
                return Err(NoLine::Stalled);
            }
        }
    }
}

/// The FIFO server's loop (the forked process's body). Never returns.
pub fn serve(pipe: &FifoPipe, registry: &Registry) -> i32 {
    let settings = super::settings();
    log::info!("fifo server reading {}", pipe.path.display());
    serve_input(&mut Pipe(&pipe.reader), registry, |head, reply| {
        let Some(t) = reply_target(head) else { return };
        if let Err(e) = t.deliver(
            &reply.render(Dialect::Fifo),
            settings.file_mode,
            Patience::FIFO_SERVER,
        ) {
            crate::warn_limited!("fifo: reply to '{}' not delivered: {e}", head.command);
        }
    });
    0
}

/// Where the reply to `head` goes; `None` when the client wants none.
fn reply_target(head: &Head) -> Option<ReplyTarget> {
    (!head.reply.is_empty())
        .then(|| ReplyTarget::File(super::settings().reply_dir.join(&head.reply)))
}

/// Serves the requests `input` delivers until it ends (the pipe never
/// does), handing each reply to `deliver`.
pub fn serve_input(
    input: &mut dyn FifoInput,
    registry: &Registry,
    mut deliver: impl FnMut(&Head, Reply),
) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut pending: Option<String> = None;
    loop {
        if pending.is_none() && input.ended() && memchr::memchr(b'\n', &buf).is_none() {
            return;
        }
        let mut lines = PipeLines {
            input: &mut *input,
            buf: &mut buf,
            deadline: None,
            waited: false,
            registry,
        };
        let first = match pending.take() {
            Some(l) => l,
            None => match lines.next_line() {
                Ok(l) => l,
                Err(_) => continue,
            },
        };
        if first.is_empty() {
            continue;
        }
        let head = match parse_head(&first, Dialect::Fifo) {
            Ok(h) => h,
            Err(e) => {
                crate::warn_limited!("fifo: line {first:?} skipped: {e}");
                continue;
            }
        };
        lines.deadline = Some(Instant::now() + REQUEST_TIMEOUT);
        let target = reply_target(&head);
        let served = registry.serve(&head, &mut lines, Dialect::Fifo, target.as_ref());
        pending = served.requeue;
        if let Some(reply) = served.reply {
            deliver(&head, reply);
        }
    }
}

/// Remove the FIFO at exit (the supervisor calls this).
pub fn remove(path: &Path) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_fifo() {
            let _ = std::fs::remove_file(path);
        }
    }
}
