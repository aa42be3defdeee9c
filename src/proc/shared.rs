//! The process list in shared memory, so that any process (the FIFO
//! server answering `ps`, say) sees every sibling, including those forked
//! after it. Slot 0 is the supervisor ("attendant").
//!
//! A slot's description is written before the child is forked and its pid
//! published last (release), so a reader that sees a pid sees its
//! description complete.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU8, Ordering};
use std::sync::OnceLock;

use shm::{Region, ShmError, ShmOff};

/// Room for SER-sized deployments (children × sockets + helpers).
pub const MAX_PROCS: usize = 512;
const DESC_LEN: usize = 80;

shm::shm_struct! {
    pub struct ProcSlot {
        /// 0 = free or not yet forked.
        pub pid: AtomicI32,
        pub len: AtomicU8,
        pub desc: [AtomicU8; DESC_LEN],
    }
}

shm::shm_struct! {
    pub struct SharedProcs {
        /// Slots handed out so far (never shrinks; a slot whose pid is 0
        /// is skipped).
        pub used: AtomicU32,
        pub slots: [ProcSlot; MAX_PROCS],
    }
}

static SHARED: OnceLock<(&'static Region, ShmOff<SharedProcs>)> = OnceLock::new();

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

/// Mark the process `pid` as gone.
pub fn forget(pid: i32) {
    let Some(t) = table() else { return };
    let used = (t.used.load(Ordering::Acquire) as usize).min(MAX_PROCS);
    for s in &t.slots[..used] {
        if s.pid.load(Ordering::Acquire) == pid {
            s.pid.store(0, Ordering::Release);
        }
    }
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
            let n = usize::from(s.len.load(Ordering::Relaxed)).min(DESC_LEN);
            let d: Vec<u8> = s.desc[..n]
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            Some((pid, String::from_utf8_lossy(&d).into_owned()))
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
