//! One AOR cannot be poisoned by registrations: past `max_contacts`
//! (default 10) new bindings are refused `503` while the owner's refresh
//! still gets its `200` listing the bindings; and with the limit lifted,
//! a 200 too large for a datagram becomes a `500` the client does hear,
//! instead of silence.

use crate::common::sip::{header_value, header_values, status_of, Request, UdpPeer};
use crate::common::{free_udp_port, serial, Ser};
use std::time::Duration;

fn cfg(port: u16, extra: &str) -> String {
    format!(
        r#"
debug=3
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=1
loadmodule "sl.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
{extra}
route {{
    if (method == "REGISTER") {{
        save("location");
        break;
    }};
    sl_send_reply("404", "Not here");
}}
"#
    )
}

/// A REGISTER for `alice` from `peer` with these Contact values.
fn register(peer: &UdpPeer, port: u16, contacts: &[String]) -> Request {
    let mut r = Request::new("REGISTER", &format!("sip:127.0.0.1:{port}"), peer.port());
    r.to = format!("<sip:alice@127.0.0.1:{port}>");
    r.from = format!("<sip:alice@127.0.0.1:{port}>;tag=r{}", peer.port());
    for c in contacts {
        r = r.header("Contact", c);
    }
    r
}

/// Sends `req` and returns its final reply (matched by Call-ID).
fn ask(peer: &UdpPeer, port: u16, req: &Request) -> Option<Vec<u8>> {
    peer.send_to_port(&req.build(), port);
    peer.recv_matching(Duration::from_secs(3), |m| {
        status_of(m).is_some_and(|c| c >= 200)
            && header_value(m, "Call-ID").as_deref() == Some(req.call_id.as_str())
    })
    .map(|(m, _)| m)
}

fn contacts_in(reply: &[u8]) -> usize {
    header_values(reply, "Contact")
        .iter()
        .map(|v| v.matches("<sip:").count())
        .sum()
}

#[test]
fn past_max_contacts_new_bindings_are_refused_and_the_owner_still_refreshes() {
    let _g = serial();
    let port = free_udp_port();
    // No max_contacts in the config: the default applies.
    let ser = Ser::start(&cfg(port, ""));
    let owner = UdpPeer::bind();
    let own = format!("<sip:alice@127.0.0.1:{}>", owner.port());
    let first = register(&owner, port, std::slice::from_ref(&own));
    let r = ask(&owner, port, &first).expect("owner's REGISTER answered");
    assert_eq!(status_of(&r), Some(200), "{}", String::from_utf8_lossy(&r));

    let attacker = UdpPeer::bind();
    let mut codes = Vec::new();
    for i in 0..30 {
        let req = register(&attacker, port, &[format!("<sip:x{i}@127.0.0.1:9>")]);
        let r = ask(&attacker, port, &req).expect("attacker's REGISTER answered");
        if status_of(&r) == Some(503) {
            assert!(
                header_value(&r, "P-Registrar-Error").is_some(),
                "{}",
                String::from_utf8_lossy(&r)
            );
        }
        codes.push(status_of(&r));
    }
    let accepted = codes.iter().filter(|c| **c == Some(200)).count();
    assert_eq!(accepted, 9, "{codes:?}\n{}", ser.log());
    assert!(codes[9..].iter().all(|c| *c == Some(503)), "{codes:?}");

    // The owner's refresh (same Call-ID, next CSeq) is no new binding.
    let mut refresh = first.clone();
    refresh.cseq += 1;
    refresh.branch.push_str("-2");
    let r = ask(&owner, port, &refresh).expect("owner's refresh answered");
    assert_eq!(status_of(&r), Some(200), "{}", String::from_utf8_lossy(&r));
    assert_eq!(contacts_in(&r), 10, "{}", String::from_utf8_lossy(&r));
    assert!(String::from_utf8_lossy(&r).contains(&own));
}

#[test]
fn a_200_too_large_for_a_datagram_becomes_a_500() {
    let _g = serial();
    let port = free_udp_port();
    let ser = Ser::start(&cfg(port, "modparam(\"registrar\", \"max_contacts\", 0)"));
    let attacker = UdpPeer::bind();
    // Two REGISTERs of 40 contacts of about 1 KB each: together their
    // bindings list in more than 65 507 bytes.
    let long = "a".repeat(1000);
    let mut last = Vec::new();
    for batch in 0..2 {
        let contacts: Vec<String> = (0..40)
            .map(|i| format!("<sip:{long}{batch}x{i}@127.0.0.1:9>"))
            .collect();
        let req = register(&attacker, port, &contacts);
        last = ask(&attacker, port, &req)
            .unwrap_or_else(|| panic!("REGISTER {batch} not answered\n{}", ser.log()));
    }
    assert_eq!(
        status_of(&last),
        Some(500),
        "{}",
        String::from_utf8_lossy(&last)
    );
    assert!(last.len() < 2000 && contacts_in(&last) == 0);
    let warned = ser
        .log()
        .lines()
        .filter(|l| l.contains("does not fit a datagram"))
        .count();
    assert_eq!(warned, 1, "{}", ser.log());
}
