//! Which final reply the caller gets when several branches fail (RFC 3261
//! 16.7 step 6, SER's t_pick_branch): the lowest status code among the
//! branches' finals, a branch that never answered counting as 408 — but a
//! 6xx ends the search at once and is what the caller gets. Checked
//! end to end, because a proxy that picked the worst reply passed every
//! other black-box test.

use crate::common::sip::reply_to;
use crate::common::tmkit::*;
use crate::common::*;
use std::time::{Duration, Instant};

const CALLER: usize = 0;

/// Parallel forking to the callees' ports (the first through the R-URI,
/// the others as branches); FR timer 2 s so a silent branch ends in time.
fn fork_cfg(port: u16, callees: &[u16]) -> String {
    let mut route = format!(
        "route {{\n    rewritehostport(\"127.0.0.1:{}\");\n",
        callees[0]
    );
    for p in &callees[1..] {
        route.push_str(&format!("    append_branch(\"sip:x@127.0.0.1:{p}\");\n"));
    }
    route.push_str("    t_relay();\n}\n");
    tm_cfg(port, 2, "modparam(\"tm\", \"fr_timer\", 2)", &route)
}

/// Calls through a proxy forking to one callee per entry of `answers`
/// (None: never answers); returns the final codes the caller got.
fn finals_for(answers: &[Option<(u16, &str)>]) -> (Vec<u16>, String) {
    let _g = serial();
    let caller = UdpPeer::bind();
    let callees: Vec<UdpPeer> = answers.iter().map(|_| UdpPeer::bind()).collect();
    let port = free_udp_port();
    let ports: Vec<u16> = callees.iter().map(|c| c.port()).collect();
    let ser = Ser::start(&fork_cfg(port, &ports));
    let inv = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    )
    .header(
        "Contact",
        &format!("<sip:alice@127.0.0.1:{}>", caller.port()),
    );
    caller.send_to_port(&inv.build(), port);
    let mut peers: Vec<&UdpPeer> = vec![&caller];
    peers.extend(callees.iter());
    let t0 = Instant::now();
    let mut finals = Vec::new();
    // The INVITE each callee got, to answer 487 when it is cancelled.
    let mut invites: Vec<Option<Vec<u8>>> = vec![None; callees.len()];
    let mut serve = |h: &Heard, finals: &mut Vec<u16>| {
        if h.who == CALLER {
            if let Some(code) = status_of(&h.msg).filter(|c| *c >= 200) {
                finals.push(code);
                caller.send_to_port(&ack_for(&inv, &h.msg).build(), port);
                return true;
            }
            return false;
        }
        let callee = &callees[h.who - 1];
        match method_of(&h.msg).as_deref() {
            Some("INVITE") => {
                invites[h.who - 1] = Some(h.msg.clone());
                if let Some((code, reason)) = answers[h.who - 1] {
                    callee.send(&reply_to(&h.msg, code, reason, Some("t")), h.from);
                }
            }
            Some("CANCEL") => {
                // As a UAS does (RFC 3261 9.2): 200 for the CANCEL, 487
                // for the INVITE it ends.
                callee.send(&reply_to(&h.msg, 200, "OK", Some("t")), h.from);
                if let Some(i) = &invites[h.who - 1] {
                    callee.send(&reply_to(i, 487, "Request Terminated", Some("t")), h.from);
                }
            }
            _ => {}
        }
        false
    };
    // Long enough for the FR timer (2 s) of a silent branch, then some.
    let mut heard = pump(&peers, Duration::from_secs(6), |h| serve(h, &mut finals));
    // Then a little more: a second final for one INVITE, or the CANCEL a
    // 6xx triggers, would show here.
    heard.extend(pump(&peers, Duration::from_millis(500), |h| {
        serve(h, &mut finals);
        false
    }));
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    (finals, text)
}

#[test]
fn of_486_404_and_a_silent_branch_the_caller_gets_the_404() {
    let (finals, text) = finals_for(&[Some((486, "Busy Here")), Some((404, "Not Found")), None]);
    assert!(!finals.is_empty(), "no final reply:\n{text}");
    assert!(
        finals.iter().all(|c| *c == 404),
        "finals {finals:?}, want 404:\n{text}"
    );
}

#[test]
fn of_486_and_603_the_caller_gets_the_603() {
    let (finals, text) = finals_for(&[Some((486, "Busy Here")), Some((603, "Decline"))]);
    assert!(!finals.is_empty(), "no final reply:\n{text}");
    assert!(
        finals.iter().all(|c| *c == 603),
        "finals {finals:?}, want 603:\n{text}"
    );
}

#[test]
fn a_6xx_ends_the_call_while_another_branch_still_rings() {
    // 603 from one branch, the other only rings: the ringing branch is
    // cancelled at once (no waiting for the FR timer) and, although its
    // 487 is the lower code, the caller gets the 603.
    let (finals, text) = finals_for(&[Some((180, "Ringing")), Some((603, "Decline"))]);
    assert!(
        finals.iter().all(|c| *c == 603) && !finals.is_empty(),
        "finals {finals:?}:\n{text}"
    );
    assert!(
        text.contains("peer1 CANCEL"),
        "the ringing branch was not cancelled:\n{text}"
    );
}
