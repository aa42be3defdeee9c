//! Black-box tests of the stateful proxy (tm module): load without leaks,
//! retransmission handling and timers, serial and parallel forking,
//! CANCEL, t_newtran/t_reply as UAS, onreply routes, SER 0.8 names and
//! pre-RFC 3261 callers. Each test runs its own server on loopback and
//! holds the serial lock, because most of them measure time.
//!
//! The peers are Rust `UdpPeer`s driven by `pump` (one thread plays the
//! caller and every callee) or SIPp for the call-volume tests.

use crate::common::sip::reply_to;
use crate::common::tmkit::*;
use crate::common::*;
use std::time::{Duration, Instant};

const CALLER: usize = 0;
const CALLEE: usize = 1;

/// An INVITE from `caller` to bob at the proxy.
fn invite(caller: &UdpPeer, proxy_port: u16) -> Request {
    Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{proxy_port}"),
        caller.port(),
    )
    .header(
        "Contact",
        &format!("<sip:alice@127.0.0.1:{}>", caller.port()),
    )
}

/// Routes everything statefully to 127.0.0.1:`next`.
fn relay_to(next: u16) -> String {
    format!("route {{\n    t_relay_to_udp(\"127.0.0.1\", \"{next}\");\n}}\n")
}

fn codes_for(heard: &[Heard], who: usize, method: &str) -> Vec<u16> {
    heard
        .iter()
        .filter(|h| h.who == who && is_reply_for(&h.msg, method))
        .filter_map(|h| status_of(&h.msg))
        .collect()
}

fn requests_for<'a>(heard: &'a [Heard], who: usize, method: &str) -> Vec<&'a Heard> {
    heard
        .iter()
        .filter(|h| h.who == who && method_of(&h.msg).as_deref() == Some(method))
        .collect()
}

/// A sipp verdict with its error log cut short: under load it can hold
/// megabytes of aborted calls, which would drown the assertion message.
fn brief(r: &SippResult) -> String {
    let cut = |t: &str| t.chars().take(3000).collect::<String>();
    format!(
        "exit {:?}, {} ok, {} failed, {} retransmissions\nerrors: {}\nstderr: {}",
        r.exit_code,
        r.successful,
        r.failed,
        r.retransmissions,
        cut(&r.error_log),
        cut(&r.stderr)
    )
}

/// Like `SippResult::assert_all_ok` with a readable message.
fn all_ok(r: &SippResult, n: u64) {
    assert!(
        r.exit_code == Some(0) && r.successful == n && r.failed == 0,
        "sipp: expected {n} successful calls: {}",
        brief(r)
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn tm_stats_line_parses() {
    let s = parse_tm_stats(
        "0(123) WARNING: tm stats: current=3 waiting=1 created=10 freed=7 shm used=123456",
    );
    assert_eq!(
        s,
        Some(TmStats {
            current: 3,
            waiting: 1,
            created: 10,
            freed: 7,
            shm_used: 123456
        })
    );
    assert_eq!(parse_tm_stats("tm stats: current=3"), None);
}

// --- scenario files checked against each other, without ser -------------

/// A scenario pair checked sipp against sipp, without ser: 3 calls each.
fn scenario_pair_ok(uas: Sipp, uac: Sipp) {
    let _g = serial();
    let dir = TestDir::new();
    let uas = uas.arg("-m").arg("3").spawn(&dir);
    let r = uac
        .to(uas.port())
        .calls(3)
        .rate(10)
        .timeout(Duration::from_secs(15))
        .run(&dir);
    let s = uas.wait(Duration::from_secs(10));
    all_ok(&r, 3);
    all_ok(&s, 3);
}

#[test]
fn scenario_pre3261_uac_works_against_sipp_uas_directly() {
    scenario_pair_ok(
        Sipp::builtin("uas"),
        Sipp::scenario(&tests_path("scenarios/uac_pre3261.xml")),
    );
}

#[test]
fn scenario_uas_486_works_against_uac_expect_486_directly() {
    scenario_pair_ok(
        Sipp::scenario(&tests_path("scenarios/uas_486.xml")),
        Sipp::scenario(&tests_path("scenarios/uac_expect_486.xml")),
    );
}

// --- 1. load, then every transaction and every shm byte is given back ---

#[test]
fn sipp_5000_calls_at_300_cps_then_no_transaction_and_no_shm_left() {
    let _g = serial();
    let dir = TestDir::new();
    // The uas lives through warm-up, load and settling: sipp's default
    // 30 s -timeout would end it (as a failure) in the middle.
    let uas = Sipp::builtin("uas")
        .timeout(Duration::from_secs(120))
        .spawn(&dir);
    let port = free_udp_port();
    let ser = Ser::start(&tm_cfg(port, 4, "", &relay_to(uas.port())));

    // Warm-up: whatever the server allocates once, on first use (per
    // process tables, lazily grown hash buckets), is allocated now, so the
    // idle figure taken afterwards can be compared exactly, without any
    // tolerance.
    let fresh = tm_stats(&ser);
    let w = Sipp::builtin("uac")
        .to(port)
        .calls(20)
        .rate(50)
        .timeout(Duration::from_secs(20))
        .run(&dir);
    all_ok(&w, 20);
    // wt_timer is 2 s: the warm-up's transactions are gone after that.
    std::thread::sleep(Duration::from_millis(2500));
    let idle = settle(&ser, None);
    assert!(
        idle.current == 0 && idle.created == idle.freed,
        "warm-up transactions not freed: {idle:?} (fresh {fresh:?})"
    );

    let r = Sipp::builtin("uac")
        .to(port)
        .calls(5000)
        .rate(300)
        .timeout(Duration::from_secs(60))
        .run(&dir);
    std::thread::sleep(Duration::from_millis(2500));
    let after = settle(&ser, Some(idle.shm_used));
    let s = uas.stop();
    assert!(
        r.exit_code == Some(0) && r.successful == 5000 && r.failed == 0,
        "uac: {}\nuas: {}",
        brief(&r),
        brief(&s)
    );
    assert_eq!(after.current, 0, "transactions left: {after:?}");
    assert_eq!(after.created, after.freed, "created != freed: {after:?}");
    // Every call made two transactions (INVITE, BYE); the ACK to the 200
    // is end-to-end and creates none.
    assert!(
        after.created - idle.created >= 10_000,
        "expected >= 10000 new transactions: idle {idle:?}, after {after:?}"
    );
    assert_eq!(
        after.shm_used, idle.shm_used,
        "shm not back to idle: fresh {fresh:?}, idle {idle:?}, after {after:?}"
    );
}

// --- 2. retransmissions and timers ---------------------------------------

#[test]
fn retransmitted_invite_is_forwarded_once() {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let _ser = Ser::start(&tm_cfg(port, 2, "", &relay_to(callee.port())));
    let inv = invite(&caller, port);
    caller.send_to_port(&inv.build(), port);
    std::thread::sleep(Duration::from_millis(100));
    caller.send_to_port(&inv.build(), port);
    let t0 = Instant::now();
    let heard = pump(&[&caller, &callee], Duration::from_millis(1200), |h| {
        if h.who == CALLEE && method_of(&h.msg).as_deref() == Some("INVITE") {
            // 100 stops the proxy's own retransmissions of the INVITE.
            callee.send(&reply_to(&h.msg, 100, "Trying", None), h.from);
        }
        false
    });
    let invs = requests_for(&heard, CALLEE, "INVITE");
    assert_eq!(invs.len(), 1, "callee saw:\n{}", describe(&heard, t0));
    assert!(
        codes_for(&heard, CALLER, "INVITE").contains(&100),
        "caller got no 100:\n{}",
        describe(&heard, t0)
    );
    // Finish the call so nothing is left retransmitting.
    callee.send(
        &reply_to(&invs[0].msg, 486, "Busy Here", Some("b1")),
        invs[0].from,
    );
    let (rep, _) = caller
        .recv_final(Duration::from_secs(3))
        .expect("486 relayed");
    caller.send_to_port(&ack_for(&inv, &rep).build(), port);
}

#[test]
fn negative_reply_is_acked_and_resent_for_a_retransmitted_invite() {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let _ser = Ser::start(&tm_cfg(port, 2, "", &relay_to(callee.port())));
    let inv = invite(&caller, port);
    caller.send_to_port(&inv.build(), port);
    let t0 = Instant::now();
    let mut fwd_branch = None;
    let heard = pump(&[&caller, &callee], Duration::from_millis(1000), |h| {
        if h.who == CALLEE && method_of(&h.msg).as_deref() == Some("INVITE") {
            fwd_branch = top_branch(&h.msg);
            callee.send(&reply_to(&h.msg, 486, "Busy Here", Some("busy1")), h.from);
        }
        false
    });
    let text = describe(&heard, t0);
    let finals: Vec<&Heard> = heard
        .iter()
        .filter(|h| h.who == CALLER && status_of(&h.msg).is_some_and(|c| c >= 200))
        .collect();
    assert!(
        !finals.is_empty() && finals.iter().all(|h| status_of(&h.msg) == Some(486)),
        "caller:\n{text}"
    );
    let first = finals[0].msg.clone();
    assert_eq!(to_tag_of(&first).as_deref(), Some("busy1"), "{text}");
    let acks = requests_for(&heard, CALLEE, "ACK");
    assert_eq!(acks.len(), 1, "proxy must ACK the 486 once:\n{text}");
    assert_eq!(cseq_of(&acks[0].msg), format!("{} ACK", inv.cseq), "{text}");
    assert_eq!(top_branch(&acks[0].msg), fwd_branch, "ACK branch: {text}");
    assert_eq!(
        to_tag_of(&acks[0].msg).as_deref(),
        Some("busy1"),
        "ACK To tag: {text}"
    );

    // The caller did not see our ACK go out: it retransmits the INVITE and
    // must get the same 486 again, without the callee hearing of it.
    caller.drain();
    caller.send_to_port(&inv.build(), port);
    let heard = pump(&[&caller, &callee], Duration::from_millis(700), |_| false);
    let text = describe(&heard, t0);
    let again: Vec<&Heard> = heard
        .iter()
        .filter(|h| h.who == CALLER && status_of(&h.msg) == Some(486))
        .collect();
    assert!(!again.is_empty(), "486 not resent:\n{text}");
    assert_eq!(to_tag_of(&again[0].msg).as_deref(), Some("busy1"), "{text}");
    assert!(requests_for(&heard, CALLEE, "INVITE").is_empty(), "{text}");
    caller.send_to_port(&ack_for(&inv, &first).build(), port);
}

#[test]
fn silent_callee_gets_retransmissions_and_caller_gets_408_after_fr_timer() {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let mp = r#"modparam("tm", "fr_timer", 9)"#;
    let _ser = Ser::start(&tm_cfg(port, 2, mp, &relay_to(callee.port())));
    let inv = invite(&caller, port);
    let sent = Instant::now();
    caller.send_to_port(&inv.build(), port);
    let heard = pump(&[&caller, &callee], Duration::from_millis(10_500), |h| {
        h.who == CALLER && status_of(&h.msg).is_some_and(|c| c >= 200)
    });
    let text = describe(&heard, sent);
    let invs = requests_for(&heard, CALLEE, "INVITE");
    assert!(!invs.is_empty(), "INVITE never forwarded:\n{text}");
    let first = invs[0].at;
    let offsets: Vec<f64> = invs.iter().map(|h| secs(h.at - first)).collect();
    let expected = [0.0, 0.5, 1.5, 3.5, 7.5];
    assert_eq!(offsets.len(), expected.len(), "INVITE copies:\n{text}");
    for (got, want) in offsets.iter().zip(expected) {
        assert!(
            *got >= want - 0.2 && *got <= want + 0.3,
            "retransmission at {got:.3} s, expected {want} s:\n{text}"
        );
    }
    let fin = heard
        .iter()
        .find(|h| h.who == CALLER && status_of(&h.msg).is_some_and(|c| c >= 200))
        .unwrap_or_else(|| panic!("no final reply:\n{text}"));
    assert_eq!(status_of(&fin.msg), Some(408), "{text}");
    let at = secs(fin.at - sent);
    assert!((8.7..=10.0).contains(&at), "408 after {at:.3} s:\n{text}");
    assert!(
        requests_for(&heard, CALLEE, "CANCEL").is_empty(),
        "a branch without provisional is not cancelled:\n{text}"
    );
    caller.send_to_port(&ack_for(&inv, &fin.msg).build(), port);
}

#[test]
fn after_180_fr_inv_timer_applies_and_noisy_ctimer_gives_408_and_cancel() {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let mp = "modparam(\"tm\", \"fr_timer\", 9)\nmodparam(\"tm\", \"fr_inv_timer\", 3)\n\
              modparam(\"tm\", \"noisy_ctimer\", 1)";
    let _ser = Ser::start(&tm_cfg(port, 2, mp, &relay_to(callee.port())));
    let inv = invite(&caller, port);
    caller.send_to_port(&inv.build(), port);
    let t0 = Instant::now();
    let mut fwd: Option<Heard> = None;
    let mut final_at = None;
    let heard = pump(&[&caller, &callee], Duration::from_millis(6000), |h| {
        match (h.who, method_of(&h.msg).as_deref()) {
            (CALLEE, Some("INVITE")) => {
                fwd = Some(h.clone());
                callee.send(&reply_to(&h.msg, 180, "Ringing", Some("ring1")), h.from);
            }
            (CALLEE, Some("CANCEL")) => {
                callee.send(&reply_to(&h.msg, 200, "OK", Some("ring1")), h.from);
                if let Some(i) = &fwd {
                    callee.send(
                        &reply_to(&i.msg, 487, "Request Terminated", Some("ring1")),
                        h.from,
                    );
                }
            }
            (CALLER, None) if status_of(&h.msg).is_some_and(|c| c >= 200) && final_at.is_none() => {
                final_at = Some(h.at);
                caller.send_to_port(&ack_for(&inv, &h.msg).build(), port);
            }
            _ => {}
        }
        // Listen on for 1 s after the final to catch a stray 487.
        final_at.is_some_and(|t| h.at > t + Duration::from_secs(1))
    });
    let text = describe(&heard, t0);
    let ringing = heard
        .iter()
        .find(|h| h.who == CALLER && status_of(&h.msg) == Some(180))
        .unwrap_or_else(|| panic!("180 not relayed:\n{text}"));
    let finals: Vec<&Heard> = heard
        .iter()
        .filter(|h| h.who == CALLER && is_reply_for(&h.msg, "INVITE"))
        .filter(|h| status_of(&h.msg).is_some_and(|c| c >= 200))
        .collect();
    assert!(!finals.is_empty(), "no final:\n{text}");
    assert!(
        finals.iter().all(|h| status_of(&h.msg) == Some(408)),
        "only 408 may reach the caller:\n{text}"
    );
    let after = secs(finals[0].at - ringing.at);
    assert!(
        (2.7..=4.0).contains(&after),
        "408 {after:.3} s after 180:\n{text}"
    );
    let cancels = requests_for(&heard, CALLEE, "CANCEL");
    assert!(!cancels.is_empty(), "callee got no CANCEL:\n{text}");
    let fwd = fwd.expect("INVITE forwarded");
    assert_eq!(top_branch(&cancels[0].msg), top_branch(&fwd.msg), "{text}");
    assert_eq!(
        cseq_of(&cancels[0].msg),
        format!("{} CANCEL", inv.cseq),
        "{text}"
    );
    let acks = requests_for(&heard, CALLEE, "ACK");
    assert_eq!(acks.len(), 1, "proxy ACKs the 487 once:\n{text}");
}

// --- 3 and 8. serial forking through a failure route --------------------

/// Caller → proxy → callee 1 (486) → failure route → callee 2 (200).
fn serial_forking_case(cfg: impl Fn(u16, u16, u16) -> String) {
    let _g = serial();
    let (caller, c1, c2) = (UdpPeer::bind(), UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let ser = Ser::start(&cfg(port, c1.port(), c2.port()));
    let inv = invite(&caller, port);
    caller.send_to_port(&inv.build(), port);
    let t0 = Instant::now();
    let mut to_c1 = None;
    let heard = pump(&[&caller, &c1, &c2], Duration::from_millis(3000), |h| {
        match (h.who, method_of(&h.msg).as_deref()) {
            (1, Some("INVITE")) => {
                to_c1 = top_branch(&h.msg);
                c1.send(&reply_to(&h.msg, 486, "Busy Here", Some("c1")), h.from);
            }
            (2, Some("INVITE")) => {
                c2.send(&reply_to(&h.msg, 200, "OK", Some("c2")), h.from);
            }
            _ => {}
        }
        false
    });
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    let codes = codes_for(&heard, CALLER, "INVITE");
    assert!(codes.contains(&200), "caller got no 200:\n{text}");
    assert!(!codes.contains(&486), "486 leaked to the caller:\n{text}");
    let acks = requests_for(&heard, 1, "ACK");
    assert!(!acks.is_empty(), "callee 1 got no ACK for its 486:\n{text}");
    assert_eq!(top_branch(&acks[0].msg), to_c1, "{text}");
    assert_eq!(cseq_of(&acks[0].msg), format!("{} ACK", inv.cseq), "{text}");
    let invs2 = requests_for(&heard, 2, "INVITE");
    assert_eq!(invs2.len(), 1, "callee 2 INVITEs:\n{text}");
    let ruri = ruri_of(&invs2[0].msg).unwrap_or_default();
    assert!(
        ruri.starts_with("sip:voicemail@"),
        "R-URI at callee 2: {ruri}\n{text}"
    );
}

/// The docs' serial-forking script, written with either generation's names
/// (`arm` the arming function, `block` the failure block keyword, `relay`
/// the first relay): the 0.8 and 0.9 twins differ in nothing else.
fn serial_forking_script(arm: &str, block: &str, relay: &str, p1: u16, p2: u16) -> String {
    format!(
        r#"route {{
    {arm}("1");
    {relay}("127.0.0.1", "{p1}");
}}
{block}[1] {{
    revert_uri();
    setuser("voicemail");
    rewritehostport("127.0.0.1:{p2}");
    append_branch();
    t_relay();
}}
"#
    )
}

#[test]
fn serial_forking_on_486_via_failure_route() {
    serial_forking_case(|port, p1, p2| {
        tm_cfg(
            port,
            2,
            "",
            &serial_forking_script("t_on_failure", "failure_route", "t_relay_to_udp", p1, p2),
        )
    });
}

#[test]
fn ser08_reply_route_serial_forking_behaves_like_failure_route() {
    serial_forking_case(|port, p1, p2| {
        tm_cfg(
            port,
            2,
            "",
            &serial_forking_script("t_on_negative", "reply_route", "t_relay_to", p1, p2),
        )
    });
}

// --- 4. parallel forking -------------------------------------------------

fn parallel_forking_case(three: bool) {
    let _g = serial();
    let (caller, c1, c2, c3) = (
        UdpPeer::bind(),
        UdpPeer::bind(),
        UdpPeer::bind(),
        UdpPeer::bind(),
    );
    let port = free_udp_port();
    let extra = if three {
        format!("    append_branch(\"sip:c@127.0.0.1:{}\");\n", c3.port())
    } else {
        String::new()
    };
    let routes = format!(
        "route {{\n    rewritehostport(\"127.0.0.1:{p1}\");\n    append_branch(\"sip:b@127.0.0.1:{p2}\");\n{extra}    t_relay();\n}}\n",
        p1 = c1.port(),
        p2 = c2.port()
    );
    let ser = Ser::start(&tm_cfg(port, 2, "", &routes));
    let inv = invite(&caller, port);
    caller.send_to_port(&inv.build(), port);
    let t0 = Instant::now();
    let peers = [&caller, &c1, &c2, &c3];
    let mut inv2 = None;
    let mut inv3 = None;
    let mut c1_done = false;
    // Phase 1: callee 1 rejects, callees 2 (and 3) ring.
    let mut heard = pump(&peers, Duration::from_millis(2000), |h| {
        match (h.who, method_of(&h.msg).as_deref()) {
            (1, Some("INVITE")) => {
                c1.send(&reply_to(&h.msg, 486, "Busy Here", Some("c1")), h.from);
            }
            (1, Some("ACK")) => c1_done = true,
            (2, Some("INVITE")) => {
                inv2 = Some(h.clone());
                c2.send(&reply_to(&h.msg, 180, "Ringing", Some("c2")), h.from);
            }
            (3, Some("INVITE")) => {
                inv3 = Some(h.clone());
                c3.send(&reply_to(&h.msg, 180, "Ringing", Some("c3")), h.from);
            }
            _ => {}
        }
        c1_done && inv2.is_some() && (!three || inv3.is_some())
    });
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    assert!(c1_done, "callee 1 got no ACK for its 486:\n{text}");
    let inv2 = inv2.unwrap_or_else(|| panic!("callee 2 got no INVITE:\n{text}"));
    assert!(!three || inv3.is_some(), "callee 3 got no INVITE:\n{text}");
    // Phase 2: callee 2 answers; callee 3 must be cancelled.
    c2.send(&reply_to(&inv2.msg, 200, "OK", Some("c2")), inv2.from);
    heard.extend(pump(&peers, Duration::from_millis(1500), |h| {
        if let (3, Some("CANCEL"), Some(i)) = (h.who, method_of(&h.msg).as_deref(), &inv3) {
            c3.send(&reply_to(&h.msg, 200, "OK", Some("c3")), h.from);
            c3.send(
                &reply_to(&i.msg, 487, "Request Terminated", Some("c3")),
                h.from,
            );
        }
        false
    }));
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    let codes = codes_for(&heard, CALLER, "INVITE");
    assert!(codes.contains(&180), "caller got no 180:\n{text}");
    assert!(codes.contains(&200), "caller got no 200:\n{text}");
    assert!(
        codes.iter().all(|c| matches!(c, 100 | 180 | 200)),
        "caller may only see 100/180/200:\n{text}"
    );
    assert_eq!(requests_for(&heard, 2, "CANCEL").len(), 0, "{text}");
    if three {
        let cancels = requests_for(&heard, 3, "CANCEL");
        assert!(
            !cancels.is_empty(),
            "ringing callee 3 not cancelled:\n{text}"
        );
        let i3 = inv3.expect("checked above");
        assert_eq!(top_branch(&cancels[0].msg), top_branch(&i3.msg), "{text}");
        assert!(
            !requests_for(&heard, 3, "ACK").is_empty(),
            "487 not ACKed:\n{text}"
        );
    }
}

#[test]
fn parallel_forking_two_branches_486_and_200() {
    parallel_forking_case(false);
}

#[test]
fn parallel_forking_three_branches_ringing_one_is_cancelled() {
    parallel_forking_case(true);
}

// --- 5. caller CANCEL while ringing ---------------------------------------

#[test]
fn caller_cancel_while_ringing() {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let ser = Ser::start(&tm_cfg(port, 2, "", &relay_to(callee.port())));
    let inv = invite(&caller, port);
    caller.send_to_port(&inv.build(), port);
    let t0 = Instant::now();
    let mut fwd: Option<Heard> = None;
    let mut heard = pump(&[&caller, &callee], Duration::from_millis(2000), |h| {
        if h.who == CALLEE && method_of(&h.msg).as_deref() == Some("INVITE") {
            fwd = Some(h.clone());
            callee.send(&reply_to(&h.msg, 180, "Ringing", Some("r5")), h.from);
        }
        h.who == CALLER && status_of(&h.msg) == Some(180)
    });
    let fwd = fwd.unwrap_or_else(|| panic!("no INVITE:\n{}", describe(&heard, t0)));
    caller.send_to_port(&cancel_for(&inv).build(), port);
    let mut acked = false;
    heard.extend(pump(
        &[&caller, &callee],
        Duration::from_millis(2500),
        |h| {
            match (h.who, method_of(&h.msg).as_deref()) {
                (CALLEE, Some("CANCEL")) => {
                    callee.send(&reply_to(&h.msg, 200, "OK", Some("r5")), h.from);
                    callee.send(
                        &reply_to(&fwd.msg, 487, "Request Terminated", Some("r5")),
                        h.from,
                    );
                }
                (CALLER, None) if status_of(&h.msg) == Some(487) && !acked => {
                    acked = true;
                    caller.send_to_port(&ack_for(&inv, &h.msg).build(), port);
                }
                _ => {}
            }
            false
        },
    ));
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    assert_eq!(
        codes_for(&heard, CALLER, "CANCEL").first(),
        Some(&200),
        "{text}"
    );
    let cancels = requests_for(&heard, CALLEE, "CANCEL");
    assert!(!cancels.is_empty(), "callee got no CANCEL:\n{text}");
    assert_eq!(top_branch(&cancels[0].msg), top_branch(&fwd.msg), "{text}");
    assert!(codes_for(&heard, CALLER, "INVITE").contains(&487), "{text}");
    assert!(acked, "{text}");
    let acks = requests_for(&heard, CALLEE, "ACK");
    assert_eq!(
        acks.len(),
        1,
        "callee must see only the proxy's ACK:\n{text}"
    );
    assert_eq!(
        via_count(&acks[0].msg),
        1,
        "ACK with the caller's Via leaked:\n{text}"
    );
    assert_eq!(top_branch(&acks[0].msg), top_branch(&fwd.msg), "{text}");
}

fn via_count(raw: &[u8]) -> usize {
    sip::via_list(raw).len()
}

// --- 6. t_newtran + t_reply as a UAS ---------------------------------------

#[test]
fn t_newtran_t_reply_486_is_retransmitted_until_ack() {
    let _g = serial();
    let caller = UdpPeer::bind();
    let port = free_udp_port();
    let routes = r#"route {
    if (method == "ACK") {
        t_newtran();
        break;
    };
    if (method == "INVITE") {
        if (t_newtran()) {
            t_reply("486", "Busy here");
        } else {
            sl_reply_error();
        };
        break;
    };
    sl_send_reply("501", "Not Implemented");
}
"#;
    let ser = Ser::start(&tm_cfg(port, 2, "", routes));
    let inv = invite(&caller, port);
    caller.send_to_port(&inv.build(), port);
    let t0 = Instant::now();
    let mut heard = pump(&[&caller], Duration::from_millis(1900), |_| false);
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    let busy: Vec<f64> = heard
        .iter()
        .filter(|h| status_of(&h.msg) == Some(486))
        .map(|h| secs(h.at - t0))
        .collect();
    assert!(busy.len() >= 3, "486 not retransmitted:\n{text}");
    assert!(busy[0] < 0.3, "{text}");
    assert!(
        (0.3..=0.8).contains(&busy[1]),
        "first retransmission:\n{text}"
    );
    assert!(
        (1.3..=1.8).contains(&busy[2]),
        "second retransmission:\n{text}"
    );
    let tag = to_tag_of(&heard[0].msg);
    assert!(tag.is_some(), "486 without To tag:\n{text}");
    assert!(
        heard.iter().all(|h| to_tag_of(&h.msg) == tag),
        "To tag changed:\n{text}"
    );

    // A retransmitted INVITE is answered with the same 486 at once.
    let resent = Instant::now();
    caller.send_to_port(&inv.build(), port);
    let (rep, _) = caller
        .recv_matching(Duration::from_millis(300), |m| status_of(m) == Some(486))
        .unwrap_or_else(|| panic!("retransmitted INVITE unanswered:\n{text}"));
    assert!(resent.elapsed() < Duration::from_millis(300));
    assert_eq!(to_tag_of(&rep), tag);

    // After the ACK nothing more comes (the next timer copy would be due
    // at 3.5 s).
    let first = heard.remove(0);
    caller.send_to_port(&ack_for(&inv, &first.msg).build(), port);
    caller.drain();
    let late = pump(&[&caller], Duration::from_millis(2800), |_| false);
    assert!(
        late.is_empty(),
        "486 still retransmitted after ACK:\n{}",
        describe(&late, t0)
    );
}

// --- 7. onreply_route with t_check_status and status=~ -------------------

#[test]
fn onreply_route_sees_180_with_t_check_status_and_status_match() {
    let _g = serial();
    let dir = TestDir::new();
    let uas = Sipp::builtin("uas").spawn(&dir);
    let port = free_udp_port();
    let routes = format!(
        r#"route {{
    t_on_reply("1");
    t_relay_to_udp("127.0.0.1", "{p}");
}}
onreply_route[1] {{
    if (t_check_status("18[0-9]")) {{
        log(1, "ONREPLY-18X\n");
    }};
    if (status =~ "18[0-9]") {{
        log(1, "STATUS-18X\n");
    }};
}}
"#,
        p = uas.port()
    );
    let ser = Ser::start(&tm_cfg(port, 2, "", &routes));
    let n = 10;
    let r = Sipp::builtin("uac")
        .to(port)
        .calls(n)
        .rate(20)
        .timeout(Duration::from_secs(20))
        .run(&dir);
    let s = uas.stop();
    all_ok(&r, n);
    assert_eq!(s.failed, 0, "uas: {}", brief(&s));
    // Log lines are written by the worker before it relays the reply, so
    // they are all in the log once the caller has its replies.
    let log = ser.log();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count() as u64;
    assert_eq!(count("ONREPLY-18X"), n, "t_check_status lines; log:\n{log}");
    assert_eq!(count("STATUS-18X"), n, "status=~ lines; log:\n{log}");
}

// --- 9. pre-RFC 3261 callers -------------------------------------------------

#[test]
fn pre3261_caller_completes_calls_with_e2e_ack_and_bye() {
    let _g = serial();
    let dir = TestDir::new();
    let uas = Sipp::builtin("uas").spawn(&dir);
    let port = free_udp_port();
    let _ser = Ser::start(&tm_cfg(port, 2, "", &relay_to(uas.port())));
    let r = Sipp::scenario(&tests_path("scenarios/uac_pre3261.xml"))
        .to(port)
        .calls(20)
        .rate(20)
        .timeout(Duration::from_secs(20))
        .run(&dir);
    let s = uas.stop();
    all_ok(&r, 20);
    // The built-in uas counts a call only once the ACK for its 200 and
    // the BYE arrived: the caller's end-to-end ACK got through.
    assert!(s.successful == 20 && s.failed == 0, "uas: {}", brief(&s));
}

/// A pre-3261 caller's INVITE rejected with 486: its ACK (matched without
/// a z9hG4bK branch) is absorbed; the callee sees only the proxy's ACK.
fn pre3261_negative_case(branch: Option<&str>) {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let ser = Ser::start(&tm_cfg(port, 2, "", &relay_to(callee.port())));
    let mut inv = invite(&caller, port);
    let strip = |r: &Request| match branch {
        Some(b) => {
            let mut r = r.clone();
            r.branch = b.to_string();
            r.build()
        }
        None => without_branch(&r.build(), &r.branch),
    };
    if let Some(b) = branch {
        inv.branch = b.to_string();
    }
    caller.send_to_port(&strip(&inv), port);
    let t0 = Instant::now();
    let mut fwd = None;
    let mut acked = false;
    let heard = pump(&[&caller, &callee], Duration::from_millis(2000), |h| {
        match (h.who, method_of(&h.msg).as_deref()) {
            (CALLEE, Some("INVITE")) => {
                fwd = top_branch(&h.msg);
                callee.send(&reply_to(&h.msg, 486, "Busy Here", Some("old")), h.from);
            }
            (CALLER, None) if status_of(&h.msg) == Some(486) && !acked => {
                acked = true;
                caller.send_to_port(&strip(&ack_for(&inv, &h.msg)), port);
            }
            _ => {}
        }
        false
    });
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    assert!(acked, "caller got no 486:\n{text}");
    assert!(
        fwd.as_deref().is_some_and(|b| b.starts_with("z9hG4bK")),
        "{text}"
    );
    let acks = requests_for(&heard, CALLEE, "ACK");
    assert_eq!(
        acks.len(),
        1,
        "callee must see only the proxy's ACK:\n{text}"
    );
    assert_eq!(via_count(&acks[0].msg), 1, "caller's ACK leaked:\n{text}");
    assert_eq!(top_branch(&acks[0].msg), fwd, "{text}");
    // Absorbed means the 486 is not retransmitted any more either.
    let last_486 = heard
        .iter()
        .filter(|h| h.who == CALLER && status_of(&h.msg) == Some(486))
        .count();
    assert!(last_486 <= 2, "486 kept coming after the ACK:\n{text}");
}

#[test]
fn pre3261_caller_without_branch_ack_to_486_is_absorbed() {
    pre3261_negative_case(None);
}

#[test]
fn pre3261_caller_with_old_style_branch_ack_to_486_is_absorbed() {
    pre3261_negative_case(Some("4f2a9c.1"));
}
