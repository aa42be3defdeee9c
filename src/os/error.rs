//! Errors of the OS layer, one variant per failing system facility.
use std::path::PathBuf;

use nix::errno::Errno;

/// Why an OS-level operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    /// `fork(2)` failed (process limit, memory).
    #[error("fork failed: {0}")]
    Fork(Errno),
    /// `prctl(PR_SET_PDEATHSIG)` failed.
    #[error("prctl(PR_SET_PDEATHSIG) failed: {0}")]
    Prctl(Errno),
    /// The parent died before the death signal was armed; the caller must exit.
    #[error("parent process exited before the death signal was armed")]
    ParentGone,
    /// `setsid(2)` failed while daemonizing.
    #[error("setsid failed: {0}")]
    Setsid(Errno),
    /// Changing directory failed.
    #[error("cannot chdir to {path}: {source}")]
    Chdir { path: PathBuf, source: Errno },
    /// `chroot(2)` failed.
    #[error("cannot chroot to {path}: {source}")]
    Chroot { path: PathBuf, source: Errno },
    /// Redirecting the standard descriptors to /dev/null failed.
    #[error("cannot redirect standard descriptors to /dev/null: {0}")]
    DevNull(Errno),
    /// The user name or uid is not known to the system.
    #[error("unknown user \"{0}\"")]
    UnknownUser(String),
    /// The group name or gid is not known to the system.
    #[error("unknown group \"{0}\"")]
    UnknownGroup(String),
    /// Looking a user or group up in the system databases failed.
    #[error("user/group lookup failed: {0}")]
    Lookup(Errno),
    /// A user name contained a NUL byte.
    #[error("user name contains a NUL byte")]
    BadName,
    /// `setgid`/`setgroups`/`initgroups` failed (usually: not root).
    #[error("cannot change group id: {0}")]
    SetGid(Errno),
    /// `setuid` failed (usually: not root).
    #[error("cannot change user id: {0}")]
    SetUid(Errno),
    /// `getrlimit`/`setrlimit` failed.
    #[error("cannot change resource limit {what}: {source}")]
    Rlimit { what: &'static str, source: Errno },
    /// Blocking or waiting for signals failed.
    #[error("signal handling failed: {0}")]
    Signal(Errno),
}
