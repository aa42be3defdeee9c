//! Malformed datagrams written for the robustness test: each must leave
//! the server running. Every address inside is 127.0.0.1, so nothing a
//! server forwards or answers leaves the machine.

/// The answer a case must get from a server that answers a valid OPTIONS
/// with 200 itself. The server must also stay up whatever the case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// This status code, once: 400 for a request broken beyond use but
    /// with a readable Via (RFC 3261 §8.2, RFC 4475), 505 for another SIP
    /// version, 200 for what is odd but valid.
    Reply(u16),
    /// `420 Bad Extension` whose `Unsupported` header is exactly this
    /// (RFC 3261 §16.3 step 5).
    BadExtension(&'static str),
    /// No answer at all: a reply (never answered), a keep-alive, or no
    /// Via to answer to.
    Drop,
}

pub(crate) struct Case {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub expect: Expect,
}

/// The header lines of a good OPTIONS from 127.0.0.1:`cport` to
/// 127.0.0.1:`sport`, named so cases can drop or replace one.
fn base_headers(cport: u16, n: usize) -> Vec<(&'static str, String)> {
    vec![
        (
            "Via",
            format!("Via: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK-bad{n}"),
        ),
        ("Max-Forwards", "Max-Forwards: 70".to_string()),
        ("From", format!("From: <sip:fuzz@127.0.0.1>;tag=bad{n}")),
        ("To", "To: <sip:ser@127.0.0.1>".to_string()),
        ("Call-ID", format!("Call-ID: bad-{n}@127.0.0.1")),
        ("CSeq", format!("CSeq: {n} OPTIONS")),
        ("Content-Length", "Content-Length: 0".to_string()),
    ]
}

/// Assembles start line, headers and body with CRLFs.
fn assemble(start: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut s = String::from(start);
    s.push_str("\r\n");
    for (_, h) in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    let mut v = s.into_bytes();
    v.extend_from_slice(body);
    v
}

/// A deterministic byte stream (64-bit LCG) so garbage is the same on
/// every run.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// All cases, numbered so each has its own Call-ID and branch.
pub(crate) fn cases(cport: u16, sport: u16) -> Vec<Case> {
    use Expect::*;
    let ruri = format!("sip:ser@127.0.0.1:{sport}");
    let start = format!("OPTIONS {ruri} SIP/2.0");
    let mut out: Vec<Case> = Vec::new();
    let mut n = 0usize;
    let mut next = || {
        n += 1;
        n
    };

    // A good message with header `name` removed, or replaced by `line`.
    let edit = |n: usize, name: &str, line: Option<String>| -> Vec<(&'static str, String)> {
        let mut h = base_headers(cport, n);
        match line {
            Some(l) => {
                for e in h.iter_mut().filter(|e| e.0 == name) {
                    e.1 = l.clone();
                }
            }
            None => h.retain(|e| e.0 != name),
        }
        h
    };
    let good = |n: usize| base_headers(cport, n);

    macro_rules! case {
        ($name:expr, $bytes:expr, $expect:expr) => {
            out.push(Case {
                name: $name,
                bytes: $bytes,
                expect: $expect,
            })
        };
    }

    // --- truncation and garbage -------------------------------------
    case!("empty datagram", Vec::new(), Drop);
    case!("one byte", b"I".to_vec(), Drop);
    case!("method only", b"INVITE".to_vec(), Drop);
    case!(
        "request line without CRLF",
        start.clone().into_bytes(),
        Drop
    );
    case!(
        "request line only",
        format!("{start}\r\n").into_bytes(),
        Drop
    );
    let full = assemble(&start, &good(next()), b"");
    case!(
        "cut inside Via",
        full[..full.len().min(start.len() + 20)].to_vec(),
        // `Via: SIP/2.0/UDP 1` still reads as a Via (host "1").
        Reply(400)
    );
    let full = assemble(&start, &good(next()), b"");
    case!(
        "no blank line after headers",
        full[..full.len() - 2].to_vec(),
        Reply(400)
    );
    case!("binary garbage 200", garbage(200, 1), Drop);
    case!("binary garbage 1400", garbage(1400, 2), Drop);
    case!("all 0xff", vec![0xff; 512], Drop);
    case!("all NUL", vec![0; 100], Drop);
    let mut g = start.clone().into_bytes();
    g.extend_from_slice(b"\r\n");
    g.extend(garbage(600, 3));
    case!("request line then garbage", g, Drop);

    // --- size --------------------------------------------------------
    // 65507 is the largest UDP payload over IPv4; a 70 KB datagram cannot
    // be sent at all, so the biggest possible one stands in for it.
    let mut h = good(next());
    h.push(("X-Pad", format!("X-Pad: {}", "p".repeat(65_507 - 600))));
    let mut big = assemble(&start, &h, b"");
    big.resize(65_507, b'p');
    // The pad ends the headers; the rest is body beyond Content-Length: 0.
    case!(
        "largest UDP datagram, body past Content-Length",
        big,
        Reply(200)
    );
    let mut h = good(next());
    h.push(("X-Long", format!("X-Long: {}", "x".repeat(10 * 1024))));
    case!("10 KB header line", assemble(&start, &h, b""), Reply(200));
    case!(
        "10 KB request URI",
        assemble(
            &format!(
                "OPTIONS sip:{}@127.0.0.1:{sport} SIP/2.0",
                "u".repeat(10 * 1024)
            ),
            &good(next()),
            b""
        ),
        Reply(200)
    );
    let mut h = good(next());
    for i in 0..2000 {
        h.push(("X", format!("X-H{i}: {i}")));
    }
    case!("2000 headers", assemble(&start, &h, b""), Reply(200));
    let mut h = good(next());
    for i in 0..300 {
        h.insert(
            1,
            (
                "Via",
                format!("Via: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK-deep{i}"),
            ),
        );
    }
    case!("300 Via headers", assemble(&start, &h, b""), Reply(200));
    case!(
        "1000-char method",
        assemble(
            &format!("{} {ruri} SIP/2.0", "O".repeat(1000)),
            &good(next()),
            b""
        ),
        Reply(400)
    );

    // --- mandatory headers -------------------------------------------
    case!(
        "missing Via",
        assemble(&start, &edit(next(), "Via", None), b""),
        Drop
    );
    case!(
        "missing From",
        assemble(&start, &edit(next(), "From", None), b""),
        Reply(400)
    );
    case!(
        "missing To",
        assemble(&start, &edit(next(), "To", None), b""),
        Reply(400)
    );
    case!(
        "missing Call-ID",
        assemble(&start, &edit(next(), "Call-ID", None), b""),
        Reply(400)
    );
    case!(
        "missing CSeq",
        assemble(&start, &edit(next(), "CSeq", None), b""),
        Reply(400)
    );
    case!(
        "empty Call-ID",
        assemble(
            &start,
            &edit(next(), "Call-ID", Some("Call-ID: ".into())),
            b""
        ),
        Reply(400)
    );
    case!(
        "From without URI",
        assemble(
            &start,
            &edit(next(), "From", Some("From: ;tag=x".into())),
            b""
        ),
        Reply(400)
    );
    let mut h = good(next());
    h.push(("To", "To: <sip:other@127.0.0.1>".into()));
    case!("two To headers", assemble(&start, &h, b""), Reply(400));
    let mut h = good(next());
    h.push(("CSeq", "CSeq: 99 OPTIONS".into()));
    case!(
        "two different CSeq headers",
        assemble(&start, &h, b""),
        Reply(400)
    );

    // --- Content-Length ----------------------------------------------
    let cl = |n: usize, v: &str| edit(n, "Content-Length", Some(format!("Content-Length: {v}")));
    case!(
        "Content-Length beyond datagram",
        assemble(&start, &cl(next(), "5000"), b"short body"),
        Reply(400)
    );
    case!(
        "Content-Length negative",
        assemble(&start, &cl(next(), "-5"), b""),
        Reply(400)
    );
    case!(
        "Content-Length non-numeric",
        assemble(&start, &cl(next(), "ten"), b""),
        Reply(400)
    );
    case!(
        "Content-Length 2^64",
        assemble(&start, &cl(next(), "18446744073709551616"), b""),
        Reply(400)
    );
    case!(
        "Content-Length empty",
        assemble(&start, &cl(next(), ""), b""),
        Reply(400)
    );
    case!(
        "Content-Length shorter than body",
        assemble(&start, &cl(next(), "2"), b"0123456789"),
        Reply(200)
    );
    let mut h = cl(next(), "4");
    h.push(("Content-Length", "Content-Length: 9".into()));
    case!(
        "two different Content-Length",
        assemble(&start, &h, b"abcd"),
        Reply(400)
    );

    // --- CSeq ----------------------------------------------------------
    let cs = |n: usize, v: &str| edit(n, "CSeq", Some(format!("CSeq: {v}")));
    case!(
        "CSeq above 2^32-1",
        assemble(&start, &cs(next(), "4294967296 OPTIONS"), b""),
        Reply(400)
    );
    case!(
        "CSeq 2^64",
        assemble(&start, &cs(next(), "18446744073709551616 OPTIONS"), b""),
        Reply(400)
    );
    case!(
        "CSeq method mismatch",
        assemble(&start, &cs(next(), "1 INVITE"), b""),
        Reply(400)
    );
    case!(
        "CSeq non-numeric",
        assemble(&start, &cs(next(), "abc OPTIONS"), b""),
        Reply(400)
    );
    case!(
        "CSeq without method",
        assemble(&start, &cs(next(), "1"), b""),
        Reply(400)
    );
    case!(
        "CSeq negative",
        assemble(&start, &cs(next(), "-1 OPTIONS"), b""),
        Reply(400)
    );

    // --- start line ------------------------------------------------------
    case!(
        "no request URI",
        assemble("OPTIONS SIP/2.0", &good(next()), b""),
        Reply(400)
    );
    case!(
        "double spaces",
        assemble(&format!("OPTIONS  {ruri}  SIP/2.0"), &good(next()), b""),
        Reply(400)
    );
    case!(
        "SIP/3.0",
        assemble(&format!("OPTIONS {ruri} SIP/3.0"), &good(next()), b""),
        Reply(505)
    );
    case!(
        "SIP/2.0x",
        assemble(&format!("OPTIONS {ruri} SIP/2.0x"), &good(next()), b""),
        Reply(400)
    );
    case!(
        "HTTP version",
        assemble(&format!("OPTIONS {ruri} HTTP/1.1"), &good(next()), b""),
        Reply(400)
    );
    case!(
        "garbage URI",
        assemble("OPTIONS :::: SIP/2.0", &good(next()), b""),
        Reply(400)
    );
    case!(
        "empty sip URI",
        assemble("OPTIONS sip: SIP/2.0", &good(next()), b""),
        Reply(400)
    );
    case!(
        "unterminated IPv6 URI",
        assemble("OPTIONS sip:[::1 SIP/2.0", &good(next()), b""),
        Reply(400)
    );
    case!(
        "URI port out of range",
        assemble("OPTIONS sip:a@127.0.0.1:99999 SIP/2.0", &good(next()), b""),
        Reply(400)
    );
    case!(
        "method with parenthesis",
        assemble(&format!("OPT(IONS {ruri} SIP/2.0"), &good(next()), b""),
        Reply(400)
    );
    let mut nul = assemble(&start, &good(next()), b"");
    nul[3] = 0;
    case!("NUL in request line", nul, Drop);

    // --- header syntax ----------------------------------------------------
    let mut h = good(next());
    h.push(("X-Nul", "X-Nul: a\0b".into()));
    case!("NUL in header value", assemble(&start, &h, b""), Reply(200));
    let mut h = good(next());
    h.push(("Content-Type", "Content-Type: text/plain".into()));
    let h = h
        .into_iter()
        .map(|(k, v)| {
            if k == "Content-Length" {
                (k, "Content-Length: 5".to_string())
            } else {
                (k, v)
            }
        })
        .collect::<Vec<_>>();
    case!("NUL in body", assemble(&start, &h, b"a\0b\0c"), Reply(200));
    case!(
        "header without colon",
        assemble(
            &start,
            &edit(next(), "To", Some("To <sip:ser@127.0.0.1>".into())),
            b""
        ),
        Reply(400)
    );
    case!(
        "space in header name",
        assemble(
            &start,
            &edit(next(), "To", Some("T o: <sip:ser@127.0.0.1>".into())),
            b""
        ),
        Reply(400)
    );
    let mut h = good(next());
    h.push(("X-Hi", "X-\u{00ff}\u{00fe}: high bytes".into()));
    case!(
        "non-ASCII header name",
        assemble(&start, &h, b""),
        Reply(400)
    );
    let mut h = good(next());
    h.insert(0, ("Fold", " continuation with nothing to continue".into()));
    case!(
        "folding before first header",
        assemble(&start, &h, b""),
        Reply(400)
    );
    case!(
        "unterminated quote in From",
        assemble(
            &start,
            &edit(
                next(),
                "From",
                Some("From: \"Alice <sip:a@127.0.0.1>;tag=q".into())
            ),
            b""
        ),
        Reply(400)
    );
    case!(
        "unterminated angle in To",
        assemble(
            &start,
            &edit(next(), "To", Some("To: <sip:ser@127.0.0.1".into())),
            b""
        ),
        Reply(400)
    );
    let v = next();
    case!(
        "unterminated quote in Via param",
        assemble(
            &start,
            &edit(
                v,
                "Via",
                Some(format!(
                    "Via: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK-q{v};x=\"open"
                ))
            ),
            b""
        ),
        Drop
    );
    case!(
        "Via without host",
        assemble(
            &start,
            &edit(
                next(),
                "Via",
                Some("Via: SIP/2.0/UDP ;branch=z9hG4bKx".into())
            ),
            b""
        ),
        Drop
    );
    case!(
        "Via port 99999",
        assemble(
            &start,
            &edit(
                next(),
                "Via",
                Some("Via: SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bKp".into())
            ),
            b""
        ),
        Drop
    );
    case!(
        "Via port non-numeric",
        assemble(
            &start,
            &edit(
                next(),
                "Via",
                Some("Via: SIP/2.0/UDP 127.0.0.1:abc;branch=z9hG4bKp".into())
            ),
            b""
        ),
        Drop
    );
    case!(
        "Via bad protocol",
        assemble(
            &start,
            &edit(
                next(),
                "Via",
                Some(format!("Via: HTTP/1.1/TCP 127.0.0.1:{cport}"))
            ),
            b""
        ),
        Drop
    );
    case!(
        "Via empty",
        assemble(&start, &edit(next(), "Via", Some("Via: ".into())), b""),
        Drop
    );
    case!(
        "Via only commas",
        assemble(&start, &edit(next(), "Via", Some("Via: ,,,".into())), b""),
        Drop
    );
    case!(
        "Max-Forwards non-numeric",
        assemble(
            &start,
            &edit(next(), "Max-Forwards", Some("Max-Forwards: many".into())),
            b""
        ),
        Reply(400)
    );
    case!(
        "Max-Forwards huge",
        assemble(
            &start,
            &edit(
                next(),
                "Max-Forwards",
                Some("Max-Forwards: 99999999999".into())
            ),
            b""
        ),
        Reply(400)
    );
    let mut h = good(next());
    h.push((
        "Content-Type",
        format!("Content-Type: {}", "t".repeat(10 * 1024)),
    ));
    case!("10 KB Content-Type", assemble(&start, &h, b""), Reply(200));

    // --- line endings -------------------------------------------------------
    case!("lone CRLF", b"\r\n".to_vec(), Drop);
    case!("double CRLF keep-alive", b"\r\n\r\n".to_vec(), Drop);
    case!("1000 CRLFs", b"\r\n".repeat(1000), Drop);
    let bare_cr: Vec<u8> = assemble(&start, &good(next()), b"")
        .into_iter()
        .filter(|&b| b != b'\n')
        .collect();
    case!("bare CR line ends", bare_cr, Drop);
    let lf_only: Vec<u8> = assemble(&start, &good(next()), b"")
        .into_iter()
        .filter(|&b| b != b'\r')
        .collect();
    case!("LF-only line ends", lf_only, Reply(200));

    // --- replies (forwarded statelessly by Via 2, which is always us) ---------
    case!(
        "reply without headers",
        b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        Drop
    );
    let rh = |n: usize| {
        let mut h = good(n);
        h.insert(
            0,
            (
                "Via",
                format!("Via: SIP/2.0/UDP 127.0.0.1:{sport};branch=z9hG4bK-ours{n}"),
            ),
        );
        h
    };
    case!(
        "reply status 2000",
        assemble("SIP/2.0 2000 OK", &rh(next()), b""),
        Drop
    );
    case!(
        "reply status abc",
        assemble("SIP/2.0 abc OK", &rh(next()), b""),
        Drop
    );
    case!(
        "reply status 99",
        assemble("SIP/2.0 99 Low", &rh(next()), b""),
        Drop
    );
    case!(
        "reply with one Via",
        assemble("SIP/2.0 200 OK", &good(next()), b""),
        Drop
    );
    case!("reply truncated", b"SIP/2.0 18".to_vec(), Drop);

    // --- version and extensions (RFC 4475 `badvers`, RFC 3261 §16.3) -------
    case!(
        "SIP/7.0",
        assemble(&format!("OPTIONS {ruri} SIP/7.0"), &good(next()), b""),
        Reply(505)
    );
    let mut h = good(next());
    h.push(("Proxy-Require", "Proxy-Require: foo".into()));
    case!(
        "Proxy-Require unknown tag",
        assemble(&start, &h, b""),
        BadExtension("foo")
    );
    let mut h = good(next());
    h.push((
        "Proxy-Require",
        "Proxy-Require: nothingweknow, 100rel".into(),
    ));
    h.push(("Proxy-Require", "Proxy-Require: x-other".into()));
    case!(
        "Proxy-Require three tags in two headers",
        assemble(&start, &h, b""),
        BadExtension("nothingweknow, 100rel, x-other")
    );
    out
}
