//! The server side of a transaction: what went (or goes) upstream.
//!
//! RFC 3261 §17.2.1 (INVITE server: Proceeding → Completed → Confirmed →
//! Terminated) and §17.2.2 (non-INVITE: Proceeding → Completed →
//! Terminated), folded into SER's phases: our `Completed` is the RFC's
//! Completed of an INVITE (final retransmitted until the ACK), our `Wait`
//! covers Confirmed and the non-INVITE Completed (absorbing
//! retransmissions for `wt_timer`).

use super::{
    bflags, flags, Action, Actions, Branch, BranchPhase, Phase, RetransmissionVerdict, TimerCfg,
    Tx, UnrepliedCancel, MAX_BRANCHES,
};

/// `now + d`, never 0: a deadline of 0 means "none", so a zero-length
/// interval from the config must still produce a real deadline.
pub(super) fn deadline(now: u64, d: u32) -> u64 {
    now.saturating_add(u64::from(d.max(1)))
}

/// The retransmission interval after `step` sends: the three configured
/// steps (T1, 2T1, 4T1 in 2.x; the 0.9 fixed list), then doubling on
/// from the third until T2, and T2 forever (RFC 3261 17.1.1.2: a small
/// T1 set by `t_set_retr` or `retr_timer1` must not jump from 4T1 to T2).
pub(super) fn retr_interval(cfg: &TimerCfg, step: u8) -> u32 {
    match cfg.retr.get(usize::from(step)) {
        Some(r) => *r,
        None => {
            let last = cfg.retr[cfg.retr.len() - 1];
            let doublings = u32::from(step).saturating_sub(cfg.retr.len() as u32 - 1);
            let doubled = u64::from(last) << doublings.min(32);
            u32::try_from(doubled.min(u64::from(cfg.t2))).unwrap_or(cfg.t2)
        }
    }
}

/// Who produced the final that goes upstream: it decides whether an
/// INVITE 2xx is retransmitted by us (only our own, RFC 13.3.1.4) or left
/// to the UAS that sent it (RFC 16.7 step 10: a proxy does not retransmit 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Local,
    Relayed,
}

impl Tx {
    /// A new transaction for a request received now.
    pub fn new(invite: bool, local: bool, uas_reliable: bool) -> Tx {
        let mut f = 0;
        if invite {
            f |= flags::INVITE;
        }
        if local {
            f |= flags::LOCAL;
        }
        if uas_reliable {
            f |= flags::UAS_RELIABLE;
        }
        Tx {
            phase: Phase::Proceeding as u8,
            flags: f,
            picked: 0xff,
            ..Tx::default()
        }
    }

    pub fn phase(&self) -> Phase {
        match self.phase {
            1 => Phase::Proceeding,
            2 => Phase::Completed,
            3 => Phase::Wait,
            4 => Phase::Terminated,
            _ => Phase::Unused,
        }
    }

    pub fn is_invite(&self) -> bool {
        self.has(flags::INVITE)
    }

    /// Whether all of `bits` (of [`flags`]) are set.
    pub fn has(&self, bits: u32) -> bool {
        self.flags & bits == bits
    }

    /// Replies are never sent upstream: our own UAC (`t_uac`) or
    /// `t_replicate`. Finals still produce `Completed` for the callbacks.
    pub fn no_upstream(&self) -> bool {
        self.flags & (flags::LOCAL | flags::NO_RELAY) != 0
    }

    /// We are sending reply `code` upstream ourselves (t_reply, 100 Trying,
    /// error replies, the failure route's t_reply).
    ///
    /// Ignored unless the transaction is still Proceeding: like SER, no
    /// second final (of any class) is generated once one went out, and a
    /// released or silently expired transaction stays quiet.
    pub fn on_local_reply(&mut self, code: u16, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        let cfg = &self.timers(cfg);
        if self.phase() != Phase::Proceeding {
            return;
        }
        if code < 200 {
            self.uas_status = code;
            return;
        }
        self.final_upstream(code, Origin::Local, now, cfg, out);
    }

    /// The request was retransmitted by upstream.
    pub fn on_request_retransmission(&self, out: &mut Actions) -> RetransmissionVerdict {
        if self.uas_status != 0 {
            out.push(Action::ResendUasReply);
            RetransmissionVerdict::Resent
        } else {
            RetransmissionVerdict::Absorbed
        }
    }

    /// A hop-by-hop ACK for our negative final (or local 2xx) arrived:
    /// RFC 17.2.1 Confirmed, which we spend in Wait.
    pub fn on_ack(&mut self, now: u64, cfg: &TimerCfg, _out: &mut Actions) {
        let cfg = &self.timers(cfg);
        if self.phase() == Phase::Completed {
            self.go_wait(now, cfg);
        }
    }

    /// Release (t_release) / nothing forwarded or replied: go to wait.
    pub fn release(&mut self, now: u64, cfg: &TimerCfg, _out: &mut Actions) {
        let cfg = &self.timers(cfg);
        if matches!(self.phase(), Phase::Proceeding | Phase::Completed) {
            self.go_wait(now, cfg);
        }
    }

    /// A final `code` goes upstream now (the caller has pushed the relay
    /// action, if any). Records it, reports completion, CANCELs whatever
    /// is still pending downstream and picks the next phase.
    pub(super) fn final_upstream(
        &mut self,
        code: u16,
        origin: Origin,
        now: u64,
        cfg: &TimerCfg,
        out: &mut Actions,
    ) {
        if !self.no_upstream() {
            self.uas_status = code;
        }
        out.push(Action::Completed { code });
        self.cancel_pending_branches(now, cfg, out);
        // Once the final is out, SER stops every branch's retransmission
        // and FR timer (the CANCELs carry their own timers).
        for br in self.live_branches_mut() {
            br.retr_at = 0;
            br.fr_at = 0;
        }
        let retransmit = self.is_invite()
            && !self.no_upstream()
            && !self.has(flags::UAS_RELIABLE)
            && (code >= 300 || origin == Origin::Local);
        if retransmit {
            // RFC 17.2.1: Timer G from T1 doubling to T2, Timer H = 64*T1.
            self.phase = Phase::Completed as u8;
            self.uas_retr_step = 0;
            self.uas_retr_at = deadline(now, retr_interval(cfg, 0));
            self.uas_giveup_at = deadline(now, cfg.retr[0].saturating_mul(64));
        } else {
            self.go_wait(now, cfg);
        }
    }

    /// CANCEL every branch that has no final yet: SendCancel where a
    /// provisional came back; where none did, what `cancel_b_method` says
    /// (see [`Tx::cancel_branch`]). Returns how many CANCELs go out now.
    pub(super) fn cancel_pending_branches(
        &mut self,
        now: u64,
        cfg: &TimerCfg,
        out: &mut Actions,
    ) -> usize {
        let mut sent = 0;
        for b in 0..self.branch_count() {
            if self.cancel_branch(b, now, cfg, out) {
                sent += 1;
            }
        }
        sent
    }

    /// CANCEL branch `b` (an index below `branch_count`): returns whether a
    /// SendCancel was pushed.
    ///
    /// A branch of an INVITE with no reply yet is handled as
    /// `cfg.cancel_b_method` says: ended at once with a 487 made here (0), left retransmitting
    /// with the CANCEL held until a provisional arrives (1, RFC 3261 §9.1),
    /// or CANCELed at once (2). With 0 the branch may now be final, so a
    /// caller in Proceeding must see whether a pick is due.
    pub(super) fn cancel_branch(
        &mut self,
        b: usize,
        now: u64,
        cfg: &TimerCfg,
        out: &mut Actions,
    ) -> bool {
        // CANCEL has no business with a non-INVITE (RFC 3261 §9.1): an
        // unanswered one is never ended or CANCELed early.
        let method = if self.is_invite() {
            cfg.cancel_b_method
        } else {
            UnrepliedCancel::OnProvisional
        };
        let Some(br) = self.branches.get_mut(b) else {
            return false;
        };
        // A blind branch sent nothing, so there is nothing to cancel; a
        // CANCEL goes out once per branch.
        if br.flags & (bflags::BLIND | bflags::CANCEL_SENT) != 0 {
            return false;
        }
        match br.phase() {
            BranchPhase::Proceeding => {
                start_cancel(br, b, now, cfg, out);
                true
            }
            BranchPhase::Calling => match method {
                UnrepliedCancel::Fake487 => {
                    // The callee never answered, so it is told nothing;
                    // the branch ends as if it had answered 487.
                    br.set_final(487);
                    out.push(Action::StoreLocalReply {
                        branch: b as u8,
                        code: 487,
                    });
                    false
                }
                UnrepliedCancel::OnProvisional => {
                    br.flags |= bflags::CANCEL_PENDING;
                    false
                }
                UnrepliedCancel::Immediate => {
                    // The CANCEL takes over: the request is not repeated.
                    br.retr_at = 0;
                    start_cancel(br, b, now, cfg, out);
                    true
                }
            },
            BranchPhase::Final | BranchPhase::Unused => false,
        }
    }

    /// Enter Wait: absorb retransmissions for `wt`, no more request or
    /// reply retransmissions (pending CANCELs keep theirs).
    pub(super) fn go_wait(&mut self, now: u64, cfg: &TimerCfg) {
        self.phase = Phase::Wait as u8;
        self.wait_until = deadline(now, cfg.wt);
        self.uas_retr_at = 0;
        self.uas_giveup_at = 0;
        for br in self.live_branches_mut() {
            br.retr_at = 0;
            br.fr_at = 0;
        }
    }

    /// Could the machine have left this state? Checks what every state it
    /// reaches satisfies (the random property test asserts it after each
    /// step): known phases and flags, branch counts and indices in range,
    /// branches past the count unused, no timer once terminated. A state
    /// taken over from a process that died holding the reply lock is
    /// trusted when it passes ([`Tx::quarantine`] otherwise).
    pub fn is_sane(&self) -> bool {
        const KNOWN_FLAGS: u32 = (flags::FAILOVER << 1) - 1;
        let n = usize::from(self.nbranches);
        let phase_ok = (1..=4).contains(&self.phase);
        let counts_ok = n <= MAX_BRANCHES
            && (self.picked == 0xff || usize::from(self.picked) < n)
            && usize::from(self.round_start) <= n
            && usize::from(self.failed_round) <= n;
        let status_ok = self.uas_status == 0 || (100..=699).contains(&self.uas_status);
        let branches_ok = self.branches.iter().enumerate().all(|(i, b)| {
            if i < n {
                (1..=3).contains(&b.phase)
            } else {
                *b == Branch::default()
            }
        });
        let timers_ok = match self.phase() {
            Phase::Terminated => self.next_deadline().is_none(),
            Phase::Wait => self.wait_until != 0,
            _ => true,
        };
        phase_ok
            && counts_ok
            && status_ok
            && branches_ok
            && timers_ok
            && self.flags & !KNOWN_FLAGS == 0
    }

    /// The reply lock was taken over from a process that died holding it,
    /// and the state fails [`Tx::is_sane`]: an update half done (any field
    /// old or new), nothing in it is trusted to go on with. The transaction goes to
    /// Wait, ending at `now`: no retransmission, no FR, no pick, no
    /// failure route or failover any more; what still arrives is
    /// absorbed, and its next timer terminates it as any other. The call
    /// was in flight in the dead process: it may fail, nothing else does.
    pub fn quarantine(&mut self, now: u64) {
        self.phase = Phase::Wait as u8;
        self.wait_until = now.max(1);
        self.uas_retr_at = 0;
        self.uas_giveup_at = 0;
        self.flags &= !(flags::IN_FAILURE | flags::FAILOVER | flags::FAILURE_ROUTE);
        for br in &mut self.branches {
            // Pending branches are given up as they stand: no CANCEL, no
            // local final (what a half-done update holds of them cannot
            // be told from what was sent).
            if br.phase() != BranchPhase::Unused {
                br.phase = BranchPhase::Final as u8;
            }
            br.retr_at = 0;
            br.fr_at = 0;
            br.cancel_retr_at = 0;
            br.cancel_fr_at = 0;
            br.more = 0;
        }
    }

    /// The server-side timers due at `now`: reply retransmission (Timer
    /// G), its give-up (Timer H) and the end of Wait.
    pub(super) fn uas_timers(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        if self.phase() == Phase::Completed {
            if self.uas_giveup_at != 0 && self.uas_giveup_at <= now {
                // RFC 17.2.1: Timer H — no ACK came; stop retransmitting.
                self.go_wait(now, cfg);
            } else if self.uas_retr_at != 0 && self.uas_retr_at <= now {
                out.push(Action::ResendUasReply);
                self.uas_retr_step = self.uas_retr_step.saturating_add(1);
                self.uas_retr_at = deadline(now, retr_interval(cfg, self.uas_retr_step));
            }
        }
        if self.phase() == Phase::Wait && self.wait_until != 0 && self.wait_until <= now {
            self.terminate(out);
        }
    }

    /// The end: every timer off, the driver frees the cell.
    fn terminate(&mut self, out: &mut Actions) {
        self.phase = Phase::Terminated as u8;
        self.wait_until = 0;
        self.uas_retr_at = 0;
        self.uas_giveup_at = 0;
        for br in self.live_branches_mut() {
            br.retr_at = 0;
            br.fr_at = 0;
            br.cancel_retr_at = 0;
            br.cancel_fr_at = 0;
        }
        out.push(Action::Terminate);
    }
}

/// Send the CANCEL of branch `b` now and arm its retransmission (none
/// over a reliable transport) and give-up timers.
pub(super) fn start_cancel(br: &mut Branch, b: usize, now: u64, cfg: &TimerCfg, out: &mut Actions) {
    br.flags = (br.flags | bflags::CANCEL_SENT) & !bflags::CANCEL_PENDING;
    br.cancel_step = 0;
    br.cancel_retr_at = if br.flags & bflags::RELIABLE != 0 {
        0
    } else {
        deadline(now, retr_interval(cfg, 0))
    };
    br.cancel_fr_at = deadline(now, cfg.fr);
    out.push(Action::SendCancel(b as u8));
}
