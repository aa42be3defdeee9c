//! The one error type of the crate.

use thiserror::Error;

/// What can go wrong with shared memory. Every variant is recoverable by
/// the caller: exhaustion in particular must turn into a `500`/drop in the
/// server, never a crash.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ShmError {
    /// The allocator has no free block of the requested size (after
    /// rounding). `requested` is what the caller asked for, in bytes.
    #[error("shared memory exhausted: {requested} bytes requested")]
    OutOfMemory {
        /// Bytes the caller asked for.
        requested: usize,
    },
    /// The requested region size cannot be addressed by 32-bit offsets.
    #[error("shared memory region of {size} bytes is larger than the 4 GiB offsets can address")]
    TooLarge {
        /// Requested size in bytes.
        size: usize,
    },
    /// The requested region cannot even hold the header and one block.
    #[error("shared memory region of {size} bytes is too small (minimum {minimum})")]
    TooSmall {
        /// Requested size in bytes.
        size: usize,
        /// Smallest usable size in bytes.
        minimum: usize,
    },
    /// The memory handed to [`crate::Region::from_raw`] is not 16-byte aligned.
    #[error("shared memory base address is not 16-byte aligned")]
    Misaligned,
    /// `mmap` refused; the value is the OS `errno`.
    #[error("mmap of the shared memory region failed (errno {errno})")]
    Map {
        /// The `errno` reported by `mmap`.
        errno: i32,
    },
    /// [`crate::init_global`] was called a second time.
    #[error("the process-global shared memory region is already initialised")]
    AlreadyInitialised,
    /// A container was asked for a bucket/slot count outside its range.
    #[error("invalid container geometry: 2^{bits} entries")]
    BadGeometry {
        /// The log2 size that was refused.
        bits: u32,
    },
}
