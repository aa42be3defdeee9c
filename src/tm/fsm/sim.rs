//! A deterministic simulator: virtual time, one [`Tx`], every action
//! recorded with the time it was produced. Timers fire exactly at each
//! [`Tx::next_deadline`], so retransmission schedules can be checked to
//! the millisecond.

use super::{flags, Action, Actions, Phase, TimerCfg, Tx, UnrepliedCancel};
use Action::*;

pub(super) struct Sim {
    pub tx: Tx,
    pub cfg: TimerCfg,
    pub now: u64,
    pub log: Vec<(u64, Action)>,
    out: Actions,
}

impl Sim {
    pub(super) fn new(invite: bool) -> Sim {
        Sim::with(Tx::new(invite, false, false))
    }

    pub(super) fn with(tx: Tx) -> Sim {
        // The scenarios here hold unreplied branches' CANCELs until a
        // provisional (cancel_b_method 1); sim_cancel covers all three.
        let cfg = TimerCfg {
            fr: 30_000,
            cancel_b_method: UnrepliedCancel::OnProvisional,
            ..TimerCfg::default()
        };
        Sim {
            tx,
            cfg,
            now: 0,
            log: Vec::new(),
            out: Actions::new(),
        }
    }

    /// Collect what the last call pushed, log it, and check the timer
    /// invariant: nothing pending is already due.
    fn take(&mut self) -> Vec<Action> {
        let acts: Vec<Action> = self.out.drain().collect();
        self.log.extend(acts.iter().map(|a| (self.now, *a)));
        if let Some(d) = self.tx.next_deadline() {
            assert!(d > self.now, "deadline {d} not after now {}", self.now);
        }
        acts
    }

    pub(super) fn at(&mut self, t: u64) -> &mut Sim {
        self.run_until(t);
        self
    }

    pub(super) fn branch(&mut self) -> u8 {
        self.tx
            .add_branch(self.now, &self.cfg, false, false)
            .expect("branch")
    }

    pub(super) fn reply(&mut self, b: u8, code: u16) -> Vec<Action> {
        self.tx
            .on_reply(b, code, self.now, &self.cfg, &mut self.out);
        self.take()
    }

    pub(super) fn local_reply(&mut self, code: u16) -> Vec<Action> {
        self.tx
            .on_local_reply(code, self.now, &self.cfg, &mut self.out);
        self.take()
    }

    pub(super) fn cancel(&mut self) -> (usize, Vec<Action>) {
        let n = self.tx.on_cancel(self.now, &self.cfg, &mut self.out);
        (n, self.take())
    }

    pub(super) fn cancel_reply(&mut self, b: u8) {
        self.tx.on_cancel_reply(b, self.now);
        self.take();
    }

    pub(super) fn ack(&mut self) -> Vec<Action> {
        self.tx.on_ack(self.now, &self.cfg, &mut self.out);
        self.take()
    }

    pub(super) fn release(&mut self) -> Vec<Action> {
        self.tx.release(self.now, &self.cfg, &mut self.out);
        self.take()
    }

    pub(super) fn after_failure(&mut self, added: bool, replied: bool) -> Vec<Action> {
        self.tx
            .after_failure(added, replied, self.now, &self.cfg, &mut self.out);
        self.take()
    }

    /// Fire every deadline up to `t` exactly when it is due, then set the
    /// clock to `t`. Returns the timer actions with their times.
    pub(super) fn run_until(&mut self, t: u64) -> Vec<(u64, Action)> {
        let start = self.log.len();
        while let Some(d) = self.tx.next_deadline() {
            if d > t {
                break;
            }
            assert!(d >= self.now, "deadline {d} in the past at {}", self.now);
            self.now = d;
            self.tx.on_timer(d, &self.cfg, &mut self.out);
            self.take();
        }
        self.now = self.now.max(t);
        self.log[start..].to_vec()
    }

    /// Times at which `want` was produced.
    pub(super) fn times(&self, want: Action) -> Vec<u64> {
        self.log
            .iter()
            .filter(|(_, a)| *a == want)
            .map(|(t, _)| *t)
            .collect()
    }

    pub(super) fn phase(&self) -> Phase {
        self.tx.phase()
    }
}

#[test]
fn invite_to_a_silent_callee_times_out_with_408() {
    let mut s = Sim::new(true);
    s.local_reply(100);
    s.branch();
    s.run_until(29_999);
    assert_eq!(
        s.times(RetransmitRequest(0)),
        [500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500]
    );
    let fr = s.run_until(30_000);
    let acts: Vec<Action> = fr.iter().map(|(_, a)| *a).collect();
    assert_eq!(
        acts,
        [
            Unanswered(0),
            StoreLocalReply {
                branch: 0,
                code: 408
            },
            RelayStored {
                branch: 0,
                as_code: 408
            },
            Completed { code: 408 }
        ]
    );
    assert_eq!(s.phase(), Phase::Completed);
    s.run_until(40_000);
    assert_eq!(s.times(ResendUasReply), [30_500, 31_500, 33_500, 37_500]);
    assert!(s.ack().is_empty());
    assert_eq!(s.phase(), Phase::Wait);
    s.run_until(100_000);
    assert_eq!(s.times(Terminate), [45_000]);
    assert_eq!(
        s.times(RetransmitRequest(0)).len(),
        9,
        "no request retransmission after FR"
    );
    assert_eq!(s.times(ResendUasReply).len(), 4);
    assert_eq!(s.tx.next_deadline(), None);
}

#[test]
fn unacknowledged_negative_final_gives_up_after_64_t1() {
    let mut s = Sim::new(true);
    s.branch();
    s.at(1000).reply(0, 486);
    s.run_until(37_000);
    assert_eq!(
        s.times(ResendUasReply),
        [1500, 2500, 4500, 8500, 12_500, 16_500, 20_500, 24_500, 28_500, 32_500]
    );
    assert_eq!(s.phase(), Phase::Wait, "timer H at 33000");
    s.run_until(100_000);
    assert_eq!(s.times(Terminate), [38_000]);
}

#[test]
fn provisional_stops_invite_retransmission_and_switches_to_fr_inv() {
    let mut s = Sim::new(true);
    s.branch();
    assert_eq!(s.at(300).reply(0, 100), [RunOnReply(0)], "100 is absorbed");
    assert_eq!(
        s.tx.branches[0].fr_at, 120_300,
        "first provisional arms fr_inv"
    );
    assert_eq!(s.at(1000).reply(0, 180), [RunOnReply(0), RelayReceived(0)]);
    assert_eq!(s.tx.uas_status, 180);
    assert_eq!(s.tx.branches[0].fr_at, 121_000);
    assert_eq!(s.at(5000).reply(0, 180), [RunOnReply(0), RelayReceived(0)]);
    assert_eq!(s.tx.branches[0].fr_at, 125_000, "restart_fr_on_each_reply");
    s.run_until(124_999);
    assert!(
        s.times(RetransmitRequest(0)).is_empty(),
        "100 at 300 already stopped them"
    );
    // Silent expiry: one ringing branch, no failure route, noisy_ctimer off.
    let acts = s.run_until(125_000);
    assert_eq!(acts, [(125_000, SendCancel(0))]);
    assert_eq!(s.phase(), Phase::Wait);
    assert_eq!(s.tx.uas_status, 180, "nothing final went upstream");
    s.run_until(200_000);
    assert_eq!(s.times(RetransmitCancel(0)), [125_500, 126_500, 128_500]);
    assert_eq!(s.times(Terminate), [130_000]);
    assert!(!s
        .log
        .iter()
        .any(|(_, a)| matches!(a, Completed { .. } | RelayStored { .. })));
}

#[test]
fn retransmission_before_the_first_provisional() {
    let mut s = Sim::new(true);
    s.branch();
    s.at(1000).reply(0, 180);
    s.run_until(10_000);
    assert_eq!(s.times(RetransmitRequest(0)), [500]);
}

#[test]
fn fr_restart_without_restart_on_each_reply_needs_a_higher_code() {
    let mut s = Sim::new(true);
    s.cfg.restart_fr_on_each_reply = false;
    s.branch();
    s.at(1000).reply(0, 180);
    assert_eq!(s.tx.branches[0].fr_at, 121_000);
    s.at(2000).reply(0, 180);
    assert_eq!(s.tx.branches[0].fr_at, 121_000);
    s.at(3000).reply(0, 183);
    assert_eq!(s.tx.branches[0].fr_at, 123_000);
}

#[test]
fn noisy_ctimer_answers_408_and_cancels() {
    let mut s = Sim::new(true);
    s.cfg.noisy_ctimer = true;
    s.branch();
    s.at(1000).reply(0, 180);
    let acts = s.run_until(121_000);
    assert_eq!(
        acts,
        [
            (121_000, SendCancel(0)),
            (
                121_000,
                StoreLocalReply {
                    branch: 0,
                    code: 408
                }
            ),
            (
                121_000,
                RelayStored {
                    branch: 0,
                    as_code: 408
                }
            ),
            (121_000, Completed { code: 408 }),
        ]
    );
    assert_eq!(s.phase(), Phase::Completed);
    // The 487 to our CANCEL is ACKed and otherwise ignored.
    assert_eq!(s.at(121_100).reply(0, 487), [SendAck(0)]);
}

#[test]
fn fr_forced_noisy_and_override() {
    let mut tx = Tx::new(true, false, false);
    tx.flags |= flags::NOISY_FORCED;
    tx.fr_override = 10_000;
    tx.fr_inv_override = 20_000;
    let mut s = Sim::with(tx);
    s.branch();
    assert_eq!(s.tx.branches[0].fr_at, 10_000);
    s.at(1000).reply(0, 183);
    assert_eq!(s.tx.branches[0].fr_at, 21_000);
    s.run_until(21_000);
    assert_eq!(s.times(Completed { code: 408 }), [21_000]);
}

#[test]
fn non_invite_keeps_retransmitting_at_t2_after_a_provisional() {
    let mut s = Sim::new(false);
    s.branch();
    assert_eq!(s.at(1000).reply(0, 100), [RunOnReply(0)]);
    assert_eq!(
        s.tx.branches[0].fr_at, 30_000,
        "non-INVITE provisional keeps FR"
    );
    s.run_until(10_000);
    assert_eq!(s.times(RetransmitRequest(0)), [500, 1500, 5500, 9500]);
    assert_eq!(
        s.reply(0, 200),
        [RunOnReply(0), RelayReceived(0), Completed { code: 200 }]
    );
    assert_eq!(s.phase(), Phase::Wait);
    s.run_until(100_000);
    assert_eq!(s.times(RetransmitRequest(0)).len(), 4);
    assert_eq!(s.times(Terminate), [15_000]);
}

#[test]
fn non_invite_negative_final_goes_straight_to_wait() {
    let mut s = Sim::new(false);
    s.branch();
    assert_eq!(
        s.at(700).reply(0, 404),
        [
            RunOnReply(0),
            StoreReply(0),
            RelayStored {
                branch: 0,
                as_code: 404
            },
            Completed { code: 404 }
        ]
    );
    assert_eq!(s.phase(), Phase::Wait);
    // A second 200 for a non-INVITE is not relayed (one final only).
    assert!(s.reply(0, 200).is_empty());
}

#[test]
fn request_retransmissions_ack_and_release() {
    let mut s = Sim::new(true);
    let mut out = Actions::new();
    assert_eq!(
        s.tx.on_request_retransmission(&mut out),
        super::RetransmissionVerdict::Absorbed
    );
    assert!(out.as_slice().is_empty());
    s.local_reply(100);
    assert_eq!(
        s.tx.on_request_retransmission(&mut out),
        super::RetransmissionVerdict::Resent
    );
    assert_eq!(out.as_slice(), [ResendUasReply]);
    // ACK while still Proceeding changes nothing.
    assert!(s.ack().is_empty());
    assert_eq!(s.phase(), Phase::Proceeding);
    assert!(s.release().is_empty());
    assert_eq!(s.phase(), Phase::Wait);
    s.run_until(10_000);
    assert_eq!(s.times(Terminate), [5000]);
}

#[test]
fn local_invite_2xx_is_retransmitted_until_ack() {
    let mut s = Sim::new(true);
    assert_eq!(s.local_reply(200), [Completed { code: 200 }]);
    assert_eq!(s.phase(), Phase::Completed);
    s.run_until(2000);
    assert_eq!(s.times(ResendUasReply), [500, 1500]);
    s.ack();
    assert_eq!(s.phase(), Phase::Wait);
    // A second final is never generated.
    assert!(s.local_reply(486).is_empty());
}

#[test]
fn reliable_upstream_and_non_invite_go_straight_to_wait() {
    let mut s = Sim::with(Tx::new(true, false, true));
    s.branch();
    s.reply(0, 486);
    assert_eq!(s.phase(), Phase::Wait);
    let mut s = Sim::new(false);
    assert_eq!(s.local_reply(404), [Completed { code: 404 }]);
    assert_eq!(s.phase(), Phase::Wait);
}

#[test]
fn local_uac_never_relays() {
    let mut s = Sim::with(Tx::new(true, true, false));
    s.branch();
    assert_eq!(s.at(100).reply(0, 180), [RunOnReply(0)]);
    assert_eq!(
        s.at(200).reply(0, 200),
        [RunOnReply(0), Completed { code: 200 }]
    );
    assert_eq!(s.phase(), Phase::Wait);
    assert_eq!(
        s.reply(0, 200),
        [RunOnReply(0)],
        "2xx retransmission goes to the callback only"
    );

    let mut s = Sim::with(Tx::new(true, true, false));
    s.branch();
    assert_eq!(
        s.reply(0, 486),
        [
            SendAck(0),
            RunOnReply(0),
            StoreReply(0),
            Completed { code: 486 }
        ]
    );
    assert_eq!(s.phase(), Phase::Wait, "no upstream to retransmit to");
}

#[test]
fn branch_limits() {
    let mut s = Sim::new(true);
    for i in 0..12 {
        assert_eq!(s.branch(), i);
    }
    assert_eq!(
        s.tx.add_branch(0, &s.cfg, false, false),
        Err(super::TxError::TooManyBranches)
    );
    let mut s = Sim::new(true);
    s.branch();
    s.reply(0, 200);
    assert_eq!(
        s.tx.add_branch(0, &s.cfg, false, false),
        Err(super::TxError::AlreadyFinal)
    );
}

#[test]
fn reliable_and_blind_branches_do_not_retransmit() {
    let mut s = Sim::new(true);
    s.tx.add_branch(0, &s.cfg, true, false).unwrap();
    s.tx.add_branch(0, &s.cfg, false, true).unwrap();
    s.run_until(29_999);
    assert!(s.log.is_empty());
}

#[test]
fn a_late_tick_catches_up_without_a_burst() {
    let mut s = Sim::new(true);
    s.branch();
    let mut out = Actions::new();
    s.tx.on_timer(2000, &s.cfg, &mut out);
    assert_eq!(out.as_slice(), [RetransmitRequest(0)]);
    assert_eq!(s.tx.next_deadline(), Some(3000));
}

#[test]
fn invalid_input_is_ignored() {
    let mut s = Sim::new(true);
    s.branch();
    assert!(s.reply(1, 200).is_empty());
    assert!(s.reply(200, 200).is_empty());
    assert!(s.reply(0, 99).is_empty());
    assert!(s.reply(0, 700).is_empty());
    s.cancel_reply(7);
    let mut zero = Tx::default();
    let mut out = Actions::new();
    zero.on_timer(1, &s.cfg, &mut out);
    zero.on_reply(0, 200, 1, &s.cfg, &mut out);
    assert!(out.as_slice().is_empty());
    assert_eq!(zero.next_deadline(), None);
}

/// The machine stays sans-io: no clock, no sockets, no files, no shm
/// access, nothing from the crate but `sip` (read at compile time, so the
/// test itself does no I/O).
#[test]
fn the_machine_does_no_io_and_depends_on_nothing_above_it() {
    let sources = [
        ("mod.rs", include_str!("mod.rs")),
        ("server.rs", include_str!("server.rs")),
        ("client.rs", include_str!("client.rs")),
        ("select.rs", include_str!("select.rs")),
        ("timers.rs", include_str!("timers.rs")),
    ];
    let forbidden = [
        "std::time",
        "std::net",
        "std::fs",
        "std::io",
        "std::process",
        "std::thread",
        "libc",
        "nix::",
        "unsafe ",
    ];
    for (name, src) in sources {
        for bad in forbidden {
            assert!(!src.contains(bad), "{name} uses {bad}");
        }
        for (i, _) in src.match_indices("crate::") {
            assert!(
                src[i..].starts_with("crate::sip"),
                "{name} reaches into the crate at {i}"
            );
        }
        for (i, _) in src.match_indices("shm::") {
            assert!(
                src[i..].starts_with("shm::shm_struct!"),
                "{name} uses shm beyond the marker at {i}"
            );
        }
    }
}

#[test]
fn t_set_fr_on_the_fly_moves_running_timers_from_their_start() {
    // Two INVITE branches: one rang (FR_INV), one is silent (FR).
    let mut s = Sim::new(true);
    s.cfg.noisy_ctimer = true;
    s.branch();
    s.branch();
    s.at(1000).reply(0, 180);
    assert_eq!(s.tx.branches[0].fr_at, 121_000);
    assert_eq!(s.tx.branches[1].fr_at, 30_000);
    // At 2 s the script says: FR_INV 5 s, FR 3 s (t_set_fr(5000, 3000)).
    s.run_until(2000);
    let mut o = s.tx.overrides();
    o.fr_inv = 5000;
    o.fr = 3000;
    let cfg = s.cfg;
    s.tx.set_overrides(o, &cfg);
    assert_eq!(s.tx.branches[0].fr_at, 6000, "180 at 1 s + 5 s");
    assert_eq!(s.tx.branches[1].fr_at, 3000, "sent at 0 + 3 s");
    s.run_until(7000);
    assert_eq!(
        s.times(StoreLocalReply {
            branch: 1,
            code: 408
        }),
        [3000]
    );
    assert_eq!(
        s.times(StoreLocalReply {
            branch: 0,
            code: 408
        }),
        [6000]
    );
    // A new branch starts with the overrides; t_reset_fr goes back.
    let mut t = Sim::new(false);
    t.tx.set_overrides(o, &cfg);
    t.branch();
    assert_eq!(t.tx.branches[0].fr_at, 3000);
    t.tx.set_overrides(Default::default(), &cfg);
    assert_eq!(t.tx.branches[0].fr_at, 30_000);
}

#[test]
fn t_set_retr_changes_intervals_from_the_next_one() {
    let mut s = Sim::new(true);
    let cfg = s.cfg;
    let mut o = s.tx.overrides();
    o.t1 = 250;
    s.tx.set_overrides(o, &cfg);
    s.branch();
    s.run_until(2000);
    // T1 250 doubling: 250, 750, 1750 (the next is 2000 later).
    assert_eq!(s.times(RetransmitRequest(0)), [250, 750, 1750]);
    // T2 lowered to 600 now: the interval scheduled (2000, due at 3750)
    // stands, the ones after it are capped.
    o.t2 = 600;
    s.tx.set_overrides(o, &cfg);
    s.run_until(5000);
    assert_eq!(
        s.times(RetransmitRequest(0)),
        [250, 750, 1750, 3750, 4350, 4950]
    );
}
