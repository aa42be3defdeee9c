//! Tests of the test harness itself, runnable before the server exists:
//! port picking, the UDP peer, the sipp runner (sipp against sipp), the
//! launcher (against a stand-in program) and the /proc helpers.

use crate::common::server::{run_bounded, udp_ports_in, Ser};
use crate::common::sip::{body_of, first_line, param, reply_to};
use crate::common::sipp::stat_column;
use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn free_ports_are_distinct_and_bindable() {
    // sipp and sipsak (other tests here) bind ephemeral ports of their own.
    let _g = serial();
    let ports: Vec<u16> = (0..50).map(|_| free_udp_port()).collect();
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ports.len(), "a port was handed out twice");
    for p in ports.iter().take(5) {
        std::net::UdpSocket::bind(("127.0.0.1", *p)).expect("picked port is bindable");
    }
}

#[test]
fn procfs_sees_a_bound_port_and_forgets_it() {
    let peer = UdpPeer::bind();
    assert!(procfs::udp_port_bound(peer.port()));
    let p = peer.port();
    drop(peer);
    assert!(!procfs::udp_port_bound(p));
}

#[test]
fn udp_peer_round_trip_and_parsing_helpers() {
    let a = UdpPeer::bind();
    let b = UdpPeer::bind();
    let req = Request::new("OPTIONS", "sip:x@127.0.0.1", a.port())
        .rport()
        .build();
    a.send_to_port(&req, b.port());
    let (got, from) = b
        .recv_timeout(Duration::from_secs(2))
        .expect("request arrives");
    assert_eq!(got, req);
    assert_eq!(from, a.addr());
    assert_eq!(first_line(&got), "OPTIONS sip:x@127.0.0.1 SIP/2.0");
    let via = header_value(&got, "v").expect("compact Via lookup");
    assert_eq!(param(&via, "rport").as_deref(), Some(""));
    assert!(param(&via, "branch").is_some_and(|b| b.starts_with("z9hG4bK")));
    assert_eq!(header_value(&got, "content-length").as_deref(), Some("0"));

    let rep = reply_to(&got, 200, "OK", Some("uas1"));
    b.send(&rep, from);
    let (r, _) = a.recv_final(Duration::from_secs(2)).expect("reply arrives");
    assert_eq!(status_of(&r), Some(200));
    let to = header_value(&r, "To").expect("To");
    assert_eq!(param(&to, "tag").as_deref(), Some("uas1"));
    assert_eq!(header_value(&r, "CSeq").as_deref(), Some("1 OPTIONS"));
    assert!(body_of(&r).is_empty());
    assert!(a.recv_timeout(Duration::from_millis(50)).is_none());
}

#[test]
fn status_and_header_parsing_edge_cases() {
    assert_eq!(status_of(b"SIP/2.0 486 Busy Here\r\n\r\n"), Some(486));
    assert_eq!(status_of(b"SIP/2.0 4861 x\r\n"), None);
    assert_eq!(status_of(b"SIP/2.0 48"), None);
    assert_eq!(status_of(b"INVITE sip:a SIP/2.0\r\n"), None);
    let m = b"SIP/2.0 200 OK\r\nVia: a\r\nX-Long: one\r\n two\r\nvia: b\r\n\r\nVia: body\r\n";
    assert_eq!(
        header_values(m, "Via"),
        vec!["a".to_string(), "b".to_string()]
    );
    assert_eq!(header_value(m, "x-long").as_deref(), Some("one two"));
    let r = b"SIP/2.0 180 R\r\nVia: SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b;x=\"p,q\"\r\nv: SIP/2.0/UDP c\r\n\r\n";
    let vias = sip::via_list(r);
    assert_eq!(vias.len(), 3, "{vias:?}");
    assert_eq!(vias[1], "SIP/2.0/UDP b;x=\"p,q\"");
}

#[test]
fn config_port_extraction() {
    assert_eq!(udp_ports_in("listen=udp:127.0.0.1:5070\n"), vec![5070]);
    assert_eq!(udp_ports_in("port=5071\nlisten=127.0.0.1\n"), vec![5071]);
    assert_eq!(
        udp_ports_in("# listen=udp:127.0.0.1:1\nport=5072 # x\n"),
        vec![5072]
    );
    assert_eq!(
        udp_ports_in("listen=tcp:127.0.0.1:1 udp:127.0.0.1:5073\n"),
        vec![5073]
    );
}

#[test]
fn stat_csv_last_row_is_read() {
    let csv = "A;SuccessfulCall(C);FailedCall(C);\n1;2;3;\n4;2000;0;\n";
    assert_eq!(stat_column(csv, "SuccessfulCall(C)"), Some(2000));
    assert_eq!(stat_column(csv, "FailedCall(C)"), Some(0));
    assert_eq!(stat_column(csv, "Nope"), None);
    assert_eq!(stat_column("", "A"), None);
}

#[test]
fn run_bounded_kills_an_overrunning_command() {
    let dir = TestDir::new();
    let t0 = Instant::now();
    let fin = run_bounded(
        Command::new("sleep").arg("30"),
        &dir,
        "sleep",
        Duration::from_millis(300),
    );
    assert!(fin.status.is_none());
    assert!(t0.elapsed() < Duration::from_secs(5));
    let fin = run_bounded(
        Command::new("sh").args(["-c", "echo out; echo err >&2; exit 7"]),
        &dir,
        "sh",
        Duration::from_secs(5),
    );
    assert_eq!(fin.code(), Some(7));
    assert_eq!(fin.stdout, "out\n");
    assert_eq!(fin.stderr, "err\n");
}

#[test]
fn sipp_uac_against_sipp_uas_directly() {
    let _g = serial();
    let dir = TestDir::new();
    let uas = Sipp::builtin("uas").spawn(&dir);
    let r = Sipp::builtin("uac")
        .to(uas.port())
        .calls(100)
        .rate(200)
        .timeout(Duration::from_secs(15))
        .run(&dir);
    r.assert_all_ok(100);
    let s = uas.stop();
    assert_eq!(s.successful, 100, "uas stats: {s:#?}");
    assert_eq!(s.failed, 0);
}

#[test]
fn sipp_reports_failure_when_nobody_answers() {
    let _g = serial();
    let dir = TestDir::new();
    let silent = UdpPeer::bind();
    let r = Sipp::builtin("uac")
        .to(silent.port())
        .calls(1)
        .timeout(Duration::from_secs(2))
        .run(&dir);
    assert_ne!(r.exit_code, Some(0), "{r:#?}");
    assert_eq!(r.successful, 0);
}

#[test]
fn our_scenarios_run_against_sipp() {
    let _g = serial();
    let dir = TestDir::new();
    // Each UAS scenario of ours, driven by the matching UAC scenario of ours.
    for (uas, uac) in [
        ("uas_486.xml", "uac_expect_486.xml"),
        ("uas_180_200_rr.xml", "uac_rr.xml"),
        ("uas_100_only.xml", "uac_cancel.xml"),
    ] {
        let s = Sipp::scenario(&tests_path(&format!("scenarios/{uas}")))
            .calls(20)
            .spawn(&dir);
        let r = Sipp::scenario(&tests_path(&format!("scenarios/{uac}")))
            .to(s.port())
            .calls(20)
            .rate(100)
            .timeout(Duration::from_secs(15))
            .run(&dir);
        r.assert_all_ok(20);
        let sr = s.wait(Duration::from_secs(10));
        assert_eq!((sr.successful, sr.failed), (20, 0), "{uas}: {sr:#?}");
    }
}

fn stand_in(mode: &str) -> Option<Ser> {
    let py = Path::new("/usr/bin/python3");
    if !py.exists() {
        eprintln!("skipping: /usr/bin/python3 missing");
        return None;
    }
    let dir = TestDir::new();
    let port = free_udp_port();
    let pid_file = dir.join("ser.pid");
    let args = vec![
        tests_path("data/stand_in_server.py").display().to_string(),
        port.to_string(),
        pid_file.display().to_string(),
        mode.to_string(),
    ];
    let cfg = dir.join("none.cfg");
    Some(Ser::launch(dir, py, &args, vec![port], cfg, pid_file))
}

#[test]
fn launcher_waits_for_port_finds_children_and_stops() {
    let Some(mut s) = stand_in("normal") else {
        return;
    };
    assert!(procfs::udp_port_bound(s.port()));
    // The stand-in forks after binding; give it a moment to finish.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.child_pids().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let kids = s.child_pids();
    assert_eq!(kids.len(), 2, "log: {}", s.log());
    assert!(s.wait_pid_file(Duration::from_secs(5)));
    let st = s.stop();
    assert!(st.success(), "{st}");
    assert!(!s.pid_file().exists());
    for k in kids {
        assert!(!procfs::alive(k), "child {k} survived");
    }
    assert!(s.log().contains("listening"));
}

#[test]
fn launcher_reports_early_death_with_log() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipping: /usr/bin/python3 missing");
        return;
    }
    // The launcher's own panic is what is under test: it must come from
    // the early-exit check (not the bind timeout) and carry the log.
    let err = match std::panic::catch_unwind(|| stand_in("die")) {
        Ok(_) => panic!("the launcher accepted a server that died"),
        Err(e) => e,
    };
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("server exited early"), "{msg}");
    assert!(
        msg.contains("stand-in: refusing to start"),
        "the log is in the message: {msg}"
    );
}

#[test]
fn dropping_the_server_kills_stubborn_children() {
    let Some(s) = stand_in("stubborn") else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.child_pids().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut all = s.child_pids();
    all.push(s.pid());
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(3);
    while all.iter().any(|&p| procfs::alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in all {
        assert!(!procfs::alive(p), "{p} survived drop");
    }
}

#[test]
fn sipsak_runner_reads_the_reply() {
    let dir = TestDir::new();
    let uas = UdpPeer::bind();
    let port = uas.port();
    // sipsak is a child process, so this thread can answer it meanwhile.
    let answer = std::thread::spawn(move || {
        let (req, from) = uas
            .recv_timeout(Duration::from_secs(10))
            .expect("sipsak sends");
        uas.send(&reply_to(&req, 200, "OK", Some("t1")), from);
        req
    });
    let fin = sipsak_options(port, &dir);
    let req = answer.join().expect("answer thread");
    assert!(first_line(&req).starts_with("OPTIONS sip:x@127.0.0.1"));
    assert_eq!(fin.code(), Some(0), "{fin:#?}");
    let rep = sipsak_reply(&fin.stdout).expect("reply in sipsak output");
    assert_eq!(status_of(rep.as_bytes()), Some(200));
    let to = header_value(rep.as_bytes(), "To").expect("To");
    assert_eq!(param(&to, "tag").as_deref(), Some("t1"));
}

#[test]
fn malformed_cases_are_sendable_and_arrive_intact() {
    let rx = UdpPeer::bind();
    let tx = UdpPeer::bind();
    let cases = malformed::cases(tx.port(), rx.port());
    assert!(cases.len() >= 60);
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
        assert!(c.bytes.len() <= 65_507, "{} is too big for UDP", c.name);
        tx.send_to_port(&c.bytes, rx.port());
        let (got, _) = rx
            .recv_timeout(Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{} lost", c.name));
        assert_eq!(got, c.bytes, "{} changed in transit", c.name);
    }
}
