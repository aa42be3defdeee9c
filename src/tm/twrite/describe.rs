//! The text `t_write_req`/`t_write_unix` hand to the application: the
//! request described line by line (compat spec §3.6), as SEMS and other
//! SER 0.9 applications read it.
//!
//! Layout, every line ending in `\n`:
//! lines 0–18 single values; line 19 is a header block (`P-MsgFlags:`,
//! one `Title: value` per present `tw_append` item) closed by a `.` line;
//! line 20 is the body block: the body bytes as received (a `\n` added
//! when the body does not end in one) closed by a `.` line, or the `.`
//! line alone when no body is sent. So a reader takes lines up to `.`
//! twice. A body line consisting of `.` alone cannot be told from the end
//! (SER did not escape it either).
//!
//! Values that would break the line format (folded headers, an AVP
//! holding a line end) have each run of CR/LF and the whitespace around
//! it replaced by one space.

use std::net::SocketAddr;

use super::append::{TwAppend, TwSource};
use super::error::TwriteError;
use crate::route::ctx::{AvpName, AvpValue};
use crate::sip::{parse_contacts, parse_uri, HdrKind, Method, Msg, ParseError};

/// Everything beyond the message that goes into the description.
#[derive(Debug, Clone, Copy)]
pub struct TwRequest<'a> {
    /// The application name (`sip_request.<action>`).
    pub action: &'a str,
    /// The `tw_append` list selected by `action/append`, if any.
    pub append: Option<&'a TwAppend>,
    /// The message's AVPs in insertion order (the last of a name wins).
    pub avps: &'a [(AvpName, AvpValue)],
    /// The local socket the request arrived on.
    pub rcv: SocketAddr,
    /// The transaction's id (`t_reply` over the FIFO names it).
    pub hash: u32,
    pub label: u32,
    /// The message's internal flags (`setflag`).
    pub msg_flags: u32,
    /// The Request-URI as the script left it (`rewriteuri` and friends);
    /// `None` = the request line's. Lines 3 and 5 use it; line 8 always
    /// shows the request line's.
    pub new_ruri: Option<&'a [u8]>,
}

/// Describes `msg` with the request line's R-URI (the brief's signature;
/// see `describe_request` for a rewritten R-URI).
#[allow(clippy::too_many_arguments)]
pub fn describe(
    msg: &Msg,
    action: &str,
    append: Option<&TwAppend>,
    avps: &[(AvpName, AvpValue)],
    rcv: SocketAddr,
    hash: u32,
    label: u32,
    msg_flags: u32,
) -> Result<Vec<u8>, TwriteError> {
    describe_request(
        msg,
        &TwRequest {
            action,
            append,
            avps,
            rcv,
            hash,
            label,
            msg_flags,
            new_ruri: None,
        },
    )
}

fn hdr_err(header: HdrKind) -> impl Fn(ParseError) -> TwriteError {
    move |error| TwriteError::Header { header, error }
}

/// Builds lines 0..=20 of compat spec §3.6 for `msg`.
pub fn describe_request(msg: &Msg, req: &TwRequest<'_>) -> Result<Vec<u8>, TwriteError> {
    if !msg.is_request() {
        return Err(TwriteError::NotRequest);
    }
    let buf = msg.buf();
    let from = msg.from().map_err(hdr_err(HdrKind::From))?;
    let to = msg.to().map_err(hdr_err(HdrKind::To))?;
    let call_id = msg.call_id().map_err(hdr_err(HdrKind::CallId))?;
    let cseq = msg.cseq().map_err(hdr_err(HdrKind::CSeq))?;
    let ruri = req.new_ruri.unwrap_or_else(|| msg.ruri());
    let uri = parse_uri(ruri).map_err(|_| TwriteError::BadRuri)?;

    // Remote target: first Contact URI, else the From URI.
    let mut target: &[u8] = from.uri.get(buf);
    if let Some(h) = msg.header(HdrKind::Contact) {
        let contacts = parse_contacts(buf, h.value).map_err(hdr_err(HdrKind::Contact))?;
        if let Some(c) = contacts.first().filter(|c| !c.star) {
            target = c.addr.uri.get(buf);
        }
    }
    // Record-Route URIs in received order: for the receiving UAS that is
    // its route set (RFC 3261 §12.1.1).
    let mut routes: Vec<&[u8]> = Vec::new();
    for h in msg.headers_of(HdrKind::RecordRoute) {
        let list = parse_contacts(buf, h.value).map_err(hdr_err(HdrKind::RecordRoute))?;
        for c in &list {
            if c.star {
                return Err(TwriteError::Header {
                    header: HdrKind::RecordRoute,
                    error: ParseError::BadNameAddr,
                });
            }
            routes.push(c.addr.uri.get(buf));
        }
    }
    // RFC 3261 §12.2.1.1: a strict first route becomes the Request-URI
    // and the remote target goes to the end of the route set; a loose
    // first route is the next hop and the target stays the Request-URI.
    let (request_uri, route_set, next_hop): (&[u8], Vec<&[u8]>, Option<&[u8]>) =
        match routes.first() {
            None => (target, Vec::new(), None),
            Some(first) => {
                let loose = parse_uri(first).map(|u| u.lr).unwrap_or(false);
                if loose {
                    (target, routes.clone(), Some(first))
                } else {
                    let mut set: Vec<&[u8]> = routes.get(1..).unwrap_or(&[]).to_vec();
                    set.push(target);
                    (first, set, None)
                }
            }
        };

    let mut out = Vec::with_capacity(buf.len() + 256);
    line(&mut out, b"0.2");
    out.extend_from_slice(b"sip_request.");
    line(&mut out, req.action.as_bytes());
    line(&mut out, msg.method_bytes());
    line(&mut out, uri.user.map(|s| s.get(ruri)).unwrap_or(b""));
    line(&mut out, b".");
    line(&mut out, uri.host.get(ruri));
    line(&mut out, req.rcv.ip().to_string().as_bytes());
    if req.rcv.port() == 5060 {
        line(&mut out, b".");
    } else {
        line(&mut out, req.rcv.port().to_string().as_bytes());
    }
    line(&mut out, msg.ruri());
    line(&mut out, request_uri);
    line(&mut out, header_value(msg, HdrKind::From));
    line(&mut out, header_value(msg, HdrKind::To));
    line(&mut out, call_id);
    line(&mut out, from.tag.map(|t| t.get(buf)).unwrap_or(b""));
    line(&mut out, to.tag.map(|t| t.get(buf)).unwrap_or(b""));
    line(&mut out, cseq.num.to_string().as_bytes());
    line(&mut out, format!("{}:{}", req.hash, req.label).as_bytes());
    if route_set.is_empty() {
        line(&mut out, b".");
    } else {
        let mut set = Vec::new();
        for (i, r) in route_set.iter().enumerate() {
            if i > 0 {
                set.push(b',');
            }
            set.push(b'<');
            set.extend_from_slice(r);
            set.push(b'>');
        }
        line(&mut out, &set);
    }
    line(&mut out, next_hop.unwrap_or(b"."));

    // line 19: the header block
    out.extend_from_slice(b"P-MsgFlags: ");
    line(&mut out, reverse_hex(req.msg_flags).as_bytes());
    let mut want_body = msg.method() == Method::Invite;
    if let Some(list) = req.append {
        for item in &list.items {
            let value: Option<Vec<u8>> = match &item.source {
                TwSource::Body => {
                    want_body = true;
                    continue;
                }
                TwSource::Avp(name) => avp_value(req.avps, name),
                TwSource::Hdr(name) => msg
                    .find_header(name.as_bytes())
                    .map(|h| msg.value(h).to_vec()),
            };
            if let Some(v) = value {
                out.extend_from_slice(item.title.as_bytes());
                out.extend_from_slice(b": ");
                line(&mut out, &v);
            }
        }
    }
    line(&mut out, b".");

    // line 20: the body block
    let body = msg.body();
    if want_body && !body.is_empty() {
        out.extend_from_slice(body);
        if !body.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    line(&mut out, b".");
    Ok(out)
}

/// The most recently added AVP called `name`, as text.
fn avp_value(avps: &[(AvpName, AvpValue)], name: &AvpName) -> Option<Vec<u8>> {
    avps.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| match v {
            AvpValue::Int(i) => i.to_string().into_bytes(),
            AvpValue::Str(s) => s.clone(),
        })
}

fn header_value(msg: &Msg, kind: HdrKind) -> &[u8] {
    msg.header(kind).map(|h| msg.value(h)).unwrap_or(b"")
}

/// Appends `v`, trimmed and made one line, then `\n`.
fn line(out: &mut Vec<u8>, v: &[u8]) {
    let v = v.trim_ascii();
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        if c == b'\r' || c == b'\n' {
            // drop the whitespace already written before the line end
            while out.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
                out.pop();
            }
            while v
                .get(i)
                .is_some_and(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out.push(b'\n');
}

/// Hex digits, least significant first (`0x1a0` → `0a1`), `0` for zero:
/// how SER writes `P-MsgFlags`.
pub fn reverse_hex(mut n: u32) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::new();
    loop {
        s.push(char::from(HEX[(n & 0xf) as usize]));
        n >>= 4;
        if n == 0 {
            return s;
        }
    }
}
