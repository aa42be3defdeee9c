//! avpops — script access to the request's attribute-value pairs
//! (SER 0.9): `avp_write`, `avp_delete`, `avp_pushto`, `avp_check`,
//! `avp_copy`, `avp_print`. tm reads the AVPs it is told to
//! (`fr_timer_avp` ...). There is no database: the `avp_db_*` functions
//! are refused when the config loads, and the DB parameters are accepted
//! but have no effect (a 0.9 config that only sets them still loads).

pub mod eval;
pub mod spec;

use regex::bytes::Regex;

use crate::cfg::ast::Literal;
use crate::route::ctx::{AvpName, AvpValue};
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask,
};
use crate::route::uri_ops::{rewrite, UriEdit};
use crate::route::{Branch, MsgCtx};
use crate::sip::{parse_uri, HdrKind};

use spec::{Aliases, Dest, Op, Source, SpecError, UriPart, UriVar};

#[derive(Default)]
pub struct AvpOps {
    aliases: Aliases,
}

const R: RouteMask = RouteMask::REQ_FAIL.or(RouteMask::BRANCH);

static FUNCS: &[FnDef] = &[
    FnDef::new("avp_write", 2, 2, R),
    FnDef::new("avp_delete", 1, 1, R),
    FnDef::new("avp_pushto", 2, 2, R),
    FnDef::new("avp_check", 2, 2, R),
    FnDef::new("avp_copy", 2, 2, R),
    FnDef::new("avp_print", 0, 0, R),
    FnDef::new("avp_db_load", 2, 2, R),
    FnDef::new("avp_db_store", 2, 2, R),
    FnDef::new("avp_db_delete", 2, 2, R),
];

/// Parameters that only matter to the database functions.
const DB_PARAMS: &[&str] = &[
    "avp_url",
    "db_url",
    "avp_table",
    "use_domain",
    "uuid_column",
    "username_column",
    "domain_column",
    "attribute_column",
    "value_column",
    "type_column",
    "db_scheme",
];

fn bad(
    func: &'static str,
    index: usize,
    expected: &'static str,
) -> impl Fn(SpecError) -> FixupError {
    move |e| FixupError::BadArg {
        func,
        index,
        expected,
        found: e.to_string(),
    }
}

/// The URI a variable names, and the part wanted.
fn uri_value(ctx: &MsgCtx<'_>, var: UriVar, part: UriPart) -> Option<Vec<u8>> {
    let uri: Vec<u8> = match var {
        UriVar::Ruri => ctx.ruri().to_vec(),
        UriVar::From => ctx.msg.from().ok()?.uri.get(ctx.msg.buf()).to_vec(),
        UriVar::To => ctx.msg.to().ok()?.uri.get(ctx.msg.buf()).to_vec(),
    };
    match part {
        UriPart::Whole => Some(uri),
        UriPart::User => {
            let u = parse_uri(&uri).ok()?;
            Some(u.user?.get(&uri).to_vec())
        }
        UriPart::Host => {
            let u = parse_uri(&uri).ok()?;
            Some(u.host.get(&uri).to_vec())
        }
    }
}

/// A value source evaluated against the message; `None` when the message
/// does not have it (SER's functions then fail).
fn resolve(ctx: &MsgCtx<'_>, src: &Source) -> Option<AvpValue> {
    match src {
        Source::Const(v) => Some(v.clone()),
        Source::Uri(var, part) => uri_value(ctx, *var, *part).map(AvpValue::Str),
        Source::SrcIp => Some(AvpValue::Str(ctx.src.ip().to_string().into_bytes())),
        Source::DstIp => Some(AvpValue::Str(
            ctx.rcv.listen.addr.ip().to_string().into_bytes(),
        )),
        Source::Hdr(name) => {
            let kind = HdrKind::from_name(name);
            let h = ctx.msg.headers().iter().find(|h| {
                if kind != HdrKind::Other {
                    h.kind == kind
                } else {
                    h.name.get(ctx.msg.buf()).eq_ignore_ascii_case(name)
                }
            })?;
            Some(AvpValue::Str(ctx.msg.value(h).to_vec()))
        }
        Source::Avp(n) => ctx.avp(n).cloned(),
    }
}

/// `avp_pushto` into the R-URI: the first value rewrites it, further
/// values (with `/g`) become branches built the same way.
fn push_ruri(ctx: &mut MsgCtx<'_>, part: UriPart, vals: &[Vec<u8>]) -> i32 {
    let base = ctx.ruri().to_vec();
    for (i, v) in vals.iter().enumerate() {
        let edit = match part {
            UriPart::Whole => UriEdit::Set(v.clone()),
            UriPart::User => UriEdit::User(v.clone()),
            UriPart::Host => UriEdit::Host(v.clone()),
        };
        let Ok(uri) = rewrite(&base, &edit) else {
            return ctx.fail(crate::route::ScriptError::Uri);
        };
        if i == 0 {
            ctx.new_uri = Some(uri);
        } else if ctx.dset.len() + 1 < crate::route::ctx::MAX_BRANCHES {
            ctx.dset.push(Branch {
                uri,
                q: None,
                dst_uri: None,
            });
        } else {
            return ctx.fail(crate::route::ScriptError::Branches);
        }
    }
    1
}

fn push(ctx: &mut MsgCtx<'_>, dest: &Dest, vals: Vec<Vec<u8>>) -> i32 {
    if vals.is_empty() {
        return -1;
    }
    match dest {
        Dest::Ruri(part) => push_ruri(ctx, *part, &vals),
        Dest::ReqHdr(name) | Dest::ReplyHdr(name) => {
            let mut lines = Vec::new();
            for v in &vals {
                lines.extend_from_slice(name);
                lines.extend_from_slice(b": ");
                lines.extend_from_slice(v);
                lines.extend_from_slice(b"\r\n");
            }
            if matches!(dest, Dest::ReqHdr(_)) {
                let at = ctx.msg.headers_end();
                ctx.lumps.insert(at, &lines);
            } else {
                ctx.reply_hdrs.extend_from_slice(&lines);
            }
            1
        }
    }
}

fn show_name(n: &AvpName) -> String {
    match n {
        AvpName::Int(i) => format!("i:{i}"),
        AvpName::Str(s) => format!("s:{}", String::from_utf8_lossy(s)),
    }
}

impl Module for AvpOps {
    fn name(&self) -> &'static str {
        "avpops"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        if param == "avp_aliases" {
            let s = match value {
                Literal::Str(s) | Literal::Ident(s) => s.clone(),
                _ => {
                    return Err(ParamError::BadType {
                        module: "avpops",
                        param: param.to_string(),
                        expected: "a string",
                    })
                }
            };
            return spec::parse_aliases(&s, &mut self.aliases).map_err(|e| ParamError::BadValue {
                module: "avpops",
                param: param.to_string(),
                reason: e.to_string(),
            });
        }
        if DB_PARAMS.contains(&param) {
            log::warn!("avpops: no database support here; parameter {param} has no effect");
            return Ok(());
        }
        Err(super::no_params("avpops", param))
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let s = |i| arg_str(f.name, args, i);
        let al = &self.aliases;
        Ok(match f.name {
            "avp_write" => {
                let src = spec::parse_source(&s(0)?, al, false)
                    .map_err(bad(f.name, 1, "i:N, s:text, text or $ruri/$from/$to[/username|/domain], $src_ip, $dst_ip, $hdr[name]"))?;
                let name = spec::parse_name(&s(1)?, al).map_err(bad(f.name, 2, "an AVP name"))?;
                Box::new(move |ctx: &mut MsgCtx<'_>| match resolve(ctx, &src) {
                    Some(v) => {
                        ctx.avps.push((name.clone(), v));
                        1
                    }
                    None => -1,
                })
            }
            "avp_delete" => {
                let sel = spec::parse_selector(&s(0)?, "g", al).map_err(bad(
                    f.name,
                    1,
                    "an AVP name[/g]",
                ))?;
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if eval::delete(&mut ctx.avps, &sel) > 0 {
                        1
                    } else {
                        -1
                    }
                })
            }
            "avp_pushto" => {
                let dest = spec::parse_dest(&s(0)?).map_err(bad(
                    f.name,
                    1,
                    "$ruri[/username|/domain] or $Header[/request|/reply]",
                ))?;
                let sel = spec::parse_selector(&s(1)?, "g", al).map_err(bad(
                    f.name,
                    2,
                    "an AVP name[/g]",
                ))?;
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let vals: Vec<Vec<u8>> = eval::selected(&ctx.avps, &sel)
                        .into_iter()
                        .map(eval::text)
                        .collect();
                    push(ctx, &dest, vals)
                })
            }
            "avp_check" => {
                let name = spec::parse_name(&s(0)?, al).map_err(bad(f.name, 1, "an AVP name"))?;
                let chk =
                    spec::parse_check(&s(1)?, al).map_err(bad(f.name, 2, "op/value[/flags]"))?;
                // A constant regex is compiled once, here (POSIX ERE,
                // case-insensitive as SER compiles it).
                let re: Option<Regex> = match (&chk.op, &chk.val) {
                    (Op::Re, Source::Const(v)) => Some(crate::route::export::compile_regex(
                        &String::from_utf8_lossy(&eval::text(v)),
                    )?),
                    _ => None,
                };
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(rhs) = resolve(ctx, &chk.val) else {
                        return -1;
                    };
                    let spec = spec::NameSpec {
                        sel: spec::Selector::Name(name.clone()),
                        all: chk.all,
                        delete: false,
                    };
                    let hit = eval::selected(&ctx.avps, &spec)
                        .into_iter()
                        .any(|v| eval::check_one(v, chk.op, &rhs, chk.nocase, re.as_ref()));
                    if hit {
                        1
                    } else {
                        -1
                    }
                })
            }
            "avp_copy" => {
                let from = spec::parse_name(&s(0)?, al).map_err(bad(f.name, 1, "an AVP name"))?;
                let to = spec::parse_selector(&s(1)?, "gd", al).map_err(bad(
                    f.name,
                    2,
                    "an AVP name[/g][/d]",
                ))?;
                let spec::Selector::Name(to_name) = to.sel.clone() else {
                    return Err(FixupError::BadArg {
                        func: f.name,
                        index: 2,
                        expected: "an AVP name[/g][/d]",
                        found: s(1)?,
                    });
                };
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if eval::copy(&mut ctx.avps, &from, &to_name, to.all, to.delete) > 0 {
                        1
                    } else {
                        -1
                    }
                })
            }
            "avp_print" => Box::new(|ctx: &mut MsgCtx<'_>| {
                for (n, v) in ctx.avps.iter().rev() {
                    let val = match v {
                        AvpValue::Int(i) => format!("int {i}"),
                        AvpValue::Str(s) => format!("str \"{}\"", String::from_utf8_lossy(s)),
                    };
                    log::info!("avp_print: name={} value={val}", show_name(n));
                }
                1
            }),
            "avp_db_load" | "avp_db_store" | "avp_db_delete" => {
                return Err(FixupError::Unavailable {
                    func: f.name,
                    reason: "this server has no database support",
                })
            }
            _ => {
                return Err(FixupError::Unavailable {
                    func: f.name,
                    reason: "not implemented",
                })
            }
        })
    }
}
