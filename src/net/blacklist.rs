//! The destination blacklist (SER 2.1's `use_dst_blacklist`): next hops
//! that recently failed — no answer, a send error, a 503 — are not sent to
//! again for a while, so a dead peer costs one timeout instead of one per
//! call.
//!
//! One table in shared memory, seen by every process: a fixed number of
//! slots (from `dst_blacklist_mem`), keyed by (proto, IP, port), each with
//! the monotonic millisecond (`shm::monotonic_ms`, tm's clock) at which it
//! stops counting. Network input can only ever fill the slots it has: when
//! all hold live entries, the one expiring soonest makes room. Expired
//! entries are ignored by lookups and reused by inserts, so no sweeper is
//! needed (SER's `dst_blacklist_gc_interval` has nothing to tune).
//!
//! The logic ([`insert`], [`lookup`], [`remove`], [`live`]) works on any
//! [`Slots`], so it is tested on a plain vector; [`Blacklist`] is the thin
//! shm layer: the slots as atomics and one process-shared lock. The lock
//! is a leaf (nothing else is locked while it is held), which is why tm
//! may take it under a transaction's reply lock.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use shm::{Region, ShmError, ShmLocked};

use super::Proto;

/// A blacklisted destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dest {
    pub proto: Proto,
    pub addr: SocketAddr,
}

impl Dest {
    pub fn udp(addr: SocketAddr) -> Dest {
        Dest {
            proto: Proto::Udp,
            addr,
        }
    }
}

/// One slot: `expires == 0` means free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub dest: Dest,
    pub expires: u64,
}

/// Fixed-capacity storage the logic works on. Slots at and past `used`
/// are free, so an empty or small blacklist costs a lookup next to
/// nothing however large `dst_blacklist_mem` made the table.
pub trait Slots {
    fn capacity(&self) -> usize;
    /// Slot `i` (< capacity); `None` when free.
    fn get(&self, i: usize) -> Option<Entry>;
    fn set(&mut self, i: usize, e: Option<Entry>);
    /// The high-water mark: slots below it may be taken.
    fn used(&self) -> usize;
    fn set_used(&mut self, n: usize);
}

/// Plain storage (unit tests, and what the shm slots mirror).
#[derive(Debug, Clone, Default)]
pub struct VecSlots {
    pub v: Vec<Option<Entry>>,
    pub used: usize,
}

impl VecSlots {
    pub fn new(capacity: usize) -> VecSlots {
        VecSlots {
            v: vec![None; capacity],
            used: 0,
        }
    }
}

impl Slots for VecSlots {
    fn capacity(&self) -> usize {
        self.v.len()
    }
    fn get(&self, i: usize) -> Option<Entry> {
        self.v.get(i).copied().flatten()
    }
    fn set(&mut self, i: usize, e: Option<Entry>) {
        if let Some(s) = self.v.get_mut(i) {
            *s = e;
        }
    }
    fn used(&self) -> usize {
        self.used
    }
    fn set_used(&mut self, n: usize) {
        self.used = n;
    }
}

/// Indices worth looking at: below the high-water mark.
fn span(s: &impl Slots) -> std::ops::Range<usize> {
    0..s.used().min(s.capacity())
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// Already there; its expiry is now the later of the two.
    Extended,
    /// The table was full of live entries: this one, the soonest to
    /// expire, gave way.
    Evicted(Dest),
}

fn live_at(s: &impl Slots, i: usize, now: u64) -> Option<Entry> {
    s.get(i).filter(|e| e.expires > now)
}

/// Blacklist `dest` until `expires` (ms). An entry already there keeps the
/// later expiry; otherwise a free or expired slot is used, and with none,
/// the live entry expiring soonest is replaced.
pub fn insert(s: &mut impl Slots, dest: Dest, expires: u64, now: u64) -> Added {
    let mut free = None;
    let mut soonest: Option<(usize, Entry)> = None;
    for i in span(s) {
        match s.get(i) {
            Some(e) if e.dest == dest => {
                let keep = if e.expires > now { e.expires } else { 0 };
                s.set(
                    i,
                    Some(Entry {
                        dest,
                        expires: keep.max(expires),
                    }),
                );
                return if keep == 0 {
                    Added::New
                } else {
                    Added::Extended
                };
            }
            Some(e) if e.expires > now => {
                if soonest.is_none_or(|(_, o)| e.expires < o.expires) {
                    soonest = Some((i, e));
                }
            }
            _ => {
                if free.is_none() {
                    free = Some(i);
                }
            }
        }
    }
    let new = Some(Entry { dest, expires });
    let top = span(s).end;
    if free.is_none() && top < s.capacity() {
        free = Some(top);
        s.set_used(top + 1);
    }
    match (free, soonest) {
        (Some(i), _) => {
            s.set(i, new);
            Added::New
        }
        (None, Some((i, old))) => {
            s.set(i, new);
            Added::Evicted(old.dest)
        }
        // A table of capacity 0 (refused at load, but never a panic).
        (None, None) => Added::New,
    }
}

/// The expiry of `dest` if it is blacklisted at `now`.
pub fn lookup(s: &impl Slots, dest: Dest, now: u64) -> Option<u64> {
    span(s)
        .filter_map(|i| live_at(s, i, now))
        .find(|e| e.dest == dest)
        .map(|e| e.expires)
}

/// Removes every entry `pick` selects (expired ones are freed as well);
/// returns how many live ones went.
pub fn remove(s: &mut impl Slots, now: u64, pick: impl Fn(&Dest) -> bool) -> usize {
    let mut n = 0;
    let mut top = 0;
    for i in span(s) {
        if let Some(e) = s.get(i) {
            let live = e.expires > now;
            if pick(&e.dest) || !live {
                s.set(i, None);
                n += usize::from(live);
            } else {
                top = i + 1;
            }
        }
    }
    // Free slots at the top are given back to the high-water mark.
    s.set_used(top);
    n
}

/// The live entries, soonest expiry first.
pub fn live(s: &impl Slots, now: u64) -> Vec<Entry> {
    let mut v: Vec<Entry> = span(s).filter_map(|i| live_at(s, i, now)).collect();
    v.sort_by_key(|e| e.expires);
    v
}

shm::shm_struct! {
    /// One slot in shared memory. Written and read only under the table's
    /// lock; atomics only because the slots are shared, not for ordering.
    #[derive(Debug, Default)]
    pub struct ShmSlot {
        /// The IP as IPv6 (IPv4 mapped), two halves.
        hi: AtomicU64,
        lo: AtomicU64,
        /// Port in bits 0..16, proto in 16..24 (1 udp, 2 tcp, 3 tls).
        meta: AtomicU64,
        /// Monotonic ms; 0 = free.
        expires: AtomicU64,
    }
}

shm::shm_struct! {
    #[derive(Debug, Default)]
    struct Head {
        /// The slots' high-water mark ([`Slots::used`]).
        used: u64,
    }
}

/// Bytes one entry takes (what `dst_blacklist_mem` is divided by).
pub const ENTRY_BYTES: usize = size_of::<ShmSlot>();

fn proto_code(p: Proto) -> u64 {
    match p {
        Proto::Udp => 1,
        Proto::Tcp => 2,
        Proto::Tls => 3,
    }
}

fn proto_of(code: u64) -> Option<Proto> {
    match code {
        1 => Some(Proto::Udp),
        2 => Some(Proto::Tcp),
        3 => Some(Proto::Tls),
        _ => None,
    }
}

fn v6_of(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The slots of the shm table, seen through its (held) lock.
struct Locked<'a> {
    head: &'a mut Head,
    slots: &'a [ShmSlot],
}

impl Slots for Locked<'_> {
    fn used(&self) -> usize {
        usize::try_from(self.head.used).unwrap_or(usize::MAX)
    }

    fn set_used(&mut self, n: usize) {
        self.head.used = n as u64;
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn get(&self, i: usize) -> Option<Entry> {
        let s = self.slots.get(i)?;
        let expires = s.expires.load(Ordering::Relaxed);
        if expires == 0 {
            return None;
        }
        let meta = s.meta.load(Ordering::Relaxed);
        let bits = (u128::from(s.hi.load(Ordering::Relaxed)) << 64)
            | u128::from(s.lo.load(Ordering::Relaxed));
        let v6 = Ipv6Addr::from(bits);
        // Mapped addresses were IPv4 when written: give them back as such.
        let ip = v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6));
        Some(Entry {
            dest: Dest {
                proto: proto_of((meta >> 16) & 0xff)?,
                addr: SocketAddr::new(ip, (meta & 0xffff) as u16),
            },
            expires,
        })
    }

    fn set(&mut self, i: usize, e: Option<Entry>) {
        let Some(s) = self.slots.get(i) else { return };
        match e {
            None => s.expires.store(0, Ordering::Relaxed),
            Some(e) => {
                let bits = u128::from(v6_of(e.dest.addr.ip()));
                s.hi.store((bits >> 64) as u64, Ordering::Relaxed);
                s.lo.store(bits as u64, Ordering::Relaxed);
                s.meta.store(
                    u64::from(e.dest.addr.port()) | (proto_code(e.dest.proto) << 16),
                    Ordering::Relaxed,
                );
                // A zero expiry would read as free: 1 ms is as good.
                s.expires.store(e.expires.max(1), Ordering::Relaxed);
            }
        }
    }
}

/// The shared table.
pub struct Blacklist {
    lock: &'static ShmLocked<Head>,
    slots: &'static [ShmSlot],
    /// `dst_blacklist_expire`, in ms.
    pub default_ms: u64,
}

impl std::fmt::Debug for Blacklist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blacklist({} slots)", self.slots.len())
    }
}

impl Blacklist {
    fn with<R>(&self, f: impl FnOnce(&mut Locked<'_>) -> R) -> R {
        let mut g = self.lock.lock();
        f(&mut Locked {
            head: &mut g,
            slots: self.slots,
        })
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Blacklist `dest` for `ms` from `now`.
    pub fn add(&self, dest: Dest, ms: u64, now: u64) -> Added {
        self.with(|s| insert(s, dest, now.saturating_add(ms), now))
    }

    pub fn lookup(&self, dest: Dest, now: u64) -> Option<u64> {
        self.with(|s| lookup(s, dest, now))
    }

    pub fn remove(&self, now: u64, pick: impl Fn(&Dest) -> bool) -> usize {
        self.with(|s| remove(s, now, pick))
    }

    pub fn live(&self, now: u64) -> Vec<Entry> {
        self.with(|s| live(s, now))
    }
}

/// Core settings of the blacklist (`use_dst_blacklist=yes`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `dst_blacklist_expire`, seconds.
    pub expire_s: u32,
    /// `dst_blacklist_mem`, KB.
    pub mem_kb: u32,
}

static TABLE: OnceLock<Blacklist> = OnceLock::new();

/// Slots `mem_kb` kilobytes hold (at least one).
pub fn capacity_for(mem_kb: u32) -> usize {
    (mem_kb as usize * 1024 / ENTRY_BYTES).max(1)
}

/// Allocate the table: once, in the supervisor, before the fork, and only
/// with `use_dst_blacklist=yes` — without it [`table`] stays `None` and
/// nothing is ever looked up or added, as in SER.
pub fn init(region: &'static Region, s: Settings) -> Result<(), ShmError> {
    if TABLE.get().is_some() {
        return Ok(());
    }
    let lock = region.get(region.alloc(ShmLocked::new(Head::default()))?);
    let slots = region.slice(region.alloc_slice_zeroed::<ShmSlot>(capacity_for(s.mem_kb))?);
    let _ = TABLE.set(Blacklist {
        lock,
        slots,
        default_ms: u64::from(s.expire_s) * 1000,
    });
    Ok(())
}

/// The table, when the blacklist is on.
pub fn table() -> Option<&'static Blacklist> {
    TABLE.get()
}
