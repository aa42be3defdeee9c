//! The marker trait that keeps process-local data out of shared memory.

use core::sync::atomic::{
    AtomicI32, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
};

/// A type that may live in the shared region.
///
/// # Safety
///
/// Implementors promise that the type
/// - has a defined layout (`#[repr(C)]`, `#[repr(transparent)]` or a primitive),
/// - is valid for **every** bit pattern, in particular all-zeroes (a fresh
///   mapping is zero-filled, a recycled block holds stale bytes, and another
///   process may have written it),
/// - owns no process-local resource: no pointer, reference, `Box`, `Vec`,
///   `String`, file descriptor or anything with a `Drop` impl (memory in shm
///   is never dropped, only freed),
/// - refers to other shared objects only through [`crate::ShmOff`] /
///   [`crate::ShmSlice`].
///
/// Fields that another process may change while this one holds a `&T` must
/// be atomics or behind a [`crate::ShmLocked`]; plain fields are written
/// before the object is published and are read-only afterwards.
///
/// Types that naturally are enums or `bool` (including `AtomicBool`) are
/// stored as integers with accessor methods, so that every bit pattern
/// stays valid.
pub unsafe trait ShmSafe {}

macro_rules! shm_safe {
    ($($t:ty),* $(,)?) => { $(
        // SAFETY: primitive integers and their atomics have a fixed layout,
        // are valid for every bit pattern and own nothing.
        unsafe impl ShmSafe for $t {}
    )* };
}

shm_safe!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
shm_safe!(
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI32,
    AtomicI64
);
shm_safe!(());

// SAFETY: an array of `ShmSafe` elements has the elements' properties.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}
