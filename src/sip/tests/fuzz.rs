//! Totality: thousands of pseudo-random mutations of valid messages go
//! through every entry point; none may panic (panic = abort in the server,
//! so a panic here would be a crashed worker there).

use super::fixtures::{long_request, VALID};
use crate::fuzz_targets::sip::exercise;
use crate::sip::*;
use shm::TestRng as Rng;

/// Bytes that steer the parsers into their corner cases.
const SPICE: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n ",
    b"\r\n\r\n",
    b";",
    b",",
    b"\"",
    b"\\",
    b"<",
    b">",
    b":",
    b"[",
    b"]",
    b"=",
    b"@",
    b"?",
    b"%",
    b"%4",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b"SIP/2.0",
    b";branch=",
    b";tag=",
    b";rport",
    b"Via: SIP/2.0/UDP h\r\n",
    b"CSeq: 1 INVITE\r\n",
    b"To: <sip:a@b>\r\n",
    b"Content-Length: 99999\r\n",
    b"Content-Length: 0\r\n\r\n",
    b"v:",
    b"l:",
    b"4294967296",
    b"-1",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    for _ in 0..1 + rng.index(4) {
        let len = m.len();
        let at = rng.index(len + 1);
        match rng.index(9) {
            0 => m.truncate(at),
            1 => {
                if let Some(b) = m.get_mut(at) {
                    *b ^= 1 << rng.index(8);
                }
            }
            2 => {
                if let Some(b) = m.get_mut(at) {
                    *b = rng.next_u64() as u8;
                }
            }
            3 => {
                let s = SPICE[rng.index(SPICE.len())];
                m.splice(at..at, s.iter().copied());
            }
            4 => {
                let end = (at + rng.index(40)).min(len);
                m.drain(at..end);
            }
            5 => {
                // a 10 KB header line, sometimes of structured junk
                let fill = SPICE[rng.index(SPICE.len())];
                let mut line = b"X-Long: ".to_vec();
                while line.len() < 10_000 {
                    line.extend_from_slice(if rng.index(2) == 0 { b"a" } else { fill });
                }
                line.extend_from_slice(b"\r\n");
                m.splice(at..at, line);
            }
            6 => {
                let n = rng.index(64);
                let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                m.splice(at..at, junk);
            }
            7 => {
                // duplicate a slice (duplicate headers, repeated params)
                let end = (at + rng.index(120)).min(len);
                let dup: Vec<u8> = m.get(at..end).unwrap_or(&[]).to_vec();
                m.splice(at..at, dup);
            }
            _ => {
                let n = 1 + rng.index(8);
                let s = SPICE[rng.index(SPICE.len())];
                for _ in 0..n {
                    m.splice(at..at, s.iter().copied());
                }
            }
        }
    }
    m
}

#[test]
fn mutations_never_panic() {
    let mut seeds: Vec<Vec<u8>> = VALID.iter().map(|(_, b)| b.to_vec()).collect();
    seeds.extend(super::fixtures::INVALID.iter().map(|(_, b, _)| b.to_vec()));
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    for i in 0..6000 {
        let base = &seeds[i % seeds.len()];
        exercise(mutate(&mut rng, base));
    }
    // the long request is slow to mutate in debug builds: fewer rounds
    let long = long_request();
    for _ in 0..40 {
        exercise(mutate(&mut rng, &long));
    }
}

#[test]
fn pure_binary_and_degenerate_inputs() {
    let mut rng = Rng::new(42);
    for n in 0..2000 {
        let len = rng.index(300) + n % 3;
        let b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        exercise(b);
    }
    for b in [
        &b""[..],
        b"\r\n",
        b"\n\n\n",
        b"SIP/2.0",
        b"A",
        b"A b SIP/2.0\r\n",
        b"A b SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"A b SIP/2.0\r\n:\r\n\r\n",
        b"A b SIP/2.0\r\nv:\r\n\r\n",
    ] {
        exercise(b.to_vec());
    }
}

#[test]
fn very_long_lines_are_linear() {
    // 64 KB values in the places parsers loop over: Via params, Contact
    // lists, quoted display names, URIs, folded lines. Must finish quickly
    // (no recursion, nothing quadratic); we assert results, not timings.
    let big = 64 * 1024;
    let params = ";a".repeat(big / 2);
    let contacts = "<sip:a@b>,".repeat(big / 10);
    let quoted = format!("\"{}\" <sip:a@b>", "\\\"".repeat(big / 2));
    let folded = "x\r\n ".repeat(big / 4);
    let msg = format!(
        "OPTIONS sip:{}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h{params};branch=z9hG4bK1\r\n\
         To: <sip:t@example.com>\r\nFrom: {quoted};tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
         Contact: {contacts}<sip:z@y>\r\nX-Folded: {folded}end\r\nContent-Length: 0\r\n\r\n",
        "u".repeat(big)
    );
    let m = Msg::parse(msg.into_bytes()).unwrap();
    m.validate().unwrap();
    assert!(m.via1().unwrap().branch.is_some());
    let c = parse_contacts(m.buf(), m.header(HdrKind::Contact).unwrap().value).unwrap();
    assert_eq!(c.len(), big / 10 + 1);
    assert!(m
        .value(m.find_header(b"x-folded").unwrap())
        .ends_with(b"end"));
    let mut out = Vec::new();
    build_reply(&m, 200, b"OK", &ReplyOpts::default(), &mut out).unwrap();
    // many tiny headers
    let mut many = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
    for _ in 0..20_000 {
        many.extend_from_slice(b"a:\r\n");
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(Msg::parse(many).unwrap().headers().len(), 20_000);
}
