//! `sl_stats` (SER 0.9's sl module) over the FIFO and the unix socket:
//! the counts of stateless replies by status move with the replies the
//! script sends, whichever worker sent them (the counters are in shm).

use crate::common::ctlkit::{fifo_of, serctl, sock_of, start, text};
use crate::common::sip::{status_of, Request, UdpPeer};
use crate::common::{free_udp_port, serial, TestDir};
use std::time::Duration;

/// The count after `label:` (e.g. `404:`) in an `sl_stats` answer.
fn count(stats: &str, label: &str) -> u64 {
    let words: Vec<&str> = stats.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == label)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("no {label} count in:\n{stats}"))
}

fn sl_stats(t: &[&str]) -> String {
    let out = serctl(t, &["fifo", "sl_stats"]);
    let s = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{t:?}: {s} {}",
        text(&out.stderr)
    );
    s
}

#[test]
fn sl_stats_counts_the_replies_of_every_worker_by_status() {
    let _g = serial();
    let port = free_udp_port();
    let ser = start(
        TestDir::new(),
        port,
        "route {\n    if (uri =~ \"^sip:missing@\") {\n        sl_send_reply(\"404\", \"Not Here\");\n    } else {\n        sl_send_reply(\"200\", \"Fine\");\n    };\n}\n",
    );
    let fifo = fifo_of(&ser).display().to_string();
    let sock = sock_of(&ser).display().to_string();
    let transports = [["-f", fifo.as_str()], ["-s", sock.as_str()]];
    let before = sl_stats(&transports[0]);
    assert!(
        before.starts_with("200 ok\n") && before.contains("\n6xx: ") && before.contains("\nxxx: "),
        "{before}"
    );
    assert_eq!(count(&before, "404:"), 0, "{before}");
    assert_eq!(count(&before, "200:"), 0, "{before}");
    // Five senders (the kernel spreads peers over the two workers): three
    // requests get 404, two get 200, each answered before the next.
    for (i, user) in ["missing", "bob", "missing", "carol", "missing"]
        .iter()
        .enumerate()
    {
        let peer = UdpPeer::bind();
        let req = Request::new(
            "MESSAGE",
            &format!("sip:{user}@127.0.0.1:{port}"),
            peer.port(),
        );
        peer.send_to_port(&req.build(), port);
        let (r, _) = peer
            .recv_final(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("request {i} unanswered:\n{}", ser.log()));
        let want = if *user == "missing" { 404 } else { 200 };
        assert_eq!(status_of(&r), Some(want), "request {i}");
    }
    for t in &transports {
        let after = sl_stats(t);
        assert_eq!(count(&after, "404:"), 3, "{t:?}: {after}");
        assert_eq!(count(&after, "200:"), 2, "{t:?}: {after}");
        assert_eq!(count(&after, "4xx:"), 0, "{t:?}: {after}");
        assert_eq!(count(&after, "500:"), 0, "{t:?}: {after}");
    }
}
