//! A transaction whose reply lock was taken over from a dead process: its
//! state may be any mix of the fields before and after an update. After
//! [`Tx::quarantine`] it starts no new work whatever that mix was, and its
//! next timer ends it.

use super::{Action, Actions, Branch, Phase, TimerCfg, Tx, MAX_BRANCHES};

/// A state with every field drawn at random: the worst a half-done update
/// can leave (each field is either side of the update, and either side
/// can be anything the machine ever stores).
fn torn(rng: &mut shm::TestRng) -> Tx {
    let mut r = |n: u64| rng.below(n);
    let mut tx = Tx::new(r(2) == 1, r(4) == 0, r(3) == 0);
    tx.phase = r(6) as u8;
    tx.nbranches = r(MAX_BRANCHES as u64 + 3) as u8;
    tx.picked = r(256) as u8;
    tx.uas_retr_step = r(256) as u8;
    tx.flags = r(1 << 12) as u32;
    tx.uas_status = [0, 100, 180, 200, 408, 487, 500][r(7) as usize];
    tx.round_start = r(MAX_BRANCHES as u64 + 2) as u8;
    tx.failed_round = r(MAX_BRANCHES as u64 + 2) as u8;
    tx.uas_retr_at = r(20_000);
    tx.uas_giveup_at = r(20_000);
    tx.wait_until = r(20_000);
    tx.born = r(20_000);
    for b in &mut tx.branches {
        *b = Branch {
            phase: r(5) as u8,
            flags: r(256) as u8,
            status: [0, 100, 180, 200, 408, 487, 503][r(7) as usize],
            retr_step: r(12) as u8,
            cancel_step: r(12) as u8,
            dropped: r(2) as u8,
            more: r(2) as u8,
            retr_at: r(20_000),
            fr_at: r(20_000),
            cancel_retr_at: r(20_000),
            cancel_fr_at: r(20_000),
        };
    }
    tx
}

/// New work a quarantined transaction must never start. (A CANCEL may
/// still go to a callee that answers a branch given up without one: it
/// stops a ringing nobody will pick up, as RFC 3261 §9.1 has it.)
fn starts_work(a: &Action) -> bool {
    matches!(
        a,
        Action::RetransmitRequest(_)
            | Action::RetransmitCancel(_)
            | Action::RunFailure { .. }
            | Action::Failover(_)
            | Action::RelayStored { .. }
            | Action::StoreLocalReply { .. }
            | Action::Unanswered(_)
    )
}

#[test]
fn a_quarantined_transaction_starts_nothing_and_ends_at_its_next_timer() {
    let cfg = TimerCfg::default();
    let mut rng = shm::TestRng::new(0x9ae7_0001);
    for case in 0..2000 {
        let mut tx = torn(&mut rng);
        let now = 10_000 + rng.below(10_000);
        tx.quarantine(now);
        assert_eq!(tx.phase(), Phase::Wait, "case {case}");
        assert_eq!(tx.next_deadline(), Some(now), "case {case}: {tx:?}");
        // What may still arrive before its timer fires: replies on any
        // branch, the caller's retransmission, CANCEL, ACK.
        let mut out = Actions::new();
        for _ in 0..rng.below(6) {
            let b = rng.below(MAX_BRANCHES as u64 + 2) as u8;
            match rng.below(4) {
                0 => tx.on_reply(
                    b,
                    [100, 180, 200, 486, 503][rng.index(5)],
                    now,
                    &cfg,
                    &mut out,
                ),
                1 => {
                    let _ = tx.on_request_retransmission(&mut out);
                }
                2 => {
                    let _ = tx.on_cancel(now, &cfg, &mut out);
                }
                _ => tx.on_ack(now, &cfg, &mut out),
            }
            assert!(
                !out.as_slice().iter().any(starts_work),
                "case {case}: {:?} after quarantine",
                out.as_slice()
            );
            out.clear();
        }
        tx.on_timer(now, &cfg, &mut out);
        assert!(
            out.as_slice().contains(&Action::Terminate),
            "case {case}: {:?}",
            out.as_slice()
        );
        assert!(!out.as_slice().iter().any(starts_work), "case {case}");
        assert_eq!(tx.phase(), Phase::Terminated, "case {case}");
        assert_eq!(tx.next_deadline(), None, "case {case}");
    }
}
