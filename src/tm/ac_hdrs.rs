//! `ac_extra_hdrs` (SER 2.1): header fields of the INVITE a branch sent
//! whose name starts with a configured prefix are carried over into the
//! CANCEL and the negative ACK tm builds for that branch (an application
//! may need to see them on every request of the transaction).

use crate::sip::{HdrKind, Msg};

/// Fields the CANCEL/ACK builder writes itself, or that describe a body
/// or a target the CANCEL/ACK does not have: never copied, whatever the
/// prefix (RFC 3261 fixes them for these requests).
const BUILT_OR_BARRED: &[HdrKind] = &[
    HdrKind::Via,
    HdrKind::From,
    HdrKind::To,
    HdrKind::CallId,
    HdrKind::CSeq,
    HdrKind::MaxForwards,
    HdrKind::Route,
    HdrKind::RecordRoute,
    HdrKind::UserAgent,
    HdrKind::Contact,
    HdrKind::ContentLength,
    HdrKind::ContentType,
    HdrKind::ContentEncoding,
];

/// Insert into `built` (a CANCEL or ACK ending with its empty line) the
/// header lines of `sent` whose name starts with `prefix`, ignoring case.
/// An empty prefix copies nothing.
pub fn copy_prefixed(sent: &Msg, prefix: &str, built: &mut Vec<u8>) {
    let p = prefix.as_bytes();
    if p.is_empty() || !built.ends_with(b"\r\n\r\n") {
        return;
    }
    let mut lines = Vec::new();
    for h in sent.headers() {
        let name = h.name.get(sent.buf());
        let hit = name.len() >= p.len()
            && name
                .get(..p.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(p))
            && !BUILT_OR_BARRED.contains(&h.kind);
        if hit {
            let line = h.line.get(sent.buf());
            lines.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                lines.extend_from_slice(b"\r\n");
            }
        }
    }
    if lines.is_empty() {
        return;
    }
    // Before the empty line that ends the headers.
    let at = built.len() - 2;
    built.splice(at..at, lines);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{build_ack_cancel, HopRequest};

    fn invite() -> Msg {
        let raw = b"INVITE sip:b@10.0.0.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n\
From: <sip:a@x>;tag=f\r\nTo: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
x-foo-a: 1\r\nX-Bar: 2\r\nX-Foo-B: two,\r\n three\r\nX-Food: 4\r\n\
Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
            .to_vec();
        Msg::parse(raw).map_err(|f| f.error).unwrap()
    }

    fn cancel(prefix: &str) -> String {
        let inv = invite();
        let mut out = Vec::new();
        build_ack_cancel(&inv, HopRequest::Cancel, None, None, &mut out).unwrap();
        copy_prefixed(&inv, prefix, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn prefixed_fields_are_copied_any_case_and_folded_whole() {
        let c = cancel("X-Foo-");
        assert!(c.contains("\r\nx-foo-a: 1\r\n"), "{c}");
        assert!(c.contains("\r\nX-Foo-B: two,\r\n three\r\n"), "{c}");
        assert!(!c.contains("X-Bar") && !c.contains("X-Food"), "{c}");
        assert!(c.ends_with("\r\n\r\n"));
        let m = Msg::parse(c.into_bytes()).map_err(|f| f.error).unwrap();
        assert!(m.find_header(b"X-Foo-A").is_some());
    }

    #[test]
    fn empty_prefix_and_built_fields_copy_nothing() {
        let plain = cancel("");
        assert!(!plain.contains("X-"), "{plain}");
        // "C" would match Call-ID, CSeq, Content-Type: none is copied.
        assert_eq!(cancel("C"), plain);
    }
}
