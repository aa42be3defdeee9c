//! Direct writes: the shared state that lets any process write a message
//! straight into a plain TCP connection's socket, instead of handing it
//! to the TCP main process (one wakeup and four syscalls less per
//! message; `scripts/bench` relay-tcp).
//!
//! The main process still owns every connection. It hands a duplicate of
//! a connection's socket to a process that asks ([`super::direct`]), and
//! keeps one [`DirectSlot`] per connection in shared memory (slot
//! `id % len`; a connection whose slot is taken just has no direct
//! writes). Everyone writes a connection's socket under the slot's lock,
//! so messages never interleave, and the flags keep the byte order:
//!
//! - `OPEN`: connected, plain TCP, not closing — direct writes allowed;
//! - `QUEUED`: the main process has bytes of this connection waiting for
//!   the socket; a direct write now would overtake them;
//! - `pending`: messages handed to the main process for this connection
//!   by processes that hold its socket (because of `QUEUED`, or the rest
//!   of a short write) and not yet taken from the link: they too must
//!   not be overtaken, so direct writes wait until it is 0.
//! - `BROKEN`: a short write whose rest could not be handed over: the
//!   stream holds half a message, and the main process closes it.
//!
//! The main process recomputes `OPEN` and `QUEUED` under the lock each
//! time it writes, and clears the slot (id 0) when it closes or starts
//! closing the connection, before shutting the socket so that duplicates
//! elsewhere fail instead of keeping it alive.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use shm::{Region, ShmError, ShmMutex, ShmMutexGuard};

/// Slots in the shared table: connections beyond it (by id) use the link.
pub const SLOTS: usize = 4096;

pub const OPEN: u32 = 1;
pub const QUEUED: u32 = 2;
pub const BROKEN: u32 = 4;

shm::shm_struct! {
    /// One connection's direct-write state; fields change under `lock`
    /// (except `writes`, a counter read by the main process's sweep).
    #[derive(Debug, Default)]
    pub struct DirectSlot {
        pub lock: ShmMutex,
        /// The connection using the slot; 0: free.
        pub id: AtomicU32,
        pub flags: AtomicU32,
        pub pending: AtomicU32,
        /// Messages written directly, so the main process knows the
        /// connection is in use (`tcp_connection_lifetime`).
        pub writes: AtomicU32,
    }
}

/// The slot table (shared memory, or a test's own).
#[derive(Debug, Clone, Copy)]
pub struct Slots(&'static [DirectSlot]);

/// A slot, locked, known to belong to the connection it was asked for.
pub struct Held<'a> {
    pub slot: &'a DirectSlot,
    _g: ShmMutexGuard<'a>,
}

impl Held<'_> {
    pub fn flags(&self) -> u32 {
        self.slot.flags.load(Ordering::Relaxed)
    }

    pub fn set_flags(&self, f: u32) {
        self.slot.flags.store(f, Ordering::Relaxed);
    }

    pub fn pending(&self) -> u32 {
        self.slot.pending.load(Ordering::Relaxed)
    }

    pub fn add_pending(&self) {
        self.slot.pending.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sub_pending(&self) {
        let p = self.pending();
        self.slot
            .pending
            .store(p.saturating_sub(1), Ordering::Relaxed);
    }

    /// A direct write may go now.
    pub fn writable(&self) -> bool {
        self.flags() & (OPEN | QUEUED | BROKEN) == OPEN && self.pending() == 0
    }

    /// Frees the slot (the connection closes or is closing).
    pub fn release(self) {
        self.slot.id.store(0, Ordering::Relaxed);
        self.slot.flags.store(0, Ordering::Relaxed);
        self.slot.pending.store(0, Ordering::Relaxed);
    }
}

impl Slots {
    /// A table over `slots` (tests: a leaked Vec; the server: shm).
    pub fn new(slots: &'static [DirectSlot]) -> Option<Slots> {
        (!slots.is_empty()).then_some(Slots(slots))
    }

    fn slot(&self, id: u32) -> &'static DirectSlot {
        // Non-empty by construction.
        &self.0[id as usize % self.0.len()]
    }

    /// The slot of `id`, locked, if `id` holds it.
    ///
    /// A lock taken over from a process that died holding it means that
    /// process may have died in the middle of a direct write: the stream
    /// may hold half a message, so the connection is marked `BROKEN` (the
    /// main process closes it) and no longer `OPEN`.
    pub fn hold(&self, id: u32) -> Option<Held<'static>> {
        let slot = self.slot(id);
        let g = slot.lock.lock();
        if g.owner_died() && slot.id.load(Ordering::Relaxed) != 0 {
            let f = slot.flags.load(Ordering::Relaxed);
            slot.flags.store((f & !OPEN) | BROKEN, Ordering::Relaxed);
        }
        (id != 0 && slot.id.load(Ordering::Relaxed) == id).then_some(Held { slot, _g: g })
    }

    /// Takes the slot of a new connection if it is free.
    pub fn claim(&self, id: u32, flags: u32) -> bool {
        let slot = self.slot(id);
        let _g = slot.lock.lock();
        if id == 0 || slot.id.load(Ordering::Relaxed) != 0 {
            return false;
        }
        slot.id.store(id, Ordering::Relaxed);
        slot.flags.store(flags, Ordering::Relaxed);
        slot.pending.store(0, Ordering::Relaxed);
        true
    }

    /// Messages written directly on `id` so far (any value if `id` lost
    /// its slot; only changes matter).
    pub fn writes(&self, id: u32) -> u32 {
        self.slot(id).writes.load(Ordering::Relaxed)
    }

    /// A direct writer left half a message on `id`'s stream.
    pub fn is_broken(&self, id: u32) -> bool {
        self.hold(id).is_some_and(|h| h.flags() & BROKEN != 0)
    }
}

static SHARED: OnceLock<Slots> = OnceLock::new();

/// Allocate the slot table. Once, before the fork.
pub fn init(region: &'static Region) -> Result<(), ShmError> {
    if SHARED.get().is_some() {
        return Ok(());
    }
    let s = region.alloc_slice_zeroed::<DirectSlot>(SLOTS)?;
    if let Some(slots) = Slots::new(region.slice(s)) {
        let _ = SHARED.set(slots);
    }
    Ok(())
}

/// The shared slot table, when streams are served.
pub fn shared() -> Option<Slots> {
    SHARED.get().copied()
}

/// A process-local table for tests of the main loop and the senders.
#[cfg(test)]
pub fn for_test(n: usize) -> Slots {
    let v: Vec<DirectSlot> = (0..n).map(|_| DirectSlot::default()).collect();
    Slots(Box::leak(v.into_boxed_slice()))
}

/// The connection id whose socket `tx` holds for `addr` (tests).
#[cfg(test)]
pub fn for_test_id(_slots: Slots, addr: &std::net::SocketAddr, tx: &super::direct::Sender) -> u32 {
    tx.conn_for(addr).expect("a socket held for the address")
}

#[cfg(test)]
mod tests {
    use nix::sys::wait::{waitpid, WaitStatus};

    use super::*;
    use crate::os::{fork_child, ForkResult};

    /// A process killed while it holds a connection's slot (writing to
    /// the socket directly) may have left half a message in the stream:
    /// the next holder finds the connection broken, not open.
    #[test]
    fn a_slot_taken_over_from_a_dead_writer_is_broken() {
        let region: &'static Region = Box::leak(Box::new(Region::new(1 << 20).expect("region")));
        let slots = region.slice(region.alloc_slice_zeroed::<DirectSlot>(8).expect("slots"));
        let slots = Slots::new(slots).expect("slots");
        assert!(slots.claim(5, OPEN));
        assert!(!slots.is_broken(5));
        match fork_child().expect("fork") {
            ForkResult::Child => {
                std::mem::forget(slots.hold(5));
                std::process::exit(0);
            }
            ForkResult::Parent { child } => {
                assert!(matches!(waitpid(child, None), Ok(WaitStatus::Exited(_, 0))));
            }
        }
        assert!(slots.is_broken(5));
        let h = slots.hold(5).expect("still its slot");
        assert_eq!(h.flags() & (OPEN | BROKEN), BROKEN);
    }
}
