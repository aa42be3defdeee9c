//! tm's module parameters, SER 0.8/0.9 and 2.x names together.
//!
//! Time units (DESIGN.md): integers below 1000 given to `fr_timer`,
//! `fr_inv_timer`, `wt_timer`, `delete_timer`, `unix_tx_timeout` are seconds
//! (0.9), 1000 and above milliseconds (2.x); `retr_timer1p1..3` are seconds;
//! `retr_timer1`, `retr_timer2` milliseconds.

use crate::cfg::ast::Literal;
use crate::route::export::ParamError;
use crate::tm::fsm::TimerCfg;

#[derive(Debug, Clone)]
pub struct TmParams {
    pub timers: TimerCfg,
    pub ruri_matching: bool,
    pub via1_matching: bool,
    /// AVP names holding per-transaction FR timers (seconds).
    pub fr_timer_avp: String,
    pub fr_inv_timer_avp: String,
    pub uac_from: String,
    pub unix_tx_timeout_ms: u32,
    /// `tw_append` definitions, as written (`name:item;item...`).
    pub tw_append: Vec<String>,
    /// 2.x `auto_inv_100`: answer INVITEs with 100 Trying when relaying.
    pub auto_inv_100: bool,
    /// Names given in seconds, reported once at start-up.
    pub seconds_notes: Vec<String>,
}

impl Default for TmParams {
    fn default() -> Self {
        TmParams {
            timers: TimerCfg::default(),
            ruri_matching: true,
            via1_matching: true,
            fr_timer_avp: "callee_fr_timer".into(),
            fr_inv_timer_avp: "callee_fr_inv_timer".into(),
            uac_from: "\"UAC Account\" <sip:uac@dev.null:9>".into(),
            unix_tx_timeout_ms: 2000,
            tw_append: Vec::new(),
            auto_inv_100: true,
            seconds_notes: Vec::new(),
        }
    }
}

/// 2.x parameters accepted for compatibility whose behaviour is built in.
const ACCEPTED_2X: &[&str] = &[
    "max_inv_lifetime",
    "max_noninv_lifetime",
    "pass_provisional_replies",
    "aggregate_challenges",
    "unmatched_cancel",
    "default_code",
    "default_reason",
    "reparse_invite",
    "ac_extra_hdrs",
    "blst_503",
    "blst_503_def_timeout",
    "blst_503_min_timeout",
    "blst_503_max_timeout",
    "blst_methods_add",
    "blst_methods_lookup",
    "cancel_b_method",
    "reparse_on_dns_failover",
    "on_sl_reply",
    "contacts_avp",
    "fr_timer_next",
    "tm_blst_503",
];

fn int(param: &str, v: &Literal) -> Result<i64, ParamError> {
    crate::route::export::param_int("tm", param, v)
}

fn string(param: &str, v: &Literal) -> Result<String, ParamError> {
    match v {
        Literal::Str(s) => Ok(s.clone()),
        _ => Err(ParamError::BadType {
            module: "tm",
            param: param.into(),
            expected: "a string",
        }),
    }
}

fn positive(param: &str, n: i64) -> Result<u32, ParamError> {
    u32::try_from(n)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ParamError::BadValue {
            module: "tm",
            param: param.into(),
            reason: format!("{n} is not a positive time"),
        })
}

impl TmParams {
    /// A 0.9-or-2.x time: below 1000 it is seconds.
    fn sec_or_ms(&mut self, param: &str, v: &Literal) -> Result<u32, ParamError> {
        let n = positive(param, int(param, v)?)?;
        if n < 1000 {
            self.seconds_notes
                .push(format!("{param}={n} taken as seconds"));
            Ok(n * 1000)
        } else {
            Ok(n)
        }
    }

    pub fn set(&mut self, param: &str, v: &Literal) -> Result<(), ParamError> {
        match param {
            "fr_timer" => self.timers.fr = self.sec_or_ms(param, v)?,
            "fr_inv_timer" => self.timers.fr_inv = self.sec_or_ms(param, v)?,
            "wt_timer" => self.timers.wt = self.sec_or_ms(param, v)?,
            "delete_timer" => self.timers.delete = self.sec_or_ms(param, v)?,
            "unix_tx_timeout" => self.unix_tx_timeout_ms = self.sec_or_ms(param, v)?,
            "retr_timer1p1" => self.timers.retr[0] = positive(param, int(param, v)?)? * 1000,
            "retr_timer1p2" => self.timers.retr[1] = positive(param, int(param, v)?)? * 1000,
            "retr_timer1p3" => self.timers.retr[2] = positive(param, int(param, v)?)? * 1000,
            "retr_timer1" => {
                let t1 = positive(param, int(param, v)?)?;
                self.timers.retr = [t1, t1.saturating_mul(2), t1.saturating_mul(4)];
            }
            "retr_timer2" => self.timers.t2 = positive(param, int(param, v)?)?,
            "noisy_ctimer" => self.timers.noisy_ctimer = int(param, v)? != 0,
            "restart_fr_on_each_reply" => {
                self.timers.restart_fr_on_each_reply = int(param, v)? != 0
            }
            "ruri_matching" => self.ruri_matching = int(param, v)? != 0,
            "via1_matching" => self.via1_matching = int(param, v)? != 0,
            "auto_inv_100" => self.auto_inv_100 = int(param, v)? != 0,
            "fr_timer_avp" => self.fr_timer_avp = string(param, v)?,
            "fr_inv_timer_avp" => self.fr_inv_timer_avp = string(param, v)?,
            "uac_from" => self.uac_from = string(param, v)?,
            "tw_append" => self.tw_append.push(string(param, v)?),
            p if ACCEPTED_2X.contains(&p) => {}
            _ => {
                return Err(ParamError::Unknown {
                    module: "tm",
                    param: param.into(),
                })
            }
        }
        // The retransmission steps never exceed T2.
        let t2 = self.timers.t2;
        for r in &mut self.timers.retr {
            *r = (*r).min(t2);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_below_1000_ms_above() {
        let mut p = TmParams::default();
        p.set("fr_timer", &Literal::Int(10)).unwrap();
        p.set("fr_inv_timer", &Literal::Int(30000)).unwrap();
        assert_eq!(p.timers.fr, 10_000);
        assert_eq!(p.timers.fr_inv, 30_000);
        assert_eq!(p.seconds_notes.len(), 1);
        p.set("retr_timer1p1", &Literal::Int(1)).unwrap();
        assert_eq!(p.timers.retr[0], 1000);
        p.set("retr_timer1", &Literal::Int(250)).unwrap();
        assert_eq!(p.timers.retr, [250, 500, 1000]);
        assert!(p.set("fr_timer", &Literal::Str("x".into())).is_err());
        assert!(p.set("fr_timer", &Literal::Int(0)).is_err());
        assert!(p.set("no_such", &Literal::Int(1)).is_err());
        p.set("tw_append", &Literal::Str("a:hdr[X]".into()))
            .unwrap();
        p.set("tw_append", &Literal::Str("b:msg[body]".into()))
            .unwrap();
        assert_eq!(p.tw_append.len(), 2);
    }
}
