//! fork, parent-death signal, daemonizing, chroot.
use std::path::Path;

use nix::sys::signal::Signal;
use nix::unistd::{self, Pid};

pub use nix::unistd::ForkResult;

use super::OsError;

/// Forks the calling process.
///
/// Only call this from a single-threaded process (every `ser` process is):
/// the child then holds no lock another thread left half-taken.
pub fn fork_child() -> Result<ForkResult, OsError> {
    // SAFETY: ser processes never start threads (DESIGN.md, "No threads"), so
    // the child is a complete copy of a single-threaded process and may run
    // arbitrary code, including allocation, after the fork.
    unsafe { unistd::fork() }.map_err(OsError::Fork)
}

/// Asks the kernel to send SIGTERM to this process when its parent dies,
/// then closes the race where the parent died before the request was made:
/// if our parent is no longer `expected_parent`, we were re-parented already
/// and `OsError::ParentGone` tells the caller to exit.
pub fn set_parent_death_signal(expected_parent: Pid) -> Result<(), OsError> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(OsError::Prctl)?;
    if unistd::getppid() != expected_parent {
        return Err(OsError::ParentGone);
    }
    Ok(())
}

/// Detaches from the controlling terminal the classic way: fork (the
/// original parent exits 0), `setsid`, fork again (so the daemon is not a
/// session leader and cannot reacquire a terminal), then `chdir` to
/// `workdir` or `/`, and — unless the server logs to stderr — point
/// stdin/stdout/stderr at `/dev/null`.
///
/// Returns only in the final daemon process.
pub fn daemonize(workdir: Option<&Path>, keep_stderr: bool) -> Result<(), OsError> {
    if let ForkResult::Parent { .. } = fork_child()? {
        std::process::exit(0);
    }
    unistd::setsid().map_err(OsError::Setsid)?;
    if let ForkResult::Parent { .. } = fork_child()? {
        std::process::exit(0);
    }
    let dir = workdir.unwrap_or_else(|| Path::new("/"));
    unistd::chdir(dir).map_err(|source| OsError::Chdir {
        path: dir.to_path_buf(),
        source,
    })?;
    redirect_std_to_devnull(keep_stderr)
}

/// Points fds 0 and 1 (and 2 unless `keep_stderr`) at `/dev/null`.
fn redirect_std_to_devnull(keep_stderr: bool) -> Result<(), OsError> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let null = open("/dev/null", OFlag::O_RDWR, Mode::empty()).map_err(OsError::DevNull)?;
    let last = if keep_stderr { 1 } else { 2 };
    for fd in 0..=last {
        if fd != null {
            unistd::dup2(null, fd).map_err(OsError::DevNull)?;
        }
    }
    if null > 2 {
        unistd::close(null).map_err(OsError::DevNull)?;
    }
    Ok(())
}

/// Changes the root directory to `path` and moves into it, so no open path
/// points outside the new root.
pub fn chroot_to(path: &Path) -> Result<(), OsError> {
    unistd::chroot(path).map_err(|source| OsError::Chroot {
        path: path.to_path_buf(),
        source,
    })?;
    unistd::chdir("/").map_err(|source| OsError::Chdir {
        path: "/".into(),
        source,
    })
}
