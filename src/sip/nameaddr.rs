//! From, To, Contact, Route-style values (RFC 3261 §20.10, §20.20, §20.39,
//! §25.1 `name-addr` / `addr-spec`). Spans are absolute in the buffer.

use super::error::ParseError;
use super::scan::{
    at, find_comma, is_lws, is_token, next_param, parse_u32, skip_lws, skip_quoted, trim,
};
use super::span::Span;
use super::uri::parse_uri;

#[derive(Clone, Copy, Debug)]
pub struct NameAddr {
    /// The display name as written (quotes included when quoted); `None`
    /// when absent or empty.
    pub display: Option<Span>,
    /// The URI (inside `<>` when present).
    pub uri: Span,
    /// After the first `;` following the URI to the end; empty if none.
    pub params: Span,
    /// Value of the `tag` parameter.
    pub tag: Option<Span>,
}

/// One element of a Contact header.
#[derive(Clone, Copy, Debug)]
pub struct Contact {
    /// `Contact: *` (then `addr` is empty).
    pub star: bool,
    pub addr: NameAddr,
    /// `q` times 1000 (0..=1000).
    pub q: Option<u16>,
    /// The `expires` parameter; `None` when absent or not a number below
    /// 2^32 (RFC 3261 §10.3 lets a registrar use its default then).
    pub expires: Option<u32>,
}

/// Parses `value` (absolute span) as one name-addr or addr-spec followed
/// by parameters. The URI is checked with `parse_uri`; whitespace inside
/// `<>` is rejected (RFC 4475 §3.1.2.14), and so is a bare addr-spec
/// holding `?` (RFC 3261 §20.10).
pub fn parse_name_addr(buf: &[u8], value: Span) -> Result<NameAddr, ParseError> {
    let bad = ParseError::BadNameAddr;
    let (s, e) = trim(buf, value.start as usize, value.end());
    if s >= e {
        return Err(bad);
    }
    let mut display = None;
    let mut laquot = None;
    if at(buf, s) == b'"' {
        let q = skip_quoted(buf, s, e).ok_or(bad)?;
        display = Some(Span::from_to(s, q));
        let l = skip_lws(buf, q, e);
        if at(buf, l) != b'<' || l >= e {
            return Err(bad);
        }
        laquot = Some(l);
    } else {
        // *(token LWS) then '<' means name-addr; anything else is addr-spec
        let mut i = s;
        while i < e && (is_token(at(buf, i)) || is_lws(at(buf, i))) {
            i += 1;
        }
        if i < e && at(buf, i) == b'<' {
            let (ds, de) = trim(buf, s, i);
            if de > ds {
                display = Some(Span::from_to(ds, de));
            }
            laquot = Some(i);
        }
    }
    let (uri, after) = match laquot {
        Some(l) => {
            let rel = memchr::memchr(b'>', buf.get(l..e).unwrap_or(&[])).ok_or(bad)?;
            let r = l + rel;
            (Span::from_to(l + 1, r), r + 1)
        }
        None => {
            let rest = buf.get(s..e).unwrap_or(&[]);
            let ue = s + memchr::memchr(b';', rest).unwrap_or(rest.len());
            let (us, ue2) = trim(buf, s, ue);
            let u = Span::from_to(us, ue2);
            if memchr::memchr(b'?', u.get(buf)).is_some() {
                return Err(bad);
            }
            (u, ue)
        }
    };
    parse_uri(uri.get(buf)).map_err(|_| bad)?;
    let mut na = NameAddr {
        display,
        uri,
        params: Span::new(e, 0),
        tag: None,
    };
    let mut i = skip_lws(buf, after, e);
    if i < e {
        if at(buf, i) != b';' {
            return Err(bad);
        }
        na.params = Span::from_to(i + 1, e);
    }
    while i < e {
        let p = next_param(buf, i, e).ok_or(bad)?;
        if buf
            .get(p.name.0..p.name.1)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"tag"))
        {
            na.tag = Some(p.value.map(|(a, z)| Span::from_to(a, z)).ok_or(bad)?);
        }
        i = p.end;
        if i < e && at(buf, i) != b';' {
            return Err(bad);
        }
    }
    Ok(na)
}

/// Parses `qvalue` (RFC 3261 §25.1) into thousandths.
fn parse_q(v: &[u8]) -> Option<u16> {
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(d) => (v.get(..d)?, v.get(d + 1..)?),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut f: u16 = 0;
    for k in 0..3 {
        f = f * 10 + frac.get(k).map(|c| u16::from(c - b'0')).unwrap_or(0);
    }
    match int {
        b"0" => Some(f),
        b"1" if f == 0 => Some(1000),
        _ => None,
    }
}

/// Parses a Contact value: `*` or a comma-separated list of contacts.
/// A malformed `q` is an error; see `Contact::expires` for `expires`.
pub fn parse_contacts(buf: &[u8], value: Span) -> Result<Vec<Contact>, ParseError> {
    let bad = ParseError::BadNameAddr;
    let (s, e) = trim(buf, value.start as usize, value.end());
    if buf.get(s..e) == Some(b"*") {
        let addr = NameAddr {
            display: None,
            uri: Span::new(s, 0),
            params: Span::new(e, 0),
            tag: None,
        };
        return Ok(vec![Contact {
            star: true,
            addr,
            q: None,
            expires: None,
        }]);
    }
    let mut out = Vec::new();
    let mut i = s;
    loop {
        let c = find_comma(buf, i, e).ok_or(bad)?;
        let addr = parse_name_addr(buf, Span::from_to(i, c))?;
        let mut contact = Contact {
            star: false,
            addr,
            q: None,
            expires: None,
        };
        let (ps, pe) = (addr.params.start as usize, addr.params.end());
        let mut j = if addr.params.is_empty() {
            pe
        } else {
            ps.saturating_sub(1)
        };
        while j < pe {
            let p = next_param(buf, j, pe).ok_or(bad)?;
            let name = buf.get(p.name.0..p.name.1).unwrap_or(&[]);
            let val = p.value.and_then(|(a, z)| buf.get(a..z)).unwrap_or(&[]);
            if name.eq_ignore_ascii_case(b"q") {
                contact.q = Some(parse_q(val).ok_or(bad)?);
            } else if name.eq_ignore_ascii_case(b"expires") {
                contact.expires = parse_u32(val);
            }
            j = p.end;
        }
        out.push(contact);
        if c >= e {
            return Ok(out);
        }
        i = c + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &[u8]) -> Result<NameAddr, ParseError> {
        parse_name_addr(s, Span::new(0, s.len()))
    }

    #[test]
    fn forms() {
        let s = b"\"Bob \\\"B\\\" <x>\" <sip:bob@biloxi.example.com>;tag=a6c85cf ; foo=\"b;r\"";
        let a = na(s).unwrap();
        assert_eq!(a.display.unwrap().get(s), b"\"Bob \\\"B\\\" <x>\"");
        assert_eq!(a.uri.get(s), b"sip:bob@biloxi.example.com");
        assert_eq!(a.tag.unwrap().get(s), b"a6c85cf");
        assert!(a.params.get(s).starts_with(b"tag="));
        let s = b"Anonymous Caller<sip:c@example.com>";
        let a = na(s).unwrap();
        assert_eq!(a.display.unwrap().get(s), b"Anonymous Caller");
        let s = b"sip:user@example.com ;tag=9;x=1";
        let a = na(s).unwrap();
        assert_eq!(a.uri.get(s), b"sip:user@example.com");
        assert_eq!(a.tag.unwrap().get(s), b"9");
        let s = b" <sip:[::1]:5060;lr> ";
        let a = na(s).unwrap();
        assert!(a.display.is_none());
        assert!(a.tag.is_none());
        assert!(a.params.is_empty());
        assert_eq!(a.uri.get(s), b"sip:[::1]:5060;lr");
    }

    #[test]
    fn invalid() {
        for s in [
            &b""[..],
            b"\"unterminated <sip:a@b>",
            b"Bell, Alexander <sip:a@b>",
            b"\"W\" < sip:a@b >",
            b"<sip:a@b",
            b"<sip:a@b> x",
            b"sip:a@b?Route=x",
            b"<sip:a@b>;tag",
            b"<sip:a@b>;;",
            b"<sip:a@b>, <sip:c@d>",
            b"\"x\"",
            b"<>",
        ] {
            assert!(na(s).is_err(), "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn contacts() {
        let s =
            b"<sip:a@h1>;q=0.7;expires=60, \"B, b\" <sip:b,x@h2>;q=1 ,sip:c@h3;expires=99999999999";
        let v = parse_contacts(s, Span::new(0, s.len())).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!((v[0].q, v[0].expires), (Some(700), Some(60)));
        assert_eq!(v[1].addr.uri.get(s), b"sip:b,x@h2");
        assert_eq!(v[1].q, Some(1000));
        assert_eq!((v[2].q, v[2].expires), (None, None));
        let v = parse_contacts(b" * ", Span::new(0, 3)).unwrap();
        assert!(v[0].star);
        for s in [
            &b"<sip:a@h>;q=1.5"[..],
            b"<sip:a@h>;q=",
            b"<sip:a@h>,",
            b"sip:u@h?Route=%3Csip:x%3E",
            b"<sip:a@h>;;,;,,",
        ] {
            assert!(
                parse_contacts(s, Span::new(0, s.len())).is_err(),
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
        assert_eq!(parse_q(b"0.123"), Some(123));
        assert_eq!(parse_q(b"1.000"), Some(1000));
        assert_eq!(parse_q(b"0.1234"), None);
    }
}
