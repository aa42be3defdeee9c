//! Complaints about a full shared memory, rate-limited.
//!
//! When shm runs out, every new call and many replies hit it; logging
//! each one would let a caller fill the disk. One rate-limited call site
//! (`log_limited!`: a burst, then one line every few seconds per process,
//! with the count of those held back).

/// Log "tm: out of shared memory <what>", rate-limited.
pub fn complain(what: &'static str) {
    crate::log_limited!(log::Level::Error, "tm: out of shared memory {what}");
}
