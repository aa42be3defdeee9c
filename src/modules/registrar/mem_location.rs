//! A process-local location store for the registrar's unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::modules::usrloc::Binding;

use super::save::{RegError, SaveOutcome};
use super::store::{LocError, Location, UpdateFn};

type Table = BTreeMap<(String, Vec<u8>), Vec<Binding>>;

/// A location store in process memory with usrloc's semantics, for the
/// unit tests (production uses `shm_location`).
pub struct MemLocation {
    domains: Mutex<BTreeSet<String>>,
    records: Mutex<Table>,
    use_domain: AtomicBool,
    case_sensitive: AtomicBool,
}

impl Default for MemLocation {
    fn default() -> Self {
        Self::new()
    }
}

impl MemLocation {
    pub const fn new() -> Self {
        MemLocation {
            domains: Mutex::new(BTreeSet::new()),
            records: Mutex::new(BTreeMap::new()),
            use_domain: AtomicBool::new(false),
            case_sensitive: AtomicBool::new(false),
        }
    }

    pub fn set_use_domain(&self, on: bool) {
        self.use_domain.store(on, Ordering::Relaxed);
    }

    /// SER lower-cases AORs unless `case_sensitive` is set.
    fn key(&self, domain: &str, aor: &[u8]) -> (String, Vec<u8>) {
        let aor = if self.case_sensitive.load(Ordering::Relaxed) {
            aor.to_vec()
        } else {
            aor.to_ascii_lowercase()
        };
        (domain.to_string(), aor)
    }

    fn known(&self, domain: &str) -> Result<(), LocError> {
        let d = self.domains.lock().map_err(|_| LocError::Store)?;
        if d.contains(domain) {
            Ok(())
        } else {
            Err(LocError::UnknownDomain)
        }
    }
}

impl Location for MemLocation {
    fn register_domain(&self, name: &str) {
        if let Ok(mut d) = self.domains.lock() {
            d.insert(name.to_string());
        }
    }

    fn use_domain(&self) -> bool {
        self.use_domain.load(Ordering::Relaxed)
    }

    fn set_case_sensitive(&self, on: bool) {
        self.case_sensitive.store(on, Ordering::Relaxed);
    }

    fn update(
        &self,
        domain: &str,
        aor: &[u8],
        now_ms: u64,
        f: &mut UpdateFn<'_>,
    ) -> Result<Result<SaveOutcome, RegError>, LocError> {
        self.known(domain)?;
        let key = self.key(domain, aor);
        let mut t = self.records.lock().map_err(|_| LocError::Store)?;
        let mut v = t.remove(&key).unwrap_or_default();
        v.retain(|b| b.is_live(now_ms));
        let r = f(&mut v);
        if !v.is_empty() {
            t.insert(key, v);
        }
        Ok(r)
    }

    fn get(&self, domain: &str, aor: &[u8], now_ms: u64) -> Result<Vec<Binding>, LocError> {
        self.known(domain)?;
        let key = self.key(domain, aor);
        let t = self.records.lock().map_err(|_| LocError::Store)?;
        Ok(t.get(&key)
            .map(|v| v.iter().filter(|b| b.is_live(now_ms)).cloned().collect())
            .unwrap_or_default())
    }
}

/// Put a binding straight into a [`MemLocation`] (what FIFO `ul_add`
/// does in usrloc): for tests of `lookup("aliases")` and friends.
pub fn mem_add(loc: &MemLocation, domain: &str, aor: &[u8], b: Binding) {
    let mut f = |v: &mut Vec<Binding>| {
        v.push(b.clone());
        Ok(SaveOutcome {
            bindings: v.clone(),
            stale: false,
        })
    };
    let r = loc.update(domain, aor, 0, &mut f);
    assert!(matches!(r, Ok(Ok(_))));
}
