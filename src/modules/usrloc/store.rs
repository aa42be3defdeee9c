//! The location tables in shared memory: one hash table per domain
//! (`location`, `aliases`, …), a lock per bucket, each bucket a chain of
//! records, each record one encoded block (see `codec`).
//!
//! # Lock order
//!
//! A usrloc bucket lock is taken at [`LOCK_LEVEL`] = `Location`: above
//! tm's bucket and reply locks, below timer slots and the allocator. So
//! `lookup()` may run while tm holds one of its locks, allocation under a
//! usrloc lock is fine, and taking a tm lock while holding a usrloc lock
//! trips the debug lock-order check. No two usrloc bucket locks are ever
//! held at once.
//!
//! `ShmHashTable` is not used because it locks at `LockLevel::Bucket`,
//! which would forbid `lookup()` under tm's reply lock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use shm::{LockLevel, Region, ShmError, ShmGuard, ShmLocked, ShmOff, ShmSlice};

use super::binding::Binding;
use super::codec::{self, CodecError};

/// Where usrloc's bucket locks sit in the server's lock order (above).
pub const LOCK_LEVEL: LockLevel = LockLevel::Location;

/// Buckets per domain: 2^12. SER used 2^9 per domain; 4096 keeps chains
/// short for a hundred thousand AORs at 64 KiB of shm per domain.
pub const TABLE_BITS: u32 = 12;

/// Records examined per lock hold by the expiry sweep.
const SWEEP_BATCH: u32 = 32;

shm::shm_struct! {
    /// A bucket's chain: first record's offset (0 = none) and length.
    #[derive(Default)]
    pub struct BucketHead {
        head: u32,
        len: u32,
    }
}

shm::shm_struct! {
    /// One AOR. The fields change only under the bucket lock; they are
    /// atomics because shm objects are shared (`&`) references.
    pub struct Record {
        next: AtomicU32,
        hash: u32,
        data_off: AtomicU32,
        data_len: AtomicU32,
    }
}

shm::shm_struct! {
    /// What `ul_stats` prints per domain.
    #[derive(Default)]
    pub struct DomainStats {
        users: AtomicU32,
        expired: AtomicU64,
    }
}

/// An AOR as stored and its live bindings (`ul_dump`).
pub(super) type AorBindings = (Vec<u8>, Vec<Binding>);

/// Why a usrloc operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UlError {
    #[error("unknown usrloc domain (table) {0:?}")]
    UnknownDomain(String),
    #[error("usrloc is not initialised (module not loaded or mod_init not run)")]
    NotInitialised,
    #[error("usrloc is already initialised")]
    AlreadyInitialised,
    #[error("usrloc: out of shared memory: {0}")]
    OutOfMemory(#[from] ShmError),
    #[error("usrloc record damaged in shared memory: {0}")]
    Damaged(#[from] CodecError),
    #[error("usrloc record chain damaged in shared memory")]
    BadChain,
}

struct Domain {
    name: String,
    buckets: ShmSlice<ShmLocked<BucketHead>>,
    stats: ShmOff<DomainStats>,
}

/// The tables of every domain; built before the fork, used by all.
pub(super) struct Store {
    region: &'static Region,
    domains: Vec<Domain>,
    case_sensitive: bool,
}

/// A record found in a chain: its predecessor (0 = the bucket head) and
/// itself, as raw offsets.
#[derive(Clone, Copy)]
struct Pos {
    prev: u32,
    cur: u32,
}

fn fnv1a(bytes: &[u8], fold: bool) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        let b = if fold { b.to_ascii_lowercase() } else { b };
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl Store {
    /// Tables for `names` with 2^`bits` buckets each.
    pub(super) fn new(
        region: &'static Region,
        names: &[String],
        bits: u32,
        case_sensitive: bool,
    ) -> Result<Store, UlError> {
        let mut domains = Vec::with_capacity(names.len());
        for name in names {
            let buckets =
                region.alloc_slice_zeroed::<ShmLocked<BucketHead>>(1usize << bits.min(20))?;
            let stats = region.alloc(DomainStats::default())?;
            domains.push(Domain {
                name: name.clone(),
                buckets,
                stats,
            });
        }
        Ok(Store {
            region,
            domains,
            case_sensitive,
        })
    }

    /// Index of domain `name` (exact, as SER compares table names).
    pub(super) fn domain(&self, name: &str) -> Result<usize, UlError> {
        self.domains
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| UlError::UnknownDomain(name.to_string()))
    }

    pub(super) fn domain_names(&self) -> impl Iterator<Item = &str> {
        self.domains.iter().map(|d| d.name.as_str())
    }

    /// `(records, bindings dropped on expiry so far)` of domain `d`.
    pub(super) fn stats(&self, d: usize) -> (u32, u64) {
        self.domains.get(d).map_or((0, 0), |dom| {
            let s = self.region.get(dom.stats);
            (s.users.load(Relaxed), s.expired.load(Relaxed))
        })
    }

    fn hash(&self, aor: &[u8]) -> u32 {
        fnv1a(aor, !self.case_sensitive)
    }

    fn same_key(&self, a: &[u8], b: &[u8]) -> bool {
        if self.case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(b)
        }
    }

    fn dom(&self, d: usize) -> Result<&Domain, UlError> {
        self.domains.get(d).ok_or(UlError::NotInitialised)
    }

    fn lock(&self, dom: &Domain, hash: u32) -> Result<ShmGuard<'static, BucketHead>, UlError> {
        let buckets = self.region.slice(dom.buckets);
        let i = hash as usize & buckets.len().saturating_sub(1);
        let b = buckets.get(i).ok_or(UlError::BadChain)?;
        Ok(b.lock_at(LOCK_LEVEL))
    }

    fn record(&self, raw: u32) -> Result<&'static Record, UlError> {
        ShmOff::<Record>::from_u32(raw)
            .and_then(|o| self.region.try_get(o))
            .ok_or(UlError::BadChain)
    }

    fn block(&self, rec: &Record) -> &'static [u8] {
        let len = rec.data_len.load(Relaxed);
        match ShmOff::<u8>::from_u32(rec.data_off.load(Relaxed)) {
            Some(o) => self.region.slice(ShmSlice::from_raw_parts(o, len)),
            None => &[],
        }
    }

    fn free_block(&self, rec: &Record) {
        if let Some(o) = ShmOff::<u8>::from_u32(rec.data_off.load(Relaxed)) {
            self.region.free(o);
        }
    }

    /// The record of `aor` in the locked chain. The walk is bounded by the
    /// chain's length, so a damaged (cyclic) chain cannot hang a worker.
    fn find(&self, g: &BucketHead, hash: u32, aor: &[u8]) -> Result<Option<Pos>, UlError> {
        let (mut prev, mut cur) = (0u32, g.head);
        for _ in 0..g.len {
            if cur == 0 {
                break;
            }
            let rec = self.record(cur)?;
            if rec.hash == hash
                && codec::key_of(self.block(rec)).is_ok_and(|k| self.same_key(k, aor))
            {
                return Ok(Some(Pos { prev, cur }));
            }
            prev = cur;
            cur = rec.next.load(Relaxed);
        }
        Ok(None)
    }

    fn unlink(&self, g: &mut BucketHead, dom: &Domain, p: Pos) -> Result<(), UlError> {
        let rec = self.record(p.cur)?;
        let next = rec.next.load(Relaxed);
        if p.prev == 0 {
            g.head = next;
        } else {
            self.record(p.prev)?.next.store(next, Relaxed);
        }
        g.len = g.len.saturating_sub(1);
        self.free_block(rec);
        if let Some(o) = ShmOff::<Record>::from_u32(p.cur) {
            self.region.free(o);
        }
        let users = &self.region.get(dom.stats).users;
        let _ = users.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        Ok(())
    }

    /// Replace the record's block with the encoding of `v`; on failure
    /// the old block stays.
    fn rewrite(&self, rec: &Record, key: &[u8], v: &[Binding]) -> Result<(), UlError> {
        let block = self.region.alloc_slice(&codec::encode(key, v))?;
        let Some(start) = block.start() else {
            return Err(UlError::BadChain);
        };
        self.free_block(rec);
        rec.data_off.store(start.get(), Relaxed);
        rec.data_len.store(block.len() as u32, Relaxed);
        Ok(())
    }

    fn note_expired(&self, dom: &Domain, n: usize) {
        if n > 0 {
            self.region
                .get(dom.stats)
                .expired
                .fetch_add(n as u64, Relaxed);
        }
    }

    /// Under the record's bucket lock: its live bindings (empty when it
    /// does not exist) go to `f`; what `f` leaves is stored, an empty list
    /// removing the record. Atomic against every other process.
    pub(super) fn update<R>(
        &self,
        d: usize,
        aor: &[u8],
        now_ms: u64,
        f: impl FnOnce(&mut Vec<Binding>) -> R,
    ) -> Result<R, UlError> {
        let dom = self.dom(d)?;
        let hash = self.hash(aor);
        let mut g = self.lock(dom, hash)?;
        let found = self.find(&g, hash, aor)?;
        let (key, mut v) = match found {
            Some(p) => {
                let (key, all) = codec::decode(self.block(self.record(p.cur)?))?;
                (key.to_vec(), all)
            }
            None => (aor.to_vec(), Vec::new()),
        };
        let before = v.len();
        v.retain(|b| b.is_live(now_ms));
        self.note_expired(dom, before - v.len());
        let r = f(&mut v);
        match (found, v.is_empty()) {
            (None, true) => {}
            (Some(p), true) => self.unlink(&mut g, dom, p)?,
            (Some(p), false) => self.rewrite(self.record(p.cur)?, &key, &v)?,
            (None, false) => {
                let block = self.region.alloc_slice(&codec::encode(&key, &v))?;
                let start = block.start().ok_or(UlError::BadChain)?;
                let rec = Record {
                    next: AtomicU32::new(g.head),
                    hash,
                    data_off: AtomicU32::new(start.get()),
                    data_len: AtomicU32::new(block.len() as u32),
                };
                let off = self
                    .region
                    .alloc(rec)
                    .inspect_err(|_| self.region.free_slice(block))?;
                g.head = off.get();
                g.len += 1;
                self.region.get(dom.stats).users.fetch_add(1, Relaxed);
            }
        }
        Ok(r)
    }

    /// The live bindings of `aor`, or `None` when it has no record.
    pub(super) fn lookup(
        &self,
        d: usize,
        aor: &[u8],
        now_ms: u64,
    ) -> Result<Option<Vec<Binding>>, UlError> {
        let dom = self.dom(d)?;
        let hash = self.hash(aor);
        let g = self.lock(dom, hash)?;
        let Some(p) = self.find(&g, hash, aor)? else {
            return Ok(None);
        };
        let (_, mut v) = codec::decode(self.block(self.record(p.cur)?))?;
        drop(g);
        v.retain(|b| b.is_live(now_ms));
        Ok(Some(v))
    }

    /// Every record of domain `d` as `(AOR, live bindings)`, read one
    /// bucket at a time (a consistent view per record, not per table).
    pub(super) fn records(&self, d: usize, now_ms: u64) -> Result<Vec<AorBindings>, UlError> {
        let dom = self.dom(d)?;
        let mut out = Vec::new();
        for b in self.region.slice(dom.buckets) {
            let g = b.lock_at(LOCK_LEVEL);
            let mut cur = g.head;
            for _ in 0..g.len {
                let Ok(rec) = self.record(cur) else { break };
                if let Ok((key, mut v)) = codec::decode(self.block(rec)) {
                    v.retain(|x| x.is_live(now_ms));
                    out.push((key.to_vec(), v));
                }
                cur = rec.next.load(Relaxed);
            }
        }
        Ok(out)
    }

    /// Drop expired bindings and empty (or undecodable) records from
    /// every domain, at most [`SWEEP_BATCH`] records per lock hold.
    /// Returns the number of bindings dropped.
    pub(super) fn sweep(&self, now_ms: u64) -> u64 {
        let mut dropped = 0u64;
        for dom in &self.domains {
            for b in self.region.slice(dom.buckets) {
                dropped += self.sweep_bucket(dom, b, now_ms);
            }
        }
        dropped
    }

    fn sweep_bucket(&self, dom: &Domain, b: &ShmLocked<BucketHead>, now_ms: u64) -> u64 {
        let mut dropped = 0u64;
        // Records before `skip` were kept in an earlier hold; the chain may
        // change between holds, which at worst defers a record to the next
        // sweep.
        let mut skip = 0u32;
        loop {
            let mut g = b.lock_at(LOCK_LEVEL);
            if g.head == 0 {
                return dropped;
            }
            let (mut prev, mut cur) = (0u32, g.head);
            let mut seen = 0u32;
            let mut done = 0u32;
            while cur != 0 && seen < g.len && done < SWEEP_BATCH {
                let Ok(rec) = self.record(cur) else {
                    return dropped;
                };
                let next = rec.next.load(Relaxed);
                if seen < skip {
                    seen += 1;
                    prev = cur;
                    cur = next;
                    continue;
                }
                done += 1;
                let keep = match codec::decode(self.block(rec)) {
                    Err(e) => {
                        log::error!("usrloc: dropping a damaged record in {}: {e}", dom.name);
                        false
                    }
                    Ok((key, mut v)) => {
                        let before = v.len();
                        v.retain(|x| x.is_live(now_ms));
                        let n = before - v.len();
                        dropped += n as u64;
                        self.note_expired(dom, n);
                        if n > 0 && !v.is_empty() {
                            // Out of memory keeps the old block: readers
                            // filter expired bindings anyway.
                            let key = key.to_vec();
                            let _ = self.rewrite(rec, &key, &v);
                        }
                        !v.is_empty()
                    }
                };
                if keep {
                    skip += 1;
                    seen += 1;
                    prev = cur;
                } else if self.unlink(&mut g, dom, Pos { prev, cur }).is_err() {
                    return dropped;
                }
                cur = next;
            }
            if cur == 0 || seen >= g.len {
                return dropped;
            }
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
