//! Black-box tests of the first milestone: config check, stateless
//! proxying with sl/textops/maxfwd, robustness against malformed
//! datagrams, clean shutdown. They start the real `ser` binary on loopback
//! ports of their own.

use crate::common::malformed::{self, Expect};
use crate::common::server::check_config;
use crate::common::sip::{first_line, param, reply_to, via_list};
use crate::common::*;
use std::time::{Duration, Instant};

/// A stateless proxy: OPTIONS answered locally, everything else forwarded
/// to 127.0.0.1:`next`.
fn stateless_cfg(port: u16, children: u32, next: u16) -> String {
    format!(
        r#"
debug=3
log_stderror=yes
listen=udp:127.0.0.1:{port}
children={children}
fifo=""
loadmodule "/usr/local/lib/ser/modules/sl.so"
route {{
    if (method == "OPTIONS") {{
        sl_send_reply("200", "OK");
        break;
    }};
    forward("127.0.0.1", {next});
}}
"#
    )
}

/// Children of the server once their number has stopped changing for
/// 300 ms and reached `min` (workers are forked after the sockets bind).
fn settled_children(ser: &Ser, min: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = ser.child_pids();
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = ser.child_pids();
        if now != last {
            last = now;
            since = Instant::now();
        } else if last.len() >= min && since.elapsed() >= Duration::from_millis(300) {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "children never settled (have {last:?}); log:\n{}",
            ser.log()
        );
    }
}

fn options_ok(peer: &UdpPeer, port: u16) -> Vec<u8> {
    let req = Request::new(
        "OPTIONS",
        &format!("sip:ping@127.0.0.1:{port}"),
        peer.port(),
    );
    peer.send_to_port(&req.build(), port);
    let (rep, from) = peer
        .recv_matching(Duration::from_secs(3), |m| {
            status_of(m).is_some()
                && header_value(m, "Call-ID").as_deref() == Some(req.call_id.as_str())
        })
        .expect("OPTIONS answered");
    assert_eq!(from.port(), port, "reply comes from the listening socket");
    rep
}

// --- a. configuration check ---------------------------------------------

#[test]
fn config_check_accepts_every_core_construct() {
    let f = check_config(&tests_path("data/all_constructs.cfg"));
    assert_eq!(
        f.code(),
        Some(0),
        "ser -c rejected all_constructs.cfg:\n{}{}",
        f.stdout,
        f.stderr
    );
}

#[test]
fn config_check_rejects_broken_configs_at_the_right_line() {
    let dir = tests_path("data/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/bad")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "only {} bad configs", files.len());
    let mut problems = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read bad cfg");
        let line: u32 = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect-line:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{} lacks '# expect-line: N'", path.display()));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let f = check_config(path);
        let want = format!("{name}:{line}:");
        if f.code() == Some(0) || f.status.is_none() {
            problems.push(format!("{name}: accepted or hung ({:?})", f.status));
        } else if !f.stderr.contains(&want) {
            problems.push(format!("{name}: stderr lacks '{want}':\n{}", f.stderr));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// --- b. OPTIONS and stateless forwarding under load ---------------------

#[test]
fn options_answered_with_to_tag_sipsak() {
    let port = free_udp_port();
    let ser = Ser::start(&stateless_cfg(port, 2, free_udp_port()));
    let dir = TestDir::new();
    let fin = sipsak_options(port, &dir);
    assert_eq!(
        fin.code(),
        Some(0),
        "sipsak: {fin:#?}\nser log:\n{}",
        ser.log()
    );
    let rep = sipsak_reply(&fin.stdout).expect("sipsak printed the reply");
    assert_eq!(status_of(rep.as_bytes()), Some(200), "{rep}");
    let to = header_value(rep.as_bytes(), "To").expect("To in reply");
    assert!(
        param(&to, "tag").is_some_and(|t| !t.is_empty()),
        "200 without To-tag: {to}"
    );
}

#[test]
fn options_answered_with_to_tag_udp() {
    let port = free_udp_port();
    let ser = Ser::start(&stateless_cfg(port, 2, free_udp_port()));
    let peer = UdpPeer::bind();
    let rep = options_ok(&peer, port);
    assert_eq!(
        status_of(&rep),
        Some(200),
        "{}",
        String::from_utf8_lossy(&rep)
    );
    let to = header_value(&rep, "To").expect("To");
    assert!(
        param(&to, "tag").is_some_and(|t| !t.is_empty()),
        "no To-tag: {to}"
    );
    assert_eq!(header_value(&rep, "CSeq").as_deref(), Some("1 OPTIONS"));
    assert_eq!(via_list(&rep).len(), 1);
    drop(ser);
}

#[test]
fn sipp_calls_through_stateless_forwarding() {
    let _g = serial();
    let dir = TestDir::new();
    // Four workers, and SIPp's default behaviour of aborting a call on an
    // unexpected message: ser keeps each peer's datagrams on one worker
    // (one SO_REUSEPORT socket per worker), so a 180 can never overtake
    // the 200 behind it.
    let uas = Sipp::builtin("uas").spawn(&dir);
    let port = free_udp_port();
    let ser = Ser::start(&stateless_cfg(port, 4, uas.port()));
    let r = Sipp::builtin("uac")
        .to(port)
        .calls(2000)
        .rate(200)
        .timeout(Duration::from_secs(30))
        .run(&dir);
    let s = uas.stop();
    assert!(
        r.exit_code == Some(0) && r.successful == 2000 && r.failed == 0,
        "uac: {r:#?}\nuas: {s:#?}\nser log:\n{}",
        ser.log()
    );
    assert_eq!(s.failed, 0, "uas: {s:#?}");
}

// --- c. malformed datagrams ---------------------------------------------

/// Sends one malformed case, then a probe the server forwards to `sink`
/// (from the same peer, so the same worker takes both, in order). Once the
/// probe is at the sink, any answer to the case is already in the peer's
/// queue: returns every datagram the peer got. No sleeps, no guessing.
fn send_case(peer: &UdpPeer, sink: &UdpPeer, port: u16, bytes: &[u8]) -> Vec<Vec<u8>> {
    peer.send_to_port(bytes, port);
    let probe = Request::new(
        "MESSAGE",
        &format!("sip:probe@127.0.0.1:{port}"),
        peer.port(),
    );
    peer.send_to_port(&probe.build(), port);
    let got = sink.recv_matching(Duration::from_secs(5), |m| {
        header_value(m, "Call-ID").as_deref() == Some(probe.call_id.as_str())
    });
    assert!(
        got.is_some(),
        "the probe after a case never reached the sink"
    );
    let mut heard = Vec::new();
    while let Some((m, _)) = peer.recv_timeout(Duration::from_millis(1)) {
        heard.push(m);
    }
    heard
}

/// What the case's answers say, against what it expects; None when right.
fn check_case(c: &malformed::Case, heard: &[Vec<u8>]) -> Option<String> {
    let lines: Vec<String> = heard.iter().map(|m| first_line(m)).collect();
    let ok = match c.expect {
        Expect::Drop => heard.is_empty(),
        Expect::Reply(code) => heard.len() == 1 && status_of(&heard[0]) == Some(code),
        Expect::BadExtension(tags) => {
            heard.len() == 1
                && status_of(&heard[0]) == Some(420)
                && header_value(&heard[0], "Unsupported").as_deref() == Some(tags)
        }
    };
    (!ok).then(|| format!("{}: expected {:?}, got {lines:?}", c.name, c.expect))
}

#[test]
fn malformed_datagrams_get_their_answer_and_do_not_hurt_the_server() {
    let _g = serial();
    let sink = UdpPeer::bind(); // next hop for whatever gets forwarded
    let port = free_udp_port();
    let mut ser = Ser::start(&stateless_cfg(port, 2, sink.port()));
    let before = settled_children(&ser, 2);
    let peer = UdpPeer::bind();
    let cases = malformed::cases(peer.port(), port);
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut wrong = Vec::new();
    for c in &cases {
        let heard = send_case(&peer, &sink, port, &c.bytes);
        wrong.extend(check_case(c, &heard));
    }
    sink.drain();
    peer.drain();
    let rep = options_ok(&peer, port);
    assert_eq!(status_of(&rep), Some(200));
    assert!(ser.is_running(), "supervisor died; log:\n{}", ser.log());
    assert_eq!(
        ser.child_pids(),
        before,
        "a worker died or was replaced; log:\n{}",
        ser.log()
    );
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    // Keep-alives are not worth a warning (RFC 5626).
    let log = ser.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("WARNING") && (l.contains("empty") || l.contains("keep-alive"))),
        "keep-alive logged as a warning:\n{log}"
    );
}

// --- d. SIGTERM ---------------------------------------------------------

#[test]
fn sigterm_stops_every_process_and_removes_pid_file() {
    let port = free_udp_port();
    let mut ser = Ser::start(&stateless_cfg(port, 3, free_udp_port()));
    let kids = settled_children(&ser, 3);
    assert!(
        ser.wait_pid_file(Duration::from_secs(5)),
        "no pid file; log:\n{}",
        ser.log()
    );
    let pid_text = std::fs::read_to_string(ser.pid_file()).unwrap_or_default();
    assert_eq!(
        pid_text.trim().parse::<i32>().ok(),
        Some(ser.pid()),
        "pid file content"
    );
    let t0 = Instant::now();
    let st = ser.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?} to stop",
        t0.elapsed()
    );
    // SIGTERM is the ordinary way to stop: a clean exit, status 0 (a
    // death by the signal or a failure code would tell init it crashed).
    assert_eq!(st.code(), Some(0), "stopped with {st}; log:\n{}", ser.log());
    let deadline = Instant::now() + Duration::from_secs(1);
    while kids.iter().any(|&p| procfs::alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<_> = kids.iter().copied().filter(|&p| procfs::alive(p)).collect();
    assert!(
        left.is_empty(),
        "children still alive after SIGTERM: {left:?}"
    );
    assert!(!procfs::alive(ser.pid()));
    assert!(!ser.pid_file().exists(), "pid file left behind");
    assert!(!procfs::udp_port_bound(port), "port still bound");
}

// --- e. stateless forwarding details ------------------------------------

/// Sends `req` from `client` through ser to `uas`; returns what arrived.
fn forward_one(client: &UdpPeer, uas: &UdpPeer, port: u16, req: &Request) -> Vec<u8> {
    client.send_to_port(&req.build(), port);
    let (fwd, from) = uas
        .recv_timeout(Duration::from_secs(3))
        .expect("request forwarded");
    assert_eq!(from.port(), port, "forwarded from the listening socket");
    fwd
}

#[test]
fn forward_adds_via_and_received() {
    let uas = UdpPeer::bind();
    let port = free_udp_port();
    let ser = Ser::start(&stateless_cfg(port, 2, uas.port()));
    let client = UdpPeer::bind();
    let req = Request::new("MESSAGE", "sip:bob@127.0.0.1", client.port())
        .via_host("client.invalid")
        .header("Content-Type", "text/plain")
        .body(b"hello");
    let fwd = forward_one(&client, &uas, port, &req);
    assert!(first_line(&fwd).starts_with("MESSAGE sip:bob@127.0.0.1 SIP/2.0"));
    let vias = via_list(&fwd);
    assert_eq!(vias.len(), 2, "{}", String::from_utf8_lossy(&fwd));
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{port}")),
        "top Via is not ours: {}",
        vias[0]
    );
    assert!(
        param(&vias[0], "branch").is_some(),
        "our Via lacks a branch"
    );
    assert!(vias[1].starts_with(&format!("SIP/2.0/UDP client.invalid:{}", client.port())));
    assert_eq!(
        param(&vias[1], "received").as_deref(),
        Some("127.0.0.1"),
        "{}",
        vias[1]
    );
    assert_eq!(
        param(&vias[1], "branch").as_deref(),
        Some(req.branch.as_str())
    );
    assert!(
        param(&vias[1], "rport").is_none(),
        "rport added unasked: {}",
        vias[1]
    );
    assert_eq!(body_of(&fwd), b"hello");
    assert_eq!(
        header_value(&fwd, "Call-ID").as_deref(),
        Some(req.call_id.as_str())
    );

    // The reply goes back by Via: ser's own Via removed, then to the
    // received address and the Via port.
    uas.send(
        &reply_to(&fwd, 200, "OK", Some("u1")),
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    );
    let (rep, from) = client
        .recv_final(Duration::from_secs(3))
        .expect("reply relayed to client");
    assert_eq!(from.port(), port);
    assert_eq!(status_of(&rep), Some(200));
    assert_eq!(via_list(&rep).len(), 1, "{}", String::from_utf8_lossy(&rep));
    drop(ser);
}

#[test]
fn forward_fills_rport_and_reply_follows_it() {
    let uas = UdpPeer::bind();
    let port = free_udp_port();
    let ser = Ser::start(&stateless_cfg(port, 2, uas.port()));
    let client = UdpPeer::bind();
    // The Via names a port nobody should send to; rport asks for the
    // source port instead (RFC 3581).
    let decoy = UdpPeer::bind();
    let req = Request::new("MESSAGE", "sip:bob@127.0.0.1", decoy.port()).rport();
    let fwd = forward_one(&client, &uas, port, &req);
    let vias = via_list(&fwd);
    assert_eq!(vias.len(), 2);
    assert_eq!(
        param(&vias[1], "rport").as_deref(),
        Some(client.port().to_string().as_str()),
        "rport not filled: {}",
        vias[1]
    );
    uas.send(
        &reply_to(&fwd, 202, "Accepted", Some("u2")),
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    );
    let (rep, _) = client
        .recv_final(Duration::from_secs(3))
        .expect("reply sent to the rport address");
    assert_eq!(status_of(&rep), Some(202));
    assert!(
        decoy.recv_timeout(Duration::from_millis(200)).is_none(),
        "reply went to the Via port"
    );
    drop(ser);
}

#[test]
fn forward_without_rport_replies_to_via_port() {
    let uas = UdpPeer::bind();
    let port = free_udp_port();
    let ser = Ser::start(&stateless_cfg(port, 2, uas.port()));
    let client = UdpPeer::bind();
    // No rport: the reply goes to the port the Via names (RFC 3261 18.2.2).
    let listener = UdpPeer::bind();
    let req = Request::new("MESSAGE", "sip:bob@127.0.0.1", listener.port());
    let fwd = forward_one(&client, &uas, port, &req);
    let vias = via_list(&fwd);
    assert!(
        param(&vias[1], "received").is_none(),
        "received added though host matches: {}",
        vias[1]
    );
    uas.send(
        &reply_to(&fwd, 200, "OK", Some("u3")),
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    );
    let (rep, _) = listener
        .recv_final(Duration::from_secs(3))
        .expect("reply sent to the Via port");
    assert_eq!(status_of(&rep), Some(200));
    drop(ser);
}
