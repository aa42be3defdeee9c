//! Reference counts for shared objects.
//!
//! # The rule for transactions
//!
//! A transaction is referenced by every process currently working on it
//! (a worker handling a reply, the timer process running its timer, the
//! FIFO sending a UAC request) and by the hash table itself. It may be
//! freed only when **both** hold:
//!
//! 1. its count has dropped to zero, and
//! 2. it has left the WAIT state (it was unlinked from the hash table by
//!    the WAIT/DELETE timer path, so no new lookup can find it).
//!
//! Condition 2 is what prevents a lookup in another process from taking a
//! reference to an object that is already being freed: lookups happen under
//! the bucket lock, and unlinking takes the same lock. This crate only
//! provides the counter; the transaction layer (tm) enforces the rule.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::safe::ShmSafe;

/// An atomic reference count living in shared memory. Zeroed = count 0.
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct ShmRefCount(AtomicU32);

// SAFETY: a transparent `AtomicU32`.
unsafe impl ShmSafe for ShmRefCount {}

impl ShmRefCount {
    /// A count starting at `n`.
    pub const fn new(n: u32) -> Self {
        Self(AtomicU32::new(n))
    }

    /// Takes a reference. Relaxed suffices: the caller already holds a
    /// reference or the lock under which the object was found, which
    /// orders the access.
    #[inline]
    pub fn inc(&self) {
        let old = self.0.fetch_add(1, Ordering::Relaxed);
        // A count near 2^32 means a leak loop; wrapping to 0 would free a
        // live object, so stop at the top instead.
        if old == u32::MAX {
            self.0.store(u32::MAX, Ordering::Relaxed);
        }
    }

    /// Drops a reference; true when this was the last one. Release on the
    /// decrement and Acquire on reaching zero make every write of the other
    /// holders visible to whoever frees the object.
    #[inline]
    #[must_use = "the object may have to be freed when the count reaches zero"]
    pub fn dec(&self) -> bool {
        let old = self.0.fetch_sub(1, Ordering::Release);
        if old == 0 {
            // Underflow is a bug in the caller; undo it rather than let the
            // counter wrap to u32::MAX and keep the object forever.
            self.0.store(0, Ordering::Relaxed);
            return false;
        }
        if old == 1 {
            core::sync::atomic::fence(Ordering::Acquire);
            return true;
        }
        false
    }

    /// Current value (a snapshot, for statistics and assertions).
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the count (only while the object is not yet shared).
    pub fn set(&self, n: u32) {
        self.0.store(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_zero_once() {
        let r = ShmRefCount::new(1);
        r.inc();
        assert!(!r.dec());
        assert!(r.dec());
        assert_eq!(r.get(), 0);
        assert!(!r.dec(), "underflow must not report zero again");
        assert_eq!(r.get(), 0);
    }
}
