//! SER 2.1's per-branch and per-transaction controls, end to end:
//! `t_on_branch` with `branch_route` (edits and `drop` for one branch
//! only), `t_set_fr`/`t_reset_fr`, `t_set_retr`/`t_reset_retr` (before the
//! transaction exists and from a branch route), `t_any_replied` in an
//! onreply route, `t_set_auto_inv_100` and the maximum lifetime
//! (`max_inv_lifetime`, `t_set_max_lifetime`). Scripts are the 2.1
//! document's examples where it has one.

use crate::common::sip::{first_line, header_value, status_of, Request, UdpPeer};
use crate::common::tmkit::*;
use crate::common::*;
use std::time::{Duration, Instant};

/// A route forking to callee 0 as `sip:bob@…` and callee 1 as
/// `sip:123@…` (a numeric user, as the document's PSTN branch).
fn two_way(ports: &[u16], before: &str) -> String {
    format!(
        "route {{\n{before}    rewritehostport(\"127.0.0.1:{}\");\n    \
         append_branch(\"sip:123@127.0.0.1:{}\");\n    t_relay();\n}}\n",
        ports[0], ports[1]
    )
}

fn invites_to(c: &ForkCall, who: usize) -> Vec<&Heard> {
    c.heard
        .iter()
        .filter(|h| h.who == who && method_of(&h.msg).as_deref() == Some("INVITE"))
        .collect()
}

/// Example 23 of the 2.1 document: the numeric branch gets `P-Warn`, the
/// other does not; the caller still gets one final.
#[test]
fn branch_route_edits_only_its_branch() {
    let _g = serial();
    let c = fork_call(
        |port, ports| {
            let mut r = two_way(ports, "    t_on_branch(\"1\");\n");
            r.push_str(
                "branch_route[1] {\n    if (uri=~\"sip:[0-9]+\"){\n        \
                 append_hf(\"P-Warn: numeric uri\\r\\n\");\n    }\n}\n",
            );
            tm_cfg(port, 1, "loadmodule \"textops.so\"", &r)
        },
        &[Callee::Answers(486), Callee::Answers(404)],
        false,
    );
    let (to_bob, to_num) = (invites_to(&c, 1), invites_to(&c, 2));
    assert!(!to_bob.is_empty() && !to_num.is_empty(), "{}", c.text);
    assert!(
        to_num
            .iter()
            .all(|h| header_value(&h.msg, "P-Warn").as_deref() == Some("numeric uri")),
        "{}",
        c.text
    );
    assert!(
        to_bob
            .iter()
            .all(|h| header_value(&h.msg, "P-Warn").is_none()),
        "{}",
        c.text
    );
    assert_eq!(c.finals, [404], "{}", c.text);
}

/// `drop` in a branch route drops that branch alone.
#[test]
fn drop_in_a_branch_route_drops_that_branch_only() {
    let _g = serial();
    let c = fork_call(
        |port, ports| {
            let mut r = two_way(ports, "    t_on_branch(\"1\");\n");
            r.push_str("branch_route[1] {\n    if (uri=~\"sip:[0-9]+\") { drop; }\n}\n");
            tm_cfg(port, 1, "", &r)
        },
        &[Callee::Answers(486), Callee::Answers(404)],
        false,
    );
    assert!(!invites_to(&c, 1).is_empty(), "{}", c.text);
    assert!(invites_to(&c, 2).is_empty(), "{}", c.text);
    assert_eq!(c.finals, [486], "{}", c.text);
}

/// When the caller's final came, after the INVITE went out.
fn final_after(c: &ForkCall) -> Duration {
    c.heard
        .iter()
        .find(|h| h.who == 0 && status_of(&h.msg).is_some_and(|s| s >= 200))
        .map(|h| h.at.saturating_duration_since(c.t0))
        .unwrap_or_else(|| panic!("no final:\n{}", c.text))
}

/// FR 30 s and FR_INV 120 s in the config: only the script's timers can
/// end a call within the few seconds fork_call waits.
const LONG_TIMERS: &str = "modparam(\"tm\", \"fr_timer\", 30)\n\
    modparam(\"tm\", \"fr_inv_timer\", 120)\nmodparam(\"tm\", \"noisy_ctimer\", 1)";

/// `t_set_fr(5000, 2000)`: a callee that never answers fails after the
/// 2 s FR; one that rang after the 5 s FR_INV (the example).
#[test]
fn t_set_fr_sets_both_timeouts_of_the_transaction() {
    let _g = serial();
    let route = |port: u16, ports: &[u16]| {
        tm_cfg(
            port,
            1,
            LONG_TIMERS,
            &fork_route(&ports[..1], "    t_set_fr(5000, 2000);\n"),
        )
    };
    let silent = fork_call(route, &[Callee::Silent], false);
    assert_eq!(silent.finals, [408], "{}", silent.text);
    let t = final_after(&silent);
    assert!(
        t >= Duration::from_millis(1800) && t < Duration::from_millis(4000),
        "{t:?}\n{}",
        silent.text
    );

    let rang = fork_call(route, &[Callee::Rings], false);
    assert_eq!(rang.finals, [408], "{}", rang.text);
    let t = final_after(&rang);
    assert!(
        t >= Duration::from_millis(4800) && t < Duration::from_millis(6500),
        "{t:?}\n{}",
        rang.text
    );
}

/// Example 31's shape: `t_set_fr` in the branch route changes the timer of
/// the transaction on the fly; `t_reset_fr` there brings back the config's.
#[test]
fn t_set_fr_from_a_branch_route_and_t_reset_fr() {
    let _g = serial();
    let with = |branch: &'static str| {
        move |port: u16, ports: &[u16]| {
            let mut r = fork_route(
                &ports[..1],
                "    t_set_fr(10000);\n    t_on_branch(\"1\");\n",
            );
            r.push_str(&format!("branch_route[1] {{\n    {branch};\n}}\n"));
            tm_cfg(port, 1, "modparam(\"tm\", \"fr_timer\", 2)\nmodparam(\"tm\", \"fr_inv_timer\", 120)\nmodparam(\"tm\", \"noisy_ctimer\", 1)", &r)
        }
    };
    let c = fork_call(with("t_set_fr(1500, 1000)"), &[Callee::Rings], false);
    assert_eq!(c.finals, [408], "{}", c.text);
    let t = final_after(&c);
    assert!(
        t >= Duration::from_millis(1300) && t < Duration::from_millis(3000),
        "{t:?}\n{}",
        c.text
    );
    // Reset: FR_INV back to 120 s, so a ringing callee outlasts the wait.
    let c = fork_call(with("t_reset_fr()"), &[Callee::Rings], false);
    assert!(c.finals.is_empty(), "{}", c.text);
}

/// `t_set_retr(100, 400)`: the silent callee hears the INVITE again at
/// 100, 300, 700, 1100 … ms; with `t_reset_retr()` after it, at the
/// config's 500 and 1500 ms only.
#[test]
fn t_set_retr_sets_the_retransmission_intervals() {
    let _g = serial();
    let with = |calls: &'static str| {
        move |port: u16, ports: &[u16]| {
            tm_cfg(
                port,
                1,
                "modparam(\"tm\", \"fr_timer\", 2)",
                &fork_route(&ports[..1], calls),
            )
        }
    };
    let before_final = |c: &ForkCall| {
        let end = c.t0 + final_after(c);
        c.heard
            .iter()
            .filter(|h| h.who == 1 && h.at < end && method_of(&h.msg).as_deref() == Some("INVITE"))
            .count()
    };
    let fast = fork_call(
        with("    t_set_retr(100, 400);\n"),
        &[Callee::Silent],
        false,
    );
    assert_eq!(fast.finals, [408], "{}", fast.text);
    let n = before_final(&fast);
    assert!(n >= 5, "{n} INVITEs in 2 s\n{}", fast.text);
    let reset = fork_call(
        with("    t_set_retr(100, 400);\n    t_reset_retr();\n"),
        &[Callee::Silent],
        false,
    );
    let n = before_final(&reset);
    assert!((2..=3).contains(&n), "{n} INVITEs in 2 s\n{}", reset.text);
}

/// Example 36: the onreply route sees no earlier reply only for the first.
#[test]
fn t_any_replied_ignores_the_reply_being_handled() {
    let _g = serial();
    let c = fork_call(
        |port, ports| {
            let mut r = fork_route(&ports[..1], "    t_on_reply(\"1\");\n");
            r.push_str(
                "onreply_route[1] {\n    if (!t_any_replied()) {\n        \
                 log(1, \"ANY-REPLIED: first reply received\\n\");\n    } else {\n        \
                 log(1, \"ANY-REPLIED: a later reply\\n\");\n    }\n}\n",
            );
            tm_cfg(port, 1, "", &r)
        },
        &[Callee::RingsThen(486)],
        false,
    );
    assert_eq!(c.finals, [486], "{}", c.text);
    let log = c.ser.log();
    assert_eq!(
        log.matches("ANY-REPLIED: first reply received").count(),
        1,
        "{}",
        c.text
    );
    assert_eq!(
        log.matches("ANY-REPLIED: a later reply").count(),
        1,
        "{}",
        c.text
    );
}

/// `t_set_auto_inv_100(0)` keeps this INVITE's 100 Trying back; the
/// module default still sends it.
#[test]
fn t_set_auto_inv_100_switches_the_100_for_one_transaction() {
    let _g = serial();
    let trying = |before: &'static str| {
        let c = fork_call(
            move |port, ports| tm_cfg(port, 1, "", &fork_route(&ports[..1], before)),
            &[Callee::RingsThen(486)],
            false,
        );
        assert_eq!(c.finals, [486], "{}", c.text);
        c.heard
            .iter()
            .any(|h| h.who == 0 && status_of(&h.msg) == Some(100))
    };
    assert!(trying(""));
    assert!(!trying("    t_set_auto_inv_100(0);\n"));
}

/// A non-INVITE: `t_set_fr(0, 1500)` changes only FR (0 leaves FR_INV).
#[test]
fn t_set_fr_zero_leaves_a_timeout_unchanged() {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let ser = Ser::start(&tm_cfg(
        port,
        1,
        LONG_TIMERS,
        &fork_route(&[callee.port()], "    t_set_fr(0, 1500);\n"),
    ));
    let msg = Request::new(
        "MESSAGE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    );
    caller.send_to_port(&msg.build(), port);
    let t0 = Instant::now();
    let heard = pump(&[&caller, &callee], Duration::from_secs(5), |h| {
        h.who == 0 && status_of(&h.msg).is_some_and(|s| s >= 200)
    });
    let last = heard.last().map(|h| (status_of(&h.msg), h.at - t0));
    let text = format!("{}\n{}", describe(&heard, t0), ser.log());
    let Some((Some(408), t)) = last else {
        panic!(
            "no 408: {:?}\n{text}",
            heard.last().map(|h| first_line(&h.msg))
        )
    };
    assert!(
        t >= Duration::from_millis(1300) && t < Duration::from_millis(3000),
        "{t:?}\n{text}"
    );
}

/// Example 37's move: `t_reply` from an onreply route answers the caller
/// at once (from the transaction's request, not from the reply being
/// handled) and the ringing branch is cancelled.
#[test]
fn t_reply_in_an_onreply_route_answers_the_caller_and_cancels_the_branch() {
    let _g = serial();
    let c = fork_call(
        |port, ports| {
            let mut r = fork_route(&ports[..1], "    t_on_reply(\"1\");\n");
            r.push_str(
                "onreply_route[1] {\n    if (status==180) {\n        \
                 t_reply(\"486\", \"Busy\");\n    }\n}\n",
            );
            tm_cfg(port, 1, "", &r)
        },
        &[Callee::Rings],
        false,
    );
    assert_eq!(c.finals, [486], "{}", c.text);
    let to_caller: Vec<u16> = c
        .heard
        .iter()
        .filter(|h| h.who == 0)
        .filter_map(|h| status_of(&h.msg))
        .collect();
    assert!(!to_caller.contains(&180), "{to_caller:?}\n{}", c.text);
    let reply = c
        .heard
        .iter()
        .find(|h| h.who == 0 && status_of(&h.msg) == Some(486))
        .map(|h| h.msg.clone())
        .unwrap_or_default();
    assert!(is_reply_for(&reply, "INVITE"), "{}", c.text);
    assert!(
        c.heard
            .iter()
            .any(|h| h.who == 1 && method_of(&h.msg).as_deref() == Some("CANCEL")),
        "{}",
        c.text
    );
}

/// `max_inv_lifetime` (later 2.x) ends a call ringing under a long
/// FR_INV, even with `noisy_ctimer` off: the caller gets 408 and the
/// callee a CANCEL at the end of the life; `t_set_max_lifetime` sets it
/// for one transaction when the config has none.
#[test]
fn max_lifetime_ends_a_ringing_call_from_the_config_or_the_script() {
    let _g = serial();
    let quiet = "modparam(\"tm\", \"fr_inv_timer\", 120)\nmodparam(\"tm\", \"noisy_ctimer\", 0)";
    let from_cfg = |port: u16, ports: &[u16]| {
        tm_cfg(
            port,
            1,
            &format!("{quiet}\nmodparam(\"tm\", \"max_inv_lifetime\", 2000)"),
            &fork_route(&ports[..1], ""),
        )
    };
    let from_script = |port: u16, ports: &[u16]| {
        tm_cfg(
            port,
            1,
            quiet,
            &fork_route(&ports[..1], "    t_set_max_lifetime(1500, 0);\n"),
        )
    };
    for (route, life) in [
        (&from_cfg as &dyn Fn(u16, &[u16]) -> String, 2000),
        (&from_script, 1500),
    ] {
        let c = fork_call(route, &[Callee::Rings], false);
        assert_eq!(c.finals, [408], "{}", c.text);
        let t = final_after(&c);
        assert!(
            t >= Duration::from_millis(life - 200) && t < Duration::from_millis(life + 1500),
            "{t:?}\n{}",
            c.text
        );
        let cancelled = c
            .heard
            .iter()
            .any(|h| h.who == 1 && method_of(&h.msg).as_deref() == Some("CANCEL"));
        assert!(cancelled, "no CANCEL at the callee\n{}", c.text);
    }
}

/// `t_save_lumps()`: the branch a failure route adds carries the edits
/// made before it (X-A), not those after (X-B); the first branch has both.
#[test]
fn t_save_lumps_fixes_what_failure_route_branches_carry() {
    let _g = serial();
    let cfg = |port: u16, ports: &[u16]| {
        tm_cfg(
            port,
            1,
            "loadmodule \"/usr/local/lib/ser/modules/textops.so\"",
            &format!(
                "route {{\n    t_newtran();\n    append_hf(\"X-A: 1\\r\\n\");\n    \
                 t_save_lumps();\n    append_hf(\"X-B: 2\\r\\n\");\n    \
                 t_on_failure(\"1\");\n    rewritehostport(\"127.0.0.1:{}\");\n    t_relay();\n}}\n\
                 failure_route[1] {{\n    rewritehostport(\"127.0.0.1:{}\");\n    append_branch();\n    t_relay();\n}}\n",
                ports[0], ports[1]
            ),
        )
    };
    let c = fork_call(cfg, &[Callee::Answers(486), Callee::Answers(200)], false);
    assert_eq!(c.finals, [200], "{}", c.text);
    let has = |who: usize, h: &str| {
        invites_to(&c, who)
            .first()
            .and_then(|m| header_value(&m.msg, h))
            .is_some()
    };
    assert!(has(1, "X-A") && has(1, "X-B"), "{}", c.text);
    assert!(has(2, "X-A") && !has(2, "X-B"), "{}", c.text);
}

/// `t_drop_replies()` in a failure route: the 404 of the failed branch is
/// no longer picked, so the caller gets the 480 of the branch the route
/// added (404 would win otherwise); without it, the 404.
#[test]
fn t_drop_replies_lets_the_new_branch_decide() {
    let _g = serial();
    for (drop, want) in [("t_drop_replies();", 480), ("", 404)] {
        let cfg = |port: u16, ports: &[u16]| {
            tm_cfg(
                port,
                1,
                "",
                &format!(
                    "route {{\n    t_on_failure(\"1\");\n    rewritehostport(\"127.0.0.1:{}\");\n    t_relay();\n}}\n\
                     failure_route[1] {{\n    {drop}\n    rewritehostport(\"127.0.0.1:{}\");\n    append_branch();\n    t_relay();\n}}\n",
                    ports[0], ports[1]
                ),
            )
        };
        let c = fork_call(cfg, &[Callee::Answers(404), Callee::Answers(480)], false);
        assert_eq!(c.finals, [want], "{drop}\n{}", c.text);
    }
}
