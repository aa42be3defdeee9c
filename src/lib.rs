//! ser — the SIP Express Router, rebuilt in Rust.
//!
//! Layers run one way (see ARCHITECTURE.md): `sip` depends on nothing;
//! `cfg` on nothing; `route` on `sip` and `cfg`; `modules` on `route`;
//! `proc`/`net`/`os` carry the processes; `main.rs` wires them.
#![deny(unsafe_code)]

pub mod cfg;
pub mod cli;
pub mod ctl;
pub mod db;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod fwd;
pub mod logging;
pub mod metrics;
pub mod modules;
pub mod net;
pub mod os;
pub mod proc;
pub mod route;
pub mod serctl;
pub mod server;
pub mod sip;
pub mod timer;
pub mod tm;
pub mod util;

#[cfg(test)]
mod layering_tests;
