//! Shared memory for ser's processes.
//!
//! The supervisor maps one region ([`Region::new`] / [`init_global`]) before
//! forking; every child inherits it at the same address. Everything shared
//! lives inside: the allocator's own state, the transaction table
//! ([`ShmHashTable`]), the timer wheel ([`ShmTimerWheel`]), statistics and
//! the process table. Objects refer to each other with [`ShmOff`] offsets;
//! only [`ShmSafe`] types may be placed in the region.
//!
//! Locks are process-shared futexes ([`ShmMutex`], [`ShmLocked`]); the lock
//! order is written down in [`mutex`]. This crate knows nothing of SIP.
//!
//! This is the one crate of ser with `unsafe`; each block carries a
//! `// SAFETY:` comment with the invariant it relies on.

pub mod alloc;
pub mod clock;
pub mod error;
pub mod futex;
#[doc(hidden)]
pub mod fuzz_alloc;
pub mod killpoint;
pub mod lockorder;
pub mod mutex;
pub mod off;
pub mod refcount;
pub mod region;
pub mod safe;
pub mod table;
pub mod test_rng;
pub mod wheel;

pub use alloc::{AllocStats, MAX_ALIGN};
pub use clock::monotonic_ms;
pub use error::ShmError;
pub use futex::{current_pid, process_is_dead, set_membership};
pub use lockorder::LockLevel;
pub use mutex::{ShmGuard, ShmLocked, ShmMutex, ShmMutexGuard};
pub use off::{AtomicOff, ShmOff, ShmSlice};
pub use refcount::ShmRefCount;
pub use region::{global, init_global, try_global, Region, DEFAULT_SIZE, MAX_REGION, ROOT_SLOTS};
pub use safe::ShmSafe;
pub use table::{BucketGuard, Linked, ListLink, ShmHashTable};
pub use test_rng::TestRng;
pub use wheel::{ShmTimerWheel, TimerLink};

#[cfg(test)]
pub(crate) mod testbuf {
    use crate::Region;

    /// A region over a plain heap buffer, for unit tests.
    pub(crate) struct TestRegion {
        _mem: Vec<u128>,
        pub(crate) r: Region,
    }

    pub(crate) fn region(size: usize) -> TestRegion {
        let mut mem = vec![0u128; size / 16];
        // SAFETY: the buffer is zeroed, 16-aligned (u128), exclusively used
        // through the region, and kept alive next to it.
        let r = unsafe { Region::from_raw(mem.as_mut_ptr().cast(), size) };
        TestRegion {
            _mem: mem,
            r: r.expect("test region"),
        }
    }
}
