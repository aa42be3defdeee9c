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

/// Declare a `#[repr(C)]` struct for shared memory and implement
/// [`ShmSafe`] for it, with the invariant checked at compile time: every
/// field type must itself be `ShmSafe`, and the struct must need no drop.
/// Users outside this crate thus never write `unsafe` to put their own
/// plain-data types in the region.
///
/// ```
/// shm::shm_struct! {
///     #[derive(Clone, Copy, Default, Debug)]
///     pub struct Pair { pub a: u32, pub b: [u16; 2] }
/// }
/// fn needs_safe<T: shm::ShmSafe>() {}
/// needs_safe::<Pair>();
/// ```
#[macro_export]
macro_rules! shm_struct {
    (
        $(#[$m:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fm:meta])* $fvis:vis $f:ident : $t:ty ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[repr(C)]
        $vis struct $name { $( $(#[$fm])* $fvis $f : $t ),* }

        const _: () = {
            const fn assert_shm_safe<T: $crate::ShmSafe>() {}
            $( assert_shm_safe::<$t>(); )*
            assert!(!::core::mem::needs_drop::<$name>(), "shm_struct types must not need drop");
        };

        // SAFETY: `$name` is repr(C) and each field type is ShmSafe (checked
        // by the const block above), so the layout is fixed, it owns no
        // heap memory, every bit pattern of every field is valid, and it has
        // no drop glue (also checked above).
        #[allow(unsafe_code)]
        unsafe impl $crate::ShmSafe for $name {}
    };
}
