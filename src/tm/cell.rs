//! A transaction in shared memory (SER's "cell").
//!
//! Layout: the immutable part (identity, the cloned request, the matching
//! key, where it came from) is written once before the cell is linked into
//! the hash table and read without locks afterwards; everything that
//! changes lives in [`CellState`] behind the cell's reply lock, including
//! the sans-io machine [`Tx`]. Buffers (the request clone, each branch's
//! request, replies) are separate shm blocks referenced by slices, so a
//! single-branch INVITE costs one cell plus three or four byte blocks.
//!
//! Lifetime: a reference count. The hash table holds one reference while
//! the cell is linked, the armed timer holds one, and every process working
//! on the cell holds one through a [`CellRef`]. The cell and its buffers
//! are freed when the count drops to zero — which can only happen after
//! the machine said `Terminate` and the cell was unlinked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::AtomicU32;

use shm::{
    Linked, ListLink, Region, ShmError, ShmGuard, ShmLocked, ShmOff, ShmRefCount, ShmSlice,
    TimerLink,
};

use crate::tm::fsm::{Tx, MAX_BRANCHES};
use crate::tm::key::Key;

shm::shm_struct! {
    /// A socket address as plain data.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Peer {
        pub ip: [u8; 16],
        pub port: u16,
        /// 4 or 6; 0 = unset.
        pub family: u8,
        /// Index of our socket to send from.
        pub sock: u8,
    }
}

impl Peer {
    pub fn new(addr: SocketAddr, sock: usize) -> Peer {
        let mut ip = [0u8; 16];
        let family = match addr.ip() {
            IpAddr::V4(v4) => {
                ip[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                ip.copy_from_slice(&v6.octets());
                6
            }
        };
        Peer {
            ip,
            port: addr.port(),
            family,
            sock: u8::try_from(sock).unwrap_or(0),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        let ip = if self.family == 6 {
            IpAddr::V6(Ipv6Addr::from(self.ip))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.ip[0], self.ip[1], self.ip[2], self.ip[3],
            ))
        };
        SocketAddr::new(ip, self.port)
    }
}

shm::shm_struct! {
    /// Per-branch buffers and destination.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct BranchData {
        /// The request as sent (retransmissions, ACK/CANCEL building).
        pub request: ShmSlice<u8>,
        /// The branch's final reply, ready to send upstream (our Via removed).
        pub reply: ShmSlice<u8>,
        /// Our CANCEL for this branch, once built.
        pub cancel: ShmSlice<u8>,
        pub dst: Peer,
    }
}

shm::shm_struct! {
    /// What changes during the transaction: guarded by the reply lock.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct CellState {
        pub tx: Tx,
        /// Last reply sent upstream, for retransmission.
        pub uas_reply: ShmSlice<u8>,
        /// The request with the request route's edits applied (no Via, no
        /// R-URI change): the base of branches added by a failure route.
        pub fwd_base: ShmSlice<u8>,
        /// The R-URI when the request was relayed; a failure route starts
        /// from it each time (tm docs).
        pub relay_uri: ShmSlice<u8>,
        /// Armed routes, index + 1 (0 = none).
        pub on_failure: u16,
        pub on_reply: u16,
        pub on_branch: u16,
        /// 1 while this cell is counted in the `waiting` gauge (see
        /// `driver::sync_wait_gauge`).
        pub wait_counted: u16,
        /// Script flags saved with the transaction.
        pub msg_flags: u32,
        /// Local UAC completion report kind (0 = none) and its parameter.
        pub uac_cb: u32,
        pub uac_param: ShmSlice<u8>,
        /// The request's AVPs at relay time (`route::avp_codec`), for the
        /// failure and onreply routes; a failure route's changes are kept.
        pub avps: ShmSlice<u8>,
        /// The DNS addresses branches have left to fail over to
        /// (`tm::hop`); empty unless a next hop was a name with several.
        pub hops: ShmSlice<u8>,
        pub br: [BranchData; MAX_BRANCHES],
    }
}

shm::shm_struct! {
    /// One transaction.
    pub struct Cell {
        pub link: ListLink<Cell>,
        /// The cell's only timer, armed at the machine's next deadline.
        pub timer: TimerLink,
        pub refs: ShmRefCount,
        /// Bucket index (16-bit hash of Call-ID and CSeq number).
        pub hash: u32,
        /// Per-bucket label: with `hash`, the transaction id in our Via
        /// branch. Set once under the bucket lock before linking.
        pub label: AtomicU32,
        /// The request method (`Method` as u32).
        pub method: u32,
        /// The received request, byte for byte.
        pub req: ShmSlice<u8>,
        /// Where matching looks, as spans into `req`.
        pub key: Key,
        /// Upstream: where the request came from and the socket it hit.
        pub src: Peer,
        pub state: ShmLocked<CellState>,
    }
}

impl Linked for Cell {
    fn link(&self) -> &ListLink<Self> {
        &self.link
    }
}

impl Cell {
    pub fn req_bytes<'r>(&self, region: &'r Region) -> &'r [u8] {
        region.slice(self.req)
    }

    /// The reply lock (lock order: bucket → reply lock → timer slot → allocator).
    ///
    /// Taken over from a process that died holding it, the state may be
    /// an update half done. Mostly it is not (a process holds the lock far
    /// longer sending what the machine decided than inside the machine),
    /// so a state the machine could have left
    /// ([`crate::tm::fsm::Tx::is_sane`]) goes on, the timer redoing what is
    /// due; one it could not is quarantined
    /// ([`crate::tm::fsm::Tx::quarantine`]) and the transaction ends at its
    /// next timer. Its buffers stay sound either way: every replacement
    /// allocates, publishes, then frees ([`replace_bytes`]).
    pub fn lock(&self) -> ShmGuard<'_, CellState> {
        let mut g = self.state.lock_at(shm::LockLevel::Reply);
        if g.owner_died() {
            let sane = g.tx.is_sane();
            if !sane {
                g.tx.quarantine(shm::monotonic_ms());
            }
            crate::log_limited!(
                log::Level::Error,
                "tm: a process died holding the reply lock of transaction {}:{}; {}",
                self.hash,
                self.label.load(std::sync::atomic::Ordering::Relaxed),
                if sane {
                    "its state is whole and it goes on"
                } else {
                    "its state was half updated and it is ended"
                }
            );
        }
        g
    }
}

/// Copy `bytes` into a new shm block (empty slice for empty input).
pub fn store_bytes(region: &Region, bytes: &[u8]) -> Result<ShmSlice<u8>, ShmError> {
    region.alloc_slice(bytes)
}

/// Replace `slot` with a copy of `bytes`, freeing the old block.
pub fn replace_bytes(
    region: &Region,
    slot: &mut ShmSlice<u8>,
    bytes: &[u8],
) -> Result<(), ShmError> {
    let new = store_bytes(region, bytes)?;
    let old = std::mem::replace(slot, new);
    // The slot names the new block before the old one is freed, even
    // for a process killed in between (a leak, never a dangling slot):
    // `slot` is a `&mut`, which alone would let the store sink past the
    // call.
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    region.free_slice(old);
    Ok(())
}

/// Free every block the cell owns, then the cell.
///
/// Only called when the reference count reached zero: no other process
/// can reach the cell any more (it is unlinked and its timer is idle).
fn free_cell(region: &Region, off: ShmOff<Cell>) {
    let cell = region.get(off);
    {
        let st = cell.lock();
        for b in st.br.iter() {
            region.free_slice(b.request);
            region.free_slice(b.reply);
            region.free_slice(b.cancel);
        }
        region.free_slice(st.uas_reply);
        region.free_slice(st.fwd_base);
        region.free_slice(st.relay_uri);
        region.free_slice(st.uac_param);
        region.free_slice(st.avps);
        region.free_slice(st.hops);
    }
    region.free_slice(cell.req);
    region.free(off);
    crate::tm::stats::note_freed();
}

/// A counted reference to a cell, released on drop.
///
/// While it lives, the reference is on record in this process's slot of
/// the shared process list (`proc::shared::hold`), so that if the process
/// dies holding it, the supervisor releases it (`store::release_orphans`) and
/// the cell is not kept forever. The count is raised before the record is
/// written and the record cleared before the count drops: a death between
/// the two can leak one reference, never release one twice.
pub struct CellRef {
    region: &'static Region,
    off: ShmOff<Cell>,
    held: Option<u8>,
}

impl CellRef {
    /// Take a new reference to a cell the caller can already reach safely
    /// (under its bucket lock, or holding another reference).
    pub fn acquire(region: &'static Region, off: ShmOff<Cell>) -> CellRef {
        region.get(off).refs.inc();
        Self::adopt(region, off)
    }

    /// Adopt a reference the caller already owns (the creation reference,
    /// or the one a fired timer held).
    pub fn adopt(region: &'static Region, off: ShmOff<Cell>) -> CellRef {
        let held = crate::proc::shared::hold(off.get());
        CellRef { region, off, held }
    }

    /// Give up ownership without releasing (it is counted elsewhere now).
    pub fn into_raw(self) -> ShmOff<Cell> {
        let off = self.off;
        if let Some(i) = self.held {
            crate::proc::shared::unhold(i);
        }
        std::mem::forget(self);
        off
    }

    pub fn off(&self) -> ShmOff<Cell> {
        self.off
    }

    pub fn cell(&self) -> &'static Cell {
        self.region.get(self.off)
    }

    pub fn region(&self) -> &'static Region {
        self.region
    }
}

impl Drop for CellRef {
    fn drop(&mut self) {
        if let Some(i) = self.held {
            crate::proc::shared::unhold(i);
        }
        release(self.region, self.off);
    }
}

/// Drop one reference; the last one frees the cell.
pub fn release(region: &Region, off: ShmOff<Cell>) {
    if region.get(off).refs.dec() {
        free_cell(region, off);
    }
}

#[cfg(test)]
mod tests {
    use nix::sys::wait::{waitpid, WaitStatus};

    use super::*;
    use crate::os::{fork_child, ForkResult};
    use crate::tm::fsm::{BranchPhase, Phase, TimerCfg};

    /// A process dies holding a transaction's reply lock in the middle of
    /// an update: the next locker takes the lock over; a torn state (a
    /// branch counted but not written) is quarantined — in Wait, every
    /// branch given up, no timer but the end at once — a whole one goes on.
    #[test]
    fn a_reply_lock_taken_over_from_a_dead_process_quarantines_a_torn_transaction() {
        for torn in [true, false] {
            reply_lock_owner_dies(torn);
        }
    }

    fn reply_lock_owner_dies(torn: bool) {
        let region: &'static Region = Box::leak(Box::new(Region::new(1 << 20).expect("region")));
        let off = region
            .alloc(Cell {
                link: ListLink::new(),
                timer: Default::default(),
                refs: ShmRefCount::new(1),
                hash: 7,
                label: AtomicU32::new(3),
                method: 0,
                req: ShmSlice::default(),
                key: Key::default(),
                src: Peer::default(),
                state: ShmLocked::new(CellState {
                    tx: Tx::new(true, false, false),
                    ..Default::default()
                }),
            })
            .expect("cell");
        let cell = region.get(off);
        let cfg = TimerCfg::default();
        {
            let mut st = cell.lock();
            st.tx.add_branch(1000, &cfg, false, false).expect("branch");
        }
        match fork_child().expect("fork") {
            ForkResult::Child => {
                let mut st = cell.lock();
                if torn {
                    // A second branch counted, not yet written: no state
                    // the machine leaves.
                    st.tx.nbranches = 2;
                } else {
                    // Half of a retransmission's update: still whole.
                    st.tx.branches[0].retr_step = 5;
                }
                std::mem::forget(st);
                std::process::exit(0);
            }
            ForkResult::Parent { child } => {
                assert!(matches!(waitpid(child, None), Ok(WaitStatus::Exited(_, 0))));
            }
        }
        let before = shm::monotonic_ms();
        let st = cell.lock();
        if !torn {
            assert_eq!(st.tx.phase(), Phase::Proceeding, "a whole state goes on");
            assert_eq!(st.tx.branches[0].retr_step, 5);
            return;
        }
        assert_eq!(st.tx.phase(), Phase::Wait);
        assert_eq!(st.tx.branches[0].phase(), BranchPhase::Final);
        let end = st.tx.next_deadline().expect("the end of Wait");
        assert!(
            end >= before && end <= shm::monotonic_ms(),
            "{end} vs {before}"
        );
        drop(st);
        assert_eq!(cell.lock().tx.phase(), Phase::Wait, "quarantined once");
    }
}
