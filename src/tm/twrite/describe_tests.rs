//! Golden descriptions: the exact text an application reads.

use std::net::SocketAddr;

use super::*;
use crate::route::ctx::{AvpName, AvpValue};
use crate::sip::{HdrKind, Msg, ParseError};

/// A request from header lines (`\r\n` added) and a body; Content-Length
/// is computed so the fixture cannot disagree with itself.
fn msg(first: &str, headers: &[&str], body: &str) -> Msg {
    let mut s = format!("{first}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    Msg::parse(s.into_bytes()).unwrap()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n";

fn invite(rr: &[&str]) -> Msg {
    let mut h = vec!["Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds"];
    h.extend_from_slice(rr);
    h.extend_from_slice(&[
        "From: \"Alice\" <sip:alice@atlanta.com>;tag=1928301774",
        "To: Bob <sip:bob@example.com>",
        "Call-ID: a84b4c76e66710@pc33.atlanta.com",
        "CSeq: 314159 INVITE",
        "Contact: <sip:alice@pc33.atlanta.com;transport=udp>;expires=60",
        "s: lunch\r\n   today",
        "Content-Type: application/sdp",
    ]);
    msg("INVITE sip:bob@example.com SIP/2.0", &h, SDP)
}

fn rcv(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap()
}

#[test]
fn invite_loose_route_with_append_items() {
    let m = invite(&[
        "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>;x=1",
        "Record-Route: <sip:p0.example.com;lr>",
    ]);
    let list = parse_tw_append(
        "params:avp[callee_fr_timer]; Name=avp[s:user] ;X=avp[i:7];avp[i:8];hdr[Subject];\
         UA=hdr[User-Agent];B=msg[body]",
    )
    .unwrap();
    let avps = vec![
        (AvpName::Str(b"callee_fr_timer".to_vec()), AvpValue::Int(60)),
        (
            AvpName::Str(b"user".to_vec()),
            AvpValue::Str(b" joe ".to_vec()),
        ),
        (AvpName::Int(8), AvpValue::Str(b"two\r\nlines".to_vec())),
        (AvpName::Str(b"callee_fr_timer".to_vec()), AvpValue::Int(30)),
    ];
    let out = describe(
        &m,
        "voicemail",
        Some(&list),
        &avps,
        rcv("192.0.2.10:5060"),
        1234,
        5678,
        0x1a0,
    )
    .unwrap();
    let want = "0.2\n\
        sip_request.voicemail\n\
        INVITE\n\
        bob\n\
        .\n\
        example.com\n\
        192.0.2.10\n\
        .\n\
        sip:bob@example.com\n\
        sip:alice@pc33.atlanta.com;transport=udp\n\
        \"Alice\" <sip:alice@atlanta.com>;tag=1928301774\n\
        Bob <sip:bob@example.com>\n\
        a84b4c76e66710@pc33.atlanta.com\n\
        1928301774\n\
        \n\
        314159\n\
        1234:5678\n\
        <sip:p2.example.com;lr>,<sip:p1.example.com;lr>,<sip:p0.example.com;lr>\n\
        sip:p2.example.com;lr\n\
        P-MsgFlags: 0a1\n\
        callee_fr_timer: 30\n\
        Name: joe\n\
        8: two lines\n\
        Subject: lunch today\n\
        .\n\
        v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n\
        .\n";
    assert_eq!(text(out), want);
}

#[test]
fn strict_first_record_route() {
    let m = invite(&[
        "Record-Route: <sip:strict.example.com>",
        "Record-Route: <sip:p1.example.com;lr>",
    ]);
    let out = text(describe(&m, "app", None, &[], rcv("192.0.2.10:5080"), 1, 2, 0).unwrap());
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines[7], "5080");
    // RFC 3261 §12.2.1.1: strict route → it is the Request-URI, the remote
    // target closes the route set, no separate next hop.
    assert_eq!(lines[9], "sip:strict.example.com");
    assert_eq!(
        lines[17],
        "<sip:p1.example.com;lr>,<sip:alice@pc33.atlanta.com;transport=udp>"
    );
    assert_eq!(lines[18], ".");
    assert_eq!(lines[19], "P-MsgFlags: 0");
    assert_eq!(lines[20], ".");
    // INVITE: the body is sent without any append list
    assert!(out.ends_with(".\nv=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n.\n"));
}

fn message_req(body: &str) -> Msg {
    msg(
        "MESSAGE sip:carol@chicago.com SIP/2.0",
        &[
            "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1",
            "f: <sip:alice@atlanta.com>;tag=49583",
            "t: sip:carol@chicago.com;tag=xyz",
            "i: abc@host",
            "CSeq: 7 MESSAGE",
            "User-Agent:   phone 1.0  ",
            "Content-Type: text/plain",
        ],
        body,
    )
}

#[test]
fn message_without_contact_and_without_body() {
    let m = message_req("hello");
    let out = describe(&m, "im", None, &[], rcv("[2001:db8::5]:5060"), 9, 10, 3).unwrap();
    let want = "0.2\n\
        sip_request.im\n\
        MESSAGE\n\
        carol\n\
        .\n\
        chicago.com\n\
        2001:db8::5\n\
        .\n\
        sip:carol@chicago.com\n\
        sip:alice@atlanta.com\n\
        <sip:alice@atlanta.com>;tag=49583\n\
        sip:carol@chicago.com;tag=xyz\n\
        abc@host\n\
        49583\n\
        xyz\n\
        7\n\
        9:10\n\
        .\n\
        .\n\
        P-MsgFlags: 3\n\
        .\n\
        .\n";
    assert_eq!(text(out), want);
}

#[test]
fn body_on_request_and_compact_header_names() {
    let m = message_req("hello");
    let list = parse_tw_append("l:hdr[user-agent];F=hdr[From];msg[body]").unwrap();
    let out = text(describe(&m, "im", Some(&list), &[], rcv("10.0.0.2:5060"), 0, 0, 0).unwrap());
    // `hdr[From]` finds the compact `f`; the body gets a line end added
    assert!(
        out.ends_with(
            "P-MsgFlags: 0\nuser-agent: phone 1.0\nF: <sip:alice@atlanta.com>;tag=49583\n.\nhello\n.\n"
        ),
        "{out}"
    );
}

#[test]
fn rewritten_ruri_feeds_user_and_host_only() {
    let m = message_req("");
    let req = TwRequest {
        action: "vm",
        append: None,
        avps: &[],
        rcv: rcv("10.0.0.2:5060"),
        hash: 0,
        label: 0,
        msg_flags: 0,
        new_ruri: Some(b"sip:vm-carol@vm.example.net:5090"),
    };
    let out = text(describe_request(&m, &req).unwrap());
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines[3], "vm-carol");
    assert_eq!(lines[5], "vm.example.net");
    assert_eq!(lines[8], "sip:carol@chicago.com");
    let bad = TwRequest {
        new_ruri: Some(b"not a uri"),
        ..req
    };
    assert!(matches!(
        describe_request(&m, &bad),
        Err(TwriteError::BadRuri)
    ));
}

#[test]
fn mandatory_headers_and_kinds() {
    let no_cseq = msg(
        "MESSAGE sip:carol@chicago.com SIP/2.0",
        &["From: <sip:a@b>;tag=1", "To: <sip:c@d>", "Call-ID: x"],
        "",
    );
    let r = describe(&no_cseq, "a", None, &[], rcv("10.0.0.1:5060"), 0, 0, 0);
    assert!(matches!(
        r,
        Err(TwriteError::Header {
            header: HdrKind::CSeq,
            error: ParseError::MissingHeader(HdrKind::CSeq)
        })
    ));
    let bad_contact = msg(
        "INVITE sip:carol@chicago.com SIP/2.0",
        &[
            "From: <sip:a@b>;tag=1",
            "To: <sip:c@d>",
            "Call-ID: x",
            "CSeq: 1 INVITE",
            "Contact: <sip:a@b",
        ],
        "",
    );
    let r = describe(&bad_contact, "a", None, &[], rcv("10.0.0.1:5060"), 0, 0, 0);
    assert!(matches!(
        r,
        Err(TwriteError::Header {
            header: HdrKind::Contact,
            ..
        })
    ));
    let reply = Msg::parse(
        b"SIP/2.0 200 OK\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    )
    .unwrap();
    let r = describe(&reply, "a", None, &[], rcv("10.0.0.1:5060"), 0, 0, 0);
    assert!(matches!(r, Err(TwriteError::NotRequest)));
}

#[test]
fn reverse_hex_digits() {
    assert_eq!(reverse_hex(0), "0");
    assert_eq!(reverse_hex(0x10), "01");
    assert_eq!(reverse_hex(0x1a0), "0a1");
    assert_eq!(reverse_hex(0xdead_beef), "feebdaed");
}
