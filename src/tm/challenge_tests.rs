//! `merge_challenges` over hand-written replies: which fields travel, how
//! they are written, where they land, and when no merge is made.

use crate::sip::{HdrKind, Msg, MAX_REPLY_LEN};
use crate::tm::challenge::{is_challenge, merge_challenges, MergeError};

const HEAD: &str = "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n";

fn reply(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 {status}\r\n{HEAD}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Values of every challenge field of `raw`, by kind, in order.
fn challenges(raw: &[u8]) -> Vec<(HdrKind, String)> {
    let m = Msg::parse(raw.to_vec()).expect("merged reply parses");
    m.headers()
        .iter()
        .filter(|h| {
            matches!(
                h.kind,
                HdrKind::WwwAuthenticate | HdrKind::ProxyAuthenticate
            )
        })
        .map(|h| (h.kind, String::from_utf8_lossy(m.value(h)).into_owned()))
        .collect()
}

#[test]
fn the_challenges_of_every_reply_join_the_picked_one() {
    let picked = reply(
        "401 Unauthorized",
        "WWW-Authenticate: Digest realm=\"a\", nonce=\"1\"\r\n",
        "",
    );
    let other = reply(
        "407 Proxy Authentication Required",
        "Proxy-Authenticate: Digest realm=\"b\", nonce=\"2\"\r\n",
        "",
    );
    let out = merge_challenges(&picked, &[&other], MAX_REPLY_LEN).unwrap();
    let m = Msg::parse(out.clone()).unwrap();
    assert_eq!(m.status(), 401, "the picked reply's status stays");
    assert_eq!(
        challenges(&out),
        vec![
            (
                HdrKind::WwwAuthenticate,
                "Digest realm=\"a\", nonce=\"1\"".into()
            ),
            (
                HdrKind::ProxyAuthenticate,
                "Digest realm=\"b\", nonce=\"2\"".into()
            ),
        ]
    );
    // Everything else is the picked reply's, unchanged and in order.
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(&format!("SIP/2.0 401 Unauthorized\r\n{HEAD}")));
    assert!(text.ends_with(
        "Content-Length: 0\r\nProxy-Authenticate: Digest realm=\"b\", nonce=\"2\"\r\n\r\n"
    ));
}

#[test]
fn every_challenge_field_of_a_reply_travels_and_nothing_else() {
    let picked = reply("407 Proxy Authentication Required", "", "");
    let other = reply(
        "401 Unauthorized",
        "WWW-Authenticate: Digest realm=\"x\"\r\nX-Other: 1\r\n\
         WWW-Authenticate: Digest realm=\"y\", algorithm=MD5\r\nProxy-Authenticate: Digest realm=\"z\"\r\n",
        "",
    );
    let out = merge_challenges(&picked, &[&other], MAX_REPLY_LEN).unwrap();
    let got: Vec<String> = challenges(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        got,
        [
            "Digest realm=\"x\"",
            "Digest realm=\"y\", algorithm=MD5",
            "Digest realm=\"z\""
        ]
    );
    assert!(!String::from_utf8_lossy(&out).contains("X-Other"));
    // The Via, From, To of the other reply do not come along either.
    assert_eq!(Msg::parse(out).unwrap().headers_of(HdrKind::Via).count(), 1);
}

#[test]
fn names_are_matched_in_any_case_and_kept_as_written() {
    let picked = reply(
        "401 Unauthorized",
        "www-authenticate: Digest realm=\"a\"\r\n",
        "",
    );
    let other = reply(
        "401 Unauthorized",
        "WWW-AUTHENTICATE: Digest realm=\"b\"\r\npRoXy-AuThEnTiCaTe: Digest realm=\"c\"\r\n",
        "",
    );
    let out = merge_challenges(&picked, &[&other], MAX_REPLY_LEN).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("\r\nWWW-AUTHENTICATE: Digest realm=\"b\"\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\npRoXy-AuThEnTiCaTe: Digest realm=\"c\"\r\n"),
        "{text}"
    );
    assert_eq!(challenges(&out).len(), 3);
}

#[test]
fn a_folded_challenge_is_copied_whole() {
    let picked = reply("401 Unauthorized", "", "");
    let other = reply(
        "401 Unauthorized",
        "WWW-Authenticate: Digest realm=\"b\",\r\n  nonce=\"42\",\r\n\tqop=\"auth\"\r\nX-After: 1\r\n",
        "",
    );
    let out = merge_challenges(&picked, &[&other], MAX_REPLY_LEN).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains(
            "WWW-Authenticate: Digest realm=\"b\",\r\n  nonce=\"42\",\r\n\tqop=\"auth\"\r\n\r\n"
        ),
        "{text}"
    );
    let (_, v) = &challenges(&out)[0];
    assert!(v.contains("qop=\"auth\""), "{v}");
}

#[test]
fn compact_forms_around_it_and_the_body_are_left_alone() {
    // The picked reply in compact forms with a body: the challenge goes
    // in before the empty line, the body and its `l:` length stay right.
    let body = "v=0\r\n";
    let picked = format!(
        "SIP/2.0 401 Unauthorized\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r\n\
         f: <sip:a@x>;tag=1\r\nt: <sip:b@x>;tag=2\r\ni: c1\r\nCSeq: 1 INVITE\r\n\
         c: application/sdp\r\nl: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let other = reply(
        "407 Proxy Authentication Required",
        "Proxy-Authenticate: Digest realm=\"b\"\r\n",
        "",
    );
    let out = merge_challenges(&picked, &[&other], MAX_REPLY_LEN).unwrap();
    let m = Msg::parse(out.clone()).unwrap();
    assert_eq!(m.body(), body.as_bytes());
    assert_eq!(m.content_length().unwrap(), Some(body.len() as u32));
    assert_eq!(challenges(&out).len(), 1);
}

#[test]
fn bare_lf_lines_are_ended_in_crlf() {
    let picked = reply("401 Unauthorized", "", "");
    let other = b"SIP/2.0 407 x\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@x>;tag=1\n\
To: <sip:b@x>;tag=3\nCall-ID: c1\nCSeq: 1 INVITE\nProxy-Authenticate: Digest realm=\"b\"\n\
Content-Length: 0\n\n";
    let out = merge_challenges(&picked, &[other], MAX_REPLY_LEN).unwrap();
    assert!(
        String::from_utf8_lossy(&out).contains("Proxy-Authenticate: Digest realm=\"b\"\r\n\r\n")
    );
}

#[test]
fn several_others_add_in_order_and_junk_adds_nothing() {
    let picked = reply(
        "401 Unauthorized",
        "WWW-Authenticate: Digest realm=\"a\"\r\n",
        "",
    );
    let b = reply(
        "401 Unauthorized",
        "WWW-Authenticate: Digest realm=\"b\"\r\n",
        "",
    );
    let c = reply(
        "407 Proxy Authentication Required",
        "Proxy-Authenticate: Digest realm=\"c\"\r\n",
        "",
    );
    let out = merge_challenges(&picked, &[&b, b"not sip at all", &c], MAX_REPLY_LEN).unwrap();
    let realms: Vec<String> = challenges(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        realms,
        [
            "Digest realm=\"a\"",
            "Digest realm=\"b\"",
            "Digest realm=\"c\""
        ]
    );
    // No others, or none with a challenge: the picked reply as it was.
    assert_eq!(
        merge_challenges(&picked, &[], MAX_REPLY_LEN).unwrap(),
        picked
    );
    let plain = reply("401 Unauthorized", "", "");
    assert_eq!(
        merge_challenges(&picked, &[&plain], MAX_REPLY_LEN).unwrap(),
        picked
    );
}

#[test]
fn a_merge_over_the_limit_is_refused_not_cut() {
    let picked = reply("401 Unauthorized", "", "");
    let big = format!("WWW-Authenticate: Digest realm=\"{}\"\r\n", "r".repeat(400));
    let other = reply("401 Unauthorized", &big, "");
    let fits = picked.len() + big.len();
    assert_eq!(
        merge_challenges(&picked, &[&other], fits).unwrap().len(),
        fits
    );
    assert_eq!(
        merge_challenges(&picked, &[&other], fits - 1),
        Err(MergeError::TooLarge {
            len: fits,
            limit: fits - 1
        })
    );
    assert_eq!(
        merge_challenges(b"garbage", &[&other], MAX_REPLY_LEN),
        Err(MergeError::Unparsable)
    );
}

#[test]
fn only_401_and_407_are_challenges() {
    assert!(is_challenge(401) && is_challenge(407));
    assert!(!is_challenge(403) && !is_challenge(400) && !is_challenge(408) && !is_challenge(200));
}
