//! Fuzz target body for the allocator (called by `fuzz/` under cargo-fuzz
//! and by the stable smoke harness `tests/fuzz_smoke.rs`): the input is a
//! list of 3-byte operations on a small heap, checked against a model.
//!
//! Checked after every operation: blocks are 16-aligned, inside the heap
//! and never overlap a live one; a live block's bytes are never changed by
//! anything done to another; wild and double frees are refused and
//! counted, never taken. At the end everything is freed and the heap must
//! be idle again: nothing used, all free space merged into one block.

use crate::{Region, ShmOff, ShmSlice};

/// Small, so that inputs reach out-of-memory and full merges quickly.
const HEAP: usize = 256 << 10;

struct Live {
    off: ShmOff<u8>,
    len: usize,
    tag: u8,
}

fn fill(r: &Region, b: &Live) {
    // SAFETY: `b` is a live block of at least `len` bytes, known only to
    // this function's caller, which holds no other reference into it.
    let s = unsafe { r.slice_mut(ShmSlice::<u8>::new(b.off.get(), b.len as u32)) };
    s.fill(b.tag);
}

fn assert_intact(r: &Region, b: &Live) {
    let s = r.slice(ShmSlice::<u8>::new(b.off.get(), b.len as u32));
    assert!(
        s.iter().all(|&x| x == b.tag),
        "block at {} ({} bytes) overwritten",
        b.off.get(),
        b.len
    );
}

/// Runs the operations in `data`; panics on any broken invariant.
pub fn alloc_ops(data: &[u8]) {
    let mut mem = vec![0u128; HEAP / 16];
    // SAFETY: the buffer is zeroed, 16-aligned (u128), used only through
    // this region, and outlives it (both dropped at the end of this call).
    let r = unsafe { Region::from_raw(mem.as_mut_ptr().cast(), HEAP) }.expect("heap region");
    let idle = r.stats();
    let mut live: Vec<Live> = Vec::new();
    let (mut allocs, mut bad) = (0u64, 0u64);
    let mut tag = 0u8;
    for (step, op) in data.chunks_exact(3).enumerate() {
        let arg = usize::from(u16::from_le_bytes([op[1], op[2]]));
        match op[0] % 8 {
            0..=3 => {
                let len = match (op[0] >> 3) & 3 {
                    0 => arg % 64,
                    1 => arg % 1024,
                    2 => arg * 4,
                    _ => arg,
                };
                tag = tag.wrapping_add(1);
                if let Some(b) = alloc(&r, &live, len, tag) {
                    allocs += 1;
                    live.push(b);
                }
            }
            4 | 5 if !live.is_empty() => {
                let b = live.swap_remove(arg % live.len());
                assert_intact(&r, &b);
                r.free(b.off);
            }
            6 if !live.is_empty() => {
                // What a caller growing or shrinking a block does: a new
                // block, the common prefix copied, the old one freed.
                let i = arg % live.len();
                let len = usize::from(op[0] >> 3) * 97 + arg % 512;
                tag = tag.wrapping_add(1);
                if let Some(b) = alloc(&r, &live, len, tag) {
                    allocs += 1;
                    let old = live.swap_remove(i);
                    assert_intact(&r, &old);
                    r.free(old.off);
                    live.push(b);
                }
            }
            7 => {
                let before = r.stats().bad_frees;
                let wild = match (arg % 4, live.is_empty()) {
                    // a double free, right after the first one
                    (0, false) => {
                        let b = live.swap_remove(arg % live.len());
                        assert_intact(&r, &b);
                        r.free(b.off);
                        b.off.get()
                    }
                    // inside a live block, off the block grid
                    (1, false) => live[arg % live.len()].off.get() + 8,
                    // beyond the heap
                    (2, _) => (HEAP + 16 * (arg % 8)) as u32,
                    // in the region's header
                    _ => 16 * (1 + arg as u32 % 4),
                };
                if let Some(off) = ShmOff::<u8>::from_u32(wild) {
                    r.free(off);
                    bad += 1;
                }
                assert_eq!(r.stats().bad_frees, before + 1, "wild free {wild} taken");
            }
            _ => {}
        }
        for b in &live {
            if step % 16 == 0 || b.len < 256 {
                assert_intact(&r, b);
            }
        }
        if step % 32 == 0 {
            assert!(r.heap_is_consistent(), "heap inconsistent after op {step}");
        }
    }
    for b in live.drain(..) {
        assert_intact(&r, &b);
        r.free(b.off);
    }
    let s = r.stats();
    assert!(r.heap_is_consistent(), "heap inconsistent at the end");
    assert_eq!(s.used, idle.used, "memory left in use");
    assert_eq!(s.largest_free, idle.largest_free, "free space not merged");
    assert_eq!((s.allocs, s.frees), (allocs, allocs));
    assert_eq!(s.bad_frees, bad);
}

/// One allocation, checked against the live set; `None` when out of memory
/// (which must then be the answer for a request this big).
fn alloc(r: &Region, live: &[Live], len: usize, tag: u8) -> Option<Live> {
    let off = match r.alloc_bytes(len) {
        Ok(o) => o,
        Err(e) => {
            assert_eq!(e, crate::ShmError::OutOfMemory { requested: len });
            // the block it needs: payload and header, rounded to 16
            let need = (len as u64 + u64::from(crate::alloc::HDR) + 15) & !15;
            let largest = r.stats().largest_free;
            assert!(
                largest < need,
                "{len} bytes refused with a free block of {largest}"
            );
            return None;
        }
    };
    let (start, end) = (off.get() as usize, off.get() as usize + len);
    assert_eq!(start % 16, 0, "misaligned block");
    assert!(end <= HEAP, "block past the heap");
    assert!(r.usable_size(off).is_some_and(|u| u >= len));
    for b in live {
        let (s, e) = (b.off.get() as usize, b.off.get() as usize + b.len.max(1));
        assert!(
            end.max(start + 1) <= s || e <= start,
            "new block {start}..{end} overlaps {s}..{e}"
        );
    }
    let b = Live { off, len, tag };
    fill(r, &b);
    Some(b)
}
