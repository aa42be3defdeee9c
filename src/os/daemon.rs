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

#[cfg(test)]
mod tests {
    //! `daemonize` forks and exits its parents, so it runs in a re-executed
    //! copy of this test binary, after one more fork that leaves a
    //! single-threaded process to daemonize.
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::*;

    const ENV_DIR: &str = "SER_DAEMONIZE_TEST_DIR";

    /// Runs only inside the re-executed test binary (ignored in a normal
    /// run, so it is not counted as a passing test).
    #[test]
    #[ignore = "re-exec entry point, run by daemonize_detaches_and_redirects in a child process"]
    fn reexec_daemonize_entry() {
        let Ok(dir) = std::env::var(ENV_DIR) else {
            return;
        };
        let dir = PathBuf::from(dir);
        if let Ok(ForkResult::Child) = fork_child() {
            let code = match daemonize(Some(&dir), false) {
                Ok(()) => {
                    let me = unistd::getpid();
                    let sid = unistd::getsid(None).map(|s| s.as_raw()).unwrap_or(-1);
                    let cwd = std::env::current_dir().unwrap_or_default();
                    let fd0 = std::fs::read_link("/proc/self/fd/0").unwrap_or_default();
                    let fd2 = std::fs::read_link("/proc/self/fd/2").unwrap_or_default();
                    let report = format!(
                        "{}\n{sid}\n{}\n{}\n{}\n",
                        me,
                        cwd.display(),
                        fd0.display(),
                        fd2.display()
                    );
                    let tmp = dir.join("report.tmp");
                    let ok = std::fs::write(&tmp, report).is_ok()
                        && std::fs::rename(&tmp, dir.join("report")).is_ok();
                    i32::from(!ok)
                }
                Err(_) => 2,
            };
            std::process::exit(code);
        }
    }

    #[test]
    fn daemonize_detaches_and_redirects() {
        let dir = std::env::temp_dir().join(format!("ser-daemon-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let status = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "os::daemon::tests::reexec_daemonize_entry",
                "--test-threads=1",
            ])
            .env(ENV_DIR, &dir)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let report = loop {
            if let Ok(r) = std::fs::read_to_string(dir.join("report")) {
                break r;
            }
            assert!(Instant::now() < deadline, "daemon never reported");
            std::thread::sleep(Duration::from_millis(10));
        };
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 5, "{report}");
        // Not a session leader (second fork), but in a new session.
        assert_ne!(lines[0], lines[1], "daemon is a session leader");
        assert_ne!(lines[1], unistd::getsid(None).unwrap().to_string());
        assert_eq!(lines[2], dir.display().to_string());
        assert_eq!(lines[3], "/dev/null");
        assert_eq!(lines[4], "/dev/null");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
