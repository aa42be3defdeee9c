//! The argument syntax of SER 0.9's avpops, parsed once at load time:
//! AVP names (`i:N`, `s:name`, bare, `$alias`), name selectors with
//! `/g` (`avp_delete`), value sources (`i:2`, `s:txt`, `$ruri/username`,
//! `$hdr[Call-ID]` ...), push destinations and `avp_check` operations.

use std::collections::HashMap;

use crate::route::ctx::{AvpName, AvpValue};

/// Why an avpops argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `$name` is neither a pseudo-variable nor a declared alias.
    #[error("unknown alias or variable ${0}")]
    UnknownAlias(String),
    #[error("bad AVP name {0:?}")]
    BadName(String),
    #[error("bad integer in {0:?}")]
    BadInt(String),
    #[error("unknown flag {0:?}")]
    BadFlag(String),
    #[error("unknown operator {0:?} (eq ne lt le gt ge re fm and or xor)")]
    BadOp(String),
    #[error("expected operator/value[/flags], found {0:?}")]
    BadCheck(String),
    #[error("bad destination {0:?} ($ruri[/username|/domain] or $Header[/request|/reply])")]
    BadDest(String),
    #[error("aliases are name=i:N or name=s:text, separated by ';': {0:?}")]
    BadAlias(String),
}

/// `avp_aliases`: `$alias` → AVP name.
pub type Aliases = HashMap<String, AvpName>;

/// Parse `avp_aliases "uuid=I:660;email=s:email_addr;fwd=i:753"`.
pub fn parse_aliases(spec: &str, into: &mut Aliases) -> Result<(), SpecError> {
    for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (alias, name) = item
            .split_once('=')
            .ok_or_else(|| SpecError::BadAlias(item.to_string()))?;
        let alias = alias.trim();
        if alias.is_empty() {
            return Err(SpecError::BadAlias(item.to_string()));
        }
        into.insert(alias.to_string(), parse_plain_name(name.trim())?);
    }
    Ok(())
}

/// `i:N` / `I:N` (integer), `s:x` / `S:x` or bare `x` (string).
fn parse_plain_name(s: &str) -> Result<AvpName, SpecError> {
    if let Some(n) = s.strip_prefix("i:").or_else(|| s.strip_prefix("I:")) {
        return n
            .trim()
            .parse()
            .map(AvpName::Int)
            .map_err(|_| SpecError::BadName(s.to_string()));
    }
    let body = s
        .strip_prefix("s:")
        .or_else(|| s.strip_prefix("S:"))
        .unwrap_or(s);
    if body.is_empty() {
        return Err(SpecError::BadName(s.to_string()));
    }
    Ok(AvpName::Str(body.as_bytes().to_vec()))
}

/// One AVP name: plain or `$alias`.
pub fn parse_name(s: &str, aliases: &Aliases) -> Result<AvpName, SpecError> {
    let s = s.trim();
    match s.strip_prefix('$') {
        Some(a) => aliases
            .get(a)
            .cloned()
            .ok_or_else(|| SpecError::UnknownAlias(a.to_string())),
        None => parse_plain_name(s),
    }
}

/// Which AVPs a name selector (`avp_delete`, `avp_pushto`, `avp_copy`) covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `""`: every AVP.
    All,
    /// `i:`: every AVP with an integer name.
    AnyInt,
    /// `s:`: every AVP with a string name.
    AnyStr,
    Name(AvpName),
}

impl Selector {
    pub fn matches(&self, n: &AvpName) -> bool {
        match self {
            Selector::All => true,
            Selector::AnyInt => matches!(n, AvpName::Int(_)),
            Selector::AnyStr => matches!(n, AvpName::Str(_)),
            Selector::Name(want) => want == n,
        }
    }
}

/// A name selector with its flags (`i:678/g`, `$new/gd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameSpec {
    pub sel: Selector,
    /// `g`: all matching AVPs, not only the newest.
    pub all: bool,
    /// `d` (avp_copy): delete the source — a move.
    pub delete: bool,
}

/// Split `body/flags` where the flags are letters from `allowed`.
fn split_flags<'a>(s: &'a str, allowed: &str) -> (&'a str, &'a str) {
    match s.rsplit_once('/') {
        Some((body, fl)) if !fl.is_empty() && fl.chars().all(|c| allowed.contains(c)) => (body, fl),
        _ => (s, ""),
    }
}

/// Parse a selector; `flags` lists the flag letters this function takes
/// (upper case accepted too).
pub fn parse_selector(s: &str, flags: &str, aliases: &Aliases) -> Result<NameSpec, SpecError> {
    let (body, fl) = split_flags(s.trim(), &format!("{flags}{}", flags.to_uppercase()));
    let fl = fl.to_ascii_lowercase();
    let sel = match body.trim() {
        "" => Selector::All,
        "i:" | "I:" => Selector::AnyInt,
        "s:" | "S:" => Selector::AnyStr,
        b => Selector::Name(parse_name(b, aliases)?),
    };
    Ok(NameSpec {
        sel,
        all: fl.contains('g'),
        delete: fl.contains('d'),
    })
}

/// Which part of a URI a variable or destination means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriPart {
    Whole,
    User,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriVar {
    From,
    To,
    Ruri,
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Const(AvpValue),
    Uri(UriVar, UriPart),
    SrcIp,
    DstIp,
    /// `$hdr[name]`: the first such header's value.
    Hdr(Vec<u8>),
    /// `$alias`: the newest value of another AVP (avp_check).
    Avp(AvpName),
}

/// `i:N` → int, `s:txt` or bare text → string.
pub fn parse_const(s: &str) -> Result<AvpValue, SpecError> {
    if let Some(n) = s.strip_prefix("i:").or_else(|| s.strip_prefix("I:")) {
        return n
            .trim()
            .parse()
            .map(AvpValue::Int)
            .map_err(|_| SpecError::BadInt(s.to_string()));
    }
    let body = s
        .strip_prefix("s:")
        .or_else(|| s.strip_prefix("S:"))
        .unwrap_or(s);
    Ok(AvpValue::Str(body.as_bytes().to_vec()))
}

/// A value argument: a pseudo-variable, `$alias` (when `avp_ok`) or a constant.
pub fn parse_source(s: &str, aliases: &Aliases, avp_ok: bool) -> Result<Source, SpecError> {
    let Some(var) = s.strip_prefix('$') else {
        return parse_const(s).map(Source::Const);
    };
    let lower = var.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("hdr[").and_then(|h| h.strip_suffix(']')) {
        let start = 4;
        let name = var.get(start..start + h.len()).unwrap_or(h);
        return Ok(Source::Hdr(name.trim().as_bytes().to_vec()));
    }
    let (base, part) = match lower.split_once('/') {
        Some((b, "username")) => (b, UriPart::User),
        Some((b, "domain")) => (b, UriPart::Host),
        Some(_) => return Err(SpecError::UnknownAlias(var.to_string())),
        None => (lower.as_str(), UriPart::Whole),
    };
    let uri = match base {
        "from" => Some(UriVar::From),
        "to" => Some(UriVar::To),
        "ruri" => Some(UriVar::Ruri),
        _ => None,
    };
    match (uri, base, part) {
        (Some(u), _, p) => Ok(Source::Uri(u, p)),
        (None, "src_ip", UriPart::Whole) => Ok(Source::SrcIp),
        (None, "dst_ip", UriPart::Whole) => Ok(Source::DstIp),
        _ if avp_ok && part == UriPart::Whole => aliases
            .get(var)
            .cloned()
            .map(Source::Avp)
            .ok_or_else(|| SpecError::UnknownAlias(var.to_string())),
        _ => Err(SpecError::UnknownAlias(var.to_string())),
    }
}

/// Where `avp_pushto` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Ruri(UriPart),
    /// A header added to the forwarded request.
    ReqHdr(Vec<u8>),
    /// A header added to replies this server builds.
    ReplyHdr(Vec<u8>),
}

pub fn parse_dest(s: &str) -> Result<Dest, SpecError> {
    let bad = || SpecError::BadDest(s.to_string());
    let var = s.trim().strip_prefix('$').ok_or_else(bad)?;
    let (base, suffix) = match var.split_once('/') {
        Some((b, x)) => (b, Some(x.to_ascii_lowercase())),
        None => (var, None),
    };
    if base.is_empty() {
        return Err(bad());
    }
    if base.eq_ignore_ascii_case("ruri") {
        return match suffix.as_deref() {
            None => Ok(Dest::Ruri(UriPart::Whole)),
            Some("username") => Ok(Dest::Ruri(UriPart::User)),
            Some("domain") => Ok(Dest::Ruri(UriPart::Host)),
            Some(_) => Err(bad()),
        };
    }
    if !base
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&c))
    {
        return Err(bad());
    }
    let name = base.as_bytes().to_vec();
    match suffix.as_deref() {
        None | Some("request") => Ok(Dest::ReqHdr(name)),
        Some("reply") => Ok(Dest::ReplyHdr(name)),
        Some(_) => Err(bad()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Re,
    Fm,
    And,
    Or,
    Xor,
}

/// `avp_check`'s second argument: `op/value[/flags]`.
#[derive(Debug, Clone)]
pub struct Check {
    pub op: Op,
    pub val: Source,
    /// `g`: true when any AVP of the name matches, not only the newest.
    pub all: bool,
    /// `i`: case-insensitive string comparison.
    pub nocase: bool,
}

pub fn parse_check(s: &str, aliases: &Aliases) -> Result<Check, SpecError> {
    let (op, rest) = s
        .split_once('/')
        .ok_or_else(|| SpecError::BadCheck(s.to_string()))?;
    let op = match op.trim().to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "lt" => Op::Lt,
        "le" => Op::Le,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "re" => Op::Re,
        "fm" => Op::Fm,
        "and" => Op::And,
        "or" => Op::Or,
        "xor" => Op::Xor,
        o => return Err(SpecError::BadOp(o.to_string())),
    };
    let (val, fl) = split_flags(rest, "gGiI");
    let fl = fl.to_ascii_lowercase();
    Ok(Check {
        op,
        val: parse_source(val, aliases, true)?,
        all: fl.contains('g'),
        nocase: fl.contains('i'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn al() -> Aliases {
        let mut a = Aliases::new();
        parse_aliases("uuid=I:660; email=s:email_addr;fwd=i:753", &mut a).unwrap();
        a
    }

    #[test]
    fn names_and_aliases() {
        let a = al();
        assert_eq!(parse_name("i:2", &a), Ok(AvpName::Int(2)));
        assert_eq!(parse_name("I:7", &a), Ok(AvpName::Int(7)));
        assert_eq!(
            parse_name("callee_fr_timer", &a),
            Ok(AvpName::Str(b"callee_fr_timer".to_vec()))
        );
        assert_eq!(parse_name("s:x", &a), Ok(AvpName::Str(b"x".to_vec())));
        assert_eq!(parse_name("$uuid", &a), Ok(AvpName::Int(660)));
        assert_eq!(
            parse_name("$email", &a),
            Ok(AvpName::Str(b"email_addr".to_vec()))
        );
        assert!(matches!(
            parse_name("$nope", &a),
            Err(SpecError::UnknownAlias(_))
        ));
        assert!(parse_name("i:x", &a).is_err());
        assert!(parse_aliases("novalue", &mut Aliases::new()).is_err());
    }

    #[test]
    fn selectors_take_flags() {
        let a = al();
        let s = parse_selector("i:678/g", "g", &a).unwrap();
        assert_eq!(s.sel, Selector::Name(AvpName::Int(678)));
        assert!(s.all && !s.delete);
        assert_eq!(parse_selector("", "g", &a).unwrap().sel, Selector::All);
        assert_eq!(parse_selector("i:", "g", &a).unwrap().sel, Selector::AnyInt);
        assert_eq!(
            parse_selector("s:/G", "g", &a).unwrap().sel,
            Selector::AnyStr
        );
        let m = parse_selector("$fwd/gd", "gd", &a).unwrap();
        assert!(m.all && m.delete);
        assert!(!parse_selector("$fwd", "g", &a).unwrap().all);
    }

    #[test]
    fn sources() {
        let a = al();
        assert_eq!(
            parse_source("i:2", &a, false),
            Ok(Source::Const(AvpValue::Int(2)))
        );
        assert_eq!(
            parse_source("s:i:2", &a, false),
            Ok(Source::Const(AvpValue::Str(b"i:2".to_vec())))
        );
        assert_eq!(
            parse_source("hello", &a, false),
            Ok(Source::Const(AvpValue::Str(b"hello".to_vec())))
        );
        assert_eq!(
            parse_source("$ruri/username", &a, false),
            Ok(Source::Uri(UriVar::Ruri, UriPart::User))
        );
        assert_eq!(
            parse_source("$from/domain", &a, false),
            Ok(Source::Uri(UriVar::From, UriPart::Host))
        );
        assert_eq!(
            parse_source("$to", &a, false),
            Ok(Source::Uri(UriVar::To, UriPart::Whole))
        );
        assert_eq!(parse_source("$src_ip", &a, false), Ok(Source::SrcIp));
        assert_eq!(
            parse_source("$hdr[Call-ID]", &a, false),
            Ok(Source::Hdr(b"Call-ID".to_vec()))
        );
        assert!(parse_source("$uuid", &a, false).is_err());
        assert_eq!(
            parse_source("$uuid", &a, true),
            Ok(Source::Avp(AvpName::Int(660)))
        );
        assert!(parse_source("$ruri/port", &a, false).is_err());
        assert!(parse_source("i:zz", &a, false).is_err());
    }

    #[test]
    fn destinations() {
        assert_eq!(parse_dest("$ruri"), Ok(Dest::Ruri(UriPart::Whole)));
        assert_eq!(parse_dest("$ruri/domain"), Ok(Dest::Ruri(UriPart::Host)));
        assert_eq!(
            parse_dest("$Email/reply"),
            Ok(Dest::ReplyHdr(b"Email".to_vec()))
        );
        assert_eq!(parse_dest("$X-Foo"), Ok(Dest::ReqHdr(b"X-Foo".to_vec())));
        assert!(parse_dest("ruri").is_err());
        assert!(parse_dest("$ruri/port").is_err());
        assert!(parse_dest("$Bad Name").is_err());
    }

    #[test]
    fn checks() {
        let a = al();
        let c = parse_check("lt/i:345/g", &a).unwrap();
        assert_eq!(c.op, Op::Lt);
        assert_eq!(c.val, Source::Const(AvpValue::Int(345)));
        assert!(c.all && !c.nocase);
        let c = parse_check("eq/$from/I", &a).unwrap();
        assert_eq!(c.val, Source::Uri(UriVar::From, UriPart::Whole));
        assert!(c.nocase && !c.all);
        // A regex keeps its slashes; only a trailing flag word is split off.
        let c = parse_check("re/sip:.*@bar.net/x/g", &a).unwrap();
        assert_eq!(
            c.val,
            Source::Const(AvpValue::Str(b"sip:.*@bar.net/x".to_vec()))
        );
        assert!(parse_check("zz/1", &a).is_err());
        assert!(parse_check("eq", &a).is_err());
    }
}
