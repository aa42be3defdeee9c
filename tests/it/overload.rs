//! Admission control: a worker that fell behind refuses new requests with
//! a stateless 503 and keeps serving what it already admitted; once it
//! has caught up it admits again.
//!
//! "Behind" is made deterministic by stopping the server's processes
//! (SIGSTOP) while messages queue in the socket, then letting them go.

use crate::common::ctlkit::text;
use crate::common::server::Ser;
use crate::common::sip::{first_line, header_value, reply_to, status_of, Request, UdpPeer};
use crate::common::tmkit::tm_cfg;
use crate::common::{free_udp_port, serial};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

fn signal_children(ser: &Ser, sig: Signal) {
    for pid in ser.child_pids() {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

fn is_invite(m: &[u8]) -> bool {
    m.starts_with(b"INVITE ")
}

#[test]
fn a_backlog_sheds_new_calls_with_503_and_finishes_admitted_ones() {
    let _g = serial();
    let callee = UdpPeer::bind();
    let port = free_udp_port();
    let cfg = tm_cfg(
        port,
        1,
        "",
        &format!(
            r#"route {{ if (!t_relay_to_udp("127.0.0.1", "{}")) {{ sl_reply_error(); }}; }}"#,
            callee.port()
        ),
    );
    let ser = Ser::start(&cfg);
    let caller = UdpPeer::bind();
    // Let the kernel switch arrival stamping on (it does so asynchronously).
    std::thread::sleep(Duration::from_millis(200));

    // Call A is admitted and reaches the callee.
    let a = Request::new("INVITE", &format!("sip:a@127.0.0.1:{port}"), caller.port());
    caller.send_to_port(&a.build(), port);
    let (a_in, _) = callee
        .recv_matching(Duration::from_secs(3), is_invite)
        .expect("call A relayed");

    // The server stalls while A's answer, a retransmission of A and ten
    // new calls queue up.
    signal_children(&ser, Signal::SIGSTOP);
    callee.send_to_port(&reply_to(&a_in, 200, "OK", Some("a")), port);
    caller.send_to_port(&a.build(), port);
    let news: Vec<Request> = (0..10)
        .map(|i| {
            Request::new(
                "INVITE",
                &format!("sip:new{i}@127.0.0.1:{port}"),
                caller.port(),
            )
        })
        .collect();
    for r in &news {
        caller.send_to_port(&r.build(), port);
    }
    std::thread::sleep(Duration::from_millis(250));
    signal_children(&ser, Signal::SIGCONT);

    // A completes; every new call is refused before a transaction exists.
    let mut got_a = false;
    let mut refused = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while (!got_a || refused.len() < news.len()) && std::time::Instant::now() < deadline {
        let Some((m, _)) = caller.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let cid = header_value(&m, "Call-ID").unwrap_or_default();
        match status_of(&m) {
            Some(200) if cid == a.call_id => got_a = true,
            Some(503) => {
                assert_eq!(
                    header_value(&m, "Retry-After").as_deref(),
                    Some("5"),
                    "{}",
                    text(&m)
                );
                assert_ne!(cid, a.call_id, "the admitted call was refused");
                refused.push(cid);
            }
            _ => {}
        }
    }
    assert!(got_a, "call A's 200 was not relayed:\n{}", ser.log());
    refused.sort();
    refused.dedup();
    assert_eq!(
        refused.len(),
        news.len(),
        "503s: {refused:?}\n{}",
        ser.log()
    );
    assert!(
        callee
            .recv_matching(Duration::from_millis(300), |m| is_invite(m)
                && !m.windows(4).any(|w| w == b"a@12"))
            .is_none(),
        "a refused call reached the callee"
    );
    assert!(ser.log().contains("overloaded"), "{}", ser.log());

    // Caught up: a new call is admitted again.
    std::thread::sleep(Duration::from_millis(300));
    let c = Request::new("INVITE", &format!("sip:c@127.0.0.1:{port}"), caller.port());
    caller.send_to_port(&c.build(), port);
    let (c_in, _) = callee
        .recv_matching(Duration::from_secs(3), |m| {
            is_invite(m) && first_line(m).contains("sip:c@")
        })
        .unwrap_or_else(|| panic!("call C not admitted:\n{}", ser.log()));
    assert!(first_line(&c_in).starts_with("INVITE sip:c@"));
}
