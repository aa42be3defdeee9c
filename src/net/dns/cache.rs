//! The DNS cache in shared memory (SER 2.x's `use_dns_cache`): answers
//! and failures, each kept until its TTL runs out, seen by every process,
//! so a name costs one lookup per TTL for the whole server, and a name
//! whose nameserver is dead or that does not exist fails at once after the
//! first try instead of stalling each worker that meets it.
//!
//! A fixed number of slots, so names from the network can only ever fill
//! what is there: a key probes [`PROBE`] slots from its hash; a new entry
//! takes a free or expired one among them, else the one expiring soonest.
//! Keys are hashed with a key drawn at start, so nobody can aim names at
//! one slot. Each slot points to a shm block holding the name (checked on
//! every hit) and the encoded records. The lock is a leaf (only the
//! allocator is taken under it).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use shm::{Region, ShmError, ShmLocked, ShmOff, ShmSlice};

use super::wire::{Naptr, QType, RData, Record, Srv};

/// Slots looked at per key.
const PROBE: usize = 8;

shm::shm_struct! {
    /// One slot: `expires == 0` means free.
    #[derive(Debug, Default)]
    pub struct Slot {
        hash: AtomicU64,
        expires: AtomicU64,
        off: AtomicU32,
        len: AtomicU32,
    }
}

shm::shm_struct! {
    #[derive(Debug, Default)]
    struct Head {
        hits: u64,
        misses: u64,
    }
}

/// What the cache knows of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// The records (possibly none: the name has no record of that type).
    Records(Vec<Record>),
    /// The lookup failed (no such name, or no nameserver answered).
    Failed,
}

/// One entry as `dns.view` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub qtype: QType,
    pub expires_ms: u64,
    pub value: Cached,
}

struct Shared {
    region: &'static Region,
    lock: &'static ShmLocked<Head>,
    slots: ShmSlice<Slot>,
    /// SipHash with keys drawn in the supervisor: every child inherits
    /// the same ones with the address space.
    key: std::collections::hash_map::RandomState,
}

static CACHE: OnceLock<Shared> = OnceLock::new();

/// Create the cache with `slots` entries (before the fork).
pub fn init(region: &'static Region, slots: usize) -> Result<(), ShmError> {
    let slots = region.alloc_slice_zeroed::<Slot>(slots.max(PROBE))?;
    let lock = region.get(region.alloc(ShmLocked::new(Head::default()))?);
    let key = std::collections::hash_map::RandomState::new();
    let _ = CACHE.set(Shared {
        region,
        lock,
        slots,
        key,
    });
    Ok(())
}

/// Is there a cache (`use_dns_cache`)?
pub fn enabled() -> bool {
    CACHE.get().is_some()
}

fn hash(key: &std::collections::hash_map::RandomState, name: &str, qtype: QType) -> u64 {
    use std::hash::BuildHasher;
    key.hash_one((name.to_ascii_lowercase(), qtype as u16))
}

// ----- the encoding of an entry's block -----

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

fn encode(name: &str, qtype: QType, v: &Cached) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_str(&mut out, &name.to_ascii_lowercase());
    out.extend_from_slice(&(qtype as u16).to_be_bytes());
    match v {
        Cached::Failed => out.push(0xff),
        Cached::Records(rs) => {
            out.push(rs.len().min(254) as u8);
            for r in rs.iter().take(254) {
                out.extend_from_slice(&r.ttl.to_be_bytes());
                match &r.data {
                    RData::Addr(std::net::IpAddr::V4(a)) => {
                        out.push(4);
                        out.extend_from_slice(&a.octets());
                    }
                    RData::Addr(std::net::IpAddr::V6(a)) => {
                        out.push(6);
                        out.extend_from_slice(&a.octets());
                    }
                    RData::Name(n) => {
                        out.push(12);
                        put_str(&mut out, n);
                    }
                    RData::Srv(s) => {
                        out.push(33);
                        for n in [s.priority, s.weight, s.port] {
                            out.extend_from_slice(&n.to_be_bytes());
                        }
                        put_str(&mut out, &s.target);
                    }
                    RData::Naptr(n) => {
                        out.push(35);
                        out.extend_from_slice(&n.order.to_be_bytes());
                        out.extend_from_slice(&n.preference.to_be_bytes());
                        put_str(&mut out, &n.flags);
                        put_str(&mut out, &n.services);
                        put_str(&mut out, &n.replacement);
                    }
                }
            }
        }
    }
    out
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn str(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        self.take(n)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

fn decode(b: &[u8]) -> Option<(String, QType, Cached)> {
    let mut r = Reader { b, at: 0 };
    let name = r.str()?;
    let qtype = QType::from_u16(r.u16()?)?;
    let n = r.u8()?;
    if n == 0xff {
        return Some((name, qtype, Cached::Failed));
    }
    let mut recs = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let t = r.take(4)?;
        let ttl = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
        let data = match r.u8()? {
            4 => RData::Addr(<[u8; 4]>::try_from(r.take(4)?).ok()?.into()),
            6 => RData::Addr(<[u8; 16]>::try_from(r.take(16)?).ok()?.into()),
            12 => RData::Name(r.str()?),
            33 => RData::Srv(Srv {
                priority: r.u16()?,
                weight: r.u16()?,
                port: r.u16()?,
                target: r.str()?,
            }),
            35 => RData::Naptr(Naptr {
                order: r.u16()?,
                preference: r.u16()?,
                flags: r.str()?,
                services: r.str()?,
                replacement: r.str()?,
            }),
            _ => return None,
        };
        recs.push(Record { ttl, data });
    }
    Some((name, qtype, Cached::Records(recs)))
}

// ----- the table -----

impl Shared {
    fn block(&self, s: &Slot) -> Option<&'static [u8]> {
        let off = ShmOff::<u8>::from_u32(s.off.load(Relaxed))?;
        Some(
            self.region
                .slice(ShmSlice::from_raw_parts(off, s.len.load(Relaxed))),
        )
    }

    /// Empties slot `s`: it stops naming its block before the block is
    /// freed, so a process killed in between leaks the block rather than
    /// leaving a slot that names freed memory.
    fn free(&self, s: &Slot) {
        let off = s.off.load(Relaxed);
        s.expires.store(0, Relaxed);
        s.off.store(0, Relaxed);
        s.len.store(0, Relaxed);
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        if let Some(o) = ShmOff::<u8>::from_u32(off) {
            self.region.free(o);
        }
    }

    fn window(&self, h: u64) -> impl Iterator<Item = &'static Slot> {
        let slots = self.region.slice(self.slots);
        let n = slots.len();
        let start = (h % n as u64) as usize;
        (0..PROBE.min(n)).filter_map(move |i| slots.get((start + i) % n))
    }
}

/// Is `block` the entry of `name`/`qtype`? Reads only the key at its
/// head, not the records.
fn same_key(block: &[u8], name: &str, qtype: QType) -> bool {
    let mut r = Reader { b: block, at: 0 };
    let Some(n) = r.u8().and_then(|n| r.take(usize::from(n))) else {
        return false;
    };
    n.eq_ignore_ascii_case(name.as_bytes()) && r.u16() == Some(qtype as u16)
}

/// What the cache holds for `name`/`qtype` at `now_ms`.
pub fn get(name: &str, qtype: QType, now_ms: u64) -> Option<Cached> {
    let c = CACHE.get()?;
    let h = hash(&c.key, name, qtype);
    let mut head = c.lock.lock();
    for s in c.window(h) {
        if s.hash.load(Relaxed) != h || s.expires.load(Relaxed) <= now_ms {
            continue;
        }
        if let Some((n, t, v)) = c.block(s).and_then(decode) {
            if t == qtype && n.eq_ignore_ascii_case(name) {
                head.hits += 1;
                return Some(v);
            }
        }
    }
    head.misses += 1;
    None
}

/// Keep `value` for `name`/`qtype` until `expires_ms`. Out of shared
/// memory the entry is simply not kept.
pub fn put(name: &str, qtype: QType, value: &Cached, expires_ms: u64, now_ms: u64) {
    let Some(c) = CACHE.get() else { return };
    let h = hash(&c.key, name, qtype);
    let bytes = encode(name, qtype, value);
    let _head = c.lock.lock();
    let mut pick: Option<&Slot> = None;
    for s in c.window(h) {
        let exp = s.expires.load(Relaxed);
        let same =
            s.hash.load(Relaxed) == h && c.block(s).is_some_and(|b| same_key(b, name, qtype));
        if same || exp <= now_ms {
            pick = Some(s);
            break;
        }
        if pick.is_none_or(|p| exp < p.expires.load(Relaxed)) {
            pick = Some(s);
        }
    }
    let Some(s) = pick else { return };
    c.free(s);
    let Ok(block) = c.region.alloc_slice(&bytes) else {
        return;
    };
    let Some(start) = block.start() else { return };
    s.hash.store(h, Relaxed);
    s.off.store(start.get(), Relaxed);
    s.len.store(block.len() as u32, Relaxed);
    // The publication: a slot is live only once its expiry is set, after
    // the block it names (a process killed before it leaves a free slot
    // naming an allocated block, which the slot's next user frees).
    s.expires.store(
        expires_ms.max(now_ms + 1),
        std::sync::atomic::Ordering::Release,
    );
}

/// Every live entry (`dns.view`).
pub fn entries(now_ms: u64) -> Vec<Entry> {
    let Some(c) = CACHE.get() else {
        return Vec::new();
    };
    let _head = c.lock.lock();
    let mut out = Vec::new();
    for s in c.region.slice(c.slots) {
        let exp = s.expires.load(Relaxed);
        if exp <= now_ms {
            continue;
        }
        if let Some((name, qtype, value)) = c.block(s).and_then(decode) {
            out.push(Entry {
                name,
                qtype,
                expires_ms: exp,
                value,
            });
        }
    }
    out
}

/// Empty the cache (`dns.delete_all`); returns how many entries went.
pub fn flush() -> usize {
    let Some(c) = CACHE.get() else { return 0 };
    let _head = c.lock.lock();
    let mut n = 0;
    for s in c.region.slice(c.slots) {
        if s.expires.load(Relaxed) != 0 {
            n += 1;
        }
        c.free(s);
    }
    n
}

/// `(hits, misses)` so far.
pub fn counters() -> (u64, u64) {
    CACHE.get().map_or((0, 0), |c| {
        let h = c.lock.lock();
        (h.hits, h.misses)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_the_encoding() {
        let v = Cached::Records(vec![
            Record {
                ttl: 30,
                data: RData::Addr("192.0.2.1".parse().unwrap()),
            },
            Record {
                ttl: 30,
                data: RData::Addr("2001:db8::1".parse().unwrap()),
            },
            Record {
                ttl: 60,
                data: RData::Srv(Srv {
                    priority: 1,
                    weight: 2,
                    port: 5070,
                    target: "a.example".into(),
                }),
            },
            Record {
                ttl: 60,
                data: RData::Naptr(Naptr {
                    order: 1,
                    preference: 2,
                    flags: "s".into(),
                    services: "SIP+D2U".into(),
                    replacement: "_sip._udp.example".into(),
                }),
            },
        ]);
        let b = encode("Example", QType::Srv, &v);
        assert_eq!(decode(&b), Some(("example".into(), QType::Srv, v)));
        let f = encode("x", QType::A, &Cached::Failed);
        assert_eq!(decode(&f), Some(("x".into(), QType::A, Cached::Failed)));
        for n in 0..b.len() {
            let _ = decode(&b[..n]);
        }
    }

    #[test]
    fn the_shared_table_keeps_evicts_and_expires() {
        let region: &'static Region = Box::leak(Box::new(Region::new(4 << 20).unwrap()));
        init(region, 8).unwrap();
        let a = Cached::Records(vec![Record {
            ttl: 5,
            data: RData::Addr("192.0.2.9".parse().unwrap()),
        }]);
        put("a.example", QType::A, &a, 5_000, 0);
        assert_eq!(get("A.EXAMPLE", QType::A, 1_000), Some(a.clone()));
        assert_eq!(get("a.example", QType::Aaaa, 1_000), None);
        assert_eq!(get("a.example", QType::A, 5_000), None, "expired");
        put("dead.example", QType::A, &Cached::Failed, 9_000, 0);
        assert_eq!(get("dead.example", QType::A, 1), Some(Cached::Failed));
        // More names than slots: the table stays within its slots and
        // the newest entry is always there.
        let used = region.stats().used;
        for i in 0..100 {
            let n = format!("n{i}.example");
            put(&n, QType::A, &a, 100_000 + i, 10);
            assert_eq!(get(&n, QType::A, 11), Some(a.clone()));
        }
        assert!(entries(11).len() <= 8);
        assert!(region.stats().used < used + 8 * 64);
        assert!(flush() > 0);
        assert!(entries(11).is_empty());
        assert!(counters().0 > 0);
    }
}
