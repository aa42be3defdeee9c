//! The supervisor ("attendant"): forks the ranks, then waits for signals.
//!
//! Signals are handled synchronously: SIGCHLD/SIGTERM/SIGINT/SIGHUP are
//! blocked from `Supervisor::new` on and collected with `sigtimedwait` in
//! `run`, so there is no asynchronous handler, no thread and no self-pipe.
//! Children unblock them and restore default dispositions right after fork.
//!
//! As in SER, the death of any child is fatal: it is logged at error level
//! and the supervisor stops every other child and exits non-zero, rather
//! than running on with a hole in the process set (a dead worker may have
//! held a shared lock).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgrp, getpid, Pid};

use super::table::{describe_exit, ChildInfo, ChildTable};
use super::{ProcError, Rank};
use crate::os::{self, signals, ForkResult, OsError};

/// The signals the supervisor collects synchronously.
pub const SUPERVISED_SIGNALS: [Signal; 5] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
];

/// How long children get to exit after SIGTERM before they are SIGKILLed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Exit code of `run` when a child died on its own.
const EXIT_CHILD_DIED: i32 = 1;
/// Exit code of a child whose setup after fork failed.
const EXIT_CHILD_SETUP: i32 = 125;

/// Blocks the supervised signals now, long before the supervisor exists:
/// the ports are bound (and tests, scripts or monitors may signal us) while
/// the config is still loading, and SIGUSR1's default action would kill the
/// server. Blocked, they wait for the supervisor's `sigtimedwait`.
pub fn hold_supervised_signals() -> Result<(), ProcError> {
    Ok(signals::block(&supervised_set())?)
}

fn supervised_set() -> SigSet {
    let mut set = SigSet::empty();
    for sig in SUPERVISED_SIGNALS {
        set.add(sig);
    }
    set
}

/// Time left until `deadline`, or `None` once it has passed.
fn remaining(deadline: Instant, now: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(now)
        .filter(|d| !d.is_zero())
}

/// The process that forks, reaps and stops all the others.
#[derive(Debug)]
pub struct Supervisor {
    table: ChildTable,
    /// What SIGUSR1 logs (SER dumps its memory status on SIGUSR1).
    status_report: Option<fn() -> String>,
    /// `-s`: where SIGUSR1 also appends the report (SER's statistics file),
    /// opened before privileges were dropped.
    stats_file: Option<std::fs::File>,
    pid_file: Option<PathBuf>,
    pgid_file: Option<PathBuf>,
    mask: SigSet,
}

impl Supervisor {
    /// Blocks the supervised signals and writes the pid (and pgid) file.
    /// Call after `os::daemonize`, so the file holds the daemon's pid.
    pub fn new(
        pid_file: Option<PathBuf>,
        pgid_file: Option<PathBuf>,
    ) -> Result<Supervisor, ProcError> {
        let mask = supervised_set();
        signals::block(&mask)?;
        if let Some(path) = &pid_file {
            write_id_file(path, getpid().as_raw())?;
        }
        if let Some(path) = &pgid_file {
            write_id_file(path, getpgrp().as_raw())?;
        }
        // After daemonizing: the attendant's pid is ours now.
        super::shared::set_pid(0, getpid().as_raw());
        Ok(Supervisor {
            table: ChildTable::new(),
            status_report: None,
            stats_file: None,
            pid_file,
            pgid_file,
            mask,
        })
    }

    /// Forks a child for `rank`. In the child: death signal armed, default
    /// SIGTERM/SIGINT (terminate), SIGPIPE ignored, supervised signals
    /// unblocked, then `body` runs and its return value is the exit code.
    /// In the parent: the child is recorded and its pid returned.
    pub fn spawn(
        &mut self,
        rank: Rank,
        desc: String,
        body: impl FnOnce() -> i32,
    ) -> Result<Pid, ProcError> {
        let parent = getpid();
        let slot = super::shared::reserve(&desc);
        match os::fork_child()? {
            ForkResult::Child => {
                if let Some(i) = slot {
                    super::shared::set_pid(i, getpid().as_raw());
                    super::shared::adopt(i);
                }
                let code = match self.child_setup(parent, &desc) {
                    Ok(()) => body(),
                    Err(OsError::ParentGone) => 0,
                    Err(e) => {
                        log::error!("{desc}: process setup failed: {e}");
                        EXIT_CHILD_SETUP
                    }
                };
                std::process::exit(code)
            }
            ForkResult::Parent { child } => {
                if let Some(i) = slot {
                    super::shared::set_pid(i, child.as_raw());
                }
                log::debug!("forked {desc} ({rank}) as pid {child}");
                self.table.insert(ChildInfo {
                    pid: child,
                    rank,
                    desc,
                });
                Ok(child)
            }
        }
    }

    fn child_setup(&self, parent: Pid, desc: &str) -> Result<(), OsError> {
        crate::logging::set_process_desc(desc);
        os::set_parent_death_signal(parent)?;
        signals::set_default(Signal::SIGTERM)?;
        signals::set_default(Signal::SIGINT)?;
        signals::set_default(Signal::SIGHUP)?;
        signals::set_default(Signal::SIGCHLD)?;
        signals::ignore(Signal::SIGPIPE)?;
        // SIGUSR1 asks the supervisor for a status report; a child that
        // gets it too (signal to the whole group) must not die of it.
        signals::ignore(Signal::SIGUSR1)?;
        signals::unblock(&self.mask)
    }

    /// `-s`: SIGUSR1 also appends its report, with the time and the
    /// process list, to `file`.
    pub fn set_stats_file(&mut self, file: std::fs::File) {
        self.stats_file = Some(file);
    }

    /// Set what SIGUSR1 logs.
    pub fn set_status_report(&mut self, report: fn() -> String) {
        self.status_report = Some(report);
    }

    /// The live children in spawn order (what `ps` lists after the
    /// attendant).
    pub fn children(&self) -> &[ChildInfo] {
        self.table.all()
    }

    /// `ps` reply lines, the supervisor first as "attendant".
    pub fn ps_lines(&self) -> Vec<String> {
        self.table.ps_lines(getpid())
    }

    /// Waits for signals until told to stop or until a child dies, then
    /// stops every child and removes the pid files. Returns the process
    /// exit code: 0 after SIGTERM/SIGINT, non-zero after a child's death.
    pub fn run(mut self) -> i32 {
        let code = loop {
            let deaths = self.reap();
            if !deaths.is_empty() {
                // Ctrl-C reaches the whole process group: children dying of
                // a SIGINT/SIGTERM that is also pending here are a shutdown,
                // not a failure. (sigtimedwait hands out SIGINT/SIGTERM
                // before SIGCHLD, so this only matters when the signal lands
                // while we are reaping.)
                if termination_pending() {
                    log_deaths(&deaths, log::Level::Info);
                    log::info!("termination signal received, shutting down");
                    break 0;
                }
                log_deaths(&deaths, log::Level::Error);
                log::error!("a child process ended; stopping the server");
                break EXIT_CHILD_DIED;
            }
            match signals::wait_signal(&self.mask, None) {
                Ok(Some(Signal::SIGTERM)) | Ok(Some(Signal::SIGINT)) => {
                    log::info!("termination signal received, shutting down");
                    break 0;
                }
                Ok(Some(Signal::SIGHUP)) => log::info!("SIGHUP received and ignored"),
                Ok(Some(Signal::SIGUSR1)) => self.report_status(),
                // SIGCHLD: reaped at the top of the loop.
                Ok(_) => {}
                Err(e) => {
                    log::error!("waiting for signals failed: {e}; shutting down");
                    break EXIT_CHILD_DIED;
                }
            }
        };
        self.shutdown(SHUTDOWN_GRACE);
        self.remove_id_files();
        code
    }

    /// SIGUSR1: the status report to the log and, with `-s`, to the
    /// statistics file.
    fn report_status(&mut self) {
        let Some(report) = self.status_report else {
            log::info!("SIGUSR1: no status report configured");
            return;
        };
        let text = report();
        log::info!("{text}");
        if self.stats_file.is_some() {
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mut block = format!("---- statistics at {since_epoch} (unix time) ----\n{text}\n");
            for line in self.ps_lines() {
                block.push_str(&line);
                block.push('\n');
            }
            if let Some(f) = self.stats_file.as_mut() {
                if let Err(e) = std::io::Write::write_all(f, block.as_bytes()) {
                    log::error!("statistics file: {e}");
                }
            }
        }
    }

    /// Collects every child of ours that has ended, with how it ended.
    fn reap(&mut self) -> Vec<(ChildInfo, WaitStatus)> {
        let mut deaths = Vec::new();
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return deaths,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("waitpid failed: {e}");
                    return deaths;
                }
                Ok(s) => s,
            };
            if !matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                continue;
            }
            let Some(pid) = status.pid() else { continue };
            super::shared::forget(pid.as_raw());
            if let Some(child) = self.table.remove(pid) {
                deaths.push((child, status));
            }
        }
    }

    /// SIGTERM to every child, up to `grace` for them to exit, SIGKILL to
    /// the rest, and reap all.
    fn shutdown(&mut self, grace: Duration) {
        for c in self.table.all() {
            // ESRCH: it is already dead and will be reaped below.
            let _ = kill(c.pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        loop {
            log_deaths(&self.reap(), log::Level::Debug);
            if self.table.is_empty() {
                return;
            }
            let Some(left) = remaining(deadline, Instant::now()) else {
                break;
            };
            // Any supervised signal wakes us; only SIGCHLD matters now.
            if let Err(e) = signals::wait_signal(&self.mask, Some(left)) {
                log::error!("waiting for children failed: {e}");
                break;
            }
        }
        for c in self.table.all() {
            log::warn!(
                "child process {} ({}) ignored SIGTERM; killing it",
                c.pid,
                c.desc
            );
            let _ = kill(c.pid, Signal::SIGKILL);
        }
        let stragglers: Vec<Pid> = self.table.all().iter().map(|c| c.pid).collect();
        for pid in stragglers {
            while let Err(Errno::EINTR) = waitpid(pid, None) {}
            self.table.remove(pid);
        }
    }

    fn remove_id_files(&self) {
        for path in [&self.pid_file, &self.pgid_file].into_iter().flatten() {
            if let Err(e) = std::fs::remove_file(path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("cannot remove {}: {e}", path.display());
                }
            }
        }
    }
}

fn log_deaths(deaths: &[(ChildInfo, WaitStatus)], level: log::Level) {
    for (child, status) in deaths {
        log::log!(
            level,
            "child process {} ({}) {}",
            child.pid,
            child.desc,
            describe_exit(status)
        );
    }
}

/// Whether SIGTERM or SIGINT is waiting to be collected.
fn termination_pending() -> bool {
    signals::pending()
        .map(|p| p.contains(Signal::SIGTERM) || p.contains(Signal::SIGINT))
        .unwrap_or(false)
}

fn write_id_file(path: &std::path::Path, id: i32) -> Result<(), ProcError> {
    std::fs::write(path, format!("{id}\n")).map_err(|source| ProcError::PidFile {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
