//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966 loosely).
//! Spans are relative to the slice given to `parse_uri`.

use super::error::ParseError;
use super::scan::at;
use super::span::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other well-formed scheme; the rest of the URI is left unsplit.
    Other,
}

#[derive(Clone, Copy, Debug)]
pub struct Uri {
    pub scheme: Scheme,
    /// The user part, escapes kept (a tel URI's number lands here).
    pub user: Option<Span>,
    pub password: Option<Span>,
    /// Host; an IPv6 reference keeps its brackets. Empty for tel/other.
    pub host: Span,
    pub port: Option<u16>,
    /// The digits of the port.
    pub port_span: Option<Span>,
    /// After the first `;` up to `?` (or the end); empty if none.
    pub params: Span,
    /// After `?`; empty if none.
    pub headers: Span,
    /// Value of `transport=`.
    pub transport: Option<Span>,
    /// Value of `maddr=`.
    pub maddr: Option<Span>,
    /// The `lr` flag (RFC 3261 §19.1.1).
    pub lr: bool,
}

/// Characters never allowed in a URI as it appears on the wire.
fn forbidden(c: u8) -> bool {
    c <= b' ' || c >= 0x7f || matches!(c, b'<' | b'>' | b'"' | b'\\' | b'{' | b'}' | b'|' | b'^')
}

/// Every `%` must introduce two hex digits.
fn escapes_ok(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if at(s, i) == b'%' {
            if !(at(s, i + 1).is_ascii_hexdigit() && at(s, i + 2).is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn host_ok(h: &[u8]) -> bool {
    match h {
        [] => false,
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|c| c.is_ascii_hexdigit() || *c == b':' || *c == b'.')
        }
        _ => h
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.' || *c == b'_'),
    }
}

/// Parses a URI. Rejects whitespace, `<>` and other characters a URI may
/// not contain, bad escapes, empty hosts and ports above 65535.
pub fn parse_uri(s: &[u8]) -> Result<Uri, ParseError> {
    if s.iter().any(|&c| forbidden(c)) || !escapes_ok(s) {
        return Err(ParseError::BadUri);
    }
    let colon = memchr::memchr(b':', s).ok_or(ParseError::BadUri)?;
    let scheme_b = s.get(..colon).unwrap_or(&[]);
    let scheme_ok = matches!(scheme_b.first(), Some(c) if c.is_ascii_alphabetic())
        && scheme_b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(ParseError::BadUri);
    }
    let scheme = if scheme_b.eq_ignore_ascii_case(b"sip") {
        Scheme::Sip
    } else if scheme_b.eq_ignore_ascii_case(b"sips") {
        Scheme::Sips
    } else if scheme_b.eq_ignore_ascii_case(b"tel") {
        Scheme::Tel
    } else {
        Scheme::Other
    };
    let mut u = Uri {
        scheme,
        user: None,
        password: None,
        host: Span::new(s.len(), 0),
        port: None,
        port_span: None,
        params: Span::new(s.len(), 0),
        headers: Span::new(s.len(), 0),
        transport: None,
        maddr: None,
        lr: false,
    };
    let rest = colon + 1;
    match scheme {
        Scheme::Other => {
            if rest >= s.len() {
                return Err(ParseError::BadUri);
            }
            return Ok(u);
        }
        Scheme::Tel => {
            let tail = s.get(rest..).unwrap_or(&[]);
            let num_end = rest + memchr::memchr(b';', tail).unwrap_or(tail.len());
            if num_end == rest {
                return Err(ParseError::BadUri);
            }
            u.user = Some(Span::from_to(rest, num_end));
            if num_end < s.len() {
                u.params = Span::from_to(num_end + 1, s.len());
            }
            return Ok(u);
        }
        Scheme::Sip | Scheme::Sips => {}
    }
    // userinfo ends at the first '@': '@' is legal neither in host, params
    // nor headers, while the user part may hold ';' and '?' (§25.1).
    let tail = s.get(rest..).unwrap_or(&[]);
    let mut hs = rest;
    if let Some(a) = memchr::memchr(b'@', tail) {
        let ui_end = rest + a;
        let ui = s.get(rest..ui_end).unwrap_or(&[]);
        match memchr::memchr(b':', ui) {
            Some(p) => {
                u.user = Some(Span::from_to(rest, rest + p));
                u.password = Some(Span::from_to(rest + p + 1, ui_end));
            }
            None => u.user = Some(Span::from_to(rest, ui_end)),
        }
        if u.user.is_some_and(|x| x.is_empty()) {
            return Err(ParseError::BadUri);
        }
        hs = ui_end + 1;
    }
    // host
    let mut i = hs;
    if at(s, i) == b'[' {
        let rel = memchr::memchr(b']', s.get(i..).unwrap_or(&[])).ok_or(ParseError::BadUri)?;
        i += rel + 1;
    } else {
        while i < s.len() && !matches!(at(s, i), b':' | b';' | b'?') {
            i += 1;
        }
    }
    let host = s.get(hs..i).unwrap_or(&[]);
    if !host_ok(host) {
        return Err(ParseError::BadUri);
    }
    u.host = Span::from_to(hs, i);
    if at(s, i) == b':' && i < s.len() {
        let ps = i + 1;
        let mut pe = ps;
        while pe < s.len() && at(s, pe).is_ascii_digit() {
            pe += 1;
        }
        u.port =
            Some(super::scan::parse_u16(s.get(ps..pe).unwrap_or(&[])).ok_or(ParseError::BadUri)?);
        u.port_span = Some(Span::from_to(ps, pe));
        i = pe;
    }
    let tail = s.get(i..).unwrap_or(&[]);
    let q = i + memchr::memchr(b'?', tail).unwrap_or(tail.len());
    if at(s, i) == b';' && i < s.len() {
        u.params = Span::from_to(i + 1, q);
    } else if i != q {
        return Err(ParseError::BadUri);
    }
    if q < s.len() {
        u.headers = Span::from_to(q + 1, s.len());
    }
    // well-known parameters
    let params = u.params.get(s);
    for p in params.split(|&c| c == b';').filter(|_| !params.is_empty()) {
        let (name, value) = match memchr::memchr(b'=', p) {
            Some(e) => (p.get(..e).unwrap_or(&[]), Some(e)),
            None => (p, None),
        };
        if name.is_empty() {
            return Err(ParseError::BadUri);
        }
        let off = p.as_ptr() as usize - s.as_ptr() as usize;
        let val = value.map(|e| Span::from_to(off + e + 1, off + p.len()));
        if name.eq_ignore_ascii_case(b"transport") {
            u.transport = val;
        } else if name.eq_ignore_ascii_case(b"maddr") {
            u.maddr = val;
        } else if name.eq_ignore_ascii_case(b"lr") {
            u.lr = true;
        }
    }
    Ok(u)
}

impl Uri {
    /// Value of URI parameter `name` (case-insensitive); `Some(b"")` for a
    /// flag parameter such as `lr`.
    pub fn param<'a>(&self, s: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        for p in self.params.get(s).split(|&c| c == b';') {
            let (n, v): (&[u8], &[u8]) = match memchr::memchr(b'=', p) {
                Some(e) => (p.get(..e).unwrap_or(&[]), p.get(e + 1..).unwrap_or(&[])),
                None => (p, &[]),
            };
            if !n.is_empty() && n.eq_ignore_ascii_case(name) {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_sip_uri() {
        let s = b"sip:alice:pw@[2001:db8::1]:5070;transport=tcp;lr;maddr=10.0.0.1?Subject=hi";
        let u = parse_uri(s).unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.unwrap().get(s), b"alice");
        assert_eq!(u.password.unwrap().get(s), b"pw");
        assert_eq!(u.host.get(s), b"[2001:db8::1]");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.port_span.unwrap().get(s), b"5070");
        assert_eq!(u.params.get(s), b"transport=tcp;lr;maddr=10.0.0.1");
        assert_eq!(u.headers.get(s), b"Subject=hi");
        assert_eq!(u.transport.unwrap().get(s), b"tcp");
        assert_eq!(u.maddr.unwrap().get(s), b"10.0.0.1");
        assert!(u.lr);
        assert_eq!(u.param(s, b"LR"), Some(&b""[..]));
        assert_eq!(u.param(s, b"transport"), Some(&b"tcp"[..]));
        assert_eq!(u.param(s, b"nope"), None);
    }

    #[test]
    fn odd_but_valid() {
        // ';' inside the user part (modelled on RFC 4475 §3.1.1.9)
        let s = b"sip:someone;opt=x%40y.example@host.example.org";
        let u = parse_uri(s).unwrap();
        assert_eq!(u.user.unwrap().get(s), b"someone;opt=x%40y.example");
        assert_eq!(u.host.get(s), b"host.example.org");
        assert!(u.params.is_empty());
        // escapes, including %00, in the user part
        let s = b"SIPS:%61b%00c@h.example";
        let u = parse_uri(s).unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user.unwrap().get(s), b"%61b%00c");
        let s = b"tel:+1-555-0100;phone-context=example.com";
        let u = parse_uri(s).unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user.unwrap().get(s), b"+1-555-0100");
        assert_eq!(u.param(s, b"phone-context"), Some(&b"example.com"[..]));
        assert_eq!(
            parse_uri(b"urn:whatever-opaque").unwrap().scheme,
            Scheme::Other
        );
        assert_eq!(parse_uri(b"sip:h").unwrap().host, Span::new(4, 1));
    }

    #[test]
    fn invalid() {
        for s in [
            &b""[..],
            b"sip:",
            b"sip:user@",
            b"sip:@h",
            b"sip:h:99999",
            b"sip:h:",
            b"sip:h x",
            b"<sip:h>",
            b"sip:h;;a",
            b"sip:a%4@h",
            b"sip:[::1",
            b"sip:h/x",
            b"1ab:x",
            b"sip:h:5x",
            b"nocolon",
            b"sip:a b@h",
            b"x:",
        ] {
            assert!(parse_uri(s).is_err(), "{:?}", String::from_utf8_lossy(s));
        }
    }
}
