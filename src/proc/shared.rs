//! The process list in shared memory, so that any process (the FIFO
//! server answering `ps`, say) sees every sibling, including those forked
//! after it. Slot 0 is the supervisor ("attendant").
//!
//! A slot's description is written before the child is forked and its pid
//! published last (release), so a reader that sees a pid sees its
//! description complete.
//!
//! Each slot also carries the counters of the process in it (messages
//! received, how long they waited in the socket, requests refused by
//! admission control), and the table counts process restarts: the
//! metrics process reads them here, never from a worker's own memory.
//!
//! And each slot carries the process's heartbeat: every child beats from
//! its fork on (the supervisor arms the slot) and the supervisor reports
//! one whose beat stops ([`check_stalls`]). A process that waits for input
//! bounds each wait by [`BEAT_EVERY`] ([`beat_wait`], [`sleep_beating`]),
//! so idle is never mistaken for stalled. A process with several looping
//! threads (the DNS resolver) gives each its lane; the oldest lane counts.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use crate::os::heartbeat::{BEAT_EVERY, BEAT_LANES};
use shm::{Region, ShmError, ShmOff};

/// Room for SER-sized deployments (children × sockets + helpers).
pub const MAX_PROCS: usize = 512;
const DESC_LEN: usize = 80;
/// Counted references one process can have on record at once. A worker
/// holds one or two transactions while it handles a message (a CANCEL
/// and its INVITE), the timer process one while a timer fires; a
/// reference that finds the record full is simply not recorded (and
/// would leak if the process died holding it).
pub const HELD_MAX: usize = 8;
/// A process silent this long is reported as stalled: six beats missed,
/// and above every bounded wait that runs between two beats (a FIFO
/// reply's reader: 1.3 s; one DNS lookup: 2 s).
pub const STALL_AFTER: Duration = Duration::from_secs(3);

shm::shm_struct! {
    pub struct ProcSlot {
        /// 0 = free or not yet forked.
        pub pid: AtomicI32,
        pub len: AtomicU8,
        /// Set by the supervisor while it considers the process stalled.
        pub stalled: AtomicU8,
        pub desc: [AtomicU8; DESC_LEN],
        /// 1 once the process announced it receives SIP messages
        /// ([`mark_receiver`]): only those have the counters below.
        pub receiver: AtomicU8,
        /// SIP messages taken from its socket or link.
        pub received: AtomicU64,
        /// Sum (ns) and number of measured queueing delays: arrival in
        /// the socket (the kernel's stamp) to the read that starts the
        /// message's processing. UDP only; a TCP reader has no stamp.
        pub queued_ns: AtomicU64,
        pub queued_n: AtomicU64,
        /// New requests refused by admission control (stateless 503).
        pub refused: AtomicU64,
        /// Monotonic ms of the last heartbeat of each lane (lane 0: the
        /// process, or its first looping thread); 0 = the lane does not
        /// beat (the slot is free, or the thread is gone).
        pub beat: [AtomicU64; BEAT_LANES],
        /// Offsets (raw) of the objects this process holds a counted
        /// reference on; 0 = empty entry. Only the process itself writes
        /// them while it lives, the supervisor after it died.
        pub held: [AtomicU32; HELD_MAX],
    }
}

shm::shm_struct! {
    pub struct SharedProcs {
        /// Slots handed out so far (never shrinks; a slot whose pid is 0
        /// is skipped).
        pub used: AtomicU32,
        /// Processes started again after they died ([`note_restart`]).
        pub restarts: AtomicU64,
        pub slots: [ProcSlot; MAX_PROCS],
    }
}

static SHARED: OnceLock<(&'static Region, ShmOff<SharedProcs>)> = OnceLock::new();

/// This process's slot (set in each child right after fork).
static OWN: AtomicUsize = AtomicUsize::new(usize::MAX);

fn my_slot() -> Option<&'static ProcSlot> {
    own()
}

fn table() -> Option<&'static SharedProcs> {
    SHARED.get().map(|(r, off)| r.get(*off))
}

/// Allocate the table and describe slot 0. Once, before any fork.
pub fn init(region: &'static Region) -> Result<(), ShmError> {
    let off = region.alloc_zeroed::<SharedProcs>()?;
    if SHARED.set((region, off)).is_err() {
        region.free(off);
        return Ok(());
    }
    if let Some(slot) = reserve("attendant") {
        set_pid(slot, nix::unistd::getpid().as_raw());
    }
    // net's loops beat through these (the layers below do not know us).
    crate::os::heartbeat::install(crate::os::heartbeat::Hooks {
        beat_lane,
        end_lane,
    });
    Ok(())
}

/// Take the next slot and write its description; `None` when the table
/// is full or absent (the process then just does not show in `ps`).
pub fn reserve(desc: &str) -> Option<usize> {
    let t = table()?;
    let i = t.used.fetch_add(1, Ordering::AcqRel) as usize;
    let slot = t.slots.get(i)?;
    let bytes = desc.as_bytes();
    let n = bytes.len().min(DESC_LEN);
    for (d, b) in slot.desc.iter().zip(&bytes[..n]) {
        d.store(*b, Ordering::Relaxed);
    }
    slot.len.store(n as u8, Ordering::Relaxed);
    Some(i)
}

/// Publish the pid of slot `i` (0 marks it gone).
pub fn set_pid(i: usize, pid: i32) {
    if let Some(slot) = table().and_then(|t| t.slots.get(i)) {
        slot.pid.store(pid, Ordering::Release);
    }
}

/// This process receives SIP messages: its counters are worth showing.
pub fn mark_receiver() {
    if let Some(s) = my_slot() {
        s.receiver.store(1, Ordering::Relaxed);
    }
}

/// One message received, with how long it waited in the socket when the
/// kernel stamped its arrival.
pub fn note_received(queued: Option<Duration>) {
    let Some(s) = my_slot() else { return };
    s.received.fetch_add(1, Ordering::Relaxed);
    if let Some(q) = queued {
        let ns = u64::try_from(q.as_nanos()).unwrap_or(u64::MAX);
        s.queued_ns.fetch_add(ns, Ordering::Relaxed);
        s.queued_n.fetch_add(1, Ordering::Relaxed);
    }
}

/// One new request refused by admission control.
pub fn note_refused() {
    if let Some(s) = my_slot() {
        s.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// A process was started again after it died (the supervisor's respawn).
pub fn note_restart() {
    if let Some(t) = table() {
        t.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Process restarts so far.
pub fn restarts() -> u64 {
    table().map_or(0, |t| t.restarts.load(Ordering::Relaxed))
}

/// The counters of one receiving process, as read from shm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverFigures {
    pub slot: usize,
    pub desc: String,
    pub received: u64,
    pub queued_ns: u64,
    pub queued_n: u64,
    pub refused: u64,
}

/// Every live receiving process's counters, in slot order.
pub fn receivers() -> Vec<ReceiverFigures> {
    let Some(t) = table() else { return Vec::new() };
    let used = (t.used.load(Ordering::Acquire) as usize).min(MAX_PROCS);
    t.slots[..used]
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.pid.load(Ordering::Acquire) != 0 && s.receiver.load(Ordering::Relaxed) == 1
        })
        .map(|(slot, s)| ReceiverFigures {
            slot,
            desc: desc_of(s),
            received: s.received.load(Ordering::Relaxed),
            queued_ns: s.queued_ns.load(Ordering::Relaxed),
            queued_n: s.queued_n.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
        })
        .collect()
}

/// Is `pid` one of the server's processes? `None` when the table cannot
/// tell: there is none (tests), or it overflowed and some process has no
/// slot. Every process publishes its own pid in its slot before it takes
/// any shm lock, and the supervisor clears it only once the process is
/// reaped: this is the membership test [`shm::set_membership`] wants.
pub fn is_member(pid: u32) -> Option<bool> {
    let t = table()?;
    let used = t.used.load(Ordering::Acquire) as usize;
    if used > MAX_PROCS {
        return None;
    }
    let pid = i32::try_from(pid).ok()?;
    Some(
        t.slots[..used]
            .iter()
            .any(|s| s.pid.load(Ordering::Acquire) == pid),
    )
}

/// Mark the process `pid` as gone. Its record of held references stays,
/// for [`take_held`].
pub fn forget(pid: i32) {
    let Some(t) = table() else { return };
    let used = (t.used.load(Ordering::Acquire) as usize).min(MAX_PROCS);
    for s in &t.slots[..used] {
        if s.pid.load(Ordering::Acquire) == pid {
            s.pid.store(0, Ordering::Release);
            for b in &s.beat {
                b.store(0, Ordering::Relaxed);
            }
            s.stalled.store(0, Ordering::Relaxed);
        }
    }
}

/// In a freshly forked child: slot `i` is ours (for [`beat`] and [`hold`]).
pub fn set_own_slot(i: usize) {
    OWN.store(i, Ordering::Relaxed);
}

fn own() -> Option<&'static ProcSlot> {
    table()?.slots.get(OWN.load(Ordering::Relaxed))
}

/// The heartbeat: the calling process is alive and looping. One clock
/// read and one store to a line only this process writes.
pub fn beat() {
    beat_lane(0);
}

/// The heartbeat of one thread of a process whose threads loop on their
/// own: lane `lane` (below [`BEAT_LANES`]; others are ignored).
pub fn beat_lane(lane: usize) {
    if let Some(b) = own().and_then(|s| s.beat.get(lane)) {
        b.store(shm::monotonic_ms().max(1), Ordering::Relaxed);
    }
}

/// Lane `lane`'s thread ended: the lane is no longer watched.
pub fn end_lane(lane: usize) {
    if let Some(b) = own().and_then(|s| s.beat.get(lane)) {
        b.store(0, Ordering::Relaxed);
    }
}

/// Beats, and returns how long the caller may now wait for input: what
/// is `left` of its own deadline (`None`: no deadline), but never longer
/// than [`BEAT_EVERY`], so that it beats again while idle.
pub fn beat_wait(left: Option<Duration>) -> Duration {
    beat();
    left.map_or(BEAT_EVERY, |l| l.min(BEAT_EVERY))
}

/// Sleeps for `d`, beating at least every [`BEAT_EVERY`] (a process
/// whose loop is a periodic sleep).
pub fn sleep_beating(d: Duration) {
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            beat();
            return;
        }
        std::thread::sleep(beat_wait(Some(left)));
    }
}

/// Records that this process now holds a reference on the object at
/// `off`; returns the entry to pass to [`unhold`], `None` when the record
/// is full (or there is none: the supervisor, tests). The cost is a scan
/// of at most [`HELD_MAX`] words of a cache line no other process
/// touches, and one store: noise beside the lock and the refcount's
/// atomic add that come with every reference.
pub fn hold(off: u32) -> Option<u8> {
    let s = own()?;
    let i = s.held.iter().position(|h| h.load(Ordering::Relaxed) == 0)?;
    s.held[i].store(off, Ordering::Release);
    Some(i as u8)
}

/// Clears entry `i` of this process's record (see [`hold`]).
pub fn unhold(i: u8) {
    if let Some(h) = own().and_then(|s| s.held.get(usize::from(i))) {
        h.store(0, Ordering::Release);
    }
}

/// The references the dead process of slot `i` held, emptied from its
/// record (the supervisor, before it forks a successor into the slot).
pub fn take_held(i: usize) -> Vec<u32> {
    let Some(s) = table().and_then(|t| t.slots.get(i)) else {
        return Vec::new();
    };
    s.held
        .iter()
        .map(|h| h.swap(0, Ordering::AcqRel))
        .filter(|o| *o != 0)
        .collect()
}

/// A process whose heartbeat stopped, or started again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stall {
    /// `pid` (`desc`) has not beaten for `ms` milliseconds.
    Stalled { pid: i32, desc: String, ms: u64 },
    /// `pid` (`desc`) beats again after being reported stalled.
    Resumed { pid: i32, desc: String },
}

/// The supervisor's heartbeat check: every beating process silent for
/// `limit_ms` or more is reported once, and again when it resumes.
pub fn check_stalls(now_ms: u64, limit_ms: u64) -> Vec<Stall> {
    table().map_or_else(Vec::new, |t| check_table(t, now_ms, limit_ms))
}

/// The oldest beat of the slot's lanes that beat; `None` when none does.
fn last_beat(s: &ProcSlot) -> Option<u64> {
    s.beat
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .filter(|b| *b != 0)
        .min()
}

fn check_table(t: &SharedProcs, now_ms: u64, limit_ms: u64) -> Vec<Stall> {
    let used = (t.used.load(Ordering::Acquire) as usize).min(MAX_PROCS);
    let mut out = Vec::new();
    for s in &t.slots[..used] {
        let pid = s.pid.load(Ordering::Acquire);
        let Some(beat) = last_beat(s).filter(|_| pid != 0) else {
            continue;
        };
        let silent = now_ms.saturating_sub(beat);
        let was = s.stalled.load(Ordering::Relaxed) != 0;
        if silent >= limit_ms && !was {
            s.stalled.store(1, Ordering::Relaxed);
            out.push(Stall::Stalled {
                pid,
                desc: desc_of(s),
                ms: silent,
            });
        } else if silent < limit_ms && was {
            s.stalled.store(0, Ordering::Relaxed);
            out.push(Stall::Resumed {
                pid,
                desc: desc_of(s),
            });
        }
    }
    out
}

fn desc_of(s: &ProcSlot) -> String {
    let n = usize::from(s.len.load(Ordering::Relaxed)).min(DESC_LEN);
    let d: Vec<u8> = s.desc[..n]
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    String::from_utf8_lossy(&d).into_owned()
}

/// `(pid, description)` of every live slot, in slot order.
pub fn list() -> Vec<(i32, String)> {
    let Some(t) = table() else { return Vec::new() };
    let used = (t.used.load(Ordering::Acquire) as usize).min(MAX_PROCS);
    t.slots[..used]
        .iter()
        .filter_map(|s| {
            let pid = s.pid.load(Ordering::Acquire);
            if pid == 0 {
                return None;
            }
            Some((pid, desc_of(s)))
        })
        .collect()
}

/// The supervisor's pid (slot 0), for `kill`.
pub fn attendant_pid() -> Option<i32> {
    let pid = table()?.slots.first()?.pid.load(Ordering::Acquire);
    (pid != 0).then_some(pid)
}

/// The `ps` reply body: `<idx>\t<pid>\t<desc>`.
pub fn ps_lines() -> Vec<String> {
    list()
        .into_iter()
        .enumerate()
        .map(|(i, (pid, d))| format!("{i}\t{pid}\t{d}"))
        .collect()
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
