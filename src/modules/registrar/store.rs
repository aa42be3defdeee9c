//! The location store as the registrar sees it.
//!
//! The registrar only needs an atomic read-modify-write of one AOR's
//! bindings and a read of the live ones. Putting that behind a trait keeps
//! the REGISTER logic independent of how usrloc lays bindings out in
//! shared memory, and lets the tests run against `MemLocation`, a real
//! (process-local) store with the same semantics.

use crate::modules::usrloc::Binding;

use super::save::{RegError, SaveOutcome};

/// The closure `save` runs under the store's lock.
pub type UpdateFn<'a> = dyn FnMut(&mut Vec<Binding>) -> Result<SaveOutcome, RegError> + 'a;

/// The store itself failed (not the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocError {
    /// A domain (table) nobody registered at fixup time.
    #[error("unknown location domain")]
    UnknownDomain,
    /// Out of memory, a broken lock, a corrupt record.
    #[error("location store failure")]
    Store,
}

/// What the registrar needs from usrloc.
pub trait Location: Sync {
    /// Create the table `name` (idempotent); called by every fixup.
    fn register_domain(&self, name: &str);
    /// usrloc's `use_domain`: AORs are `user@host` rather than `user`.
    fn use_domain(&self) -> bool;
    /// registrar's `case_sensitive`: compare AOR users exactly.
    fn set_case_sensitive(&self, on: bool);
    /// Atomically run `f` on the bindings of `aor` (expired ones already
    /// dropped); what `f` leaves in the vector is stored, an empty vector
    /// removes the record. `f`'s own verdict is passed through.
    fn update(
        &self,
        domain: &str,
        aor: &[u8],
        now_ms: u64,
        f: &mut UpdateFn<'_>,
    ) -> Result<Result<SaveOutcome, RegError>, LocError>;
    /// The live bindings of `aor` (empty when unknown).
    fn get(&self, domain: &str, aor: &[u8], now_ms: u64) -> Result<Vec<Binding>, LocError>;
}
