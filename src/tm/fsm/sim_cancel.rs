//! `cancel_b_method`: cancelling branches that never answered, in each of
//! SER 2.1's three ways, and where tm cancels (upstream CANCEL, a 2xx or
//! 6xx on another branch, FR expiry).

use super::sim::Sim;
use super::{bflags, Action, Phase, UnrepliedCancel};
use Action::*;

fn sim(method: UnrepliedCancel) -> Sim {
    let mut s = Sim::new(true);
    s.cfg.cancel_b_method = method;
    s
}

fn local_487(branch: u8) -> Action {
    StoreLocalReply { branch, code: 487 }
}

fn relayed_487(branch: u8) -> [Action; 2] {
    [
        RelayStored {
            branch,
            as_code: 487,
        },
        Completed { code: 487 },
    ]
}

#[test]
fn method_0_ends_an_unreplied_branch_at_once_with_a_local_487() {
    let mut s = sim(UnrepliedCancel::Fake487);
    s.local_reply(100);
    s.branch();
    let (n, acts) = s.at(700).cancel();
    assert_eq!(n, 0, "nothing is sent to a callee that never answered");
    let mut want = vec![local_487(0)];
    want.extend(relayed_487(0));
    assert_eq!(acts, want);
    assert_eq!(s.phase(), Phase::Completed);
    assert_eq!(
        s.tx.branches[0].flags & bflags::LOCAL_FINAL,
        0,
        "no timeout"
    );
    s.run_until(40_000);
    assert_eq!(
        s.times(RetransmitRequest(0)),
        [500],
        "stopped at the CANCEL"
    );
    assert!(s.times(SendCancel(0)).is_empty());
}

#[test]
fn method_0_cancels_a_callee_that_rings_after_all() {
    let mut s = sim(UnrepliedCancel::Fake487);
    s.branch();
    s.at(100).cancel();
    // A provisional shows the callee is alive: it gets its CANCEL now,
    // and nothing more goes upstream.
    assert_eq!(s.at(900).reply(0, 180), [SendCancel(0)]);
    assert_eq!(s.reply(0, 180), [], "one CANCEL only");
    assert_eq!(s.reply(0, 487), [SendAck(0)]);
    assert_eq!(s.tx.uas_status, 487);
}

#[test]
fn method_0_waits_for_the_ringing_branch_of_a_fork() {
    let mut s = sim(UnrepliedCancel::Fake487);
    s.branch();
    s.branch();
    s.at(300).reply(0, 180);
    let (n, acts) = s.at(1000).cancel();
    assert_eq!(
        (n, acts.as_slice()),
        (1, &[SendCancel(0), local_487(1)][..])
    );
    assert_eq!(
        s.at(1100).reply(0, 487),
        [
            SendAck(0),
            RunOnReply(0),
            StoreReply(0),
            RelayStored {
                branch: 0,
                as_code: 487
            },
            Completed { code: 487 }
        ]
    );
}

#[test]
fn method_0_applies_to_a_2xx_and_a_6xx_on_another_branch() {
    let mut s = sim(UnrepliedCancel::Fake487);
    s.branch();
    s.branch();
    assert_eq!(
        s.at(300).reply(0, 200),
        [
            RunOnReply(0),
            RelayReceived(0),
            Completed { code: 200 },
            local_487(1)
        ]
    );
    let mut s = sim(UnrepliedCancel::Fake487);
    s.branch();
    s.branch();
    assert_eq!(
        s.at(300).reply(0, 603),
        [
            SendAck(0),
            RunOnReply(0),
            StoreReply(0),
            local_487(1),
            RelayStored {
                branch: 0,
                as_code: 603
            },
            Completed { code: 603 }
        ]
    );
}

#[test]
fn method_1_keeps_retransmitting_and_cancels_on_the_first_provisional() {
    let mut s = sim(UnrepliedCancel::OnProvisional);
    s.branch();
    let (n, acts) = s.at(700).cancel();
    assert_eq!((n, acts.as_slice()), (0, &[][..]));
    s.run_until(2000);
    assert_eq!(s.times(RetransmitRequest(0)), [500, 1500]);
    assert_eq!(
        s.reply(0, 180),
        [RunOnReply(0), SendCancel(0), RelayReceived(0)]
    );
    let mut want = vec![SendAck(0), RunOnReply(0), StoreReply(0)];
    want.extend(relayed_487(0));
    assert_eq!(s.at(2100).reply(0, 487), want);
}

#[test]
fn method_1_gives_the_caller_487_not_408_when_the_branch_times_out() {
    let mut s = sim(UnrepliedCancel::OnProvisional);
    s.branch();
    s.at(700).cancel();
    let acts: Vec<Action> = s.run_until(40_000).into_iter().map(|(_, a)| a).collect();
    let at_fr: Vec<Action> = acts
        .into_iter()
        .filter(|a| !matches!(a, RetransmitRequest(_) | ResendUasReply))
        .collect();
    // A branch that never answered feeds the blacklist, cancelled or not
    // (blst_methods_add), before its local 487.
    let mut want = vec![Unanswered(0), local_487(0)];
    want.extend(relayed_487(0));
    assert_eq!(at_fr, want);
    assert_eq!(s.times(Completed { code: 487 }), [30_000]);
    assert!(s.times(SendCancel(0)).is_empty());
    assert_ne!(s.tx.branches[0].flags & bflags::LOCAL_FINAL, 0, "a timeout");
}

#[test]
fn method_2_sends_the_cancel_at_once_and_stops_the_request() {
    let mut s = sim(UnrepliedCancel::Immediate);
    s.branch();
    let (n, acts) = s.at(700).cancel();
    assert_eq!((n, acts.as_slice()), (1, &[SendCancel(0)][..]));
    s.run_until(3000);
    assert_eq!(s.times(RetransmitRequest(0)), [500]);
    assert_eq!(s.times(RetransmitCancel(0)), [1200, 2200]);
    s.cancel_reply(0);
    let mut want = vec![SendAck(0), RunOnReply(0), StoreReply(0)];
    want.extend(relayed_487(0));
    assert_eq!(s.at(3100).reply(0, 487), want);
}

#[test]
fn method_2_times_out_as_487_when_the_callee_stays_silent() {
    let mut s = sim(UnrepliedCancel::Immediate);
    s.branch();
    s.at(700).cancel();
    s.run_until(40_000);
    assert_eq!(s.times(local_487(0)), [30_000]);
    assert_eq!(s.times(Completed { code: 487 }), [30_000]);
    assert!(s.times(Completed { code: 408 }).is_empty());
}

#[test]
fn a_cancelled_ringing_branch_that_never_answers_is_not_silent() {
    // Without the CANCEL this lone ringing branch would end quietly
    // (noisy_ctimer=0); the caller who CANCELed is owed its 487.
    let mut s = sim(UnrepliedCancel::Fake487);
    s.branch();
    s.at(1000).reply(0, 180);
    s.at(2000).cancel();
    s.run_until(200_000);
    assert_eq!(s.times(local_487(0)), [121_000]);
    assert_eq!(s.times(Completed { code: 487 }), [121_000]);
}

#[test]
fn an_fr_timeout_that_was_not_cancelled_stays_408() {
    for m in [
        UnrepliedCancel::Fake487,
        UnrepliedCancel::OnProvisional,
        UnrepliedCancel::Immediate,
    ] {
        let mut s = sim(m);
        s.branch();
        s.run_until(40_000);
        assert_eq!(s.times(Completed { code: 408 }), [30_000], "{m:?}");
    }
}

#[test]
fn a_non_invite_is_never_ended_or_cancelled_early() {
    for m in [UnrepliedCancel::Fake487, UnrepliedCancel::Immediate] {
        let mut s = Sim::new(false);
        s.cfg.cancel_b_method = m;
        s.branch();
        let (n, acts) = s.at(100).cancel();
        assert_eq!((n, acts.as_slice()), (0, &[][..]), "{m:?}");
        assert_eq!(s.phase(), Phase::Proceeding, "{m:?}");
    }
}
