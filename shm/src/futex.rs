//! Raw futex calls on a word in shared memory, and a fork-safe pid cache.
//!
//! The futex operations deliberately omit `FUTEX_PRIVATE_FLAG`: private
//! futexes are keyed by (mm, address) and would never wake a waiter in
//! another process. Shared futexes are keyed by the backing page, which is
//! what a `MAP_SHARED` region inherited across `fork` has in common.

use core::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// Sleeps while `*word == expected`, at most `timeout`. True when the
/// sleep timed out (the caller then re-checks the word itself: a wake-up
/// that raced with the timeout is not lost, the word tells).
pub(crate) fn wait_for(word: &AtomicU32, expected: u32, timeout: core::time::Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // subsec_nanos() < 10^9 always fits a c_long.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: as for `wait`; `ts` lives across the call and FUTEX_WAIT
    // reads a relative timeout from it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            core::ptr::null::<u32>(),
            0u32,
        )
    };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT)
}

/// Wakes up to `n` sleepers on `word`, in any process.
pub(crate) fn wake(word: &AtomicU32, n: i32) {
    // SAFETY: as for `wait`; FUTEX_WAKE does not even read the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            core::ptr::null::<libc::timespec>(),
            core::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// This process's pid, cached: `getpid` is a real syscall and lock owners
/// are recorded on every acquisition. The cache is cleared in each child by
/// a `pthread_atfork` hook, which glibc's `fork()` (used by libc and nix)
/// runs.
static PID: AtomicU32 = AtomicU32::new(0);
static ATFORK: Once = Once::new();

extern "C" fn forget_pid_in_child() {
    PID.store(0, Ordering::Relaxed);
}

/// The calling process's id, without a syscall after the first call.
pub fn current_pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    ATFORK.call_once(|| {
        // SAFETY: registering a child hook that only stores to an atomic;
        // it is async-signal-safe and needs no other state.
        unsafe {
            libc::pthread_atfork(None, None, Some(forget_pid_in_child));
        }
    });
    // SAFETY: getpid has no preconditions and cannot fail.
    let p = unsafe { libc::getpid() } as u32;
    PID.store(p, Ordering::Relaxed);
    p
}

/// True when no process with this pid exists any more (`kill(pid, 0)`
/// fails with ESRCH). A zombie still counts as existing until reaped.
pub fn process_is_dead(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence/permission check.
    let r = unsafe { libc::kill(p, 0) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}
