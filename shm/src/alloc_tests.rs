//! Allocator tests on a plain heap buffer.

use super::*;
use crate::testbuf;
use crate::TestRng as Rng;

fn fill(r: &Region, off: ShmOff<u8>, len: usize, tag: u8) {
    // SAFETY: test: the block is live and owned by this test alone.
    let s = unsafe { r.slice_mut(ShmSlice::<u8>::new(off.get(), len as u32)) };
    s.fill(tag);
}

fn intact(r: &Region, off: ShmOff<u8>, len: usize, tag: u8) -> bool {
    r.slice(ShmSlice::<u8>::new(off.get(), len as u32))
        .iter()
        .all(|&b| b == tag)
}

#[test]
fn fresh_heap_is_one_free_block() {
    let t = testbuf::region(1 << 20);
    let s = t.r.stats();
    assert_eq!(s.used, 0);
    assert_eq!(s.free, s.total);
    assert_eq!(s.largest_free, s.total);
    assert!(s.total > (1 << 20) - 4096);
    assert!(t.r.heap_is_consistent());
    assert_eq!(s.fragmentation(), 0.0);
}

#[test]
fn blocks_are_aligned_with_small_overhead() {
    let t = testbuf::region(1 << 20);
    let r = &t.r;
    for len in [
        1usize, 7, 8, 15, 16, 24, 25, 100, 255, 256, 257, 1000, 4096, 5000, 65537,
    ] {
        let before = r.stats().used;
        let o = r.alloc_bytes(len).unwrap();
        assert_eq!(o.get() % 16, 0, "len {len}");
        let usable = r.usable_size(o).unwrap();
        assert!(usable >= len);
        let block = r.stats().used - before;
        if len >= 24 {
            assert!(
                block as usize - len <= HDR as usize + 15,
                "len {len} block {block}"
            );
        }
        r.free(o);
        assert_eq!(r.stats().used, before);
    }
    assert!(r.heap_is_consistent());
}

#[test]
fn random_sequence_matches_model() {
    let t = testbuf::region(4 << 20);
    let r = &t.r;
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    let mut live: Vec<(ShmOff<u8>, usize, u8)> = Vec::new();
    let mut model_allocs = 0u64;
    for step in 0..30_000u32 {
        let grow = live.len() < 50 || rng.below(100) < 52;
        if grow {
            let len = match rng.below(10) {
                0 => rng.below(40_000) as usize,
                1..=3 => rng.below(2000) as usize,
                _ => rng.below(200) as usize,
            };
            match r.alloc_bytes(len) {
                Ok(o) => {
                    let tag = (step % 251) as u8;
                    fill(r, o, len, tag);
                    live.push((o, len, tag));
                    model_allocs += 1;
                }
                Err(e) => assert_eq!(e, ShmError::OutOfMemory { requested: len }),
            }
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let (o, len, tag) = live.swap_remove(i);
            assert!(
                intact(r, o, len, tag),
                "block {o:?} overwritten by a neighbour"
            );
            r.free(o);
        }
        if step % 2000 == 0 {
            assert!(r.heap_is_consistent(), "step {step}");
        }
    }
    for (o, len, tag) in live.drain(..) {
        assert!(intact(r, o, len, tag));
        r.free(o);
    }
    let s = r.stats();
    assert_eq!(s.used, 0);
    assert_eq!(s.allocs, model_allocs);
    assert_eq!(s.frees, model_allocs);
    assert_eq!(s.bad_frees, 0);
    assert_eq!(s.largest_free, s.total, "all free memory merged back");
    assert!(s.peak_used > 0);
    assert!(r.heap_is_consistent());
}

#[test]
fn used_returns_exactly_to_baseline() {
    let t = testbuf::region(1 << 20);
    let r = &t.r;
    let keep: Vec<_> = (0..20).map(|i| r.alloc_bytes(i * 37).unwrap()).collect();
    let base = r.stats();
    let tmp: Vec<_> = (0..200)
        .map(|i| r.alloc_bytes((i * 13) % 700).unwrap())
        .collect();
    assert!(r.stats().used > base.used);
    for o in tmp.into_iter().rev() {
        r.free(o);
    }
    assert_eq!(r.stats().used, base.used);
    for o in keep {
        r.free(o);
    }
    assert_eq!(r.stats().used, 0);
}

#[test]
fn exhaustion_is_an_error_and_recovers() {
    let t = testbuf::region(256 << 10);
    let r = &t.r;
    let mut got = Vec::new();
    let err = loop {
        match r.alloc_bytes(1000) {
            Ok(o) => got.push(o),
            Err(e) => break e,
        }
    };
    assert_eq!(err, ShmError::OutOfMemory { requested: 1000 });
    assert!(got.len() > 200);
    assert_eq!(r.stats().failures, 1);
    assert!(r.alloc_bytes(usize::MAX).is_err());
    assert!(r.alloc_bytes(u32::MAX as usize).is_err());
    assert!(r.alloc_slice_zeroed::<u64>(usize::MAX / 4).is_err());
    let last = got.pop().unwrap();
    r.free(last);
    let again = r.alloc_bytes(1000).unwrap();
    got.push(again);
    for o in got {
        r.free(o);
    }
    let s = r.stats();
    assert_eq!(s.used, 0);
    assert_eq!(s.largest_free, s.total);
    // After everything is back, one big block fits again.
    let big = r.alloc_bytes(s.total as usize - 64).unwrap();
    r.free(big);
}

#[test]
fn bad_frees_are_counted_not_fatal() {
    let t = testbuf::region(1 << 20);
    let r = &t.r;
    let a = r.alloc_bytes(100).unwrap();
    let b = r.alloc_bytes(100).unwrap();
    r.free(a);
    let used = r.stats().used;
    r.free(a);
    r.free(ShmOff::<u8>::from_u32(b.get() + 16).unwrap());
    r.free(ShmOff::<u8>::from_u32(8).unwrap());
    r.free(ShmOff::<u8>::from_u32(0xFFFF_0000).unwrap());
    let s = r.stats();
    assert_eq!(s.bad_frees, 4);
    assert_eq!(s.used, used);
    assert!(r.heap_is_consistent());
    r.free(b);
    assert_eq!(r.stats().used, 0);
}

#[test]
fn double_free_of_a_block_merged_into_its_neighbours_is_refused() {
    // Found by the shm_alloc fuzz target: a block merged into the free
    // block before it kept its header, so a second free was taken.
    let t = testbuf::region(1 << 20);
    let r = &t.r;
    let a = r.alloc_bytes(100).unwrap();
    let b = r.alloc_bytes(100).unwrap();
    let c = r.alloc_bytes(100).unwrap();
    let guard = r.alloc_bytes(100).unwrap();
    r.free(a);
    r.free(b); // merges into a
    r.free(b);
    assert_eq!(r.stats().bad_frees, 1, "second free of b taken");
    r.free(c); // merges into a+b, and a+b+c is followed by guard
    r.free(c);
    assert_eq!(r.stats().bad_frees, 2, "second free of c taken");
    // the merged space handed out again: the old offsets stay refused
    let big = r.alloc_bytes(300).unwrap();
    r.free(b);
    r.free(c);
    assert_eq!(r.stats().bad_frees, 4);
    assert!(r.heap_is_consistent());
    r.free(big);
    r.free(guard);
    let s = r.stats();
    assert_eq!((s.used, s.largest_free), (0, s.total));
}

#[test]
fn typed_values_and_slices() {
    #[repr(C)]
    struct Pair {
        a: u64,
        b: u32,
    }
    // SAFETY: two integers.
    unsafe impl ShmSafe for Pair {}
    let t = testbuf::region(1 << 20);
    let r = &t.r;
    let p = r.alloc(Pair { a: 7, b: 9 }).unwrap();
    assert_eq!((r.get(p).a, r.get(p).b), (7, 9));
    let z = r.alloc_zeroed::<Pair>().unwrap();
    assert_eq!(r.get(z).a, 0);
    let s = r.alloc_slice(&[1u32, 2, 3]).unwrap();
    assert_eq!(r.slice(s), &[1, 2, 3]);
    let e = r.alloc_slice::<u32>(&[]).unwrap();
    assert!(e.is_empty() && r.slice(e).is_empty());
    assert_eq!(r.off_of(r.get(p)), Some(p));
    assert_eq!(r.off_of(&5u32), None);
    r.free(p);
    r.free(z);
    r.free_slice(s);
    r.free_slice(e);
    assert_eq!(r.stats().used, 0);
    assert_eq!(r.stats().bad_frees, 0);
}

#[test]
fn region_geometry_errors_and_mmap() {
    assert!(matches!(Region::new(100), Err(ShmError::TooSmall { .. })));
    assert!(matches!(
        Region::new(usize::MAX),
        Err(ShmError::TooLarge { .. })
    ));
    let r = Region::new(1 << 20).unwrap();
    assert!(r.is_valid());
    let o = r.alloc(42u64).unwrap();
    assert_eq!(*r.get(o), 42);
    assert!(r.set_root(3, o.get()));
    assert_eq!(r.root(3), o.get());
    assert!(!r.set_root(crate::ROOT_SLOTS, 1));
}

#[test]
fn size_classes_cover_all_sizes() {
    // Every block found in the searched class must be big enough.
    for size in (MIN_BLOCK..1 << 20).step_by(16) {
        let (fl, sl) = mapping_search(size).unwrap();
        let (ifl, isl) = mapping(size);
        assert!((fl, sl) >= (ifl, isl), "size {size}");
        // the smallest block inserted into (fl, sl) is >= size
        let (fl32, sl32) = (fl as u32, sl as u32);
        let class_min = if fl == 0 {
            sl32 * ALIGN
        } else {
            (1u32 << (fl32 + 7)) + (sl32 << (fl32 + 7 - SL_LOG))
        };
        assert!(class_min >= size, "size {size} class_min {class_min}");
        assert_eq!(mapping(class_min), (fl, sl));
    }
}
