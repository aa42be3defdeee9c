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
//! The owner's pid is stored beside the futex word. It is diagnostic (it is
//! written just after the acquiring CAS), but lets the supervisor ask
//! [`ShmMutex::is_held_by_dead_process`] when a child dies.

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::futex;
use crate::lockorder::{self, LockLevel};
use crate::safe::ShmSafe;

const FREE: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and somebody may be sleeping in the kernel: unlock must wake.
const CONTENDED: u32 = 2;

/// Spins before sleeping: short critical sections usually end within a
/// few hundred cycles, and a futex sleep/wake pair costs microseconds.
const SPINS: u32 = 64;

/// A mutex usable from every process sharing the region. Zeroed memory is
/// an unlocked mutex.
#[repr(C)]
#[derive(Default)]
pub struct ShmMutex {
    state: AtomicU32,
    owner: AtomicU32,
}

// SAFETY: two atomics; any value is a (possibly locked) mutex.
unsafe impl ShmSafe for ShmMutex {}

impl ShmMutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(FREE),
            owner: AtomicU32::new(0),
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
        if self
            .state
            .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        self.owner.store(futex::current_pid(), Ordering::Relaxed);
        ShmMutexGuard { m: self, level }
    }

    #[cold]
    fn lock_slow(&self) {
        for _ in 0..SPINS {
            if self.state.load(Ordering::Relaxed) == FREE
                && self
                    .state
                    .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        // From here on we announce ourselves as a (possible) sleeper by
        // setting CONTENDED; whoever unlocks will then issue a wake.
        while self.state.swap(CONTENDED, Ordering::Acquire) != FREE {
            futex::wait(&self.state, CONTENDED);
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
            .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.owner.store(futex::current_pid(), Ordering::Relaxed);
        lockorder::acquire(level, false);
        Some(ShmMutexGuard { m: self, level })
    }

    #[inline]
    fn unlock(&self) {
        self.owner.store(0, Ordering::Relaxed);
        if self.state.swap(FREE, Ordering::Release) == CONTENDED {
            futex::wake(&self.state, 1);
        }
    }

    /// Whether someone holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != FREE
    }

    /// The pid recorded by the current holder, if any (diagnostic: there is
    /// a window of a few instructions after acquisition where it is 0).
    pub fn owner_pid(&self) -> Option<u32> {
        if !self.is_locked() {
            return None;
        }
        match self.owner.load(Ordering::Relaxed) {
            0 => None,
            p => Some(p),
        }
    }

    /// True if the lock is held and its recorded owner no longer exists:
    /// the supervisor's test after a child died.
    pub fn is_held_by_dead_process(&self) -> bool {
        self.owner_pid().is_some_and(futex::process_is_dead)
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
            .field("state", &self.state.load(Ordering::Relaxed))
            .field("owner", &self.owner.load(Ordering::Relaxed))
            .finish()
    }
}

/// Holds a [`ShmMutex`]; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ShmMutexGuard<'a> {
    m: &'a ShmMutex,
    level: LockLevel,
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
        m.state.store(LOCKED, Ordering::Relaxed);
        // pid_max on Linux is at most 2^22, so this pid cannot exist.
        m.owner.store(0x7fff_fff0, Ordering::Relaxed);
        assert!(m.is_held_by_dead_process());
        // SAFETY: test: the "owner" is fictitious.
        unsafe { m.force_unlock() };
        assert!(!m.is_locked());
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
