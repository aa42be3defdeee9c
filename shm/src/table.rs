//! A hash table in shared memory: 2^N buckets, a lock per bucket, each
//! bucket an intrusive doubly-linked list of entries.
//!
//! Entries embed a [`ListLink`] and implement [`Linked`] to expose it, so
//! inserting never allocates. Each bucket also keeps the counters SER's
//! FIFO `t_hash` prints (`current`, `total`) and a label counter from
//! which transaction ids `(bucket, label)` are drawn.
//!
//! # Surviving a process that dies mid-update
//!
//! The `next` chain from `head` is the truth; `prev`, `tail` and
//! `current` are derived from it. Each update changes that chain with
//! one store (its publication), and an entry's `bucket` mark is set only
//! after it was published and cleared before it is unpublished, so "marked"
//! implies "in the chain". A process that dies with the bucket lock held
//! leaves at most one update half-done; the next locker is told so by the
//! lock ([`crate::ShmMutexGuard::owner_died`]) and [`BucketGuard::repair`]
//! rebuilds the derived fields from the chain: an entry published but not
//! yet marked (a half-done insert, or a remove that cleared the mark) is
//! unlinked, one unpublished is not in the bucket. [`killpoint`] lets
//! tests stop a process between every two stores.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::ShmError;
use crate::killpoint;
use crate::lockorder::LockLevel;
use crate::mutex::{ShmMutex, ShmMutexGuard};
use crate::off::{AtomicOff, ShmOff, ShmSlice};
use crate::region::Region;
use crate::safe::ShmSafe;

/// Largest table: 2^24 buckets.
pub const MAX_BITS: u32 = 24;

/// The list fields an entry embeds. Zeroed = not in any bucket.
#[repr(C)]
#[derive(Default, Debug)]
pub struct ListLink<E> {
    next: AtomicOff<E>,
    prev: AtomicOff<E>,
    /// Bucket index + 1 while linked, 0 when not: lets `remove` refuse an
    /// entry that is not in the locked bucket instead of corrupting lists.
    bucket: AtomicU32,
}

// SAFETY: three u32-sized atomics.
unsafe impl<E> ShmSafe for ListLink<E> {}

impl<E> ListLink<E> {
    /// An unlinked link.
    pub const fn new() -> Self {
        Self {
            next: AtomicOff::none(),
            prev: AtomicOff::none(),
            bucket: AtomicU32::new(0),
        }
    }
    /// The bucket holding the entry, if it is linked (a snapshot).
    pub fn bucket(&self) -> Option<u32> {
        self.bucket.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// An entry type that can sit in a [`ShmHashTable`].
pub trait Linked: ShmSafe + Sized {
    /// The entry's embedded link. Must return the same field every time.
    fn link(&self) -> &ListLink<Self>;
}

#[repr(C)]
struct Bucket<E> {
    lock: ShmMutex,
    head: AtomicOff<E>,
    tail: AtomicOff<E>,
    current: AtomicU32,
    label: AtomicU32,
    total: AtomicU64,
}

// SAFETY: a mutex and atomics.
unsafe impl<E> ShmSafe for Bucket<E> {}

/// The table's root, itself `ShmSafe`: embed it in a shared struct or
/// allocate it with [`ShmHashTable::create`].
#[repr(C)]
pub struct ShmHashTable<E> {
    buckets: ShmSlice<Bucket<E>>,
    bits: u32,
}

// SAFETY: a slice handle and a u32.
unsafe impl<E> ShmSafe for ShmHashTable<E> {}

impl<E: Linked> ShmHashTable<E> {
    /// Allocates 2^`bits` buckets (1 ≤ bits ≤ 24; SER uses 16). Labels are
    /// seeded differently per bucket so ids do not repeat across restarts
    /// of a bucket's sequence.
    pub fn new_in(region: &Region, bits: u32) -> Result<Self, ShmError> {
        if bits == 0 || bits > MAX_BITS {
            return Err(ShmError::BadGeometry { bits });
        }
        let buckets = region.alloc_slice_zeroed::<Bucket<E>>(1usize << bits)?;
        for (i, b) in region.slice(buckets).iter().enumerate() {
            let seed = (i as u32).wrapping_mul(0x9E37_79B9).rotate_left(7) ^ 0x2545_F491;
            b.label.store(seed, Ordering::Relaxed);
        }
        Ok(Self { buckets, bits })
    }

    /// Restart every bucket's label counter at `seed(bucket index)` — a
    /// secret per start, so ids neither repeat across restarts nor can be
    /// predicted. Before the table is shared.
    pub fn seed_labels(&self, region: &Region, mut seed: impl FnMut(u32) -> u32) {
        for (i, b) in region.slice(self.buckets).iter().enumerate() {
            b.label.store(seed(i as u32), Ordering::Relaxed);
        }
    }

    /// [`Self::new_in`], placed in its own block.
    pub fn create(region: &Region, bits: u32) -> Result<ShmOff<Self>, ShmError> {
        let t = Self::new_in(region, bits)?;
        let buckets = t.buckets;
        region.alloc(t).inspect_err(|_| region.free_slice(buckets))
    }

    /// Frees the bucket array. Entries are the caller's to free.
    pub fn destroy(self, region: &Region) {
        region.free_slice(self.buckets);
    }

    /// Number of buckets.
    pub fn len(&self) -> u32 {
        1 << self.bits
    }

    /// Never true (a table has at least 2 buckets); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The bucket for a hash value (its low bits).
    pub fn bucket_of(&self, hash: u32) -> u32 {
        hash & (self.len() - 1)
    }

    fn bucket<'r>(&self, region: &'r Region, i: u32) -> Option<&'r Bucket<E>> {
        region
            .slice(self.buckets)
            .get((i & (self.len() - 1)) as usize)
    }

    /// Locks bucket `i` (taken modulo the bucket count). `None` only if the
    /// table handle does not belong to `region`.
    pub fn lock_bucket<'r>(&self, region: &'r Region, i: u32) -> Option<BucketGuard<'r, E>> {
        let idx = i & (self.len() - 1);
        let b = self.bucket(region, idx)?;
        let g = b.lock.lock_at(LockLevel::Bucket);
        let died = g.owner_died();
        let mut guard = BucketGuard {
            region,
            b,
            idx,
            _g: g,
        };
        if died {
            guard.repair();
        }
        Some(guard)
    }

    /// `(current, total)` of bucket `i` without locking (for `t_hash`).
    pub fn counters(&self, region: &Region, i: u32) -> (u32, u64) {
        self.bucket(region, i).map_or((0, 0), |b| {
            (
                b.current.load(Ordering::Relaxed),
                b.total.load(Ordering::Relaxed),
            )
        })
    }

    /// Whether bucket `i`'s lock is held by a process that no longer exists.
    pub fn bucket_held_by_dead_process(&self, region: &Region, i: u32) -> bool {
        self.bucket(region, i)
            .is_some_and(|b| b.lock.is_held_by_dead_process())
    }
}

/// A locked bucket; unlocks when dropped.
#[must_use = "the bucket is unlocked as soon as the guard is dropped"]
pub struct BucketGuard<'r, E> {
    region: &'r Region,
    b: &'r Bucket<E>,
    idx: u32,
    _g: ShmMutexGuard<'r>,
}

impl<'r, E: Linked> BucketGuard<'r, E> {
    /// The bucket's index.
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// Entries now in the bucket.
    pub fn current(&self) -> u32 {
        self.b.current.load(Ordering::Relaxed)
    }

    /// Entries ever inserted into the bucket.
    pub fn total(&self) -> u64 {
        self.b.total.load(Ordering::Relaxed)
    }

    /// Next label of this bucket (wraps at 2^32).
    pub fn next_label(&self) -> u32 {
        self.b.label.fetch_add(1, Ordering::Relaxed)
    }

    /// Appends `off`. False (nothing done) if the entry is already linked.
    pub fn insert(&mut self, off: ShmOff<E>) -> bool {
        let l = self.region.get(off).link();
        if l.bucket.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let tail = self.b.tail.load(Ordering::Relaxed);
        l.prev.store(tail, Ordering::Relaxed);
        l.next.store(None, Ordering::Relaxed);
        killpoint::hit("table.insert.prepared");
        // The publication: from here on the entry is in the chain.
        match tail {
            Some(t) => self
                .region
                .get(t)
                .link()
                .next
                .store(Some(off), Ordering::Release),
            None => self.b.head.store(Some(off), Ordering::Release),
        }
        killpoint::hit("table.insert.published");
        self.b.tail.store(Some(off), Ordering::Relaxed);
        self.b.current.fetch_add(1, Ordering::Relaxed);
        self.b.total.fetch_add(1, Ordering::Relaxed);
        killpoint::hit("table.insert.counted");
        l.bucket.store(self.idx + 1, Ordering::Release);
        true
    }

    /// Unlinks `off`. False (nothing done) if it is not in this bucket.
    pub fn remove(&mut self, off: ShmOff<E>) -> bool {
        let l = self.region.get(off).link();
        if l.bucket.load(Ordering::Relaxed) != self.idx + 1 {
            return false;
        }
        l.bucket.store(0, Ordering::Release);
        killpoint::hit("table.remove.unmarked");
        self.unlink(off);
        true
    }

    /// Takes `off` out of the chain (its mark already cleared).
    fn unlink(&mut self, off: ShmOff<E>) {
        let l = self.region.get(off).link();
        let prev = l.prev.load(Ordering::Relaxed);
        let next = l.next.load(Ordering::Relaxed);
        // The publication: from here on the entry is out of the chain.
        self.set_next(prev, next);
        killpoint::hit("table.remove.unpublished");
        match next {
            Some(n) => self
                .region
                .get(n)
                .link()
                .prev
                .store(prev, Ordering::Relaxed),
            None => self.b.tail.store(prev, Ordering::Relaxed),
        }
        killpoint::hit("table.remove.relinked");
        l.prev.store(None, Ordering::Relaxed);
        l.next.store(None, Ordering::Relaxed);
        self.b.current.fetch_sub(1, Ordering::Relaxed);
    }

    /// Brings the bucket back to a consistent state after its previous
    /// holder died mid-update (see the module doc): rebuilds `prev`,
    /// `tail` and `current` from the `next` chain and finishes a half-done
    /// insert or remove by unlinking the unmarked entry. Returns how many
    /// entries it unlinked.
    pub fn repair(&mut self) -> usize {
        let mark = self.idx + 1;
        // At most one update was half-done: the chain is at most one
        // longer than the count says. The bound guards against a chain
        // corrupted otherwise.
        let bound = self.b.current.load(Ordering::Relaxed).saturating_add(2);
        let mut prev: Option<ShmOff<E>> = None;
        let mut cur = self.b.head.load(Ordering::Relaxed);
        let mut kept = 0u32;
        let mut dropped = 0;
        let mut seen = 0u32;
        while let Some(off) = cur {
            seen += 1;
            if seen > bound {
                // Cut the chain rather than walk a cycle.
                self.set_next(prev, None);
                break;
            }
            let l = self.region.get(off).link();
            let next = l.next.load(Ordering::Relaxed);
            if l.bucket.load(Ordering::Relaxed) == mark {
                l.prev.store(prev, Ordering::Relaxed);
                prev = Some(off);
                kept += 1;
            } else {
                self.set_next(prev, next);
                l.prev.store(None, Ordering::Relaxed);
                l.next.store(None, Ordering::Relaxed);
                l.bucket.store(0, Ordering::Relaxed);
                dropped += 1;
            }
            cur = next;
        }
        self.b.tail.store(prev, Ordering::Relaxed);
        self.b.current.store(kept, Ordering::Relaxed);
        dropped
    }

    fn set_next(&self, prev: Option<ShmOff<E>>, next: Option<ShmOff<E>>) {
        match prev {
            Some(p) => self
                .region
                .get(p)
                .link()
                .next
                .store(next, Ordering::Release),
            None => self.b.head.store(next, Ordering::Release),
        }
    }

    /// Checks the bucket's invariants: every entry of the chain marked
    /// with this bucket, `prev` the reverse of `next`, `tail` the last,
    /// `current` the length. The kill tests' oracle.
    pub fn check(&self) -> Result<(), String> {
        let mark = self.idx + 1;
        let current = self.b.current.load(Ordering::Relaxed);
        let mut prev: Option<ShmOff<E>> = None;
        let mut cur = self.b.head.load(Ordering::Relaxed);
        let mut n = 0u32;
        while let Some(off) = cur {
            n += 1;
            if n > current {
                return Err(format!("chain longer than current={current}"));
            }
            let l = self.region.get(off).link();
            if l.bucket.load(Ordering::Relaxed) != mark {
                return Err(format!("entry {} in the chain is not marked", off.get()));
            }
            if l.prev.load(Ordering::Relaxed) != prev {
                return Err(format!("entry {} has a wrong prev", off.get()));
            }
            prev = Some(off);
            cur = l.next.load(Ordering::Relaxed);
        }
        if n != current {
            return Err(format!("chain of {n}, current={current}"));
        }
        if self.b.tail.load(Ordering::Relaxed) != prev {
            return Err("tail is not the last entry".into());
        }
        Ok(())
    }

    /// Entries in insertion order. Collect before removing while iterating.
    pub fn iter(&self) -> BucketIter<'_, 'r, E> {
        BucketIter {
            g: self,
            cur: self.b.head.load(Ordering::Relaxed),
            left: self.current(),
        }
    }

    /// The first entry satisfying `pred`.
    pub fn find(&self, mut pred: impl FnMut(&E) -> bool) -> Option<ShmOff<E>> {
        self.iter().find(|(_, e)| pred(e)).map(|(o, _)| o)
    }
}

/// Iterator over a locked bucket: `(offset, entry)`.
pub struct BucketIter<'g, 'r, E> {
    g: &'g BucketGuard<'r, E>,
    cur: Option<ShmOff<E>>,
    /// Bound on the walk, so a corrupted (cyclic) list cannot hang a worker.
    left: u32,
}

impl<'g, 'r, E: Linked> Iterator for BucketIter<'g, 'r, E> {
    type Item = (ShmOff<E>, &'r E);
    fn next(&mut self) -> Option<Self::Item> {
        let off = self.cur?;
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let e: &'r E = self.g.region.get(off);
        self.cur = e.link().next.load(Ordering::Relaxed);
        Some((off, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testbuf;

    #[repr(C)]
    #[derive(Default)]
    struct Ent {
        link: ListLink<Ent>,
        key: u32,
    }
    // SAFETY: a link and a u32.
    unsafe impl ShmSafe for Ent {}
    impl Linked for Ent {
        fn link(&self) -> &ListLink<Self> {
            &self.link
        }
    }

    #[test]
    fn insert_find_remove_and_counters() {
        let t = testbuf::region(1 << 20);
        let r = &t.r;
        let tab = ShmHashTable::<Ent>::new_in(r, 4).unwrap();
        assert!(ShmHashTable::<Ent>::new_in(r, 0).is_err());
        let offs: Vec<_> = (0..10u32)
            .map(|k| {
                r.alloc(Ent {
                    key: k,
                    ..Default::default()
                })
                .unwrap()
            })
            .collect();
        {
            let mut g = tab.lock_bucket(r, 3).unwrap();
            for &o in &offs {
                assert!(g.insert(o));
            }
            assert!(!g.insert(offs[0]), "double insert refused");
            assert_eq!(g.current(), 10);
            let keys: Vec<u32> = g.iter().map(|(_, e)| e.key).collect();
            assert_eq!(keys, (0..10).collect::<Vec<_>>());
            assert_eq!(g.find(|e| e.key == 7), Some(offs[7]));
            assert!(g.remove(offs[0]) && g.remove(offs[9]) && g.remove(offs[5]));
            assert!(!g.remove(offs[5]), "second remove refused");
            let keys: Vec<u32> = g.iter().map(|(_, e)| e.key).collect();
            assert_eq!(keys, vec![1, 2, 3, 4, 6, 7, 8]);
        }
        {
            let mut other = tab.lock_bucket(r, 4).unwrap();
            assert!(!other.remove(offs[1]), "entry of another bucket refused");
            let a = other.next_label();
            assert_eq!(other.next_label(), a.wrapping_add(1));
        }
        assert_eq!(tab.counters(r, 3), (7, 10));
        assert_eq!(tab.counters(r, 3 + 16), (7, 10), "index taken modulo size");
        let l3 = tab.lock_bucket(r, 3).unwrap().next_label();
        let l4 = tab.lock_bucket(r, 4).unwrap().next_label();
        assert_ne!(l3, l4.wrapping_sub(2), "labels seeded per bucket");
        tab.seed_labels(r, |i| i * 1000);
        assert_eq!(tab.lock_bucket(r, 4).unwrap().next_label(), 4000);
    }
}
