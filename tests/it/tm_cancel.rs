//! CANCEL handling of SER 2.1's tm: `cancel_b_method` (what cancelling a
//! branch that never answered does), `t_relay_cancel()`,
//! `t_lookup_cancel()`, `ac_extra_hdrs`, and the FIFO's `t_uac_cancel`.

use crate::common::ctlkit::{self, serctl, sock_of, text};
use crate::common::server::{self, Ser};
use crate::common::sip::{first_line, header_value, reply_to, status_of, Request, UdpPeer};
use crate::common::tmkit::{
    ack_for, cancel_for, describe, fork_route, is_reply_for, method_of, pump, tm_cfg, Heard,
};
use crate::common::{free_udp_port, serial, TestDir};
use std::time::{Duration, Instant};

/// What a callee does with the INVITE.
#[derive(Clone, Copy, PartialEq)]
enum Callee {
    /// Never answers anything (INVITE or CANCEL).
    Silent,
    /// Sends 180 one second after the INVITE, then answers a CANCEL as a
    /// UAS does (200, then 487 for the INVITE).
    RingsAfter1s,
}

/// What a cancelled call looked like.
struct Cancelled {
    /// When the caller sent its CANCEL.
    cancel_at: Instant,
    /// When the callee sent its 180, if it did.
    ring_at: Option<Instant>,
    /// (status, time) of the caller's final replies to the INVITE.
    finals: Vec<(u16, Instant)>,
    /// The caller got a 200 for its CANCEL.
    cancel_ok: bool,
    /// Times the callee received the INVITE (first send included) and a CANCEL.
    invites: Vec<Instant>,
    cancels: Vec<Instant>,
    text: String,
}

/// One call through ser with `modparams`, CANCELed by the caller as soon
/// as the callee has the INVITE; runs `secs` seconds (bounded).
fn cancelled_call(modparams: &str, callee_does: Callee, secs: u64) -> Cancelled {
    let caller = UdpPeer::bind();
    let callee = UdpPeer::bind();
    let port = free_udp_port();
    let cfg = tm_cfg(
        port,
        1,
        &format!("modparam(\"tm\", \"fr_timer\", 2)\n{modparams}"),
        &fork_route(&[callee.port()], ""),
    );
    let ser = Ser::start(&cfg);
    let inv = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    );
    let t0 = Instant::now();
    caller.send_to_port(&inv.build(), port);
    let mut out = Cancelled {
        cancel_at: t0,
        ring_at: None,
        finals: Vec::new(),
        cancel_ok: false,
        invites: Vec::new(),
        cancels: Vec::new(),
        text: String::new(),
    };
    let mut first_invite: Option<(Vec<u8>, std::net::SocketAddr)> = None;
    let mut cancelled = false;
    let mut heard: Vec<Heard> = Vec::new();
    let deadline = t0 + Duration::from_secs(secs);
    // Served in slices, so the callee can ring at its own time.
    while Instant::now() < deadline {
        let got = pump(&[&caller, &callee], Duration::from_millis(20), |h| {
            if h.who == 0 {
                if is_reply_for(&h.msg, "CANCEL") && status_of(&h.msg) == Some(200) {
                    out.cancel_ok = true;
                }
                if let Some(code) = status_of(&h.msg).filter(|c| *c >= 200) {
                    if is_reply_for(&h.msg, "INVITE") {
                        out.finals.push((code, h.at));
                        caller.send_to_port(&ack_for(&inv, &h.msg).build(), port);
                    }
                }
                return false;
            }
            match method_of(&h.msg).as_deref() {
                Some("INVITE") => {
                    out.invites.push(h.at);
                    if first_invite.is_none() {
                        first_invite = Some((h.msg.clone(), h.from));
                    }
                }
                Some("CANCEL") => {
                    out.cancels.push(h.at);
                    if callee_does == Callee::RingsAfter1s {
                        callee.send(&reply_to(&h.msg, 200, "OK", Some("t")), h.from);
                        if let Some((i, _)) = &first_invite {
                            callee.send(&reply_to(i, 487, "Request Terminated", Some("t")), h.from);
                        }
                    }
                }
                _ => {}
            }
            false
        });
        heard.extend(got);
        if let (false, Some(_)) = (cancelled, &first_invite) {
            cancelled = true;
            out.cancel_at = Instant::now();
            caller.send_to_port(&cancel_for(&inv).build(), port);
        }
        if let (Callee::RingsAfter1s, None, Some((i, from))) =
            (callee_does, out.ring_at, &first_invite)
        {
            if out.invites[0].elapsed() >= Duration::from_secs(1) {
                out.ring_at = Some(Instant::now());
                callee.send(&reply_to(i, 180, "Ringing", Some("t")), *from);
            }
        }
    }
    out.text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    out
}

fn ms(from: Instant, to: Instant) -> u128 {
    to.saturating_duration_since(from).as_millis()
}

/// Method 0 (2.1's default): the caller gets its 487 at once, the silent
/// callee is never sent a CANCEL and the INVITE is no longer repeated.
#[test]
fn cancel_b_method_0_answers_487_at_once_and_never_cancels_a_silent_callee() {
    let _g = serial();
    let c = cancelled_call(
        "modparam(\"tm\", \"cancel_b_method\", 0)",
        Callee::Silent,
        4,
    );
    let t = &c.text;
    assert!(c.cancel_ok, "200 for the CANCEL\n{t}");
    assert_eq!(c.finals.len(), 1, "{t}");
    let (code, at) = c.finals[0];
    assert_eq!(code, 487, "{t}");
    assert!(
        ms(c.cancel_at, at) < 500,
        "487 at once, not at FR expiry\n{t}"
    );
    assert!(
        c.cancels.is_empty(),
        "no CANCEL to a callee that never answered\n{t}"
    );
    let late = c
        .invites
        .iter()
        .filter(|i| ms(c.cancel_at, **i) > 100)
        .count();
    assert_eq!(late, 0, "INVITE retransmissions stop at the CANCEL\n{t}");
}

/// Method 1: the INVITE keeps going until the callee rings, then the
/// CANCEL goes out at once; the callee's 487 reaches the caller.
#[test]
fn cancel_b_method_1_cancels_right_after_the_first_provisional() {
    let _g = serial();
    let c = cancelled_call(
        "modparam(\"tm\", \"cancel_b_method\", 1)",
        Callee::RingsAfter1s,
        3,
    );
    let t = &c.text;
    let ring = c.ring_at.expect("the callee rang");
    assert!(c.invites.len() >= 2, "retransmitted while unanswered\n{t}");
    assert_eq!(c.cancels.len(), 1, "{t}");
    assert!(c.cancels[0] >= ring, "no CANCEL before the 180\n{t}");
    assert!(
        ms(ring, c.cancels[0]) < 300,
        "CANCEL right after the 180\n{t}"
    );
    assert!(c.cancel_ok, "{t}");
    assert_eq!(
        c.finals.iter().map(|f| f.0).collect::<Vec<_>>(),
        [487],
        "{t}"
    );
}

/// Method 1 with a callee that never answers: no CANCEL is ever sent,
/// and at FR expiry the caller, who CANCELed, gets 487 rather than 408.
#[test]
fn cancel_b_method_1_silent_callee_ends_with_487_at_fr_expiry() {
    let _g = serial();
    let c = cancelled_call(
        "modparam(\"tm\", \"cancel_b_method\", 1)",
        Callee::Silent,
        4,
    );
    let t = &c.text;
    assert!(c.cancels.is_empty(), "{t}");
    assert_eq!(c.finals.len(), 1, "{t}");
    let (code, at) = c.finals[0];
    assert_eq!(code, 487, "{t}");
    let after = ms(c.cancel_at, at);
    assert!(
        (1500..3000).contains(&after),
        "at FR expiry (2 s): {after} ms\n{t}"
    );
    let late = c
        .invites
        .iter()
        .filter(|i| ms(c.cancel_at, **i) > 100)
        .count();
    assert!(
        late >= 1,
        "INVITE still retransmitted after the CANCEL\n{t}"
    );
}

/// Method 2: the CANCEL goes out at once (and is retransmitted) even
/// though the callee never answered; the INVITE is no longer repeated,
/// and the caller gets 487 when the branch times out.
#[test]
fn cancel_b_method_2_cancels_an_unanswered_branch_at_once() {
    let _g = serial();
    let c = cancelled_call(
        "modparam(\"tm\", \"cancel_b_method\", 2)",
        Callee::Silent,
        4,
    );
    let t = &c.text;
    assert!(!c.cancels.is_empty(), "{t}");
    assert!(ms(c.cancel_at, c.cancels[0]) < 300, "CANCEL at once\n{t}");
    assert!(c.cancels.len() >= 2, "CANCEL retransmitted\n{t}");
    let late = c
        .invites
        .iter()
        .filter(|i| ms(c.cancel_at, **i) > 100)
        .count();
    assert_eq!(late, 0, "INVITE retransmissions stop\n{t}");
    assert_eq!(
        c.finals.iter().map(|f| f.0).collect::<Vec<_>>(),
        [487],
        "{t}"
    );
}

/// `cancel_b_method` takes 0, 1 or 2; anything else is refused by
/// `ser -c`, naming the line.
#[test]
fn cancel_b_method_values_are_checked_at_load() {
    let dir = TestDir::new();
    for (v, ok) in [
        ("0", true),
        ("1", true),
        ("2", true),
        ("3", false),
        ("-1", false),
        ("\"x\"", false),
    ] {
        let cfg = format!(
            "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nmodparam(\"tm\", \"cancel_b_method\", {v})\nroute {{ drop; }}\n"
        );
        let f = server::check_config(&dir.write("b.cfg", cfg.as_bytes()));
        assert_eq!(f.code() == Some(0), ok, "{v}\n{}", f.stderr);
        if !ok {
            assert!(f.stderr.contains("b.cfg:3:"), "{v}: {}", f.stderr);
        }
    }
}

/// What a callee does in [`one_call`].
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// 180 at once; the caller CANCELs on it; the callee answers the
    /// CANCEL as a UAS (200, then 487).
    RingsAndIsCancelled,
    /// A final at once (which ser ACKs).
    Rejects(u16),
}

/// What [`one_call`] saw.
struct Call {
    /// Requests the callee received (raw).
    at_callee: Vec<Vec<u8>>,
    /// Replies the caller received: (status, CSeq method, reason line).
    at_caller: Vec<(u16, String, String)>,
    text: String,
}

impl Call {
    fn callee_got(&self, method: &str) -> Vec<&Vec<u8>> {
        self.at_callee
            .iter()
            .filter(|m| method_of(m).as_deref() == Some(method))
            .collect()
    }
    fn caller_got(&self, code: u16, method: &str) -> bool {
        self.at_caller
            .iter()
            .any(|(c, m, _)| *c == code && m == method)
    }
}

/// One INVITE with `extra` headers from a caller through ser (`routes`
/// given the callee's port, `modparams`); ends half a second after the
/// caller's final to the INVITE, 4 s at most.
fn one_call(
    modparams: &str,
    routes: impl FnOnce(u16) -> String,
    answer: Answer,
    extra: &[(&str, &str)],
) -> Call {
    let caller = UdpPeer::bind();
    let callee = UdpPeer::bind();
    let port = free_udp_port();
    let ser = Ser::start(&tm_cfg(port, 1, modparams, &routes(callee.port())));
    let mut inv = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    );
    for (n, v) in extra {
        inv = inv.header(n, v);
    }
    let t0 = Instant::now();
    caller.send_to_port(&inv.build(), port);
    let mut call = Call {
        at_callee: Vec::new(),
        at_caller: Vec::new(),
        text: String::new(),
    };
    let mut invite: Option<Vec<u8>> = None;
    let mut done: Option<Instant> = None;
    let mut cancelled = false;
    let mut heard = Vec::new();
    while t0.elapsed() < Duration::from_secs(4)
        && done.is_none_or(|d| d.elapsed().as_millis() < 500)
    {
        heard.extend(pump(&[&caller, &callee], Duration::from_millis(20), |h| {
            if h.who == 0 {
                let Some(code) = status_of(&h.msg) else {
                    return false;
                };
                let cseq = header_value(&h.msg, "CSeq").unwrap_or_default();
                let m = cseq
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                call.at_caller.push((code, m.clone(), first_line(&h.msg)));
                if m == "INVITE" && code == 180 && !cancelled {
                    cancelled = true;
                    caller.send_to_port(&cancel_for(&inv).build(), port);
                }
                if m == "INVITE" && code >= 200 {
                    caller.send_to_port(&ack_for(&inv, &h.msg).build(), port);
                    done.get_or_insert(h.at);
                }
                return false;
            }
            call.at_callee.push(h.msg.clone());
            match method_of(&h.msg).as_deref() {
                Some("INVITE") if invite.is_none() => {
                    invite = Some(h.msg.clone());
                    let code = match answer {
                        Answer::RingsAndIsCancelled => 180,
                        Answer::Rejects(c) => c,
                    };
                    callee.send(&reply_to(&h.msg, code, "Callee", Some("t")), h.from);
                }
                Some("CANCEL") => {
                    callee.send(&reply_to(&h.msg, 200, "OK", Some("t")), h.from);
                    if let Some(i) = &invite {
                        callee.send(&reply_to(i, 487, "Request Terminated", Some("t")), h.from);
                    }
                }
                _ => {}
            }
            false
        }));
    }
    call.text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    call
}

/// A CANCEL with no INVITE transaction (a Call-ID ser never saw), sent to
/// a ser running `routes`; the replies it got within a second.
fn lone_cancel(routes: &str) -> (Vec<String>, String) {
    let caller = UdpPeer::bind();
    let port = free_udp_port();
    let ser = Ser::start(&tm_cfg(port, 1, "", routes));
    let c = Request::new(
        "CANCEL",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    );
    caller.send_to_port(&c.build(), port);
    let got = pump(&[&caller], Duration::from_secs(1), |_| false);
    (got.iter().map(|h| first_line(&h.msg)).collect(), ser.log())
}

/// SER 2.1's example for `t_relay_cancel()`: a CANCEL whose INVITE is
/// known is relayed and ends the script there (no 404 from the line after
/// the block); one with no INVITE lets the script go on.
fn relay_cancel_route(callee: u16) -> String {
    format!(
        r#"route {{
    if (method == CANCEL) {{
        if (!t_relay_cancel()) {{
            sl_send_reply("500", "Internal Server Error");
            drop;
        }};
        sl_send_reply("404", "No INVITE for this CANCEL");
        drop;
    }};
    rewritehostport("127.0.0.1:{callee}");
    t_relay();
}}
"#
    )
}

#[test]
fn t_relay_cancel_relays_and_stops_the_script_only_when_the_invite_exists() {
    let _g = serial();
    let c = one_call("", relay_cancel_route, Answer::RingsAndIsCancelled, &[]);
    let t = &c.text;
    assert_eq!(c.callee_got("CANCEL").len(), 1, "{t}");
    assert!(c.caller_got(200, "CANCEL"), "{t}");
    assert!(c.caller_got(487, "INVITE"), "{t}");
    assert!(
        !c.caller_got(404, "CANCEL") && !c.caller_got(500, "CANCEL"),
        "{t}"
    );
    let (lines, log) = lone_cancel(&relay_cancel_route(9));
    assert_eq!(lines, ["SIP/2.0 404 No INVITE for this CANCEL"], "{log}");
}

fn lookup_cancel_route(callee: u16) -> String {
    format!(
        r#"route {{
    if (method == "CANCEL") {{
        if (t_lookup_cancel("1")) {{
            if (isflagset(5)) {{ t_relay(); drop; }};
            sl_send_reply("500", "flags not inherited");
            drop;
        }};
        sl_send_reply("481", "No INVITE for this CANCEL");
        drop;
    }};
    setflag(5);
    rewritehostport("127.0.0.1:{callee}");
    t_relay();
}}
"#
    )
}

/// `t_lookup_cancel("1")`: true for a CANCEL whose INVITE transaction
/// exists (and the CANCEL takes the INVITE's flags), false otherwise.
#[test]
fn t_lookup_cancel_tells_whether_the_invite_exists() {
    let _g = serial();
    let c = one_call("", lookup_cancel_route, Answer::RingsAndIsCancelled, &[]);
    let t = &c.text;
    assert_eq!(c.callee_got("CANCEL").len(), 1, "{t}");
    assert!(
        c.caller_got(200, "CANCEL") && c.caller_got(487, "INVITE"),
        "{t}"
    );
    assert!(
        !c.caller_got(481, "CANCEL") && !c.caller_got(500, "CANCEL"),
        "{t}"
    );
    let (lines, log) = lone_cancel(&lookup_cancel_route(9));
    assert_eq!(lines, ["SIP/2.0 481 No INVITE for this CANCEL"], "{log}");
}

/// `ac_extra_hdrs`: header fields of the sent INVITE with the prefix go
/// into the CANCEL and the ACK of a negative final tm builds; others not.
#[test]
fn ac_extra_hdrs_are_copied_into_cancel_and_negative_ack() {
    let _g = serial();
    let mp = "modparam(\"tm\", \"ac_extra_hdrs\", \"x-foo-\")";
    let hdrs = [("X-Foo-A", "1"), ("X-Bar", "2")];
    let route = |p: u16| fork_route(&[p], "");
    let c = one_call(mp, route, Answer::RingsAndIsCancelled, &hdrs);
    let cancels = c.callee_got("CANCEL");
    assert_eq!(cancels.len(), 1, "{}", c.text);
    let c0 = cancels[0];
    assert_eq!(
        header_value(c0, "X-Foo-A").as_deref(),
        Some("1"),
        "{}",
        text(c0)
    );
    assert_eq!(header_value(c0, "X-Bar"), None, "{}", text(c0));
    let c = one_call(mp, route, Answer::Rejects(486), &hdrs);
    let acks = c.callee_got("ACK");
    assert!(!acks.is_empty(), "{}", c.text);
    let a0 = acks[0];
    assert_eq!(
        header_value(a0, "X-Foo-A").as_deref(),
        Some("1"),
        "{}",
        text(a0)
    );
    assert_eq!(header_value(a0, "X-Bar"), None, "{}", text(a0));
    assert!(c.caller_got(486, "INVITE"), "{}", c.text);
}

/// `ac_extra_hdrs` is a string; `reparse_invite` only 1 (ser always
/// builds CANCEL and ACK from the INVITE it sent).
#[test]
fn ac_extra_hdrs_and_reparse_invite_are_checked_at_load() {
    let dir = TestDir::new();
    for (p, ok) in [
        ("\"ac_extra_hdrs\", \"X-\"", true),
        ("\"ac_extra_hdrs\", 5", false),
        ("\"reparse_invite\", 1", true),
        ("\"reparse_invite\", 0", false),
    ] {
        let cfg = format!(
            "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nmodparam(\"tm\", {p})\nroute {{ drop; }}\n"
        );
        let f = server::check_config(&dir.write("a.cfg", cfg.as_bytes()));
        assert_eq!(f.code() == Some(0), ok, "{p}\n{}", f.stderr);
        if !ok {
            assert!(f.stderr.contains("a.cfg:3:"), "{p}: {}", f.stderr);
        }
    }
}

/// SER 0.9's FIFO `t_uac_cancel <Call-ID> <CSeq>`: cancels an INVITE a
/// `t_uac_dlg` started (the callee rang and sees the CANCEL), answering
/// 200; an unknown transaction or a bad CSeq answers an error line.
#[test]
fn fifo_t_uac_cancel_cancels_a_t_uac_dlg_invite() {
    let _g = serial();
    let port = free_udp_port();
    let ser = ctlkit::start(TestDir::new(), port, "route { drop; }");
    let callee = UdpPeer::bind();
    let client_path = ser.dir().join("client.sock");
    let client = std::os::unix::net::UnixDatagram::bind(&client_path).expect("bind");
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let ruri = format!("sip:bob@127.0.0.1:{}", callee.port());
    let req = format!(
        ":t_uac_dlg:\nINVITE\n{ruri}\n.\nFrom: <sip:alice@127.0.0.1>\nTo: <{ruri}>\n\
Call-ID: uac-cancel-1@test\nCSeq: 7 INVITE\nContact: <sip:alice@!!>\n.\n.\n"
    );
    client.send_to(req.as_bytes(), sock_of(&ser)).expect("send");
    let (inv, from) = callee
        .recv_matching(Duration::from_secs(3), |m| {
            first_line(m).starts_with("INVITE ")
        })
        .expect("INVITE arrives");
    callee.send(&reply_to(&inv, 180, "Ringing", Some("t")), from);
    std::thread::sleep(Duration::from_millis(200));
    let fifo = ctlkit::fifo_of(&ser).display().to_string();
    let t = ["-f", fifo.as_str()];
    let ok = serctl(&t, &["fifo", "t_uac_cancel", "uac-cancel-1@test", "7"]);
    assert!(
        text(&ok.stdout).contains("fifo_uac_cancel succeeded") && ok.status.code() == Some(0),
        "{} {}\n{}",
        text(&ok.stdout),
        text(&ok.stderr),
        ser.log()
    );
    let (cancel, _) = callee
        .recv_matching(Duration::from_secs(2), |m| {
            first_line(m).starts_with("CANCEL ")
        })
        .unwrap_or_else(|| panic!("the callee sees the CANCEL\n{}", ser.log()));
    assert_eq!(
        header_value(&cancel, "Call-ID").as_deref(),
        Some("uac-cancel-1@test")
    );
    assert_eq!(header_value(&cancel, "CSeq").as_deref(), Some("7 CANCEL"));
    let unknown = serctl(&t, &["fifo", "t_uac_cancel", "no-such@test", "7"]);
    assert!(
        text(&unknown.stderr).starts_with("481 "),
        "{}",
        text(&unknown.stderr)
    );
    let wrong_cseq = serctl(&t, &["fifo", "t_uac_cancel", "uac-cancel-1@test", "8"]);
    assert!(
        text(&wrong_cseq.stderr).starts_with("481 "),
        "{}",
        text(&wrong_cseq.stderr)
    );
    let bad = serctl(&t, &["fifo", "t_uac_cancel", "uac-cancel-1@test", "x"]);
    assert!(
        text(&bad.stderr).starts_with("400 "),
        "{}",
        text(&bad.stderr)
    );
}

/// `unmatched_cancel`: a CANCEL whose INVITE ser never saw is relayed in
/// a transaction of its own (0, the default: a silent callee hears it
/// again, and the caller gets the callee's 481), statelessly (1: heard
/// once, the 481 still passes), or dropped (2: the callee hears nothing).
#[test]
fn unmatched_cancel_is_relayed_statefully_statelessly_or_dropped() {
    let _g = serial();
    // (value, CANCELs a silent callee hears, at most, those an answering
    // one hears, the caller gets the 481)
    for (value, silent_hears, most, answered_hears, relayed_481) in [
        (None, 2, usize::MAX, 1, true),
        (Some(0), 2, usize::MAX, 1, true),
        (Some(1), 1, 1, 1, true),
        (Some(2), 0, 0, 0, false),
    ] {
        for (silent, range) in [
            (true, silent_hears..=most),
            (false, answered_hears..=answered_hears),
        ] {
            let caller = UdpPeer::bind();
            let callee = UdpPeer::bind();
            let port = free_udp_port();
            let param = value
                .map(|v| format!("modparam(\"tm\", \"unmatched_cancel\", {v})"))
                .unwrap_or_default();
            let ser = Ser::start(&tm_cfg(port, 1, &param, &fork_route(&[callee.port()], "")));
            let c = Request::new(
                "CANCEL",
                &format!("sip:bob@127.0.0.1:{port}"),
                caller.port(),
            );
            caller.send_to_port(&c.build(), port);
            let heard = pump(&[&caller, &callee], Duration::from_millis(1800), |h| {
                if h.who == 1 && !silent {
                    callee.send(&reply_to(&h.msg, 481, "Call Does Not Exist", None), h.from);
                }
                false
            });
            let text = format!(
                "{value:?} silent={silent}\n{}\n{}",
                describe(&heard, Instant::now()),
                ser.log()
            );
            let cancels = heard.iter().filter(|h| h.who == 1).count();
            assert!(range.contains(&cancels), "{cancels} CANCELs\n{text}");
            if !silent {
                let got_481 = heard
                    .iter()
                    .any(|h| h.who == 0 && status_of(&h.msg) == Some(481));
                assert_eq!(got_481, relayed_481, "{text}");
            }
        }
    }
    let cfg = "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nmodparam(\"tm\", \"unmatched_cancel\", 3)\nroute { drop; }\n";
    let dir = TestDir::new();
    let f = server::check_config(&dir.write("u.cfg", cfg.as_bytes()));
    assert!(
        f.code() != Some(0) && f.stderr.contains("u.cfg:3:"),
        "{}",
        f.stderr
    );
}
