//! tm's module parameters, SER 0.8/0.9 and 2.x names together.
//!
//! Time units (DESIGN.md): integers below 1000 given to `fr_timer`,
//! `fr_inv_timer`, `wt_timer`, `delete_timer`, `unix_tx_timeout` are seconds
//! (0.9), 1000 and above milliseconds (2.x); `retr_timer1p1..3` are seconds;
//! `retr_timer1`, `retr_timer2` milliseconds.

use crate::cfg::ast::Literal;
use crate::route::export::ParamError;
use crate::tm::fsm::{TimerCfg, UnrepliedCancel};

#[derive(Debug, Clone)]
pub struct TmParams {
    pub timers: TimerCfg,
    /// `unmatched_cancel` (later 2.x): a CANCEL whose INVITE is not here.
    pub unmatched_cancel: UnmatchedCancel,
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
    /// 2.1 `aggregate_challenges`: a picked 401/407 goes upstream with the
    /// challenges of every other 401/407 branch added (RFC 3261 16.7).
    pub aggregate_challenges: bool,
    /// Names given in seconds, reported once at start-up.
    pub seconds_notes: Vec<String>,
    /// 2.1 `ac_extra_hdrs`: header fields of the sent INVITE whose name
    /// starts with this (any case) are copied into our CANCELs and
    /// negative ACKs; empty copies none.
    pub ac_extra_hdrs: String,
    /// SER 2.1's `blst_*`: what feeds and consults the destination
    /// blacklist (`tm::blst`).
    pub blst: BlstParams,
}

/// The `blst_*` parameters. They act only when the core's
/// `use_dst_blacklist=yes` made the table; otherwise they are still
/// type-checked (SER 2.1 accepts them either way) and a start-up line says
/// they have no effect. Refusing them would reject configs SER loads, and
/// flipping one core switch should be all it takes to turn the feature on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlstParams {
    /// `blst_503`: a 503 blacklists its source.
    pub on_503: bool,
    /// `blst_503_def_timeout`: seconds for a 503 without Retry-After; 0 =
    /// such a 503 does not blacklist (RFC behaviour, SER's default).
    pub def_503_s: u32,
    /// `blst_503_min_timeout`, `blst_503_max_timeout`: Retry-After is
    /// clamped to these (the maximum wins if they cross).
    pub min_503_s: u32,
    pub max_503_s: u32,
    /// `blst_methods_add`: methods whose unanswered branches blacklist the
    /// next hop (SER 2.1's method bits, INVITE=1 … OTHER=256; see `blst`).
    pub methods_add: u32,
    /// `blst_methods_lookup`: methods not sent to a blacklisted next hop.
    pub methods_lookup: u32,
    /// Some `blst_*` parameter was set (for the start-up note).
    pub given: bool,
}

impl Default for BlstParams {
    fn default() -> Self {
        BlstParams {
            on_503: false,
            def_503_s: 0,
            min_503_s: 0,
            max_503_s: 3600,
            methods_add: 1,
            // Every method but BYE (8): a BYE is tried whatever happened.
            methods_lookup: 4_294_967_287,
            given: false,
        }
    }
}

/// What `t_relay` does with a CANCEL that matches no INVITE transaction
/// (the INVITE went elsewhere, or its transaction is long gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnmatchedCancel {
    /// 0: relayed like any request, in a transaction of its own (SER 0.9's
    /// t_relay, ser-compat-spec 2.2.4).
    #[default]
    Stateful = 0,
    /// 1: forwarded statelessly, no transaction kept.
    Stateless = 1,
    /// 2: dropped; t_relay returns 0 and the script ends.
    Drop = 2,
}

impl Default for TmParams {
    fn default() -> Self {
        TmParams {
            unmatched_cancel: UnmatchedCancel::Stateful,
            timers: TimerCfg::default(),
            ruri_matching: true,
            via1_matching: true,
            fr_timer_avp: "callee_fr_timer".into(),
            fr_inv_timer_avp: "callee_fr_inv_timer".into(),
            uac_from: "\"UAC Account\" <sip:uac@dev.null:9>".into(),
            unix_tx_timeout_ms: 2000,
            tw_append: Vec::new(),
            auto_inv_100: true,
            aggregate_challenges: true,
            seconds_notes: Vec::new(),
            ac_extra_hdrs: String::new(),
            blst: BlstParams::default(),
        }
    }
}

/// Why `reparse_invite=0` is refused.
const REPARSE_INVITE_ONLY: &str = "ser always builds its CANCELs and negative ACKs from the \
INVITE each branch sent (same Via branch, R-URI and Route set as that INVITE, as RFC 3261 \
9.1 and 17.1.1.3 require); building them from the received request is not available, so \
only reparse_invite=1 is accepted";

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

/// A count of seconds or a method bitmap: 0..=u32::MAX.
fn unsigned(param: &str, v: &Literal) -> Result<u32, ParamError> {
    let n = int(param, v)?;
    u32::try_from(n).map_err(|_| ParamError::BadValue {
        module: "tm",
        param: param.into(),
        reason: format!("{n} is not in 0..{}", u32::MAX),
    })
}

impl TmParams {
    /// A maximum lifetime: 0 is none, anything else a [`Self::sec_or_ms`].
    fn lifetime(&mut self, param: &str, v: &Literal) -> Result<u32, ParamError> {
        if int(param, v)? == 0 {
            return Ok(0);
        }
        self.sec_or_ms(param, v)
    }

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
            "max_inv_lifetime" => self.timers.max_inv_lifetime = self.lifetime(param, v)?,
            "max_noninv_lifetime" => self.timers.max_noninv_lifetime = self.lifetime(param, v)?,
            "restart_fr_on_each_reply" => {
                self.timers.restart_fr_on_each_reply = int(param, v)? != 0
            }
            "ruri_matching" => self.ruri_matching = int(param, v)? != 0,
            "via1_matching" => self.via1_matching = int(param, v)? != 0,
            "auto_inv_100" => self.auto_inv_100 = int(param, v)? != 0,
            "aggregate_challenges" => self.aggregate_challenges = int(param, v)? != 0,
            "fr_timer_avp" => self.fr_timer_avp = string(param, v)?,
            "fr_inv_timer_avp" => self.fr_inv_timer_avp = string(param, v)?,
            "uac_from" => self.uac_from = string(param, v)?,
            "tw_append" => self.tw_append.push(string(param, v)?),
            "cancel_b_method" => {
                let n = int(param, v)?;
                self.timers.cancel_b_method =
                    UnrepliedCancel::from_int(n).ok_or_else(|| ParamError::BadValue {
                        module: "tm",
                        param: param.into(),
                        reason: format!("{n} is not one of 0, 1, 2"),
                    })?;
            }
            "ac_extra_hdrs" => self.ac_extra_hdrs = string(param, v)?,
            "unmatched_cancel" => {
                self.unmatched_cancel = match int(param, v)? {
                    0 => UnmatchedCancel::Stateful,
                    1 => UnmatchedCancel::Stateless,
                    2 => UnmatchedCancel::Drop,
                    n => {
                        return Err(ParamError::BadValue {
                            module: "tm",
                            param: param.into(),
                            reason: format!(
                                "{n} is not one of 0 (stateful), 1 (stateless), 2 (drop)"
                            ),
                        })
                    }
                }
            }
            "reparse_invite" => {
                if int(param, v)? != 1 {
                    return Err(ParamError::BadValue {
                        module: "tm",
                        param: param.into(),
                        reason: REPARSE_INVITE_ONLY.into(),
                    });
                }
            }
            "blst_503" => self.blst.on_503 = int(param, v)? != 0,
            "blst_503_def_timeout" => self.blst.def_503_s = unsigned(param, v)?,
            "blst_503_min_timeout" => self.blst.min_503_s = unsigned(param, v)?,
            "blst_503_max_timeout" => self.blst.max_503_s = unsigned(param, v)?,
            "blst_methods_add" => self.blst.methods_add = unsigned(param, v)?,
            "blst_methods_lookup" => self.blst.methods_lookup = unsigned(param, v)?,
            _ => {
                return Err(ParamError::Unknown {
                    module: "tm",
                    param: param.into(),
                })
            }
        }
        if param.starts_with("blst_") {
            self.blst.given = true;
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

    /// The parameters SER 2.1's tm document lists (tm-doc-ser-2.1.txt,
    /// "Parameters"), each with a value that is not SER's default.
    const DOC_2_1: &[(&str, Lit)] = &[
        ("fr_timer", Lit::I(5000)),
        ("fr_inv_timer", Lit::I(60000)),
        ("wt_timer", Lit::I(3000)),
        ("delete_timer", Lit::I(300)),
        ("retr_timer1", Lit::I(400)),
        ("retr_timer2", Lit::I(3000)),
        ("noisy_ctimer", Lit::I(1)),
        ("unix_tx_timeout", Lit::I(1000)),
        ("aggregate_challenges", Lit::I(1)),
        ("reparse_invite", Lit::I(0)),
        ("ac_extra_hdrs", Lit::S("X-Foo")),
        ("blst_503", Lit::I(1)),
        ("blst_503_def_timeout", Lit::I(30)),
        ("blst_503_min_timeout", Lit::I(5)),
        ("blst_503_max_timeout", Lit::I(60)),
        ("blst_methods_add", Lit::I(3)),
        ("blst_methods_lookup", Lit::I(1)),
        ("cancel_b_method", Lit::I(2)),
    ];

    /// Those ser honours, with where that is shown.
    const HONOURED: &[(&str, &str)] = &[
        (
            "fr_timer",
            "tm::silent_callee_gets_retransmissions_and_caller_gets_408_after_fr_timer",
        ),
        (
            "fr_inv_timer",
            "tm::after_180_fr_inv_timer_applies_and_noisy_ctimer_gives_408_and_cancel",
        ),
        (
            "wt_timer",
            "tm::sipp_5000_calls_at_300_cps_then_no_transaction_and_no_shm_left",
        ),
        // Cells are freed by reference count: there is no delete retry for
        // it to tune (ARCHITECTURE.md, tm).
        ("delete_timer", "by design"),
        (
            "retr_timer1",
            "tm::silent_callee_gets_retransmissions_and_caller_gets_408_after_fr_timer",
        ),
        ("retr_timer2", "tm::fsm tests (T2 cap)"),
        (
            "noisy_ctimer",
            "tm::after_180_fr_inv_timer_applies_and_noisy_ctimer_gives_408_and_cancel",
        ),
        ("unix_tx_timeout", "ctl_twrite"),
        (
            "aggregate_challenges",
            "tm_aggregate::a_401_and_a_407_reach_the_caller_as_one_401_with_both_challenges",
        ),
        (
            "cancel_b_method",
            "tm_cancel::cancel_b_method_0_answers_487_at_once_and_never_cancels_a_silent_callee",
        ),
        (
            "ac_extra_hdrs",
            "tm_cancel::ac_extra_hdrs_are_copied_into_cancel_and_negative_ack",
        ),
        (
            "blst_503",
            "tm_blacklist::a_503_with_retry_after_blacklists_the_callee_until_it_expires",
        ),
        ("blst_503_def_timeout", "tm::blst::tests::timeout_of_a_503"),
        ("blst_503_min_timeout", "tm::blst::tests::timeout_of_a_503"),
        (
            "blst_503_max_timeout",
            "tm_blacklist::a_503_with_retry_after_blacklists_the_callee_until_it_expires",
        ),
        (
            "blst_methods_add",
            "tm_blacklist::an_unanswered_invite_blacklists_its_next_hop",
        ),
        (
            "blst_methods_lookup",
            "tm_blacklist::a_503_with_retry_after_blacklists_the_callee_until_it_expires",
        ),
    ];

    /// Refused on purpose (not "yet"), with the reason.
    const BY_DESIGN: &[(&str, &str)] = &[("reparse_invite", "ser always builds")];

    #[derive(Clone, Copy)]
    enum Lit {
        I(i64),
        S(&'static str),
    }

    fn lit(l: Lit) -> Literal {
        match l {
            Lit::I(n) => Literal::Int(n),
            Lit::S(s) => Literal::Str(s.into()),
        }
    }

    #[test]
    fn every_2_1_parameter_is_honoured_or_refused() {
        for (name, value) in DOC_2_1 {
            let mut p = TmParams::default();
            let r = p.set(name, &lit(*value));
            if HONOURED.iter().any(|(n, _)| n == name) {
                assert!(r.is_ok(), "{name}: {r:?}");
            } else if let Some((_, why)) = BY_DESIGN.iter().find(|(n, _)| n == name) {
                let e = r.expect_err(name);
                assert!(e.to_string().contains(why), "{name}: {e}");
            } else {
                panic!("{name}: neither honoured (with its test) nor refused by design");
            }
        }
    }

    #[test]
    fn aggregate_challenges_is_on_by_default_and_type_checked() {
        let mut p = TmParams::default();
        assert!(p.aggregate_challenges, "2.1's default, RFC 3261 16.7");
        p.set("aggregate_challenges", &Literal::Int(0)).unwrap();
        assert!(!p.aggregate_challenges);
        p.set("aggregate_challenges", &Literal::Int(1)).unwrap();
        assert!(p.aggregate_challenges);
        assert!(p
            .set("aggregate_challenges", &Literal::Str("yes".into()))
            .is_err());
    }

    #[test]
    fn a_2_1_parameter_may_spell_out_what_ser_does() {
        let mut p = TmParams::default();
        for (name, v) in [
            ("reparse_invite", Literal::Int(1)),
            ("ac_extra_hdrs", Literal::Str(String::new())),
            ("blst_503", Literal::Int(0)),
            ("blst_503_max_timeout", Literal::Int(3600)),
        ] {
            assert!(p.set(name, &v).is_ok(), "{name}");
        }
        assert!(p.set("blst_503", &Literal::Str("x".into())).is_err());
        assert!(p.set("blst_503_min_timeout", &Literal::Int(-1)).is_err());
        assert!(p
            .set("blst_methods_lookup", &Literal::Int(1 << 32))
            .is_err());
        p.set("blst_methods_lookup", &Literal::Int(4_294_967_295))
            .unwrap();
        assert_eq!(p.blst.methods_lookup, u32::MAX);
        assert!(p.blst.given);
        // Type-checked all the same.
        assert!(p.set("ac_extra_hdrs", &Literal::Int(5)).is_err());
        // Names tm never had: unknown.
        let e = p.set("max_lifetime", &Literal::Int(180)).unwrap_err();
        assert!(matches!(e, ParamError::Unknown { .. }), "{e}");
    }

    #[test]
    fn lifetimes_take_ms_or_seconds_and_0_for_none() {
        let mut p = TmParams::default();
        assert_eq!(p.timers.max_inv_lifetime, 0, "no limit unless asked");
        p.set("max_inv_lifetime", &Literal::Int(180_000)).unwrap();
        p.set("max_noninv_lifetime", &Literal::Int(32)).unwrap();
        assert_eq!(p.timers.max_inv_lifetime, 180_000);
        assert_eq!(p.timers.max_noninv_lifetime, 32_000);
        p.set("max_inv_lifetime", &Literal::Int(0)).unwrap();
        assert_eq!(p.timers.max_inv_lifetime, 0);
        assert!(p.set("max_inv_lifetime", &Literal::Int(-1)).is_err());
        assert!(p
            .set("max_noninv_lifetime", &Literal::Str("1".into()))
            .is_err());
    }

    #[test]
    fn cancel_b_method_takes_0_1_2_only() {
        let mut p = TmParams::default();
        assert_eq!(p.timers.cancel_b_method, UnrepliedCancel::Fake487);
        p.set("cancel_b_method", &Literal::Int(2)).unwrap();
        assert_eq!(p.timers.cancel_b_method, UnrepliedCancel::Immediate);
        p.set("cancel_b_method", &Literal::Int(1)).unwrap();
        assert_eq!(p.timers.cancel_b_method, UnrepliedCancel::OnProvisional);
        for bad in [Literal::Int(3), Literal::Int(-1), Literal::Str("x".into())] {
            assert!(p.set("cancel_b_method", &bad).is_err(), "{bad:?}");
        }
        assert_eq!(p.timers.cancel_b_method, UnrepliedCancel::OnProvisional);
        p.set("ac_extra_hdrs", &Literal::Str("X-Foo-".into()))
            .unwrap();
        assert_eq!(p.ac_extra_hdrs, "X-Foo-");
        assert!(p.set("reparse_invite", &Literal::Int(1)).is_ok());
        let e = p.set("reparse_invite", &Literal::Int(0)).unwrap_err();
        assert!(e.to_string().contains("ser always builds"), "{e}");
    }
}
