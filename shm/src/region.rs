//! The shared mapping and its header.
//!
//! Layout: `[Header | heap managed by the allocator | sentinel]`. The header
//! sits at offset 0, which is why offset 0 can mean "none".

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::alloc::{self, Tlsf};
use crate::error::ShmError;
use crate::mutex::ShmLocked;
use crate::off::{ShmOff, ShmSlice};
use crate::safe::ShmSafe;

const MAGIC: u64 = 0x7365_725f_7368_6d31; // "ser_shm1"

/// Number of well-known offsets kept in the header, so that code which
/// needs e.g. the transaction table can find it from the region alone.
pub const ROOT_SLOTS: usize = 16;

/// Region size when `-m` is not given (SER's default: 32 MB).
pub const DEFAULT_SIZE: usize = 32 << 20;

/// Largest region: every offset, and every block size, must fit in a u32.
pub const MAX_REGION: usize = 0xFFFF_F000;

#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU64,
    size: AtomicU64,
    roots: [AtomicU32; ROOT_SLOTS],
    pub(crate) heap: ShmLocked<Tlsf>,
}

/// A handle to the shared region: base address and size. Cheap to copy;
/// valid in every process forked after it was created (the mapping is
/// inherited at the same address). The mapping is never unmapped.
#[derive(Clone, Copy)]
pub struct Region {
    base: NonNull<u8>,
    size: usize,
}

// SAFETY: the region is shared memory designed for concurrent access: all
// mutation goes through atomics or process-shared locks. (ser has no
// threads, but a `static` needs `Sync`.)
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl core::fmt::Debug for Region {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Region({:p}, {} bytes)", self.base, self.size)
    }
}

/// The smallest region that holds the header and a usable heap.
pub fn min_region_size() -> usize {
    header_len() + 4096
}

fn header_len() -> usize {
    size_of::<Header>()
}

impl Region {
    /// Maps `size` bytes of anonymous shared memory and initialises the
    /// header and allocator. Call before forking.
    pub fn new(size: usize) -> Result<Region, ShmError> {
        check_size(size)?;
        // SAFETY: anonymous mapping with no address hint; failure is
        // reported as MAP_FAILED, which we check.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(ShmError::Map { errno });
        }
        // SAFETY: a fresh zero-filled page-aligned mapping of `size` bytes,
        // owned by nobody else yet and never unmapped.
        unsafe { Region::from_raw(p.cast::<u8>(), size) }
    }

    /// Builds a region over existing memory (tests use a heap buffer) and
    /// initialises its header and allocator.
    ///
    /// # Safety
    ///
    /// `base..base+size` must be writable, zero-filled or otherwise unused,
    /// not accessed except through this region, and must outlive every use
    /// of the returned handle and of references obtained from it.
    pub unsafe fn from_raw(base: *mut u8, size: usize) -> Result<Region, ShmError> {
        check_size(size)?;
        let base = NonNull::new(base).ok_or(ShmError::Misaligned)?;
        if base.as_ptr() as usize & 15 != 0 {
            return Err(ShmError::Misaligned);
        }
        let r = Region { base, size };
        let hdr = base.as_ptr().cast::<Header>();
        // SAFETY: the caller grants exclusive use of the memory, which is
        // large enough (check_size) and aligned (checked); Header is ShmSafe
        // so writing a fresh value over it is fine.
        unsafe {
            hdr.write(Header {
                magic: AtomicU64::new(MAGIC),
                size: AtomicU64::new(size as u64),
                roots: Default::default(),
                heap: ShmLocked::new(Tlsf::default()),
            });
        }
        let heap_start = align16(header_len()) as u32;
        // Leave room for the end sentinel header.
        let heap_end = (size - alloc::HDR as usize) as u32 & !15;
        // SAFETY: header just written; nobody else uses the region yet.
        let st = unsafe { (*hdr).heap.get_mut() };
        alloc::init(r.base.as_ptr(), st, heap_start, heap_end);
        Ok(r)
    }

    /// Base address (for diagnostics and the allocator).
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the header was written by `from_raw` at offset 0 and lives
        // as long as the region; all its fields are atomics or locks.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    /// True if the header carries the magic written at creation.
    pub fn is_valid(&self) -> bool {
        let h = self.header();
        h.magic.load(Ordering::Relaxed) == MAGIC
            && h.size.load(Ordering::Relaxed) == self.size as u64
    }

    fn check(&self, off: usize, len: usize, align: usize) -> bool {
        off != 0
            && off & (align - 1) == 0
            && off.checked_add(len).is_some_and(|end| end <= self.size)
    }

    /// Raw pointer to the `T` at `off`, if in bounds and aligned.
    fn ptr_of<T>(&self, off: ShmOff<T>) -> Option<*mut T> {
        let o = off.get() as usize;
        if !self.check(o, size_of::<T>(), align_of::<T>()) {
            return None;
        }
        // SAFETY: `o + size_of::<T>() <= size` (checked), so the result stays
        // inside the mapping.
        Some(unsafe { self.base.as_ptr().add(o).cast::<T>() })
    }

    /// The object at `off`, or `None` if the offset is out of bounds or
    /// misaligned for `T`.
    pub fn try_get<T: ShmSafe>(&self, off: ShmOff<T>) -> Option<&T> {
        let p = self.ptr_of(off)?;
        // SAFETY: in bounds and aligned (ptr_of); `T: ShmSafe` is valid for
        // any bytes, and shared mutation happens only through atomics/locks
        // inside `T`, so a shared reference is sound.
        Some(unsafe { &*p })
    }

    /// The object at `off`.
    ///
    /// # Panics
    ///
    /// If `off` is out of bounds or misaligned — only possible with an
    /// offset that did not come from this region's allocator (a bug).
    #[track_caller]
    pub fn get<T: ShmSafe>(&self, off: ShmOff<T>) -> &T {
        match self.try_get(off) {
            Some(r) => r,
            None => panic!("shm offset {off:?} outside {self:?}"),
        }
    }

    /// Exclusive access to the object at `off`.
    ///
    /// # Safety
    ///
    /// No other reference to it may exist in any process while the result
    /// lives (typically: it was just allocated and not yet published).
    ///
    /// # Panics
    ///
    /// As [`Region::get`].
    #[track_caller]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_mut<T: ShmSafe>(&self, off: ShmOff<T>) -> &mut T {
        match self.ptr_of(off) {
            // SAFETY: bounds/alignment checked; uniqueness is the caller's
            // promise; any bytes are a valid `T`.
            Some(p) => unsafe { &mut *p },
            None => panic!("shm offset {off:?} outside {self:?}"),
        }
    }

    /// The elements of `s` (empty if `s` is out of bounds).
    pub fn slice<T: ShmSafe>(&self, s: ShmSlice<T>) -> &[T] {
        let Some(bytes) = s.len().checked_mul(size_of::<T>()) else {
            return &[];
        };
        if s.is_empty() || !self.check(s.start as usize, bytes, align_of::<T>()) {
            return &[];
        }
        // SAFETY: range checked above; elements are ShmSafe (see try_get).
        unsafe {
            core::slice::from_raw_parts(
                self.base.as_ptr().add(s.start as usize).cast::<T>(),
                s.len(),
            )
        }
    }

    /// Exclusive access to the elements of `s`.
    ///
    /// # Safety
    ///
    /// As for [`Region::get_mut`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut<T: ShmSafe>(&self, s: ShmSlice<T>) -> &mut [T] {
        let Some(bytes) = s.len().checked_mul(size_of::<T>()) else {
            return &mut [];
        };
        if s.is_empty() || !self.check(s.start as usize, bytes, align_of::<T>()) {
            return &mut [];
        }
        // SAFETY: range checked above; uniqueness is the caller's promise.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.base.as_ptr().add(s.start as usize).cast::<T>(),
                s.len(),
            )
        }
    }

    /// The offset of an object that lives in this region (`None` if `r`
    /// points elsewhere).
    pub fn off_of<T: ShmSafe>(&self, r: &T) -> Option<ShmOff<T>> {
        let a = r as *const T as usize;
        let b = self.base.as_ptr() as usize;
        let o = a.checked_sub(b)?;
        if o.checked_add(size_of::<T>())? > self.size {
            return None;
        }
        ShmOff::from_u32(u32::try_from(o).ok()?)
    }

    /// Reads well-known offset `i` (0 = unset or `i` out of range).
    pub fn root(&self, i: usize) -> u32 {
        self.header()
            .roots
            .get(i)
            .map_or(0, |r| r.load(Ordering::Acquire))
    }

    /// Publishes well-known offset `i`; returns false if `i` is out of range.
    pub fn set_root(&self, i: usize, off: u32) -> bool {
        match self.header().roots.get(i) {
            Some(r) => {
                r.store(off, Ordering::Release);
                true
            }
            None => false,
        }
    }
}

fn align16(n: usize) -> usize {
    (n + 15) & !15
}

fn check_size(size: usize) -> Result<(), ShmError> {
    if size > MAX_REGION {
        return Err(ShmError::TooLarge { size });
    }
    let minimum = min_region_size();
    if size < minimum {
        return Err(ShmError::TooSmall { size, minimum });
    }
    Ok(())
}

static GLOBAL: OnceLock<Region> = OnceLock::new();

/// Maps the server's one region and makes it process-global. Call once in
/// the supervisor before forking; children inherit it.
pub fn init_global(size: usize) -> Result<&'static Region, ShmError> {
    if GLOBAL.get().is_some() {
        return Err(ShmError::AlreadyInitialised);
    }
    let r = Region::new(size)?;
    // Without threads nobody can race us between the check and the set.
    GLOBAL.set(r).map_err(|_| ShmError::AlreadyInitialised)?;
    GLOBAL.get().ok_or(ShmError::AlreadyInitialised)
}

/// The global region, if [`init_global`] has run.
pub fn try_global() -> Option<&'static Region> {
    GLOBAL.get()
}

/// The global region.
///
/// # Panics
///
/// If [`init_global`] has not run: a start-up ordering bug.
#[track_caller]
pub fn global() -> &'static Region {
    match GLOBAL.get() {
        Some(r) => r,
        None => panic!("shm::global() used before shm::init_global()"),
    }
}
