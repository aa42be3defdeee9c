//! Which final reply the caller gets when several branches fail (RFC 3261
//! 16.7 step 6, SER's t_pick_branch): the lowest status code among the
//! branches' finals, a branch that never answered counting as 408 — but a
//! 6xx ends the search at once and is what the caller gets. Checked
//! end to end, because a proxy that picked the worst reply passed every
//! other black-box test.

use crate::common::tmkit::*;
use crate::common::*;

/// The final codes the caller got from a proxy forking to `callees`, FR
/// timer 2 s so a silent branch ends in time; and what was heard.
fn finals_for(callees: &[Callee]) -> (Vec<u16>, String) {
    let _g = serial();
    let cfg = |port, ports: &[u16]| {
        tm_cfg(
            port,
            2,
            "modparam(\"tm\", \"fr_timer\", 2)",
            &fork_route(ports, ""),
        )
    };
    let call = fork_call(cfg, callees, false);
    (call.finals, call.text)
}

#[test]
fn of_486_404_and_a_silent_branch_the_caller_gets_the_404() {
    let (finals, text) = finals_for(&[Callee::Answers(486), Callee::Answers(404), Callee::Silent]);
    assert!(!finals.is_empty(), "no final reply:\n{text}");
    assert!(
        finals.iter().all(|c| *c == 404),
        "finals {finals:?}, want 404:\n{text}"
    );
}

#[test]
fn of_486_and_603_the_caller_gets_the_603() {
    let (finals, text) = finals_for(&[Callee::Answers(486), Callee::Answers(603)]);
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
    let (finals, text) = finals_for(&[Callee::Rings, Callee::Answers(603)]);
    assert!(
        finals.iter().all(|c| *c == 603) && !finals.is_empty(),
        "finals {finals:?}:\n{text}"
    );
    assert!(
        text.contains("peer1 CANCEL"),
        "the ringing branch was not cancelled:\n{text}"
    );
}
