//! Synchronous signal handling for the supervisor: the signals of interest
//! are blocked and then collected with `sigtimedwait`, so no handler runs
//! asynchronously and no thread or self-pipe is needed.
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};

use super::OsError;

/// Blocks `set` for the calling (only) thread, so its signals stay pending
/// until `wait_signal` collects them.
pub fn block(set: &SigSet) -> Result<(), OsError> {
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(set), None).map_err(OsError::Signal)
}

/// Unblocks `set`: a forked child inherits the supervisor's mask and must
/// undo it before running its body.
pub fn unblock(set: &SigSet) -> Result<(), OsError> {
    signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(set), None).map_err(OsError::Signal)
}

/// Restores the default disposition of `sig` (e.g. SIGTERM terminates).
pub fn set_default(sig: Signal) -> Result<(), OsError> {
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    unsafe { signal::signal(sig, SigHandler::SigDfl) }
        .map(|_| ())
        .map_err(OsError::Signal)
}

/// Ignores `sig` (used for SIGPIPE: a peer closing a socket is an error
/// return, not a death).
pub fn ignore(sig: Signal) -> Result<(), OsError> {
    // SAFETY: installing SIG_IGN runs no code of ours in signal context.
    unsafe { signal::signal(sig, SigHandler::SigIgn) }
        .map(|_| ())
        .map_err(OsError::Signal)
}

/// Waits for one of the (blocked) signals in `set`. `timeout = None` waits
/// forever; `Ok(None)` means the timeout passed. EINTR (a signal outside
/// `set`) is retried as a spurious wake-up by returning `Ok(None)` only when
/// a timeout was given; without one we simply wait again.
pub fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> Result<Option<Signal>, OsError> {
    loop {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            // subsec_nanos() < 10^9 always fits a c_long.
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `set` is a valid sigset_t; a null siginfo pointer is
        // allowed; `ts_ptr` is null or points at `ts`, alive for the call.
        let rc = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ts_ptr) };
        if rc >= 0 {
            return Signal::try_from(rc).map(Some).map_err(OsError::Signal);
        }
        match Errno::last() {
            Errno::EAGAIN => return Ok(None),
            Errno::EINTR if timeout.is_some() => return Ok(None),
            Errno::EINTR => continue,
            e => return Err(OsError::Signal(e)),
        }
    }
}

/// The signals pending (blocked and not yet collected) for this thread.
pub fn pending() -> Result<SigSet, OsError> {
    let mut raw = SigSet::empty();
    // SAFETY: `raw` is an initialised sigset_t (via SigSet) the kernel fills
    // in during the call; SigSet is a transparent wrapper of sigset_t.
    let rc = unsafe { libc::sigpending(&mut raw as *mut SigSet as *mut libc::sigset_t) };
    if rc != 0 {
        return Err(OsError::Signal(Errno::last()));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_signal_is_pending_then_collected() {
        // raise() targets the calling thread and the mask is per thread, so
        // this stays inside the test's own thread.
        let mut set = SigSet::empty();
        set.add(Signal::SIGUSR2);
        block(&set).unwrap();
        assert_eq!(
            wait_signal(&set, Some(Duration::from_millis(1))).unwrap(),
            None
        );
        signal::raise(Signal::SIGUSR2).unwrap();
        assert!(pending().unwrap().contains(Signal::SIGUSR2));
        assert_eq!(
            wait_signal(&set, Some(Duration::ZERO)).unwrap(),
            Some(Signal::SIGUSR2)
        );
        assert!(!pending().unwrap().contains(Signal::SIGUSR2));
        unblock(&set).unwrap();
    }
}
