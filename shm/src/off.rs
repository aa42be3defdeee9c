//! Typed offsets into the shared region.
//!
//! Every process maps the region at the same address, but the design stores
//! offsets anyway: they are half the size of a pointer, they make "null" the
//! zero value of a fresh mapping, and the same code works on a test buffer
//! at any address.

use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::num::NonZeroU32;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::safe::ShmSafe;

/// Byte offset of a `T` from the start of the region. Offset 0 is the region
/// header and never names an object, so `Option<ShmOff<T>>` is 4 bytes and
/// zeroed memory reads as `None`.
///
/// An offset is only a claim: [`crate::Region::get`] checks bounds and
/// alignment, and [`ShmSafe`] makes any bytes a valid `T`, so a stale or
/// wrong offset yields wrong data, never an out-of-bounds access.
#[repr(transparent)]
pub struct ShmOff<T> {
    raw: NonZeroU32,
    // `fn() -> T` keeps the offset `Copy`, `Send` and `Sync` whatever `T` is.
    _t: PhantomData<fn() -> T>,
}

impl<T> ShmOff<T> {
    /// Rebuilds an offset from its raw value (`None` for 0).
    pub const fn from_u32(raw: u32) -> Option<Self> {
        match NonZeroU32::new(raw) {
            Some(raw) => Some(Self {
                raw,
                _t: PhantomData,
            }),
            None => None,
        }
    }

    /// The raw byte offset.
    pub const fn get(self) -> u32 {
        self.raw.get()
    }

    /// The same position seen as another type (e.g. the bytes of a block).
    pub const fn cast<U>(self) -> ShmOff<U> {
        ShmOff {
            raw: self.raw,
            _t: PhantomData,
        }
    }

    /// Offset of a field `bytes` after the start of `T`. Use the
    /// [`crate::shm_field!`] macro, which computes `bytes` and checks the type.
    #[doc(hidden)]
    pub fn __project<U>(self, bytes: usize, _witness: fn(&T) -> &U) -> ShmOff<U> {
        // A field lies inside the object, and objects lie inside the region
        // (< 4 GiB), so the sum fits; saturate rather than wrap if misused.
        let raw = u32::try_from(bytes)
            .ok()
            .and_then(|b| self.raw.checked_add(b))
            .unwrap_or(NonZeroU32::MAX);
        ShmOff {
            raw,
            _t: PhantomData,
        }
    }

    /// Offset of the object containing this field, `bytes` before it. Use
    /// the [`crate::shm_container!`] macro.
    #[doc(hidden)]
    pub fn __container<C>(self, bytes: usize, _witness: fn(&C) -> &T) -> Option<ShmOff<C>> {
        let b = u32::try_from(bytes).ok()?;
        ShmOff::from_u32(self.raw.get().checked_sub(b)?)
    }
}

/// `shm_field!(off, Type, field)`: the offset of `field` inside the `Type`
/// at `off`, typed as the field's type.
#[macro_export]
macro_rules! shm_field {
    ($off:expr, $T:ty, $f:ident) => {{
        let o: $crate::ShmOff<$T> = $off;
        o.__project(::core::mem::offset_of!($T, $f), |t: &$T| &t.$f)
    }};
}

/// `shm_container!(field_off, Type, field)`: the offset of the `Type` whose
/// `field` is at `field_off` (C's `container_of`). `None` if that would be
/// before the region start.
#[macro_export]
macro_rules! shm_container {
    ($off:expr, $T:ty, $f:ident) => {{
        $off.__container(::core::mem::offset_of!($T, $f), |t: &$T| &t.$f)
    }};
}

// Manual impls: derives would wrongly require `T: Clone` etc.
impl<T> Clone for ShmOff<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ShmOff<T> {}
impl<T> PartialEq for ShmOff<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl<T> Eq for ShmOff<T> {}
impl<T> PartialOrd for ShmOff<T> {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for ShmOff<T> {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.raw.cmp(&other.raw)
    }
}
impl<T> Hash for ShmOff<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}
impl<T> fmt::Debug for ShmOff<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShmOff({:#x})", self.raw)
    }
}

// SAFETY: a transparent `NonZeroU32`; the zero pattern is only ever
// observed through `Option<ShmOff<T>>` (niche), which is also `ShmSafe`.
unsafe impl<T> ShmSafe for ShmOff<T> {}
// SAFETY: `Option<ShmOff<T>>` is a `u32` with 0 = `None`: every bit
// pattern is valid and it owns nothing.
unsafe impl<T> ShmSafe for Option<ShmOff<T>> {}

/// An offset that several processes read and write: an `AtomicU32` with
/// 0 = none. Links of intrusive lists use it so that a `&Entry` stays
/// sound while the list is edited under its lock.
#[repr(transparent)]
#[derive(Default)]
pub struct AtomicOff<T> {
    raw: AtomicU32,
    _t: PhantomData<fn() -> T>,
}

impl<T> AtomicOff<T> {
    /// A `None` offset.
    pub const fn none() -> Self {
        Self {
            raw: AtomicU32::new(0),
            _t: PhantomData,
        }
    }
    /// Initialised with `v`.
    pub fn new(v: Option<ShmOff<T>>) -> Self {
        Self {
            raw: AtomicU32::new(raw_of(v)),
            _t: PhantomData,
        }
    }
    /// Loads the offset.
    pub fn load(&self, order: Ordering) -> Option<ShmOff<T>> {
        ShmOff::from_u32(self.raw.load(order))
    }
    /// Stores the offset.
    pub fn store(&self, v: Option<ShmOff<T>>, order: Ordering) {
        self.raw.store(raw_of(v), order);
    }
}

impl<T> fmt::Debug for AtomicOff<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load(Ordering::Relaxed).fmt(f)
    }
}

fn raw_of<T>(v: Option<ShmOff<T>>) -> u32 {
    v.map_or(0, ShmOff::get)
}

// SAFETY: a transparent `AtomicU32`.
unsafe impl<T> ShmSafe for AtomicOff<T> {}

/// A run of `len` `T`s in the region. The zero value is the empty slice.
#[repr(C)]
pub struct ShmSlice<T> {
    pub(crate) start: u32,
    pub(crate) len: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> ShmSlice<T> {
    /// The empty slice (owns no block).
    pub const EMPTY: Self = Self {
        start: 0,
        len: 0,
        _t: PhantomData,
    };

    pub(crate) const fn new(start: u32, len: u32) -> Self {
        Self {
            start,
            len,
            _t: PhantomData,
        }
    }
    /// `len` elements starting at `start` (e.g. the first `len` bytes of a
    /// block from `alloc_bytes`). Like any offset this is a claim, checked
    /// for bounds when used.
    pub const fn from_raw_parts(start: ShmOff<T>, len: u32) -> Self {
        Self::new(start.get(), len)
    }
    /// Number of elements.
    pub const fn len(&self) -> usize {
        self.len as usize
    }
    /// True for the empty slice.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Offset of the first element (`None` when empty).
    pub const fn start(&self) -> Option<ShmOff<T>> {
        if self.len == 0 {
            None
        } else {
            ShmOff::from_u32(self.start)
        }
    }
    /// Offset of element `i`, `None` past the end.
    pub fn at(&self, i: usize) -> Option<ShmOff<T>> {
        if i >= self.len() {
            return None;
        }
        let bytes = u32::try_from(i.checked_mul(size_of::<T>())?).ok()?;
        ShmOff::from_u32(self.start.checked_add(bytes)?)
    }
}

impl<T> Clone for ShmSlice<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ShmSlice<T> {}
impl<T> PartialEq for ShmSlice<T> {
    fn eq(&self, o: &Self) -> bool {
        self.start == o.start && self.len == o.len
    }
}
impl<T> Eq for ShmSlice<T> {}
impl<T> fmt::Debug for ShmSlice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShmSlice({:#x}, len {})", self.start, self.len)
    }
}
impl<T> Default for ShmSlice<T> {
    fn default() -> Self {
        Self::EMPTY
    }
}

// SAFETY: two `u32`s; any values are a valid (possibly wrong) claim that
// `Region::slice` bounds-checks.
unsafe impl<T> ShmSafe for ShmSlice<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    struct Pair {
        a: u64,
        b: u32,
    }

    #[test]
    fn option_is_four_bytes_and_zero_is_none() {
        assert_eq!(size_of::<Option<ShmOff<u64>>>(), 4);
        assert!(ShmOff::<u8>::from_u32(0).is_none());
        assert_eq!(AtomicOff::<u8>::none().load(Ordering::Relaxed), None);
    }

    #[test]
    fn field_and_container_round_trip() {
        let o = ShmOff::<Pair>::from_u32(0x100).unwrap();
        let f: ShmOff<u32> = shm_field!(o, Pair, b);
        assert_eq!(f.get(), 0x108);
        let back: Option<ShmOff<Pair>> = shm_container!(f, Pair, b);
        assert_eq!(back, Some(o));
        let low = ShmOff::<u32>::from_u32(4).unwrap();
        let none: Option<ShmOff<Pair>> = shm_container!(low, Pair, b);
        assert_eq!(none, None);
    }

    #[test]
    fn slice_at_bounds() {
        let s = ShmSlice::<u64>::new(0x40, 3);
        assert_eq!(s.at(2).map(ShmOff::get), Some(0x50));
        assert_eq!(s.at(3), None);
        assert_eq!(ShmSlice::<u64>::EMPTY.start(), None);
    }
}
