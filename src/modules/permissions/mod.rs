//! permissions — SER 0.9's call-routing and registration permissions
//! from rule files, and `allow_trusted` against the `trusted` table.
//!
//! `allow_routing()` checks (From URI, Request-URI) against
//! `permissions.allow`, then `permissions.deny`, in the config file's
//! directory: a match in the allow file allows, else one in the deny file
//! denies, else the call is allowed. `allow_routing("name")` uses
//! `name.allow`/`name.deny`, `allow_routing("a", "d")` the two files
//! given. With `check_all_branches` (default 1) an allowed request is
//! allowed only if no branch of its destination set is denied.
//! `allow_register("name")` checks (To URI, each Contact) the same way:
//! one denied Contact denies the REGISTER.
//!
//! Files are read when the config loads: a missing file is an empty rule
//! set (logged), a malformed line or a bad regular expression refuses the
//! config with file:line.

mod rules;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use crate::cfg::ast::Literal;
use crate::db::{DbUrl, Stmt, Value};
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;
use crate::sip::{parse_contacts, parse_uri, HdrKind};

pub use rules::{RuleError, RuleSet};

const NAME: &str = "permissions";

static FUNCS: &[FnDef] = &[
    FnDef::new("allow_routing", 0, 2, RouteMask::REQ_FAIL),
    FnDef::new("allow_register", 1, 2, RouteMask::REQ_FAIL),
    FnDef::new("allow_trusted", 0, 0, RouteMask::REQ_FAIL),
];

pub struct Permissions {
    default_allow_file: String,
    default_deny_file: String,
    check_all_branches: bool,
    allow_suffix: String,
    deny_suffix: String,
    db_url: Option<DbUrl>,
    trusted_table: String,
    source_col: String,
    proto_col: String,
    from_col: String,
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions {
            default_allow_file: "permissions.allow".into(),
            default_deny_file: "permissions.deny".into(),
            check_all_branches: true,
            allow_suffix: ".allow".into(),
            deny_suffix: ".deny".into(),
            db_url: None,
            trusted_table: "trusted".into(),
            source_col: "src_ip".into(),
            proto_col: "proto".into(),
            from_col: "from_pattern".into(),
        }
    }
}

/// The allow and deny rules one call uses.
#[derive(Debug, Clone, Default)]
pub struct Pair {
    pub allow: RuleSet,
    pub deny: RuleSet,
}

/// What a check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Neither file matched: allowed, as SER's default.
    NoRule,
}

impl Pair {
    /// Allow file first, then deny file.
    pub fn check(&self, left: &str, right: &str) -> Verdict {
        if self.allow.matches(left, right) {
            Verdict::Allow
        } else if self.deny.matches(left, right) {
            Verdict::Deny
        } else {
            Verdict::NoRule
        }
    }

    fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

fn load_err(func: &'static str, e: RuleError) -> FixupError {
    FixupError::BadFile {
        func,
        reason: e.to_string(),
    }
}

/// Reads one rule file (missing = empty, logged as SER did).
fn load_file(func: &'static str, path: PathBuf) -> Result<RuleSet, FixupError> {
    match rules::load(&path).map_err(|e| load_err(func, e))? {
        Some(r) => {
            log::info!(
                "permissions: {} parsed ({} rules)",
                path.display(),
                r.rules.len()
            );
            Ok(r)
        }
        None => {
            log::warn!(
                "permissions: {} not found => empty rule set",
                path.display()
            );
            Ok(RuleSet::default())
        }
    }
}

/// The plain `sip:user@host` (or `sip:host`) form SER matched Request-URIs
/// and Contacts by.
pub fn plain_uri(uri: &[u8]) -> Option<String> {
    let u = parse_uri(uri).ok()?;
    let host = String::from_utf8_lossy(u.host.get(uri));
    Some(match u.user {
        Some(user) => format!("sip:{}@{host}", String::from_utf8_lossy(user.get(uri))),
        None => format!("sip:{host}"),
    })
}

/// `allow_routing`: (From URI, Request-URI) and, with
/// `check_all_branches`, each branch.
fn check_routing(ctx: &MsgCtx<'_>, pair: &Pair, all_branches: bool) -> i32 {
    if pair.is_empty() {
        return 1;
    }
    let buf = ctx.msg.buf();
    let Ok(from) = ctx.msg.from() else {
        return -1;
    };
    let from = String::from_utf8_lossy(from.uri.get(buf)).into_owned();
    let Some(ruri) = plain_uri(ctx.ruri()) else {
        return -1;
    };
    match pair.check(&from, &ruri) {
        Verdict::Deny => return -1,
        Verdict::NoRule if !all_branches => return 1,
        Verdict::Allow if !all_branches => return 1,
        _ => {}
    }
    for b in &ctx.dset {
        let Some(uri) = plain_uri(&b.uri) else {
            return -1;
        };
        if pair.check(&from, &uri) == Verdict::Deny {
            log::info!("permissions: a deny rule matched a branch ({uri}) => routing denied");
            return -1;
        }
    }
    1
}

/// `allow_register`: (To URI, each Contact). A REGISTER without
/// Contact, or with `*`, changes nothing worth refusing.
fn check_register(ctx: &MsgCtx<'_>, pair: &Pair) -> i32 {
    if pair.is_empty() {
        return 1;
    }
    let buf = ctx.msg.buf();
    let Ok(to) = ctx.msg.to() else {
        return -1;
    };
    let to = String::from_utf8_lossy(to.uri.get(buf)).into_owned();
    for h in ctx.msg.headers_of(HdrKind::Contact) {
        let Ok(list) = parse_contacts(buf, h.value) else {
            return -1;
        };
        for c in list.iter().filter(|c| !c.star) {
            let Some(contact) = plain_uri(c.addr.uri.get(buf)) else {
                return -1;
            };
            if pair.check(&to, &contact) == Verdict::Deny {
                return -1;
            }
        }
    }
    1
}

impl Permissions {
    fn pair(
        &self,
        f: &'static str,
        env: &FixupEnv<'_>,
        allow: &str,
        deny: &str,
    ) -> Result<Arc<Pair>, FixupError> {
        Ok(Arc::new(Pair {
            allow: load_file(f, env.cfg_relative(allow))?,
            deny: load_file(f, env.cfg_relative(deny))?,
        }))
    }

    fn files(
        &self,
        f: &FnDef,
        args: &[Literal],
        env: &FixupEnv<'_>,
    ) -> Result<Arc<Pair>, FixupError> {
        match args.len() {
            0 => self.pair(
                f.name,
                env,
                &self.default_allow_file,
                &self.default_deny_file,
            ),
            1 => {
                let base = arg_str(f.name, args, 0)?;
                self.pair(
                    f.name,
                    env,
                    &format!("{base}{}", self.allow_suffix),
                    &format!("{base}{}", self.deny_suffix),
                )
            }
            _ => self.pair(
                f.name,
                env,
                &arg_str(f.name, args, 0)?,
                &arg_str(f.name, args, 1)?,
            ),
        }
    }

    fn trusted(&self) -> Result<BoxedFn, FixupError> {
        let Some(url) = self.db_url.clone() else {
            return Err(FixupError::Unavailable {
                func: "allow_trusted",
                reason: "it reads the trusted table: set permissions' db_url",
            });
        };
        let stmt = Stmt::select(&self.trusted_table, &[&self.proto_col, &self.from_col])
            .where_eq(&[&self.source_col])
            .build()
            .map_err(|e| FixupError::BadArg {
                func: "allow_trusted",
                index: 0,
                expected: "table and columns named with letters, digits and _",
                found: e.to_string(),
            })?;
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let src = ctx.src.ip().to_string();
            let rows =
                crate::modules::db_conn::with_db(&url, |db| db.query(&stmt, &[Value::Str(src)]));
            let rows = match rows {
                Ok(r) => r,
                Err(e) => {
                    crate::warn_limited!("permissions: allow_trusted: {e}");
                    return -1;
                }
            };
            let proto = match ctx.rcv.proto() {
                crate::net::Proto::Udp => "udp",
                crate::net::Proto::Tcp => "tcp",
                crate::net::Proto::Tls => "tls",
            };
            let from = match ctx.msg.from() {
                Ok(f) => String::from_utf8_lossy(f.uri.get(ctx.msg.buf())).into_owned(),
                Err(_) => return -1,
            };
            let ok = rows.iter().any(|row| {
                let p = row.opt_str(0).ok().flatten().unwrap_or("");
                let pat = row.opt_str(1).ok().flatten().unwrap_or("");
                trusted_row_matches(p, pat, proto, &from)
            });
            if ok {
                1
            } else {
                -1
            }
        }))
    }
}

/// One `trusted` row: its proto is `any` or the message's, and its
/// `from_pattern` (a regular expression) matches the From URI.
pub fn trusted_row_matches(row_proto: &str, pattern: &str, proto: &str, from: &str) -> bool {
    if !(row_proto.eq_ignore_ascii_case("any") || row_proto.eq_ignore_ascii_case(proto)) {
        return false;
    }
    match regex::Regex::new(pattern) {
        Ok(re) => re.is_match(from),
        Err(_) => {
            crate::warn_limited!("permissions: bad from_pattern {pattern:?} in the trusted table");
            false
        }
    }
}

impl Module for Permissions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        let text = || super::str_param(NAME, param, value);
        match param {
            "default_allow_file" => self.default_allow_file = text()?,
            "default_deny_file" => self.default_deny_file = text()?,
            "allow_suffix" => self.allow_suffix = text()?,
            "deny_suffix" => self.deny_suffix = text()?,
            "check_all_branches" => {
                self.check_all_branches = crate::route::export::param_int(NAME, param, value)? != 0
            }
            "db_url" => self.db_url = Some(super::db_conn::parse_param(NAME, param, value)?),
            "db_mode" => match crate::route::export::param_int(NAME, param, value)? {
                0 => {}
                n => {
                    return Err(ParamError::BadValue {
                        module: NAME,
                        param: param.into(),
                        reason: format!(
                            "{n}: only 0 (query the trusted table for each request) is \
                             supported; the cached mode 1 is not"
                        ),
                    })
                }
            },
            "trusted_table" => self.trusted_table = text()?,
            "source_col" => self.source_col = text()?,
            "proto_col" => self.proto_col = text()?,
            "from_col" => self.from_col = text()?,
            _ => return Err(super::no_params(NAME, param)),
        }
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        match f.name {
            "allow_routing" => {
                let pair = self.files(f, args, env)?;
                let all = self.check_all_branches;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    check_routing(ctx, &pair, all)
                }))
            }
            "allow_register" => {
                let pair = self.files(f, args, env)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    check_register(ctx, &pair)
                }))
            }
            _ => self.trusted(),
        }
    }
}
