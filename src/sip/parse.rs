//! Tier 1: split a received buffer into first line, header index and body
//! (RFC 3261 §7). One pass with memchr; no allocation besides the header
//! index. Typed header parsing is left to first access (see `msg.rs`).

use super::error::ParseError;
use super::hdr::{HdrKind, Header};
use super::method::Method;
use super::scan::{at, parse_u32, skip_token, trim};
use super::span::Span;
use memchr::memchr;

/// The request line or status line.
#[derive(Clone, Copy, Debug)]
pub enum FirstLine {
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
        version: Span,
    },
    Reply {
        version: Span,
        status: u16,
        reason: Span,
    },
}

/// Everything the tier-1 pass finds.
pub(super) struct Parts {
    pub first: FirstLine,
    pub first_span: Span,
    pub headers: Vec<Header>,
    pub headers_end: usize,
    pub body: Span,
    /// Where the message ends: the body is cut here when Content-Length
    /// says less than the datagram holds (RFC 3261 §18.3).
    pub msg_end: usize,
}

/// Header index capacity reserved up front: typical requests fit.
const HEADERS_CAP: usize = 32;

/// `SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT` (case-insensitive "SIP").
pub(super) fn version_ok(v: &[u8]) -> bool {
    let Some(rest) = v.get(4..) else { return false };
    if !v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/")) {
        return false;
    }
    let Some(d) = memchr(b'.', rest) else {
        return false;
    };
    let (maj, min) = (
        rest.get(..d).unwrap_or(&[]),
        rest.get(d + 1..).unwrap_or(&[]),
    );
    !maj.is_empty() && !min.is_empty() && maj.iter().chain(min).all(u8::is_ascii_digit)
}

/// Parses the first line occupying `s..e` (line end excluded). The stream
/// framer uses it too, to tell a lost frame boundary from a message start.
pub(super) fn first_line(b: &[u8], s: usize, e: usize) -> Result<FirstLine, ParseError> {
    let line = b.get(s..e).unwrap_or(&[]);
    if line.len() >= 4
        && line
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let bad = ParseError::BadStatusLine;
        let sp = memchr(b' ', line).ok_or(bad)?;
        if !version_ok(line.get(..sp).unwrap_or(&[])) {
            return Err(bad);
        }
        let code = line.get(sp + 1..sp + 4).ok_or(bad)?;
        if !code.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        let status = code.iter().fold(0u16, |a, c| a * 10 + u16::from(c - b'0'));
        // A missing reason phrase is tolerated (RFC 4475 §3.1.1.13 has an
        // empty one); anything else after the code must follow a SP.
        let rs = match at(line, sp + 4) {
            b' ' => sp + 5,
            _ if sp + 4 == line.len() => sp + 4,
            _ => return Err(bad),
        };
        if line
            .get(rs..)
            .is_some_and(|r| r.iter().any(|&c| c == b'\r' || c == b'\n'))
        {
            return Err(bad);
        }
        return Ok(FirstLine::Reply {
            version: Span::new(s, sp),
            status,
            reason: Span::from_to(s + rs, e),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly two
    // single spaces (RFC 4475 §3.1.2.8-10: extra or trailing SP is invalid).
    let bad = ParseError::BadRequestLine;
    let me = skip_token(line, 0, line.len());
    if me == 0 || at(line, me) != b' ' {
        return Err(bad);
    }
    let vs = memchr::memrchr(b' ', line).ok_or(bad)? + 1;
    let uri = line.get(me + 1..vs - 1).ok_or(bad)?;
    if uri.is_empty() || uri.iter().any(|&c| c <= b' ') {
        return Err(bad);
    }
    if !version_ok(line.get(vs..).unwrap_or(&[])) {
        return Err(bad);
    }
    let method_span = Span::new(s, me);
    Ok(FirstLine::Request {
        method: Method::from_bytes(method_span.get(b)),
        method_span,
        uri: Span::from_to(s + me + 1, s + vs - 1),
        version: Span::from_to(s + vs, e),
    })
}

/// Runs tier 1 over `b`.
pub(super) fn parse_parts(b: &[u8]) -> Result<Parts, ParseError> {
    // RFC 3261 §7.5: ignore CRLFs before the start line
    let mut pos = 0;
    while matches!(at(b, pos), b'\r' | b'\n') {
        pos += 1;
    }
    if pos >= b.len() {
        return Err(ParseError::Empty);
    }
    let lf = pos + memchr(b'\n', b.get(pos..).unwrap_or(&[])).ok_or(ParseError::Truncated)?;
    let fe = if lf > pos && at(b, lf - 1) == b'\r' {
        lf - 1
    } else {
        lf
    };
    let first = first_line(b, pos, fe)?;
    let first_span = Span::from_to(pos, fe);
    pos = lf + 1;

    let mut headers: Vec<Header> = Vec::with_capacity(HEADERS_CAP);
    let headers_end;
    let body_start;
    loop {
        match at(b, pos) {
            _ if pos >= b.len() => return Err(ParseError::Truncated),
            b'\n' => {
                headers_end = pos;
                body_start = pos + 1;
                break;
            }
            b'\r' if at(b, pos + 1) == b'\n' => {
                headers_end = pos;
                body_start = pos + 2;
                break;
            }
            b' ' | b'\t' => return Err(ParseError::BadHeaderLine),
            _ => {}
        }
        // the header runs to the first LF not followed by SP/HT (folding)
        let mut lf = pos;
        loop {
            lf += memchr(b'\n', b.get(lf..).unwrap_or(&[])).ok_or(ParseError::Truncated)?;
            if matches!(at(b, lf + 1), b' ' | b'\t') {
                lf += 1;
            } else {
                break;
            }
        }
        let ne = skip_token(b, pos, lf);
        if ne == pos {
            return Err(ParseError::BadHeaderLine);
        }
        let mut c = ne;
        while matches!(at(b, c), b' ' | b'\t') && c < lf {
            c += 1;
        }
        if at(b, c) != b':' || c >= lf {
            return Err(ParseError::BadHeaderLine);
        }
        let (vs, ve) = trim(b, c + 1, lf);
        let name = Span::from_to(pos, ne);
        headers.push(Header {
            kind: HdrKind::from_name(name.get(b)),
            name,
            value: Span::from_to(vs, ve),
            line: Span::from_to(pos, lf + 1),
        });
        pos = lf + 1;
    }
    // RFC 3261 §18.3: a smaller Content-Length cuts the datagram; a larger
    // or malformed one is left for `validate` to reject.
    let avail = b.len().saturating_sub(body_start);
    let mut msg_end = b.len();
    if let Some(h) = headers.iter().find(|h| h.kind == HdrKind::ContentLength) {
        if let Some(n) = parse_u32(h.value.get(b)) {
            if (n as usize) < avail {
                msg_end = body_start + n as usize;
            }
        }
    }
    Ok(Parts {
        first,
        first_span,
        headers,
        headers_end,
        body: Span::from_to(body_start, msg_end),
        msg_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(version_ok(b"SIP/2.0"));
        assert!(version_ok(b"sip/7.0"));
        assert!(!version_ok(b"SIP/2."));
        assert!(!version_ok(b"SIP/2"));
        assert!(!version_ok(b"SIP /2.0"));
        assert!(!version_ok(b"HTTP/1.1"));
        assert!(!version_ok(b""));
    }

    #[test]
    fn request_lines() {
        let ok = |l: &[u8]| first_line(l, 0, l.len());
        assert!(matches!(
            ok(b"INVITE sip:a@b SIP/2.0"),
            Ok(FirstLine::Request {
                method: Method::Invite,
                ..
            })
        ));
        assert!(matches!(
            ok(b"!odd-Meth0d%* sip:a@b SIP/2.0"),
            Ok(FirstLine::Request {
                method: Method::Other,
                ..
            })
        ));
        for l in [
            &b"INVITE  sip:a@b SIP/2.0"[..],
            b"INVITE sip:a@b SIP/2.0 ",
            b"INVITE sip:a@b; lr SIP/2.0",
            b"INVITE sip:a@b",
            b"INVITE sip:a@b SIP / 2.0",
            b" INVITE sip:a@b SIP/2.0",
            b"INV(TE sip:a SIP/2.0",
            b"",
            b"SIP/2.0 4294967301 big",
            b"SIP/2.0 20 OK",
            b"SIP/2.0 200OK",
            b"SIP/2.0",
        ] {
            assert!(ok(l).is_err(), "{:?}", String::from_utf8_lossy(l));
        }
        let l = b"SIP/2.0 100 ";
        match ok(l) {
            Ok(FirstLine::Reply {
                status: 100,
                reason,
                ..
            }) => assert!(reason.is_empty()),
            _ => panic!(),
        }
        assert!(matches!(
            ok(b"SIP/2.0 180"),
            Ok(FirstLine::Reply { status: 180, .. })
        ));
    }
}
