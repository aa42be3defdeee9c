//! `Action::Unanswered`: an FR expiry on a branch that heard nothing at
//! all is what SER 2.1 blacklists the next hop for; one that heard even a
//! 100, or never sent anything (blind), is not.

use super::sim::Sim;
use super::Action::*;
use super::Tx;

#[test]
fn only_a_branch_that_heard_nothing_is_unanswered() {
    // Two INVITE branches: one silent, one that sent 100 and stopped.
    let mut s = Sim::new(true);
    s.cfg.noisy_ctimer = true;
    s.branch();
    s.branch();
    s.at(200).reply(1, 100);
    let acts = s.run_until(200_000);
    let unanswered: Vec<_> = acts
        .iter()
        .filter(|(_, a)| matches!(a, Unanswered(_)))
        .collect();
    assert_eq!(unanswered, [&(30_000, Unanswered(0))], "{acts:?}");
}

#[test]
fn a_non_invite_timeout_is_unanswered_too_and_a_blind_branch_never() {
    // The method filter (`blst_methods_add`) is the driver's: the machine
    // reports every silent branch.
    let mut s = Sim::new(false);
    s.branch();
    let acts = s.run_until(40_000);
    assert!(acts.iter().any(|(_, a)| *a == Unanswered(0)), "{acts:?}");

    let mut s = Sim::with(Tx::new(true, false, false));
    s.tx.add_branch(0, &s.cfg.clone(), false, true)
        .expect("blind branch");
    let acts = s.run_until(200_000);
    assert!(
        !acts.iter().any(|(_, a)| matches!(a, Unanswered(_))),
        "{acts:?}"
    );
}
