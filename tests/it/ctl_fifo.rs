//! The FIFO as our users' shell scripts use it: `cat transaction.fifo >
//! /tmp/ser_fifo` starts a MESSAGE transaction whose final status lands
//! in the report file; many writers at once; half-written and malformed
//! requests; every command over the FIFO and the unix socket, through
//! `serctl`.

use crate::common::ctlkit::{fifo_of, serctl, shell_cat, sock_of, start, text, wait_child, Report};
use crate::common::sip::{body_of, first_line, header_value, reply_to, UdpPeer};
use crate::common::sipp::Sipp;
use crate::common::{free_udp_port, serial, tests_path, TestDir};
use std::io::Write;
use std::time::{Duration, Instant};

/// The compat example with its report name and destination replaced.
fn transaction_fifo(report: &str, dst: &str) -> String {
    // A verbatim copy of ../shared/compat/transaction.fifo, so a clone
    // without the shared folder runs too; where it exists, they must agree.
    let orig = std::fs::read_to_string(tests_path("data/transaction.fifo"))
        .expect("tests/data/transaction.fifo");
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/compat/transaction.fifo");
    if let Ok(s) = std::fs::read_to_string(shared) {
        assert_eq!(
            s, orig,
            "tests/data/transaction.fifo drifted from the compat copy"
        );
    }
    assert!(orig.starts_with(":t_uac_from:hh\n") && orig.contains("sip:gh@iptel.org"));
    orig.replacen(":t_uac_from:hh", &format!(":t_uac_from:{report}"), 1)
        .replace("sip:gh@iptel.org", dst)
}

#[test]
fn transaction_fifo_sends_the_message_retransmits_and_reports_200() {
    let _g = serial();
    let port = free_udp_port();
    let ser = start(
        TestDir::new(),
        port,
        "route { sl_send_reply(\"403\", \"no\"); }",
    );
    let callee = UdpPeer::bind();
    let report = Report::new("t200");
    let dst = format!("sip:gh@127.0.0.1:{}", callee.port());
    let file = ser
        .dir()
        .write("t.fifo", transaction_fifo(&report.name, &dst).as_bytes());
    assert!(wait_child(
        shell_cat(&file, &fifo_of(&ser)),
        Duration::from_secs(5)
    ));

    let (msg, from) = callee
        .recv_timeout(Duration::from_secs(3))
        .expect("the MESSAGE reaches the listener");
    assert_eq!(first_line(&msg), format!("MESSAGE {dst} SIP/2.0"));
    for (h, v) in [
        ("foo", "bar"),
        ("x", "y"),
        ("p_header", "p_value"),
        ("Contact", "<sip:195.37.77.100:9>"),
        ("Content-Type", "text/plain; charset=UTF-8"),
        ("CSeq", "10 MESSAGE"),
    ] {
        assert_eq!(
            header_value(&msg, h).as_deref(),
            Some(v),
            "{h} in\n{}",
            text(&msg)
        );
    }
    assert!(header_value(&msg, "From")
        .unwrap()
        .contains("sip:faker@foo.bar"));
    assert!(header_value(&msg, "To").unwrap().contains(&dst));
    assert_eq!(body_of(&msg), b"I love you man!!!!\r\n");
    // Unanswered, it is retransmitted (T1 = 500 ms), byte for byte.
    let (again, _) = callee
        .recv_timeout(Duration::from_millis(1500))
        .expect("a retransmission");
    assert_eq!(again, msg);
    assert_eq!(
        report.wait(Duration::from_millis(10)),
        None,
        "no report before the final"
    );
    callee.send(&reply_to(&msg, 200, "OK", Some("callee")), from);
    let got = report.wait(Duration::from_secs(3)).expect("report written");
    assert_eq!(got, "200 OK\n");
    // Answered: no more retransmissions.
    callee.drain();
    assert!(callee.recv_timeout(Duration::from_millis(1200)).is_none());
}

#[test]
fn transaction_fifo_without_listener_reports_408_after_fr_timer() {
    let _g = serial();
    let port = free_udp_port();
    let ser = start(TestDir::new(), port, "route { drop; }");
    let report = Report::new("t408");
    let dst = format!("sip:gh@127.0.0.1:{}", free_udp_port());
    let file = ser
        .dir()
        .write("t.fifo", transaction_fifo(&report.name, &dst).as_bytes());
    let t0 = Instant::now();
    assert!(wait_child(
        shell_cat(&file, &fifo_of(&ser)),
        Duration::from_secs(5)
    ));
    let got = report.wait(Duration::from_secs(6)).expect("report written");
    let took = t0.elapsed();
    assert_eq!(got, "408 Request Timeout\n");
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_millis(4500),
        "408 after fr_timer (2 s), took {took:?}"
    );
}

#[test]
fn twenty_concurrent_shell_writers_make_twenty_transactions() {
    let _g = serial();
    let port = free_udp_port();
    let ser = start(TestDir::new(), port, "route { drop; }");
    let dir = TestDir::new();
    let uas = Sipp::scenario(&tests_path("scenarios/uas_message_200.xml"))
        .calls(20)
        .timeout(Duration::from_secs(20))
        .spawn(&dir);
    let dst = format!("sip:gh@127.0.0.1:{}", uas.port());
    let reports: Vec<Report> = (0..20).map(|i| Report::new(&format!("w{i}"))).collect();
    let writers: Vec<_> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let f = ser.dir().write(
                &format!("w{i}.fifo"),
                transaction_fifo(&r.name, &dst).as_bytes(),
            );
            shell_cat(&f, &fifo_of(&ser))
        })
        .collect();
    for w in writers {
        assert!(wait_child(w, Duration::from_secs(5)), "a writer failed");
    }
    for r in &reports {
        assert_eq!(
            r.wait(Duration::from_secs(5)).as_deref(),
            Some("200 OK\n"),
            "report {}\n{}",
            r.name,
            ser.log()
        );
    }
    let res = uas.wait(Duration::from_secs(15));
    assert_eq!(res.successful, 20, "{res:#?}");
    let stats = serctl(&["-f", fifo_of(&ser).to_str().unwrap()], &["stats"]);
    let out = text(&stats.stdout);
    assert!(out.contains("Total: 20 (20 local)"), "{out}");
    assert!(out.contains("2xx: 20"), "{out}");
}

/// Every command over both interfaces, through serctl.
#[test]
fn commands_answer_over_fifo_and_unix_socket() {
    let _g = serial();
    let port = free_udp_port();
    let ser = start(TestDir::new(), port, "route { drop; }");
    let fifo = fifo_of(&ser).display().to_string();
    let sock = sock_of(&ser).display().to_string();
    for t in [["-f", fifo.as_str()], ["-s", sock.as_str()]] {
        let ps = serctl(&t, &["ps"]);
        let out = text(&ps.stdout);
        assert_eq!(
            ps.status.code(),
            Some(0),
            "{t:?} {out} {}",
            text(&ps.stderr)
        );
        for p in [
            "attendant",
            "timer",
            "receiver child=0",
            "receiver child=1",
            "fifo server",
            "unix domain socket server",
        ] {
            assert!(out.contains(p), "{t:?} ps lacks {p}:\n{out}");
        }
        let up = text(&serctl(&t, &["uptime"]).stdout);
        assert!(up.contains("Up Since: ") && up.contains(" [sec]"), "{up}");
        let v = text(&serctl(&t, &["version"]).stdout);
        assert!(v.contains("Sip EXpress router"), "{v}");
        let st = text(&serctl(&t, &["stats"]).stdout);
        assert!(
            st.contains("Current: 0") && st.contains("Completion status"),
            "{st}"
        );
        let which = text(&serctl(&t, &["fifo", "which"]).stdout);
        for c in [
            "t_uac_dlg",
            "t_uac_from",
            "t_reply",
            "t_stats",
            "t_hash",
            "ps",
            "print",
        ] {
            assert!(
                which.lines().any(|l| l == c),
                "{t:?} which lacks {c}: {which}"
            );
        }
        let p = text(&serctl(&t, &["fifo", "print", "hello there"]).stdout);
        assert!(p.ends_with("hello there\n"), "{p}");
        let pwd = serctl(&t, &["fifo", "pwd"]);
        assert_eq!(pwd.status.code(), Some(0));
        let arg = text(&serctl(&t, &["fifo", "arg"]).stdout);
        assert!(arg.contains("-f"), "{arg}");
        let mem = text(&serctl(&t, &["fifo", "meminfo"]).stdout);
        assert!(mem.contains("total: ") && mem.contains("used: "), "{mem}");
        // Errors: exit 1 and the documented status line.
        let bad = serctl(&t, &["fifo", "nosuch"]);
        assert_eq!(bad.status.code(), Some(1));
        let expect = if t[0] == "-f" {
            "500 command 'nosuch' not available"
        } else {
            "500 Command nosuch not found"
        };
        assert!(text(&bad.stderr).contains(expect), "{}", text(&bad.stderr));
        let dlg = serctl(
            &t,
            &[
                "fifo",
                "t_uac_dlg",
                "MESSAGE",
                "sip:a@127.0.0.1",
                ".",
                "From: <sip:x@y>",
                ".",
                ".",
            ],
        );
        assert_eq!(dlg.status.code(), Some(1));
        assert!(
            text(&dlg.stderr).contains("400 fifo_uac_error"),
            "{}",
            text(&dlg.stderr)
        );
        let r = serctl(
            &t,
            &["fifo", "t_reply", "200", "OK", "1:2", "tag", ".", "."],
        );
        assert!(text(&r.stderr).starts_with("481 "), "{}", text(&r.stderr));
        let r = serctl(
            &t,
            &["fifo", "t_reply", "2000", "OK", "1:2", "tag", ".", "."],
        );
        assert!(text(&r.stderr).starts_with("400 "), "{}", text(&r.stderr));
    }
    // t_hash lists all 65536 buckets over the FIFO.
    let h = serctl(&["-f", &fifo], &["fifo", "t_hash"]);
    let out = text(&h.stdout);
    assert_eq!(out.lines().filter(|l| l.contains(".\t")).count(), 65536);
    assert!(out.contains("65535.\t0\t0"));
}

fn write_now(fifo: &std::path::Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn malformed_and_half_written_requests_do_not_stop_the_fifo() {
    let _g = serial();
    let port = free_udp_port();
    let ser = start(TestDir::new(), port, "route { drop; }");
    let fifo = fifo_of(&ser);
    // Junk outside any request is skipped.
    write_now(&fifo, b"hello\n\n:\n::x\n\n");
    let r1 = Report::new("after_junk");
    write_now(
        &fifo,
        format!(":print:{}\nstill here\n\n", r1.name).as_bytes(),
    );
    assert_eq!(
        r1.wait(Duration::from_secs(3)).as_deref(),
        Some("200 ok\nstill here\n")
    );
    // A reply name trying to leave /tmp gets nothing written anywhere.
    write_now(&fifo, b":print:../etc/x\nz\n\n");

    // A writer that stalls half-way: answered 400 after the timeout.
    let stalled = Report::new("stalled");
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(format!(":t_uac_dlg:{}\nMESSAGE\n", stalled.name).as_bytes())
        .unwrap();
    let got = stalled
        .wait(Duration::from_secs(6))
        .expect("stalled request answered");
    assert!(
        got.starts_with("400 t_uac_dlg: request incomplete"),
        "{got}"
    );
    drop(w);
    let r2 = Report::new("after_stall");
    write_now(&fifo, format!(":print:{}\nok\n\n", r2.name).as_bytes());
    assert_eq!(
        r2.wait(Duration::from_secs(3)).as_deref(),
        Some("200 ok\nok\n")
    );

    // A stalled request overtaken by another writer's: the newcomer is
    // served at once, the abandoned one told so.
    let abandoned = Report::new("abandoned");
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(format!(":t_uac_dlg:{}\nMESSAGE\n", abandoned.name).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let quick = Report::new("quick");
    let t0 = Instant::now();
    write_now(
        &fifo,
        format!(":print:{}\nfirst come\n\n", quick.name).as_bytes(),
    );
    assert_eq!(
        quick.wait(Duration::from_secs(2)).as_deref(),
        Some("200 ok\nfirst come\n")
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    let got = abandoned
        .wait(Duration::from_secs(1))
        .expect("abandoned request answered");
    assert!(got.starts_with("400 "), "{got}");
    drop(w);

    // A reply FIFO nobody reads does not block the server.
    let deaf = Report::new("deaf");
    nix::unistd::mkfifo(&deaf.path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    write_now(&fifo, format!(":ps:{}\n\n", deaf.name).as_bytes());
    let r3 = Report::new("after_deaf");
    let t0 = Instant::now();
    write_now(&fifo, format!(":print:{}\nalive\n\n", r3.name).as_bytes());
    assert_eq!(
        r3.wait(Duration::from_secs(3)).as_deref(),
        Some("200 ok\nalive\n")
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(std::fs::read_dir("/etc").is_ok() && !std::path::Path::new("/tmp/../etc/x").exists());
}

/// SER 0.9's `t_uac_dlg` over the unix socket: the INVITE goes out, its
/// 2xx is ACKed by us (there is no caller to do it), and the requester's
/// bound address gets the status, the dialog lines and the reply later.
#[test]
fn t_uac_dlg_invite_is_acked_and_reported_to_the_unix_requester() {
    let _g = serial();
    let port = free_udp_port();
    let ser = start(TestDir::new(), port, "route { drop; }");
    let callee = UdpPeer::bind();
    let client_path = ser.dir().join("client.sock");
    let client = std::os::unix::net::UnixDatagram::bind(&client_path).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    let ruri = format!("sip:bob@127.0.0.1:{}", callee.port());
    let req = format!(
        ":t_uac_dlg:\nINVITE\n{ruri}\n.\nFrom: <sip:alice@127.0.0.1>\nTo: <{ruri}>\n\
Contact: <sip:alice@!!>\nContent-Type: application/sdp\n.\nv=0\n.\n"
    );
    client.send_to(req.as_bytes(), sock_of(&ser)).unwrap();
    let (inv, from) = callee
        .recv_timeout(Duration::from_secs(3))
        .expect("INVITE arrives");
    assert_eq!(first_line(&inv), format!("INVITE {ruri} SIP/2.0"));
    assert_eq!(
        header_value(&inv, "Contact").as_deref(),
        Some(format!("<sip:alice@127.0.0.1:{port}>").as_str()),
        "`!!` becomes the outgoing socket"
    );
    assert_eq!(body_of(&inv), b"v=0\r\n");
    let contact = format!("<sip:bob@127.0.0.1:{}>", callee.port());
    let mut ok = reply_to(&inv, 200, "OK", Some("bobtag"));
    let at = ok.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    ok.splice(at..at, format!("Contact: {contact}\r\n").into_bytes());
    callee.send(&ok, from);
    let (ack, _) = callee
        .recv_matching(Duration::from_secs(3), |m| {
            first_line(m).starts_with("ACK ")
        })
        .expect("our UAC ACKs the 2xx");
    assert_eq!(
        first_line(&ack),
        format!("ACK sip:bob@127.0.0.1:{} SIP/2.0", callee.port())
    );
    assert!(header_value(&ack, "To").unwrap().contains("tag=bobtag"));
    assert!(header_value(&ack, "CSeq").unwrap().ends_with(" ACK"));
    let mut buf = vec![0u8; 65536];
    let n = client
        .recv(&mut buf)
        .expect("the report reaches the requester");
    let report = text(&buf[..n]);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "200 OK", "{report}");
    assert_eq!(
        lines[1],
        format!("sip:bob@127.0.0.1:{}", callee.port()),
        "{report}"
    );
    assert_eq!((lines[2], lines[3]), (".", "."), "{report}");
    assert!(report.contains("tag=bobtag"), "{report}");
}

/// Junk written into the FIFO is skipped with a warning, but a writer
/// cannot fill the disk with them: 1000 junk lines give at most the
/// burst of the per-call-site limiter, and the FIFO still answers.
#[test]
fn junk_lines_are_warned_about_rate_limited() {
    let _g = serial();
    let port = free_udp_port();
    let ser = start(TestDir::new(), port, "route { drop; }");
    let fifo = fifo_of(&ser);
    let junk = "junk line\n".repeat(1000);
    write_now(&fifo, junk.as_bytes());
    let r = Report::new("after_flood");
    write_now(
        &fifo,
        format!(":print:{}\nstill here\n\n", r.name).as_bytes(),
    );
    assert_eq!(
        r.wait(Duration::from_secs(5)).as_deref(),
        Some("200 ok\nstill here\n")
    );
    let warned = ser
        .log()
        .lines()
        .filter(|l| l.contains("\"junk line\" skipped"))
        .count();
    assert!(
        (1..=10).contains(&warned),
        "{warned} junk warnings:\n{}",
        ser.log()
    );
}
