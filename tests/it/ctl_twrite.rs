//! `t_write_req` / `t_write_unix`: the proxy hands a request to an
//! application (a fake one here, on a FIFO and on a unix socket) in SER's
//! line format with the `tw_append` items, the application answers with
//! the FIFO / unix socket `t_reply`, and the caller (sipp) gets that
//! answer. An application that cannot take the request gets the caller a
//! 500 (after `unix_tx_timeout` when its socket is full).

use crate::common::ctlkit::{fifo_of, sock_of, start, Report};
use crate::common::sip::{first_line, status_of, Request, UdpPeer};
use crate::common::sipp::Sipp;
use crate::common::{free_udp_port, serial, tests_path, TestDir};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn routes(call: &str) -> String {
    format!(
        r#"
modparam("tm", "tw_append", "info:hdr[Subject];body=msg[body]")
modparam("tm", "unix_tx_timeout", 1)
route {{
    if (method == "MESSAGE") {{
        {call};
        break;
    }};
    sl_send_reply("404", "not here");
}}
"#
    )
}

/// What the application checks in the description and uses to answer.
fn check_description(text: &str, proxy_port: u16) -> String {
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 22, "short description:\n{text}");
    assert_eq!(lines[0], "0.2");
    assert_eq!(lines[1], "sip_request.echo");
    assert_eq!(lines[2], "MESSAGE");
    assert_eq!(lines[3], "app");
    assert_eq!(lines[5], "127.0.0.1");
    assert_eq!(lines[6], "127.0.0.1");
    assert_eq!(lines[7], proxy_port.to_string());
    assert!(lines[8].starts_with("sip:app@127.0.0.1"), "{text}");
    let id = lines[16];
    assert!(id.split_once(':').is_some(), "hash:label in {text}");
    assert!(lines[19].starts_with("P-MsgFlags: "), "{text}");
    assert!(
        lines.contains(&"Subject: hello app"),
        "tw_append header in\n{text}"
    );
    assert!(text.contains("ping from sipp"), "tw_append body in\n{text}");
    id.to_string()
}

fn t_reply_request(id: &str, report: &str) -> String {
    format!(":t_reply:{report}\n200\nOK from app\n{id}\napptag\nX-App: yes\n.\n.\n\n")
}

fn read_fifo_until(path: &Path, limit: Duration) -> String {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    loop {
        let mut buf = [0u8; 8192];
        match f.read(&mut buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => {}
        }
        // Done at the body's closing '.' (two '.' lines: line 19's block and the body).
        let s = String::from_utf8_lossy(&out);
        if s.matches("\n.\n").count() >= 2 || Instant::now() >= deadline {
            return s.into_owned();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fake_application_on_a_fifo_answers_through_t_reply() {
    let _g = serial();
    let dir = TestDir::new();
    let app_fifo = dir.join("app_fifo");
    nix::unistd::mkfifo(&app_fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let port = free_udp_port();
    let call = format!("t_write_req(\"{}\", \"echo/info\")", app_fifo.display());
    let ser = start(dir, port, &routes(&call));
    let ser_fifo = fifo_of(&ser);
    let report = Report::new("treply");
    let report_name = report.name.clone();
    let app = std::thread::spawn(move || {
        // Open the FIFO for reading before the request comes, as SEMS does.
        let text = read_fifo_until(&app_fifo, Duration::from_secs(8));
        let id = check_description(&text, port);
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&ser_fifo)
            .unwrap();
        w.write_all(t_reply_request(&id, &report_name).as_bytes())
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));
    let tdir = TestDir::new();
    let res = Sipp::scenario(&tests_path("scenarios/uac_message_app.xml"))
        .to(port)
        .calls(1)
        .timeout(Duration::from_secs(10))
        .run(&tdir);
    app.join().expect("the application saw what it expected");
    res.assert_all_ok(1);
    assert_eq!(
        report.wait(Duration::from_secs(2)).as_deref(),
        Some("200 fifo_t_reply succeeded\n")
    );
}

#[test]
fn fake_application_on_a_unix_socket_answers_through_t_reply() {
    let _g = serial();
    let dir = TestDir::new();
    let app_path = dir.join("app.sock");
    let app_sock = UnixDatagram::bind(&app_path).unwrap();
    let port = free_udp_port();
    let call = format!("t_write_unix(\"{}\", \"echo/info\")", app_path.display());
    let ser = start(dir, port, &routes(&call));
    let ser_sock: PathBuf = sock_of(&ser);
    let client_path = ser.dir().join("app_client.sock");
    let app = std::thread::spawn(move || {
        app_sock
            .set_read_timeout(Some(Duration::from_secs(8)))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let n = app_sock.recv(&mut buf).expect("the description arrives");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let id = check_description(&text, port);
        // Answer over ser's unix socket, from a bound address.
        let c = UnixDatagram::bind(&client_path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(t_reply_request(&id, "").as_bytes(), &ser_sock)
            .unwrap();
        let n = c.recv(&mut buf).expect("t_reply answered");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    std::thread::sleep(Duration::from_millis(200));
    let tdir = TestDir::new();
    let res = Sipp::scenario(&tests_path("scenarios/uac_message_app.xml"))
        .to(port)
        .calls(1)
        .timeout(Duration::from_secs(10))
        .run(&tdir);
    let answer = app.join().expect("the application saw what it expected");
    res.assert_all_ok(1);
    assert_eq!(answer, "200 fifo_t_reply succeeded\n");
}

#[test]
fn unreachable_or_silent_applications_get_the_caller_a_500() {
    let _g = serial();
    let dir = TestDir::new();
    // A unix socket nobody reads, its queue already full.
    let full_path = dir.join("full.sock");
    let full = UnixDatagram::bind(&full_path).unwrap();
    let filler = UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut queued = 0;
    while filler.send_to(b"x", &full_path).is_ok() {
        queued += 1;
        assert!(queued < 100_000, "the socket queue never fills");
    }
    let port = free_udp_port();
    let cfg_routes = format!(
        r#"
modparam("tm", "unix_tx_timeout", 1)
route {{
    if (uri =~ "^sip:full@") {{ t_write_unix("{full}", "echo"); break; }};
    if (uri =~ "^sip:gone@") {{ t_write_unix("{gone}", "echo"); break; }};
    t_write_req("{nofifo}", "echo");
}}
"#,
        full = full_path.display(),
        gone = dir.join("gone.sock").display(),
        nofifo = dir.join("no_reader_fifo").display(),
    );
    nix::unistd::mkfifo(
        &dir.join("no_reader_fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let ser = start(dir, port, &cfg_routes);
    let caller = UdpPeer::bind();
    for (user, at_least, at_most) in [
        (
            "full",
            Duration::from_millis(900),
            Duration::from_millis(2500),
        ),
        ("gone", Duration::ZERO, Duration::from_millis(500)),
        ("fifo", Duration::ZERO, Duration::from_millis(500)),
    ] {
        let req = Request::new("MESSAGE", &format!("sip:{user}@127.0.0.1"), caller.port())
            .header("Subject", "x")
            .build();
        let t0 = Instant::now();
        caller.send_to_port(&req, port);
        let (reply, _) = caller
            .recv_final(Duration::from_secs(4))
            .unwrap_or_else(|| panic!("{user}: no final reply\n{}", ser.log()));
        let took = t0.elapsed();
        assert_eq!(
            status_of(&reply),
            Some(500),
            "{user}: {}",
            first_line(&reply)
        );
        assert!(
            took >= at_least && took <= at_most,
            "{user}: 500 after {took:?}, expected {at_least:?}..{at_most:?}"
        );
    }
    drop(full);
}
