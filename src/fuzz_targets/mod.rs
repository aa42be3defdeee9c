//! Fuzz target bodies, one function each, shared by the cargo-fuzz crate
//! (`fuzz/fuzz_targets/*.rs`, nightly) and the stable smoke harness that
//! `make test` runs (`tests/fuzz_smoke.rs`). A target takes any bytes and
//! panics only on a finding: a parser or state machine that panicked, or
//! an invariant it broke. Not part of the server.
//!
//! Always compiled (not behind a cargo feature) so that the stable harness,
//! an integration test, sees it with no extra flags, and so that a change
//! that breaks a target fails `cargo build` at once; it costs the server
//! binary nothing, since nothing in it calls these.

pub mod cfg;
pub mod ctl;
pub mod sip;
pub mod uri;

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target by the name of its corpus folder (`fuzz/corpus/<name>/`)
/// and its cargo-fuzz binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("sip_msg", sip::message),
    ("uri", uri::uri),
    ("cfg", cfg::script),
    ("ctl", ctl::commands),
    ("tm_fsm", crate::tm::fsm::explore::fuzz_events),
    ("shm_alloc", shm::fuzz_alloc::alloc_ops),
];

/// The target called `name`.
pub fn by_name(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
