//! Simulator scenarios of forking, the failure route, best-final choice
//! and CANCEL (RFC 3261 §16.7, §9.1; SER tm failure_route).

use super::sim::Sim;
use super::{bflags, flags, Action, Phase, Tx, TxError};
use Action::*;

#[test]
fn serial_forking_through_the_failure_route() {
    let mut tx = Tx::new(true, false, false);
    tx.flags |= flags::FAILURE_ROUTE;
    let mut s = Sim::with(tx);
    s.local_reply(100);
    s.branch();
    assert_eq!(
        s.at(1000).reply(0, 486),
        [
            SendAck(0),
            RunOnReply(0),
            StoreReply(0),
            RunFailure { picked: 0 }
        ]
    );
    assert!(s.tx.has(flags::IN_FAILURE) && !s.tx.has(flags::FAILURE_ROUTE));
    assert_eq!(s.branch(), 1);
    assert!(s.after_failure(true, false).is_empty());
    assert!(!s.tx.has(flags::IN_FAILURE));
    assert_eq!(s.at(2000).reply(1, 180), [RunOnReply(1), RelayReceived(1)]);
    assert_eq!(
        s.at(3000).reply(1, 200),
        [RunOnReply(1), RelayReceived(1), Completed { code: 200 }]
    );
    assert_eq!(s.tx.picked, 1);
    assert_eq!(s.phase(), Phase::Wait);
    assert_eq!(
        s.tx.add_branch(s.now, &s.cfg, false, false),
        Err(TxError::AlreadyFinal)
    );
}

#[test]
fn failure_route_that_neither_adds_nor_replies_relays_the_pick() {
    let mut tx = Tx::new(true, false, false);
    tx.flags |= flags::FAILURE_ROUTE;
    let mut s = Sim::with(tx);
    s.branch();
    s.branch();
    s.at(100).reply(0, 486);
    assert_eq!(
        s.at(200).reply(1, 404).last(),
        Some(&RunFailure { picked: 1 })
    );
    assert_eq!(
        s.after_failure(false, false),
        [
            RelayStored {
                branch: 1,
                as_code: 404
            },
            Completed { code: 404 }
        ]
    );
    assert_eq!(s.phase(), Phase::Completed);
}

#[test]
fn failure_route_that_replies_itself() {
    let mut tx = Tx::new(true, false, false);
    tx.flags |= flags::FAILURE_ROUTE;
    let mut s = Sim::with(tx);
    s.branch();
    s.run_until(30_000);
    assert_eq!(s.times(RunFailure { picked: 0 }), [30_000]);
    assert_eq!(s.local_reply(480), [Completed { code: 480 }]);
    assert!(s.after_failure(false, true).is_empty());
    assert_eq!(s.tx.uas_status, 480);
    assert_eq!(s.phase(), Phase::Completed);
}

#[test]
fn parallel_forking_relays_the_winner() {
    let mut s = Sim::new(true);
    s.branch();
    s.branch();
    assert_eq!(
        s.at(1000).reply(0, 486),
        [SendAck(0), RunOnReply(0), StoreReply(0)]
    );
    assert_eq!(s.at(1500).reply(1, 180), [RunOnReply(1), RelayReceived(1)]);
    assert_eq!(
        s.at(3000).reply(1, 200),
        [RunOnReply(1), RelayReceived(1), Completed { code: 200 }]
    );
    assert_eq!(s.phase(), Phase::Wait);
}

#[test]
fn a_2xx_cancels_ringing_branches_and_defers_the_calling_one() {
    let mut s = Sim::new(true);
    for _ in 0..3 {
        s.branch();
    }
    s.at(1000).reply(0, 180);
    assert_eq!(
        s.at(2000).reply(2, 200),
        [
            RunOnReply(2),
            RelayReceived(2),
            Completed { code: 200 },
            SendCancel(0)
        ]
    );
    assert!(s.tx.branches[1].flags & bflags::CANCEL_PENDING != 0);
    // The calling branch stops retransmitting (the final went upstream)...
    s.run_until(2400);
    assert_eq!(s.times(RetransmitRequest(1)), [500, 1500]);
    // ...and sends its CANCEL when it finally rings (RFC 9.1); not relayed.
    assert_eq!(s.at(2400).reply(1, 180), [RunOnReply(1), SendCancel(1)]);
    assert_eq!(
        s.at(2600).reply(1, 487),
        [SendAck(1), RunOnReply(1), StoreReply(1)]
    );
    assert_eq!(s.reply(0, 487), [SendAck(0), RunOnReply(0), StoreReply(0)]);
}

#[test]
fn best_final_through_the_machine() {
    let cases: &[(&[u16], u8, u16)] = &[
        (&[486, 404], 1, 404),
        (&[503], 0, 500),
        (&[407, 401, 480], 1, 401),
        (&[302, 486], 0, 302),
    ];
    for &(codes, branch, as_code) in cases {
        let mut s = Sim::new(true);
        for _ in codes {
            s.branch();
        }
        for (b, &c) in codes.iter().enumerate() {
            s.reply(b as u8, c);
        }
        assert_eq!(s.times(RelayStored { branch, as_code }), [0], "{codes:?}");
        assert_eq!(s.times(Completed { code: as_code }), [0], "{codes:?}");
    }
}

#[test]
fn a_6xx_cancels_the_others_and_wins() {
    let mut s = Sim::new(true);
    for _ in 0..3 {
        s.branch();
    }
    s.reply(0, 486);
    s.at(100).reply(2, 180);
    assert_eq!(
        s.at(200).reply(1, 603),
        [SendAck(1), RunOnReply(1), StoreReply(1), SendCancel(2)]
    );
    assert_eq!(
        s.at(300).reply(2, 487),
        [
            SendAck(2),
            RunOnReply(2),
            StoreReply(2),
            RelayStored {
                branch: 1,
                as_code: 603
            },
            Completed { code: 603 }
        ]
    );
}

#[test]
fn upstream_cancel_while_ringing() {
    let mut s = Sim::new(true);
    s.branch();
    s.branch();
    s.at(1000).reply(0, 180);
    let (n, acts) = s.at(2000).cancel();
    assert_eq!((n, acts.as_slice()), (1, &[SendCancel(0)][..]));
    assert!(s.tx.has(flags::CANCELED));
    s.run_until(4000);
    s.cancel_reply(0);
    s.run_until(4100);
    assert_eq!(s.times(RetransmitCancel(0)), [2500, 3500]);
    assert_eq!(s.reply(0, 487), [SendAck(0), RunOnReply(0), StoreReply(0)]);
    assert_eq!(
        s.at(5000).reply(1, 180),
        [RunOnReply(1), SendCancel(1), RelayReceived(1)]
    );
    assert_eq!(
        s.at(5100).reply(1, 487),
        [
            SendAck(1),
            RunOnReply(1),
            StoreReply(1),
            RelayStored {
                branch: 0,
                as_code: 487
            },
            Completed { code: 487 }
        ]
    );
    s.run_until(100_000);
    assert_eq!(s.times(RetransmitCancel(0)), [2500, 3500]);
    assert_eq!(s.times(RetransmitCancel(1)).first(), Some(&5500));
}

#[test]
fn cancel_gives_up_silently_after_fr() {
    let mut s = Sim::new(true);
    s.branch();
    s.at(1000).reply(0, 180);
    s.at(2000).cancel();
    s.run_until(40_000);
    let last = *s.times(RetransmitCancel(0)).last().unwrap();
    assert!(
        last < 32_000,
        "CANCEL stops at its fr (32000), last at {last}"
    );
    assert!(s.tx.branches[0].flags & bflags::CANCEL_DONE != 0);
}

#[test]
fn late_2xx_is_relayed_and_duplicates_only_acked() {
    let mut s = Sim::new(true);
    s.branch();
    s.branch();
    s.at(500).reply(1, 180);
    assert_eq!(
        s.at(1000).local_reply(486),
        [Completed { code: 486 }, SendCancel(1)]
    );
    assert_eq!(s.phase(), Phase::Completed);
    assert_eq!(s.at(1100).reply(1, 200), [RunOnReply(1), RelayReceived(1)]);
    assert_eq!(
        s.reply(1, 200),
        [RunOnReply(1), RelayReceived(1)],
        "2xx retransmission"
    );
    assert_eq!(s.reply(0, 486), [SendAck(0), RunOnReply(0), StoreReply(0)]);
    assert_eq!(
        s.reply(0, 486),
        [SendAck(0)],
        "retransmitted final on a final branch"
    );
    assert_eq!(s.tx.uas_status, 486);
}

/// `t_drop_replies()`: the failed round's 404 no longer beats the 480 of
/// the branch the failure route added; `t_drop_replies("l")` in a second
/// failure route drops only that round, so the first round's 404 wins;
/// with nothing added, the dropped pick still answers the caller.
#[test]
fn drop_replies_all_or_the_last_round() {
    let fail = |s: &mut Sim, b: u8, code: u16| {
        s.tx.flags |= flags::FAILURE_ROUTE;
        let acts = s.reply(b, code);
        assert!(matches!(acts.last(), Some(RunFailure { .. })), "{acts:?}");
    };
    let mut s = Sim::new(true);
    s.branch();
    fail(&mut s, 0, 404);
    s.tx.drop_replies(true);
    s.branch();
    s.after_failure(true, false);
    assert_eq!(
        s.reply(1, 480)[3..],
        [
            RelayStored {
                branch: 1,
                as_code: 480
            },
            Completed { code: 480 }
        ]
    );

    let mut s = Sim::new(true);
    s.branch();
    fail(&mut s, 0, 404);
    s.branch();
    s.after_failure(true, false);
    fail(&mut s, 1, 403);
    s.tx.drop_replies(false);
    s.branch();
    s.after_failure(true, false);
    assert_eq!(
        s.reply(2, 480)[3..],
        [
            RelayStored {
                branch: 0,
                as_code: 404
            },
            Completed { code: 404 }
        ]
    );

    let mut s = Sim::new(true);
    s.branch();
    fail(&mut s, 0, 486);
    s.tx.drop_replies(true);
    assert_eq!(
        s.after_failure(false, false),
        [
            RelayStored {
                branch: 0,
                as_code: 486
            },
            Completed { code: 486 }
        ]
    );
}
