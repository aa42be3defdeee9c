//! Logging as an operator sees it (issue 19): at `debug=4` each message
//! received and sent is logged with its first line, peer, transport,
//! local socket and, for tm's own branches, the transaction; below 4
//! nothing of it; stderr lines carry a UTC timestamp; `log_facility` and
//! `log_name` are checked at load (file:line) and `log_name` is the ident
//! syslog would get.

use crate::common::server::{check_config, Ser};
use crate::common::sip::{header_value, param, reply_to, status_of, Request, UdpPeer};
use crate::common::tmkit::tm_cfg;
use crate::common::{free_udp_port, ser_bin, TestDir};
use std::time::{Duration, Instant};

/// The log lines containing `needle`, waiting up to 5 s for at least one.
fn wait_lines(ser: &Ser, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<String> = ser
            .log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect();
        if !found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ <pid>(` at the start of a line.
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    let digits =
        |mut r: std::ops::Range<usize>| r.all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    b.len() > 26
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && &b[23..25] == b"Z "
        && line[25..]
            .split_once('(')
            .is_some_and(|(pid, _)| pid.parse::<u32>().is_ok())
}

#[test]
fn debug_4_traces_each_message_with_its_transaction() {
    let port = free_udp_port();
    let callee = UdpPeer::bind();
    let caller = UdpPeer::bind();
    let routes = format!(
        r#"route {{
    if (method == "OPTIONS" && uri =~ "^sip:ping@") {{
        sl_send_reply("200", "Pong");
        break;
    }}
    t_relay_to_udp("127.0.0.1", "{}");
}}"#,
        callee.port()
    );
    let cfg = tm_cfg(port, 1, "", &routes).replace("debug=2", "debug=4");
    let ser = Ser::start(&cfg);
    let me = format!("127.0.0.1:{port}");

    // Stateless: the request in, the reply out; no transaction.
    let ping = Request::new("OPTIONS", &format!("sip:ping@{me}"), caller.port()).build();
    caller.send_to_port(&ping, port);
    let (answer, _) = caller
        .recv_final(Duration::from_secs(5))
        .expect("no answer to the ping");
    assert_eq!(status_of(&answer), Some(200));
    let rx = wait_lines(
        &ser,
        &format!("received UDP from {} on {me}", caller.addr()),
    );
    assert_eq!(rx.len(), 1, "{rx:?}\n{}", ser.log());
    assert!(
        rx[0].ends_with(&format!(
            "({} bytes): OPTIONS sip:ping@{me} SIP/2.0",
            ping.len()
        )),
        "{}",
        rx[0]
    );
    assert!(rx[0].contains(" DEBUG: "), "{}", rx[0]);
    assert!(stamped(&rx[0]), "no timestamp: {}", rx[0]);
    let tx = wait_lines(&ser, &format!("sent UDP to {} from {me}", caller.addr()));
    assert_eq!(tx.len(), 1, "{tx:?}");
    assert!(tx[0].ends_with("SIP/2.0 200 Pong"), "{}", tx[0]);

    // Stateful: the relayed request and the callee's reply name the
    // transaction, the same one the branch id the callee saw encodes.
    let invite = Request::new("INVITE", &format!("sip:bob@{me}"), caller.port()).build();
    caller.send_to_port(&invite, port);
    let (relayed, _) = callee
        .recv_matching(Duration::from_secs(5), |m| m.starts_with(b"INVITE"))
        .expect("INVITE not relayed");
    let via = header_value(&relayed, "Via").expect("no Via");
    let branch = param(&via, "branch").expect("no branch");
    let mut parts = branch.trim_start_matches("z9hG4bK").split('.');
    let hash = u32::from_str_radix(parts.next().unwrap(), 16).unwrap();
    let label = u32::from_str_radix(parts.next().unwrap(), 16).unwrap();
    let tid = format!("[tx {hash}:{label}]");
    let out = wait_lines(&ser, &format!("sent UDP to {} from {me}", callee.addr()));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].ends_with(&format!("INVITE sip:bob@{me} SIP/2.0 {tid}")),
        "{} (expected {tid})",
        out[0]
    );
    callee.send(
        &reply_to(&relayed, 486, "Busy Here", Some("t1")),
        ser_addr(port),
    );
    let back = wait_lines(
        &ser,
        &format!("received UDP from {} on {me}", callee.addr()),
    );
    assert_eq!(back.len(), 1, "{back:?}");
    assert!(
        back[0].ends_with(&format!("SIP/2.0 486 Busy Here {tid}")),
        "{}",
        back[0]
    );
    let (busy, _) = caller
        .recv_matching(Duration::from_secs(5), |m| status_of(m) == Some(486))
        .expect("486 not relayed");
    let relayed_back = wait_lines(&ser, "SIP/2.0 486 Busy Here");
    assert!(
        relayed_back.iter().any(|l| l.contains(&format!(
            "sent UDP to {} from {me} ({} bytes)",
            caller.addr(),
            busy.len()
        ))),
        "{relayed_back:?}"
    );
}

fn ser_addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn below_debug_4_nothing_is_traced() {
    let port = free_udp_port();
    let peer = UdpPeer::bind();
    let cfg = tm_cfg(port, 1, "", r#"route { sl_send_reply("200", "OK"); }"#)
        .replace("debug=2", "debug=3");
    let ser = Ser::start(&cfg);
    for _ in 0..3 {
        peer.send_to_port(
            &Request::new("OPTIONS", "sip:x@127.0.0.1", peer.port()).build(),
            port,
        );
        assert!(
            peer.recv_final(Duration::from_secs(5)).is_some(),
            "no reply"
        );
    }
    let log = ser.log();
    assert!(
        !log.contains("received UDP") && !log.contains("sent UDP"),
        "traced at debug=3:\n{log}"
    );
    // The start-up lines still come, stamped.
    let first = log
        .lines()
        .find(|l| l.contains("starting"))
        .expect("no start line");
    assert!(stamped(first), "{first}");
}

#[test]
fn log_facility_and_log_name_are_checked_at_load() {
    let dir = TestDir::new();
    let route = "route { drop; }\n";
    for (line, why) in [
        ("log_facility=LOG_LOCAL9", "is not a syslog facility"),
        ("log_facility=\"daemon2\"", "is not a syslog facility"),
        ("log_name=\"\"", "printable characters without blanks"),
        (
            "log_name=\"ser edge\"",
            "printable characters without blanks",
        ),
    ] {
        let cfg = dir.write("bad.cfg", format!("debug=2\n{line}\n{route}").as_bytes());
        let f = check_config(&cfg);
        assert_ne!(f.code(), Some(0), "{line} accepted");
        let expect = format!("{}:2:", cfg.display());
        assert!(
            f.stderr.contains(&expect) && f.stderr.contains(why),
            "{line}: expected {expect} … {why}, got {}",
            f.stderr
        );
    }
    let ok = dir.write(
        "ok.cfg",
        format!("log_facility=local3\nlog_name=\"ser-edge\"\n{route}").as_bytes(),
    );
    let f = check_config(&ok);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
}

#[test]
fn log_name_is_the_syslog_ident() {
    if std::path::Path::new("/dev/log").exists() {
        // The lines go to the syslog daemon, where this test cannot read
        // them; the load-time checks above still ran.
        println!("a syslog daemon listens at /dev/log: the ident is not visible here");
        return;
    }
    // No syslog daemon: ser falls back to stderr and names the ident and
    // facility it would have used.
    let port = free_udp_port();
    let cfg = format!(
        "log_stderror=no\nlog_facility=LOG_LOCAL3\nlog_name=\"ser-edge\"\nlisten=udp:127.0.0.1:{port}\nchildren=1\nfifo=\"\"\nroute {{ drop; }}\n"
    );
    // Started as Ser::start does, but without -E (which would win).
    let dir = TestDir::new();
    let cfg_path = dir.write("ser.cfg", cfg.as_bytes());
    let pid_file = dir.join("ser.pid");
    let args: Vec<String> = vec![
        "-f".into(),
        cfg_path.display().to_string(),
        "-DD".into(),
        "-P".into(),
        pid_file.display().to_string(),
    ];
    let ser = Ser::launch(dir, &ser_bin(), &args, vec![port], cfg_path, pid_file);
    let notice = wait_lines(&ser, "no syslog daemon at /dev/log");
    assert_eq!(notice.len(), 1, "{}", ser.log());
    assert!(
        notice[0].contains(r#"not to syslog as "ser-edge", facility LOG_LOCAL3"#),
        "{}",
        notice[0]
    );
}
