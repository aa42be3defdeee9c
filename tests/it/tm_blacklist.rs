//! SER 2.1's destination blacklist end to end (`use_dst_blacklist=yes`
//! and tm's `blst_*`): a 503 with Retry-After (clamped to
//! `blst_503_max_timeout`) or an unanswered INVITE blacklists the callee;
//! the next call does not reach it and fails at once with a local 503 the
//! failure route sees; `dst_blacklist.view` lists it over the FIFO, it
//! expires, and `dst_blacklist.delete` clears it at once.

use crate::common::ctlkit::{self, fifo_of, serctl, text};
use crate::common::sip::{reply_to, status_of, Request, UdpPeer};
use crate::common::tmkit::*;
use crate::common::*;
use std::time::{Duration, Instant};

/// Routes: INVITEs to the callee on `a` (or the R-URI's port when the
/// user is `b`), every other method relayed the same way; a local 503 on
/// the branch is answered 480 by the failure route.
fn routes(a: u16, b: u16) -> String {
    format!(
        r#"
route {{
    if (uri =~ "^sip:b@") {{
        rewritehostport("127.0.0.1:{b}");
    }} else {{
        rewritehostport("127.0.0.1:{a}");
    }};
    t_on_failure("1");
    t_relay();
}}
failure_route[1] {{
    if (t_check_status("503")) {{
        t_reply("480", "blacklisted");
    }};
}}
"#
    )
}

/// What one call saw: the caller's final and what each callee received.
struct Call {
    fin: Option<u16>,
    took: Duration,
    /// Requests (first lines) each callee heard.
    heard: Vec<Vec<String>>,
}

/// One request from `caller` through ser on `port` to user `user`; each
/// callee answers its first request with `answers[i]` (a status and extra
/// header lines; `None` = silent). Ends 300 ms after the caller's final,
/// or after `limit`.
fn call(
    port: u16,
    method: &str,
    user: &str,
    caller: &UdpPeer,
    callees: &[&UdpPeer],
    answers: &[Option<(u16, &str)>],
    limit: Duration,
) -> Call {
    let req = Request::new(
        method,
        &format!("sip:{user}@127.0.0.1:{port}"),
        caller.port(),
    );
    let t0 = Instant::now();
    caller.send_to_port(&req.build(), port);
    let mut peers: Vec<&UdpPeer> = vec![caller];
    peers.extend(callees.iter().copied());
    let mut fin = None;
    let mut took = Duration::ZERO;
    let mut heard = vec![Vec::new(); callees.len()];
    let mut serve = |h: &Heard| {
        if h.who == 0 {
            if let Some(code) = status_of(&h.msg).filter(|c| *c >= 200) {
                if fin.is_none() {
                    fin = Some(code);
                    took = t0.elapsed();
                    if method == "INVITE" {
                        caller.send_to_port(&ack_for(&req, &h.msg).build(), port);
                    }
                }
                return true;
            }
            return false;
        }
        let i = h.who - 1;
        let Some(m) = method_of(&h.msg) else {
            return false;
        };
        heard[i].push(format!("{m} {}", cseq_of(&h.msg)));
        if m == "ACK" {
            return false;
        }
        if let Some((code, extra)) = answers[i] {
            let mut r =
                String::from_utf8_lossy(&reply_to(&h.msg, code, "X", Some("t"))).into_owned();
            // Extra header lines go before the blank line.
            r = r.replacen(
                "Content-Length: 0\r\n",
                &format!("{extra}Content-Length: 0\r\n"),
                1,
            );
            callees[i].send(r.as_bytes(), h.from);
        }
        false
    };
    pump(&peers, limit, &mut serve);
    // A callee must stay silent a little longer to count as not reached.
    pump(&peers, Duration::from_millis(300), |h| {
        serve(h);
        false
    });
    Call { fin, took, heard }
}

fn view(ser: &Ser) -> String {
    fifo_cmd(ser, &["dst_blacklist.view"])
}

fn fifo_cmd(ser: &Ser, args: &[&str]) -> String {
    let fifo = fifo_of(ser).display().to_string();
    let mut a = vec!["fifo"];
    a.extend_from_slice(args);
    let out = serctl(&["-f", &fifo], &a);
    // serctl prints a failure status to stderr.
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

fn start(extra: &str, a: u16, b: u16) -> Ser {
    let port = free_udp_port();
    let cfg = format!("use_dst_blacklist=yes\n{extra}\n{}", routes(a, b));
    ctlkit::start(TestDir::new(), port, &cfg)
}

/// Entry line of `view` for the callee on `port` (`udp 127.0.0.1:<port> <s>`).
fn entry(view: &str, port: u16) -> Option<&str> {
    let key = format!("udp 127.0.0.1:{port} ");
    view.lines().find(|l| l.starts_with(&key))
}

#[test]
fn a_503_with_retry_after_blacklists_the_callee_until_it_expires() {
    let _g = serial();
    let (caller, a) = (UdpPeer::bind(), UdpPeer::bind());
    let ser = start(
        "modparam(\"tm\", \"blst_503\", 1)\n\
         modparam(\"tm\", \"blst_503_max_timeout\", 3)\n\
         modparam(\"tm\", \"blst_methods_lookup\", 1)",
        a.port(),
        a.port(),
    );
    let port = ser.port();
    let lim = Duration::from_secs(5);
    // Retry-After 300, clamped to blst_503_max_timeout: 3 s.
    let c1 = call(
        port,
        "INVITE",
        "x",
        &caller,
        &[&a],
        &[Some((503, "Retry-After: 300\r\n"))],
        lim,
    );
    let t503 = Instant::now();
    let log = || format!("ser log:\n{}", ser.log());
    assert_eq!(
        c1.heard[0].first().map(String::as_str),
        Some("INVITE 1 INVITE"),
        "{}",
        log()
    );
    assert_eq!(c1.fin, Some(480), "{}", log());

    // Blacklisted: the next INVITE fails at once, A hears nothing.
    let c2 = call(port, "INVITE", "x", &caller, &[&a], &[Some((486, ""))], lim);
    assert_eq!(c2.fin, Some(480), "{}", log());
    assert!(c2.took < Duration::from_millis(500), "took {:?}", c2.took);
    assert!(c2.heard[0].is_empty(), "A heard {:?}", c2.heard[0]);

    // blst_methods_lookup=1: only INVITEs look it up; a MESSAGE goes out.
    let m = call(
        port,
        "MESSAGE",
        "x",
        &caller,
        &[&a],
        &[Some((200, ""))],
        lim,
    );
    assert_eq!(
        m.heard[0].first().map(String::as_str),
        Some("MESSAGE 1 MESSAGE"),
        "{}",
        log()
    );
    assert_eq!(m.fin, Some(200));

    let v = view(&ser);
    let line = entry(&v, a.port()).unwrap_or_else(|| panic!("A not listed: {v}"));
    let left: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(99);
    assert!((1..=3).contains(&left), "{line}");

    // After the 3 s (not the 300 asked for), A is called again.
    std::thread::sleep(
        (t503 + Duration::from_millis(3300)).saturating_duration_since(Instant::now()),
    );
    let v = view(&ser);
    assert!(entry(&v, a.port()).is_none(), "still listed: {v}");
    let c3 = call(port, "INVITE", "x", &caller, &[&a], &[Some((486, ""))], lim);
    assert_eq!(
        c3.heard[0].first().map(String::as_str),
        Some("INVITE 1 INVITE"),
        "{}",
        log()
    );
    assert_eq!(c3.fin, Some(486), "{}", log());
}

#[test]
fn dst_blacklist_delete_clears_one_or_all_at_once() {
    let _g = serial();
    let (caller, a, b) = (UdpPeer::bind(), UdpPeer::bind(), UdpPeer::bind());
    let ser = start("modparam(\"tm\", \"blst_503\", 1)", a.port(), b.port());
    let port = ser.port();
    let lim = Duration::from_secs(5);
    let no = Some((503, "Retry-After: 600\r\n"));
    call(port, "INVITE", "x", &caller, &[&a, &b], &[no, no], lim);
    call(port, "INVITE", "b", &caller, &[&a, &b], &[no, no], lim);
    let v = view(&ser);
    assert!(
        entry(&v, a.port()).is_some() && entry(&v, b.port()).is_some(),
        "{v}"
    );

    let c = call(
        port,
        "INVITE",
        "x",
        &caller,
        &[&a, &b],
        &[Some((486, "")), None],
        lim,
    );
    assert_eq!(c.fin, Some(480), "ser log:\n{}", ser.log());
    assert!(c.heard[0].is_empty(), "A heard {:?}", c.heard[0]);

    let one = fifo_cmd(
        &ser,
        &["dst_blacklist.delete", &format!("127.0.0.1:{}", a.port())],
    );
    assert!(one.contains("1 deleted"), "{one}");
    let v = view(&ser);
    assert!(
        entry(&v, a.port()).is_none() && entry(&v, b.port()).is_some(),
        "{v}"
    );
    let c = call(
        port,
        "INVITE",
        "x",
        &caller,
        &[&a, &b],
        &[Some((486, "")), None],
        lim,
    );
    assert_eq!(
        c.fin,
        Some(486),
        "A is reachable again; ser log:\n{}",
        ser.log()
    );

    // The unix socket serves the same command table.
    let sock = ctlkit::sock_of(&ser).display().to_string();
    let over_sock = text(&serctl(&["-s", &sock], &["fifo", "dst_blacklist.view"]).stdout);
    assert!(entry(&over_sock, b.port()).is_some(), "{over_sock}");

    let all = fifo_cmd(&ser, &["dst_blacklist.delete"]);
    assert!(all.contains("1 deleted"), "{all}");
    assert!(entry(&view(&ser), b.port()).is_none());
    let c = call(
        port,
        "INVITE",
        "b",
        &caller,
        &[&a, &b],
        &[None, Some((486, ""))],
        lim,
    );
    assert_eq!(
        c.fin,
        Some(486),
        "B is reachable again; ser log:\n{}",
        ser.log()
    );
}

#[test]
fn an_unanswered_invite_blacklists_its_next_hop() {
    let _g = serial();
    let (caller, a) = (UdpPeer::bind(), UdpPeer::bind());
    // fr_timer is 2 s (ctl config); blst_methods_add defaults to INVITE.
    let ser = start("dst_blacklist_expire=30", a.port(), a.port());
    let port = ser.port();
    let lim = Duration::from_secs(6);
    // A MESSAGE that times out does not count (not in blst_methods_add).
    let m = call(port, "MESSAGE", "x", &caller, &[&a], &[None], lim);
    assert_eq!(m.fin, Some(408), "ser log:\n{}", ser.log());
    assert!(entry(&view(&ser), a.port()).is_none(), "{}", view(&ser));
    let c1 = call(port, "INVITE", "x", &caller, &[&a], &[None], lim);
    assert_eq!(c1.fin, Some(408), "ser log:\n{}", ser.log());
    let v = view(&ser);
    let line = entry(&v, a.port()).unwrap_or_else(|| panic!("A not listed: {v}"));
    assert!(line.ends_with(" 30") || line.ends_with(" 29"), "{line}");
    let c2 = call(port, "INVITE", "x", &caller, &[&a], &[Some((486, ""))], lim);
    assert_eq!(c2.fin, Some(480), "ser log:\n{}", ser.log());
    assert!(c2.heard[0].is_empty(), "A heard {:?}", c2.heard[0]);
}

#[test]
fn without_use_dst_blacklist_nothing_is_blacklisted_and_the_commands_say_so() {
    let _g = serial();
    let (caller, a) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let cfg = format!(
        "modparam(\"tm\", \"blst_503\", 1)\n{}",
        routes(a.port(), a.port())
    );
    let ser = ctlkit::start(TestDir::new(), port, &cfg);
    let lim = Duration::from_secs(5);
    let ra = Some((503, "Retry-After: 60\r\n"));
    call(port, "INVITE", "x", &caller, &[&a], &[ra], lim);
    let c = call(port, "INVITE", "x", &caller, &[&a], &[Some((486, ""))], lim);
    assert_eq!(c.fin, Some(486), "ser log:\n{}", ser.log());
    let v = view(&ser);
    assert!(v.contains("500") && v.contains("disabled"), "{v}");
    assert!(
        ser.log()
            .contains("blst_* parameters have no effect until use_dst_blacklist=yes"),
        "{}",
        ser.log()
    );
}

#[test]
fn ser_c_refuses_bad_blacklist_settings() {
    let dir = TestDir::new();
    for (lines, ok) in [
        (
            "use_dst_blacklist=yes\ndst_blacklist_mem=64\ndst_blacklist_expire=5",
            true,
        ),
        ("use_dst_blacklist=maybe", false),
        ("dst_blacklist_expire=\"soon\"", false),
        ("dst_blacklist_mem=0", false),
        ("modparam(\"tm\", \"blst_503\", \"x\")", false),
        ("modparam(\"tm\", \"blst_methods_add\", -1)", false),
        (
            "modparam(\"tm\", \"blst_methods_lookup\", 4294967287)",
            true,
        ),
    ] {
        let cfg =
            format!("loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n{lines}\nroute {{ drop; }}\n");
        let f = server::check_config(&dir.write("b.cfg", cfg.as_bytes()));
        assert_eq!(f.code() == Some(0), ok, "{lines}\n{}", f.stderr);
        if !ok {
            assert!(f.stderr.contains("b.cfg:3"), "{lines}: {}", f.stderr);
        }
    }
}
