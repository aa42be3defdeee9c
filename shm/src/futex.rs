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

/// Who belongs to the server (see [`set_membership`]).
static MEMBERSHIP: std::sync::OnceLock<fn(u32) -> Option<bool>> = std::sync::OnceLock::new();

/// Installs the server's membership test: `Some(false)` when `pid` is
/// certainly not one of the processes that may hold its locks, `None` when
/// it cannot tell. It must answer `Some(true)` for every process from
/// before its first shm lock until its death is observed. Once per
/// process; later calls are ignored.
///
/// Why: a lock names its owner by pid, and a pid is reused after its
/// process is reaped (`kernel.pid_max` is often 32768). Without this, a
/// lock whose owner died while nobody wanted it would look held by
/// whatever process got the pid later, forever.
pub fn set_membership(check: fn(u32) -> Option<bool>) {
    let _ = MEMBERSHIP.set(check);
}

/// True when the process `pid` can no longer release what it holds: no
/// process has that pid any more (`kill(pid, 0)` fails with ESRCH; a
/// zombie still counts as existing until reaped), or the process that has
/// it now is not a member of the server (the pid was reused).
pub fn process_is_dead(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence/permission check.
    let r = unsafe { libc::kill(p, 0) };
    if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    MEMBERSHIP
        .get()
        .is_some_and(|member| member(pid) == Some(false))
}
