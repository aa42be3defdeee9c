//! The Via header (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).
//! Spans are absolute in the message buffer.

use super::error::ParseError;
use super::scan::{at, find_comma, next_param, parse_u16, skip_lws, skip_token, trim};
use super::span::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Other,
}

impl Transport {
    pub fn from_bytes(b: &[u8]) -> Transport {
        if b.eq_ignore_ascii_case(b"UDP") {
            Transport::Udp
        } else if b.eq_ignore_ascii_case(b"TCP") {
            Transport::Tcp
        } else if b.eq_ignore_ascii_case(b"TLS") {
            Transport::Tls
        } else if b.eq_ignore_ascii_case(b"SCTP") {
            Transport::Sctp
        } else {
            Transport::Other
        }
    }
}

/// One via-parm.
#[derive(Clone, Copy, Debug)]
pub struct Via {
    /// The whole via-parm, trimmed.
    pub span: Span,
    pub transport: Transport,
    pub transport_span: Span,
    /// sent-by host; IPv6 keeps its brackets.
    pub host: Span,
    pub port: Option<u16>,
    /// After the first `;` to the end of the via-parm; empty if none.
    pub params: Span,
    pub branch: Option<Span>,
    pub received: Option<Span>,
    /// `Some(None)` for a bare `;rport`, `Some(Some(n))` for `;rport=n`.
    pub rport: Option<Option<u16>>,
    /// The whole `;rport[=n]` including the `;`, to replace it in place.
    pub rport_span: Option<Span>,
    pub maddr: Option<Span>,
    pub ttl: Option<u8>,
}

/// Parses the via-parm occupying exactly `start..end` of `b`.
pub fn parse_via_parm(b: &[u8], start: usize, end: usize) -> Result<Via, ParseError> {
    let (start, end) = trim(b, start, end);
    let bad = ParseError::BadVia;
    // sent-protocol: name LWS? "/" LWS? version LWS? "/" LWS? transport
    let mut i = start;
    let ne = skip_token(b, i, end);
    if !b.get(i..ne).is_some_and(|n| n.eq_ignore_ascii_case(b"SIP")) {
        return Err(bad);
    }
    i = skip_lws(b, ne, end);
    if at(b, i) != b'/' || i >= end {
        return Err(bad);
    }
    i = skip_lws(b, i + 1, end);
    let ve = skip_token(b, i, end);
    if ve == i {
        return Err(bad);
    }
    i = skip_lws(b, ve, end);
    if at(b, i) != b'/' || i >= end {
        return Err(bad);
    }
    let ts = skip_lws(b, i + 1, end);
    let te = skip_token(b, ts, end);
    if te == ts {
        return Err(bad);
    }
    let transport_span = Span::from_to(ts, te);
    let transport = Transport::from_bytes(transport_span.get(b));
    // LWS then sent-by
    let hs = skip_lws(b, te, end);
    if hs == te {
        return Err(bad);
    }
    let mut he = hs;
    if at(b, hs) == b'[' {
        let rel = memchr::memchr(b']', b.get(hs..end).unwrap_or(&[])).ok_or(bad)?;
        he = hs + rel + 1;
        let inner = b.get(hs + 1..he - 1).unwrap_or(&[]);
        if inner.is_empty()
            || !inner
                .iter()
                .all(|c| c.is_ascii_hexdigit() || *c == b':' || *c == b'.')
        {
            return Err(bad);
        }
    } else {
        while he < end
            && (at(b, he).is_ascii_alphanumeric() || matches!(at(b, he), b'-' | b'.' | b'_'))
        {
            he += 1;
        }
        if he == hs {
            return Err(bad);
        }
    }
    let host = Span::from_to(hs, he);
    i = skip_lws(b, he, end);
    let mut port = None;
    if i < end && at(b, i) == b':' {
        let ps = skip_lws(b, i + 1, end);
        let mut pe = ps;
        while pe < end && at(b, pe).is_ascii_digit() {
            pe += 1;
        }
        port = Some(parse_u16(b.get(ps..pe).unwrap_or(&[])).ok_or(bad)?);
        i = skip_lws(b, pe, end);
    }
    let mut via = Via {
        span: Span::from_to(start, end),
        transport,
        transport_span,
        host,
        port,
        params: Span::new(end, 0),
        branch: None,
        received: None,
        rport: None,
        rport_span: None,
        maddr: None,
        ttl: None,
    };
    if i < end {
        if at(b, i) != b';' {
            return Err(bad);
        }
        via.params = Span::from_to(i + 1, end);
    }
    while i < end {
        let p = next_param(b, i, end).ok_or(bad)?;
        let name = b.get(p.name.0..p.name.1).unwrap_or(&[]);
        let val = p.value.map(|(s, e)| Span::from_to(s, e));
        if name.eq_ignore_ascii_case(b"branch") {
            via.branch = Some(val.ok_or(bad)?);
        } else if name.eq_ignore_ascii_case(b"received") {
            via.received = Some(val.ok_or(bad)?);
        } else if name.eq_ignore_ascii_case(b"rport") {
            via.rport = Some(match val {
                Some(v) => Some(parse_u16(v.get(b)).ok_or(bad)?),
                None => None,
            });
            let (_, e) = trim(b, p.semi, p.end);
            via.rport_span = Some(Span::from_to(p.semi, e));
        } else if name.eq_ignore_ascii_case(b"maddr") {
            via.maddr = Some(val.ok_or(bad)?);
        } else if name.eq_ignore_ascii_case(b"ttl") {
            let t = val
                .and_then(|v| super::scan::parse_u32(v.get(b)))
                .ok_or(bad)?;
            via.ttl = Some(u8::try_from(t).map_err(|_| bad)?);
        }
        i = p.end;
        if i < end && at(b, i) != b';' {
            return Err(bad);
        }
    }
    Ok(via)
}

/// Parses the first via-parm of the Via value `value` and returns it with
/// the index just after it (the comma, or the end of the value).
pub fn parse_first_via(b: &[u8], value: Span) -> Result<(Via, usize), ParseError> {
    let (s, e) = (value.start as usize, value.end());
    let comma = find_comma(b, s, e).ok_or(ParseError::BadVia)?;
    Ok((parse_via_parm(b, s, comma)?, comma))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(s: &[u8]) -> Result<Via, ParseError> {
        parse_via_parm(s, 0, s.len())
    }

    #[test]
    fn typical() {
        let s = b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=10.0.0.9;ttl=16;maddr=224.2.0.1";
        let v = via(s).unwrap();
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.transport_span.get(s), b"UDP");
        assert_eq!(v.host.get(s), b"192.0.2.1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch.unwrap().get(s), b"z9hG4bK776");
        assert_eq!(v.rport, Some(None));
        assert_eq!(v.rport_span.unwrap().get(s), b";rport");
        assert_eq!(v.received.unwrap().get(s), b"10.0.0.9");
        assert_eq!(v.ttl, Some(16));
        assert_eq!(v.maddr.unwrap().get(s), b"224.2.0.1");
        assert!(v.params.get(s).starts_with(b"branch="));
        assert_eq!(v.span.get(s), &s[..]);
    }

    #[test]
    fn spacing_ipv6_and_rport_value() {
        // LWS around the slashes and folded, as RFC 4475 §3.1.1.1 allows
        let s = b"SIP  /   2.0\r\n /tcp\r\n    [2001:db8::9] : 5061 ; rport=1234 ;branch=z9hG4bK-x";
        let v = via(s).unwrap();
        assert_eq!(v.transport, Transport::Tcp);
        assert_eq!(v.host.get(s), b"[2001:db8::9]");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.rport, Some(Some(1234)));
        assert_eq!(v.rport_span.unwrap().get(s), b"; rport=1234");
        assert_eq!(v.branch.unwrap().get(s), b"z9hG4bK-x");
        let s = b"SIP/2.0/FOO example.com";
        let v = via(s).unwrap();
        assert_eq!(v.transport, Transport::Other);
        assert_eq!(v.port, None);
        assert!(v.params.is_empty());
    }

    #[test]
    fn first_of_several() {
        let s = b"SIP/2.0/UDP a.example;branch=1 , SIP/2.0/TLS b.example:5061";
        let (v, next) = parse_first_via(s, Span::new(0, s.len())).unwrap();
        assert_eq!(v.host.get(s), b"a.example");
        assert_eq!(v.span.get(s), b"SIP/2.0/UDP a.example;branch=1");
        assert_eq!(s[next], b',');
    }

    #[test]
    fn invalid() {
        for s in [
            &b""[..],
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDP ",
            b"SIP/2.0 UDP h",
            b"SIP/2.0/UDPh",
            b"SIP/2.0/UDP h:70000",
            b"SIP/2.0/UDP h;;",
            b"SIP/2.0/UDP h;branch",
            b"SIP/2.0/UDP h x",
            b"SIP/2.0/UDP [zz]",
            b"SIP/2.0/UDP h;ttl=300",
            b"SIP/2.0/UDP h;rport=x",
            b"HTTP/1.1/TCP h",
            b"SIP/2.0/UDP h;branch=\"unterminated",
        ] {
            assert!(via(s).is_err(), "{:?}", String::from_utf8_lossy(s));
        }
    }
}
