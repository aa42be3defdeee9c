//! The server's lock order, checked in debug builds.
//!
//! Locks are taken from the lowest level to the highest, never the other
//! way (see [`crate::mutex`] for the order and why). Debug builds keep a
//! per-process count of held locks per level and assert on an inversion;
//! release builds compile the bookkeeping away. Processes are
//! single-threaded, so a process-global table is exactly "what this
//! process holds".

use core::cell::Cell;

/// Where a lock sits in the order. `Unordered` opts out of checking (for
/// leaf locks that never nest, e.g. a statistics block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LockLevel {
    /// Not checked.
    Unordered = 0,
    /// A hash-table bucket ([`crate::ShmHashTable`]).
    Bucket = 1,
    /// A transaction's reply lock (owned by tm).
    Reply = 2,
    /// A location-table bucket (usrloc): a script may look up contacts
    /// while tm holds its locks, never the other way round.
    Location = 3,
    /// A timer-wheel slot ([`crate::ShmTimerWheel`]).
    TimerSlot = 4,
    /// The allocator, innermost.
    Alloc = 5,
}

const LEVELS: usize = 6;

std::thread_local! {
    /// Locks of each level this process holds now. Thread-local rather than
    /// static only so that libtest's threads do not see each other's locks;
    /// ser's processes have a single thread, where the two are the same.
    static HELD: Cell<[u32; LEVELS]> = const { Cell::new([0; LEVELS]) };
}

/// Records that a lock of `level` is being taken. With `check`, asserts
/// (debug builds) that no lock of a higher level is held; call it *before*
/// blocking, so an inversion is reported instead of deadlocking. A
/// `try_lock` cannot deadlock and records without checking.
#[inline]
pub(crate) fn acquire(level: LockLevel, check: bool) {
    if cfg!(debug_assertions) && level != LockLevel::Unordered {
        let l = level as usize;
        let mut held = HELD.get();
        let inverted = held.iter().skip(l + 1).any(|&h| h != 0);
        assert!(
            !(check && inverted),
            "shm lock order violated: taking {level:?} while holding {:?}",
            highest_held()
        );
        if let Some(h) = held.get_mut(l) {
            *h += 1;
        }
        HELD.set(held);
    }
}

/// Records the release of a lock of `level`.
#[inline]
pub(crate) fn release(level: LockLevel) {
    if cfg!(debug_assertions) && level != LockLevel::Unordered {
        let mut held = HELD.get();
        if let Some(h) = held.get_mut(level as usize) {
            *h = h.saturating_sub(1);
        }
        HELD.set(held);
    }
}

/// The highest level this process holds (debug builds; `None` otherwise
/// or when nothing ordered is held).
pub fn highest_held() -> Option<LockLevel> {
    const ALL: [LockLevel; LEVELS] = [
        LockLevel::Unordered,
        LockLevel::Bucket,
        LockLevel::Reply,
        LockLevel::Location,
        LockLevel::TimerSlot,
        LockLevel::Alloc,
    ];
    let held = HELD.get();
    ALL.iter()
        .zip(held.iter())
        .rev()
        .find(|(_, &h)| h != 0)
        .map(|(l, _)| *l)
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;
    use crate::ShmMutex;

    #[test]
    fn order_is_tracked() {
        let (a, b) = (ShmMutex::new(), ShmMutex::new());
        {
            let _g = a.lock_at(LockLevel::Bucket);
            let _h = b.lock_at(LockLevel::Alloc);
            assert_eq!(highest_held(), Some(LockLevel::Alloc));
        }
        assert_eq!(highest_held(), None);
        let _h = b.lock_at(LockLevel::TimerSlot);
        // a try_lock may go "backwards": it cannot deadlock
        let t = a.try_lock_at(LockLevel::Bucket);
        assert!(t.is_some());
    }

    #[test]
    #[should_panic(expected = "lock order violated")]
    fn inversion_is_caught() {
        let (a, b) = (ShmMutex::new(), ShmMutex::new());
        let _h = b.lock_at(LockLevel::TimerSlot);
        let _g = a.lock_at(LockLevel::Bucket);
    }
}
