//! Complaints about a full shared memory, rate-limited.
//!
//! When shm runs out, every new call and many replies hit it; logging
//! each one would let a caller fill the disk. Each process keeps its own
//! limiter (processes are single-threaded), so a complaint of one kind is
//! logged at most once a second per process, with how many were held back.

use std::cell::RefCell;

use crate::logging::LogLimiter;

thread_local! {
    static LIMIT: RefCell<(LogLimiter, u64)> = RefCell::new((LogLimiter::new(), 0));
}

/// Log "tm: out of shared memory <what>" unless one was logged within the
/// last second in this process.
pub fn complain(what: &'static str) {
    LIMIT.with(|l| {
        let mut l = l.borrow_mut();
        if l.0.allow(what) {
            let held = std::mem::take(&mut l.1);
            if held == 0 {
                log::error!("tm: out of shared memory {what}");
            } else {
                log::error!(
                    "tm: out of shared memory {what} ({held} more shm complaints held back)"
                );
            }
        } else {
            l.1 += 1;
        }
    });
}
