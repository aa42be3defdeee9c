//! TCP (issue 15): sipp over TCP as caller and callee through ser, UDP ↔
//! TCP in both directions, and what a hostile stream gets (400 and close
//! for a missing Content-Length, 513 for a message over the cap, a
//! connection that never completes a message closed by the timeout).

use crate::common::server::Ser;
use crate::common::sipp::Sipp;
use crate::common::{free_udp_port, serial, TestDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// ser on UDP and TCP at `port`, relaying every request to the callee at
/// `uas` over `to` ("udp" or "tcp").
fn relay_cfg(port: u16, to: &str, uas: u16, extra: &str) -> String {
    stream_cfg(
        port,
        2,
        extra,
        &format!(
            r#"route {{
    if (method == OPTIONS) {{
        sl_send_reply("200", "Alive");
        break;
    }};
    if (!t_relay_to_{to}("127.0.0.1", "{uas}")) {{
        sl_reply_error();
    }};
}}"#
        ),
    )
}

/// ser on UDP and TCP at `port` with sl and tm, `extra` lines (settings,
/// more modules) and `routes`.
fn stream_cfg(port: u16, children: u32, extra: &str, routes: &str) -> String {
    format!(
        r#"
debug=2
log_stderror=yes
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
children={children}
fifo=""
loadmodule "/usr/local/lib/ser/modules/sl.so"
loadmodule "/usr/local/lib/ser/modules/tm.so"
{extra}
{routes}
"#
    )
}

/// `calls` sipp calls at `rate`, caller over `from`, callee over `to`.
fn call_through(from: &str, to: &str, calls: u64, rate: u32) {
    let dir = TestDir::new();
    let mut uas = Sipp::builtin("uas").timeout(Duration::from_secs(60));
    if to == "tcp" {
        uas = uas.tcp();
    }
    let uas = uas.spawn(&dir);
    let port = free_udp_port();
    let ser = Ser::start(&relay_cfg(
        port,
        to,
        uas.port(),
        "modparam(\"tm\", \"wt_timer\", 1)",
    ));
    let uac = |calls: u64, rate: u32| {
        let u = Sipp::builtin("uac")
            .to(port)
            .calls(calls)
            .rate(rate)
            .timeout(Duration::from_secs(40));
        if from == "tcp" {
            u.tcp()
        } else {
            u
        }
    };
    // Warm-up: what is allocated once, on first use, is allocated now, so
    // the idle figure after it is exact.
    let w = uac(10, 50).run(&dir);
    assert!(w.successful == 10, "warm-up: {w:#?}\n{}", ser.log());
    let idle = settled(&ser, 0, None, from, to);
    let r = uac(calls, rate).run(&dir);
    let s = uas.stop();
    assert!(
        r.exit_code == Some(0) && r.successful == calls && r.failed == 0,
        "{from} -> {to}\nuac: {r:#?}\nuas: {s:#?}\nser log:\n{}",
        ser.log()
    );
    assert_eq!(s.failed, 0, "uas: {s:#?}");
    // Every transaction freed afterwards (none left behind by a stream),
    // and shm back to the idle figure to the byte.
    settled(
        &ser,
        idle.created + 2 * calls,
        Some(idle.shm_used),
        from,
        to,
    );
}

/// Waits (15 s at most) until no transaction is left, at least `created`
/// were made, and shm is back to `shm` when given; the figures then.
fn settled(
    ser: &Ser,
    created: u64,
    shm: Option<u64>,
    from: &str,
    to: &str,
) -> crate::common::tmkit::TmStats {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let t = crate::common::tmkit::tm_stats(ser);
        if t.current == 0
            && t.created == t.freed
            && t.created >= created
            && shm.is_none_or(|s| s == t.shm_used)
        {
            return t;
        }
        assert!(
            Instant::now() < end,
            "{from} -> {to}: {t:?}, shm idle {shm:?}\n{}",
            ser.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn sipp_calls_over_tcp_as_caller_and_callee() {
    let _g = serial();
    call_through("tcp", "tcp", 2000, 200);
}

#[test]
fn udp_caller_to_tcp_callee_and_tcp_caller_to_udp_callee() {
    let _g = serial();
    call_through("udp", "tcp", 500, 200);
    call_through("tcp", "udp", 500, 200);
}

/// Everything the peer got until the server closed (or `limit` passed:
/// then the connection was still open).
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

fn options(port: u16, content_length: &str) -> String {
    format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKtcp1\r\n\
         From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\n\
         Call-ID: tcp-{port}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{content_length}\r\n"
    )
}

#[test]
fn a_stream_without_content_length_gets_400_and_is_closed() {
    let _g = serial();
    let port = free_udp_port();
    let ser = Ser::start(&relay_cfg(port, "udp", 9, ""));
    for cl in ["", "Content-Length: ten\r\n"] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(options(port, cl).as_bytes()).unwrap();
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("SIP/2.0 400 "),
            "{cl:?}: {text}\n{}",
            ser.log()
        );
        assert!(closed, "{cl:?}: still open\n{}", ser.log());
    }
    // Over the cap: 513, decided from Content-Length before any body.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(options(port, "Content-Length: 70000\r\n").as_bytes())
        .unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("SIP/2.0 513 "), "{text}\n{}", ser.log());
    assert!(closed);
}

#[test]
fn a_message_never_completed_is_closed_and_others_are_served() {
    let _g = serial();
    let port = free_udp_port();
    let ser = Ser::start(&relay_cfg(port, "udp", 9, "tcp_msg_read_timeout=1"));
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4")
        .unwrap();
    // Another connection is answered meanwhile.
    let mut ok = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ok.write_all(options(port, "Content-Length: 0\r\n").as_bytes())
        .unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 2048];
    let n = ok.read(&mut buf).unwrap_or(0);
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200 Alive"),
        "{}\n{}",
        String::from_utf8_lossy(&buf[..n]),
        ser.log()
    );
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5));
    assert!(closed, "slowloris still open\n{}", ser.log());
}

/// One SIP message from a stream: the header block, then exactly
/// Content-Length bytes of body.
fn read_message(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_millis(100))).ok()?;
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < end {
        if let Some(h) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..h]).to_ascii_lowercase();
            let cl: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= h + 4 + cl {
                got.truncate(h + 4 + cl);
                return Some(got);
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
    None
}

fn message(port: u16, call: &str, transport: &str, body_len: usize) -> Vec<u8> {
    let mut m = format!(
        "MESSAGE sip:bob@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{call}\r\n\
         From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n\
         Call-ID: {call}\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\
         Content-Type: text/plain\r\nContent-Length: {body_len}\r\n\r\n"
    )
    .into_bytes();
    m.extend(std::iter::repeat_n(b'x', body_len));
    m
}

/// A TCP callee: answers every request it reads with 200 (its Via, From,
/// To, Call-ID and CSeq copied) and reports the size of each.
fn tcp_callee() -> (u16, std::sync::mpsc::Receiver<usize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        while let Some(m) = read_message(&mut s, Duration::from_secs(20)) {
            let _ = tx.send(m.len());
            let text = String::from_utf8_lossy(&m).to_string();
            let keep: String = text
                .split("\r\n")
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    ["via:", "from:", "to:", "call-id:", "cseq:"]
                        .iter()
                        .any(|h| l.starts_with(h))
                })
                .map(|l| format!("{l}\r\n"))
                .collect();
            let r = format!("SIP/2.0 200 OK\r\n{keep}Content-Length: 0\r\n\r\n");
            if s.write_all(r.as_bytes()).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// A 60 KB MESSAGE is relayed over TCP whole, from a TCP caller and from
/// a UDP one, and each caller gets the callee's 200.
#[test]
fn a_60_kb_message_crosses_tcp_from_tcp_and_from_udp() {
    let _g = serial();
    let (callee, sizes) = tcp_callee();
    let port = free_udp_port();
    let ser = Ser::start(&relay_cfg(port, "tcp", callee, ""));
    let body = 60 * 1024;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&message(port, "big-tcp", "TCP", body)).unwrap();
    let r = read_message(&mut s, Duration::from_secs(10)).unwrap_or_default();
    assert!(
        r.starts_with(b"SIP/2.0 200 "),
        "{}\n{}",
        String::from_utf8_lossy(&r),
        ser.log()
    );
    let got = sizes
        .recv_timeout(Duration::from_secs(5))
        .expect("callee got it");
    assert!(got > body, "{got}");

    let peer = crate::common::sip::UdpPeer::bind();
    peer.send_to_port(&message(port, "big-udp", "UDP", body), port);
    let r = peer
        .recv_timeout(Duration::from_secs(10))
        .map(|(m, _)| m)
        .unwrap_or_default();
    assert!(
        r.starts_with(b"SIP/2.0 200 "),
        "{}\n{}",
        String::from_utf8_lossy(&r),
        ser.log()
    );
    let got = sizes
        .recv_timeout(Duration::from_secs(5))
        .expect("callee got it");
    assert!(got > body, "{got}");
}

/// 1000 idle TCP connections held open, then a call over TCP completes.
#[test]
fn a_call_completes_beside_1000_idle_connections() {
    let _g = serial();
    let port = free_udp_port();
    let ser = Ser::start(&relay_cfg(port, "udp", 9, ""));
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(options(port, "Content-Length: 0\r\n").as_bytes())
        .unwrap();
    let r = read_message(&mut s, Duration::from_secs(10)).unwrap_or_default();
    assert!(
        r.starts_with(b"SIP/2.0 200 Alive"),
        "{}\n{}",
        String::from_utf8_lossy(&r),
        ser.log()
    );
    drop(idle);
}

/// The header lines a reply copies from its request.
fn reply_for(req: &[u8], code: u16, reason: &str, to_tag: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(req);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut keep = String::new();
    for l in head.split("\r\n").skip(1) {
        let low = l.to_ascii_lowercase();
        if ["via:", "from:", "call-id:", "cseq:"]
            .iter()
            .any(|h| low.starts_with(h))
        {
            keep.push_str(l);
            keep.push_str("\r\n");
        } else if low.starts_with("to:") {
            keep.push_str(l);
            if to_tag && !low.contains("tag=") {
                keep.push_str(";tag=callee");
            }
            keep.push_str("\r\n");
        }
    }
    format!("SIP/2.0 {code} {reason}\r\n{keep}Content-Length: 0\r\n\r\n").into_bytes()
}

fn first_line(m: &[u8]) -> String {
    String::from_utf8_lossy(m)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// A TCP callee run by `answer`: for each request, the replies to send;
/// reports each request it read.
fn scripted_tcp_callee(
    answer: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (u16, std::sync::mpsc::Receiver<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        while let Some(m) = read_message(&mut s, Duration::from_secs(20)) {
            let _ = tx.send(String::from_utf8_lossy(&m).to_string());
            for r in answer(&m) {
                if s.write_all(&r).is_err() {
                    return;
                }
            }
        }
    });
    (port, rx)
}

fn invite(port: u16, call: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{call}\r\n\
         From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n\
         Call-ID: {call}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:a@127.0.0.1:9;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Over TCP end to end: a 486 from the first callee runs the failure
/// route, whose second branch (over TCP) rings; the caller's CANCEL is
/// answered 200 and reaches that callee, and the caller gets one final;
/// `proto` in the script is the transport the request came over.
#[test]
fn a_486_then_a_cancelled_second_branch_all_over_tcp() {
    let _g = serial();
    let (busy, busy_heard) = scripted_tcp_callee(|m| match first_line(m).split(' ').next() {
        Some("INVITE") => vec![reply_for(m, 486, "Busy Here", true)],
        _ => vec![],
    });
    let (ring, ring_heard) = scripted_tcp_callee(|m| match first_line(m).split(' ').next() {
        Some("INVITE") => vec![reply_for(m, 180, "Ringing", true)],
        Some("CANCEL") => vec![
            reply_for(m, 200, "OK", true),
            // The INVITE's 487: same headers but the CSeq method.
            String::from_utf8_lossy(&reply_for(m, 487, "Request Terminated", true))
                .replace(" CANCEL\r\n", " INVITE\r\n")
                .into_bytes(),
        ],
        _ => vec![],
    });
    let port = free_udp_port();
    let cfg = stream_cfg(
        port,
        1,
        "",
        &format!(
            r#"route {{
    if (proto != TCP) {{
        sl_send_reply("403", "TCP only");
        break;
    }};
    t_on_failure("1");
    t_relay_to_tcp("127.0.0.1", "{busy}");
}}
failure_route[1] {{
    append_branch();
    t_relay_to_tcp("127.0.0.1", "{ring}");
}}"#
        ),
    );
    let ser = Ser::start(&cfg);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&invite(port, "fail-cancel")).unwrap();
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    let mut cancelled = false;
    while Instant::now() < end {
        let Some(m) = read_message(&mut s, Duration::from_millis(500)) else {
            continue;
        };
        let line = first_line(&m);
        got.push(line.clone());
        if line.starts_with("SIP/2.0 180") && !cancelled {
            cancelled = true;
            let c = String::from_utf8_lossy(&invite(port, "fail-cancel"))
                .replace("INVITE sip:", "CANCEL sip:")
                .replace("1 INVITE", "1 CANCEL");
            s.write_all(c.as_bytes()).unwrap();
        }
        if cancelled && (line.starts_with("SIP/2.0 487") || line.starts_with("SIP/2.0 486")) {
            break;
        }
    }
    let text = format!("caller got {got:?}\n{}", ser.log());
    // The CANCEL's 200, then one final for the INVITE: the best of the
    // first branch's 486 and the cancelled branch's 487 (RFC 3261 16.7).
    assert!(got.iter().any(|l| l.starts_with("SIP/2.0 200")), "{text}");
    let finals = got
        .iter()
        .filter(|l| l.starts_with("SIP/2.0 486") || l.starts_with("SIP/2.0 487"))
        .count();
    assert_eq!(finals, 1, "{text}");
    let heard = |rx: &std::sync::mpsc::Receiver<String>| rx.try_iter().collect::<Vec<_>>();
    let b = heard(&busy_heard);
    assert!(
        b.iter().any(|l| l.starts_with("INVITE")),
        "busy: {b:?}\n{text}"
    );
    let r = heard(&ring_heard);
    assert!(
        r.iter().any(|l| l.starts_with("CANCEL")),
        "ringing: {r:?}\n{text}"
    );

    // The same script refuses a request that came over UDP.
    let peer = crate::common::sip::UdpPeer::bind();
    peer.send_to_port(&message(port, "udp-refused", "UDP", 0), port);
    let r = peer
        .recv_timeout(Duration::from_secs(5))
        .map(|(m, _)| m)
        .unwrap_or_default();
    assert!(r.starts_with(b"SIP/2.0 403 TCP only"), "{}", first_line(&r));
}

/// The Record-Route lines of a message.
fn record_routes(m: &str) -> Vec<String> {
    m.lines()
        .filter(|l| l.starts_with("Record-Route:"))
        .map(str::to_string)
        .collect()
}

/// rr's two entries for a request from UDP at `port` leaving over TCP:
/// the TCP socket's first, both `r2`.
fn doubled_rr(port: u16) -> [String; 2] {
    [
        format!("Record-Route: <sip:127.0.0.1:{port};transport=tcp;r2=on;ftag=1;lr>"),
        format!("Record-Route: <sip:127.0.0.1:{port};r2=on;ftag=1;lr>"),
    ]
}

/// record_route on a request that changes transport (UDP in, TCP out)
/// gives the callee two entries, the TCP socket's first, both `r2` (rr's
/// enable_double_rr); a request staying on UDP keeps one.
#[test]
fn record_route_is_doubled_on_a_transport_change() {
    let _g = serial();
    let (callee, heard) = scripted_tcp_callee(|m| match first_line(m).split(' ').next() {
        Some("MESSAGE") => vec![reply_for(m, 200, "OK", true)],
        _ => vec![],
    });
    let port = free_udp_port();
    let cfg = stream_cfg(
        port,
        1,
        "loadmodule \"/usr/local/lib/ser/modules/rr.so\"",
        &format!(
            "route {{\n    record_route();\n    t_relay_to_tcp(\"127.0.0.1\", \"{callee}\");\n}}"
        ),
    );
    let ser = Ser::start(&cfg);
    let peer = crate::common::sip::UdpPeer::bind();
    peer.send_to_port(&message(port, "rr-double", "UDP", 0), port);
    let m = heard
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("callee heard nothing\n{}", ser.log()));
    assert_eq!(record_routes(&m), doubled_rr(port), "{m}");
}

/// The same for a branch a failure route sends: UDP in, a UDP callee
/// busy (486), then a TCP callee from the failure route, which gets the
/// two entries too.
#[test]
fn record_route_is_doubled_for_a_failure_route_branch() {
    let _g = serial();
    let (callee, heard) = scripted_tcp_callee(|m| match first_line(m).split(' ').next() {
        Some("MESSAGE") => vec![reply_for(m, 200, "OK", true)],
        _ => vec![],
    });
    let busy = crate::common::sip::UdpPeer::bind();
    let busy_port = busy.port();
    let port = free_udp_port();
    let cfg = stream_cfg(
        port,
        1,
        "loadmodule \"/usr/local/lib/ser/modules/rr.so\"",
        &format!(
            "route {{\n    record_route();\n    t_on_failure(\"1\");\n    \
             t_relay_to_udp(\"127.0.0.1\", \"{busy_port}\");\n}}\n\
             failure_route[1] {{\n    append_branch();\n    \
             t_relay_to_tcp(\"127.0.0.1\", \"{callee}\");\n}}"
        ),
    );
    let ser = Ser::start(&cfg);
    let peer = crate::common::sip::UdpPeer::bind();
    peer.send_to_port(&message(port, "rr-failover", "UDP", 0), port);
    let (m, from) = busy
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("busy callee heard nothing\n{}", ser.log()));
    assert_eq!(
        record_routes(&String::from_utf8_lossy(&m)),
        [format!("Record-Route: <sip:127.0.0.1:{port};ftag=1;lr>")]
    );
    busy.send(&reply_for(&m, 486, "Busy Here", true), from);
    let m = heard
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("TCP callee heard nothing\n{}", ser.log()));
    assert_eq!(record_routes(&m), doubled_rr(port), "{m}");
}

/// `core.tcp_info` over the FIFO: connections counted as accepted, closed
/// by their peer or by `tcp_connection_lifetime`, and the table back to no
/// open connection afterwards.
#[test]
fn tcp_info_shows_the_connection_table_return_to_idle() {
    let _g = serial();
    let dir = TestDir::new();
    let fifo = dir.join("ser_fifo");
    let port = free_udp_port();
    let extra = format!("fifo=\"{}\"\ntcp_connection_lifetime=1", fifo.display());
    let ser = Ser::start_in(dir, &relay_cfg(port, "udp", 9, &extra), &[]);
    let info = || {
        let f = fifo.display().to_string();
        let out = crate::common::ctlkit::serctl(&["-f", &f], &["fifo", "core.tcp_info"]);
        crate::common::ctlkit::text(&out.stdout)
    };
    let value = |text: &str, name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
    };
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(options(port, "Content-Length: 0\r\n").as_bytes())
            .unwrap();
        let r = read_message(&mut s, Duration::from_secs(5)).unwrap_or_default();
        assert!(r.starts_with(b"SIP/2.0 200"), "{}", ser.log());
    }
    // One more stays open without a word: core.tcp_list shows it, with
    // its peer and age, until the lifetime closes it.
    let idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let list = || {
        let f = fifo.display().to_string();
        let out = crate::common::ctlkit::serctl(&["-f", &f], &["fifo", "core.tcp_list"]);
        crate::common::ctlkit::text(&out.stdout)
    };
    let me = format!("peer={} local=127.0.0.1:{port}", idle.local_addr().unwrap());
    let end = Instant::now() + Duration::from_secs(3);
    let mut shown = String::new();
    while Instant::now() < end && !shown.contains(&me) {
        shown = list();
    }
    assert!(
        shown.contains("proto=tcp dir=in") && shown.contains(&me) && shown.contains(" age="),
        "{shown}"
    );
    let end = Instant::now() + Duration::from_secs(8);
    let mut last = String::new();
    while Instant::now() < end {
        last = info();
        if value(&last, "accepted") == Some(3)
            && value(&last, "opened_connections") == Some(0)
            && value(&last, "idle_closed").is_some_and(|n| n >= 1)
        {
            let left = list();
            assert!(!left.contains("id="), "{left}");
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "tcp_info never showed the table idle:\n{last}\n{}",
        ser.log()
    );
}

/// The FIFO's t_uac_dlg to a `;transport=tcp` URI leaves over TCP (our
/// Via says so) and reports the callee's 200.
#[test]
fn fifo_t_uac_dlg_over_tcp() {
    let _g = serial();
    let (callee, heard) = scripted_tcp_callee(|m| match first_line(m).split(' ').next() {
        Some("MESSAGE") => vec![reply_for(m, 200, "Delivered", true)],
        _ => vec![],
    });
    let dir = TestDir::new();
    let fifo = dir.join("ser_fifo");
    let port = free_udp_port();
    let extra = format!("fifo=\"{}\"", fifo.display());
    let ser = Ser::start_in(dir, &relay_cfg(port, "udp", 9, &extra), &[]);
    let f = fifo.display().to_string();
    let uri = format!("sip:bob@127.0.0.1:{callee};transport=tcp");
    let out = crate::common::ctlkit::serctl(
        &["-f", &f],
        &[
            "fifo",
            "t_uac_dlg",
            "MESSAGE",
            &uri,
            ".",
            "From: <sip:ser@127.0.0.1>;tag=fifo1",
            "To: <sip:bob@127.0.0.1>",
            "Content-Type: text/plain",
            ".",
            "hello over tcp",
            ".",
        ],
    );
    let text = format!(
        "{}{}",
        crate::common::ctlkit::text(&out.stdout),
        crate::common::ctlkit::text(&out.stderr)
    );
    assert!(text.contains("200 Delivered"), "{text}\n{}", ser.log());
    let m = heard
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    assert!(
        m.starts_with("MESSAGE ") && m.contains("Via: SIP/2.0/TCP 127.0.0.1:"),
        "{m}"
    );
}

/// `tcp_accept_aliases=yes`: a TCP peer whose Via says `;alias` with a
/// port nobody listens on (it is behind NAT, say) gets requests for that
/// port over the connection it opened; without the setting ser tries to
/// connect there and the request fails.
#[test]
fn via_alias_makes_the_connection_the_way_to_the_via_port() {
    let _g = serial();
    let routes = r#"route {
    if (method == OPTIONS) {
        sl_send_reply("200", "Alive");
        break;
    };
    if (!t_relay()) {
        sl_reply_error();
    };
}"#;
    for accept in [true, false] {
        let port = free_udp_port();
        // The port the phone says it listens on, and does not.
        let nat_port = free_udp_port();
        let extra = format!(
            "tcp_accept_aliases={}\nmodparam(\"tm\", \"fr_timer\", 2)",
            if accept { "yes" } else { "no" }
        );
        let ser = Ser::start(&stream_cfg(port, 2, &extra, routes));
        let mut phone = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let hello = options(port, "Content-Length: 0\r\n").replacen(
            "SIP/2.0/TCP 127.0.0.1:9;",
            &format!("SIP/2.0/TCP 127.0.0.1:{nat_port};alias;"),
            1,
        );
        assert!(hello.contains(";alias;"), "{hello}");
        phone.write_all(hello.as_bytes()).unwrap();
        let r = read_message(&mut phone, Duration::from_secs(5)).unwrap_or_default();
        assert!(r.starts_with(b"SIP/2.0 200"), "{}", ser.log());
        // A request from elsewhere to the phone's advertised address.
        let caller = crate::common::sip::UdpPeer::bind();
        let mut m = message(port, "to-alias", "UDP", 5);
        let uri = format!("sip:bob@127.0.0.1:{nat_port};transport=tcp");
        m = String::from_utf8(m)
            .unwrap()
            .replacen(&format!("sip:bob@127.0.0.1:{port}"), &uri, 1)
            .into_bytes();
        caller.send_to_port(&m, port);
        let got = read_message(&mut phone, Duration::from_secs(3));
        if accept {
            let got =
                got.unwrap_or_else(|| panic!("nothing on the phone's connection\n{}", ser.log()));
            assert!(
                got.starts_with(b"MESSAGE "),
                "{}",
                String::from_utf8_lossy(&got)
            );
            phone.write_all(&reply_for(&got, 200, "OK", true)).unwrap();
            let r = caller
                .recv_timeout(Duration::from_secs(5))
                .map(|(m, _)| m)
                .unwrap_or_default();
            assert!(
                r.starts_with(b"SIP/2.0 200"),
                "{}",
                String::from_utf8_lossy(&r)
            );
        } else {
            assert!(
                got.is_none(),
                "sent over the connection without the setting"
            );
            // ser connected to the advertised port, was refused, and the
            // branch ends without an answer from there.
            let r = caller
                .recv_timeout(Duration::from_secs(6))
                .map(|(m, _)| m)
                .unwrap_or_default();
            assert!(
                !r.starts_with(b"SIP/2.0 200"),
                "{}",
                String::from_utf8_lossy(&r)
            );
        }
    }
}

/// `-N` on the command line (ser -h: "Number of tcp child processes")
/// starts that many TCP readers, and they serve.
#[test]
fn dash_n_sets_the_number_of_tcp_readers() {
    let _g = serial();
    let dir = TestDir::new();
    let fifo = dir.join("ser_fifo");
    let port = free_udp_port();
    let extra = format!("fifo=\"{}\"", fifo.display());
    let ser = Ser::start_in(dir, &relay_cfg(port, "udp", 9, &extra), &["-N", "3"]);
    let f = fifo.display().to_string();
    let out = crate::common::ctlkit::serctl(&["-f", &f], &["ps"]);
    let text = crate::common::ctlkit::text(&out.stdout);
    let readers = text.lines().filter(|l| l.contains("tcp receiver")).count();
    assert_eq!(readers, 3, "{text}");
    // Connections land on readers by id: three in a row reach all three.
    for _ in 0..3 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(options(port, "Content-Length: 0\r\n").as_bytes())
            .unwrap();
        let r = read_message(&mut s, Duration::from_secs(5)).unwrap_or_default();
        assert!(r.starts_with(b"SIP/2.0 200"), "{}", ser.log());
    }
}

/// A TCP next hop that refuses the connection: the branch fails at once
/// with a 503 (RFC 3261 8.1.3.1), so the failure route tries the next
/// hop without waiting for fr_timer; with no failure route the caller
/// gets a 500 (a proxy turns a 503 it picked into 500, RFC 3261 16.7).
#[test]
fn a_refused_tcp_connect_fails_the_branch_at_once() {
    let _g = serial();
    // A port nobody listens on (refused at once on loopback).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let (callee, sizes) = tcp_callee();
    let port = free_udp_port();
    let cfg = stream_cfg(
        port,
        2,
        "modparam(\"tm\", \"fr_timer\", 20)",
        &format!(
            r#"route {{
    if (uri =~ "^sip:retry@") {{
        t_on_failure("1");
    }};
    t_relay_to_tcp("127.0.0.1", "{dead_port}");
}}
failure_route[1] {{
    append_branch();
    t_relay_to_tcp("127.0.0.1", "{callee}");
}}"#
        ),
    );
    let ser = Ser::start(&cfg);
    let caller = crate::common::sip::UdpPeer::bind();
    for (user, want) in [("plain", "SIP/2.0 500"), ("retry", "SIP/2.0 200")] {
        let m = String::from_utf8(message(port, user, "UDP", 3))
            .unwrap()
            .replacen("sip:bob@", &format!("sip:{user}@"), 1);
        let t0 = Instant::now();
        caller.send_to_port(m.as_bytes(), port);
        let r = loop {
            let r = caller
                .recv_timeout(Duration::from_secs(5))
                .map(|(m, _)| m)
                .unwrap_or_default();
            // Skip a 100 Trying.
            if !r.starts_with(b"SIP/2.0 100") {
                break r;
            }
        };
        assert!(
            r.starts_with(want.as_bytes()),
            "{user}: {}\n{}",
            String::from_utf8_lossy(&r),
            ser.log()
        );
        // Long before fr_timer (20 s) could have ended the branch.
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{user}: {:?}",
            t0.elapsed()
        );
    }
    assert!(
        sizes.recv_timeout(Duration::from_secs(1)).is_ok(),
        "callee reached"
    );
}
