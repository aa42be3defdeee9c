//! Attacks from the network, each played on loopback against the real
//! server: blind reply injection into a ringing call (issue 11 item 7),
//! stray replies and requests naming hosts whose nameserver never answers
//! (item 8, in a network namespace of the test's own).

use crate::common::sip::reply_to;
use crate::common::tmkit::*;
use crate::common::*;
use std::time::{Duration, Instant};

const CALLER: usize = 0;
const CALLEE: usize = 1;

/// Statelessly answers OPTIONS (the attacker's pacing probe), relays the
/// rest to the callee; one worker, so probe and spoofs share its queue.
fn proxy_cfg(port: u16, callee: u16) -> String {
    tm_cfg(
        port,
        1,
        "",
        &format!(
            "route {{\n    if (method==\"OPTIONS\") {{ sl_send_reply(\"200\", \"probe\"); break; }};\n    \
             t_relay_to_udp(\"127.0.0.1\", \"{callee}\");\n}}\n"
        ),
    )
}

/// A call from caller to callee through the proxy, ringing: returns the
/// caller's INVITE and the INVITE the callee received.
fn ringing_call(caller: &UdpPeer, callee: &UdpPeer, port: u16) -> (Request, Heard) {
    let inv = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    );
    caller.send_to_port(&inv.build(), port);
    let t0 = Instant::now();
    let mut fwd = None;
    let heard = pump(&[caller, callee], Duration::from_secs(3), |h| {
        if h.who == CALLEE && method_of(&h.msg).as_deref() == Some("INVITE") {
            fwd = Some(h.clone());
            callee.send(&reply_to(&h.msg, 180, "Ringing", Some("cal")), h.from);
        }
        h.who == CALLER && status_of(&h.msg) == Some(180)
    });
    let fwd = fwd.unwrap_or_else(|| panic!("callee got no INVITE:\n{}", describe(&heard, t0)));
    assert!(
        heard
            .iter()
            .any(|h| h.who == CALLER && status_of(&h.msg) == Some(180)),
        "caller heard no 180:\n{}",
        describe(&heard, t0)
    );
    (inv, fwd)
}

/// A `603 Decline` to an INVITE carrying `branch` in its only Via.
fn spoofed_603(port: u16, branch: &str, call_id: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 603 Decline\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n\
         From: <sip:alice@127.0.0.1>;tag=x\r\nTo: <sip:bob@127.0.0.1>;tag=evil\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Sends every branch as a spoofed 603, 100 at a time; after each batch
/// an OPTIONS probe must be answered, so the worker has read the batch and
/// none was lost to a full socket buffer. Bounded: 60 s in all.
fn flood(
    attacker: &UdpPeer,
    port: u16,
    call_id: &str,
    branches: impl Iterator<Item = String>,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let branches: Vec<String> = branches.collect();
    for batch in branches.chunks(100) {
        for b in batch {
            attacker.send_to_port(&spoofed_603(port, b, call_id), port);
        }
        let probe = Request::new(
            "OPTIONS",
            &format!("sip:probe@127.0.0.1:{port}"),
            attacker.port(),
        );
        attacker.send_to_port(&probe.build(), port);
        let left = deadline.saturating_duration_since(Instant::now());
        let answered = attacker.recv_matching(left, |m| {
            status_of(m) == Some(200)
                && header_value(m, "Call-ID").as_deref() == Some(&*probe.call_id)
        });
        assert!(
            answered.is_some(),
            "the proxy stopped answering probes during the flood"
        );
    }
    branches.len()
}

/// The label counter of bucket `h` as it was seeded before the fix: a
/// constant per bucket, the same on every start.
fn old_label_seed(h: u32) -> u32 {
    h.wrapping_mul(0x9E37_79B9).rotate_left(7) ^ 0x2545_F491
}

/// The server's bucket of a Call-ID and CSeq number (tm's `key::hash`),
/// which an attacker who saw the INVITE can compute.
fn bucket_of(call_id: &str, cseq: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ 7;
    for part in [call_id.as_bytes(), &cseq.to_be_bytes()[..]] {
        for b in part.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    ((h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48)) & 0xffff) as u32
}

/// After the attack the call must still be ringing (no final reply at the
/// caller, no CANCEL at the callee) and then complete with the callee's 200.
fn call_survives(caller: &UdpPeer, callee: &UdpPeer, fwd: &Heard, ser: &Ser) {
    let t0 = Instant::now();
    let mut heard = pump(&[caller, callee], Duration::from_millis(500), |_| false);
    callee.send(&reply_to(&fwd.msg, 200, "OK", Some("cal")), fwd.from);
    heard.extend(pump(&[caller, callee], Duration::from_secs(3), |h| {
        h.who == CALLER && status_of(&h.msg).is_some_and(|c| c >= 200)
    }));
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    let finals: Vec<u16> = heard
        .iter()
        .filter(|h| h.who == CALLER)
        .filter_map(|h| status_of(&h.msg))
        .filter(|c| *c >= 200)
        .collect();
    assert_eq!(
        finals,
        vec![200],
        "a spoofed reply reached the call:\n{text}"
    );
    assert!(
        !heard
            .iter()
            .any(|h| h.who == CALLEE
                && method_of(&h.msg).is_some_and(|m| m == "CANCEL" || m == "ACK")),
        "the callee was cancelled or acked:\n{text}"
    );
}

#[test]
fn blind_spoofed_603_to_every_bucket_does_not_kill_a_ringing_call() {
    let _g = serial();
    let (caller, callee, attacker) = (UdpPeer::bind(), UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let ser = Ser::start(&proxy_cfg(port, callee.port()));
    let (_inv, fwd) = ringing_call(&caller, &callee, port);
    // The attacker knows neither Call-ID nor branch: one guess per bucket,
    // with the label each bucket's first transaction used to get.
    let n = flood(
        &attacker,
        port,
        "unknown@attacker",
        (0..1u32 << 16).map(|h| format!("z9hG4bK{h:x}.{:x}.0", old_label_seed(h))),
    );
    assert_eq!(n, 65536);
    call_survives(&caller, &callee, &fwd, &ser);
}

#[test]
fn spoofed_603_with_known_call_id_and_guessed_branches_does_not_match() {
    let _g = serial();
    let (caller, callee, attacker) = (UdpPeer::bind(), UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let ser = Ser::start(&proxy_cfg(port, callee.port()));
    let (inv, fwd) = ringing_call(&caller, &callee, port);
    // The attacker saw the INVITE (Call-ID, CSeq), so knows the bucket, and
    // guesses the rest: the old id's labels from the old seed and from 0,
    // and the new shape with made-up MACs.
    let h = bucket_of(&inv.call_id, inv.cseq);
    let seed = old_label_seed(h);
    let old = (0..512u32).flat_map(|i| {
        [
            format!("z9hG4bK{h:x}.{:x}.0", seed.wrapping_add(i)),
            format!("z9hG4bK{h:x}.{i:x}.0"),
        ]
    });
    let signed = (0..512u64).map(|i| {
        format!(
            "z9hG4bK{h:x}.{seed:x}.{:016x}.0",
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
    });
    let n = flood(&attacker, port, &inv.call_id, old.chain(signed));
    assert_eq!(n, 1536);
    call_survives(&caller, &callee, &fwd, &ser);
}

// --- a worker never waits on a dead nameserver (item 8) ------------------

use crate::common::netns::{run_test_in_netns, IN_NETNS};

/// Runs the test named `name` of this module inside a fresh namespace
/// whose resolv.conf names a nameserver on its own loopback that the test
/// binds and never answers. glibc is told to wait long (30 s × 5) so that
/// any use of it shows.
fn run_in_netns(name: &str) {
    run_test_in_netns(
        module_path!(),
        name,
        "nameserver 127.0.0.1\noptions timeout:30 attempts:5\n",
    );
}

/// The namespace's nameserver: reads queries on 127.0.0.1:53, never
/// answers, counts them.
struct DeadNameserver {
    queries: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeadNameserver {
    fn start() -> DeadNameserver {
        use std::sync::atomic::Ordering::Relaxed;
        let sock =
            std::net::UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53 in the netns");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let queries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(110);
            let mut buf = [0u8; 1500];
            while !s.load(Relaxed) && Instant::now() < deadline {
                if sock.recv_from(&mut buf).is_ok() {
                    q.fetch_add(1, Relaxed);
                }
            }
        });
        DeadNameserver {
            queries,
            stop,
            thread: Some(thread),
        }
    }

    fn queries(&self) -> usize {
        self.queries.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for DeadNameserver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One worker, check_via off (so stray replies are routed by their second
/// Via); OPTIONS go statelessly to their R-URI, INVITEs to the callee.
fn dns_cfg(port: u16, callee: u16) -> String {
    format!(
        r#"
debug=3
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=1
check_via=no
fifo=""
loadmodule "/usr/local/lib/ser/modules/sl.so"
loadmodule "/usr/local/lib/ser/modules/tm.so"
modparam("tm", "wt_timer", 2)
route {{
    if (method=="OPTIONS") {{
        if (!forward(uri:host, uri:port)) {{ sl_send_reply("478", "Unresolvable destination"); }};
        break;
    }};
    t_relay_to_udp("127.0.0.1", "{callee}");
}}
"#
    )
}

/// A call from the caller answered 200 by the callee, within 5 s.
fn call_completes(caller: &UdpPeer, callee: &UdpPeer, port: u16, ser: &Ser) {
    let inv = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    );
    caller.send_to_port(&inv.build(), port);
    let t0 = Instant::now();
    let heard = pump(&[caller, callee], Duration::from_secs(5), |h| {
        if h.who == CALLEE && method_of(&h.msg).as_deref() == Some("INVITE") {
            callee.send(&reply_to(&h.msg, 200, "OK", Some("cal")), h.from);
        }
        h.who == CALLER && status_of(&h.msg) == Some(200)
    });
    assert!(
        heard
            .iter()
            .any(|h| h.who == CALLER && status_of(&h.msg) == Some(200)),
        "the call through the worker did not complete:\n{}\nser log:\n{}",
        describe(&heard, t0),
        ser.log()
    );
}

#[test]
fn stray_replies_and_requests_naming_hosts_never_stall_the_worker() {
    if std::env::var_os(IN_NETNS).is_none() {
        return run_in_netns("stray_replies_and_requests_naming_hosts_never_stall_the_worker");
    }
    let dns = DeadNameserver::start();
    let (caller, callee, attacker) = (UdpPeer::bind(), UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let ser = Ser::start(&dns_cfg(port, callee.port()));
    // Replies that match no transaction, each naming a different host in
    // its second Via (no received): RFC 3261 18.2.2 would look them up.
    for i in 0..8 {
        let stray = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKstray{i}\r\n\
             Via: SIP/2.0/UDP host{i}.dead-dns.test:5060;branch=z9hG4bKup{i}\r\n\
             From: <sip:a@x>;tag=a{i}\r\nTo: <sip:b@y>;tag=b{i}\r\nCall-ID: stray{i}@x\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        attacker.send_to_port(stray.as_bytes(), port);
    }
    call_completes(&caller, &callee, port, &ser);
    assert_eq!(dns.queries(), 0, "a stray reply caused a DNS query");
    // A request to a name: looked up, given up within the resolver's
    // budget and answered, not left waiting on glibc's 30 s × 5.
    let opt = Request::new("OPTIONS", "sip:x@pbx.dead-dns.test", caller.port());
    caller.send_to_port(&opt.build(), port);
    let answer = caller.recv_final(Duration::from_secs(15));
    assert_eq!(
        answer.as_ref().and_then(|(m, _)| status_of(m)),
        Some(478),
        "no 478 for an unresolvable R-URI; ser log:\n{}",
        ser.log()
    );
    assert!(dns.queries() > 0, "the R-URI's name was not looked up");
    call_completes(&caller, &callee, port, &ser);
}
