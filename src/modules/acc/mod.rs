//! acc — transaction accounting to syslog (stderr with `-E`), SER 0.9.
//!
//! Flagged transactions are reported when their final reply goes
//! upstream (`log_flag`: answered; `log_missed_flag`: a negative INVITE
//! outcome, once); `acc_log_request` reports the current request at once.
//! Lines are built by [`line::format`] and written at `log_level` through
//! the same path as the script's `log()`, so they show under the same
//! `debug` rule SER applies.
//!
//! Two sinks share the values: the syslog line and SER 0.9's SQL rows
//! (`db_url`, `db_flag` → `acc`, `db_missed_flag` → `missed_calls`,
//! `acc_db_request(comment, table)`; see [`db`]). The parameters that
//! would send records to RADIUS or Diameter are refused when the config
//! loads — accounting that silently goes nowhere is worse than a clear
//! error — while their pure naming parameters are accepted unused.

mod db;
pub mod line;
mod report;

use std::sync::OnceLock;

use crate::cfg::ast::Literal;
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, ModInitError, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;
use crate::tm::callbacks::{register_tmcb, CbEvent};

/// The module's settings (SER's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccCfg {
    /// Flag marking transactions to report when answered (`None` = unset).
    pub log_flag: Option<u32>,
    /// Flag marking INVITEs whose negative outcome is a missed call.
    pub log_missed_flag: Option<u32>,
    /// SER level the lines are logged at (L_NOTICE = 2).
    pub log_level: i32,
    pub log_fmt: String,
    pub report_ack: bool,
    pub report_cancels: bool,
    /// Also report 183 replies (needs the firing site to pass flags; see
    /// `report.rs`).
    pub early_media: bool,
    /// Also report transactions that ended with ≥300 as "answered".
    pub failed_transactions: bool,
    /// `db_flag`: rows in `db_table_acc` for answered transactions.
    pub db_flag: Option<u32>,
    /// `db_missed_flag`: rows in `db_table_missed_calls`.
    pub db_missed_flag: Option<u32>,
    pub db_url: String,
    pub db_table_acc: String,
    pub db_table_missed_calls: String,
    /// Write `time` as local time (SER's default is UTC).
    pub db_localtime: bool,
    /// Column names in the order of [`db::COLUMN_PARAMS`].
    pub db_columns: Vec<String>,
}

impl Default for AccCfg {
    fn default() -> Self {
        AccCfg {
            log_flag: None,
            log_missed_flag: None,
            log_level: 2,
            log_fmt: line::DEFAULT_FMT.to_string(),
            report_ack: true,
            report_cancels: false,
            early_media: false,
            failed_transactions: false,
            db_flag: None,
            db_missed_flag: None,
            db_url: db::DEFAULT_URL.to_string(),
            db_table_acc: "acc".to_string(),
            db_table_missed_calls: "missed_calls".to_string(),
            db_localtime: false,
            db_columns: db::default_columns(),
        }
    }
}

/// The settings the tm callbacks read (they are plain `fn`s). Set once in
/// `mod_init`, before the fork.
static CFG: OnceLock<AccCfg> = OnceLock::new();

/// The inserts of the flag-driven rows (`acc`, `missed_calls`), prepared
/// in `mod_init` when `db_flag` or `db_missed_flag` is set.
pub(crate) struct DbStmts {
    acc: crate::db::Stmt,
    missed: crate::db::Stmt,
}

static DB_STMTS: OnceLock<DbStmts> = OnceLock::new();

#[derive(Default)]
pub struct Acc {
    cfg: AccCfg,
}

const R: RouteMask = RouteMask::REQ_FAIL.or(RouteMask::BRANCH);

static FUNCS: &[FnDef] = &[
    FnDef::new("acc_log_request", 1, 1, R),
    FnDef::new("acc_db_request", 2, 2, R),
    FnDef::new("acc_rad_request", 1, 1, R),
    FnDef::new("acc_diam_request", 1, 1, R),
];

/// Parameters for back ends this server does not have.
const REFUSED: &[&str] = &[
    "radius_config",
    "radius_flag",
    "radius_missed_flag",
    "diameter_flag",
    "diameter_missed_flag",
    "diameter_client_host",
    "diameter_client_port",
];

/// Naming parameters of those back ends: harmless, accepted, unused.
const IGNORED: &[&str] = &["secret", "service_type"];

fn int_param(param: &str, value: &Literal) -> Result<i64, ParamError> {
    crate::route::export::param_int_or_quoted("acc", param, value)
}

fn bad_value(param: &str, reason: &str) -> ParamError {
    ParamError::BadValue {
        module: "acc",
        param: param.to_string(),
        reason: reason.to_string(),
    }
}

fn str_param(param: &str, value: &Literal) -> Result<String, ParamError> {
    match value {
        Literal::Str(s) | Literal::Ident(s) => Ok(s.clone()),
        _ => Err(ParamError::BadType {
            module: "acc",
            param: param.to_string(),
            expected: "a string",
        }),
    }
}

/// A table or column name: letters, digits and `_`, as the database
/// layer will accept it.
fn name_param(param: &str, value: &Literal) -> Result<String, ParamError> {
    let s = str_param(param, value)?;
    db::check_name(&s).map_err(|_| {
        bad_value(
            param,
            "a table or column name: letters, digits and _, not starting with a digit",
        )
    })?;
    Ok(s)
}

/// A flag number 0..31; SER treats 0 as "not set" for acc's flags.
fn flag_param(param: &str, value: &Literal) -> Result<Option<u32>, ParamError> {
    match int_param(param, value)? {
        0 => Ok(None),
        n @ 1..=31 => Ok(u32::try_from(n).ok()),
        _ => Err(bad_value(param, "a flag number is 1..31")),
    }
}

impl Module for Acc {
    fn name(&self) -> &'static str {
        "acc"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        let c = &mut self.cfg;
        match param {
            "log_flag" => c.log_flag = flag_param(param, value)?,
            "log_missed_flag" => c.log_missed_flag = flag_param(param, value)?,
            "log_level" => {
                let n = int_param(param, value)?;
                c.log_level = i32::try_from(n)
                    .ok()
                    .filter(|l| (-3..=4).contains(l))
                    .ok_or_else(|| bad_value(param, "SER levels are -3 (alert) .. 4 (debug)"))?;
            }
            "log_fmt" => {
                let s = str_param(param, value)?;
                if !line::valid_fmt(&s) {
                    return Err(bad_value(param, "letters from \"cdfimorstup01FTUSnDX\""));
                }
                c.log_fmt = s;
            }
            "report_ack" => c.report_ack = int_param(param, value)? != 0,
            "report_cancels" => c.report_cancels = int_param(param, value)? != 0,
            "early_media" => c.early_media = int_param(param, value)? != 0,
            "failed_transactions" => c.failed_transactions = int_param(param, value)? != 0,
            "db_flag" => c.db_flag = flag_param(param, value)?,
            "db_missed_flag" => c.db_missed_flag = flag_param(param, value)?,
            "db_localtime" => c.db_localtime = int_param(param, value)? != 0,
            "db_url" => {
                let s = str_param(param, value)?;
                crate::db::DbUrl::parse(&s).map_err(|e| {
                    bad_value(
                        param,
                        &format!("{e} (a database URL: mysql://, postgres:// or sqlite:///path)"),
                    )
                })?;
                c.db_url = s;
            }
            "db_table_acc" => c.db_table_acc = name_param(param, value)?,
            "db_table_missed_calls" => c.db_table_missed_calls = name_param(param, value)?,
            p if db::COLUMN_PARAMS.iter().any(|(n, _)| *n == p) => {
                let i = db::COLUMN_PARAMS
                    .iter()
                    .position(|(n, _)| *n == p)
                    .unwrap_or(0);
                let name = name_param(param, value)?;
                if let Some(slot) = c.db_columns.get_mut(i) {
                    *slot = name;
                }
            }
            p if REFUSED.contains(&p) => {
                return Err(bad_value(
                    p,
                    "only syslog and SQL accounting are available (no RADIUS or Diameter)",
                ))
            }
            p if IGNORED.contains(&p) || p.starts_with("acc_") && p.ends_with("_column") => {}
            p => return Err(super::no_params("acc", p)),
        }
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        match f.name {
            "acc_log_request" => {
                let comment = arg_str(f.name, args, 0)?.into_bytes();
                let cfg = self.cfg.clone();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    report::log_request(&cfg, ctx, &comment)
                }))
            }
            "acc_db_request" => {
                let comment = arg_str(f.name, args, 0)?.into_bytes();
                let table = arg_str(f.name, args, 1)?;
                let bad = |expected: &'static str, found: String| FixupError::BadArg {
                    func: f.name,
                    index: 1,
                    expected,
                    found,
                };
                db::set_url(&self.cfg.db_url)
                    .map_err(|e| bad("acc's db_url to be a database URL", e.to_string()))?;
                let stmt = db::insert_stmt(&table, &self.cfg.db_columns)
                    .map_err(|e| bad("a table named with letters, digits and _", e.to_string()))?;
                let cfg = self.cfg.clone();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    report::db_request(&cfg, ctx, &comment, &stmt, &table)
                }))
            }
            _ => Err(FixupError::Unavailable {
                func: f.name,
                reason: "only syslog and SQL accounting are available (no RADIUS or Diameter)",
            }),
        }
    }

    fn mod_init(
        &self,
        _rt: &'static crate::route::Runtime,
        _region: &'static shm::Region,
    ) -> Result<(), ModInitError> {
        if CFG.set(self.cfg.clone()).is_err() {
            return Err(ModInitError {
                module: "acc",
                reason: "initialised twice".to_string(),
            });
        }
        let c = &self.cfg;
        if c.db_flag.is_some() || c.db_missed_flag.is_some() {
            let err = |e: crate::db::DbError| ModInitError {
                module: "acc",
                reason: e.to_string(),
            };
            db::set_url(&c.db_url).map_err(err)?;
            let stmts = DbStmts {
                acc: db::insert_stmt(&c.db_table_acc, &c.db_columns).map_err(err)?,
                missed: db::insert_stmt(&c.db_table_missed_calls, &c.db_columns).map_err(err)?,
            };
            let _ = DB_STMTS.set(stmts);
        }
        if c.log_flag.is_some()
            || c.log_missed_flag.is_some()
            || c.db_flag.is_some()
            || c.db_missed_flag.is_some()
        {
            register_tmcb(
                CbEvent::Completed.bit() | CbEvent::OnFailure.bit() | CbEvent::E2eAckIn.bit(),
                report::on_tm_event,
            );
        }
        Ok(())
    }
}

/// The settings in force (after `mod_init`).
fn cfg() -> Option<&'static AccCfg> {
    CFG.get()
}

/// The flag-driven inserts (after `mod_init`, when db flags are set).
fn db_stmts() -> Option<&'static DbStmts> {
    DB_STMTS.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let mut a = Acc::default();
        assert_eq!(a.cfg.log_fmt, "miocfs");
        assert_eq!(a.cfg.log_level, 2);
        a.set_param("log_flag", &Literal::Int(1)).unwrap();
        a.set_param("log_missed_flag", &Literal::Str("3".into()))
            .unwrap();
        a.set_param("log_level", &Literal::Int(1)).unwrap();
        a.set_param("log_fmt", &Literal::Str("cdfimorstup01FTUSnDX".into()))
            .unwrap();
        a.set_param("failed_transactions", &Literal::Int(1))
            .unwrap();
        a.set_param("db_table_acc", &Literal::Str("acc".into()))
            .unwrap();
        a.set_param("acc_callid_column", &Literal::Str("x".into()))
            .unwrap();
        assert_eq!(a.cfg.log_flag, Some(1));
        assert_eq!(a.cfg.log_missed_flag, Some(3));
        assert_eq!(a.cfg.log_level, 1);
        assert!(a.cfg.failed_transactions);
        assert!(a.set_param("log_flag", &Literal::Int(32)).is_err());
        assert!(a.set_param("log_fmt", &Literal::Str("mz".into())).is_err());
        assert!(a.set_param("log_level", &Literal::Int(7)).is_err());
        assert!(a
            .set_param("db_url", &Literal::Str("nosuch://x".into()))
            .is_err());
        a.set_param("db_url", &Literal::Str("sqlite:///tmp/x.db".into()))
            .unwrap();
        a.set_param("db_flag", &Literal::Int(4)).unwrap();
        a.set_param("db_missed_flag", &Literal::Int(5)).unwrap();
        assert_eq!((a.cfg.db_flag, a.cfg.db_missed_flag), (Some(4), Some(5)));
        a.set_param("acc_sip_status_column", &Literal::Str("status".into()))
            .unwrap();
        assert_eq!(a.cfg.db_columns[8], "status");
        assert!(a
            .set_param("acc_time_column", &Literal::Str("time; drop".into()))
            .is_err());
        assert!(a
            .set_param("db_table_acc", &Literal::Str("acc x".into()))
            .is_err());
        assert!(a.set_param("radius_flag", &Literal::Int(1)).is_err());
        assert!(a.set_param("bogus", &Literal::Int(1)).is_err());
    }
}
