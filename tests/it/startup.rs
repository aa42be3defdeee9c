//! Starting ser the way operators type it: `-l` in every form `ser -h`
//! documents, `myself`/`alias=`/`check_via` on ports of every width, a
//! second server on a served address, `-D`/`-DD`, `-s`, and what the log
//! says at start (with or without a syslog daemon).

use crate::common::server::{run_bounded, Finished};
use crate::common::sip::{first_line, reply_to};
use crate::common::*;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Answers OPTIONS itself: 200 "myself" when the R-URI is ours, else 404.
fn myself_route() -> &'static str {
    r#"
loadmodule "sl.so"
route {
    if (uri == myself) {
        sl_send_reply("200", "myself");
        break;
    };
    sl_send_reply("404", "not myself");
}
"#
}

/// A config listening on 127.0.0.1:`p` only, answering with [`myself_route`].
fn one_socket_cfg(p: u16, children: u32) -> String {
    format!(
        "listen=udp:127.0.0.1:{p}\nchildren={children}\nfifo=\"\"\n{}",
        myself_route()
    )
}

/// Starts ser with `args` after `-f <cfg>`, waiting for `ports` (IPv4)
/// to be bound.
fn launch(cfg: &str, args: &[&str], ports: Vec<u16>) -> Ser {
    let dir = TestDir::new();
    let cfg_path = dir.write("ser.cfg", cfg.as_bytes());
    let pid_file = dir.join("ser.pid");
    let mut all = vec![
        "-f".to_string(),
        cfg_path.display().to_string(),
        "-P".into(),
        pid_file.display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    Ser::launch(dir, &ser_bin(), &all, ports, cfg_path, pid_file)
}

/// One OPTIONS with R-URI `ruri` sent from `sock` to `to`; the status line
/// of the answer, or None after 3 s.
fn ask(sock: &UdpSocket, to: SocketAddr, ruri: &str) -> Option<String> {
    let me = sock.local_addr().unwrap();
    let host = match me {
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
        SocketAddr::V4(a) => a.ip().to_string(),
    };
    let mut req = Request::new("OPTIONS", ruri, me.port()).via_host(&host);
    req.to = format!("<{ruri}>");
    sock.send_to(&req.build(), to).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let m = &buf[..n];
            if header_value(m, "Call-ID").as_deref() == Some(req.call_id.as_str()) {
                return Some(first_line(m));
            }
        }
    }
    None
}

/// An OPTIONS to `sip:x@127.0.0.1:<port>` at that port: is it ours?
fn ask_own_port(port: u16) -> Option<String> {
    ask(&v4_peer(), local(port), &format!("sip:x@127.0.0.1:{port}"))
}

fn v4_peer() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `ser` with `args`, bounded; for starts that must be refused.
fn run_ser(args: &[&str], dir: &TestDir) -> Finished {
    run_bounded(
        Command::new(ser_bin()).args(args),
        dir,
        "ser",
        Duration::from_secs(10),
    )
}

// --- -l as ser -h documents it ---------------------------------------------

#[test]
fn dash_l_accepts_every_documented_form() {
    let cfg_plain = format!("children=1\nfifo=\"\"\n{}", myself_route());
    let p = free_udp_port();
    for form in [
        format!("127.0.0.1:{p}"),
        format!("udp:127.0.0.1:{p}"),
        format!("UDP:127.0.0.1:{p}"),
    ] {
        let mut ser = launch(&cfg_plain, &["-DD", "-E", "-l", &form], vec![p]);
        let got = ask_own_port(p);
        assert_eq!(
            got.as_deref(),
            Some("SIP/2.0 200 myself"),
            "-l {form}; log:\n{}",
            ser.log()
        );
        ser.stop();
    }
    // A bare address or an interface name takes the port from `port=`.
    let q = free_udp_port();
    let cfg_port = format!("port={q}\n{cfg_plain}");
    for form in ["127.0.0.1", "lo"] {
        let mut ser = launch(&cfg_port, &["-DD", "-E", "-l", form], vec![q]);
        let got = ask_own_port(q);
        assert_eq!(
            got.as_deref(),
            Some("SIP/2.0 200 myself"),
            "-l {form}; log:\n{}",
            ser.log()
        );
        ser.stop();
    }
}

#[test]
fn dash_l_takes_a_bracketed_ipv6_address_with_port() {
    let Ok(peer) = UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    let p = free_udp_port();
    let cfg = format!("children=1\nfifo=\"\"\n{}", myself_route());
    // The harness watches IPv4 only: wait for the answer instead.
    let mut ser = launch(&cfg, &["-DD", "-E", "-l", &format!("[::1]:{p}")], vec![]);
    let to: SocketAddr = format!("[::1]:{p}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        got = ask(&peer, to, &format!("sip:x@[::1]:{p}"));
    }
    assert_eq!(
        got.as_deref(),
        Some("SIP/2.0 200 myself"),
        "log:\n{}",
        ser.log()
    );
    ser.stop();
}

#[test]
fn dash_l_with_ser_c_prints_the_socket_and_bad_forms_are_refused() {
    let dir = TestDir::new();
    let cfg = dir.write(
        "ser.cfg",
        format!("fifo=\"\"\n{}", myself_route()).as_bytes(),
    );
    let cfg = cfg.display().to_string();
    let ok = run_ser(&["-c", "-f", &cfg, "-l", "127.0.0.1:10000"], &dir);
    assert_eq!(ok.code(), Some(0), "{ok:?}");
    // No transport: UDP and TCP, as SER 0.9 opened both.
    for proto in ["udp", "tcp"] {
        assert!(
            ok.stdout
                .contains(&format!("{proto}: 127.0.0.1 [127.0.0.1]:10000")),
            "{}",
            ok.stdout
        );
    }

    let bad_port = run_ser(&["-c", "-f", &cfg, "-l", "127.0.0.1:99999"], &dir);
    assert_ne!(bad_port.code(), Some(0), "{bad_port:?}");
    assert!(
        bad_port.stderr.contains("-l 127.0.0.1:99999"),
        "{}",
        bad_port.stderr
    );

    // TCP is served and listed with its protocol; with -T it is refused,
    // and TLS (not served yet) is refused, never dropped.
    let tcp = run_ser(&["-c", "-f", &cfg, "-l", "tcp:127.0.0.1:10000"], &dir);
    assert_eq!(tcp.code(), Some(0), "{tcp:?}");
    assert!(
        tcp.stdout.contains("tcp: 127.0.0.1 [127.0.0.1]:10000"),
        "{}",
        tcp.stdout
    );
    let off = run_ser(&["-c", "-T", "-f", &cfg, "-l", "tcp:127.0.0.1:10000"], &dir);
    assert_ne!(off.code(), Some(0), "{off:?}");
    assert!(off.stderr.contains("TCP is disabled"), "{}", off.stderr);
    // TLS without the certificate file is refused, naming the setting.
    let tls = run_ser(&["-c", "-f", &cfg, "-l", "tls:127.0.0.1:10001"], &dir);
    assert_ne!(tls.code(), Some(0), "{tls:?}");
    assert!(tls.stderr.contains("tls_certificate"), "{}", tls.stderr);
}

// --- myself, alias=, check_via over ports of every width -------------------

/// Ports to listen on: three free ones the kernel picked (five digits)
/// plus those of the report that are free here.
fn port_spread() -> Vec<u16> {
    let mut ports: Vec<u16> = (0..3).map(|_| free_udp_port()).collect();
    for p in [5070u16, 6000, 9999, 10000, 32000, 44513] {
        if !ports.contains(&p) && UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            ports.push(p);
        }
    }
    ports
}

#[test]
fn myself_and_aliases_hold_on_every_port_width() {
    let ports = port_spread();
    let listens: String = ports
        .iter()
        .map(|p| format!("listen=udp:127.0.0.1:{p}\n"))
        .collect();
    let first = ports[0];
    let cfg = format!(
        "children=1\nfifo=\"\"\n{listens}alias=sip.example.test:{first}\nalias=any.example.test\n{}",
        myself_route()
    );
    let mut ser = launch(&cfg, &["-DD", "-E"], ports.clone());
    let peer = v4_peer();
    let not_ours = (1..)
        .map(|d| first.wrapping_add(d))
        .find(|p| !ports.contains(p))
        .unwrap();
    for &p in &ports {
        let cases = [
            (format!("sip:x@127.0.0.1:{p}"), true),
            (format!("sip:x@127.0.0.1:{p};transport=udp"), true),
            (format!("sip:x@127.0.0.1:{not_ours}"), false),
            (format!("sip:x@127.0.0.2:{p}"), false),
            (format!("sip:x@any.example.test:{p}"), true),
            (format!("sip:x@ANY.Example.Test:{p}"), true),
        ];
        for (ruri, mine) in cases {
            let want = if mine {
                "SIP/2.0 200 myself"
            } else {
                "SIP/2.0 404 not myself"
            };
            assert_eq!(
                ask(&peer, local(p), &ruri).as_deref(),
                Some(want),
                "{ruri} to port {p}"
            );
        }
    }
    // No port means 5060, which is not ours.
    assert_eq!(
        ask(&peer, local(first), "sip:x@127.0.0.1").as_deref(),
        Some("SIP/2.0 404 not myself")
    );
    // An alias with a port is ours on that port only.
    for (ruri, want) in [
        (
            format!("sip:x@sip.example.test:{first}"),
            "SIP/2.0 200 myself",
        ),
        (
            format!("sip:x@sip.example.test:{not_ours}"),
            "SIP/2.0 404 not myself",
        ),
    ] {
        assert_eq!(
            ask(&peer, local(first), &ruri).as_deref(),
            Some(want),
            "{ruri}"
        );
    }
    ser.stop();
}

#[test]
fn check_via_on_a_five_digit_port_passes_our_replies_and_drops_others() {
    let p = free_udp_port();
    let caller = UdpPeer::bind();
    let callee = UdpPeer::bind();
    let cfg = format!(
        "listen=udp:127.0.0.1:{p}\nchildren=1\ncheck_via=yes\nfifo=\"\"\nroute {{\n    forward(\"127.0.0.1\", {});\n}}\n",
        callee.port()
    );
    let mut ser = launch(&cfg, &["-DD", "-E"], vec![p]);
    for (top_via_port, passes) in [(p, true), (p.wrapping_add(1), false)] {
        let req = Request::new("MESSAGE", "sip:bob@127.0.0.1", caller.port());
        caller.send_to_port(&req.build(), p);
        let (fwd, _) = callee
            .recv_matching(Duration::from_secs(3), |m| {
                header_value(m, "Call-ID").as_deref() == Some(req.call_id.as_str())
            })
            .expect("request forwarded");
        let mut reply = String::from_utf8(reply_to(&fwd, 200, "OK", Some("t1"))).unwrap();
        if !passes {
            // The same reply, but its top Via names a port of someone else.
            reply = reply.replacen(
                &format!("127.0.0.1:{p}"),
                &format!("127.0.0.1:{top_via_port}"),
                1,
            );
        }
        callee.send_to_port(reply.as_bytes(), p);
        let got = caller.recv_matching(
            Duration::from_millis(if passes { 3000 } else { 1000 }),
            |m| header_value(m, "Call-ID").as_deref() == Some(req.call_id.as_str()),
        );
        assert_eq!(
            got.is_some(),
            passes,
            "top Via port {top_via_port}; log:\n{}",
            ser.log()
        );
    }
    ser.stop();
}

// --- one server per address ------------------------------------------------

#[test]
fn a_second_server_on_a_served_address_is_refused() {
    let p = free_udp_port();
    let cfg = one_socket_cfg(p, 2);
    let mut first = launch(&cfg, &["-DD", "-E"], vec![p]);
    let dir = TestDir::new();
    let cfg2 = dir.write("ser.cfg", cfg.as_bytes()).display().to_string();
    let second = run_ser(&["-f", &cfg2, "-DD", "-E"], &dir);
    assert!(second.status.is_some(), "the second server kept running");
    assert_ne!(second.code(), Some(0), "{second:?}");
    assert!(
        second.stderr.contains("already in use"),
        "{}",
        second.stderr
    );
    // The first one still serves, alone.
    assert!(first.is_running());
    assert_eq!(ask_own_port(p).as_deref(), Some("SIP/2.0 200 myself"));
    first.stop();

    // Any other program holding the address counts too.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let q = holder.local_addr().unwrap().port();
    let cfg3 = dir
        .write(
            "other.cfg",
            format!("listen=udp:127.0.0.1:{q}\nfifo=\"\"\n{}", myself_route()).as_bytes(),
        )
        .display()
        .to_string();
    let refused = run_ser(&["-f", &cfg3, "-DD", "-E"], &dir);
    assert_ne!(refused.code(), Some(0), "{refused:?}");
    assert!(
        refused.stderr.contains("already in use"),
        "{}",
        refused.stderr
    );
}

// --- -D, -DD, -s, the start-up log -----------------------------------------

/// The server's children once their number has stopped changing for
/// 300 ms and reached `min`.
fn settled_children(ser: &Ser, min: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (usize::MAX, Instant::now());
    loop {
        let n = ser.child_pids().len();
        if n != last.0 {
            last = (n, Instant::now());
        } else if n >= min && last.1.elapsed() > Duration::from_millis(300) {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "children never settled (last {n})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dash_d_receives_in_one_process_and_dash_dd_forks_the_workers() {
    for (flag, receivers) in [("-D", 1usize), ("-DD", 3)] {
        let p = free_udp_port();
        let cfg = one_socket_cfg(p, 3);
        let mut ser = launch(&cfg, &[flag, "-E"], vec![p]);
        // Children: the timer plus the receivers. The launched process is
        // the one that stays: neither form goes into the background.
        assert_eq!(
            settled_children(&ser, 1 + receivers),
            1 + receivers,
            "{flag}; log:\n{}",
            ser.log()
        );
        assert!(ser.is_running(), "{flag} left the foreground");
        assert_eq!(
            ask_own_port(p).as_deref(),
            Some("SIP/2.0 200 myself"),
            "{flag}"
        );
        ser.stop();
    }
}

#[test]
fn sigusr1_appends_to_the_statistics_file() {
    let p = free_udp_port();
    let cfg = one_socket_cfg(p, 1);
    let stats_dir = TestDir::new();
    let stats = stats_dir.join("ser.stats");
    let mut ser = launch(
        &cfg,
        &["-DD", "-E", "-s", &stats.display().to_string()],
        vec![p],
    );
    let blocks = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .matches("tm stats: current=")
            .count()
    };
    for want in 1..=2 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(ser.pid()),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while blocks(&stats) < want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(blocks(&stats), want, "log:\n{}", ser.log());
    }
    let text = std::fs::read_to_string(&stats).unwrap();
    assert!(
        text.contains("timer"),
        "the process list is in the file:\n{text}"
    );
    ser.stop();

    // A file that cannot be written refuses the start.
    let dir = TestDir::new();
    let cfg_path = dir.write("ser.cfg", cfg.as_bytes()).display().to_string();
    let bad = run_ser(
        &[
            "-f",
            &cfg_path,
            "-DD",
            "-E",
            "-s",
            "/nonexistent-dir/ser.stats",
        ],
        &dir,
    );
    assert_ne!(bad.code(), Some(0), "{bad:?}");
    assert!(bad.stderr.contains("statistics file"), "{}", bad.stderr);
}

#[test]
fn the_log_says_which_version_listens_where() {
    let (p, q) = (free_udp_port(), free_udp_port());
    let cfg = format!(
        "listen=udp:127.0.0.1:{p}\nlisten=udp:127.0.0.1:{q}\nchildren=1\nfifo=\"\"\n{}",
        myself_route()
    );
    let mut ser = launch(&cfg, &["-DD", "-E"], vec![p, q]);
    let log = ser.log();
    assert!(
        log.contains(&format!("ser {} (", env!("CARGO_PKG_VERSION"))),
        "{log}"
    );
    for port in [p, q] {
        assert!(
            log.contains(&format!("listening on udp: 127.0.0.1 [127.0.0.1]:{port}")),
            "{log}"
        );
    }
    ser.stop();
}

#[test]
fn without_a_syslog_daemon_the_log_goes_to_stderr() {
    let p = free_udp_port();
    let cfg = one_socket_cfg(p, 1);
    let dir = TestDir::new();
    let cfg_path = dir.write("ser.cfg", cfg.as_bytes()).display().to_string();
    let pid_file = dir.join("ser.pid");
    let ser_args = vec![
        "-f".to_string(),
        cfg_path.clone(),
        "-DD".into(),
        "-P".into(),
        pid_file.display().to_string(),
    ];
    let (program, args) = if Path::new("/dev/log").exists() {
        // Hide the daemon: a private mount namespace with /dev/null over
        // /dev/log (root only, as in CI).
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: /dev/log exists and hiding it needs root");
            return;
        }
        let mut a = vec![
            "-m".to_string(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            "mount --bind /dev/null /dev/log && exec \"$0\" \"$@\"".into(),
            ser_bin().display().to_string(),
        ];
        a.extend(ser_args);
        (std::path::PathBuf::from("unshare"), a)
    } else {
        (ser_bin(), ser_args)
    };
    let mut ser = Ser::launch(dir, &program, &args, vec![p], cfg_path.into(), pid_file);
    let log = ser.log();
    assert!(
        log.contains("no syslog daemon at /dev/log: logging to stderr"),
        "{log}"
    );
    assert!(
        log.contains(&format!("listening on udp: 127.0.0.1 [127.0.0.1]:{p}")),
        "{log}"
    );
    ser.stop();
}
