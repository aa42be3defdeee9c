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
//!
//! # Surviving a process that dies mid-update
//!
//! The chain of `next` offsets from the bucket's `head` is the truth; its
//! length `len` is derived from it. Every change to a chain is one store
//! (its publication): a new record is built, then made the head; a record
//! is taken out by pointing its predecessor past it. A record's encoded
//! block is replaced the same way, its offset and length published as one
//! word. A process killed with a bucket lock held therefore leaves the
//! chain either before or after its update, with `len` at most one off;
//! the next locker is told so by the lock (`owner_died`) and
//! [`Store::repair`] recounts the chain. What the dead process had
//! allocated but not published, or unpublished but not yet freed (one
//! record or block), stays allocated: a leak of a few hundred bytes per
//! death, never a block in use twice. [`shm::killpoint`]s let tests stop a
//! process between every two steps.

use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Relaxed, Release},
};

use shm::{LockLevel, Region, ShmError, ShmGuard, ShmLocked, ShmOff, ShmSlice};

use super::binding::{AorBindings, Binding};
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
    /// Atomics so that the publishing store is ordered after the record's
    /// own fields (see the module doc).
    #[derive(Default)]
    pub struct BucketHead {
        head: AtomicU32,
        len: AtomicU32,
    }
}

impl BucketHead {
    fn head(&self) -> u32 {
        self.head.load(Relaxed)
    }

    fn len(&self) -> u32 {
        self.len.load(Relaxed)
    }
}

shm::shm_struct! {
    /// One AOR. The fields change only under the bucket lock; they are
    /// atomics because shm objects are shared (`&`) references.
    ///
    /// With a database behind the table (`tracked`), `gen` counts the
    /// record's changes and `synced` is the `gen` the database is known to
    /// hold: the record is dirty while they differ. `writer` is the pid of
    /// the process writing it to the database (0: none), so one AOR is
    /// written by one process at a time and its writes land in order. A
    /// record whose bindings are all gone stays, empty, until the database
    /// has caught up (a tombstone): its rows must still be deleted.
    pub struct Record {
        next: AtomicU32,
        hash: u32,
        /// The encoded block: offset in the low half, length in the high
        /// half, so that a rewrite publishes both with one store.
        data: AtomicU64,
        gen: AtomicU32,
        synced: AtomicU32,
        writer: AtomicU32,
    }
}

shm::shm_struct! {
    /// What `ul_stats` prints per domain.
    #[derive(Default)]
    pub struct DomainStats {
        users: AtomicU32,
        expired: AtomicU64,
        /// Bindings stored in the domain's records (expired ones not yet
        /// swept included): the metrics endpoint's figure.
        bindings: AtomicU64,
    }
}

/// What an update changed, for the database (tracked tables only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    /// The AOR as stored.
    pub key: Vec<u8>,
    /// Every binding before (expired ones included): what the database
    /// holds when `was_synced`.
    pub before: Vec<Binding>,
    pub after: Vec<Binding>,
    /// Did the database hold `before`? If not, only a full reconciliation
    /// brings it up to date.
    pub was_synced: bool,
    /// The record's generation after the change.
    pub gen: u32,
    /// This process is now the record's writer: it must [`Store::settle`].
    pub claimed: bool,
}

/// A dirty record claimed for writing (see [`Store::claim_dirty`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Dirty {
    pub key: Vec<u8>,
    /// Its live bindings: what the database should hold.
    pub live: Vec<Binding>,
    pub gen: u32,
}

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
    #[error("usrloc: {0}")]
    Db(#[from] crate::db::DbError),
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
    /// A database follows the tables (db_mode 1, 2): count generations,
    /// keep tombstones.
    tracked: bool,
}

/// Is `pid` a process that can still settle what it claimed? (0: nobody.)
fn writer_alive(pid: u32) -> bool {
    pid != 0 && (pid == shm::current_pid() || !shm::process_is_dead(pid))
}

/// A record found in a chain: its predecessor (0 = the bucket head) and
/// itself, as raw offsets.
#[derive(Clone, Copy)]
struct Pos {
    prev: u32,
    cur: u32,
}

/// A record's block as one word: offset low, length high.
fn pack(off: u32, len: usize) -> u64 {
    u64::from(off) | (len as u64) << 32
}

fn unpack(data: u64) -> (u32, u32) {
    (data as u32, (data >> 32) as u32)
}

fn fnv1a(bytes: &[u8], fold: bool) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        let b = if fold { b.to_ascii_lowercase() } else { b };
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl Store {
    /// Tables for `names` with 2^`bits` buckets each.
    #[cfg(test)]
    pub(super) fn new(
        region: &'static Region,
        names: &[String],
        bits: u32,
        case_sensitive: bool,
    ) -> Result<Store, UlError> {
        Store::with_tracking(region, names, bits, case_sensitive, false)
    }

    /// Tables followed by a database when `tracked` (see [`Record`]).
    pub(super) fn with_tracking(
        region: &'static Region,
        names: &[String],
        bits: u32,
        case_sensitive: bool,
        tracked: bool,
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
            tracked,
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

    /// Bindings stored in domain `d` now.
    pub(super) fn bindings(&self, d: usize) -> u64 {
        self.domains
            .get(d)
            .map_or(0, |dom| self.region.get(dom.stats).bindings.load(Relaxed))
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
        Ok(self.lock_bucket(dom, b))
    }

    /// Locks bucket `b` of `dom`, repairing it first when its previous
    /// holder died with the lock held. Every lock of a bucket goes here.
    fn lock_bucket(
        &self,
        dom: &Domain,
        b: &'static ShmLocked<BucketHead>,
    ) -> ShmGuard<'static, BucketHead> {
        let g = b.lock_at(LOCK_LEVEL);
        if g.owner_died() {
            let (was, is) = self.repair(&g);
            crate::log_limited!(
                log::Level::Error,
                "usrloc: a process died holding a bucket lock of {}; bucket repaired ({was} records counted, {is} in the chain)",
                dom.name
            );
        }
        g
    }

    /// Brings a bucket whose holder died mid-update back to a consistent
    /// state (see the module doc): walks the chain, cutting it at a record
    /// that cannot be read or past the one half-done insert the count can
    /// miss, and stores its length. Returns `(len before, len after)`.
    fn repair(&self, g: &BucketHead) -> (u32, u32) {
        let was = g.len();
        let bound = was.saturating_add(2);
        let (mut prev, mut cur, mut n) = (0u32, g.head(), 0u32);
        while cur != 0 {
            let rec = match self.record(cur) {
                Ok(rec) if n < bound => rec,
                _ => {
                    self.set_next(g, prev, 0);
                    break;
                }
            };
            n += 1;
            prev = cur;
            cur = rec.next.load(Relaxed);
        }
        g.len.store(n, Relaxed);
        (was, n)
    }

    /// The publication of a chain change: `prev`'s successor (the head
    /// when `prev` is 0) becomes `next`.
    fn set_next(&self, g: &BucketHead, prev: u32, next: u32) {
        if prev == 0 {
            g.head.store(next, Release);
        } else if let Ok(p) = self.record(prev) {
            p.next.store(next, Release);
        }
    }

    fn record(&self, raw: u32) -> Result<&'static Record, UlError> {
        ShmOff::<Record>::from_u32(raw)
            .and_then(|o| self.region.try_get(o))
            .ok_or(UlError::BadChain)
    }

    fn block(&self, rec: &Record) -> &'static [u8] {
        let (off, len) = unpack(rec.data.load(Relaxed));
        match ShmOff::<u8>::from_u32(off) {
            Some(o) => self.region.slice(ShmSlice::from_raw_parts(o, len)),
            None => &[],
        }
    }

    fn free_block(&self, data: u64) {
        if let Some(o) = ShmOff::<u8>::from_u32(unpack(data).0) {
            self.region.free(o);
        }
    }

    /// The record of `aor` in the locked chain. The walk is bounded by the
    /// chain's length, so a damaged (cyclic) chain cannot hang a worker.
    fn find(&self, g: &BucketHead, hash: u32, aor: &[u8]) -> Result<Option<Pos>, UlError> {
        let (mut prev, mut cur) = (0u32, g.head());
        for _ in 0..g.len() {
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

    fn unlink(&self, g: &BucketHead, p: Pos) -> Result<(), UlError> {
        let rec = self.record(p.cur)?;
        if p.prev != 0 {
            self.record(p.prev)?;
        }
        let next = rec.next.load(Relaxed);
        shm::killpoint::hit("usrloc.unlink.prepared");
        self.set_next(g, p.prev, next);
        shm::killpoint::hit("usrloc.unlink.published");
        g.len.store(g.len().saturating_sub(1), Relaxed);
        shm::killpoint::hit("usrloc.unlink.counted");
        self.free_block(rec.data.load(Relaxed));
        if let Some(o) = ShmOff::<Record>::from_u32(p.cur) {
            self.region.free(o);
        }
        Ok(())
    }

    /// `ul_stats`' count follows records that hold bindings (tombstones
    /// are not users).
    fn count_user(&self, dom: &Domain, was: bool, is: bool) {
        let users = &self.region.get(dom.stats).users;
        match (was, is) {
            (false, true) => {
                users.fetch_add(1, Relaxed);
            }
            (true, false) => {
                let _ = users.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
            }
            _ => {}
        }
    }

    /// A record that stored `was` bindings stores `is` now. Called only
    /// once the change is in shm, so a failed rewrite leaves the count.
    fn count_bindings(&self, dom: &Domain, was: usize, is: usize) {
        let n = &self.region.get(dom.stats).bindings;
        if is > was {
            n.fetch_add((is - was) as u64, Relaxed);
        } else if was > is {
            let d = (was - is) as u64;
            let _ = n.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(d)));
        }
    }

    /// Replace the record's block with the encoding of `v`; on failure
    /// the old block stays.
    fn rewrite(&self, rec: &Record, key: &[u8], v: &[Binding]) -> Result<(), UlError> {
        let block = self.region.alloc_slice(&codec::encode(key, v))?;
        let Some(start) = block.start() else {
            return Err(UlError::BadChain);
        };
        shm::killpoint::hit("usrloc.rewrite.prepared");
        // The publication; the old block is freed only once no record
        // names it.
        let old = rec.data.swap(pack(start.get(), block.len()), Release);
        shm::killpoint::hit("usrloc.rewrite.published");
        self.free_block(old);
        Ok(())
    }

    /// Counts `n` bindings dropped on expiry in domain `d` elsewhere (the
    /// database, in mode 3).
    pub(super) fn note_expired_in(&self, d: usize, n: u64) {
        if let Some(dom) = self.domains.get(d) {
            self.region.get(dom.stats).expired.fetch_add(n, Relaxed);
        }
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
    #[cfg(test)]
    pub(super) fn update<R>(
        &self,
        d: usize,
        aor: &[u8],
        now_ms: u64,
        f: impl FnOnce(&mut Vec<Binding>) -> R,
    ) -> Result<R, UlError> {
        self.update_tracked(d, aor, now_ms, false, f)
            .map(|(r, _)| r)
    }

    /// [`Store::update`], and on a tracked table what changed; with
    /// `claim`, this process becomes the record's writer when nobody is
    /// (then it must [`Store::settle`] the change).
    pub(super) fn update_tracked<R>(
        &self,
        d: usize,
        aor: &[u8],
        now_ms: u64,
        claim: bool,
        f: impl FnOnce(&mut Vec<Binding>) -> R,
    ) -> Result<(R, Option<Change>), UlError> {
        let dom = self.dom(d)?;
        let hash = self.hash(aor);
        let g = self.lock(dom, hash)?;
        let found = self.find(&g, hash, aor)?;
        let (key, all) = match found {
            Some(p) => {
                let (key, all) = codec::decode(self.block(self.record(p.cur)?))?;
                (key.to_vec(), all)
            }
            None => (aor.to_vec(), Vec::new()),
        };
        let mut v = all.clone();
        v.retain(|b| b.is_live(now_ms));
        self.note_expired(dom, all.len() - v.len());
        let r = f(&mut v);
        let changed = v != all;
        self.count_user(dom, !all.is_empty(), !v.is_empty());
        let rec = match found {
            None if v.is_empty() => return Ok((r, None)),
            Some(p) if v.is_empty() && !self.tracked => {
                self.unlink(&g, p)?;
                self.count_bindings(dom, all.len(), 0);
                return Ok((r, None));
            }
            Some(p) => {
                let rec = self.record(p.cur)?;
                if changed {
                    self.rewrite(rec, &key, &v)?;
                    self.count_bindings(dom, all.len(), v.len());
                }
                rec
            }
            None => {
                let off = self.insert(&g, hash, &key, &v)?;
                self.count_bindings(dom, 0, v.len());
                self.region.get(off)
            }
        };
        if !self.tracked || !changed {
            return Ok((r, None));
        }
        let was_synced = rec.synced.load(Relaxed) == rec.gen.load(Relaxed);
        let gen = rec.gen.load(Relaxed).wrapping_add(1).max(1);
        rec.gen.store(gen, Relaxed);
        let claimed = claim && !writer_alive(rec.writer.load(Relaxed));
        if claimed {
            rec.writer.store(shm::current_pid(), Relaxed);
        }
        let change = Change {
            key,
            before: all,
            after: v,
            was_synced,
            gen,
            claimed,
        };
        Ok((r, Some(change)))
    }

    /// A new record at the head of the locked chain: generation 1, never
    /// written to a database.
    fn insert(
        &self,
        g: &BucketHead,
        hash: u32,
        key: &[u8],
        v: &[Binding],
    ) -> Result<ShmOff<Record>, UlError> {
        let block = self.region.alloc_slice(&codec::encode(key, v))?;
        let start = block.start().ok_or(UlError::BadChain)?;
        let rec = Record {
            next: AtomicU32::new(g.head()),
            hash,
            data: AtomicU64::new(pack(start.get(), block.len())),
            gen: AtomicU32::new(0),
            synced: AtomicU32::new(0),
            writer: AtomicU32::new(0),
        };
        let off = self
            .region
            .alloc(rec)
            .inspect_err(|_| self.region.free_slice(block))?;
        shm::killpoint::hit("usrloc.insert.prepared");
        g.head.store(off.get(), Release);
        shm::killpoint::hit("usrloc.insert.published");
        g.len.store(g.len() + 1, Relaxed);
        Ok(off)
    }

    /// Puts `aor`'s bindings read from the database (at start), as
    /// already written: the record is not dirty. Bindings of an AOR that
    /// is already there are added to it.
    pub(super) fn load(
        &self,
        d: usize,
        aor: &[u8],
        now_ms: u64,
        bindings: Vec<Binding>,
    ) -> Result<(), UlError> {
        let (_, change) = self.update_tracked(d, aor, now_ms, false, |v| {
            for b in bindings {
                match v.iter_mut().find(|x| x.contact == b.contact) {
                    Some(x) => *x = b,
                    None => v.push(b),
                }
            }
        })?;
        if let Some(c) = change.filter(|c| c.was_synced) {
            // The database holds exactly this now.
            self.settle(d, &c.key, c.gen, true)?;
        }
        Ok(())
    }

    /// Ends a write of `key` at generation `gen` by this process: it is no
    /// longer the writer, the record is clean if the write succeeded and
    /// nothing changed since, and a clean tombstone goes. Returns whether
    /// the record is still dirty (someone has to write it again).
    pub(super) fn settle(&self, d: usize, key: &[u8], gen: u32, ok: bool) -> Result<bool, UlError> {
        let dom = self.dom(d)?;
        let hash = self.hash(key);
        let g = self.lock(dom, hash)?;
        let Some(p) = self.find(&g, hash, key)? else {
            return Ok(false);
        };
        let rec = self.record(p.cur)?;
        if rec.writer.load(Relaxed) == shm::current_pid() {
            rec.writer.store(0, Relaxed);
        }
        if ok && rec.gen.load(Relaxed) == gen {
            rec.synced.store(gen, Relaxed);
            if codec::decode(self.block(rec)).is_ok_and(|(_, v)| v.is_empty()) {
                self.unlink(&g, p)?;
            }
            return Ok(false);
        }
        Ok(rec.synced.load(Relaxed) != rec.gen.load(Relaxed))
    }

    /// Claims the dirty records of bucket `bucket` of domain `d` that no
    /// live process is writing: this process becomes their writer and
    /// must [`Store::settle`] each. `None` past the last bucket.
    pub(super) fn claim_dirty(&self, d: usize, bucket: usize, now_ms: u64) -> Option<Vec<Dirty>> {
        let dom = self.domains.get(d)?;
        let b = self.region.slice(dom.buckets).get(bucket)?;
        let mut out = Vec::new();
        let g = self.lock_bucket(dom, b);
        let mut cur = g.head();
        for _ in 0..g.len() {
            let Ok(rec) = self.record(cur) else { break };
            cur = rec.next.load(Relaxed);
            out.extend(self.claim_rec(rec, now_ms));
        }
        Some(out)
    }

    /// Claims `key`'s record if it is dirty and nobody live writes it.
    pub(super) fn claim(
        &self,
        d: usize,
        key: &[u8],
        now_ms: u64,
    ) -> Result<Option<Dirty>, UlError> {
        let dom = self.dom(d)?;
        let hash = self.hash(key);
        let g = self.lock(dom, hash)?;
        match self.find(&g, hash, key)? {
            Some(p) => Ok(self.claim_rec(self.record(p.cur)?, now_ms)),
            None => Ok(None),
        }
    }

    /// Under the record's bucket lock.
    fn claim_rec(&self, rec: &Record, now_ms: u64) -> Option<Dirty> {
        let gen = rec.gen.load(Relaxed);
        if gen == rec.synced.load(Relaxed) || writer_alive(rec.writer.load(Relaxed)) {
            return None;
        }
        let (key, mut live) = codec::decode(self.block(rec)).ok()?;
        live.retain(|x| x.is_live(now_ms));
        rec.writer.store(shm::current_pid(), Relaxed);
        Some(Dirty {
            key: key.to_vec(),
            live,
            gen,
        })
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
        if v.is_empty() {
            // A tombstone: gone, only not yet from the database.
            return Ok(None);
        }
        v.retain(|b| b.is_live(now_ms));
        Ok(Some(v))
    }

    /// Every record of domain `d` as `(AOR, live bindings)`, read one
    /// bucket at a time (a consistent view per record, not per table).
    pub(super) fn records(&self, d: usize, now_ms: u64) -> Result<Vec<AorBindings>, UlError> {
        let dom = self.dom(d)?;
        let mut out = Vec::new();
        for b in self.region.slice(dom.buckets) {
            let g = self.lock_bucket(dom, b);
            let mut cur = g.head();
            for _ in 0..g.len() {
                let Ok(rec) = self.record(cur) else { break };
                if let Ok((key, mut v)) = codec::decode(self.block(rec)) {
                    if !v.is_empty() {
                        v.retain(|x| x.is_live(now_ms));
                        out.push((key.to_vec(), v));
                    }
                }
                cur = rec.next.load(Relaxed);
            }
        }
        Ok(out)
    }

    /// Drop expired bindings and empty (or undecodable) records from
    /// every domain, at most [`SWEEP_BATCH`] records per lock hold.
    /// Returns the number of bindings dropped. On a tracked table a record
    /// that lost bindings becomes dirty, and an emptied one stays as a
    /// tombstone until its rows are deleted from the database.
    pub(super) fn sweep(&self, now_ms: u64) -> u64 {
        let mut dropped = 0u64;
        for dom in &self.domains {
            for b in self.region.slice(dom.buckets) {
                dropped += self.sweep_bucket(dom, b, now_ms);
            }
        }
        dropped
    }

    fn sweep_bucket(&self, dom: &Domain, b: &'static ShmLocked<BucketHead>, now_ms: u64) -> u64 {
        let mut dropped = 0u64;
        // Records before `skip` were kept in an earlier hold; the chain may
        // change between holds, which at worst defers a record to the next
        // sweep.
        let mut skip = 0u32;
        loop {
            let g = self.lock_bucket(dom, b);
            if g.head() == 0 {
                return dropped;
            }
            let (mut prev, mut cur) = (0u32, g.head());
            let mut seen = 0u32;
            let mut done = 0u32;
            while cur != 0 && seen < g.len() && done < SWEEP_BATCH {
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
                // `stored`: the bindings the record holds now, which its
                // unlinking takes out of the count.
                let (keep, stored) = match codec::decode(self.block(rec)) {
                    Err(e) => {
                        // How many bindings it held cannot be read: the
                        // binding count may stay that much too high.
                        log::error!("usrloc: dropping a damaged record in {}: {e}", dom.name);
                        self.count_user(dom, true, false);
                        (false, 0)
                    }
                    Ok((key, mut v)) => {
                        let before = v.len();
                        v.retain(|x| x.is_live(now_ms));
                        let n = before - v.len();
                        dropped += n as u64;
                        self.note_expired(dom, n);
                        self.count_user(dom, before > 0, !v.is_empty());
                        let clean = rec.gen.load(Relaxed) == rec.synced.load(Relaxed);
                        let mut stored = before;
                        if n > 0 && (self.tracked || !v.is_empty()) {
                            // Out of memory keeps the old block: readers
                            // filter expired bindings anyway (and the
                            // record stays clean, so its rows stay too
                            // until the next sweep manages).
                            let key = key.to_vec();
                            if self.rewrite(rec, &key, &v).is_ok() {
                                self.count_bindings(dom, before, v.len());
                                stored = v.len();
                                if self.tracked {
                                    let gen = rec.gen.load(Relaxed).wrapping_add(1).max(1);
                                    rec.gen.store(gen, Relaxed);
                                }
                            }
                        }
                        // A tombstone goes once the database caught up.
                        let keep = !v.is_empty() || (self.tracked && (n > 0 || !clean));
                        (keep, stored)
                    }
                };
                if keep {
                    skip += 1;
                    seen += 1;
                    prev = cur;
                } else if self.unlink(&g, Pos { prev, cur }).is_err() {
                    return dropped;
                } else {
                    self.count_bindings(dom, stored, 0);
                }
                cur = next;
            }
            if cur == 0 || seen >= g.len() {
                return dropped;
            }
        }
    }

    /// Per bucket of domain `d`: `(len, records in the chain)`, walked up
    /// to twice the count (the tests' oracle; locking repairs first).
    #[cfg(test)]
    pub(super) fn chain_lengths(&self, d: usize) -> Vec<(u32, u32)> {
        let Ok(dom) = self.dom(d) else {
            return Vec::new();
        };
        self.region
            .slice(dom.buckets)
            .iter()
            .map(|b| {
                let g = self.lock_bucket(dom, b);
                let (mut cur, mut n) = (g.head(), 0u32);
                while cur != 0 && n <= g.len().saturating_mul(2) {
                    n += 1;
                    cur = self.record(cur).map_or(0, |r| r.next.load(Relaxed));
                }
                (g.len(), n)
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
