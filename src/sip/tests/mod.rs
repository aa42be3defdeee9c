//! Cross-file tests of the sip layer: RFC 4475-style fixtures, accessors,
//! reply building and a mutation run for totality.

mod bench;
mod fixtures;
mod fuzz;
mod layering;
mod messages;
