//! permissions: `allow_routing()` with `permissions.allow`/`.deny` beside
//! the config (allow file first, then deny, default allow),
//! `allow_register("name")` with `name.allow`/`name.deny` over the
//! REGISTER's To and Contacts, and a bad rule refused at load with its
//! file and line.

use crate::common::server::check_config;
use crate::common::sip::{status_of, Request, UdpPeer};
use crate::common::{free_udp_port, Ser, TestDir};
use std::time::Duration;

fn cfg(port: u16) -> String {
    format!(
        r#"
debug=3
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=1
loadmodule "sl.so"
loadmodule "permissions.so"
route {{
    if (method == "REGISTER") {{
        if (!allow_register("register")) {{
            sl_send_reply("403", "Contact not allowed");
            break;
        }};
        sl_send_reply("200", "Registration allowed");
        break;
    }};
    if (!allow_routing()) {{
        sl_send_reply("403", "Forbidden");
        break;
    }};
    sl_send_reply("200", "Routing allowed");
}}
"#
    )
}

fn dir_with_rules() -> TestDir {
    let dir = TestDir::new();
    dir.write(
        "permissions.allow",
        b"# the boss may call anything\n\"^sip:boss@\" : ALL\n",
    );
    dir.write(
        "permissions.deny",
        b"ALL : \"^sip:900[0-9]*@\", \"^sip:.*@premium\\.example$\"\n",
    );
    dir.write(
        "register.deny",
        b"ALL : \"@192\\.168\\.\" EXCEPT \"^sip:gw@\"\n",
    );
    dir
}

fn ask(peer: &UdpPeer, port: u16, req: &Request) -> u16 {
    peer.send_to_port(&req.build(), port);
    let (m, _) = peer.recv_final(Duration::from_secs(3)).expect("answered");
    status_of(&m).unwrap_or(0)
}

#[test]
fn allow_routing_reads_the_default_files_allow_first() {
    let port = free_udp_port();
    let ser = Ser::start_in(dir_with_rules(), &cfg(port), &[]);
    let peer = UdpPeer::bind();
    let call = |from: &str, to: &str| {
        let mut r = Request::new("INVITE", to, peer.port());
        r.from = format!("<{from}>;tag=t1");
        ask(&peer, port, &r)
    };
    assert_eq!(
        call("sip:eve@x.example", "sip:900123@127.0.0.1"),
        403,
        "{}",
        ser.log()
    );
    assert_eq!(call("sip:eve@x.example", "sip:bob@premium.example"), 403);
    assert_eq!(call("sip:boss@x.example", "sip:900123@127.0.0.1"), 200);
    assert_eq!(call("sip:eve@x.example", "sip:123@127.0.0.1"), 200);
}

#[test]
fn allow_register_checks_every_contact_against_the_to() {
    let port = free_udp_port();
    let _ser = Ser::start_in(dir_with_rules(), &cfg(port), &[]);
    let peer = UdpPeer::bind();
    let reg = |contacts: &[&str]| {
        let mut r = Request::new("REGISTER", "sip:127.0.0.1", peer.port());
        r.to = "<sip:alice@127.0.0.1>".into();
        for c in contacts {
            r = r.header("Contact", c);
        }
        ask(&peer, port, &r)
    };
    assert_eq!(reg(&["<sip:alice@127.0.0.1:5070>"]), 200);
    assert_eq!(
        reg(&["<sip:alice@127.0.0.1:5070>", "<sip:alice@192.168.0.7>"]),
        403
    );
    assert_eq!(reg(&["<sip:gw@192.168.0.7>"]), 200);
    assert_eq!(reg(&[]), 200);
}

#[test]
fn a_bad_rule_refuses_the_config_with_file_and_line() {
    let dir = dir_with_rules();
    dir.write("register.allow", b"ALL : ALL\n\"^sip:(\" : ALL\n");
    let file = dir.write("ser.cfg", cfg(5060).as_bytes());
    let done = check_config(&file);
    assert_ne!(done.code(), Some(0), "accepted");
    let all = format!("{}{}", done.stdout, done.stderr);
    assert!(all.contains("register.allow:2"), "{all}");
}
