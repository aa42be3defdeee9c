//! Running one external command for a worker, bounded in time and output
//! (the exec module's functions and the core `exec` action).
//!
//! SER 0.9 used `popen()`: the worker blocked in `fgets`/`pclose` for as
//! long as the command liked (its README lists "no guarantee that scripts
//! ever return" as a known issue, `kill.c` unused). Here the command runs
//! under `/bin/sh -c` in a process group of its own; its pipes are
//! non-blocking and watched with `poll` against one deadline. Past the
//! deadline, or past [`MAX_OUTPUT`] bytes of output, the whole group gets
//! SIGKILL and the child is reaped, so the worker never waits longer than
//! `time_to_kill` (plus the moment a killed child takes to die) and no
//! zombie is left behind.
//!
//! No threads (the worker is a single-threaded forked process): one loop
//! writes stdin, reads stdout and polls the child's exit.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Most output a command may write (`exec_dset`, `exec_avp`): a URI set
/// or a few values. More is taken as a runaway command.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Longest single sleep of the loop, so a child's exit is noticed soon
/// even while it keeps a pipe open (a background grandchild).
const SLICE: Duration = Duration::from_millis(20);

/// How long a SIGKILLed child may take to be reaped before it is left to
/// a later call (a child stuck in uninterruptible sleep).
const REAP_GRACE: Duration = Duration::from_millis(500);

/// One command to run.
#[derive(Debug)]
pub struct Job<'a> {
    /// Text for `/bin/sh -c`.
    pub script: &'a str,
    /// `$0` of the script (shown in the shell's error messages).
    pub name: &'a str,
    /// Positional parameters `$1`…: values from the message travel here
    /// or in the environment, never inside the script text.
    pub args: &'a [&'a [u8]],
    /// Variables added to the inherited environment.
    pub env: &'a [(Vec<u8>, Vec<u8>)],
    /// Written to the command's stdin, which is then closed. `None`:
    /// stdin is /dev/null.
    pub stdin: Option<&'a [u8]>,
    /// Collect stdout (else it is /dev/null).
    pub capture: bool,
    /// Longest time the command may run.
    pub limit: Duration,
}

/// How a command that ran to its end ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The status as text for logs: "exit status 3" or "signal 9".
    pub fn status_text(&self) -> String {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => "unknown status".into(),
        }
    }
}

/// Why a command gave no result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start /bin/sh: {0}")]
    Spawn(std::io::Error),
    #[error("killed after {0:?} (time_to_kill)")]
    TimedOut(Duration),
    #[error("killed: more than {MAX_OUTPUT} bytes of output")]
    TooMuchOutput,
    #[error("waiting for the command failed: {0}")]
    Wait(std::io::Error),
}

thread_local! {
    /// Killed children not yet reaped (stuck in the kernel); tried again
    /// on every later run. A worker has one thread, so this is per process.
    static UNREAPED: RefCell<Vec<Child>> = const { RefCell::new(Vec::new()) };
}

fn reap_leftovers() {
    UNREAPED.with(|l| {
        l.borrow_mut()
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)))
    });
}

/// Children killed but not reaped yet (0 normally).
pub fn unreaped() -> usize {
    reap_leftovers();
    UNREAPED.with(|l| l.borrow().len())
}

fn set_nonblocking(fd: &impl AsRawFd) -> std::io::Result<()> {
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map(|_| ())
        .map_err(std::io::Error::from)
}

fn command(job: &Job<'_>) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(job.script).arg(job.name);
    for a in job.args {
        cmd.arg(OsStr::from_bytes(a));
    }
    for (k, v) in job.env {
        cmd.env(OsStr::from_bytes(k), OsStr::from_bytes(v));
    }
    cmd.stdin(if job.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(if job.capture {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    // A group of its own: the kill reaches what the script started too.
    cmd.process_group(0);
    cmd
}

/// Run `job` to its end or its deadline.
pub fn run(job: &Job<'_>) -> Result<Finished, RunError> {
    reap_leftovers();
    let deadline = Instant::now() + job.limit;
    let mut child = command(job).spawn().map_err(RunError::Spawn)?;
    let mut io = Pipes {
        stdin: child.stdin.take(),
        input: job.stdin.unwrap_or_default(),
        written: 0,
        stdout: child.stdout.take(),
        out: Vec::new(),
    };
    let prepared = [
        io.stdin.as_ref().map(set_nonblocking),
        io.stdout.as_ref().map(set_nonblocking),
    ];
    if let Some(Err(e)) = prepared.into_iter().flatten().find(Result::is_err) {
        kill(child);
        return Err(RunError::Wait(e));
    }
    match drive(&mut child, &mut io, deadline) {
        Ok(status) => Ok(Finished {
            status,
            stdout: io.out,
        }),
        Err(e) => {
            drop(io);
            kill(child);
            Err(match e {
                Stop::Deadline => RunError::TimedOut(job.limit),
                Stop::TooMuch => RunError::TooMuchOutput,
                Stop::Io(e) => RunError::Wait(e),
            })
        }
    }
}

struct Pipes<'a> {
    stdin: Option<ChildStdin>,
    input: &'a [u8],
    written: usize,
    stdout: Option<ChildStdout>,
    out: Vec<u8>,
}

enum Stop {
    Deadline,
    TooMuch,
    Io(std::io::Error),
}

impl Pipes<'_> {
    /// Write what the pipe takes; close stdin once all is written or the
    /// command closed its end (not reading its input is its choice: the
    /// exit status decides, as with SER's `fwrite` into a pipe buffer).
    fn feed(&mut self) {
        let Some(w) = self.stdin.as_mut() else { return };
        while self.written < self.input.len() {
            match w.write(&self.input[self.written..]) {
                Ok(0) => break,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.stdin = None;
    }

    /// Read what is there; `Err` when the output outgrows the bound.
    fn drain(&mut self) -> Result<(), Stop> {
        let Some(r) = self.stdout.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) => {
                    self.stdout = None;
                    return Ok(());
                }
                Ok(n) => {
                    if self.out.len() + n > MAX_OUTPUT {
                        return Err(Stop::TooMuch);
                    }
                    self.out.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Stop::Io(e)),
            }
        }
    }

    /// Wait up to `slice` for one of the pipes to be ready.
    fn wait(&self, slice: Duration) -> Result<(), Stop> {
        let ms = u16::try_from(slice.as_millis()).unwrap_or(u16::MAX).max(1);
        let mut fds = Vec::with_capacity(2);
        if let Some(w) = &self.stdin {
            fds.push(PollFd::new(w.as_fd(), PollFlags::POLLOUT));
        }
        if let Some(r) = &self.stdout {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        if fds.is_empty() {
            std::thread::sleep(slice);
            return Ok(());
        }
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(Stop::Io(e.into())),
        }
    }
}

/// The loop: feed, read, check for the exit, sleep until something
/// happens or a slice passes.
fn drive(child: &mut Child, io: &mut Pipes<'_>, deadline: Instant) -> Result<ExitStatus, Stop> {
    // Without pipes the only event is the exit, which has no descriptor
    // to poll: check it often at first (most commands are short), then
    // back off to one check per SLICE.
    let mut idle = Duration::from_millis(1);
    loop {
        io.feed();
        io.drain()?;
        if let Some(status) = child.try_wait().map_err(Stop::Io)? {
            // What the command wrote before it exited is in the pipe; a
            // background grandchild holding the pipe is not waited for.
            io.drain()?;
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Stop::Deadline);
        }
        let slice = if io.stdin.is_none() && io.stdout.is_none() {
            idle = (idle * 2).min(SLICE);
            idle
        } else {
            SLICE
        };
        io.wait(slice.min(deadline - now))?;
    }
}

/// SIGKILL the command's group and reap it; one stuck in the kernel is
/// kept for a later attempt rather than holding the worker.
fn kill(mut child: Child) {
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    // The child is not reaped yet, so its pid still names its group.
    if let Err(e) = killpg(pgid, Signal::SIGKILL) {
        log::debug!("exec: killpg({pgid}): {e}");
        let _ = child.kill();
    }
    let until = Instant::now() + REAP_GRACE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= until => {
                log::error!("exec: killed command {pgid} not reaped yet; retried later");
                UNREAPED.with(|l| l.borrow_mut().push(child));
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
