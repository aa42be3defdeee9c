//! The CSeq header (RFC 3261 §20.16): `1*DIGIT LWS Method`.

use super::error::ParseError;
use super::method::Method;
use super::scan::{is_lws, parse_u32, skip_lws, skip_token, trim};
use super::span::Span;

#[derive(Clone, Copy, Debug)]
pub struct CSeq {
    /// The sequence number; values of 2^32 and above are rejected.
    pub num: u32,
    pub method: Method,
    pub method_span: Span,
}

/// Parses the CSeq value `value` (absolute span in `b`). Folding between
/// number and method is allowed (RFC 4475 §3.1.1.1).
pub fn parse_cseq(b: &[u8], value: Span) -> Result<CSeq, ParseError> {
    let (s, e) = trim(b, value.start as usize, value.end());
    let mut i = s;
    while i < e && b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let num = parse_u32(b.get(s..i).unwrap_or(&[])).ok_or(ParseError::BadCSeq)?;
    if !b.get(i).copied().is_some_and(is_lws) {
        return Err(ParseError::BadCSeq);
    }
    let ms = skip_lws(b, i, e);
    let me = skip_token(b, ms, e);
    if me == ms || me != e {
        return Err(ParseError::BadCSeq);
    }
    let method_span = Span::from_to(ms, me);
    Ok(CSeq {
        num,
        method: Method::from_bytes(method_span.get(b)),
        method_span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(s: &[u8]) -> Result<CSeq, ParseError> {
        parse_cseq(s, Span::new(0, s.len()))
    }

    #[test]
    fn cases() {
        let c = cs(b" 4711 INVITE ").unwrap();
        assert_eq!((c.num, c.method), (4711, Method::Invite));
        let s = b"\r\n 0009\r\n  INVITE";
        let c = cs(s).unwrap();
        assert_eq!(c.num, 9);
        assert_eq!(c.method_span.get(s), b"INVITE");
        let c = cs(b"4294967295 RE%47IST%45R").unwrap();
        assert_eq!((c.num, c.method), (u32::MAX, Method::Other));
        for bad in [
            &b"4294967296 INVITE"[..],
            b"36893488147419103232 INVITE",
            b"1",
            b"INVITE",
            b"1INVITE",
            b"-1 INVITE",
            b"1 INVITE x",
            b"1 INV(TE",
            b"",
        ] {
            assert!(cs(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
