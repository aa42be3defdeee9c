//! usrloc: the location database — contacts registered per
//! address-of-record, kept in shared memory so every worker sees every
//! registration (SER's db_mode 0: memory only).
//!
//! Domains ("tables": `location`, `aliases`) are announced by the
//! registrar's fixups at config load ([`register_domain`]); `mod_init`
//! creates one shm hash table per domain before the fork. The registrar
//! then reads with [`get`] and writes with [`update`]; the timer process
//! sweeps expired bindings every `timer_interval` seconds.

pub mod binding;
mod codec;
pub mod ctl;
mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use shm::{Region, ShmOff, TimerLink};

use crate::cfg::ast::Literal;
use crate::route::export::{
    BoxedFn, FixupEnv, FixupError, FnDef, ModInitError, Module, ParamError,
};

pub use binding::{Binding, FL_NAT, FL_PERMANENT, PERMANENT, Q_UNSPECIFIED};
pub use codec::CodecError;
pub use store::{UlError, LOCK_LEVEL, TABLE_BITS};

/// Timer kind of the expiry sweep (tm uses 1).
pub const TIMER_KIND: u32 = 6;

/// Domains announced before `mod_init` (config load, one process).
static PENDING: Mutex<Vec<String>> = Mutex::new(Vec::new());
static CASE_SENSITIVE: AtomicBool = AtomicBool::new(false);
static USE_DOMAIN: AtomicBool = AtomicBool::new(false);
static DESC_TIME_ORDER: AtomicBool = AtomicBool::new(false);

struct Global {
    store: store::Store,
    interval_ms: u64,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

/// Announce a domain (table) a script uses: `save("location")`,
/// `lookup("aliases")`. Before `mod_init`; later calls have no effect on
/// the tables already made.
pub fn register_domain(name: &str) {
    if let Ok(mut p) = PENDING.lock() {
        if !p.iter().any(|d| d == name) {
            p.push(name.to_string());
        }
    }
}

/// Compare AORs byte for byte instead of ignoring ASCII case (registrar's
/// `case_sensitive`). Before `mod_init`.
pub fn set_case_sensitive(on: bool) {
    CASE_SENSITIVE.store(on, Ordering::Relaxed);
}

/// The `use_domain` parameter: AORs are `user@domain` rather than `user`.
pub fn use_domain() -> bool {
    USE_DOMAIN.load(Ordering::Relaxed)
}

/// The `desc_time_order` parameter: newest binding first in `lookup`.
pub fn desc_time_order() -> bool {
    DESC_TIME_ORDER.load(Ordering::Relaxed)
}

fn global() -> Result<&'static Global, UlError> {
    GLOBAL.get().ok_or(UlError::NotInitialised)
}

/// Under the record's bucket lock, in any process: the live bindings of
/// `aor` (empty if none) go to `f`, and what `f` leaves is stored (an
/// empty list removes the record). `f` must not take other shm locks.
pub fn update<R>(
    domain: &str,
    aor: &[u8],
    now_ms: u64,
    f: impl FnOnce(&mut Vec<Binding>) -> R,
) -> Result<R, UlError> {
    let g = global()?;
    g.store.update(g.store.domain(domain)?, aor, now_ms, f)
}

/// The live bindings of `aor` at `now_ms`, in stored order.
pub fn get(domain: &str, aor: &[u8], now_ms: u64) -> Result<Vec<Binding>, UlError> {
    let g = global()?;
    Ok(g.store
        .lookup(g.store.domain(domain)?, aor, now_ms)?
        .unwrap_or_default())
}

/// Create the tables (once, before the fork).
fn init(region: &'static Region, interval_s: u32) -> Result<(), UlError> {
    let names = PENDING.lock().map(|p| p.clone()).unwrap_or_default();
    let store = store::Store::new(
        region,
        &names,
        TABLE_BITS,
        CASE_SENSITIVE.load(Ordering::Relaxed),
    )?;
    let timer = region.alloc(TimerLink::new(TIMER_KIND))?;
    let interval_ms = u64::from(interval_s.max(1)) * 1000;
    GLOBAL
        .set(Global { store, interval_ms })
        .map_err(|_| UlError::AlreadyInitialised)?;
    if crate::timer::register(TIMER_KIND, on_timer) {
        crate::timer::arm(timer, TIMER_KIND, shm::monotonic_ms() + interval_ms);
    } else {
        log::warn!("usrloc: no expiry timer; expired bindings are only filtered on reads");
    }
    Ok(())
}

/// The periodic sweep, in the timer process; re-arms itself.
fn on_timer(_region: &'static Region, link: ShmOff<TimerLink>) {
    let Ok(g) = global() else { return };
    let now = shm::monotonic_ms();
    let n = g.store.sweep(now);
    if n > 0 {
        log::debug!("usrloc: {n} expired binding(s) removed");
    }
    crate::timer::arm(link, TIMER_KIND, shm::monotonic_ms() + g.interval_ms);
}

/// The `usrloc` module and its parameters.
pub struct Usrloc {
    timer_interval: u32,
}

impl Default for Usrloc {
    fn default() -> Self {
        Usrloc { timer_interval: 60 }
    }
}

fn int_param(param: &str, value: &Literal) -> Result<i64, ParamError> {
    crate::route::export::param_int("usrloc", param, value)
}

fn flag_param(param: &str, value: &Literal) -> Result<bool, ParamError> {
    match int_param(param, value)? {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(ParamError::BadValue {
            module: "usrloc",
            param: param.to_string(),
            reason: format!("{n} is not 0 or 1"),
        }),
    }
}

/// Database parameters of SER 0.9 usrloc. Memory mode never touches a
/// database, but a 0.9 config commonly sets them (often with `db_mode 0`
/// left over from a DB setup), so they are accepted and ignored.
const DB_PARAMS: &[&str] = &[
    "db_url",
    "user_column",
    "domain_column",
    "contact_column",
    "expires_column",
    "q_column",
    "callid_column",
    "cseq_column",
    "method_column",
    "flags_column",
    "user_agent_column",
    "received_column",
];

impl Module for Usrloc {
    fn name(&self) -> &'static str {
        "usrloc"
    }

    fn functions(&self) -> &'static [FnDef] {
        &[]
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        match param {
            "db_mode" => match int_param(param, value)? {
                0 => Ok(()),
                n => Err(ParamError::BadValue {
                    module: "usrloc",
                    param: param.to_string(),
                    reason: format!("{n} is not supported: only memory mode (0) exists"),
                }),
            },
            "timer_interval" => match int_param(param, value)? {
                n @ 1..=86_400 => {
                    self.timer_interval = n as u32;
                    Ok(())
                }
                n => Err(ParamError::BadValue {
                    module: "usrloc",
                    param: param.to_string(),
                    reason: format!("{n} s is not within 1..86400"),
                }),
            },
            "use_domain" => {
                USE_DOMAIN.store(flag_param(param, value)?, Ordering::Relaxed);
                Ok(())
            }
            "desc_time_order" => {
                DESC_TIME_ORDER.store(flag_param(param, value)?, Ordering::Relaxed);
                Ok(())
            }
            p if DB_PARAMS.contains(&p) => match value {
                Literal::Str(_) | Literal::Ident(_) => Ok(()),
                _ => Err(ParamError::BadType {
                    module: "usrloc",
                    param: param.to_string(),
                    expected: "a string",
                }),
            },
            _ => Err(super::no_params("usrloc", param)),
        }
    }

    fn fixup(&self, f: &FnDef, _: &[Literal], _: &FixupEnv<'_>) -> Result<BoxedFn, FixupError> {
        Err(FixupError::Unavailable {
            func: f.name,
            reason: "usrloc exports no script functions",
        })
    }

    fn ctl_commands(&self) -> &'static [crate::ctl::CtlCmd] {
        ctl::COMMANDS
    }

    fn mod_init(
        &self,
        _rt: &'static crate::route::Runtime,
        region: &'static Region,
    ) -> Result<(), ModInitError> {
        init(region, self.timer_interval).map_err(|e| ModInitError {
            module: "usrloc",
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_as_ser_0_9_writes_them() {
        let mut m = Usrloc::default();
        assert!(m.set_param("db_mode", &Literal::Int(0)).is_ok());
        let e = m.set_param("db_mode", &Literal::Int(2)).unwrap_err();
        assert!(e.to_string().contains("only memory mode"), "{e}");
        assert!(m.set_param("timer_interval", &Literal::Int(10)).is_ok());
        assert_eq!(m.timer_interval, 10);
        assert!(m.set_param("timer_interval", &Literal::Int(0)).is_err());
        assert!(m.set_param("desc_time_order", &Literal::Int(0)).is_ok());
        assert!(m.set_param("use_domain", &Literal::Int(3)).is_err());
        assert!(m
            .set_param(
                "db_url",
                &Literal::Str("mysql://ser:heslo@localhost/ser".into())
            )
            .is_ok());
        assert!(m
            .set_param("contact_column", &Literal::Str("c".into()))
            .is_ok());
        assert!(m.set_param("nonsense", &Literal::Int(1)).is_err());
    }
}
