//! The registrar's store in production: usrloc's shared-memory table, so
//! a binding saved by one worker is found by every other.

use super::save::{RegError, SaveOutcome};
use super::store::{LocError, Location, UpdateFn};
use crate::modules::usrloc::{self as ul, Binding, UlError};

pub struct ShmLocation;

pub static SHM_LOCATION: ShmLocation = ShmLocation;

fn loc_error(e: UlError) -> LocError {
    match e {
        UlError::UnknownDomain(_) => LocError::UnknownDomain,
        e => {
            crate::log_limited!(log::Level::Error, "registrar: usrloc: {e}");
            LocError::Store
        }
    }
}

impl Location for ShmLocation {
    fn register_domain(&self, name: &str) {
        ul::register_domain(name);
    }

    fn use_domain(&self) -> bool {
        ul::use_domain()
    }

    fn set_case_sensitive(&self, on: bool) {
        ul::set_case_sensitive(on);
    }

    fn update(
        &self,
        domain: &str,
        aor: &[u8],
        now_ms: u64,
        f: &mut UpdateFn<'_>,
    ) -> Result<Result<SaveOutcome, RegError>, LocError> {
        ul::update(domain, aor, now_ms, |v| f(v)).map_err(loc_error)
    }

    fn get(&self, domain: &str, aor: &[u8], now_ms: u64) -> Result<Vec<Binding>, LocError> {
        ul::get(domain, aor, now_ms).map_err(loc_error)
    }
}
