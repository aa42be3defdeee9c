//! nathelper: a phone behind a NAT (a socket on 127.0.0.2 whose REGISTER
//! names a private address) is registered at its source address, and the
//! keep-alive ping reaches it every `natping_interval`; SDP addresses are
//! rewritten with the Content-Length following; `force_rtp_proxy` is
//! refused at load, naming rtpproxy.

use crate::common::server::check_config;
use crate::common::sip::{body_of, header_value, header_values, status_of, Request, UdpPeer};
use crate::common::Ser;
use crate::common::{free_udp_port, TestDir};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn cfg(port: u16, extra: &str, route: &str) -> String {
    format!(
        r#"
debug=3
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=1
loadmodule "sl.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "nathelper.so"
modparam("registrar", "nat_flag", 6)
{extra}
route {{
{route}
}}
"#
    )
}

const REGISTER_ROUTE: &str = r#"
    if (method == "REGISTER") {
        if (nat_uac_test("19")) {
            setflag(6);
            fix_nated_contact();
            force_rport();
        };
        save("location");
        break;
    };
    sl_send_reply("404", "Not here");
"#;

/// A UDP socket on 127.0.0.2: the public side of a NAT.
fn nated_socket() -> UdpSocket {
    for _ in 0..100 {
        if let Ok(s) = UdpSocket::bind(("127.0.0.2", free_udp_port())) {
            return s;
        }
    }
    panic!("cannot bind 127.0.0.2");
}

fn recv(sock: &UdpSocket, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
            Err(_) if Instant::now() < deadline => continue,
            Err(_) => return None,
        }
    }
}

/// REGISTER alice from `sock`, her Contact naming `contact_host`.
fn register(sock: &UdpSocket, port: u16, via_host: &str, contact_host: &str) -> Vec<u8> {
    let me = sock.local_addr().unwrap();
    let mut r =
        Request::new("REGISTER", &format!("sip:127.0.0.1:{port}"), me.port()).via_host(via_host);
    r.to = format!("<sip:alice@127.0.0.1:{port}>");
    r.from = format!("<sip:alice@127.0.0.1:{port}>;tag=n{}", me.port());
    let r = r.header(
        "Contact",
        &format!("<sip:alice@{contact_host}:5060>;expires=600"),
    );
    sock.send_to(&r.build(), ("127.0.0.1", port)).unwrap();
    loop {
        let (m, _) = recv(sock, Duration::from_secs(3)).expect("REGISTER answered");
        if status_of(&m).is_some_and(|c| c >= 200) {
            return m;
        }
    }
}

#[test]
fn a_nated_register_is_stored_at_its_source_and_pinged_every_interval() {
    let port = free_udp_port();
    let extra = r#"modparam("nathelper", "natping_interval", 1)
modparam("nathelper", "ping_nated_only", 1)"#;
    let ser = Ser::start(&cfg(port, extra, REGISTER_ROUTE));
    let phone = nated_socket();
    let me = phone.local_addr().unwrap();
    let reply = register(&phone, port, "192.168.1.5", "192.168.1.5");
    assert_eq!(
        status_of(&reply),
        Some(200),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let contacts = header_values(&reply, "Contact").join(",");
    assert!(
        contacts.contains(&format!("sip:alice@127.0.0.2:{}", me.port())),
        "Contact not fixed to the source: {contacts}\n{}",
        ser.log()
    );
    assert!(!contacts.contains("192.168.1.5"), "{contacts}");

    // Two keep-alives, four zero bytes each, from the server's socket.
    let mut pings = 0;
    let deadline = Instant::now() + Duration::from_secs(6);
    while pings < 2 && Instant::now() < deadline {
        if let Some((m, from)) = recv(&phone, Duration::from_secs(3)) {
            if m == [0u8; 4] {
                assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], port)));
                pings += 1;
            }
        }
    }
    assert_eq!(pings, 2, "keep-alive pings seen; log:\n{}", ser.log());
}

#[test]
fn sip_pings_are_options_and_phones_not_behind_nat_get_none() {
    let port = free_udp_port();
    let extra = r#"modparam("nathelper", "natping_interval", 1)
modparam("nathelper", "ping_nated_only", 1)
modparam("nathelper", "sipping_from", "sip:pinger@127.0.0.1")"#;
    let ser = Ser::start(&cfg(port, extra, REGISTER_ROUTE));
    // Not behind a NAT: its Via and Contact are its real address.
    let open = UdpPeer::bind();
    let mut r = Request::new("REGISTER", &format!("sip:127.0.0.1:{port}"), open.port());
    r.to = format!("<sip:bob@127.0.0.1:{port}>");
    r = r.header("Contact", &format!("<sip:bob@127.0.0.1:{}>", open.port()));
    open.send_to_port(&r.build(), port);
    let (reply, _) = open.recv_final(Duration::from_secs(3)).expect("answered");
    assert_eq!(status_of(&reply), Some(200));

    let phone = nated_socket();
    let reply = register(&phone, port, "10.0.0.9", "10.0.0.9");
    assert_eq!(status_of(&reply), Some(200));
    let (m, _) = (0..5)
        .find_map(|_| {
            recv(&phone, Duration::from_secs(3)).filter(|(m, _)| m.starts_with(b"OPTIONS "))
        })
        .expect("an OPTIONS ping");
    assert_eq!(header_value(&m, "CSeq").as_deref(), Some("1 OPTIONS"));
    assert!(header_value(&m, "From")
        .unwrap()
        .contains("sip:pinger@127.0.0.1"));
    assert!(
        open.recv_timeout(Duration::from_millis(2500)).is_none(),
        "log:\n{}",
        ser.log()
    );
}

#[test]
fn fix_nated_sdp_rewrites_media_addresses_and_content_length() {
    let port = free_udp_port();
    let callee = UdpPeer::bind();
    let route = format!(
        r#"
    if (method == "INVITE") {{
        if (nat_uac_test("8")) {{
            fix_nated_sdp("3");
            add_rcv_param();
        }};
        forward(127.0.0.1, {});
        break;
    }};
    sl_send_reply("404", "Not here");
"#,
        callee.port()
    );
    let _ser = Ser::start(&cfg(port, "", &route));
    let phone = nated_socket();
    let me = phone.local_addr().unwrap();
    let sdp = b"v=0\r\no=- 1 1 IN IP4 192.168.1.5\r\ns=-\r\nc=IN IP4 192.168.1.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let req = Request::new("INVITE", "sip:bob@127.0.0.1", me.port())
        .via_host("192.168.1.5")
        .header("Contact", "<sip:alice@192.168.1.5:5060>")
        .header("Content-Type", "application/sdp")
        .body(sdp);
    phone.send_to(&req.build(), ("127.0.0.1", port)).unwrap();
    let (m, _) = callee
        .recv_matching(Duration::from_secs(3), |m| m.starts_with(b"INVITE "))
        .expect("INVITE forwarded");
    let body = body_of(&m);
    let text = String::from_utf8_lossy(body);
    assert!(text.contains("c=IN IP4 127.0.0.2\r\n"), "{text}");
    assert!(text.ends_with("a=direction:active\r\n"), "{text}");
    assert_eq!(
        header_value(&m, "Content-Length").as_deref(),
        Some(body.len().to_string().as_str()),
        "{}",
        String::from_utf8_lossy(&m)
    );
    let contact = header_value(&m, "Contact").unwrap();
    assert_eq!(
        contact,
        format!(
            "<sip:alice@192.168.1.5:5060>;received=\"sip:127.0.0.2:{}\"",
            me.port()
        )
    );
}

#[test]
fn force_rtp_proxy_is_refused_at_load_naming_rtpproxy() {
    let dir = TestDir::new();
    let file = dir.write(
        "ser.cfg",
        cfg(
            5060,
            "",
            "    force_rtp_proxy();\n    sl_send_reply(\"200\", \"ok\");",
        )
        .as_bytes(),
    );
    let done = check_config(&file);
    assert_ne!(done.code(), Some(0), "accepted:\n{}", done.stderr);
    let all = format!("{}{}", done.stdout, done.stderr);
    assert!(all.contains("rtpproxy"), "{all}");
}
