//! usrloc: the location database — contacts registered per
//! address-of-record, kept in shared memory so every worker sees every
//! registration, and with `db_mode` 1–3 in a database too ([`persist`]).
//!
//! Domains ("tables": `location`, `aliases`) are announced by the
//! registrar's fixups at config load ([`register_domain`]); `mod_init`
//! creates one shm hash table per domain before the fork (and fills it from
//! the database in modes 1 and 2). The registrar then reads with [`get`]
//! and writes with [`update`]; expired bindings are swept every
//! `timer_interval` seconds — by the timer process in memory mode, by
//! usrloc's own process when a database is involved, since database
//! round trips must never delay tm's timers.

pub mod binding;
mod codec;
pub mod ctl;
pub mod db;
mod persist;
mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use shm::{Region, ShmOff, TimerLink};

use crate::cfg::ast::Literal;
use crate::db::DbUrl;
use crate::route::export::{
    BoxedFn, FixupEnv, FixupError, FnDef, ModInitError, ModProc, Module, ParamError,
};

pub use binding::{Binding, FL_NAT, FL_PERMANENT, PERMANENT, Q_UNSPECIFIED};
pub use codec::CodecError;
pub use persist::DbMode;
pub use store::{UlError, LOCK_LEVEL, TABLE_BITS};

use binding::AorBindings;
use persist::Persist;

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
    mode: DbMode,
    persist: Option<Persist>,
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

impl Global {
    fn db_only(&self) -> Option<&Persist> {
        self.persist
            .as_ref()
            .filter(|_| self.mode == DbMode::DbOnly)
    }
}

/// Under the record's lock, in any process: the live bindings of `aor`
/// (empty if none) go to `f`, and what `f` leaves is stored (an empty list
/// removes the record). `f` must not take other shm locks. With
/// write-through the change is in the database before this returns (or
/// left dirty, logged, when the database failed); in mode 3 a database
/// failure is an error.
pub fn update<R>(
    domain: &str,
    aor: &[u8],
    now_ms: u64,
    f: impl FnOnce(&mut Vec<Binding>) -> R,
) -> Result<R, UlError> {
    let g = global()?;
    let d = g.store.domain(domain)?;
    if let Some(p) = g.db_only() {
        return p.update(d, aor, f);
    }
    let write_through = g.mode == DbMode::WriteThrough;
    let (r, change) = g.store.update_tracked(d, aor, now_ms, write_through, f)?;
    if let (Some(p), Some(c)) = (&g.persist, change.filter(|c| c.claimed)) {
        p.write_through(&g.store, d, c)?;
    }
    Ok(r)
}

/// The live bindings of `aor` at `now_ms`, or `None` when it has no
/// record.
pub fn lookup(domain: &str, aor: &[u8], now_ms: u64) -> Result<Option<Vec<Binding>>, UlError> {
    let g = global()?;
    let d = g.store.domain(domain)?;
    match g.db_only() {
        Some(p) => p.lookup(d, aor),
        None => g.store.lookup(d, aor, now_ms),
    }
}

/// The live bindings of `aor` at `now_ms`, in stored order.
pub fn get(domain: &str, aor: &[u8], now_ms: u64) -> Result<Vec<Binding>, UlError> {
    Ok(lookup(domain, aor, now_ms)?.unwrap_or_default())
}

/// Is `domain` one of the tables?
fn has_domain(domain: &str) -> Result<bool, UlError> {
    Ok(global()?.store.domain(domain).is_ok())
}

/// Every table with its AORs and their live bindings (`ul_dump`).
fn dump(now_ms: u64) -> Result<Vec<(String, Vec<AorBindings>)>, UlError> {
    let g = global()?;
    let mut out = Vec::new();
    for (d, name) in g.store.domain_names().enumerate() {
        let recs = match g.db_only() {
            Some(p) => p.records(d)?,
            None => g.store.records(d, now_ms)?,
        };
        out.push((name.to_string(), recs));
    }
    Ok(out)
}

/// Every live binding of every table at `now_ms`, table by table: for
/// readers that walk them all, like nathelper's keep-alive pings. Each
/// record is copied out under its bucket lock; `f` runs with no lock held.
pub fn for_each_binding(
    now_ms: u64,
    mut f: impl FnMut(&str, &[u8], &Binding),
) -> Result<(), UlError> {
    for (domain, recs) in dump(now_ms)? {
        for (aor, bindings) in &recs {
            for b in bindings {
                f(&domain, aor, b);
            }
        }
    }
    Ok(())
}

/// `(table, AORs, bindings dropped on expiry)` of every table.
fn stats() -> Result<Vec<(String, u32, u64)>, UlError> {
    let g = global()?;
    let mut out = Vec::new();
    for (d, name) in g.store.domain_names().enumerate() {
        let (mut users, expired) = g.store.stats(d);
        if let Some(p) = g.db_only() {
            users = u32::try_from(p.records(d)?.len()).unwrap_or(u32::MAX);
        }
        out.push((name.to_string(), users, expired));
    }
    Ok(out)
}

/// One table's figures for the metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFigures {
    pub table: String,
    /// Records that hold bindings (what `ul_stats` calls users).
    pub aors: u64,
    /// Bindings stored, expired ones not yet swept included.
    pub bindings: u64,
}

/// `(table, AORs, bindings)` of every table, read from shm; `None` when
/// usrloc is not loaded or keeps no table (`db_mode` 3: the figures live
/// in the database, and a scrape should not cost a query).
pub fn table_figures() -> Option<Vec<TableFigures>> {
    let g = global().ok()?;
    if g.db_only().is_some() {
        return None;
    }
    Some(
        g.store
            .domain_names()
            .enumerate()
            .map(|(d, name)| TableFigures {
                table: name.to_string(),
                aors: u64::from(g.store.stats(d).0),
                bindings: g.store.bindings(d),
            })
            .collect(),
    )
}

/// The periodic work, now: the expiry sweep, and with a database the
/// writes of dirty records (or, in mode 3, the deletion of expired rows).
/// `ul_flush` and the usrloc process call it.
fn flush(now_ms: u64) -> Result<(), UlError> {
    let g = global()?;
    match (&g.persist, g.mode) {
        (Some(p), DbMode::DbOnly) => {
            for d in 0..g.store.domain_names().count() {
                let n = p.delete_expired(d)?;
                g.store.note_expired_in(d, n);
            }
        }
        (Some(p), _) => {
            g.store.sweep(now_ms);
            p.flush(&g.store)?;
        }
        (None, _) => {
            g.store.sweep(now_ms);
        }
    }
    Ok(())
}

/// The usrloc process's pass (see [`persist::run`]).
fn periodic() {
    if let Err(e) = flush(shm::monotonic_ms()) {
        crate::warn_limited!("usrloc: {e}");
    }
}

/// What the module was configured with, for `mod_init`.
struct Setup {
    interval_s: u32,
    mode: DbMode,
    url: DbUrl,
    columns: db::Columns,
}

/// Create the tables (once, before the fork), and with a database behind
/// them check it and fill them from it.
fn init(region: &'static Region, s: Setup) -> Result<(), ModInitError> {
    let err = |reason: String| ModInitError {
        module: "usrloc",
        reason,
    };
    let names = PENDING.lock().map(|p| p.clone()).unwrap_or_default();
    let store = store::Store::with_tracking(
        region,
        &names,
        TABLE_BITS,
        CASE_SENSITIVE.load(Ordering::Relaxed),
        s.mode.tracked(),
    )
    .map_err(|e| err(e.to_string()))?;
    let interval_ms = u64::from(s.interval_s.max(1)) * 1000;
    let persist = if s.mode == DbMode::Memory {
        None
    } else {
        let mut domains = Vec::with_capacity(names.len());
        for name in &names {
            let d = db::DomainDb::new(name, &s.columns, use_domain())
                .map_err(|e| err(format!("table {name:?}: {e}")))?;
            domains.push(d);
        }
        let p = Persist {
            url: s.url,
            domains,
        };
        if s.mode == DbMode::DbOnly {
            p.probe(&names).map_err(|e| err(e.to_string()))?;
        } else {
            let n = p.load(&store, &names).map_err(|e| err(e.to_string()))?;
            log::info!("usrloc: {n} binding(s) loaded from {}", p.url);
        }
        Some(p)
    };
    GLOBAL
        .set(Global {
            store,
            interval_ms,
            mode: s.mode,
            persist,
        })
        .map_err(|_| err(UlError::AlreadyInitialised.to_string()))?;
    if s.mode != DbMode::Memory {
        // usrloc's own process does the periodic work.
        return Ok(());
    }
    let timer = region
        .alloc(TimerLink::new(TIMER_KIND))
        .map_err(|e| err(e.to_string()))?;
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

/// The usrloc process's body.
fn usrloc_process() -> i32 {
    match global() {
        Ok(g) => persist::run(Duration::from_millis(g.interval_ms)),
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

/// The `usrloc` module and its parameters.
pub struct Usrloc {
    timer_interval: u32,
    db_mode: DbMode,
    db_url: Option<DbUrl>,
    columns: db::Columns,
    /// `method_column`: set, but SER 0.9's location table has no such
    /// column (only memory mode can take it, where no column is used).
    method_column: bool,
}

impl Default for Usrloc {
    fn default() -> Self {
        Usrloc {
            timer_interval: 60,
            db_mode: DbMode::Memory,
            db_url: None,
            columns: db::Columns::default(),
            method_column: false,
        }
    }
}

/// SER 0.9's default `db_url` (`DEFAULT_DB_URL`).
const DEFAULT_URL: &str = "mysql://ser:heslo@localhost/ser";

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

fn bad_value(param: &str, reason: String) -> ParamError {
    ParamError::BadValue {
        module: "usrloc",
        param: param.to_string(),
        reason,
    }
}

fn str_value(param: &str, value: &Literal) -> Result<String, ParamError> {
    match value {
        Literal::Str(s) | Literal::Ident(s) => Ok(s.clone()),
        _ => Err(ParamError::BadType {
            module: "usrloc",
            param: param.to_string(),
            expected: "a string",
        }),
    }
}

impl Module for Usrloc {
    fn name(&self) -> &'static str {
        "usrloc"
    }

    fn functions(&self) -> &'static [FnDef] {
        &[]
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        match param {
            "db_mode" => {
                let n = int_param(param, value)?;
                self.db_mode = DbMode::from_int(n).ok_or_else(|| {
                    bad_value(
                        param,
                        format!("{n} is not 0 (memory), 1 (write-through), 2 (write-back) or 3 (database only)"),
                    )
                })?;
                Ok(())
            }
            "db_url" => {
                self.db_url = Some(crate::modules::db_conn::parse_param(
                    "usrloc", param, value,
                )?);
                Ok(())
            }
            "timer_interval" => match int_param(param, value)? {
                n @ 1..=86_400 => {
                    self.timer_interval = n as u32;
                    Ok(())
                }
                n => Err(bad_value(param, format!("{n} s is not within 1..86400"))),
            },
            "use_domain" => {
                USE_DOMAIN.store(flag_param(param, value)?, Ordering::Relaxed);
                Ok(())
            }
            "desc_time_order" => {
                DESC_TIME_ORDER.store(flag_param(param, value)?, Ordering::Relaxed);
                Ok(())
            }
            "method_column" => {
                str_value(param, value)?;
                self.method_column = true;
                Ok(())
            }
            p if p.ends_with("_column") => {
                let name = str_value(param, value)?;
                crate::db::Ident::new(&name).map_err(|e| bad_value(param, e.to_string()))?;
                if self.columns.set(p, name) {
                    Ok(())
                } else {
                    Err(super::no_params("usrloc", param))
                }
            }
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
        if self.method_column && self.db_mode != DbMode::Memory {
            return Err(ModInitError {
                module: "usrloc",
                reason: "method_column: SER 0.9's location table has no method column, \
                         and ser does not store the method"
                    .into(),
            });
        }
        let url = match &self.db_url {
            Some(u) => u.clone(),
            None => DbUrl::parse(DEFAULT_URL).map_err(|e| ModInitError {
                module: "usrloc",
                reason: e.to_string(),
            })?,
        };
        init(
            region,
            Setup {
                interval_s: self.timer_interval,
                mode: self.db_mode,
                url,
                columns: self.columns.clone(),
            },
        )
    }

    fn procs(&self) -> Vec<ModProc> {
        if self.db_mode == DbMode::Memory {
            return Vec::new();
        }
        vec![ModProc {
            desc: "usrloc database writer",
            body: usrloc_process,
        }]
    }

    fn destroy(&self) {
        // SER's mod_destroy: what write-back (or a failed write-through)
        // has not written yet. Every child has stopped.
        let Ok(g) = global() else { return };
        if let (Some(p), true) = (&g.persist, g.mode.tracked()) {
            match p.flush(&g.store) {
                Ok(n) if n > 0 => log::info!("usrloc: {n} record(s) written at shutdown"),
                Ok(_) => {}
                Err(e) => log::error!("usrloc: registrations not written at shutdown: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_as_ser_0_9_writes_them() {
        let mut m = Usrloc::default();
        assert!(m.set_param("db_mode", &Literal::Int(0)).is_ok());
        assert!(m.set_param("db_mode", &Literal::Int(2)).is_ok());
        assert_eq!(m.db_mode, DbMode::WriteBack);
        let e = m.set_param("db_mode", &Literal::Int(4)).unwrap_err();
        assert!(e.to_string().contains("write-back"), "{e}");
        assert!(m
            .set_param("user_column", &Literal::Str("bad name".into()))
            .is_err());
        assert!(m
            .set_param("bogus_column", &Literal::Str("x".into()))
            .is_err());
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
