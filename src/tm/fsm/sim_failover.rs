//! Simulator scenarios of DNS failover (`use_dns_failover`: a branch
//! marked as having more addresses tries the next one on a 503 or a
//! timeout, before any pick or failure route) and of branches that wait,
//! blind, for their next hop's address.

use super::sim::Sim;
use super::{bflags, flags, Action, Phase, Tx};
use Action::*;

/// An INVITE with one branch whose next hop has more addresses.
fn with_more(failure_route: bool) -> Sim {
    let mut tx = Tx::new(true, false, false);
    if failure_route {
        tx.flags |= flags::FAILURE_ROUTE;
    }
    let mut s = Sim::with(tx);
    s.branch();
    s.tx.branches[0].more = 1;
    s
}

#[test]
fn a_503_fails_over_before_the_failure_route() {
    let mut s = with_more(true);
    assert_eq!(
        s.at(100).reply(0, 503),
        [SendAck(0), RunOnReply(0), StoreReply(0), Failover(0)]
    );
    // Its addresses went with the request; no pick while it is added.
    assert_eq!(s.tx.branches[0].more, 0);
    assert!(s.tx.has(flags::FAILOVER) && s.tx.has(flags::FAILURE_ROUTE));
    assert_eq!(s.branch(), 1);
    s.tx.failover_done(s.now, &s.cfg, &mut super::Actions::new());
    assert!(!s.tx.has(flags::FAILOVER));
    // The new branch is answered like any other.
    assert_eq!(
        s.at(200).reply(1, 200),
        [RunOnReply(1), RelayReceived(1), Completed { code: 200 }]
    );
    assert_eq!(s.phase(), Phase::Wait);
}

#[test]
fn a_timeout_fails_over_and_the_last_failure_reaches_the_failure_route() {
    let mut s = with_more(true);
    let fired = s.run_until(30_000);
    assert_eq!(fired.last(), Some(&(30_000, Failover(0))));
    assert_eq!(s.branch(), 1);
    let mut out = super::Actions::new();
    s.tx.failover_done(s.now, &s.cfg, &mut out);
    assert!(out.as_slice().is_empty(), "the new branch is still going");
    // No more addresses: its 503 goes to the failure route as usual.
    assert_eq!(
        s.at(31_000).reply(1, 503).last(),
        Some(&RunFailure { picked: 0 })
    );
}

#[test]
fn no_failover_on_other_codes_after_cancel_or_when_it_could_not_add() {
    let mut s = with_more(false);
    assert_eq!(
        s.at(100).reply(0, 486).last(),
        Some(&Completed { code: 486 })
    );
    // CANCELed: the caller wants no more tries.
    let mut s = with_more(false);
    s.at(100).reply(0, 180);
    s.cancel();
    assert!(!s.at(200).reply(0, 503).contains(&Failover(0)));
    // The driver found no address it could use: the pick comes now.
    let mut s = with_more(false);
    s.at(100).reply(0, 503);
    let mut out = super::Actions::new();
    s.tx.failover_done(s.now, &s.cfg, &mut out);
    assert_eq!(
        out.as_slice(),
        [
            RelayStored {
                branch: 0,
                as_code: 500
            },
            Completed { code: 500 }
        ]
    );
}

#[test]
fn a_waiting_branch_is_silent_until_sent_then_retransmitted() {
    let mut s = Sim::new(true);
    let b = s.tx.add_branch(0, &s.cfg, false, true).unwrap();
    assert_eq!(s.tx.branches[0].retr_at, 0);
    s.at(700);
    assert!(s.times(RetransmitRequest(b)).is_empty());
    s.tx.branch_sent(b, s.now, &s.cfg);
    assert_eq!(s.tx.branches[0].flags & bflags::BLIND, 0);
    s.at(1200 + 1);
    assert_eq!(s.times(RetransmitRequest(b)), [1200]);
    // Sending it twice changes nothing.
    s.tx.branch_sent(b, s.now, &s.cfg);
    s.at(2201);
    assert_eq!(s.times(RetransmitRequest(b)), [1200, 2200]);
}

#[test]
fn a_branch_whose_name_did_not_resolve_ends_with_a_local_final() {
    let mut s = Sim::new(true);
    s.tx.add_branch(0, &s.cfg, false, true).unwrap();
    let mut out = super::Actions::new();
    s.tx.branch_failed(0, 478, 10, &s.cfg, &mut out);
    assert_eq!(
        out.as_slice(),
        [
            StoreLocalReply {
                branch: 0,
                code: 478
            },
            RelayStored {
                branch: 0,
                as_code: 478
            },
            Completed { code: 478 }
        ]
    );
    assert_ne!(s.tx.branches[0].flags & bflags::LOCAL_FINAL, 0);
    // A final branch is not failed again.
    out.clear();
    s.tx.branch_failed(0, 503, 20, &s.cfg, &mut out);
    assert!(out.as_slice().is_empty());
}
