//! SER 0.9's own `etc/ser.cfg`, run unchanged but for where it listens:
//! phones register, call each other through usrloc with record-routing,
//! in-dialog requests follow the route; the sanity checks answer 404, 483
//! and 513; bindings expire; `Contact: *` clears them; two contacts fork
//! in q order.

use crate::common::ctlkit::{serctl, text};
use crate::common::server::{check_config, Ser};
use crate::common::sip::{
    first_line, header_value, header_values, reply_to, status_of, Request, UdpPeer,
};
use crate::common::sipp::Sipp;
use crate::common::tmkit::ack_for;
use crate::common::{free_udp_port, serial, tests_path, TestDir};
use std::time::{Duration, Instant};

/// The compat ser.cfg (a verbatim copy; where ../shared exists they must
/// agree).
fn ser_09_cfg() -> String {
    let ours =
        std::fs::read_to_string(tests_path("data/ser-0.9.cfg")).expect("tests/data/ser-0.9.cfg");
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/compat/ser-0.9.cfg");
    if let Ok(s) = std::fs::read_to_string(shared) {
        assert_eq!(
            s, ours,
            "tests/data/ser-0.9.cfg drifted from the compat copy"
        );
    }
    ours
}

/// The file with a listen address (and the test's own FIFO, which must
/// not be the system-wide /tmp/ser_fifo) added right after its `fifo=`.
fn classic_cfg(port: u16, dir: &TestDir) -> String {
    let cfg = ser_09_cfg();
    let line = "fifo=\"/tmp/ser_fifo\"\n";
    assert!(cfg.contains(line), "the compat cfg sets its FIFO");
    let added = format!(
        "{line}listen=udp:127.0.0.1:{port}\nfifo=\"{}\"\n",
        dir.join("ser_fifo").display()
    );
    cfg.replacen(line, &added, 1)
}

fn start_classic(cfg: impl FnOnce(u16, &TestDir) -> String) -> (Ser, u16) {
    let port = free_udp_port();
    let dir = TestDir::new();
    let text = cfg(port, &dir);
    let fifo = dir.join("ser_fifo");
    let ser = Ser::start_in(dir, &text, &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fifo.exists() {
        assert!(Instant::now() < deadline, "no FIFO:\n{}", ser.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    (ser, port)
}

fn fifo_arg(ser: &Ser) -> Vec<String> {
    vec![
        "-f".into(),
        ser.dir().join("ser_fifo").display().to_string(),
    ]
}

fn serctl_on(ser: &Ser, args: &[&str]) -> (bool, String) {
    let t = fifo_arg(ser);
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    let out = serctl(&t, args);
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// Send `req` from `peer` and return its final reply (ACKed, when the
/// request is an INVITE and the reply negative, as a phone would).
fn ask(peer: &UdpPeer, port: u16, req: &Request) -> Vec<u8> {
    peer.send_to_port(&req.build(), port);
    final_for(peer, port, req)
}

/// The final reply to `req` (matched by Call-ID: an earlier call's
/// retransmitted final must not be taken for it), ACKed if negative.
fn final_for(peer: &UdpPeer, port: u16, req: &Request) -> Vec<u8> {
    let r = peer
        .recv_matching(Duration::from_secs(3), |m| {
            status_of(m).is_some_and(|c| c >= 200)
                && header_value(m, "Call-ID").as_deref() == Some(req.call_id.as_str())
        })
        .map(|(r, _)| r)
        .unwrap_or_else(|| panic!("no final reply to\n{}", text(&req.build())));
    if req.method == "INVITE" && status_of(&r).is_some_and(|c| c >= 300) {
        peer.send_to_port(&ack_for(req, &r).build(), port);
    }
    r
}

fn register(
    peer: &UdpPeer,
    port: u16,
    user: &str,
    contacts: &[&str],
    expires: Option<u32>,
) -> Vec<u8> {
    let mut r = Request::new("REGISTER", &format!("sip:127.0.0.1:{port}"), peer.port());
    r.to = format!("<sip:{user}@127.0.0.1:{port}>");
    r.from = format!("<sip:{user}@127.0.0.1:{port}>;tag=r{}", peer.port());
    for c in contacts {
        r = r.header("Contact", c);
    }
    if let Some(e) = expires {
        r = r.header("Expires", &e.to_string());
    }
    ask(peer, port, &r)
}

fn invite(peer: &UdpPeer, port: u16, user: &str) -> Request {
    let mut r = Request::new(
        "INVITE",
        &format!("sip:{user}@127.0.0.1:{port}"),
        peer.port(),
    );
    r.to = format!("<sip:{user}@127.0.0.1:{port}>");
    r.header("Contact", &format!("<sip:alice@127.0.0.1:{}>", peer.port()))
}

#[test]
fn the_compat_cfg_checks_clean() {
    let f = check_config(&tests_path("data/ser-0.9.cfg"));
    assert_eq!(
        f.code(),
        Some(0),
        "ser -c refused the 0.9 ser.cfg:\n{}",
        f.stderr
    );
}

#[test]
fn alice_calls_bob_through_usrloc_and_the_record_route() {
    let _g = serial();
    let (ser, port) = start_classic(classic_cfg);
    let dir = TestDir::new();
    let bob = Sipp::scenario(&tests_path("scenarios/uas_callee_usrloc.xml"))
        .calls(1)
        .timeout(Duration::from_secs(20));
    let alice_port = free_udp_port();
    for (user, contact_port) in [("alice", alice_port), ("bob", bob.port())] {
        Sipp::scenario(&tests_path("scenarios/register.xml"))
            .to(port)
            .arg("-s")
            .arg(user)
            .key("contact_port", &contact_port.to_string())
            .calls(1)
            .timeout(Duration::from_secs(10))
            .run(&dir)
            .assert_all_ok(1);
    }
    let (ok, shown) = serctl_on(&ser, &["ul", "show", "bob"]);
    assert!(
        ok && shown.contains(&format!("127.0.0.1:{}", bob.port())),
        "{shown}"
    );

    let callee = bob.spawn(&dir);
    let call = Sipp::scenario(&tests_path("scenarios/uac_rr.xml"))
        .to(port)
        .local_port(alice_port)
        .arg("-s")
        .arg("bob")
        .calls(1)
        .timeout(Duration::from_secs(15))
        .run(&dir);
    let callee = callee.wait(Duration::from_secs(10));
    call.assert_all_ok(1);
    callee.assert_all_ok(1);
    drop(ser);
}

#[test]
fn sanity_checks_unknown_users_expiry_and_star() {
    let _g = serial();
    let (ser, port) = start_classic(classic_cfg);
    let phone = UdpPeer::bind();
    let bobs = UdpPeer::bind();

    // Unknown user: usrloc has nothing.
    let r = ask(&phone, port, &invite(&phone, port, "nobody"));
    assert_eq!(first_line(&r), "SIP/2.0 404 Not Found", "{}", text(&r));

    // Max-Forwards 0: answered before anything else.
    let mut mf0 = invite(&phone, port, "nobody");
    mf0.headers.retain(|(n, _)| n != "Max-Forwards");
    let r = ask(&phone, port, &mf0.header("Max-Forwards", "0"));
    assert_eq!(first_line(&r), "SIP/2.0 483 Too Many Hops", "{}", text(&r));

    // The largest datagram UDP can carry is below max_len (65535): it is
    // routed, not refused (513 needs a stream transport; see the
    // variant below).
    let big = invite(&phone, port, "nobody").header("X-Pad", &"p".repeat(60_000));
    let r = ask(&phone, port, &big);
    assert_eq!(status_of(&r), Some(404), "{}", first_line(&r));

    // Register bob: the 200 lists the binding with its expires.
    let contact = format!("<sip:bob@127.0.0.1:{}>", bobs.port());
    let r = register(&phone, port, "bob", &[&contact], Some(600));
    assert_eq!(status_of(&r), Some(200), "{}", text(&r));
    let listed = header_values(&r, "Contact").join(",");
    assert!(
        listed.contains(&contact) && listed.contains("expires=600"),
        "{listed}"
    );

    // Now bob is found: the INVITE reaches his contact.
    let inv = invite(&phone, port, "bob");
    phone.send_to_port(&inv.build(), port);
    let (got, _) = bobs
        .recv_timeout(Duration::from_secs(3))
        .expect("INVITE reaches bob");
    assert!(first_line(&got).starts_with(&format!("INVITE sip:bob@127.0.0.1:{}", bobs.port())));
    assert_eq!(
        header_value(&got, "P-hint").as_deref(),
        Some("usrloc applied")
    );
    bobs.send(
        &reply_to(&got, 486, "Busy Here", Some("b1")),
        ser_addr(port),
    );
    assert_eq!(status_of(&final_for(&phone, port, &inv)), Some(486));
    bobs.recv_matching(Duration::from_secs(2), |m| m.starts_with(b"ACK "))
        .expect("the proxy ACKs the 486");

    // An alias (FIFO ul_add into the "aliases" table) leads to bob too.
    let target = format!("sip:bob@127.0.0.1:{port}");
    let (ok, out) = serctl_on(
        &ser,
        &[
            "fifo", "ul_add", "aliases", "robert", &target, "0", "1", "0", "0",
        ],
    );
    assert!(ok, "ul_add aliases: {out}");
    let inv = invite(&phone, port, "robert");
    phone.send_to_port(&inv.build(), port);
    let (got, _) = bobs
        .recv_matching(Duration::from_secs(3), |m| m.starts_with(b"INVITE "))
        .expect("the alias's INVITE reaches bob");
    assert!(first_line(&got).starts_with(&format!("INVITE sip:bob@127.0.0.1:{}", bobs.port())));
    bobs.send(
        &reply_to(&got, 486, "Busy Here", Some("b2")),
        ser_addr(port),
    );
    assert_eq!(status_of(&final_for(&phone, port, &inv)), Some(486));

    // Contact: * with Expires: 0 removes every binding of bob.
    let r = register(&phone, port, "bob", &["*"], Some(0));
    assert_eq!(status_of(&r), Some(200), "{}", text(&r));
    assert!(header_values(&r, "Contact").is_empty(), "{}", text(&r));
    let r = ask(&phone, port, &invite(&phone, port, "bob"));
    assert_eq!(status_of(&r), Some(404), "bob is gone: {}", text(&r));

    // `*` beside another contact is refused.
    let r = register(&phone, port, "bob", &["*", &contact], Some(0));
    assert_eq!(status_of(&r), Some(400), "{}", text(&r));

    // A binding past its expiry: carol, added for 2 s over the FIFO.
    let carol = format!("sip:carol@127.0.0.1:{}", bobs.port());
    let (ok, out) = serctl_on(&ser, &["ul", "add", "carol", &carol, "2", "1"]);
    assert!(ok, "ul add: {out}");
    let inv = invite(&phone, port, "carol");
    phone.send_to_port(&inv.build(), port);
    let (got, _) = bobs
        .recv_matching(Duration::from_secs(3), |m| m.starts_with(b"INVITE "))
        .expect("INVITE reaches carol");
    bobs.send(&reply_to(&got, 480, "Later", Some("c1")), ser_addr(port));
    assert_eq!(status_of(&final_for(&phone, port, &inv)), Some(480));
    std::thread::sleep(Duration::from_millis(2600));
    let r = ask(&phone, port, &invite(&phone, port, "carol"));
    assert_eq!(status_of(&r), Some(404), "carol expired: {}", text(&r));
    drop(ser);
}

fn ser_addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn too_big_is_513_where_the_limit_is_reachable() {
    let _g = serial();
    // UDP cannot carry max_len (65535) bytes; the same file with the
    // limit lowered shows the check and its answer.
    let (_ser, port) = start_classic(|port, dir| {
        classic_cfg(port, dir).replace("msg:len >=  max_len", "msg:len >= 4096")
    });
    let phone = UdpPeer::bind();
    let big = invite(&phone, port, "nobody").header("X-Pad", &"p".repeat(5000));
    let r = ask(&phone, port, &big);
    assert_eq!(
        first_line(&r),
        "SIP/2.0 513 Message too big",
        "{}",
        text(&r)
    );
}

#[test]
fn two_contacts_fork_in_q_order() {
    let _g = serial();
    let (ser, port) = start_classic(classic_cfg);
    let phone = UdpPeer::bind();
    let low = UdpPeer::bind();
    let high = UdpPeer::bind();
    let c_low = format!("<sip:bob@127.0.0.1:{}>;q=0.2", low.port());
    let c_high = format!("<sip:bob@127.0.0.1:{}>;q=0.9", high.port());
    let r = register(&phone, port, "bob", &[&c_low, &c_high], Some(600));
    assert_eq!(status_of(&r), Some(200), "{}", text(&r));
    let listed = header_values(&r, "Contact").join(",");
    assert!(
        listed.contains("q=0.2") && listed.contains("q=0.9"),
        "{listed}"
    );

    let inv = invite(&phone, port, "bob");
    phone.send_to_port(&inv.build(), port);
    let (to_high, _) = high
        .recv_timeout(Duration::from_secs(3))
        .expect("high-q branch");
    let (to_low, _) = low
        .recv_timeout(Duration::from_secs(3))
        .expect("low-q branch");
    // Our branch ids end in the branch index: q 0.9 is branch 0.
    let branch_of = |m: &[u8]| {
        let via = header_values(m, "Via")
            .into_iter()
            .next()
            .unwrap_or_default();
        crate::common::sip::param(&via, "branch").unwrap_or_default()
    };
    assert!(
        branch_of(&to_high).ends_with(".0"),
        "{}",
        branch_of(&to_high)
    );
    assert!(branch_of(&to_low).ends_with(".1"), "{}", branch_of(&to_low));
    // The high-q phone rings, the low-q one answers: the call is set up
    // with it, the ringing branch is cancelled.
    high.send(
        &reply_to(&to_high, 180, "Ringing", Some("hi")),
        ser_addr(port),
    );
    phone
        .recv_matching(Duration::from_secs(3), |m| status_of(m) == Some(180))
        .expect("180 relayed");
    low.send(&reply_to(&to_low, 200, "OK", Some("lo")), ser_addr(port));
    assert_eq!(status_of(&final_for(&phone, port, &inv)), Some(200));
    let (cancel, _) = high
        .recv_matching(Duration::from_secs(3), |m| !m.starts_with(b"INVITE "))
        .expect("CANCEL to the other");
    assert!(
        first_line(&cancel).starts_with("CANCEL "),
        "{}",
        text(&cancel)
    );
    drop(ser);
}

#[test]
fn an_unsupported_module_is_refused_with_the_list() {
    let dir = TestDir::new();
    let cfg = ser_09_cfg().replace(
        "loadmodule \"/usr/local/lib/ser/modules/textops.so\"",
        "loadmodule \"/usr/local/lib/ser/modules/textops.so\"\nloadmodule \"/usr/local/lib/ser/modules/jabber.so\"",
    );
    let f = check_config(&dir.write("jabber.cfg", cfg.as_bytes()));
    assert_ne!(f.code(), Some(0), "jabber.so was accepted");
    assert!(
        f.stderr.contains("jabber.cfg:") && f.stderr.contains("\"jabber\""),
        "{}",
        f.stderr
    );
    let listed: Vec<&str> = f
        .stderr
        .split_once("supported modules:")
        .map(|(_, l)| l.lines().next().unwrap_or(""))
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    for m in [
        "sl",
        "tm",
        "rr",
        "maxfwd",
        "usrloc",
        "registrar",
        "textops",
        "acc",
        "avpops",
    ] {
        assert!(listed.contains(&m), "the list lacks {m}: {}", f.stderr);
    }
}

#[test]
fn fifo_usrloc_commands_see_and_change_what_phones_registered() {
    let _g = serial();
    let (ser, port) = start_classic(classic_cfg);
    let phone = UdpPeer::bind();
    let (c1, c2) = ("sip:bob@127.0.0.1:7001", "sip:bob@127.0.0.1:7002");
    let r = register(
        &phone,
        port,
        "bob",
        &[&format!("<{c1}>"), &format!("<{c2}>")],
        Some(600),
    );
    assert_eq!(status_of(&r), Some(200), "{}", text(&r));

    let (ok, dump) = serctl_on(&ser, &["fifo", "ul_dump"]);
    assert!(
        ok && dump.contains("bob") && dump.contains(c1) && dump.contains(c2),
        "{dump}"
    );

    let (ok, out) = serctl_on(&ser, &["fifo", "ul_rm_contact", "location", "bob", c1]);
    assert!(ok, "ul_rm_contact: {out}");
    let (ok, shown) = serctl_on(&ser, &["ul", "show", "bob"]);
    assert!(ok && !shown.contains(c1) && shown.contains(c2), "{shown}");

    let (ok, out) = serctl_on(&ser, &["ul", "rm", "bob"]);
    assert!(ok, "ul rm: {out}");
    let (ok, shown) = serctl_on(&ser, &["ul", "show", "bob"]);
    assert!(!ok && shown.contains("404"), "{shown}");
    // Removing it again: nothing is there, and serctl says so (a typo
    // reported "deleted" would leave the real AOR registered).
    let t = fifo_arg(&ser);
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    let again = serctl(&t, &["ul", "rm", "bob"]);
    let err = text(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("404 ") && err.ends_with("not found\n"),
        "{err:?}"
    );
    let r = ask(&phone, port, &invite(&phone, port, "bob"));
    assert_eq!(status_of(&r), Some(404), "{}", text(&r));

    let (ok, out) = serctl_on(&ser, &["fifo", "ul_show_contact", "nowhere", "bob"]);
    assert!(!ok && out.contains("nowhere"), "unknown table: {out}");
    drop(ser);
}

/// Both shipped examples load: the no-database default `make run` uses,
/// and SER 0.9's ser.cfg with MySQL and digest authentication enabled.
#[test]
fn the_example_cfgs_check_clean() {
    for name in ["ser.cfg.example", "ser.cfg.auth.example"] {
        let f = check_config(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name));
        assert_eq!(f.code(), Some(0), "ser -c refused {name}:\n{}", f.stderr);
    }
}
