//! The supervisor ("attendant"): forks the ranks, then waits for signals.
//!
//! Signals are handled synchronously: SIGCHLD/SIGTERM/SIGINT/SIGHUP are
//! blocked from `Supervisor::new` on and collected with `sigtimedwait` in
//! `run`, so there is no asynchronous handler, no thread and no self-pipe.
//! Children unblock them and restore default dispositions right after fork.
//!
//! Unlike SER, the death of a child is not fatal: it is logged at error
//! level and the supervisor forks a successor in the same rank, which runs
//! the same body (each rank's body is kept here, see [`Member`]) on the
//! same inherited descriptors. The listen sockets, the FIFO and the unix
//! socket were opened before the first fork and stay open here, so what
//! the kernel queued for the dead process waits for its successor. Before
//! forking the successor the death hook runs (see
//! [`Supervisor::set_death_hook`]): it releases what the dead process held
//! in shared memory. A rank that dies [`CRASH_LIMIT`] times within
//! [`CRASH_WINDOW`] is broken rather than unlucky: the supervisor then
//! stops every child and exits non-zero, as SER did on the first death.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
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

/// How often the supervisor's tick (see [`Supervisor::set_tick`]) runs.
const TICK: Duration = Duration::from_secs(1);

/// How long children get to exit after SIGTERM before they are SIGKILLed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Exit code of `run` when a child kept dying (or could not be respawned).
const EXIT_CHILD_DIED: i32 = 1;

/// Deaths of one rank within [`CRASH_WINDOW`] that stop the server.
pub(super) const CRASH_LIMIT: usize = 5;
/// The window over which [`CRASH_LIMIT`] deaths are counted.
pub(super) const CRASH_WINDOW: Duration = Duration::from_secs(10);

/// What a child runs; called again in each successor, so it must not
/// consume anything (hence `Fn`, not `FnOnce`).
type Body = Rc<dyn Fn() -> i32>;

/// One place in the process set: what runs there and its recent deaths.
struct Member {
    rank: Rank,
    desc: String,
    body: Body,
    /// Its slot in the shared process list (`ps`), reused by successors.
    slot: Option<usize>,
    /// When it died within the last [`CRASH_WINDOW`].
    deaths: VecDeque<Instant>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("rank", &self.rank)
            .field("desc", &self.desc)
            .field("deaths", &self.deaths.len())
            .finish()
    }
}

impl Member {
    /// Records a death at `now`; true once the rank died [`CRASH_LIMIT`]
    /// times within [`CRASH_WINDOW`].
    fn died(&mut self, now: Instant) -> bool {
        while self
            .deaths
            .front()
            .is_some_and(|t| now.duration_since(*t) >= CRASH_WINDOW)
        {
            self.deaths.pop_front();
        }
        self.deaths.push_back(now);
        self.deaths.len() >= CRASH_LIMIT
    }
}
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
    /// Every place in the process set, in spawn order.
    members: Vec<Member>,
    /// Which member each live pid is.
    member_of: std::collections::HashMap<Pid, usize>,
    /// Run with each dead child's pid before its successor is forked.
    death_hook: Option<fn(i32, Option<usize>)>,
    /// Run about once a second while waiting for signals.
    tick: Option<fn()>,
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
            members: Vec::new(),
            member_of: std::collections::HashMap::new(),
            death_hook: None,
            tick: None,
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
    /// In the parent: the child is recorded and its pid returned. `body` is
    /// kept: a successor forked after the child's death runs it again.
    pub fn spawn(
        &mut self,
        rank: Rank,
        desc: String,
        body: impl Fn() -> i32 + 'static,
    ) -> Result<Pid, ProcError> {
        let slot = super::shared::reserve(&desc);
        self.members.push(Member {
            rank,
            desc,
            body: Rc::new(body),
            slot,
            deaths: VecDeque::new(),
        });
        let idx = self.members.len() - 1;
        match self.fork_member(idx) {
            Ok(pid) => Ok(pid),
            Err(e) => {
                self.members.pop();
                Err(e)
            }
        }
    }

    /// Forks (or re-forks) member `idx`.
    fn fork_member(&mut self, idx: usize) -> Result<Pid, ProcError> {
        let parent = getpid();
        let (rank, desc, body, slot) = {
            let m = &self.members[idx];
            (m.rank, m.desc.clone(), Rc::clone(&m.body), m.slot)
        };
        match os::fork_child()? {
            ForkResult::Child => {
                if let Some(i) = slot {
                    super::shared::set_pid(i, getpid().as_raw());
                    super::shared::set_own_slot(i);
                    // Watched from its first instant: every child beats,
                    // so one that never does is reported, not skipped.
                    super::shared::beat();
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
                self.member_of.insert(child, idx);
                self.table.insert_keyed(
                    idx,
                    ChildInfo {
                        pid: child,
                        rank,
                        desc,
                    },
                );
                Ok(child)
            }
        }
    }

    /// Run `hook` with the pid and shared process slot of every child that
    /// died, after it was reaped and before its successor is forked into
    /// the slot: it releases what the dead process held in shared memory.
    pub fn set_death_hook(&mut self, hook: fn(i32, Option<usize>)) {
        self.death_hook = Some(hook);
    }

    /// Run `tick` about once a second while the server runs (the
    /// heartbeat check).
    pub fn set_tick(&mut self, tick: fn()) {
        self.tick = Some(tick);
    }

    /// After `child` died: the death hook, then a successor in its place.
    /// `Err` carries the reason the server must stop instead.
    fn replace(&mut self, child: &ChildInfo, now: Instant) -> Result<(), String> {
        let Some(idx) = self.member_of.remove(&child.pid) else {
            return Ok(());
        };
        if let Some(hook) = self.death_hook {
            hook(child.pid.as_raw(), self.members[idx].slot);
        }
        if self.members[idx].died(now) {
            return Err(format!(
                "{} ({}) died {CRASH_LIMIT} times within {} s",
                child.desc,
                child.rank,
                CRASH_WINDOW.as_secs()
            ));
        }
        match self.fork_member(idx) {
            Ok(pid) => {
                super::shared::note_restart();
                log::warn!(
                    "child process {} ({}) respawned as pid {pid}",
                    child.pid,
                    child.desc
                );
                Ok(())
            }
            Err(e) => Err(format!(
                "cannot respawn {} ({}): {e}",
                child.desc, child.rank
            )),
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

    /// Waits for signals until told to stop, respawning children that die,
    /// then stops every child and removes the pid files. Returns the
    /// process exit code: 0 after SIGTERM/SIGINT, non-zero when a rank kept
    /// dying or could not be respawned.
    pub fn run(mut self) -> i32 {
        let mut next_tick = Instant::now() + TICK;
        let code = 'run: loop {
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
                let now = Instant::now();
                for (child, _) in &deaths {
                    if let Err(why) = self.replace(child, now) {
                        log::error!("{why}; stopping the server");
                        break 'run EXIT_CHILD_DIED;
                    }
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                if let Some(tick) = self.tick {
                    tick();
                }
                next_tick = now + TICK;
            }
            let wait = self.tick.map(|_| next_tick.saturating_duration_since(now));
            match signals::wait_signal(&self.mask, wait) {
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
