//! Fixture-driven tests: RFC 4475-style validity, accessors, reply building.

use super::fixtures::*;
use crate::sip::*;

fn parse(b: &[u8]) -> Msg {
    match Msg::parse(b.to_vec()) {
        Ok(m) => m,
        Err(f) => panic!("parse failed: {:?}", f.error),
    }
}

#[test]
fn valid_fixtures_parse_and_validate() {
    for (name, bytes) in VALID {
        let m = parse(bytes);
        if let Err(e) = m.validate() {
            panic!("{name}: {e:?}");
        }
        // Content-Length, when present, is exactly the body we kept
        if let Ok(Some(n)) = m.content_length() {
            assert_eq!(m.body().len(), n as usize, "{name}");
        }
        m.via1().unwrap_or_else(|e| panic!("{name}: via1 {e:?}"));
        m.from().unwrap_or_else(|e| panic!("{name}: from {e:?}"));
        m.to().unwrap_or_else(|e| panic!("{name}: to {e:?}"));
        for h in m.headers_of(HdrKind::Contact) {
            parse_contacts(m.buf(), h.value).unwrap_or_else(|e| panic!("{name}: contact {e:?}"));
        }
    }
    let long = long_request();
    let m = parse(&long);
    m.validate().unwrap();
    assert_eq!(m.vias().unwrap().len(), 80);
    assert_eq!(m.body(), b"abcd");
    assert!(m.ruri().len() > 10_000);
}

#[test]
fn invalid_fixtures_are_rejected() {
    for (name, bytes, expect) in INVALID {
        match (Msg::parse(bytes.to_vec()), expect) {
            (Err(f), Expect::Parse) => assert_eq!(f.buf, *bytes, "{name}: buffer returned"),
            (Ok(m), Expect::Validate(code)) => match m.validate() {
                Err(e) => assert_eq!(e.reply_code(), *code, "{name}: {e:?}"),
                Ok(()) => panic!("{name}: validated"),
            },
            (Ok(_), Expect::Parse) => panic!("{name}: parsed"),
            (Err(f), Expect::Validate(_)) => panic!("{name}: parse failed with {:?}", f.error),
        }
    }
}

#[test]
fn specific_rejections() {
    let get = |name: &str| {
        INVALID
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, b, _)| parse(b))
            .unwrap()
    };
    assert_eq!(
        get("content_length_too_large").validate(),
        Err(ParseError::ContentLengthTooLarge)
    );
    assert_eq!(
        get("negative_content_length").validate(),
        Err(ParseError::BadContentLength)
    );
    assert_eq!(
        get("overlarge_scalars").validate(),
        Err(ParseError::BadCSeq)
    );
    assert_eq!(
        get("max_forwards_300").validate(),
        Err(ParseError::BadMaxForwards)
    );
    assert_eq!(
        get("unterminated_quote").validate(),
        Err(ParseError::BadNameAddr)
    );
    assert_eq!(get("angle_ruri").validate(), Err(ParseError::BadRequestUri));
    assert_eq!(
        get("headers_in_ruri").validate(),
        Err(ParseError::BadRequestUri)
    );
    assert_eq!(
        get("cseq_method_mismatch").validate(),
        Err(ParseError::CSeqMethodMismatch)
    );
    assert_eq!(
        get("unknown_method_cseq_mismatch").validate(),
        Err(ParseError::CSeqMethodMismatch)
    );
    assert_eq!(
        get("unknown_version").validate(),
        Err(ParseError::UnsupportedVersion)
    );
    assert_eq!(
        get("missing_mandatory").validate(),
        Err(ParseError::MissingHeader(HdrKind::From))
    );
    assert!(matches!(
        get("duplicate_single_valued").validate(),
        Err(ParseError::DuplicateHeader(_))
    ));
    assert_eq!(
        get("two_content_lengths").validate(),
        Err(ParseError::DuplicateHeader(HdrKind::ContentLength))
    );
    assert_eq!(get("junk_in_via").validate(), Err(ParseError::BadVia));
    // the overlarge Contact expires is no number we keep
    let m = get("overlarge_scalars");
    let c = parse_contacts(m.buf(), m.header(HdrKind::Contact).unwrap().value).unwrap();
    assert_eq!(c[0].expires, None);
    // a Contact addr-spec with headers must be in <> (RFC 4475 §3.1.2.13)
    let b = b"sip:user@example.com?Route=%3Csip:sip.example.com%3E";
    assert!(parse_contacts(b, Span::new(0, b.len())).is_err());
    // stream transports need Content-Length
    let m = parse(RFC2543);
    assert_eq!(m.validate_for(true), Err(ParseError::MissingContentLength));
    assert!(parse(INVITE).validate_for(true).is_ok());
}

#[test]
fn invite_accessors() {
    let m = parse(INVITE);
    let b = m.buf();
    assert!(m.is_request());
    assert_eq!(m.method(), Method::Invite);
    assert_eq!(m.method_bytes(), b"INVITE");
    assert_eq!(m.ruri(), b"sip:bob@biloxi.example.com");
    assert_eq!(m.ruri_span().get(b), m.ruri());
    assert_eq!(
        m.first_line_span().get(b),
        b"INVITE sip:bob@biloxi.example.com SIP/2.0"
    );
    assert!(matches!(
        m.first_line(),
        FirstLine::Request {
            method: Method::Invite,
            ..
        }
    ));
    assert_eq!((m.status(), m.reason()), (0, &b""[..]));
    assert_eq!(m.headers().len(), 13);
    let v1 = m.via1().unwrap();
    assert_eq!(v1.host.get(b), b"pc33.atlanta.example.com");
    assert_eq!(v1.port, Some(5060));
    assert_eq!(v1.rport, Some(None));
    assert_eq!(v1.branch.unwrap().get(b), b"z9hG4bK776asdhds");
    let v2 = m.via2().unwrap().unwrap();
    assert_eq!(v2.host.get(b), b"proxy.atlanta.example.com");
    assert_eq!(v2.transport, Transport::Tcp);
    let all = m.vias().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].host.get(b), b"[2001:db8::5]");
    let c = m.cseq().unwrap();
    assert_eq!((c.num, c.method), (314159, Method::Invite));
    let f = m.from().unwrap();
    assert_eq!(f.tag.unwrap().get(b), b"1928301774");
    assert_eq!(f.display.unwrap().get(b), b"\"Alice A.\"");
    let t = m.to().unwrap();
    assert!(t.tag.is_none());
    assert_eq!(t.uri.get(b), b"sip:bob@biloxi.example.com");
    assert_eq!(
        m.call_id().unwrap(),
        b"a84b4c76e66710@pc33.atlanta.example.com"
    );
    assert_eq!(m.content_length().unwrap(), Some(149));
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert!(m.body().starts_with(b"v=0\r\n"));
    assert_eq!(m.body_span().end(), b.len());
    assert_eq!(&b[m.headers_end()..m.headers_end() + 4], b"\r\nv=");
    assert_eq!(m.body_span().start as usize, m.headers_end() + 2);
    let h = m.find_header(b"user-agent").unwrap();
    assert_eq!(m.value(h), b"test-ua/1.0");
    assert_eq!(h.line.get(b), b"User-Agent: test-ua/1.0\r\n");
    assert_eq!(m.find_header(b"l").unwrap().kind, HdrKind::ContentLength);
    assert!(m.find_header(b"X-Nope").is_none());
    assert_eq!(m.headers_of(HdrKind::Via).count(), 2);
    // the URI accessor composes with header values
    let u = parse_uri(
        m.value(m.header(HdrKind::Route).unwrap())
            .strip_prefix(b"<")
            .unwrap()
            .strip_suffix(b">")
            .unwrap(),
    )
    .unwrap();
    assert!(u.lr);
    let buf = m.into_buf();
    assert_eq!(buf, INVITE);
}

#[test]
fn tortuous_and_odd_accessors() {
    let m = parse(TORTUOUS);
    let b = m.buf();
    assert_eq!(m.cseq().unwrap().num, 9);
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.to().unwrap().tag.unwrap().get(b), b"7a1b2c3d");
    assert_eq!(m.from().unwrap().tag.unwrap().get(b), b"f00d");
    assert_eq!(
        m.via2().unwrap().unwrap().host.get(b),
        b"spindle.example.net"
    );
    let h = m.find_header(b"newfangledheader").unwrap();
    assert_eq!(
        m.value(h),
        b"newfangled value\r\n continued newfangled value"
    );
    assert!(h.line.get(b).ends_with(b"continued newfangled value\r\n"));
    assert_eq!(m.value(m.header(HdrKind::Subject).unwrap()), b"");
    let c = parse_contacts(b, m.header(HdrKind::Contact).unwrap().value).unwrap();
    assert_eq!(c[0].q, Some(330));

    let m = parse(ESCAPED_METHOD);
    assert_eq!(m.method(), Method::Other);
    assert_eq!(m.method_bytes(), b"RE%47IST%45R");
    assert_eq!(m.headers_of(HdrKind::Contact).count(), 1);
    assert_eq!(m.find_header(b"c%6fntact").unwrap().kind, HdrKind::Other);

    let m = parse(DOUBLE);
    assert_eq!(m.body(), b"");
    assert!(m.buf().ends_with(b"Content-Length: 0\r\n\r\n"));

    let m = parse(TRANSPORTS);
    let v: Vec<Transport> = m.vias().unwrap().iter().map(|v| v.transport).collect();
    assert_eq!(
        v,
        [
            Transport::Udp,
            Transport::Sctp,
            Transport::Tls,
            Transport::Other,
            Transport::Tcp
        ]
    );
    assert_eq!(m.headers_end(), m.buf().len() - 1);

    let m = parse(REPLY_UTF8);
    assert!(!m.is_request());
    assert_eq!(m.status(), 200);
    assert_eq!(m.method(), Method::Invite);
    assert_eq!(m.method_bytes(), b"SIP/2.0");
    assert_eq!(m.ruri(), b"");
    assert!(m.reason().starts_with(b"= 2**3"));
    assert_eq!(m.first_line_span().start, 4);
    let m = parse(REPLY_NO_REASON);
    assert_eq!((m.status(), m.reason()), (100, &b""[..]));
    let m = parse(UNKNOWN_SCHEME);
    assert_eq!(parse_uri(m.ruri()).unwrap().scheme, Scheme::Other);
    let m = parse(TOKEN_CHARS);
    assert_eq!(m.method(), Method::Other);
    assert_eq!(
        m.find_header(b"extensionHeader-!.%*+_`'~").map(|h| h.kind),
        Some(HdrKind::Other)
    );
}

fn reply(m: &Msg, code: u16, opts: &ReplyOpts<'_>) -> String {
    let mut out = Vec::new();
    build_reply(m, code, b"Reason", opts, &mut out).unwrap();
    // the reply we build must itself parse and validate
    let r = Msg::parse(out.clone()).unwrap_or_else(|f| panic!("{:?}", f.error));
    r.validate().unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn build_reply_shape() {
    let m = parse(INVITE);
    let opts = ReplyOpts {
        to_tag: Some(b"tt1"),
        via1_extra: b";received=192.0.2.9",
        via1_drop: &[],
        extra_headers: b"X-Extra: 1\r\n",
        body: b"hello",
        server_header: Some(b"ser"),
    };
    let r = reply(&m, 180, &opts);
    assert_eq!(
        r,
        "SIP/2.0 180 Reason\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport;received=192.0.2.9\r\n\
Via: SIP/2.0/TCP proxy.atlanta.example.com;branch=z9hG4bK9a8b7c, SIP/2.0/UDP [2001:db8::5]:5062;branch=z9hG4bKold\r\n\
Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n\
From: \"Alice A.\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=tt1\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Server: ser\r\n\
X-Extra: 1\r\n\
Content-Length: 5\r\n\
\r\n\
hello"
    );
    // no Record-Route on 100 and 4xx
    assert!(!reply(&m, 100, &ReplyOpts::default()).contains("Record-Route"));
    assert!(!reply(&m, 486, &ReplyOpts::default()).contains("Record-Route"));
    assert!(reply(&m, 200, &ReplyOpts::default()).contains("Record-Route"));
    // an existing To tag is kept, not doubled
    let m = parse(REPLY_UTF8.strip_prefix(b"\r\n\r\n").unwrap());
    let mut out = Vec::new();
    assert_eq!(
        build_reply(&m, 200, b"OK", &ReplyOpts::default(), &mut out),
        Err(BuildError::NotARequest)
    );
    let m = parse(TORTUOUS);
    let r = reply(
        &m,
        487,
        &ReplyOpts {
            to_tag: Some(b"zz"),
            ..ReplyOpts::default()
        },
    );
    assert!(r.contains("tag    = 7a1b2c3d\r\n"));
    assert!(!r.contains("zz"));
    assert!(r.contains("CSeq: 9 INVITE\r\n"));
    let mut out = Vec::new();
    assert_eq!(
        build_reply(&m, 99, b"x", &ReplyOpts::default(), &mut out),
        Err(BuildError::BadCode)
    );
    assert_eq!(
        build_reply(&m, 200, b"x\r\nEvil: 1", &ReplyOpts::default(), &mut out),
        Err(BuildError::BadText)
    );
}

#[test]
fn build_reply_hostile_duplicates() {
    // duplicate To/CSeq/Call-ID/From: the reply carries each exactly once
    let (_, b, _) = INVALID
        .iter()
        .find(|(n, _, _)| *n == "duplicate_single_valued")
        .unwrap();
    let m = parse(b);
    let mut out = Vec::new();
    build_reply(
        &m,
        400,
        b"Bad Request",
        &ReplyOpts {
            to_tag: Some(b"x"),
            ..Default::default()
        },
        &mut out,
    )
    .unwrap();
    let s = String::from_utf8_lossy(&out);
    for h in ["\r\nTo:", "\r\nFrom:", "\r\nCall-ID:", "\r\nCSeq:"] {
        assert_eq!(s.matches(h).count(), 1, "{h} in {s}");
    }
    assert!(s.contains("CSeq: 5 INVITE\r\n"));
    // CSeq beyond 2^32-1 still gets its 400, the value copied once
    let (_, b, _) = INVALID
        .iter()
        .find(|(n, _, _)| *n == "overlarge_scalars")
        .unwrap();
    let m = parse(b);
    assert_eq!(m.validate().unwrap_err().reply_code(), Some(400));
    let mut out = Vec::new();
    build_reply(&m, 400, b"Bad Request", &ReplyOpts::default(), &mut out).unwrap();
    let s = String::from_utf8_lossy(&out);
    assert!(s.contains("CSeq: 36893488147419103232 REGISTER\r\n"));
    // no Via at all: an error, not a panic
    let (_, b, _) = INVALID
        .iter()
        .find(|(n, _, _)| *n == "junk_in_via")
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(
        build_reply(&parse(b), 400, b"x", &ReplyOpts::default(), &mut out),
        Err(BuildError::BadVia)
    );
}

#[test]
fn lumps_on_a_message() {
    // forwarding-style edits: add a Via, drop the Route, rewrite the R-URI
    let m = parse(INVITE);
    let mut l = Lumps::default();
    let mut via = Vec::new();
    push_via(&mut via, "UDP", "192.0.2.1", 5060, b"z9hG4bKnew", b"");
    l.insert(m.header(HdrKind::Via).unwrap().line.start as usize, &via);
    l.delete(m.header(HdrKind::Route).unwrap().line);
    l.replace(m.ruri_span(), b"sip:bob@192.0.2.4");
    l.insert(m.headers_end(), b"X-Added: yes\r\n");
    let mut out = Vec::new();
    l.apply(m.buf(), &mut out).unwrap();
    let f = parse(&out);
    f.validate().unwrap();
    assert_eq!(f.ruri(), b"sip:bob@192.0.2.4");
    assert!(f.header(HdrKind::Route).is_none());
    assert_eq!(
        f.via1().unwrap().branch.unwrap().get(f.buf()),
        b"z9hG4bKnew"
    );
    assert_eq!(f.value(f.find_header(b"x-added").unwrap()), b"yes");
    assert_eq!(f.body(), m.body());
}

#[test]
fn stream_framing_and_expires() {
    // complete message with body: its exact length, junk after it ignored
    let mut b = INVITE.to_vec();
    assert_eq!(Msg::frame_len(&b), Ok(Some(INVITE.len())));
    b.extend_from_slice(b"\r\nOPTIONS sip:x SIP/2.0\r\n");
    assert_eq!(Msg::frame_len(&b), Ok(Some(INVITE.len())));
    // every strict prefix that ends inside the headers needs more bytes
    let he = parse(INVITE).headers_end();
    for cut in 1..he {
        assert_eq!(Msg::frame_len(&INVITE[..cut]), Ok(None), "cut {cut}");
    }
    assert_eq!(
        Msg::frame_len(RFC2543),
        Err(ParseError::MissingContentLength)
    );
    assert_eq!(Msg::frame_len(b"\r\n\r\n"), Err(ParseError::Empty));
    // Expires
    let (_, b, _) = INVALID
        .iter()
        .find(|(n, _, _)| *n == "overlarge_scalars")
        .unwrap();
    assert_eq!(parse(b).expires(), Err(ParseError::BadExpires));
    assert_eq!(parse(INVITE).expires(), Ok(None));
    let m = parse(b"OPTIONS sip:a@b SIP/2.0\r\nExpires: 0003600\r\n\r\n");
    assert_eq!(m.expires(), Ok(Some(3600)));
    let c = m.clone();
    assert_eq!(c.buf(), m.buf());
}

/// SER 0.9 tm's "known issue": replies had their CSeq parsed before the
/// branch was matched. Here tier 1 only indexes headers; a reply whose
/// CSeq is damaged still yields its top Via's branch (what tm matches a
/// reply by, `tm::driver::on_reply`), and the CSeq fails only when asked.
#[test]
fn a_reply_is_matched_by_its_branch_before_its_cseq_is_parsed() {
    let m = parse(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx1\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: not a cseq\r\n\
Content-Length: 0\r\n\r\n",
    );
    let v = m.via1().expect("via1");
    assert_eq!(v.branch.map(|b| b.get(m.buf())), Some(&b"z9hG4bKx1"[..]));
    assert!(m.cseq().is_err());
}
