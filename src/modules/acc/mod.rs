//! acc — transaction accounting to syslog (stderr with `-E`), SER 0.9.
//!
//! Flagged transactions are reported when their final reply goes
//! upstream (`log_flag`: answered; `log_missed_flag`: a negative INVITE
//! outcome, once); `acc_log_request` reports the current request at once.
//! Lines are built by [`line::format`] and written at `log_level` through
//! the same path as the script's `log()`, so they show under the same
//! `debug` rule SER applies.
//!
//! Only the syslog back end exists. The parameters that would send
//! records to a database, RADIUS or Diameter are refused when the config
//! loads — accounting that silently goes nowhere is worse than a clear
//! error — while pure naming parameters (tables, columns) are accepted
//! and have no effect.

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
        }
    }
}

/// The settings the tm callbacks read (they are plain `fn`s). Set once in
/// `mod_init`, before the fork.
static CFG: OnceLock<AccCfg> = OnceLock::new();

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
    "db_url",
    "db_flag",
    "db_missed_flag",
    "radius_config",
    "radius_flag",
    "radius_missed_flag",
    "diameter_flag",
    "diameter_missed_flag",
    "diameter_client_host",
    "diameter_client_port",
];

/// Naming parameters of those back ends: harmless, accepted, unused.
const IGNORED: &[&str] = &[
    "secret",
    "service_type",
    "db_table_acc",
    "db_table_missed_calls",
    "db_localtime",
];

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
                let (Literal::Str(s) | Literal::Ident(s)) = value else {
                    return Err(ParamError::BadType {
                        module: "acc",
                        param: param.to_string(),
                        expected: "a string",
                    });
                };
                if !line::valid_fmt(s) {
                    return Err(bad_value(param, "letters from \"cdfimorstup01FTUSnDX\""));
                }
                c.log_fmt = s.clone();
            }
            "report_ack" => c.report_ack = int_param(param, value)? != 0,
            "report_cancels" => c.report_cancels = int_param(param, value)? != 0,
            "early_media" => c.early_media = int_param(param, value)? != 0,
            "failed_transactions" => c.failed_transactions = int_param(param, value)? != 0,
            p if REFUSED.contains(&p) => {
                return Err(bad_value(
                    p,
                    "only syslog accounting is available (no database, RADIUS or Diameter)",
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
            _ => Err(FixupError::Unavailable {
                func: f.name,
                reason: "only syslog accounting is available (no database, RADIUS or Diameter)",
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
        if self.cfg.log_flag.is_some() || self.cfg.log_missed_flag.is_some() {
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
            .set_param("db_url", &Literal::Str("mysql://x".into()))
            .is_err());
        assert!(a.set_param("bogus", &Literal::Int(1)).is_err());
    }
}
