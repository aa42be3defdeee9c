//! A `400 Bad Request` for a request too broken to parse (RFC 4475 asks
//! for an answer, not silence, whenever one can be addressed): the header
//! lines a reply needs are picked from the raw bytes line by line. Only
//! when the first line is not a status line (a reply is never answered)
//! and a Via line parses; anything less is dropped.

use super::error::ParseError;
use super::hdr::HdrKind;
use super::span::Span;
use super::via::parse_first_via;

/// Header lines of at most this size are copied; longer ones make the
/// message unanswerable here (the reply must fit a datagram).
const MAX_LINE: usize = 2048;

/// The lines of the header block: split at LF, a CR before it removed,
/// ending at the first empty line. Folded lines are not joined: a Via
/// folded across lines is not readable here.
fn header_lines(buf: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= buf.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &buf[at..]).map_or(buf.len(), |i| at + i);
        let start = at;
        at = end + 1;
        let line = &buf[start..end];
        Some((start, line.strip_suffix(b"\r").unwrap_or(line)))
    })
    .take_while(|(_, l)| !l.is_empty())
}

/// `400` for the broken request in `buf` that failed with `why`, or None
/// when it cannot (or must not) be answered.
pub fn bad_request(buf: &[u8], why: &ParseError, to_tag: &str) -> Option<Vec<u8>> {
    let reason = format!("Bad Request ({why})");
    reply_to(buf, 400, reason.as_bytes(), to_tag)
}

/// `503` for the request in `buf` that could not be sent: the transport
/// failed (a refused connect, a TLS handshake that failed), which RFC 3261
/// 8.1.3.1 asks a client transaction to take as a 503. None for a reply,
/// an ACK (never answered), or what cannot be addressed.
pub fn service_unavailable(buf: &[u8], reason: &[u8], to_tag: &str) -> Option<Vec<u8>> {
    let first = header_lines(buf).next()?.1;
    if first.len() >= 4 && first[..4].eq_ignore_ascii_case(b"ACK ") {
        return None;
    }
    reply_to(buf, 503, reason, to_tag)
}

/// A `code` reply with `reason` to the request in `buf`, built from its
/// raw header lines; None when it cannot (or must not) be answered.
fn reply_to(buf: &[u8], code: u16, reason: &[u8], to_tag: &str) -> Option<Vec<u8>> {
    let mut lines = header_lines(buf);
    let (_, first) = lines.next()?;
    // A status line, or nothing that looks like `METHOD SP`: no answer.
    let method_len = first.iter().position(|&c| c == b' ')?;
    if first.len() >= 4 && first[..4].eq_ignore_ascii_case(b"SIP/")
        || method_len == 0
        || !first[..method_len].iter().all(u8::is_ascii_graphic)
    {
        return None;
    }
    let mut vias: Vec<&[u8]> = Vec::new();
    let mut rest: Vec<(HdrKind, &[u8])> = Vec::new();
    let mut via_ok = false;
    for (start, line) in lines {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let kind = HdrKind::from_name(trim(&line[..colon]));
        let wanted = matches!(
            kind,
            HdrKind::Via | HdrKind::From | HdrKind::To | HdrKind::CallId | HdrKind::CSeq
        );
        if !wanted {
            continue;
        }
        if line.len() > MAX_LINE || line.iter().any(|&c| c < 0x20 && c != b'\t') {
            return None;
        }
        if kind == HdrKind::Via {
            if vias.is_empty() {
                let value = Span::new(start + colon + 1, line.len() - colon - 1);
                via_ok = parse_first_via(buf, value).is_ok();
            }
            vias.push(line);
        } else if !rest.iter().any(|(k, _)| *k == kind) {
            rest.push((kind, line));
        }
    }
    if !via_ok {
        return None;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(format!("SIP/2.0 {code} ").as_bytes());
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    for v in vias {
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    for (kind, line) in rest {
        out.extend_from_slice(line);
        if kind == HdrKind::To && !contains_tag(line) {
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(to_tag.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(out)
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |i| i + 1);
    &b[s..e]
}

fn contains_tag(line: &[u8]) -> bool {
    line.windows(5).any(|w| w.eq_ignore_ascii_case(b";tag="))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHY: ParseError = ParseError::BadHeaderLine;

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(&bad_request(b, &WHY, "t1").expect("a 400")).into_owned()
    }

    #[test]
    fn answers_a_request_with_a_readable_via() {
        let req = b"OPTIONS  sip:a@b  SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx\r\n\
                    v: SIP/2.0/UDP 10.0.0.2\r\nf: <sip:a@b>;tag=1\r\nTo <broken\r\nTo: <sip:c@d>\r\n\
                    Call-ID: x1\r\nCSeq: 1 OPTIONS\r\nX: y\r\n\r\nbody";
        assert_eq!(
            text(req),
            "SIP/2.0 400 Bad Request (malformed header line)\r\n\
             Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx\r\nv: SIP/2.0/UDP 10.0.0.2\r\n\
             f: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=t1\r\nCall-ID: x1\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        // LF-only line ends are read too; an existing To-tag is kept.
        let lf = b"BYE sip:a@b SIP/2.0x\nVia: SIP/2.0/UDP h\nTo: <sip:c@d>;tag=9\n\n";
        assert!(text(lf).contains("\r\nTo: <sip:c@d>;tag=9\r\n"));
    }

    #[test]
    fn replies_unreadable_vias_and_garbage_get_nothing() {
        for b in [
            &b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n"[..],
            b"sip/2.0 99 x\r\nVia: SIP/2.0/UDP h\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP ;branch=x\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:a@b>\r\n\r\n",
            b"\r\n\r\n",
            b"",
            b"OPTIONS\r\nVia: SIP/2.0/UDP h\r\n\r\n",
            b" OPTIONS x\r\nVia: SIP/2.0/UDP h\r\n\r\n",
            b"\xff\xfe x\r\nVia: SIP/2.0/UDP h\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: a\x00b\r\n\r\n",
        ] {
            assert_eq!(
                bad_request(b, &WHY, "t"),
                None,
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn a_request_that_could_not_be_sent_gets_a_503_and_an_ack_nothing() {
        let inv = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/TCP p;branch=z9hG4bKa\r\n\
                    Via: SIP/2.0/UDP u;branch=z9hG4bKb\r\nFrom: <sip:a@h>;tag=1\r\n\
                    To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let r = service_unavailable(inv, b"Service Unavailable (connect refused)", "z").unwrap();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "SIP/2.0 503 Service Unavailable (connect refused)\r\n\
             Via: SIP/2.0/TCP p;branch=z9hG4bKa\r\nVia: SIP/2.0/UDP u;branch=z9hG4bKb\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=z\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let ack = b"ACK sip:b@h SIP/2.0\r\nVia: SIP/2.0/TCP p;branch=z9hG4bKa\r\n\r\n";
        assert_eq!(service_unavailable(ack, b"x", "z"), None);
        let reply = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP p;branch=z9hG4bKa\r\n\r\n";
        assert_eq!(service_unavailable(reply, b"x", "z"), None);
    }
}
