//! textops — regex search and edits over the whole message, header
//! appends. Edits are lumps applied when the message is forwarded.

use regex::bytes::Regex;

use crate::cfg::ast::Literal;
use crate::route::export::{
    arg_str, compile_regex, BoxedFn, FixupEnv, FixupError, FnDef, Module, RouteMask,
};
use crate::route::MsgCtx;
use crate::sip::{HdrKind, Span};

pub struct TextOps;

const R: RouteMask = RouteMask::REQ_FAIL
    .or(RouteMask::ONREPLY)
    .or(RouteMask::BRANCH);

static FUNCS: &[FnDef] = &[
    FnDef::new("search", 1, 1, R),
    FnDef::new("search_append", 2, 2, R),
    FnDef::new("replace", 2, 2, R),
    FnDef::new("replace_all", 2, 2, R),
    FnDef::new("subst", 1, 1, R),
    FnDef::new("subst_uri", 1, 1, RouteMask::REQ_FAIL),
    FnDef::new("subst_user", 1, 1, RouteMask::REQ_FAIL),
    FnDef::new("append_hf", 1, 1, R),
    FnDef::new("remove_hf", 1, 1, R),
    FnDef::new("is_present_hf", 1, 1, R),
    FnDef::new("append_urihf", 2, 2, RouteMask::REQ_FAIL),
    FnDef::new("append_to_reply", 1, 1, RouteMask::REQ_FAIL),
    FnDef::new("append_time", 0, 0, RouteMask::REQ_FAIL),
];

/// A sed-like `/re/replacement/flags` expression.
struct Subst {
    re: Regex,
    /// Replacement in the regex crate's syntax (`\N` → `${N}`).
    repl: Vec<u8>,
    global: bool,
}

fn bad_subst(f: &'static str, s: &str) -> FixupError {
    FixupError::BadArg {
        func: f,
        index: 1,
        expected: "/regex/replacement/flags",
        found: s.to_string(),
    }
}

fn parse_subst(f: &'static str, s: &str) -> Result<Subst, FixupError> {
    let mut chars = s.chars();
    let delim = chars.next().ok_or_else(|| bad_subst(f, s))?;
    let mut parts = vec![String::new()];
    let mut esc = false;
    for c in chars {
        if esc {
            if c != delim {
                if let Some(p) = parts.last_mut() {
                    p.push('\\')
                }
            }
            if let Some(p) = parts.last_mut() {
                p.push(c)
            }
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == delim {
            parts.push(String::new());
        } else {
            if let Some(p) = parts.last_mut() {
                p.push(c)
            }
        }
    }
    if parts.len() != 3 {
        return Err(bad_subst(f, s));
    }
    let flags = &parts[2];
    if flags.chars().any(|c| !matches!(c, 'i' | 'g')) {
        return Err(bad_subst(f, s));
    }
    let re = regex::bytes::RegexBuilder::new(&parts[0])
        .case_insensitive(flags.contains('i'))
        .build()
        .map_err(|e| FixupError::BadRegex {
            regex: parts[0].clone(),
            reason: e.to_string(),
        })?;
    let mut repl = Vec::new();
    let mut it = parts[1].chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(d) if d.is_ascii_digit() => {
                    repl.extend_from_slice(format!("${{{d}}}").as_bytes())
                }
                Some('n') => repl.push(b'\n'),
                Some('r') => repl.push(b'\r'),
                Some('t') => repl.push(b'\t'),
                Some(o) => repl.extend_from_slice(o.to_string().as_bytes()),
                None => repl.push(b'\\'),
            },
            '$' => repl.extend_from_slice(b"$$"),
            o => repl.extend_from_slice(o.to_string().as_bytes()),
        }
    }
    Ok(Subst {
        re,
        repl,
        global: flags.contains('g'),
    })
}

fn header_name(s: &str) -> Vec<u8> {
    s.trim().trim_end_matches(':').as_bytes().to_vec()
}

/// Does header `h` have the name `name` (long or compact form)?
fn name_matches(msg: &crate::sip::Msg, h: &crate::sip::Header, name: &[u8]) -> bool {
    let kind = HdrKind::from_name(name);
    if kind != HdrKind::Other {
        h.kind == kind
    } else {
        h.name.get(msg.buf()).eq_ignore_ascii_case(name)
    }
}

/// RFC 1123 date for `append_time`.
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

impl Module for TextOps {
    fn name(&self) -> &'static str {
        "textops"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let s = |i| arg_str(f.name, args, i);
        Ok(match f.name {
            "search" => {
                let re = compile_regex(&s(0)?)?;
                Box::new(
                    move |ctx: &mut MsgCtx<'_>| if re.is_match(ctx.msg.buf()) { 1 } else { -1 },
                )
            }
            "search_append" => {
                let (re, txt) = (compile_regex(&s(0)?)?, s(1)?.into_bytes());
                Box::new(move |ctx: &mut MsgCtx<'_>| match re.find(ctx.msg.buf()) {
                    Some(m) => {
                        ctx.lumps.insert(m.end(), &txt);
                        1
                    }
                    None => -1,
                })
            }
            "replace" | "replace_all" => {
                let (re, txt, all) = (
                    compile_regex(&s(0)?)?,
                    s(1)?.into_bytes(),
                    f.name == "replace_all",
                );
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let mut n = 0;
                    for m in re.find_iter(ctx.msg.buf()) {
                        if m.start() == m.end() {
                            continue;
                        }
                        ctx.lumps
                            .replace(Span::new(m.start(), m.end() - m.start()), &txt);
                        n += 1;
                        if !all {
                            break;
                        }
                    }
                    if n > 0 {
                        1
                    } else {
                        -1
                    }
                })
            }
            "subst" => {
                let sub = parse_subst(f.name, &s(0)?)?;
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let buf = ctx.msg.buf();
                    let mut n = 0;
                    for caps in sub.re.captures_iter(buf) {
                        let Some(m) = caps.get(0) else { continue };
                        let mut out = Vec::new();
                        caps.expand(&sub.repl, &mut out);
                        ctx.lumps
                            .replace(Span::new(m.start(), m.end() - m.start()), &out);
                        n += 1;
                        if !sub.global {
                            break;
                        }
                    }
                    if n > 0 {
                        1
                    } else {
                        -1
                    }
                })
            }
            "subst_uri" | "subst_user" => {
                let sub = parse_subst(f.name, &s(0)?)?;
                let user_only = f.name == "subst_user";
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let cur = ctx.ruri().to_vec();
                    let (target, span) = if user_only {
                        match crate::sip::parse_uri(&cur) {
                            Ok(u) => match u.user {
                                Some(us) => (us.get(&cur).to_vec(), Some(us)),
                                None => (Vec::new(), None),
                            },
                            Err(_) => return -1,
                        }
                    } else {
                        (cur.clone(), None)
                    };
                    let replaced = if sub.global {
                        sub.re.replace_all(&target, sub.repl.as_slice())
                    } else {
                        sub.re.replace(&target, sub.repl.as_slice())
                    };
                    if replaced.as_ref() == target.as_slice() && !sub.re.is_match(&target) {
                        return -1;
                    }
                    let new_uri = match span {
                        Some(us) => {
                            let mut u = cur[..us.start as usize].to_vec();
                            u.extend_from_slice(&replaced);
                            u.extend_from_slice(&cur[us.end()..]);
                            u
                        }
                        None if user_only => return -1,
                        None => replaced.into_owned(),
                    };
                    ctx.new_uri = Some(new_uri);
                    1
                })
            }
            "append_hf" => {
                let txt = s(0)?.into_bytes();
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    ctx.lumps.insert(ctx.msg.headers_end(), &txt);
                    1
                })
            }
            "remove_hf" => {
                let name = header_name(&s(0)?);
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let msg = ctx.msg;
                    let mut n = 0;
                    for h in msg.headers() {
                        if name_matches(msg, h, &name) {
                            ctx.lumps.delete(h.line);
                            n += 1;
                        }
                    }
                    if n > 0 {
                        1
                    } else {
                        -1
                    }
                })
            }
            "is_present_hf" => {
                let name = header_name(&s(0)?);
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let msg = ctx.msg;
                    if msg.headers().iter().any(|h| name_matches(msg, h, &name)) {
                        1
                    } else {
                        -1
                    }
                })
            }
            "append_urihf" => {
                let (pre, suf) = (s(0)?.into_bytes(), s(1)?.into_bytes());
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let mut line = pre.clone();
                    line.extend_from_slice(ctx.ruri());
                    line.extend_from_slice(&suf);
                    ctx.lumps.insert(ctx.msg.headers_end(), &line);
                    1
                })
            }
            "append_to_reply" => {
                let txt = s(0)?.into_bytes();
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    ctx.reply_hdrs.extend_from_slice(&txt);
                    1
                })
            }
            _ => Box::new(|ctx: &mut MsgCtx<'_>| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                ctx.reply_hdrs
                    .extend_from_slice(format!("Date: {}\r\n", http_date(now)).as_bytes());
                1
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subst_parsing() {
        let s = parse_subst("subst", "/^(sip:)([0-9]+)@/\\1+49\\2@/i").unwrap();
        assert!(!s.global);
        let out = s.re.replace(b"sip:123@h", s.repl.as_slice());
        assert_eq!(&out[..], b"sip:+49123@h");
        assert!(parse_subst("subst", "/a/b").is_err());
        assert!(parse_subst("subst", "/a/b/x").is_err());
        let g = parse_subst("subst", "#a#\\#b#g").unwrap();
        assert!(g.global);
        assert_eq!(&g.re.replace_all(b"aa", g.repl.as_slice())[..], b"#b#b");
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_424_400), "Mon, 23 Nov 2026 09:00:00 GMT");
    }
}
