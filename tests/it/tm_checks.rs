//! SER 2.1's branch checks in a failure route, end to end: which branch
//! failed how (`t_branch_timeout`, `t_branch_replied`), whether any did
//! (`t_any_timeout`), which codes the branches ended with
//! (`t_grep_status`), and whether the caller cancelled (`t_is_canceled`).
//! The failure route answers with a code that names what it saw.

use crate::common::tmkit::*;
use crate::common::*;

/// Forks to the callees (the first through the R-URI); FR and FR-INV at
/// 2 s so silent branches end in time.
fn checks_cfg(port: u16, callees: &[u16]) -> String {
    let mut route = fork_route(callees, "    t_on_failure(\"1\");\n");
    route.push_str(
        r#"failure_route[1] {
    if (t_is_canceled()) {
        log(1, "FAILURE-ROUTE: canceled\n");
        break;
    };
    if (t_branch_timeout()) {
        if (t_branch_replied()) {
            t_reply("591", "timeout after a reply");
        } else {
            t_reply("592", "timeout, never answered");
        };
        break;
    };
    if (t_any_timeout()) {
        t_reply("595", "another branch timed out");
        break;
    };
    if (t_grep_status("486")) {
        if (t_branch_replied()) {
            t_reply("596", "busy after a provisional");
        } else {
            t_reply("593", "busy seen");
        };
        break;
    };
    t_reply("594", "other failure");
}
"#,
    );
    tm_cfg(
        port,
        1,
        "modparam(\"tm\", \"fr_timer\", 2)\nmodparam(\"tm\", \"fr_inv_timer\", 2)",
        &route,
    )
}

/// One call with the checking failure route; the caller's first final.
fn call(callees: &[Callee], cancel_after_ring: bool) -> (Option<u16>, String, Ser) {
    let c = fork_call(checks_cfg, callees, cancel_after_ring);
    (c.finals.first().copied(), c.text, c.ser)
}

#[test]
fn branch_checks_tell_how_the_branches_failed() {
    let _g = serial();
    for (callees, want) in [
        (vec![Callee::Silent], 592),
        (vec![Callee::Rings], 591),
        (vec![Callee::Answers(486)], 593),
        (vec![Callee::RingsThen(486)], 596),
        (vec![Callee::Answers(404)], 594),
        // The 404 is picked; the other branch timed out.
        (vec![Callee::Answers(404), Callee::Silent], 595),
    ] {
        let (code, text, _ser) = call(&callees, false);
        assert_eq!(code, Some(want), "{text}");
    }
}

#[test]
fn t_is_canceled_is_true_only_for_a_cancelled_call() {
    let _g = serial();
    let (code, text, ser) = call(&[Callee::Rings], true);
    assert_eq!(code, Some(487), "{text}");
    assert!(ser.log().contains("FAILURE-ROUTE: canceled"), "{text}");
    let (code, text, ser) = call(&[Callee::Answers(486)], false);
    assert_eq!(code, Some(593), "{text}");
    assert!(!ser.log().contains("FAILURE-ROUTE: canceled"), "{text}");
}

/// Where each check loads is in `tm_routes`' table; here, the argument
/// `t_grep_status` takes is a status code.
#[test]
fn t_grep_status_wants_a_status_code() {
    let dir = TestDir::new();
    for (arg, ok) in [("\"486\"", true), ("\"busy\"", false), ("\"99\"", false)] {
        let cfg = format!(
            "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nroute {{ if (t_grep_status({arg})) {{ drop; }}; }}\n"
        );
        let f = server::check_config(&dir.write("c.cfg", cfg.as_bytes()));
        assert_eq!(f.code() == Some(0), ok, "{arg}\n{}", f.stderr);
    }
}

/// SER 2.1's tm parameters (and later releases' lifetimes) are
/// type-checked by `ser -c`, a bad value refused naming the line;
/// `reparse_invite=0` is refused by design.
#[test]
fn tm_2_1_parameters_are_checked_at_load() {
    let dir = TestDir::new();
    for (param, ok) in [
        // Implemented (tm_aggregate, tm_cancel, tm_blacklist), still type-checked.
        ("\"aggregate_challenges\", 1", true),
        ("\"aggregate_challenges\", \"on\"", false),
        ("\"reparse_invite\", 0", false),
        ("\"reparse_invite\", 1", true),
        ("\"cancel_b_method\", 2", true),
        ("\"cancel_b_method\", 3", false),
        ("\"ac_extra_hdrs\", \"X-\"", true),
        ("\"ac_extra_hdrs\", 5", false),
        ("\"blst_503\", 1", true),
        ("\"blst_503_min_timeout\", -1", false),
        ("\"max_inv_lifetime\", 180", true),
        ("\"max_inv_lifetime\", -1", false),
        ("\"max_noninv_lifetime\", \"x\"", false),
    ] {
        let cfg = format!("loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nmodparam(\"tm\", {param})\nroute {{ drop; }}\n");
        let f = server::check_config(&dir.write("p.cfg", cfg.as_bytes()));
        assert_eq!(f.code() == Some(0), ok, "{param}\n{}", f.stderr);
        if !ok {
            assert!(f.stderr.contains("p.cfg:3:"), "{param}: {}", f.stderr);
        }
    }
}
