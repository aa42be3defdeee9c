//! xlog's format strings: parsed once at fixup into [`Part`]s, rendered
//! per message into one escaped line.
//!
//! SER 0.9 (`modules/xlog/xl_lib.c`) specifiers, each a `%` and two
//! letters: `%%`, `%Ts` `%Tf` (time), `%ci` `%cs` `%ct` (Call-ID, CSeq
//! number, Contact), `%fu` `%ft` `%tu` `%tt` (From/To URI and tag), `%is`
//! (source IP), `%mb` `%mf` `%mi` `%ml` (message buffer, flags, id,
//! length), `%pp` (pid), `%rm` `%ru` `%rs` `%rr` (method, R-URI, reply
//! status and reason), `%ua` (User-Agent) and `%{name[index]}` (a header;
//! index 0 is the first, -1 the last). A value that is missing prints as
//! `<null>`, as SER printed it.
//!
//! Additions, each a plain alias of the above or of something SER kept
//! per message: `%hdr(name[index])` and `%avp(i:N|s:name|name)`, and the
//! 2.x/OpenSER `$` names where they mean the same thing (`$ru` `$rm`
//! `$fu` `$ft` `$tu` `$tt` `$ci` `$cs` `$ct` `$ua` `$rs` `$rr` `$pp` `$Ts`
//! `$Tf` `$mb` `$mf` `$mi` `$ml` `$si` `$hdr(…)` `$avp(…)`, `$$` for `$`).
//!
//! Deviations from 0.9, each deliberate:
//! - an unknown specifier is a config error (0.9 printed `<null>`), so a
//!   typo shows at load instead of in every log line; a `$` not followed
//!   by a letter stays literal text (0.9 scripts may print prices);
//! - `%ru` is the whole current R-URI (0.9 rebuilt it from the parsed
//!   parts and lost the `sip:` scheme);
//! - every value taken from the message is escaped (see [`escape_into`]):
//!   a header holding a newline cannot forge a second log line.

use std::fmt;

use crate::route::ctx::{AvpName, AvpValue};
use crate::route::MsgCtx;
use crate::sip::HdrKind;

/// What a missing value prints as (SER's `str_null`).
pub const NULL: &[u8] = b"<null>";

/// One piece of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text from the config, written as it is (it is trusted and carries
    /// the script's own `\n`).
    Text(Vec<u8>),
    Spec(Spec),
}

/// Which header occurrence `%{name[index]}` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HdrIndex {
    /// 0-based from the first.
    Nth(usize),
    /// `[-1]`: the last one.
    Last,
}

/// A value taken from the message or the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    TimeSecs,
    TimeText,
    CallId,
    CSeq,
    Contact,
    FromUri,
    FromTag,
    SrcIp,
    MsgBuf,
    MsgFlags,
    MsgId,
    MsgLen,
    Pid,
    Method,
    Ruri,
    Status,
    Reason,
    ToUri,
    ToTag,
    UserAgent,
    Header { name: Vec<u8>, index: HdrIndex },
    Avp(AvpName),
}

/// Why a format string was refused. Positions are byte offsets into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// `%xy` or `$name` that xlog does not know.
    Unknown { at: usize, spec: String },
    /// `%{…`, `%hdr(…` or `%avp(…` not closed, empty, or with a bad index.
    Malformed { at: usize, what: &'static str },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Unknown { at, spec } => {
                write!(f, "unknown specifier {spec:?} at offset {at}")
            }
            FormatError::Malformed { at, what } => write!(f, "{what} at offset {at}"),
        }
    }
}

/// The two-letter `%` specifiers of SER 0.9.
fn percent_spec(code: &[u8]) -> Option<Spec> {
    Some(match code {
        b"Ts" => Spec::TimeSecs,
        b"Tf" => Spec::TimeText,
        b"ci" => Spec::CallId,
        b"cs" => Spec::CSeq,
        b"ct" => Spec::Contact,
        b"fu" => Spec::FromUri,
        b"ft" => Spec::FromTag,
        b"is" => Spec::SrcIp,
        b"mb" => Spec::MsgBuf,
        b"mf" => Spec::MsgFlags,
        b"mi" => Spec::MsgId,
        b"ml" => Spec::MsgLen,
        b"pp" => Spec::Pid,
        b"rm" => Spec::Method,
        b"ru" => Spec::Ruri,
        b"rs" => Spec::Status,
        b"rr" => Spec::Reason,
        b"tu" => Spec::ToUri,
        b"tt" => Spec::ToTag,
        b"ua" => Spec::UserAgent,
        _ => return None,
    })
}

/// The 2.x names that are plain aliases of a 0.9 specifier.
fn dollar_spec(name: &[u8]) -> Option<Spec> {
    match name {
        b"si" => Some(Spec::SrcIp),
        b"is" => None,
        _ if name.len() == 2 => percent_spec(name),
        _ => None,
    }
}

/// Parses a format string into parts; adjacent text is merged.
pub fn parse(fmt: &str) -> Result<Vec<Part>, FormatError> {
    let b = fmt.as_bytes();
    let mut parts: Vec<Part> = Vec::new();
    let mut text: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c != b'%' && c != b'$' {
            text.push(c);
            i += 1;
            continue;
        }
        let at = i;
        let rest = &b[i + 1..];
        // `%%` / `$$`: the character itself.
        if rest.first() == Some(&c) {
            text.push(c);
            i += 2;
            continue;
        }
        let (spec, used) = if rest.starts_with(b"hdr(") {
            let (name, index, n) = header_ref(rest, 4, b')', at)?;
            (Spec::Header { name, index }, 1 + n)
        } else if rest.starts_with(b"avp(") {
            let close = find(rest, b')').ok_or(FormatError::Malformed {
                at,
                what: "avp( without )",
            })?;
            let inner = &fmt[at + 5..at + 1 + close];
            if inner.trim().is_empty() {
                return Err(FormatError::Malformed {
                    at,
                    what: "empty avp name",
                });
            }
            (Spec::Avp(AvpName::parse(inner)), 1 + close + 1)
        } else if c == b'%' && rest.first() == Some(&b'{') {
            let (name, index, n) = header_ref(rest, 1, b'}', at)?;
            (Spec::Header { name, index }, 1 + n)
        } else if c == b'%' {
            let code = rest.get(..2).unwrap_or(rest);
            match percent_spec(code) {
                Some(s) => (s, 3),
                None => {
                    return Err(FormatError::Unknown {
                        at,
                        spec: String::from_utf8_lossy(&b[at..at + 1 + code.len()]).into(),
                    })
                }
            }
        } else {
            // `$`: a name of letters and digits; not a letter → literal.
            if !rest.first().is_some_and(u8::is_ascii_alphabetic) {
                text.push(c);
                i += 1;
                continue;
            }
            let n = rest
                .iter()
                .take_while(|x| x.is_ascii_alphanumeric() || **x == b'_')
                .count();
            match dollar_spec(&rest[..n]) {
                Some(s) => (s, 1 + n),
                None => {
                    return Err(FormatError::Unknown {
                        at,
                        spec: String::from_utf8_lossy(&b[at..at + 1 + n]).into(),
                    })
                }
            }
        };
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Spec(spec));
        i += used;
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

fn find(b: &[u8], c: u8) -> Option<usize> {
    b.iter().position(|&x| x == c)
}

/// `name[index]` from `rest[open..]` up to `close`; returns the name, the
/// index and how many bytes of `rest` were used (through `close`).
fn header_ref(
    rest: &[u8],
    open: usize,
    close: u8,
    at: usize,
) -> Result<(Vec<u8>, HdrIndex, usize), FormatError> {
    let bad = |what| FormatError::Malformed { at, what };
    let end = open + find(&rest[open..], close).ok_or(bad("header name not closed"))?;
    let inner = &rest[open..end];
    let (name, index) = match find(inner, b'[') {
        None => (inner, HdrIndex::Nth(0)),
        Some(p) => {
            let idx = inner[p + 1..]
                .strip_suffix(b"]")
                .ok_or(bad("header index without ]"))?;
            let index = match idx {
                b"-1" => HdrIndex::Last,
                d if !d.is_empty() && d.iter().all(u8::is_ascii_digit) => {
                    let n = std::str::from_utf8(d)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or(bad("header index too large"))?;
                    HdrIndex::Nth(n)
                }
                _ => return Err(bad("header index must be a number or -1")),
            };
            (&inner[..p], index)
        }
    };
    let name = name.trim_ascii();
    if name.is_empty() || !name.iter().all(|c| c.is_ascii_graphic() && *c != b':') {
        return Err(bad("bad header name"));
    }
    Ok((name.to_vec(), index, end + 1))
}

/// Appends `v` to `out` so that it stays on one line and cannot pass for
/// anything else: `\` → `\\`, CR/LF/TAB → `\r` `\n` `\t`, other control
/// bytes (C0, DEL, C1) and bytes that are not UTF-8 → `\xNN`.
pub fn escape_into(out: &mut Vec<u8>, v: &[u8]) {
    for chunk in v.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
                    }
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for byte in chunk.invalid() {
            out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
        }
    }
}

/// The line did not fit `buf_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    pub limit: usize,
}

/// Renders `parts` for the message in `ctx`, at most `limit` bytes.
/// `now` is the unix time all time specifiers of this line show.
pub fn render(
    parts: &[Part],
    ctx: &MsgCtx<'_>,
    now: i64,
    limit: usize,
) -> Result<Vec<u8>, Overflow> {
    let mut out = Vec::with_capacity(256);
    for p in parts {
        match p {
            Part::Text(t) => out.extend_from_slice(t),
            Part::Spec(s) => value(s, ctx, now, &mut out),
        }
        if out.len() > limit {
            return Err(Overflow { limit });
        }
    }
    Ok(out)
}

/// Appends the value of `s` (escaped), or `<null>`.
fn value(s: &Spec, ctx: &MsgCtx<'_>, now: i64, out: &mut Vec<u8>) {
    let msg = ctx.msg;
    let buf = msg.buf();
    let hval = |k: HdrKind| {
        msg.header(k)
            .map(|h| msg.value(h))
            .filter(|v| !v.is_empty())
    };
    let num = |n: u64| Some(n.to_string().into_bytes());
    let owned: Option<Vec<u8>> = match s {
        Spec::TimeSecs => Some(now.to_string().into_bytes()),
        Spec::TimeText => Some(crate::os::time::ctime(now).into_bytes()),
        Spec::Pid => num(u64::from(std::process::id())),
        Spec::SrcIp => Some(ctx.src.ip().to_string().into_bytes()),
        Spec::MsgFlags => num(u64::from(ctx.flags)),
        Spec::MsgId => num(ctx.msg_no),
        Spec::MsgLen => num(buf.len() as u64),
        Spec::CSeq => msg.cseq().ok().and_then(|c| num(u64::from(c.num))),
        Spec::Status if !msg.is_request() => num(u64::from(msg.status())),
        Spec::Avp(name) => match ctx.avp(name) {
            Some(AvpValue::Int(n)) => Some(n.to_string().into_bytes()),
            Some(AvpValue::Str(v)) => Some(v.clone()),
            None => None,
        },
        _ => None,
    };
    let borrowed: Option<&[u8]> = match s {
        Spec::CallId => hval(HdrKind::CallId),
        Spec::Contact => hval(HdrKind::Contact),
        Spec::UserAgent => hval(HdrKind::UserAgent),
        Spec::MsgBuf => Some(buf),
        Spec::Method if msg.is_request() => Some(msg.method_bytes()),
        Spec::Ruri if msg.is_request() => Some(ctx.ruri()),
        Spec::Reason if !msg.is_request() => Some(msg.reason()),
        Spec::FromUri => msg.from().ok().map(|a| a.uri.get(buf)),
        Spec::FromTag => msg.from().ok().and_then(|a| a.tag).map(|t| t.get(buf)),
        Spec::ToUri => msg.to().ok().map(|a| a.uri.get(buf)),
        Spec::ToTag => msg.to().ok().and_then(|a| a.tag).map(|t| t.get(buf)),
        Spec::Header { name, index } => header(msg, name, *index),
        _ => None,
    };
    match owned.as_deref().or(borrowed) {
        Some(v) if !v.is_empty() => escape_into(out, v),
        _ => out.extend_from_slice(NULL),
    }
}

/// The value of the `index`th header called `name` (compact forms count).
fn header<'m>(msg: &'m crate::sip::Msg, name: &[u8], index: HdrIndex) -> Option<&'m [u8]> {
    let kind = HdrKind::from_name(name);
    let mut it = msg.headers().iter().filter(|h| {
        if kind != HdrKind::Other {
            h.kind == kind
        } else {
            h.kind == HdrKind::Other && h.name.get(msg.buf()).eq_ignore_ascii_case(name)
        }
    });
    let h = match index {
        HdrIndex::Nth(n) => it.nth(n),
        HdrIndex::Last => it.last(),
    }?;
    Some(msg.value(h))
}
