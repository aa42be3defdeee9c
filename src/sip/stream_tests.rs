//! Unit tests of the stream framer: boundaries at every split point,
//! keep-alives, Content-Length forms and failures, the caps, and a seeded
//! random run that chops valid streams anywhere.

use super::*;

/// A small seeded generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-enough in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `head` (start line and headers, each ending in CRLF) with a
/// Content-Length for `body`, the empty line, and `body`.
fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    m.extend_from_slice(body);
    m
}

const INVITE_HEAD: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
    Via: SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK74bf9\r\n\
    Max-Forwards: 70\r\n\
    From: Alice <sip:alice@example.com>;tag=9fxced76sl\r\n\
    To: Bob <sip:bob@example.com>\r\n\
    Call-ID: 3848276298220188511@client.example.com\r\n\
    CSeq: 1 INVITE\r\n\
    Content-Type: application/sdp\r\n";

const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n\r\nc=IN IP4 192.0.2.1\r\n";

fn invite() -> Vec<u8> {
    with_body(INVITE_HEAD, SDP)
}

fn ok200() -> Vec<u8> {
    with_body(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK77asjd\r\n\
         From: <sip:alice@example.com>;tag=1\r\n\
         To: <sip:bob@example.com>;tag=2\r\n\
         Call-ID: a84b4c76e66710\r\n\
         CSeq: 2 OPTIONS\r\n",
        b"",
    )
}

/// The expected frame for one well-formed message.
fn msg(bytes: &[u8]) -> Framed {
    let header_len = memchr::memmem::find(bytes, b"\r\n\r\n").expect("header end") + 4;
    Framed::Message {
        bytes: bytes.to_vec(),
        header_len,
    }
}

fn lim() -> Limits {
    Limits::default()
}

/// Frames `s` fed in the given chunk lengths (the rest in one last chunk).
fn split(s: &[u8], cuts: &[usize]) -> Vec<Framed> {
    let mut chunks = Vec::new();
    let mut at = 0;
    for &c in cuts {
        chunks.push(&s[at..c]);
        at = c;
    }
    chunks.push(&s[at..]);
    frame_chunks(lim(), chunks)
}

/// Frames `s` through `buf_mut`/`filled`, each "read" at most `step` bytes.
fn via_reads(limits: Limits, s: &[u8], step: usize) -> Vec<Framed> {
    let mut f = Framer::new(limits);
    let mut out = Vec::new();
    let mut left = s;
    while !left.is_empty() {
        assert!(!f.buf_mut().is_empty(), "no room after draining");
        assert!(f.buf.len() <= f.limits().max_msg);
        let dst = f.buf_mut();
        let n = dst.len().min(step).min(left.len());
        dst[..n].copy_from_slice(&left[..n]);
        f.filled(n);
        left = &left[n..];
        loop {
            match f.next() {
                Ok(None) => break,
                Ok(Some(Frame::Ping)) => out.push(Framed::Ping),
                Ok(Some(Frame::Message { bytes, header_len })) => out.push(Framed::Message {
                    bytes: bytes.to_vec(),
                    header_len,
                }),
                Err(e) => {
                    out.push(Framed::Error(e));
                    return out;
                }
            }
        }
    }
    out
}

#[test]
fn two_messages_split_anywhere() {
    let (a, b) = (invite(), ok200());
    let s = [a.clone(), b.clone()].concat();
    let want = vec![msg(&a), msg(&b)];
    assert_eq!(split(&s, &[]), want);
    for i in 0..=s.len() {
        assert_eq!(split(&s, &[i]), want, "cut at {i}");
    }
    for i in 0..=s.len() {
        for j in i..=s.len() {
            assert_eq!(split(&s, &[i, j]), want, "cuts at {i}, {j}");
        }
    }
    assert_eq!(frame_chunks(lim(), s.chunks(1)), want);
    for step in [1, 2, 3, 7, 64, 1000] {
        assert_eq!(via_reads(lim(), &s, step), want, "reads of {step}");
    }
}

#[test]
fn frames_borrow_until_the_next_call() {
    let (a, b) = (invite(), ok200());
    let mut f = Framer::new(lim());
    assert_eq!(f.push(&[a.as_slice(), &b].concat()), a.len() + b.len());
    match f.next() {
        Ok(Some(Frame::Message { bytes, header_len })) => {
            assert_eq!(bytes, a.as_slice());
            assert_eq!(&bytes[header_len..], SDP);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.pending(), b.len());
    assert!(matches!(f.next(), Ok(Some(Frame::Message { bytes, .. })) if bytes == b.as_slice()));
    assert_eq!(f.next(), Ok(None));
    assert_eq!(f.pending(), 0);
    // an incomplete message is pending, and completes later
    f.push(&a[..100]);
    assert_eq!(f.next(), Ok(None));
    assert_eq!(f.pending(), 100);
    f.push(&a[100..]);
    assert!(matches!(f.next(), Ok(Some(Frame::Message { .. }))));
}

#[test]
fn pings_and_lone_crlfs() {
    let (a, b) = (invite(), ok200());
    let ping = b"\r\n\r\n".as_slice();
    let s = [ping, &a, ping, &b, ping].concat();
    let want = vec![Framed::Ping, msg(&a), Framed::Ping, msg(&b), Framed::Ping];
    for i in 0..=s.len() {
        assert_eq!(split(&s, &[i]), want, "cut at {i}");
    }
    assert_eq!(frame_chunks(lim(), s.chunks(1)), want);

    // RFC 3261 §7.5: a lone CRLF before a message is skipped
    let s = [b"\r\n", a.as_slice(), b"\r\n", &b].concat();
    for i in 0..=s.len() {
        assert_eq!(split(&s, &[i]), vec![msg(&a), msg(&b)], "cut at {i}");
    }
    // a ping and a lone CRLF, two pings, stray line ends
    assert_eq!(
        split(&[b"\r\n\r\n\r\n", b.as_slice()].concat(), &[]),
        vec![Framed::Ping, msg(&b)]
    );
    assert_eq!(
        split(b"\r\n\r\n\r\n\r\n", &[]),
        vec![Framed::Ping, Framed::Ping]
    );
    assert_eq!(
        split(&[b"\n\n\r\r\n", b.as_slice()].concat(), &[]),
        vec![msg(&b)]
    );

    // a CRLF at the end may be half a ping: wait for the next bytes
    let mut f = Framer::new(lim());
    f.push(b"\r\n");
    assert_eq!(f.next(), Ok(None));
    assert_eq!(f.pending(), 2);
    f.push(b"\r");
    assert_eq!(f.next(), Ok(None));
    f.push(b"\n");
    assert_eq!(f.next(), Ok(Some(Frame::Ping)));
    assert_eq!(f.next(), Ok(None));
    assert_eq!(f.pending(), 0);
}

#[test]
fn content_length_forms() {
    let head = "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n";
    let b = ok200();
    for cl in [
        "l: 5",
        "L:5",
        "content-length :\t5 \t",
        "CONTENT-LENGTH: 00005",
        "Content-Length: 5\r\nl: 5",
        "Content-Length:5",
    ] {
        let a = format!("{head}{cl}\r\n\r\nhello").into_bytes();
        let s = [a.as_slice(), &b].concat();
        for i in 0..=s.len() {
            assert_eq!(split(&s, &[i]), vec![msg(&a), msg(&b)], "{cl:?} cut at {i}");
        }
    }
    let a = format!("{head}Content-Length:  0\r\n\r\n").into_bytes();
    let s = [a.as_slice(), &b].concat();
    assert_eq!(split(&s, &[]), vec![msg(&a), msg(&b)]);
    // bare LF line ends, as Msg::parse takes them
    let a = b"OPTIONS sip:x SIP/2.0\nl: 2\n\nhi".to_vec();
    assert_eq!(
        split(&[a.as_slice(), &b].concat(), &[]),
        vec![
            Framed::Message {
                bytes: a.clone(),
                header_len: a.len() - 2,
            },
            msg(&b)
        ]
    );
    // a header named like Content-Length is not it
    let a = format!("{head}X-Content-Length: 7\r\nContent-Lengthy: 7\r\nl: 0\r\n\r\n").into_bytes();
    assert_eq!(split(&a, &[]), vec![msg(&a)]);
}

#[test]
fn missing_content_length_poisons() {
    let head = "MESSAGE sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n";
    let s = [head.as_bytes(), b"hello"].concat();
    let want_err = StreamError::MissingContentLength {
        header: head.as_bytes().to_vec(),
    };
    for i in 0..=s.len() {
        assert_eq!(split(&s, &[i]), vec![Framed::Error(want_err.clone())]);
    }
    assert_eq!(want_err.reply_code(), Some(400));
    assert_eq!(want_err.header(), Some(head.as_bytes()));
    assert_eq!(want_err.kind(), "missing_content_length");

    let mut f = Framer::new(lim());
    f.push(&s);
    assert_eq!(f.next(), Err(want_err));
    assert!(f.is_poisoned());
    assert_eq!(f.next(), Err(StreamError::Poisoned));
    assert_eq!(f.push(b"OPTIONS"), 0);
    assert!(f.buf_mut().is_empty());
    assert_eq!(f.pending(), 0);
    assert!(f.buf.capacity() == 0, "the buffer is released");
    f.filled(10);
    assert_eq!(f.next(), Err(StreamError::Poisoned));
}

#[test]
fn bad_content_lengths() {
    let head = "INVITE sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n";
    for cl in [
        "Content-Length: abc",
        "Content-Length: -1",
        "Content-Length: +5",
        "Content-Length: 0x10",
        "Content-Length: 5 5",
        "Content-Length: 4294967296",
        "Content-Length: 99999999999999999999999",
        "Content-Length:",
        "l: ",
        "Content-Length: 5\r\nContent-Length: 6",
        "l: 0\r\nContent-Length: 1",
        "Content-Length: 5\r\n 6",
        "Content-Length:\r\n 5",
    ] {
        let header = format!("{head}{cl}\r\n\r\n").into_bytes();
        let s = [header.as_slice(), b"hello"].concat();
        let want = vec![Framed::Error(StreamError::BadContentLength {
            header: header.clone(),
        })];
        for i in 0..=s.len() {
            assert_eq!(split(&s, &[i]), want, "{cl:?} cut at {i}");
        }
    }
    let e = StreamError::BadContentLength { header: vec![] };
    assert_eq!(e.reply_code(), Some(400));
}

#[test]
fn garbage_where_a_message_must_start() {
    // A Content-Length smaller than the body: the message ends where it
    // says, and the rest of the body is no start line.
    let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
    let a = format!("{INVITE_HEAD}Content-Length: 5\r\n\r\n").into_bytes();
    let s = [a.as_slice(), body].concat();
    let first = Framed::Message {
        bytes: [a.as_slice(), b"v=0\r\n"].concat(),
        header_len: a.len(),
    };
    for i in 0..=s.len() {
        assert_eq!(
            split(&s, &[i]),
            vec![first.clone(), Framed::Error(StreamError::BadStartLine)],
            "cut at {i}"
        );
    }
    // A larger one is an incomplete message, nothing more.
    let a = format!("{INVITE_HEAD}Content-Length: 500\r\n\r\n").into_bytes();
    let mut f = Framer::new(lim());
    f.push(&[a.as_slice(), body].concat());
    assert_eq!(f.next(), Ok(None));
    assert_eq!(f.pending(), a.len() + body.len());

    // A byte no start line begins with fails at once (TLS ClientHello).
    let mut f = Framer::new(lim());
    f.push(b"\x16\x03\x01");
    assert_eq!(f.next(), Err(StreamError::BadStartLine));
    for junk in [&b" INVITE"[..], b"<?xml", b"\0", b"\xff"] {
        assert_eq!(
            split(junk, &[]),
            vec![Framed::Error(StreamError::BadStartLine)]
        );
    }
    // Otherwise once the first line is complete, not before.
    for line in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"SIP/2.0 2000 OK\r\n",
        b"INVITE  sip:x SIP/2.0\r\n",
        b"o=- 1 1 IN IP4 192.0.2.1\n",
    ] {
        let mut f = Framer::new(lim());
        f.push(&line[..line.len() - 1]);
        assert_eq!(f.next(), Ok(None), "{line:?}");
        f.push(b"\n");
        assert_eq!(f.next(), Err(StreamError::BadStartLine), "{line:?}");
    }
    let e = StreamError::BadStartLine;
    assert_eq!((e.reply_code(), e.header()), (None, None));
}

#[test]
fn header_cap() {
    let limits = Limits {
        max_header: 256,
        max_msg: 1000,
    };
    // A block of exactly the cap passes, one byte more does not.
    let start = "OPTIONS sip:x SIP/2.0\r\nl: 0\r\nX: ";
    let pad = 256 - start.len() - 4;
    let exact = format!("{start}{}\r\n\r\n", "a".repeat(pad)).into_bytes();
    assert_eq!(exact.len(), 256);
    assert_eq!(frame_chunks(limits, [exact.as_slice()]), vec![msg(&exact)]);
    assert_eq!(frame_chunks(limits, exact.chunks(1)), vec![msg(&exact)]);
    let over = format!("{start}{}\r\n\r\n", "a".repeat(pad + 1)).into_bytes();
    let too_large = Framed::Error(StreamError::HeaderTooLarge { limit: 256 });
    assert_eq!(
        frame_chunks(limits, [over.as_slice()]),
        vec![too_large.clone()]
    );
    assert_eq!(
        frame_chunks(limits, over.chunks(1)),
        vec![too_large.clone()]
    );

    // Headers that never end are refused once the cap is reached, not
    // when the empty line would have come.
    let mut f = Framer::new(limits);
    f.push(start.as_bytes());
    let mut sent = start.len();
    while sent < 255 {
        f.push(b"b");
        sent += 1;
        assert_eq!(f.next(), Ok(None));
    }
    f.push(b"b");
    assert_eq!(f.next(), Err(StreamError::HeaderTooLarge { limit: 256 }));
    // the same for a first line without end
    let long = vec![b'A'; 300];
    assert_eq!(frame_chunks(limits, [long.as_slice()]), vec![too_large]);

    // The cap cannot exceed the message cap.
    let f = Framer::new(Limits {
        max_header: 5000,
        max_msg: 100,
    });
    assert_eq!(f.limits().max_header, 100);
    let f = Framer::new(Limits {
        max_header: 0,
        max_msg: 0,
    });
    assert_eq!(f.limits().max_msg, 64);
}

#[test]
fn message_cap_from_content_length_alone() {
    let limits = Limits {
        max_header: 512,
        max_msg: 1000,
    };
    for cl in [1000usize, 100_000, u32::MAX as usize] {
        let header = format!("{INVITE_HEAD}Content-Length: {cl}\r\n\r\n").into_bytes();
        // no body byte is sent: the header alone decides
        let mut f = Framer::new(limits);
        f.push(&header);
        let err = f.next().unwrap_err();
        assert_eq!(
            err,
            StreamError::MessageTooLarge {
                header: header.clone(),
                len: (header.len() + cl) as u64,
                limit: 1000,
            }
        );
        assert_eq!(err.reply_code(), Some(513));
        assert_eq!(err.header(), Some(header.as_slice()));
    }
    // exactly the cap fits, also behind another message in the same reads
    let hlen = format!("{INVITE_HEAD}Content-Length: 000\r\n\r\n").len();
    let body = vec![b'x'; 1000 - hlen];
    let header = format!("{INVITE_HEAD}Content-Length: {}\r\n\r\n", body.len());
    assert_eq!(header.len(), hlen);
    let full = [header.as_bytes(), &body].concat();
    assert_eq!(full.len(), 1000);
    let b = ok200();
    let s = [b.as_slice(), &full, &b].concat();
    let want = vec![
        msg(&b),
        Framed::Message {
            bytes: full.clone(),
            header_len: header.len(),
        },
        msg(&b),
    ];
    for step in [1, 7, 300, 999, 1000, 5000] {
        assert_eq!(via_reads(limits, &s, step), want, "reads of {step}");
        assert_eq!(
            frame_chunks(limits, s.chunks(step)),
            want,
            "chunks of {step}"
        );
    }
    // one byte more does not
    let header = format!("{INVITE_HEAD}Content-Length: {}\r\n\r\n", body.len() + 1);
    assert!(matches!(
        frame_chunks(limits, [header.as_bytes()]).as_slice(),
        [Framed::Error(StreamError::MessageTooLarge {
            len: 1001,
            ..
        })]
    ));
}

#[test]
fn large_body_over_many_reads() {
    let mut rng = Rng::new(60);
    let body: Vec<u8> = (0..60 * 1024).map(|_| rng.next_u64() as u8).collect();
    let a = with_body(INVITE_HEAD, &body);
    let b = ok200();
    let s = [b.as_slice(), &a, &b, &a].concat();
    let want = vec![msg(&b), msg(&a), msg(&b), msg(&a)];
    for step in [1, 100, 997, 1460, 4096, 16384, 65535] {
        assert_eq!(via_reads(lim(), &s, step), want, "reads of {step}");
    }
    let mut at = 0;
    let mut cuts = Vec::new();
    while at < s.len() {
        at = (at + 1 + rng.below(3000)).min(s.len());
        cuts.push(at);
    }
    assert_eq!(split(&s, &cuts), want);
}

#[test]
fn header_search_resumes_where_it_stopped() {
    let mut f = Framer::new(lim());
    f.push(b"OPTIONS sip:x SIP/2.0\r\nX: ");
    assert_eq!(f.next(), Ok(None));
    for _ in 0..10_000 {
        f.push(b"a");
        assert_eq!(f.next(), Ok(None));
        // everything received has been searched once; nothing is rescanned
        assert!(matches!(
            f.state,
            State::Header { scanned, first_line_ok: true } if scanned == f.pending()
        ));
    }
    f.push(b"\r");
    assert_eq!(f.next(), Ok(None));
    f.push(b"\nl: 0\r\n");
    assert_eq!(f.next(), Ok(None));
    f.push(b"\r\n");
    assert!(matches!(f.next(), Ok(Some(Frame::Message { .. }))));
}

/// A random well-formed message and its header length.
fn random_message(rng: &mut Rng) -> (Vec<u8>, usize) {
    const NAMES: &[&str] = &[
        "Via", "v", "From", "To", "Call-ID", "CSeq", "X-Long", "Subject", "Route",
    ];
    const CL_NAMES: &[&str] = &[
        "Content-Length",
        "content-length",
        "l",
        "L",
        "CONTENT-LENGTH",
    ];
    const BLANKS: &[&str] = &["", " ", "  ", "\t", " \t"];
    let mut m = if rng.below(2) == 0 {
        format!("INVITE sip:u{}@example.com SIP/2.0\r\n", rng.next_u64())
    } else {
        format!("SIP/2.0 {} Some Reason\r\n", 100 + rng.below(600))
    };
    let n = rng.below(8);
    let cl_at = rng.below(n + 1);
    let body_len = match rng.below(10) {
        0 => 0,
        1 => rng.below(30_000),
        _ => rng.below(300),
    };
    for i in 0..=n {
        if i == cl_at {
            m += &format!(
                "{}{}:{}{}{}{}\r\n",
                CL_NAMES[rng.below(CL_NAMES.len())],
                BLANKS[rng.below(BLANKS.len())],
                BLANKS[rng.below(BLANKS.len())],
                "0".repeat(rng.below(3)),
                body_len,
                BLANKS[rng.below(BLANKS.len())],
            );
        }
        if i < n {
            let value: String = (0..rng.below(80))
                .map(|_| (b' ' + rng.below(95) as u8) as char)
                .collect();
            m += &format!("{}: x{value}\r\n", NAMES[rng.below(NAMES.len())]);
        }
    }
    m += "\r\n";
    let header_len = m.len();
    let mut m = m.into_bytes();
    for _ in 0..body_len {
        // line ends and empty lines are common in bodies
        m.push(match rng.below(4) {
            0 => b'\r',
            1 => b'\n',
            _ => rng.next_u64() as u8,
        });
    }
    (m, header_len)
}

/// A random stream: messages with pings and lone CRLFs between them.
fn random_stream(rng: &mut Rng) -> (Vec<u8>, Vec<Framed>) {
    let mut s = Vec::new();
    let mut want = Vec::new();
    for _ in 0..1 + rng.below(6) {
        match rng.below(5) {
            0 => s.extend_from_slice(b"\r\n"),
            1 => {
                s.extend_from_slice(b"\r\n\r\n");
                want.push(Framed::Ping);
            }
            2 => {
                s.extend_from_slice(b"\r\n\r\n\r\n\r\n");
                want.extend([Framed::Ping, Framed::Ping]);
            }
            _ => {}
        }
        let (m, header_len) = random_message(rng);
        s.extend_from_slice(&m);
        want.push(Framed::Message {
            bytes: m,
            header_len,
        });
    }
    (s, want)
}

#[test]
fn random_streams_chopped_at_random_points() {
    let mut rng = Rng::new(5626);
    for round in 0..400 {
        let (s, want) = random_stream(&mut rng);
        let mut cuts = Vec::new();
        let mut at = 0;
        let small = rng.below(2) == 0;
        while at < s.len() {
            at += 1 + rng.below(if small { 8 } else { 2000 });
            cuts.push(at.min(s.len()));
        }
        assert_eq!(split(&s, &cuts), want, "round {round}");
        let step = 1 + rng.below(3000);
        assert_eq!(via_reads(lim(), &s, step), want, "round {round}");
    }
}

#[test]
fn fuzz_entry_accepts_anything() {
    let mut rng = Rng::new(4475);
    assert!(fuzz_feed(b""));
    assert!(fuzz_feed(b"\x01\x01\x01"));
    for _ in 0..3000 {
        let mut data = vec![
            rng.next_u64() as u8,
            rng.next_u64() as u8,
            rng.next_u64() as u8,
        ];
        let (mut s, _) = random_stream(&mut rng);
        for _ in 0..rng.below(4) {
            let at = rng.below(s.len() + 1);
            match rng.below(5) {
                0 => s.truncate(at),
                1 => {
                    if let Some(b) = s.get_mut(at) {
                        *b = rng.next_u64() as u8;
                    }
                }
                2 => s.splice(at..at, *b"\r\n").for_each(drop),
                3 => s.splice(at..at, *b"l: 99999\r\n").for_each(drop),
                _ => s
                    .drain(at..(at + rng.below(50)).min(s.len()))
                    .for_each(drop),
            }
        }
        data.extend_from_slice(&s);
        assert!(fuzz_feed(&data), "{:?}", String::from_utf8_lossy(&data));
    }
    for _ in 0..500 {
        let data: Vec<u8> = (0..rng.below(2000))
            .map(|_| b"\r\nSIP/2.0 l:5\t"[rng.below(14)])
            .collect();
        assert!(fuzz_feed(&data));
    }
}

#[test]
fn refused_header_blocks_can_be_answered() {
    use crate::sip::{build_reply, Msg, ReplyOpts};
    let limits = Limits {
        max_header: 4096,
        max_msg: 4096,
    };
    let missing = format!("{INVITE_HEAD}\r\n").into_bytes();
    let bad = format!("{INVITE_HEAD}Content-Length: -1\r\n\r\n").into_bytes();
    let large = format!("{INVITE_HEAD}Content-Length: 90000\r\n\r\n").into_bytes();
    for (s, code) in [(missing, 400), (bad, 400), (large, 513)] {
        let mut f = Framer::new(limits);
        f.push(&s);
        let err = f.next().unwrap_err();
        assert_eq!(err.reply_code(), Some(code));
        let req = Msg::parse(err.header().unwrap().to_vec()).expect("header block parses");
        let mut out = Vec::new();
        build_reply(&req, code, b"Bad Request", &ReplyOpts::default(), &mut out).unwrap();
        let reply = Msg::parse(out).unwrap();
        assert_eq!(reply.status(), code);
        assert_eq!(
            reply.call_id(),
            Ok(&b"3848276298220188511@client.example.com"[..])
        );
    }
}
