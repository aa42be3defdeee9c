//! The Record-Route line `record_route()` and `record_route_preset()` add
//! (RFC 3261 §16.6 step 4): our URI with `lr`, and the From tag as `ftag`
//! so later requests tell caller from callee (`is_direction`).

use crate::route::ctx::record_route_line;
use crate::sip::{Msg, ParseError};

/// How the URI of our Record-Route entry is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrStyle {
    /// `;lr=on` instead of `;lr` (SER's `enable_full_lr`): some broken UAs
    /// drop a bare `lr` when they copy Record-Route into Route.
    pub full_lr: bool,
    /// Add `;ftag=<From tag>` (SER's `append_fromtag`).
    pub append_fromtag: bool,
}

impl Default for RrStyle {
    /// SER 0.9's defaults: bare `lr`, From tag appended.
    fn default() -> Self {
        RrStyle {
            full_lr: false,
            append_fromtag: true,
        }
    }
}

/// The tag the entry carries: `Ok(None)` when not wanted or the From has
/// none; an error when it is wanted and the From cannot be parsed.
pub fn from_tag(msg: &Msg, style: RrStyle) -> Result<Option<&[u8]>, ParseError> {
    if !style.append_fromtag {
        return Ok(None);
    }
    let from = msg.from()?;
    Ok(from.tag.map(|t| t.get(msg.buf())).filter(|t| !t.is_empty()))
}

/// One complete header line: `Record-Route: <sip:TARGET[;ftag=T];lr>` +
/// CRLF. `target` is what follows `sip:` (a socket's `host:port`, or the
/// literal string of `record_route_preset`).
pub fn rr_line(target: &[u8], ftag: Option<&[u8]>, style: RrStyle) -> Vec<u8> {
    record_route_line(target, &rr_params(ftag, style))
}

/// The URI parameters after the target: `[;ftag=T];lr` (or `;lr=on`).
pub fn rr_params(ftag: Option<&[u8]>, style: RrStyle) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + ftag.map_or(0, <[u8]>::len));
    if let Some(tag) = ftag {
        out.extend_from_slice(b";ftag=");
        out.extend_from_slice(tag);
    }
    out.extend_from_slice(if style.full_lr { b";lr=on" } else { b";lr" });
    out
}

/// Where the Record-Route line goes: in front of the first header line,
/// i.e. right after the request line, so it ends up topmost.
pub fn rr_insert_at(msg: &Msg) -> usize {
    msg.headers()
        .first()
        .map_or(msg.headers_end(), |h| h.line.start as usize)
}

/// The preset argument as the part after `sip:`. SER prefixes `sip:`
/// itself; a scheme written in the config anyway would make `sip:sip:`,
/// so a leading `sip:` is dropped rather than doubled.
pub fn preset_target(preset: &str) -> &str {
    let p = preset.trim();
    match p.get(..4) {
        Some(s) if s.eq_ignore_ascii_case("sip:") => p.get(4..).unwrap_or(""),
        _ => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Proto;
    use crate::route::forward::transport_target;

    fn msg(from: &str) -> Msg {
        let raw = format!(
            "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1\r\n\
             From: {from}\r\nTo: <sip:bob@b.example>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        );
        Msg::parse(raw.into_bytes()).unwrap()
    }

    #[test]
    fn line_forms() {
        let d = RrStyle::default();
        assert_eq!(
            rr_line(b"10.0.0.1:5060", Some(b"abc"), d),
            b"Record-Route: <sip:10.0.0.1:5060;ftag=abc;lr>\r\n"
        );
        let full = RrStyle {
            full_lr: true,
            append_fromtag: true,
        };
        assert_eq!(
            rr_line(b"10.0.0.1:5060", None, full),
            b"Record-Route: <sip:10.0.0.1:5060;lr=on>\r\n"
        );
        let t = transport_target("[2001:db8::1]", 5070, Proto::Tcp);
        assert_eq!(t, "[2001:db8::1]:5070;transport=tcp");
        assert_eq!(
            rr_line(t.as_bytes(), Some(b"x"), full),
            b"Record-Route: <sip:[2001:db8::1]:5070;transport=tcp;ftag=x;lr=on>\r\n".to_vec()
        );
        assert_eq!(
            transport_target("1.2.3.4", 5060, Proto::Udp),
            "1.2.3.4:5060"
        );
        assert_eq!(
            transport_target("h", 5061, Proto::Tls),
            "h:5061;transport=tls"
        );
    }

    #[test]
    fn ftag_from_message() {
        let d = RrStyle::default();
        let m = msg("\"A\" <sip:a@a.example>;tag=f1");
        assert_eq!(from_tag(&m, d).unwrap(), Some(&b"f1"[..]));
        let off = RrStyle {
            append_fromtag: false,
            ..d
        };
        assert_eq!(from_tag(&m, off).unwrap(), None);
        let m = msg("<sip:a@a.example>");
        assert_eq!(from_tag(&m, d).unwrap(), None);
        let m = msg("<sip:a@a.example");
        assert!(from_tag(&m, d).is_err());
        // without ftag the From does not matter
        assert_eq!(from_tag(&m, off).unwrap(), None);
    }

    #[test]
    fn inserted_first() {
        let m = msg("<sip:a@a.example>;tag=1");
        let at = rr_insert_at(&m);
        assert_eq!(&m.buf()[..at], b"INVITE sip:bob@b.example SIP/2.0\r\n");
    }

    #[test]
    fn preset() {
        assert_eq!(preset_target("1.2.3.4:5090"), "1.2.3.4:5090");
        assert_eq!(
            preset_target(" SIP:proxy.example;x=1 "),
            "proxy.example;x=1"
        );
        assert_eq!(preset_target("sip"), "sip");
    }
}
