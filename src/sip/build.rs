//! Builders that write messages straight into an output buffer.
//!
//! They build from parsed, single-valued fields — never by copying raw
//! To/CSeq lines — so duplicated headers in hostile input cannot duplicate
//! output (a crash class in other proxies). Local ACK and CANCEL builders
//! for the transaction layer belong here too (RFC 3261 §17.1.1.3, §9.1).

use super::error::BuildError;
use super::hdr::HdrKind;
use super::msg::Msg;
use super::span::Span;

/// What a locally generated reply adds to the copied request fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyOpts<'a> {
    /// Added as `;tag=` to To when the request's To has no tag.
    pub to_tag: Option<&'a [u8]>,
    /// Appended to the first via-parm, e.g. `;received=1.2.3.4;rport=5060`.
    pub via1_extra: &'a [u8],
    /// Spans (absolute, inside the first via-parm) left out of the copy:
    /// the params that `via1_extra` replaces.
    pub via1_drop: &'a [Span],
    /// Complete CRLF-terminated header lines.
    pub extra_headers: &'a [u8],
    pub body: &'a [u8],
    /// Value of a `Server:` header, if one is wanted.
    pub server_header: Option<&'a [u8]>,
}

fn has_line_break(b: &[u8]) -> bool {
    memchr::memchr2(b'\r', b'\n', b).is_some()
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_num(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(tmp.get(i..).unwrap_or(&[]));
}

/// Appends a reply to `req` to `out` (RFC 3261 §8.2.6): status line; every
/// Via value in order (`via1_extra` after the first via-parm); Record-Route
/// for 18x/2xx; From; To (with `to_tag` if it has none); Call-ID; CSeq
/// rebuilt as `<num> <method>`; Server; extra headers; Content-Length;
/// blank line; body. A To or CSeq that does not parse (the 400 case) is
/// copied from the first such header only, unchanged.
pub fn build_reply(
    req: &Msg,
    code: u16,
    reason: &[u8],
    opts: &ReplyOpts<'_>,
    out: &mut Vec<u8>,
) -> Result<(), BuildError> {
    if !req.is_request() {
        return Err(BuildError::NotARequest);
    }
    // Status-Code is any 3 digits (RFC 3261 §25.1); the tm docs send 999.
    if !(100..=999).contains(&code) {
        return Err(BuildError::BadCode);
    }
    let server = opts.server_header.unwrap_or(&[]);
    let tag = opts.to_tag.unwrap_or(&[]);
    if has_line_break(reason)
        || has_line_break(opts.via1_extra)
        || has_line_break(server)
        || has_line_break(tag)
    {
        return Err(BuildError::BadText);
    }
    let b = req.buf();
    let via1 = req.via1().map_err(|_| BuildError::BadVia)?;
    // A request missing From/To/Call-ID/CSeq still gets its 400: the
    // absent headers are simply absent from the reply too.
    let from = req.header(HdrKind::From);
    let to = req.header(HdrKind::To);
    let call_id = req.header(HdrKind::CallId);
    let cseq = req.header(HdrKind::CSeq);

    out.reserve(512 + opts.body.len() + opts.extra_headers.len());
    out.extend_from_slice(b"SIP/2.0 ");
    push_num(out, u64::from(code));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");

    for (i, h) in req.headers_of(HdrKind::Via).enumerate() {
        out.extend_from_slice(b"Via: ");
        if i == 0 {
            let split = via1.span.end();
            // Copy up to the end of the first via-parm, leaving out the
            // params the caller replaces (an empty `rport`, an old `received`).
            let mut at = h.value.start as usize;
            let mut drops: Vec<Span> = opts
                .via1_drop
                .iter()
                .copied()
                .filter(|d| d.start as usize >= at && d.end() <= split)
                .collect();
            drops.sort_by_key(|d| d.start);
            for d in drops {
                if (d.start as usize) < at {
                    continue;
                }
                out.extend_from_slice(b.get(at..d.start as usize).unwrap_or(&[]));
                at = d.end();
            }
            out.extend_from_slice(b.get(at..split).unwrap_or(&[]));
            out.extend_from_slice(opts.via1_extra);
            out.extend_from_slice(b.get(split..h.value.end()).unwrap_or(&[]));
        } else {
            out.extend_from_slice(req.value(h));
        }
        out.extend_from_slice(b"\r\n");
    }
    if (180..300).contains(&code) {
        for h in req.headers_of(HdrKind::RecordRoute) {
            push_header(out, b"Record-Route", req.value(h));
        }
    }
    if let Some(from) = from {
        push_header(out, b"From", req.value(from));
    }
    if let Some(to) = to {
        out.extend_from_slice(b"To: ");
        out.extend_from_slice(req.value(to));
        if let (Ok(parsed), Some(t)) = (req.to(), opts.to_tag) {
            if parsed.tag.is_none() {
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(t);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(call_id) = call_id {
        push_header(out, b"Call-ID", req.value(call_id));
    }
    match (req.cseq(), cseq) {
        (Ok(c), _) => {
            out.extend_from_slice(b"CSeq: ");
            push_num(out, u64::from(c.num));
            out.push(b' ');
            out.extend_from_slice(c.method_span.get(b));
            out.extend_from_slice(b"\r\n");
        }
        (Err(_), Some(cseq)) => push_header(out, b"CSeq", req.value(cseq)),
        (Err(_), None) => {}
    }
    if let Some(s) = opts.server_header {
        push_header(out, b"Server", s);
    }
    out.extend_from_slice(opts.extra_headers);
    out.extend_from_slice(b"Content-Length: ");
    push_num(out, opts.body.len() as u64);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(opts.body);
    Ok(())
}

/// The largest reply ser sends: one UDP datagram over IPv4 (65 535 bytes
/// less 20 of IP and 8 of UDP header). Replies only go over UDP today.
pub const MAX_REPLY_LEN: usize = 65_507;

/// What [`build_reply_within`] built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFit {
    /// The reply asked for.
    AsAsked,
    /// The reply asked for would have been `len` bytes; a `500` was built
    /// instead.
    Replaced { len: usize },
}

/// [`build_reply`] that never leaves more than `max` bytes in `out`. A
/// reply that would be larger (a 200 listing hundreds of bindings, huge
/// appended headers) cannot be sent at all, so the client would hear
/// nothing and retry forever; it gets `500 Server Internal Error` instead,
/// built without the extra headers and body. If even that does not fit,
/// `TooLarge` and `out` is left as it was.
pub fn build_reply_within(
    req: &Msg,
    code: u16,
    reason: &[u8],
    opts: &ReplyOpts<'_>,
    max: usize,
    out: &mut Vec<u8>,
) -> Result<ReplyFit, BuildError> {
    let start = out.len();
    build_reply(req, code, reason, opts, out)?;
    let len = out.len() - start;
    if len <= max {
        return Ok(ReplyFit::AsAsked);
    }
    out.truncate(start);
    let bare = ReplyOpts {
        extra_headers: b"",
        body: b"",
        ..*opts
    };
    build_reply(req, 500, b"Server Internal Error", &bare, out)?;
    if out.len() - start > max {
        out.truncate(start);
        return Err(BuildError::TooLarge { len });
    }
    Ok(ReplyFit::Replaced { len })
}

/// Appends `Via: SIP/2.0/<transport> <host>:<port>;branch=<branch><extra>`
/// and CRLF. `host` is given ready to print (IPv6 already in brackets).
pub fn push_via(
    out: &mut Vec<u8>,
    transport: &str,
    host: &str,
    port: u16,
    branch: &[u8],
    extra_params: &[u8],
) {
    out.extend_from_slice(b"Via: SIP/2.0/");
    out.extend_from_slice(transport.as_bytes());
    out.push(b' ');
    out.extend_from_slice(host.as_bytes());
    out.push(b':');
    push_num(out, u64::from(port));
    out.extend_from_slice(b";branch=");
    out.extend_from_slice(branch);
    out.extend_from_slice(extra_params);
    out.extend_from_slice(b"\r\n");
}

/// Which request [`build_ack_cancel`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopRequest {
    /// The ACK for a negative final reply (RFC 3261 §17.1.1.3).
    Ack,
    /// A CANCEL for a pending branch (RFC 3261 §9.1).
    Cancel,
}

/// Appends an ACK or CANCEL for the branch request `req` (the request as
/// we sent it downstream) to `out`: same R-URI, our top Via only (same
/// branch), every Route of `req`, From and Call-ID copied, CSeq number
/// with the new method, To from `reply_to` for an ACK (the reply's To,
/// carrying the callee's tag) or from `req` for a CANCEL. Built from parsed
/// single-valued fields: duplicated headers in `req` cannot duplicate output.
pub fn build_ack_cancel(
    req: &Msg,
    kind: HopRequest,
    reply_to: Option<&[u8]>,
    user_agent: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), BuildError> {
    if !req.is_request() {
        return Err(BuildError::NotARequest);
    }
    let b = req.buf();
    let via1 = req.via1().map_err(|_| BuildError::BadVia)?;
    let from = req
        .header(HdrKind::From)
        .ok_or(BuildError::MissingHeader(HdrKind::From))?;
    let call_id = req
        .header(HdrKind::CallId)
        .ok_or(BuildError::MissingHeader(HdrKind::CallId))?;
    let cseq = req
        .cseq()
        .map_err(|_| BuildError::MissingHeader(HdrKind::CSeq))?;
    let to = match (kind, reply_to) {
        (HopRequest::Ack, Some(t)) => t,
        _ => req.value(
            req.header(HdrKind::To)
                .ok_or(BuildError::MissingHeader(HdrKind::To))?,
        ),
    };
    if has_line_break(to) || user_agent.map(has_line_break).unwrap_or(false) {
        return Err(BuildError::BadText);
    }
    let method: &[u8] = match kind {
        HopRequest::Ack => b"ACK",
        HopRequest::Cancel => b"CANCEL",
    };
    out.reserve(256 + b.len() / 2);
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(req.ruri());
    out.extend_from_slice(b" SIP/2.0\r\n");
    push_header(out, b"Via", via1.span.get(b));
    for r in req.headers_of(HdrKind::Route) {
        push_header(out, b"Route", req.value(r));
    }
    push_header(out, b"From", req.value(from));
    push_header(out, b"To", to);
    push_header(out, b"Call-ID", req.value(call_id));
    out.extend_from_slice(b"CSeq: ");
    push_num(out, u64::from(cseq.num));
    out.push(b' ');
    out.extend_from_slice(method);
    out.extend_from_slice(b"\r\nMax-Forwards: 70\r\n");
    if let Some(ua) = user_agent {
        push_header(out, b"User-Agent", ua);
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_reply_becomes_a_bare_500() {
        let raw = b"REGISTER sip:x SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKr1\r\n\
From: <sip:a@x>;tag=f1\r\nTo: <sip:a@x>\r\nCall-ID: cid\r\nCSeq: 2 REGISTER\r\n\
Content-Length: 0\r\n\r\n"
            .to_vec();
        let m = Msg::parse(raw).map_err(|f| f.error).unwrap();
        let contacts = format!("Contact: {}\r\n", "<sip:u@h>, ".repeat(8000));
        let opts = ReplyOpts {
            to_tag: Some(b"tt"),
            extra_headers: contacts.as_bytes(),
            ..ReplyOpts::default()
        };
        let mut out = b"keep".to_vec();
        let fit = build_reply_within(&m, 200, b"OK", &opts, MAX_REPLY_LEN, &mut out).unwrap();
        assert!(
            matches!(fit, ReplyFit::Replaced { len } if len > MAX_REPLY_LEN),
            "{fit:?}"
        );
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("keepSIP/2.0 500 Server Internal Error\r\n"),
            "{s}"
        );
        assert!(s.contains("To: <sip:a@x>;tag=tt\r\n") && !s.contains("Contact"));
        // What fits is built as asked.
        let mut out = Vec::new();
        let fit = build_reply_within(&m, 200, b"OK", &opts, usize::MAX, &mut out).unwrap();
        assert_eq!(fit, ReplyFit::AsAsked);
        assert!(out.starts_with(b"SIP/2.0 200 OK\r\n"));
        // Not even the 500 fits: nothing is left in the buffer.
        let mut out = b"keep".to_vec();
        let r = build_reply_within(&m, 200, b"OK", &opts, 50, &mut out);
        assert!(matches!(r, Err(BuildError::TooLarge { .. })), "{r:?}");
        assert_eq!(out, b"keep");
    }

    #[test]
    fn ack_and_cancel_from_a_branch_request() {
        let raw = b"INVITE sip:bob@10.0.0.2:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1.2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKc\r\n\
Route: <sip:p1;lr>\r\nRoute: <sip:p2;lr>\r\n\
From: <sip:a@x>;tag=f1\r\nTo: <sip:bob@y>\r\nCall-ID: cid\r\nCSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n"
            .to_vec();
        let m = Msg::parse(raw).map_err(|f| f.error).unwrap();
        let mut out = Vec::new();
        build_ack_cancel(
            &m,
            HopRequest::Ack,
            Some(b"<sip:bob@y>;tag=t9"),
            None,
            &mut out,
        )
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("ACK sip:bob@10.0.0.2:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1.2.0\r\n"), "{s}");
        assert!(s.contains("Route: <sip:p1;lr>\r\nRoute: <sip:p2;lr>\r\n"));
        assert!(s.contains("To: <sip:bob@y>;tag=t9\r\n") && s.contains("CSeq: 7 ACK\r\n"));
        assert_eq!(s.matches("Via:").count(), 1);
        let mut c = Vec::new();
        build_ack_cancel(&m, HopRequest::Cancel, None, Some(b"ser"), &mut c).unwrap();
        let c = String::from_utf8(c).unwrap();
        assert!(c.starts_with("CANCEL sip:bob@10.0.0.2:5070 SIP/2.0\r\n"));
        assert!(
            c.contains("To: <sip:bob@y>\r\n")
                && c.contains("CSeq: 7 CANCEL\r\n")
                && c.contains("User-Agent: ser\r\n")
        );
        Msg::parse(c.into_bytes())
            .map_err(|f| f.error)
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn nums_and_via() {
        let mut o = Vec::new();
        push_num(&mut o, 0);
        push_num(&mut o, u64::MAX);
        assert_eq!(o, b"018446744073709551615");
        let mut o = Vec::new();
        push_via(&mut o, "UDP", "[::1]", 5060, b"z9hG4bK1", b";rport");
        assert_eq!(o, b"Via: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1;rport\r\n");
    }
}
