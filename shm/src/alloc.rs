//! The allocator: a two-level segregated-fit (TLSF-style) heap inside the
//! region, with its state in the region header so every process shares it.
//!
//! Why this design: allocation and free are O(1) (two bitmap scans, no list
//! walk), adjacent free blocks are merged at once so memory comes back when
//! load falls, and the per-block overhead is one 8-byte header.
//!
//! Block layout (every block starts at an address ≡ 8 mod 16, so payloads
//! are 16-byte aligned, and every block size is a multiple of 16):
//!
//! ```text
//! b+0  check word (b ^ CHECK)       — catches frees of wild offsets
//! b+4  size | FREE | PREV_FREE      — size includes this header
//! b+8  payload ...                  (used block)
//! b+8  next free, b+12 prev free,   (free block; list links)
//! b+size-4  b                       (free block; footer, for merging)
//! ```
//!
//! A zero-size used sentinel header closes the heap so "next block" always
//! exists. The state is only touched under the allocator lock, the
//! innermost lock of the server's order.
//!
//! A process that dies holding the allocator lock leaves the free lists
//! possibly half-updated, but never the chain of block sizes: a block's
//! size changes by one store of its header word, and a split writes the
//! tail's header before shrinking the block. So the lock's next taker
//! rebuilds everything else from that chain ([`Heap::repair`]): flags,
//! footers, free lists, bitmaps and the `used` figure. A block a dying
//! process was freeing stays allocated (leaked), one it was allocating
//! goes back to the free lists or stays allocated; either way the figures
//! account for every byte.

use crate::error::ShmError;
use crate::killpoint;
use crate::lockorder::LockLevel;
use crate::off::{ShmOff, ShmSlice};
use crate::region::Region;
use crate::safe::ShmSafe;

/// Bytes of header before each payload.
pub(crate) const HDR: u32 = 8;
const ALIGN: u32 = 16;
/// A free block needs header, two links and a footer.
const MIN_BLOCK: u32 = 32;
const SL_LOG: u32 = 4;
const SL: usize = 1 << SL_LOG;
/// Below this, classes are exact multiples of ALIGN (first level 0).
const SMALL: u32 = ALIGN * SL as u32;
/// First levels: 0 for small sizes, then one per power of two 2^8..2^31.
const FL: usize = 25;
const CHECK: u32 = 0x5348_4d21;
const F_FREE: u32 = 1;
const F_PREV_FREE: u32 = 2;
const SIZE_MASK: u32 = !15;
/// How many blocks of the largest class `stats` inspects for `largest_free`.
const LARGEST_WALK: usize = 64;
/// How many blocks of the request's own class a failing search inspects.
const OWN_CLASS_WALK: usize = 16;

/// Allocator state, stored in the region header under its lock.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Tlsf {
    fl_map: u32,
    sl_map: [u32; FL],
    heads: [[u32; SL]; FL],
    heap_start: u32,
    /// Offset of the sentinel header.
    heap_end: u32,
    used: u64,
    peak: u64,
    allocs: u64,
    frees: u64,
    failures: u64,
    bad_frees: u64,
}

/// Allocator figures, a consistent snapshot taken under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocStats {
    /// Bytes the heap manages (excluding the region header).
    pub total: u64,
    /// Bytes in allocated blocks, headers and rounding included.
    pub used: u64,
    /// `total - used`.
    pub free: u64,
    /// Highest `used` seen.
    pub peak_used: u64,
    /// Successful allocations.
    pub allocs: u64,
    /// Successful frees.
    pub frees: u64,
    /// Allocations refused for lack of memory.
    pub failures: u64,
    /// Frees of offsets that were not live blocks (bugs; ignored).
    pub bad_frees: u64,
    /// A lower bound of the largest free block (bytes, header included).
    pub largest_free: u64,
}

impl AllocStats {
    /// Share of free memory not in the largest free block: 0.0 = one
    /// contiguous free area, near 1.0 = free memory in small pieces.
    pub fn fragmentation(&self) -> f64 {
        if self.free == 0 {
            return 0.0;
        }
        1.0 - self.largest_free as f64 / self.free as f64
    }
}

/// The heap seen through its state and the region's base address.
struct Heap<'a> {
    base: *mut u8,
    st: &'a mut Tlsf,
}

fn mapping(size: u32) -> (usize, usize) {
    if size < SMALL {
        (0, (size / ALIGN) as usize)
    } else {
        let f = 31 - size.leading_zeros();
        (
            (f - 7) as usize,
            ((size >> (f - SL_LOG)) as usize) & (SL - 1),
        )
    }
}

/// Class to search so that any block found is at least `size`.
fn mapping_search(size: u32) -> Option<(usize, usize)> {
    if size < SMALL {
        return Some(mapping(size));
    }
    let f = 31 - size.leading_zeros();
    let rounded = size.checked_add((1u32 << (f - SL_LOG)) - 1)?;
    Some(mapping(rounded))
}

pub(crate) fn init(base: *mut u8, st: &mut Tlsf, header_end16: u32, end16: u32) {
    *st = Tlsf::default();
    let first = header_end16 + HDR;
    let sentinel = end16 - HDR;
    st.heap_start = first;
    st.heap_end = sentinel;
    let mut h = Heap { base, st };
    let size = sentinel - first;
    h.set_header(sentinel, 0, F_PREV_FREE);
    h.set_header(first, size, F_FREE);
    h.wr(first + size - 4, first);
    h.insert(first, size);
}

impl Heap<'_> {
    fn in_heap(&self, off: u32) -> bool {
        off >= self.st.heap_start - HDR && off.saturating_add(4) <= self.st.heap_end + HDR
    }

    fn rd(&self, off: u32) -> u32 {
        if !self.in_heap(off) {
            return 0;
        }
        // SAFETY: `off` is 4-aligned (all heap words are) and inside the
        // heap (checked), which lies inside the region. We hold the
        // allocator lock, so headers, links and footers are ours.
        unsafe { self.base.add(off as usize).cast::<u32>().read() }
    }

    fn wr(&mut self, off: u32, v: u32) {
        if !self.in_heap(off) {
            return;
        }
        // SAFETY: as in `rd`.
        unsafe { self.base.add(off as usize).cast::<u32>().write(v) }
    }

    fn set_header(&mut self, b: u32, size: u32, flags: u32) {
        self.wr(b, b ^ CHECK);
        self.wr(b + 4, size | flags);
    }

    fn insert(&mut self, b: u32, size: u32) {
        let (fl, sl) = mapping(size);
        let head = self.st.heads[fl][sl];
        self.wr(b + 8, head);
        self.wr(b + 12, 0);
        if head != 0 {
            self.wr(head + 12, b);
        }
        self.st.heads[fl][sl] = b;
        self.st.sl_map[fl] |= 1 << sl;
        self.st.fl_map |= 1 << fl;
    }

    fn remove(&mut self, b: u32, size: u32) {
        let (fl, sl) = mapping(size);
        let next = self.rd(b + 8);
        let prev = self.rd(b + 12);
        if prev != 0 {
            self.wr(prev + 8, next);
        } else {
            self.st.heads[fl][sl] = next;
        }
        if next != 0 {
            self.wr(next + 12, prev);
        }
        if self.st.heads[fl][sl] == 0 {
            self.st.sl_map[fl] &= !(1 << sl);
            if self.st.sl_map[fl] == 0 {
                self.st.fl_map &= !(1 << fl);
            }
        }
    }

    fn find(&self, fl: usize, sl: usize) -> Option<u32> {
        let mut fl = fl;
        let mut sm = self.st.sl_map[fl] & (!0u32 << sl);
        if sm == 0 {
            let fm = self.st.fl_map & (!0u32 << (fl + 1));
            if fm == 0 {
                return None;
            }
            fl = fm.trailing_zeros() as usize;
            sm = self.st.sl_map[fl];
        }
        if sm == 0 {
            // Bitmaps disagree: only possible if the heap was corrupted.
            return None;
        }
        let sl = sm.trailing_zeros() as usize;
        match self.st.heads[fl][sl] {
            0 => None,
            b => Some(b),
        }
    }

    /// Near exhaustion the rounded-up search can miss a block of the
    /// request's own class that is big enough; look at a few of those.
    fn fit_in_own_class(&self, need: u32) -> Option<u32> {
        let (fl, sl) = mapping(need);
        let mut b = self.st.heads[fl][sl];
        for _ in 0..OWN_CLASS_WALK {
            if b == 0 {
                return None;
            }
            if self.rd(b + 4) & SIZE_MASK >= need {
                return Some(b);
            }
            b = self.rd(b + 8);
        }
        None
    }

    /// Returns the payload offset of a new block of at least `len` bytes.
    fn alloc(&mut self, len: usize) -> Option<u32> {
        let need = len.checked_add((HDR + ALIGN - 1) as usize)? & !(ALIGN as usize - 1);
        let need = u32::try_from(need).ok()?.max(MIN_BLOCK);
        let (fl, sl) = mapping_search(need)?;
        let b = match self.find(fl, sl) {
            Some(b) => b,
            None => self.fit_in_own_class(need)?,
        };
        let size = self.rd(b + 4) & SIZE_MASK;
        if size < need {
            // Only a corrupted heap (a user overran a block) gets here;
            // refuse rather than hand out a short block.
            return None;
        }
        self.remove(b, size);
        killpoint::hit("alloc.alloc.unlisted");
        let mut take = size;
        if size - need >= MIN_BLOCK {
            // Split: the tail stays free. The block after it already has
            // PREV_FREE set, since `b` was free.
            let rest = b + need;
            let rsize = size - need;
            self.set_header(rest, rsize, F_FREE);
            self.wr(rest + rsize - 4, rest);
            self.insert(rest, rsize);
            killpoint::hit("alloc.alloc.split");
            take = need;
        } else {
            let next = b + size;
            let nh = self.rd(next + 4);
            self.wr(next + 4, nh & !F_PREV_FREE);
        }
        // A free block never follows another free block, so PREV_FREE is 0.
        self.set_header(b, take, 0);
        self.st.used += u64::from(take);
        self.st.peak = self.st.peak.max(self.st.used);
        self.st.allocs += 1;
        Some(b + HDR)
    }

    /// Header word of a live (used) block whose payload is at `p`.
    fn live_block(&self, p: u32) -> Option<(u32, u32, u32)> {
        let b = p.checked_sub(HDR)?;
        if b < self.st.heap_start
            || b >= self.st.heap_end
            || (b - self.st.heap_start) & (ALIGN - 1) != 0
        {
            return None;
        }
        let hdr = self.rd(b + 4);
        let size = hdr & SIZE_MASK;
        let ok = self.rd(b) == b ^ CHECK
            && hdr & F_FREE == 0
            && size >= MIN_BLOCK
            && b.checked_add(size).is_some_and(|e| e <= self.st.heap_end);
        ok.then_some((b, hdr, size))
    }

    fn free(&mut self, p: u32) -> bool {
        let Some((b, hdr, size)) = self.live_block(p) else {
            self.st.bad_frees += 1;
            return false;
        };
        self.st.used = self.st.used.saturating_sub(u64::from(size));
        self.st.frees += 1;
        let mut start = b;
        let mut total = size;
        if hdr & F_PREV_FREE != 0 {
            let prev = self.rd(b - 4);
            let ph = self.rd(prev + 4);
            let psize = ph & SIZE_MASK;
            if self.rd(prev) == prev ^ CHECK && ph & F_FREE != 0 && prev + psize == b {
                self.remove(prev, psize);
                start = prev;
                total += psize;
            }
        }
        let next = b + size;
        let nh = self.rd(next + 4);
        let absorbed_next = nh & F_FREE != 0;
        if absorbed_next {
            let nsize = nh & SIZE_MASK;
            self.remove(next, nsize);
            total += nsize;
        }
        killpoint::hit("alloc.free.unlisted");
        // One store publishes the merged block: until it, the chain of
        // block sizes still walks `b` and `next` (what a repair after a
        // dead owner rebuilds from), so their headers stay valid till now.
        self.set_header(start, total, F_FREE);
        // Headers now inside the merged block would still read as blocks
        // of their own, so a second free of `p` would be taken (and corrupt
        // the heap, or a block later allocated over this space): wipe
        // their check words.
        if absorbed_next {
            self.wr(next, 0);
        }
        if start != b {
            self.wr(b, 0);
        }
        killpoint::hit("alloc.free.merged");
        self.wr(start + total - 4, start);
        self.insert(start, total);
        let after = start + total;
        let ah = self.rd(after + 4);
        self.wr(after + 4, ah | F_PREV_FREE);
        true
    }

    fn largest_free(&self) -> u64 {
        if self.st.fl_map == 0 {
            return 0;
        }
        let fl = (31 - self.st.fl_map.leading_zeros()) as usize;
        let sm = self.st.sl_map[fl];
        if sm == 0 {
            return 0;
        }
        let sl = (31 - sm.leading_zeros()) as usize;
        let mut b = self.st.heads[fl][sl];
        let mut best = 0;
        for _ in 0..LARGEST_WALK {
            if b == 0 {
                break;
            }
            best = best.max(self.rd(b + 4) & SIZE_MASK);
            b = self.rd(b + 8);
        }
        u64::from(best)
    }

    /// Rebuilds the allocator's state from the chain of block sizes after
    /// the lock's previous holder died (module doc): PREV_FREE flags,
    /// footers, free lists and bitmaps, `used`; adjacent free blocks are
    /// merged. Returns false if the chain itself is broken (then nothing
    /// is changed and the heap stays as it was).
    fn repair(&mut self) -> bool {
        // First pass: check the chain before touching anything.
        let mut b = self.st.heap_start;
        while b < self.st.heap_end {
            let size = self.rd(b + 4) & SIZE_MASK;
            if self.rd(b) != b ^ CHECK || size < MIN_BLOCK {
                return false;
            }
            b += size;
        }
        if b != self.st.heap_end {
            return false;
        }
        self.st.fl_map = 0;
        self.st.sl_map = [0; FL];
        self.st.heads = [[0; SL]; FL];
        let mut used = 0u64;
        let mut b = self.st.heap_start;
        let mut prev_free = false;
        while b < self.st.heap_end {
            let hdr = self.rd(b + 4);
            let mut size = hdr & SIZE_MASK;
            if hdr & F_FREE == 0 {
                self.wr(b + 4, size | if prev_free { F_PREV_FREE } else { 0 });
                used += u64::from(size);
                prev_free = false;
            } else {
                // Swallow the free blocks that follow.
                loop {
                    let n = b + size;
                    let nh = self.rd(n + 4);
                    if n >= self.st.heap_end || nh & F_FREE == 0 {
                        break;
                    }
                    size += nh & SIZE_MASK;
                }
                self.set_header(b, size, F_FREE);
                self.wr(b + size - 4, b);
                self.insert(b, size);
                prev_free = true;
            }
            b += size;
        }
        let sh = self.rd(b + 4);
        self.wr(
            b + 4,
            (sh & !F_PREV_FREE) | if prev_free { F_PREV_FREE } else { 0 },
        );
        self.st.used = used;
        true
    }

    /// Walks every block; checks the invariants the fast paths rely on.
    fn consistent(&self) -> bool {
        let mut b = self.st.heap_start;
        let mut used = 0u64;
        let mut prev_free = false;
        let mut free_blocks = 0usize;
        while b < self.st.heap_end {
            let hdr = self.rd(b + 4);
            let size = hdr & SIZE_MASK;
            let free = hdr & F_FREE != 0;
            if self.rd(b) != b ^ CHECK || size < MIN_BLOCK || (hdr & F_PREV_FREE != 0) != prev_free
            {
                return false;
            }
            if free {
                if prev_free || self.rd(b + size - 4) != b {
                    return false;
                }
                free_blocks += 1;
            } else {
                used += u64::from(size);
            }
            prev_free = free;
            b += size;
        }
        let sentinel_ok = b == self.st.heap_end
            && (self.rd(b + 4) & F_PREV_FREE != 0) == prev_free
            && self.rd(b + 4) & F_FREE == 0;
        let mut listed = 0usize;
        for fl in 0..FL {
            for sl in 0..SL {
                let mut f = self.st.heads[fl][sl];
                while f != 0 {
                    listed += 1;
                    if listed > free_blocks || mapping(self.rd(f + 4) & SIZE_MASK) != (fl, sl) {
                        return false;
                    }
                    f = self.rd(f + 8);
                }
            }
        }
        sentinel_ok && used == self.st.used && listed == free_blocks
    }
}

/// Largest alignment the allocator guarantees.
pub const MAX_ALIGN: usize = ALIGN as usize;

impl Region {
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap<'_>) -> R) -> R {
        let mut g = self.header().heap.lock_at(LockLevel::Alloc);
        let died = g.owner_died();
        let mut h = Heap {
            base: self.base(),
            st: &mut g,
        };
        if died {
            h.repair();
        }
        f(&mut h)
    }

    /// Allocates `len` bytes, 16-byte aligned. The contents are stale bytes.
    pub fn alloc_bytes(&self, len: usize) -> Result<ShmOff<u8>, ShmError> {
        let p = self.with_heap(|h| {
            let p = h.alloc(len);
            if p.is_none() {
                h.st.failures += 1;
            }
            p
        });
        p.and_then(ShmOff::from_u32)
            .ok_or(ShmError::OutOfMemory { requested: len })
    }

    /// Moves `value` into a new block.
    pub fn alloc<T: ShmSafe>(&self, value: T) -> Result<ShmOff<T>, ShmError> {
        const { assert!(align_of::<T>() <= MAX_ALIGN) };
        let off = self.alloc_bytes(size_of::<T>())?.cast::<T>();
        // SAFETY: a fresh block of at least size_of::<T>() bytes, 16-aligned
        // (≥ align_of::<T>() by the assertion), in bounds, known to nobody.
        unsafe { self.base().add(off.get() as usize).cast::<T>().write(value) };
        Ok(off)
    }

    /// A new all-zero `T` (valid, since `ShmSafe` types are valid zeroed).
    pub fn alloc_zeroed<T: ShmSafe>(&self) -> Result<ShmOff<T>, ShmError> {
        let requested = size_of::<T>();
        self.alloc_slice_zeroed::<T>(1)?
            .start()
            .ok_or(ShmError::OutOfMemory { requested })
    }

    /// Copies `src` into a new block. Empty input gives the empty slice.
    pub fn alloc_slice<T: ShmSafe + Copy>(&self, src: &[T]) -> Result<ShmSlice<T>, ShmError> {
        let s = self.alloc_slice_raw::<T>(src.len())?;
        if let Some(start) = s.start() {
            // SAFETY: a fresh block of src.len() elements, suitably aligned,
            // cannot overlap `src` (which is borrowed, hence live).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    src.as_ptr(),
                    self.base().add(start.get() as usize).cast::<T>(),
                    src.len(),
                );
            }
        }
        Ok(s)
    }

    /// `n` zeroed elements.
    pub fn alloc_slice_zeroed<T: ShmSafe>(&self, n: usize) -> Result<ShmSlice<T>, ShmError> {
        let s = self.alloc_slice_raw::<T>(n)?;
        if let Some(start) = s.start() {
            // SAFETY: fresh block of n * size_of::<T>() bytes, ours alone.
            unsafe {
                core::ptr::write_bytes(
                    self.base().add(start.get() as usize),
                    0,
                    n * size_of::<T>(),
                );
            }
        }
        Ok(s)
    }

    fn alloc_slice_raw<T: ShmSafe>(&self, n: usize) -> Result<ShmSlice<T>, ShmError> {
        const { assert!(align_of::<T>() <= MAX_ALIGN) };
        if n == 0 {
            return Ok(ShmSlice::EMPTY);
        }
        let requested = n.saturating_mul(size_of::<T>().max(1));
        let len = u32::try_from(n).map_err(|_| ShmError::OutOfMemory { requested })?;
        let off = self.alloc_bytes(requested)?;
        Ok(ShmSlice::new(off.get(), len))
    }

    /// Returns the block at `off` (which must come from an `alloc*` call) to
    /// the heap. A wild or double free is detected when possible, counted in
    /// `bad_frees` and otherwise ignored.
    pub fn free<T>(&self, off: ShmOff<T>) {
        // Not a debug_assert: a panic here would abort a worker; the
        // counter is visible in the stats instead.
        self.with_heap(|h| h.free(off.get()));
    }

    /// Frees a slice from `alloc_slice*` (no-op for the empty slice).
    pub fn free_slice<T>(&self, s: ShmSlice<T>) {
        if let Some(off) = s.start() {
            self.free(off);
        }
    }

    /// Payload bytes actually available in the live block at `off`.
    pub fn usable_size<T>(&self, off: ShmOff<T>) -> Option<usize> {
        self.with_heap(|h| {
            h.live_block(off.get())
                .map(|(_, _, size)| (size - HDR) as usize)
        })
    }

    /// A snapshot of the allocator figures.
    pub fn stats(&self) -> AllocStats {
        self.with_heap(|h| {
            let total = u64::from(h.st.heap_end - h.st.heap_start);
            AllocStats {
                total,
                used: h.st.used,
                free: total - h.st.used,
                peak_used: h.st.peak,
                allocs: h.st.allocs,
                frees: h.st.frees,
                failures: h.st.failures,
                bad_frees: h.st.bad_frees,
                largest_free: h.largest_free(),
            }
        })
    }

    /// Walks the whole heap under the lock and checks its invariants
    /// (tests and debugging; O(heap blocks)).
    pub fn heap_is_consistent(&self) -> bool {
        self.with_heap(|h| h.consistent())
    }
}

#[cfg(test)]
#[path = "alloc_tests.rs"]
mod tests;
