//! A hashed timer wheel with millisecond ticks, in shared memory.
//!
//! Timers are intrusive: a [`TimerLink`] embedded in the owning object (a
//! transaction, a branch) is linked into slot `deadline mod 2^bits`. Any
//! process may arm or disarm; one process at a time expires (normally the
//! timer process). Deadlines are absolute `u64` milliseconds from the
//! caller's clock (see [`crate::monotonic_ms`]); the wheel never reads it.
//!
//! Far deadlines (minutes) need no special path: a slot holds timers of
//! every round and expiry compares the full deadline, so a timer is merely
//! looked at once per revolution (4 s with the default 4096 slots).
//!
//! # Why arming a due timer cannot be missed
//!
//! Expiry visits ticks in increasing order and records in each slot, under
//! the slot lock, the last tick it processed there. Arming computes the tick
//! `T = max(deadline, cursor + 1)` and, under the slot lock, checks that the
//! slot has not yet processed `T`; if it has, every tick up to that one is
//! done and it retries with a later tick. So a timer always lands in a slot
//! whose visit for a tick `≥ deadline` is still to come.
//!
//! # Surviving a process that dies mid-update
//!
//! As in the hash table (see [`crate::table`]): a slot's `next` chain from
//! `head` is the truth, a link is published into it by one store, and its
//! `ARMED` state is set after publication and cleared before it is taken
//! out. The next locker of a slot whose holder died repairs it
//! ([`repair_slot`]): `prev` and `count` are rebuilt from the chain and a
//! link in the chain that is not `ARMED` is taken out. The expiry lock is
//! taken over from a dead timer process by its successor.
//!
//! Timers detached for firing are recorded in the wheel ([`Self::in_flight`]
//! entries, written in the same slot-lock hold that takes each out, cleared
//! once its callback returned), so a timer process that dies between the
//! two does not take them along: the next expirer, taking the expiry lock
//! over, fires what is still recorded first. A callback that keeps the
//! timer's reference on a record of its own calls [`ShmTimerWheel::claim`]
//! once its work is done and before it releases that reference, so that
//! after a death the reference has one owner: the wheel's record (the
//! successor fires the timer again) or the owner's (its death is cleaned
//! up there, leaving alone what [`ShmTimerWheel::in_flight_of`] the dead
//! process still lists). Only the few instructions between a link's
//! unlink and its record can lose it.
//!
//! # Concurrency contract
//!
//! Arming and disarming the *same* link must be serialised by the owner
//! (tm does it under the transaction's reply lock). Expiry detaches a timer
//! under its slot lock and marks it idle before calling the callback with
//! no wheel lock held; so `disarm` returning `false` means "already fired
//! or firing", and a callback may re-arm its own timer.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::ShmError;
use crate::killpoint;
use crate::lockorder::LockLevel;
use crate::mutex::ShmMutex;
use crate::off::{AtomicOff, ShmOff, ShmSlice};
use crate::region::Region;
use crate::safe::ShmSafe;

const IDLE: u32 = 0;
const ARMED: u32 = 1;
/// Timers detached per slot-lock hold; bounds lock time and stack use.
const BATCH: usize = 64;
/// Default wheel size: 4096 one-millisecond slots.
pub const DEFAULT_BITS: u32 = 12;
const NO_DEADLINE: u64 = u64::MAX;

/// The timer fields an object embeds. Zeroed = idle, kind 0.
#[repr(C)]
#[derive(Default, Debug)]
pub struct TimerLink {
    next: AtomicOff<TimerLink>,
    prev: AtomicOff<TimerLink>,
    state: AtomicU32,
    slot: AtomicU32,
    kind: AtomicU32,
    _pad: u32,
    deadline: AtomicU64,
}

// SAFETY: atomics and a u32.
unsafe impl ShmSafe for TimerLink {}

impl TimerLink {
    /// An idle link tagged with `kind` (the owner's meaning: which timer of
    /// which object this is, so the callback can find its way back).
    pub const fn new(kind: u32) -> Self {
        Self {
            next: AtomicOff::none(),
            prev: AtomicOff::none(),
            state: AtomicU32::new(IDLE),
            slot: AtomicU32::new(0),
            kind: AtomicU32::new(kind),
            _pad: 0,
            deadline: AtomicU64::new(0),
        }
    }
    /// The owner's tag.
    pub fn kind(&self) -> u32 {
        self.kind.load(Ordering::Relaxed)
    }
    /// Changes the tag (only while idle).
    pub fn set_kind(&self, kind: u32) {
        self.kind.store(kind, Ordering::Relaxed);
    }
    /// Whether the timer is in the wheel (a snapshot).
    pub fn is_armed(&self) -> bool {
        self.state.load(Ordering::Acquire) == ARMED
    }
    /// The deadline of the last arming.
    pub fn deadline_ms(&self) -> u64 {
        self.deadline.load(Ordering::Relaxed)
    }
}

#[repr(C)]
struct Slot {
    lock: ShmMutex,
    head: AtomicOff<TimerLink>,
    count: AtomicU32,
    /// Last tick whose expiry visited this slot.
    last_tick: AtomicU64,
    /// ≤ every deadline in the slot (may be stale-low after a disarm).
    min_deadline: AtomicU64,
}

// SAFETY: a mutex and atomics.
unsafe impl ShmSafe for Slot {}

/// The wheel's root; embed it in a shared struct or use [`Self::create`].
#[repr(C)]
pub struct ShmTimerWheel {
    slots: ShmSlice<Slot>,
    bits: u32,
    armed: AtomicU32,
    /// Every tick ≤ cursor has been processed.
    cursor: AtomicU64,
    expire_lock: ShmMutex,
    /// Pid of the process that last took the expiry lock: whose record
    /// `in_flight` is.
    firer: AtomicU32,
    /// Timers detached and not yet fired (module doc).
    in_flight: [AtomicOff<TimerLink>; BATCH],
}

// SAFETY: a slice handle, atomics and a mutex.
unsafe impl ShmSafe for ShmTimerWheel {}

impl ShmTimerWheel {
    /// A wheel of 2^`bits` slots (4 ≤ bits ≤ 20) whose clock starts at
    /// `now_ms`.
    pub fn new_in(region: &Region, bits: u32, now_ms: u64) -> Result<Self, ShmError> {
        if !(4..=20).contains(&bits) {
            return Err(ShmError::BadGeometry { bits });
        }
        let slots = region.alloc_slice_zeroed::<Slot>(1usize << bits)?;
        for s in region.slice(slots) {
            s.min_deadline.store(NO_DEADLINE, Ordering::Relaxed);
        }
        Ok(Self {
            slots,
            bits,
            armed: AtomicU32::new(0),
            cursor: AtomicU64::new(now_ms),
            expire_lock: ShmMutex::new(),
            firer: AtomicU32::new(0),
            in_flight: [const { AtomicOff::none() }; BATCH],
        })
    }

    /// [`Self::new_in`], placed in its own block.
    pub fn create(region: &Region, bits: u32, now_ms: u64) -> Result<ShmOff<Self>, ShmError> {
        let w = Self::new_in(region, bits, now_ms)?;
        let slots = w.slots;
        region.alloc(w).inspect_err(|_| region.free_slice(slots))
    }

    fn mask(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    fn slot<'r>(&self, region: &'r Region, i: u64) -> Option<&'r Slot> {
        region.slice(self.slots).get((i & self.mask()) as usize)
    }

    /// Timers currently armed.
    pub fn armed(&self) -> u32 {
        self.armed.load(Ordering::Relaxed)
    }

    /// The last tick fully processed by `expire` (`now - cursor` is the
    /// timer process's lag).
    pub fn cursor_ms(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }

    /// Arms (or re-arms) the timer at `link` to fire at `deadline_ms`. A
    /// deadline in the past fires at the next `expire`.
    pub fn arm(&self, region: &Region, link: ShmOff<TimerLink>, deadline_ms: u64) {
        self.disarm(region, link);
        let l = region.get(link);
        let mut tick = deadline_ms.max(self.cursor_ms().saturating_add(1));
        loop {
            let Some(slot) = self.slot(region, tick) else {
                return;
            };
            let g = slot.lock.lock_at(LockLevel::TimerSlot);
            if g.owner_died() {
                repair_slot(region, slot);
            }
            let last = slot.last_tick.load(Ordering::Relaxed);
            if last >= tick {
                // That tick was already visited here: so were all before it.
                tick = last
                    .saturating_add(1)
                    .max(self.cursor_ms().saturating_add(1));
                continue;
            }
            let head = slot.head.load(Ordering::Relaxed);
            l.deadline.store(deadline_ms, Ordering::Relaxed);
            l.slot.store((tick & self.mask()) as u32, Ordering::Relaxed);
            l.prev.store(None, Ordering::Relaxed);
            l.next.store(head, Ordering::Relaxed);
            killpoint::hit("wheel.arm.prepared");
            if let Some(h) = head {
                region.get(h).prev.store(Some(link), Ordering::Relaxed);
            }
            // The publication.
            slot.head.store(Some(link), Ordering::Release);
            killpoint::hit("wheel.arm.published");
            slot.count.fetch_add(1, Ordering::Relaxed);
            slot.min_deadline.fetch_min(deadline_ms, Ordering::Relaxed);
            l.state.store(ARMED, Ordering::Release);
            self.armed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }

    /// Takes the timer out of the wheel. True if it was armed (and so will
    /// not fire); false if it was idle, or already fired or firing.
    pub fn disarm(&self, region: &Region, link: ShmOff<TimerLink>) -> bool {
        let l = region.get(link);
        loop {
            if l.state.load(Ordering::Acquire) != ARMED {
                return false;
            }
            let si = u64::from(l.slot.load(Ordering::Relaxed));
            let Some(slot) = self.slot(region, si) else {
                return false;
            };
            let g = slot.lock.lock_at(LockLevel::TimerSlot);
            if g.owner_died() {
                repair_slot(region, slot);
            }
            if l.state.load(Ordering::Relaxed) != ARMED {
                return false;
            }
            if u64::from(l.slot.load(Ordering::Relaxed)) != si {
                continue;
            }
            unlink(region, slot, l);
            self.armed.fetch_sub(1, Ordering::Relaxed);
            return true;
        }
    }

    /// Fires every timer with `deadline ≤ now_ms`: detaches each under its
    /// slot lock, then calls `fire` with no wheel lock held. Returns how many
    /// fired; 0 at once if another process is expiring.
    pub fn expire(
        &self,
        region: &Region,
        now_ms: u64,
        mut fire: impl FnMut(ShmOff<TimerLink>),
    ) -> usize {
        let Some(x) = self.expire_lock.try_lock_recovering(LockLevel::Unordered) else {
            return 0;
        };
        self.firer
            .store(crate::futex::current_pid(), Ordering::Relaxed);
        // What a dead expirer had detached and not fired is due now.
        let mut fired = if x.owner_died() {
            self.fire_recorded(&mut fire)
        } else {
            0
        };
        let cursor = self.cursor_ms();
        if now_ms <= cursor {
            return fired;
        }
        let slots = self.mask() + 1;
        // After a long stall one revolution covers every slot.
        let first = cursor
            .saturating_add(1)
            .max(now_ms.saturating_sub(slots - 1));
        for tick in first..=now_ms {
            let Some(slot) = self.slot(region, tick) else {
                break;
            };
            loop {
                let n = self.detach_due(region, slot, tick, now_ms);
                // The slot is done for `tick` before the callbacks run, so
                // a callback re-arming for "now" lands in a later tick.
                self.fire_recorded(&mut fire);
                fired += n;
                if n < BATCH {
                    break;
                }
            }
            self.cursor.store(tick, Ordering::Release);
        }
        fired
    }

    /// Fires every timer recorded in `in_flight`, clearing each entry once
    /// its callback returned. Under the expiry lock.
    fn fire_recorded(&self, fire: &mut impl FnMut(ShmOff<TimerLink>)) -> usize {
        let mut n = 0;
        for e in &self.in_flight {
            if let Some(o) = e.load(Ordering::Acquire) {
                fire(o);
                e.store(None, Ordering::Release);
                n += 1;
            }
        }
        n
    }

    /// The callback firing `link` has taken the timer's reference over on
    /// its owner's record: the wheel's record of it is dropped (module doc).
    pub fn claim(&self, link: ShmOff<TimerLink>) {
        for e in &self.in_flight {
            if e.load(Ordering::Relaxed) == Some(link) {
                e.store(None, Ordering::Release);
            }
        }
    }

    /// The timers process `pid` (dead) had detached and not fired or
    /// claimed; the next expirer fires them. Empty when `pid` was not the
    /// last expirer.
    pub fn in_flight_of(&self, pid: u32) -> Vec<ShmOff<TimerLink>> {
        if pid == 0 || self.firer.load(Ordering::Relaxed) != pid {
            return Vec::new();
        }
        self.in_flight
            .iter()
            .filter_map(|e| e.load(Ordering::Acquire))
            .collect()
    }

    /// Detaches up to `BATCH` due timers of `slot` into `in_flight` (empty
    /// when called); records `tick` visited.
    fn detach_due(&self, region: &Region, slot: &Slot, tick: u64, now_ms: u64) -> usize {
        let g = slot.lock.lock_at(LockLevel::TimerSlot);
        if g.owner_died() {
            repair_slot(region, slot);
        }
        slot.last_tick.store(tick, Ordering::Relaxed);
        let mut n = 0;
        let mut min = NO_DEADLINE;
        let mut cur = slot.head.load(Ordering::Relaxed);
        // Bounded by the count so a corrupted list cannot hang the timer.
        let mut left = slot.count.load(Ordering::Relaxed);
        while let Some(off) = cur {
            if left == 0 {
                break;
            }
            left -= 1;
            let l = region.get(off);
            cur = l.next.load(Ordering::Relaxed);
            let d = l.deadline.load(Ordering::Relaxed);
            if d > now_ms {
                min = min.min(d);
                continue;
            }
            if n == BATCH {
                // Leave the rest for the next pass; keep `min` conservative.
                return n;
            }
            unlink(region, slot, l);
            if let Some(e) = self.in_flight.get(n) {
                e.store(Some(off), Ordering::Release);
            }
            self.armed.fetch_sub(1, Ordering::Relaxed);
            n += 1;
        }
        slot.min_deadline.store(min, Ordering::Relaxed);
        n
    }

    /// The earliest deadline armed (possibly earlier than any real one after
    /// disarms, never later), or `None` if nothing is armed. Scans the slot
    /// summaries: O(slots), meant to be called once per timer-process tick.
    pub fn next_deadline(&self, region: &Region) -> Option<u64> {
        if self.armed() == 0 {
            return None;
        }
        let m = region
            .slice(self.slots)
            .iter()
            .map(|s| s.min_deadline.load(Ordering::Relaxed))
            .min()
            .unwrap_or(NO_DEADLINE);
        (m != NO_DEADLINE).then_some(m)
    }

    /// Frees the slot array (armed timers are simply forgotten).
    pub fn destroy(self, region: &Region) {
        region.free_slice(self.slots);
    }
}

/// Unlinks `l` from `slot`; the slot lock must be held. Its state goes
/// IDLE first, so a link half-way out is recognisable (module doc).
fn unlink(region: &Region, slot: &Slot, l: &TimerLink) {
    l.state.store(IDLE, Ordering::Release);
    killpoint::hit("wheel.unlink.idle");
    let prev = l.prev.load(Ordering::Relaxed);
    let next = l.next.load(Ordering::Relaxed);
    // The publication.
    match prev {
        Some(p) => region.get(p).next.store(next, Ordering::Release),
        None => slot.head.store(next, Ordering::Release),
    }
    killpoint::hit("wheel.unlink.unpublished");
    if let Some(n) = next {
        region.get(n).prev.store(prev, Ordering::Relaxed);
    }
    l.next.store(None, Ordering::Relaxed);
    l.prev.store(None, Ordering::Relaxed);
    slot.count.fetch_sub(1, Ordering::Relaxed);
}

/// Repairs `slot` after its lock's previous holder died (module doc):
/// rebuilds `prev`, `count` and `min_deadline` from the `next` chain,
/// taking out links that are not ARMED. Returns how many it took out.
/// The wheel's `armed` total may be off by the one half-done update; it
/// only decides whether `next_deadline` scans at all.
fn repair_slot(region: &Region, slot: &Slot) -> usize {
    let bound = slot.count.load(Ordering::Relaxed).saturating_add(2);
    let mut prev: Option<ShmOff<TimerLink>> = None;
    let mut cur = slot.head.load(Ordering::Relaxed);
    let (mut kept, mut seen, mut dropped) = (0u32, 0u32, 0usize);
    let mut min = NO_DEADLINE;
    let set_next = |prev: Option<ShmOff<TimerLink>>, next| match prev {
        Some(p) => region.get(p).next.store(next, Ordering::Release),
        None => slot.head.store(next, Ordering::Release),
    };
    while let Some(off) = cur {
        seen += 1;
        if seen > bound {
            set_next(prev, None);
            break;
        }
        let l = region.get(off);
        let next = l.next.load(Ordering::Relaxed);
        if l.state.load(Ordering::Relaxed) == ARMED {
            l.prev.store(prev, Ordering::Relaxed);
            min = min.min(l.deadline.load(Ordering::Relaxed));
            prev = Some(off);
            kept += 1;
        } else {
            set_next(prev, next);
            l.next.store(None, Ordering::Relaxed);
            l.prev.store(None, Ordering::Relaxed);
            dropped += 1;
        }
        cur = next;
    }
    slot.count.store(kept, Ordering::Relaxed);
    slot.min_deadline.store(min, Ordering::Relaxed);
    dropped
}

impl ShmTimerWheel {
    /// Locks slot `i` (modulo the slot count), repairing it if its holder
    /// died, and checks its invariants: every link of the chain ARMED and
    /// in this slot, `prev` the reverse of `next`, `count` the length. The
    /// kill tests' oracle.
    pub fn check_slot(&self, region: &Region, i: u64) -> Result<(), String> {
        let slot = self.slot(region, i).ok_or("no slot")?;
        let g = slot.lock.lock_at(LockLevel::TimerSlot);
        if g.owner_died() {
            repair_slot(region, slot);
        }
        let count = slot.count.load(Ordering::Relaxed);
        let mut prev = None;
        let mut cur = slot.head.load(Ordering::Relaxed);
        let mut n = 0u32;
        while let Some(off) = cur {
            n += 1;
            if n > count {
                return Err(format!("chain longer than count={count}"));
            }
            let l = region.get(off);
            if l.state.load(Ordering::Relaxed) != ARMED {
                return Err(format!("link {} in the chain is not armed", off.get()));
            }
            if u64::from(l.slot.load(Ordering::Relaxed)) != (i & self.mask()) {
                return Err(format!("link {} names another slot", off.get()));
            }
            if l.prev.load(Ordering::Relaxed) != prev {
                return Err(format!("link {} has a wrong prev", off.get()));
            }
            prev = Some(off);
            cur = l.next.load(Ordering::Relaxed);
        }
        if n != count {
            return Err(format!("chain of {n}, count={count}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testbuf;

    fn setup(n: usize) -> (testbuf::TestRegion, ShmTimerWheel, Vec<ShmOff<TimerLink>>) {
        let t = testbuf::region(4 << 20);
        let w = ShmTimerWheel::new_in(&t.r, 8, 1000).unwrap();
        let links = (0..n)
            .map(|i| t.r.alloc(TimerLink::new(i as u32)).unwrap())
            .collect();
        (t, w, links)
    }

    fn fired_at(w: &ShmTimerWheel, r: &Region, now: u64) -> Vec<u32> {
        let mut v = Vec::new();
        w.expire(r, now, |o| v.push(r.get(o).kind()));
        v.sort();
        v
    }

    #[test]
    fn fires_once_at_deadline() {
        let (t, w, l) = setup(3);
        let r = &t.r;
        w.arm(r, l[0], 1010);
        w.arm(r, l[1], 1005);
        w.arm(r, l[2], 1300); // beyond one revolution of 256 slots
        assert_eq!(w.armed(), 3);
        assert_eq!(w.next_deadline(r), Some(1005));
        assert!(fired_at(&w, r, 1004).is_empty());
        assert_eq!(fired_at(&w, r, 1005), vec![1]);
        assert_eq!(fired_at(&w, r, 1200), vec![0]);
        assert!(fired_at(&w, r, 1299).is_empty());
        assert_eq!(w.next_deadline(r), Some(1300));
        assert_eq!(fired_at(&w, r, 1300), vec![2]);
        assert!(fired_at(&w, r, 5000).is_empty());
        assert_eq!(w.armed(), 0);
        assert_eq!(w.next_deadline(r), None);
        assert!(!r.get(l[2]).is_armed());
    }

    #[test]
    fn disarm_and_rearm() {
        let (t, w, l) = setup(2);
        let r = &t.r;
        w.arm(r, l[0], 1050);
        assert!(w.disarm(r, l[0]));
        assert!(!w.disarm(r, l[0]));
        w.arm(r, l[1], 1020);
        w.arm(r, l[1], 1080); // re-arm moves it
        assert_eq!(w.armed(), 1);
        assert!(fired_at(&w, r, 1060).is_empty());
        assert_eq!(fired_at(&w, r, 1080), vec![1]);
        assert!(!w.disarm(r, l[1]), "fired timers are not armed");
    }

    #[test]
    fn past_deadline_fires_next_expire() {
        let (t, w, l) = setup(1);
        let r = &t.r;
        assert!(fired_at(&w, r, 2000).is_empty());
        w.arm(r, l[0], 1500); // already past the cursor
        assert_eq!(fired_at(&w, r, 2001), vec![0]);
    }

    #[test]
    fn far_future_and_long_stall() {
        let (t, w, l) = setup(2);
        let r = &t.r;
        w.arm(r, l[0], 1000 + 120_000);
        w.arm(r, l[1], 1000 + 500);
        let mut now = 1000;
        let mut order = Vec::new();
        while now < 200_000 {
            now += 997; // the timer process wakes late and irregularly
            order.extend(fired_at(&w, r, now));
        }
        assert_eq!(order, vec![1, 0]);
        // a stall longer than a revolution still fires exactly once
        w.arm(r, l[0], now + 10);
        assert_eq!(fired_at(&w, r, now + 100_000), vec![0]);
    }

    #[test]
    fn callback_may_rearm_and_batches_are_complete() {
        let t = testbuf::region(4 << 20);
        let r = &t.r;
        let w = ShmTimerWheel::new_in(r, 4, 0).unwrap();
        // more timers in one slot than a batch holds
        let links: Vec<_> = (0..200)
            .map(|i| r.alloc(TimerLink::new(i)).unwrap())
            .collect();
        for &o in &links {
            w.arm(r, o, 16);
        }
        let mut n = 0;
        w.expire(r, 16, |o| {
            n += 1;
            if r.get(o).kind() == 0 {
                w.arm(r, o, 40);
            }
        });
        assert_eq!(n, 200);
        assert_eq!(w.armed(), 1);
        assert_eq!(fired_at(&w, r, 40), vec![0]);
        assert!(ShmTimerWheel::new_in(r, 2, 0).is_err());
    }
}
