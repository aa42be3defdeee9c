//! Small helpers with no better home.
pub mod hash;
pub mod siphash;
pub mod version;
