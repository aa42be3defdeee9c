//! The SIP message target: parsing (tier 1), validation (tier 2), every
//! typed accessor, reply building, forwarding edits and stream framing.

use crate::sip::stream::fuzz_feed;
use crate::sip::*;

/// Fuzz target body: the input as a datagram, then as a TCP byte stream.
pub fn message(data: &[u8]) {
    exercise(data.to_vec());
    assert!(
        fuzz_feed(data),
        "stream framing differs whole and in chunks"
    );
}

/// Calls every accessor and builder; returns nothing, only must not panic.
pub fn exercise(buf: Vec<u8>) {
    let m = match Msg::parse(buf) {
        Ok(m) => m,
        Err(f) => {
            let _ = (f.error.reply_code(), f.error.kind());
            return;
        }
    };
    if let Err(e) = m.validate() {
        let _ = (e.reply_code(), e.kind());
    }
    let _ = m.validate_for(true);
    let _ = (
        m.first_line(),
        m.first_line_span(),
        m.is_request(),
        m.method(),
        m.method_bytes(),
    );
    let _ = (
        m.ruri(),
        m.ruri_span(),
        m.status(),
        m.reason(),
        m.body(),
        m.body_span(),
        m.headers_end(),
    );
    let _ = (
        m.via1(),
        m.via2(),
        m.vias(),
        m.cseq(),
        m.from(),
        m.to(),
        m.call_id(),
    );
    let _ = (m.content_length(), m.max_forwards(), m.version());
    let _ =
        parse_uri(m.ruri()).map(|u| (u.param(m.ruri(), b"lr"), u.param(m.ruri(), b"transport")));
    for h in m.headers() {
        let v = m.value(h);
        let _ = (
            h.name.get(m.buf()),
            h.line.get(m.buf()),
            m.find_header(h.name.get(m.buf())),
        );
        match h.kind {
            HdrKind::Contact | HdrKind::Route | HdrKind::RecordRoute => {
                let _ = parse_contacts(m.buf(), h.value);
            }
            HdrKind::From | HdrKind::To => {
                let _ = parse_name_addr(m.buf(), h.value);
            }
            HdrKind::CSeq => {
                let _ = parse_cseq(m.buf(), h.value);
            }
            _ => {
                let _ = parse_uri(v);
            }
        }
    }
    let opts = ReplyOpts {
        to_tag: Some(b"abc"),
        via1_extra: b";received=192.0.2.1",
        via1_drop: &[],
        extra_headers: b"X-A: b\r\n",
        body: b"",
        server_header: Some(b"ser"),
    };
    let mut out = Vec::new();
    for code in [100, 180, 200, 400, 487] {
        out.clear();
        if build_reply(&m, code, b"Reason", &opts, &mut out).is_ok() {
            // what we build from a parsable request must parse again
            assert!(
                Msg::parse(out.clone()).is_ok(),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
    // forwarding-style edits from the message's own spans
    let mut l = Lumps::default();
    if let Some(h) = m.headers().first() {
        l.delete(h.line);
    }
    if let Some(h) = m.headers().get(1) {
        l.replace(h.value, b"x");
        l.insert(h.line.start as usize, b"Via: x\r\n");
    }
    l.replace(m.ruri_span(), b"sip:a@b");
    l.insert(m.headers_end(), b"X: y\r\n");
    out.clear();
    let _ = l.apply(m.buf(), &mut out);
    let _ = m.into_buf();
}
