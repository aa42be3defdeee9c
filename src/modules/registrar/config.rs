//! registrar's module parameters (SER 0.9 names and defaults).

use crate::cfg::ast::Literal;
use crate::modules::usrloc::Q_UNSPECIFIED;
use crate::route::ctx::AvpName;
use crate::route::export::ParamError;

const MODULE: &str = "registrar";

/// Default `max_contacts`: phones, soft clients and a few forks per user.
pub const DEFAULT_MAX_CONTACTS: u32 = 10;

#[derive(Debug, Clone)]
pub struct RegCfg {
    /// Seconds, when neither the contact nor the request gives one.
    pub default_expires: u32,
    /// Shorter non-zero expiries are raised to this (SER), 0 = no floor.
    pub min_expires: u32,
    /// Longer expiries are cut to this; 0 = no limit.
    pub max_expires: u32,
    /// q × 1000 for contacts without `q`, or [`Q_UNSPECIFIED`].
    pub default_q: i32,
    /// `lookup` turns the other contacts into branches.
    pub append_branches: bool,
    pub case_sensitive: bool,
    /// `lookup` orders newest first instead of by q.
    pub desc_time_order: bool,
    /// Message flag marking a request from behind NAT (SER default 4).
    pub nat_flag: u32,
    /// Overrides usrloc's `use_domain` when set here.
    pub use_domain: Option<bool>,
    /// Live contacts per AOR; 0 = unlimited. A REGISTER that would add
    /// one more is refused `503` (refreshes and removals still pass).
    /// Default [`DEFAULT_MAX_CONTACTS`], not SER's unlimited: without a
    /// limit anyone may grow an AOR until its 200 no longer fits a
    /// datagram, and its owner's refreshes go unanswered.
    pub max_contacts: u32,
    /// Seconds put in `Retry-After` of the 503 for too many contacts; 0 = none.
    pub retry_after: u32,
    /// AVP holding the `received` URI to store (nathelper fills it).
    pub received_avp: Option<AvpName>,
    /// Name of the Contact parameter that would carry `received`; accepted
    /// for config compatibility.
    pub received_param: String,
    /// Stripped from the AOR's host with `use_domain`.
    pub realm_prefix: String,
}

impl Default for RegCfg {
    fn default() -> Self {
        RegCfg {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 0,
            default_q: Q_UNSPECIFIED,
            append_branches: true,
            case_sensitive: false,
            desc_time_order: false,
            nat_flag: 4,
            use_domain: None,
            max_contacts: DEFAULT_MAX_CONTACTS,
            retry_after: 0,
            received_avp: None,
            received_param: "received".into(),
            realm_prefix: String::new(),
        }
    }
}

fn int(
    param: &str,
    v: &Literal,
    lo: i64,
    hi: i64,
    expected: &'static str,
) -> Result<i64, ParamError> {
    crate::route::export::param_int(MODULE, param, v)
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| ParamError::BadType {
            module: MODULE,
            param: param.into(),
            expected,
        })
}

fn string(param: &str, v: &Literal) -> Result<String, ParamError> {
    match v {
        Literal::Str(s) | Literal::Ident(s) => Ok(s.clone()),
        _ => Err(ParamError::BadType {
            module: MODULE,
            param: param.into(),
            expected: "a string",
        }),
    }
}

const SECS: &str = "a number of seconds";
const U32: i64 = u32::MAX as i64;

impl RegCfg {
    pub fn set(&mut self, param: &str, v: &Literal) -> Result<(), ParamError> {
        match param {
            "default_expires" => self.default_expires = int(param, v, 0, U32, SECS)? as u32,
            "min_expires" => self.min_expires = int(param, v, 0, U32, SECS)? as u32,
            "max_expires" => self.max_expires = int(param, v, 0, U32, SECS)? as u32,
            "default_q" => {
                self.default_q = int(param, v, -1, 1000, "q × 1000 (0..1000) or -1")? as i32
            }
            "append_branches" => self.append_branches = int(param, v, 0, 1, "0 or 1")? == 1,
            "case_sensitive" => self.case_sensitive = int(param, v, 0, 1, "0 or 1")? == 1,
            "desc_time_order" => self.desc_time_order = int(param, v, 0, 1, "0 or 1")? == 1,
            "use_domain" => self.use_domain = Some(int(param, v, 0, 1, "0 or 1")? == 1),
            "nat_flag" => self.nat_flag = int(param, v, 0, 31, "a flag number 0..31")? as u32,
            "max_contacts" => self.max_contacts = int(param, v, 0, U32, "a count")? as u32,
            "retry_after" => self.retry_after = int(param, v, 0, U32, SECS)? as u32,
            "received_avp" => {
                let s = string(param, v)?;
                self.received_avp = (!s.trim().is_empty()).then(|| AvpName::parse(&s));
            }
            "received_param" => self.received_param = string(param, v)?,
            "realm_prefix" => self.realm_prefix = string(param, v)?,
            _ => {
                return Err(ParamError::Unknown {
                    module: MODULE,
                    param: param.into(),
                })
            }
        }
        Ok(())
    }

    /// The expiry of one contact in seconds: its `expires` parameter, else
    /// the request's Expires header, else `default_expires`; a non-zero
    /// value is raised to `min_expires` and cut to `max_expires`
    /// (RFC 3261 §10.3 step 6, SER 0.9 for the floor).
    pub fn expiry(&self, param: Option<u32>, header: Option<u32>) -> u32 {
        let e = param.or(header).unwrap_or(self.default_expires);
        if e == 0 {
            return 0;
        }
        let e = e.max(self.min_expires);
        if self.max_expires > 0 {
            e.min(self.max_expires)
        } else {
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_precedence_and_bounds() {
        let c = RegCfg::default();
        assert_eq!(c.expiry(Some(120), Some(300)), 120);
        assert_eq!(c.expiry(None, Some(300)), 300);
        assert_eq!(c.expiry(None, None), 3600);
        assert_eq!(c.expiry(Some(0), Some(300)), 0);
        assert_eq!(c.expiry(None, Some(0)), 0);
        assert_eq!(c.expiry(Some(10), None), 60);
        assert_eq!(c.expiry(Some(100_000), None), 100_000);
        let c = RegCfg {
            max_expires: 600,
            min_expires: 0,
            ..RegCfg::default()
        };
        assert_eq!(c.expiry(Some(100_000), None), 600);
        assert_eq!(c.expiry(Some(1), None), 1);
    }

    #[test]
    fn params_are_typed() {
        let mut c = RegCfg::default();
        assert!(c.set("max_expires", &Literal::Int(7200)).is_ok());
        assert_eq!(c.max_expires, 7200);
        assert!(c.set("max_expires", &Literal::Str("7200".into())).is_err());
        assert!(c.set("default_q", &Literal::Int(1001)).is_err());
        assert!(c.set("received_avp", &Literal::Str("i:42".into())).is_ok());
        assert_eq!(c.received_avp, Some(AvpName::Int(42)));
        assert!(matches!(
            c.set("no_such", &Literal::Int(1)),
            Err(ParamError::Unknown { .. })
        ));
    }
}
