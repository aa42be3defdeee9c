//! A process-shared mutex on a futex word, and a lock+data pair.
//!
//! # Lock order
//!
//! The server takes shared locks in this order, never the reverse:
//!
//! 1. hash-table bucket lock ([`crate::ShmHashTable`]),
//! 2. transaction reply lock (a `ShmMutex` inside the transaction),
//! 3. location-table bucket lock (usrloc's contacts),
//! 4. timer-wheel slot lock ([`crate::ShmTimerWheel`]),
//! 5. allocator lock (inside [`crate::Region`]).
//!
//! Debug builds check the order ([`ShmMutex::lock_at`], [`LockLevel`]).
//! Timer callbacks run with no wheel lock held, so they may start again at
//! the top. Each lock is held for a few hundred instructions at most.
//!
//! # Dead owners
//!
//! The futex word holds the owner's pid (bit 31 says somebody may sleep in
//! the kernel), so the owner is recorded by the very CAS that takes the
//! lock: there is no instant at which the lock is held by nobody known. A
//! waiter sleeps at most [`OWNER_CHECK`] at a time; each time it wakes
//! with the lock still held it asks whether the owner still exists
//! ([`futex::process_is_dead`]). If not, it takes the lock over with a CAS
//! from the dead owner's word to its own (so of several waiters exactly
//! one wins) and its guard says [`ShmMutexGuard::owner_died`]: the data
//! may be half-updated, and the structure that owns the lock repairs it
//! before use (the hash table, the timer wheel and the allocator do).
//!
//! A dead child stays a zombie, which `kill(pid, 0)` still finds, until
//! the supervisor reaps it (at once, on SIGCHLD), so a takeover waits for
//! that. A pid reused by a new process within that time would keep the
//! lock's waiters waiting; Linux hands pids out cyclically, so that takes
//! ~4 million forks in between.

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::futex;
use crate::lockorder::{self, LockLevel};
use crate::safe::ShmSafe;

const FREE: u32 = 0;
/// Set beside the owner's pid: somebody may be sleeping in the kernel, so
/// unlock must wake. Pids stay below 2^22 on Linux.
const WAITERS: u32 = 1 << 31;

/// Spins before sleeping: short critical sections usually end within a
/// few hundred cycles, and a futex sleep/wake pair costs microseconds.
const SPINS: u32 = 64;

/// How long a waiter sleeps before asking whether the owner still lives.
pub const OWNER_CHECK: core::time::Duration = core::time::Duration::from_millis(20);

/// A mutex usable from every process sharing the region. Zeroed memory is
/// an unlocked mutex.
#[repr(C)]
#[derive(Default)]
pub struct ShmMutex {
    /// 0 when free, else the owner's pid, with [`WAITERS`] maybe set.
    state: AtomicU32,
    /// Locks taken over from a dead owner since the region was made
    /// (statistics and tests).
    takeovers: AtomicU32,
}

// SAFETY: two atomics; any value is a (possibly locked) mutex.
unsafe impl ShmSafe for ShmMutex {}

impl ShmMutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(FREE),
            takeovers: AtomicU32::new(0),
        }
    }

    /// Takes the lock, sleeping if needed. Uncontended: one CAS, no syscall.
    /// Not checked against the lock order; prefer [`Self::lock_at`].
    #[inline]
    pub fn lock(&self) -> ShmMutexGuard<'_> {
        self.lock_at(LockLevel::Unordered)
    }

    /// Takes the lock as one of `level` in the server's lock order (checked
    /// in debug builds).
    #[inline]
    pub fn lock_at(&self, level: LockLevel) -> ShmMutexGuard<'_> {
        lockorder::acquire(level, true);
        let me = futex::current_pid();
        let owner_died = self
            .state
            .compare_exchange(FREE, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
            && self.lock_slow(me);
        ShmMutexGuard {
            m: self,
            level,
            owner_died,
        }
    }

    /// Returns true when the lock was taken over from a dead owner.
    #[cold]
    fn lock_slow(&self, me: u32) -> bool {
        for _ in 0..SPINS {
            if self.state.load(Ordering::Relaxed) == FREE
                && self
                    .state
                    .compare_exchange(FREE, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return false;
            }
            core::hint::spin_loop();
        }
        // From here on we take the lock with WAITERS set: we may have been
        // sleeping beside others, and whoever unlocks must wake them.
        let mine = me | WAITERS;
        loop {
            let cur = self.state.load(Ordering::Relaxed);
            if cur == FREE {
                if self
                    .state
                    .compare_exchange(FREE, mine, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return false;
                }
                continue;
            }
            if cur & WAITERS == 0
                && self
                    .state
                    .compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let word = cur | WAITERS;
            if !futex::wait_for(&self.state, word, OWNER_CHECK) {
                continue;
            }
            // Timed out with the word unchanged: is its owner still there?
            if futex::process_is_dead(word & !WAITERS)
                && self
                    .state
                    .compare_exchange(word, mine, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                self.takeovers.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
    }

    /// Takes the lock only if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> Option<ShmMutexGuard<'_>> {
        self.try_lock_at(LockLevel::Unordered)
    }

    /// [`Self::try_lock`] for a lock of `level`. Never blocks, so it is
    /// allowed against the order; it is still recorded as held.
    #[inline]
    pub fn try_lock_at(&self, level: LockLevel) -> Option<ShmMutexGuard<'_>> {
        self.state
            .compare_exchange(
                FREE,
                futex::current_pid(),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        lockorder::acquire(level, false);
        Some(ShmMutexGuard {
            m: self,
            level,
            owner_died: false,
        })
    }

    /// [`Self::try_lock_at`], except that a lock held by a dead process is
    /// taken over (the guard says so). For a lock only ever try-locked
    /// (the timer wheel's expiry lock), which no waiter would recover.
    /// Costs a `kill(pid, 0)` when the lock is busy.
    pub fn try_lock_recovering(&self, level: LockLevel) -> Option<ShmMutexGuard<'_>> {
        if let Some(g) = self.try_lock_at(level) {
            return Some(g);
        }
        let word = self.state.load(Ordering::Relaxed);
        let owner = word & !WAITERS;
        if owner == 0 || !futex::process_is_dead(owner) {
            return None;
        }
        self.state
            .compare_exchange(
                word,
                futex::current_pid() | (word & WAITERS),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        self.takeovers.fetch_add(1, Ordering::Relaxed);
        lockorder::acquire(level, false);
        Some(ShmMutexGuard {
            m: self,
            level,
            owner_died: true,
        })
    }

    #[inline]
    fn unlock(&self) {
        if self.state.swap(FREE, Ordering::Release) & WAITERS != 0 {
            futex::wake(&self.state, 1);
        }
    }

    /// Whether someone holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != FREE
    }

    /// The pid of the current holder, if any (a snapshot).
    pub fn owner_pid(&self) -> Option<u32> {
        match self.state.load(Ordering::Relaxed) & !WAITERS {
            0 => None,
            p => Some(p),
        }
    }

    /// True if the lock is held and its owner no longer exists.
    pub fn is_held_by_dead_process(&self) -> bool {
        self.owner_pid().is_some_and(futex::process_is_dead)
    }

    /// How many times this lock was taken over from a dead owner.
    pub fn takeovers(&self) -> u32 {
        self.takeovers.load(Ordering::Relaxed)
    }

    /// Releases a lock whose owner is gone.
    ///
    /// # Safety
    ///
    /// Only for recovery after the owner died: the data the lock protects
    /// may be half-updated, and the caller must know it can repair or
    /// ignore that. Calling it while a live process holds the lock breaks
    /// mutual exclusion.
    pub unsafe fn force_unlock(&self) {
        self.unlock();
    }
}

impl fmt::Debug for ShmMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmMutex")
            .field("owner", &self.owner_pid())
            .field("takeovers", &self.takeovers())
            .finish()
    }
}

/// Holds a [`ShmMutex`]; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ShmMutexGuard<'a> {
    m: &'a ShmMutex,
    level: LockLevel,
    owner_died: bool,
}

impl ShmMutexGuard<'_> {
    /// True when this lock was taken over from a process that died holding
    /// it: what it protects may be half-updated and must be checked.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }
}

impl Drop for ShmMutexGuard<'_> {
    fn drop(&mut self) {
        self.m.unlock();
        lockorder::release(self.level);
    }
}

/// A mutex and the data it protects, laid out for shared memory.
#[repr(C)]
#[derive(Default)]
pub struct ShmLocked<T> {
    mutex: ShmMutex,
    data: UnsafeCell<T>,
}

// SAFETY: a `ShmMutex` plus a `ShmSafe` value (UnsafeCell is transparent).
unsafe impl<T: ShmSafe> ShmSafe for ShmLocked<T> {}
// SAFETY: access to `data` is serialised by the mutex, as for std's Mutex.
unsafe impl<T: Send> Sync for ShmLocked<T> {}

impl<T> ShmLocked<T> {
    /// Wraps `value` in an unlocked lock.
    pub const fn new(value: T) -> Self {
        Self {
            mutex: ShmMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Locks and gives access to the data (unordered; see `lock_at`).
    #[inline]
    pub fn lock(&self) -> ShmGuard<'_, T> {
        self.lock_at(LockLevel::Unordered)
    }

    /// Locks as a lock of `level` in the server's order.
    #[inline]
    pub fn lock_at(&self, level: LockLevel) -> ShmGuard<'_, T> {
        let g = self.mutex.lock_at(level);
        ShmGuard { lock: self, _g: g }
    }

    /// Locks only if free right now.
    #[inline]
    pub fn try_lock(&self) -> Option<ShmGuard<'_, T>> {
        let g = self.mutex.try_lock()?;
        Some(ShmGuard { lock: self, _g: g })
    }

    /// The underlying mutex (for `owner_pid` and dead-owner checks).
    pub fn mutex(&self) -> &ShmMutex {
        &self.mutex
    }

    /// Exclusive access without locking (we hold `&mut`, so nobody else can).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// Access to the data of a locked [`ShmLocked`].
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ShmGuard<'a, T> {
    lock: &'a ShmLocked<T>,
    _g: ShmMutexGuard<'a>,
}

impl<T> ShmGuard<'_, T> {
    /// See [`ShmMutexGuard::owner_died`].
    pub fn owner_died(&self) -> bool {
        self._g.owner_died()
    }
}

impl<T> Deref for ShmGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves we hold the mutex, so no other process or
        // guard accesses `data` until it is dropped.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for ShmGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this borrow unique
        // within this process.
        unsafe { &mut *self.lock.data.get() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_is_unlocked_and_owner_is_recorded() {
        let m = ShmMutex::default();
        assert!(!m.is_locked());
        {
            let _g = m.lock();
            assert!(m.is_locked());
            assert_eq!(m.owner_pid(), Some(std::process::id()));
            assert!(m.try_lock().is_none());
            assert!(!m.is_held_by_dead_process());
        }
        assert!(!m.is_locked());
        assert_eq!(m.owner_pid(), None);
        assert!(m.try_lock().is_some());
    }

    #[test]
    fn dead_owner_is_detected() {
        let m = ShmMutex::default();
        // pid_max on Linux is at most 2^22, so this pid cannot exist.
        m.state.store(0x7fff_fff0, Ordering::Relaxed);
        assert!(m.is_held_by_dead_process());
        // SAFETY: test: the "owner" is fictitious.
        unsafe { m.force_unlock() };
        assert!(!m.is_locked());
    }

    #[test]
    fn a_dead_owners_lock_is_taken_over_and_says_so() {
        let m = ShmMutex::default();
        m.state.store(0x7f_fff0, Ordering::Relaxed);
        let g = m.lock();
        assert!(g.owner_died());
        assert_eq!(m.owner_pid(), Some(std::process::id()));
        assert_eq!(m.takeovers(), 1);
        drop(g);
        assert!(!m.lock().owner_died());
    }

    #[test]
    fn locked_data_guard() {
        let l = ShmLocked::new(5u64);
        *l.lock() += 1;
        assert_eq!(*l.lock(), 6);
        let g = l.lock();
        assert!(l.try_lock().is_none());
        drop(g);
        assert!(l.try_lock().is_some());
    }
}
