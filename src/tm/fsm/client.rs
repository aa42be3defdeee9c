//! The client side: one branch per forwarded copy of the request.
//!
//! RFC 3261 §17.1.1 (INVITE client) and §17.1.2 (non-INVITE client) for
//! retransmissions and timeouts, §16.7 for what a proxy does with each
//! response, and SER's tm rules where SER differs (FR/FR_INV timers,
//! silent FR expiry, failure route).

use super::server::{deadline, retr_interval, start_cancel, Origin};
use super::timers::capped;
use super::{
    bflags, flags, select, Action, Actions, Branch, BranchPhase, Phase, TimerCfg, Tx, TxError,
    MAX_BRANCHES,
};

impl Branch {
    pub fn phase(&self) -> BranchPhase {
        match self.phase {
            1 => BranchPhase::Calling,
            2 => BranchPhase::Proceeding,
            3 => BranchPhase::Final,
            _ => BranchPhase::Unused,
        }
    }

    pub fn is_final(&self) -> bool {
        self.phase() == BranchPhase::Final
    }

    /// The branch has a final: no more request retransmission or FR, and
    /// no CANCEL left to send (one already sent keeps its own timers).
    pub(super) fn set_final(&mut self, code: u16) {
        self.phase = BranchPhase::Final as u8;
        self.status = code;
        self.retr_at = 0;
        self.fr_at = 0;
        self.flags &= !bflags::CANCEL_PENDING;
    }
}

/// Nothing came back on a branch whose request really went out (a blind
/// branch sent nothing, so its silence says nothing about the next hop).
fn br_unanswered(br: Option<&Branch>) -> bool {
    br.is_some_and(|b| b.flags & (bflags::REPLIED | bflags::BLIND) == 0)
}

impl Tx {
    /// Branches created so far, clamped to the array (the count is plain
    /// data in shared memory, so it is not trusted blindly).
    pub fn branch_count(&self) -> usize {
        usize::from(self.nbranches).min(MAX_BRANCHES)
    }

    /// The branches created so far.
    pub fn live_branches(&self) -> &[Branch] {
        let n = self.branch_count();
        self.branches.get(..n).unwrap_or(&[])
    }

    pub(super) fn live_branches_mut(&mut self) -> &mut [Branch] {
        let n = self.branch_count();
        self.branches.get_mut(..n).unwrap_or(&mut [])
    }

    /// Add a client branch whose request is being sent now; arms its
    /// retransmission (unless reliable/blind) and FR timer.
    ///
    /// Refused once a final went upstream (a LOCAL transaction has no
    /// upstream, so only its phase counts) or the transaction is already
    /// waiting/terminated. The failure route adds branches while
    /// `uas_status` is still below 200, which is allowed.
    pub fn add_branch(
        &mut self,
        now: u64,
        cfg: &TimerCfg,
        reliable: bool,
        blind: bool,
    ) -> Result<u8, TxError> {
        let cfg = &self.timers(cfg);
        let settled = !matches!(self.phase(), Phase::Proceeding | Phase::Completed);
        if settled || (!self.has(flags::LOCAL) && self.uas_status >= 200) {
            return Err(TxError::AlreadyFinal);
        }
        let b = self.branch_count();
        let fr = cfg.fr;
        if b == 0 {
            self.born = now;
        }
        let life_end = self.life_from_birth(cfg);
        let br = self.branches.get_mut(b).ok_or(TxError::TooManyBranches)?;
        let mut bf = 0;
        if reliable {
            bf |= bflags::RELIABLE;
        }
        if blind {
            bf |= bflags::BLIND;
        }
        *br = Branch {
            phase: BranchPhase::Calling as u8,
            flags: bf,
            retr_at: if reliable || blind {
                0
            } else {
                deadline(now, retr_interval(cfg, 0))
            },
            fr_at: capped(deadline(now, fr), life_end).max(deadline(now, 1)),
            ..Branch::default()
        };
        self.nbranches = (b + 1) as u8;
        Ok(b as u8)
    }

    /// A reply with status `code` arrived on branch `b`.
    ///
    /// Codes outside 100..=699 are ignored (the parser never produces
    /// them; the machine does not guess what they mean).
    pub fn on_reply(&mut self, b: u8, code: u16, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        let cfg = &self.timers(cfg);
        let bi = usize::from(b);
        if bi >= self.branch_count() || !(100..=699).contains(&code) {
            return;
        }
        if matches!(self.phase(), Phase::Unused | Phase::Terminated) {
            return;
        }
        let invite = self.is_invite();
        if invite && code >= 300 {
            // RFC 17.1.1.3: every negative final, retransmissions too, is ACKed.
            out.push(Action::SendAck(b));
        }
        let Some(br) = self.branches.get_mut(bi) else {
            return;
        };
        // Ended here by cancel_b_method 0 before the callee ever answered.
        let fake_487 = br.is_final()
            && br.status == 487
            && br.flags & (bflags::REPLIED | bflags::LOCAL_FINAL | bflags::BLIND) == 0;
        if br.flags & bflags::REPLIED != 0 {
            br.flags |= bflags::PAST_REPLY;
        }
        br.flags |= bflags::REPLIED;
        if fake_487 && code < 200 {
            // The callee turned out to be alive and is ringing a call that
            // is over here: now it may be CANCELed (RFC 3261 §9.1).
            start_cancel(br, bi, now, cfg, out);
            return;
        }
        if br.is_final() {
            // RFC 16.7 step 5 / 13.2.2.4: 2xx retransmissions and forks of an
            // INVITE always reach the caller; anything else is a duplicate.
            if invite && (200..300).contains(&code) {
                out.push(Action::RunOnReply(b));
                if !self.no_upstream() {
                    out.push(Action::RelayReceived(b));
                }
            }
            return;
        }
        out.push(Action::RunOnReply(b));
        match code {
            100..=199 => self.branch_provisional(bi, code, now, cfg, out),
            200..=299 => self.branch_2xx(bi, code, now, cfg, out),
            _ => {
                if let Some(br) = self.branches.get_mut(bi) {
                    br.set_final(code);
                }
                out.push(Action::StoreReply(b));
                self.branch_negative(bi, code, now, cfg, out);
            }
        }
    }

    fn branch_provisional(
        &mut self,
        bi: usize,
        code: u16,
        now: u64,
        cfg: &TimerCfg,
        out: &mut Actions,
    ) {
        let invite = self.is_invite();
        let proceeding = self.phase() == Phase::Proceeding;
        let fr_inv = cfg.fr_inv;
        let life_end = self.life_end(cfg);
        let Some(br) = self.branches.get_mut(bi) else {
            return;
        };
        let first = br.phase() == BranchPhase::Calling;
        let prev = br.status;
        br.phase = BranchPhase::Proceeding as u8;
        br.status = br.status.max(code);
        if invite {
            // RFC 17.1.1.2: a provisional stops INVITE retransmissions.
            br.retr_at = 0;
            let restart = first || cfg.restart_fr_on_each_reply || (code > prev && code >= 180);
            // Timers were stopped when a final went upstream; keep them so.
            if restart && proceeding {
                br.fr_at = capped(deadline(now, fr_inv), life_end).max(deadline(now, 1));
            }
        } else {
            // RFC 17.1.2.2: in Proceeding, Timer E runs at T2.
            br.retr_step = br.retr_step.max(cfg.retr.len() as u8);
        }
        let pending_cancel = br.flags & bflags::CANCEL_PENDING != 0;
        if pending_cancel {
            // RFC 9.1: the CANCEL waits for a provisional; this is it.
            self.cancel_branch(bi, now, cfg, out);
        }
        // 100 is hop-by-hop (RFC 16.7 step 5); the rest are relayed while
        // no final went upstream.
        if code > 100 && proceeding && !self.no_upstream() {
            out.push(Action::RelayReceived(bi as u8));
            self.uas_status = code;
        }
    }

    fn branch_2xx(&mut self, bi: usize, code: u16, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        if let Some(br) = self.branches.get_mut(bi) {
            br.set_final(code);
        }
        let first = if self.no_upstream() {
            self.phase() == Phase::Proceeding
        } else {
            self.uas_status < 200
        };
        // A non-INVITE has exactly one final upstream; INVITE 2xx are
        // always forwarded (RFC 16.7 step 10).
        if !self.no_upstream() && (first || self.is_invite()) {
            out.push(Action::RelayReceived(bi as u8));
        }
        if first {
            self.picked = bi as u8;
            if self.phase() == Phase::Proceeding {
                self.final_upstream(code, Origin::Relayed, now, cfg, out);
            } else {
                // Already waiting (released or silent FR expiry), yet a
                // callee answered: report it and cancel the rest.
                if !self.no_upstream() {
                    self.uas_status = code;
                }
                out.push(Action::Completed { code });
                self.cancel_pending_branches(now, cfg, out);
            }
        }
    }

    /// Branch `bi` just became final with a negative `code` (received or
    /// FR timeout): decide what goes upstream.
    fn branch_negative(
        &mut self,
        bi: usize,
        code: u16,
        now: u64,
        cfg: &TimerCfg,
        out: &mut Actions,
    ) {
        if self.phase() != Phase::Proceeding {
            return;
        }
        if self.is_invite() && code >= 600 {
            // RFC 16.7 step 5 (2.x): a 6xx ends the search; stop the others.
            for b in 0..self.branch_count() {
                if b != bi {
                    self.cancel_branch(b, now, cfg, out);
                }
            }
        }
        self.maybe_pick(now, cfg, out);
    }

    /// When every branch is final (none 2xx, nothing upstream yet, no
    /// failure route running): pick the best final and either hand it to
    /// the failure route or relay it.
    fn maybe_pick(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        if self.phase() != Phase::Proceeding
            || self.flags & (flags::IN_FAILURE | flags::FAILOVER) != 0
        {
            return;
        }
        let live = self.live_branches();
        if live.is_empty() || !live.iter().all(Branch::is_final) {
            return;
        }
        let Some(picked) = select::best_final(live) else {
            return;
        };
        if self.fails_over(picked) {
            if let Some(br) = self.branches.get_mut(usize::from(picked)) {
                // Its addresses move to the new branch, with the mark.
                br.more = 0;
            }
            self.flags |= flags::FAILOVER;
            out.push(Action::Failover(picked));
            return;
        }
        self.picked = picked;
        if self.has(flags::FAILURE_ROUTE) {
            // The armed route is consumed; the script re-arms it with
            // t_on_failure for further serial forks.
            self.flags = (self.flags & !flags::FAILURE_ROUTE) | flags::IN_FAILURE;
            self.failed_round = self.round_start;
            self.round_start = self.nbranches;
            out.push(Action::RunFailure { picked });
            return;
        }
        self.relay_picked(now, cfg, out);
    }

    /// Does branch `b`'s end call for its next DNS address (SER 2.x's
    /// `use_dns_failover`: a 503, received or made here when sending
    /// failed, or a timeout), rather than a pick?
    fn fails_over(&self, b: u8) -> bool {
        let Some(br) = self.live_branches().get(usize::from(b)) else {
            return false;
        };
        let timed_out = br.status == 408 && br.flags & bflags::LOCAL_FINAL != 0;
        br.more != 0 && (br.status == 503 || timed_out) && !self.has(flags::CANCELED)
    }

    /// The failover [`Action::Failover`] asked for is over: it added a
    /// branch (wait for it like any other — unless it failed at once) or
    /// could not (no address left, the caller CANCELed meanwhile): pick
    /// when every branch is final.
    pub fn failover_done(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        let cfg = &self.timers(cfg);
        self.flags &= !flags::FAILOVER;
        self.maybe_pick(now, cfg, out);
    }

    /// A branch that waited for its next hop's address (added blind)
    /// goes out now: it is retransmitted and answered like any other.
    pub fn branch_sent(&mut self, b: u8, now: u64, cfg: &TimerCfg) {
        let cfg = &self.timers(cfg);
        let n = self.branch_count();
        let Some(br) = self
            .branches
            .get_mut(usize::from(b))
            .filter(|_| usize::from(b) < n)
        else {
            return;
        };
        if br.phase() != BranchPhase::Calling || br.flags & bflags::BLIND == 0 {
            return;
        }
        br.flags &= !bflags::BLIND;
        if br.flags & bflags::RELIABLE == 0 {
            br.retr_step = 0;
            br.retr_at = deadline(now, retr_interval(cfg, 0));
        }
    }

    /// Branch `b` ends here without a reply (its next hop did not
    /// resolve, its caller is gone): a final `code` made locally, as a
    /// timeout ends a branch.
    pub fn branch_failed(&mut self, b: u8, code: u16, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        let cfg = &self.timers(cfg);
        let bi = usize::from(b);
        if bi >= self.branch_count() || matches!(self.phase(), Phase::Unused | Phase::Terminated) {
            return;
        }
        let Some(br) = self.branches.get_mut(bi) else {
            return;
        };
        if br.is_final() {
            return;
        }
        br.set_final(code);
        br.flags |= bflags::LOCAL_FINAL;
        out.push(Action::StoreLocalReply { branch: b, code });
        self.branch_negative(bi, code, now, cfg, out);
    }

    /// Send the picked branch's stored final upstream.
    fn relay_picked(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        let valid = self
            .live_branches()
            .get(usize::from(self.picked))
            .is_some_and(Branch::is_final);
        if !valid {
            match select::best_final(self.live_branches()) {
                Some(p) => self.picked = p,
                None => return,
            }
        }
        let code = self
            .live_branches()
            .get(usize::from(self.picked))
            .map_or(500, |b| b.status);
        // 2.x: a 503 from downstream must not make the caller think *we*
        // are overloaded (RFC 16.7 step 6 leaves it open); send 500.
        let as_code = if code == 503 { 500 } else { code };
        if !self.no_upstream() {
            out.push(Action::RelayStored {
                branch: self.picked,
                as_code,
            });
        }
        self.final_upstream(as_code, Origin::Relayed, now, cfg, out);
    }

    /// The failure route finished: `added` branches were added (serial
    /// fork: keep waiting) or `replied` (t_reply: done), else relay the pick.
    pub fn after_failure(
        &mut self,
        added: bool,
        replied: bool,
        now: u64,
        cfg: &TimerCfg,
        out: &mut Actions,
    ) {
        let cfg = &self.timers(cfg);
        self.flags &= !flags::IN_FAILURE;
        if self.phase() != Phase::Proceeding {
            // t_reply in the route already answered (on_local_reply).
            return;
        }
        if added {
            // New branches run their course; if they all failed already
            // (e.g. blind branches answered at once), pick again.
            self.maybe_pick(now, cfg, out);
        } else if !replied {
            self.relay_picked(now, cfg, out);
        }
    }

    /// `t_drop_replies` in a failure route: the finals of every branch
    /// (`all`) or of the round that just failed are no longer picked, so
    /// the branches the route adds decide what goes upstream. If nothing
    /// else ends up final, the dropped ones still answer the caller.
    pub fn drop_replies(&mut self, all: bool) {
        let from = if all {
            0
        } else {
            usize::from(self.failed_round)
        };
        let n = self.branch_count();
        for br in self.branches.iter_mut().take(n).skip(from) {
            if br.is_final() {
                br.dropped = 1;
            }
        }
    }

    /// Upstream CANCELed: which branches to cancel (pushes SendCancel).
    /// Returns how many CANCELs go out now. No local reply: the callee's
    /// 487 comes back as an ordinary final.
    ///
    /// Branches with no reply yet go as `cancel_b_method` says; when that
    /// ended them here (487s made locally), the pick may be due at once.
    pub fn on_cancel(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions) -> usize {
        let cfg = &self.timers(cfg);
        self.flags |= flags::CANCELED;
        let sent = self.cancel_pending_branches(now, cfg, out);
        self.maybe_pick(now, cfg, out);
        sent
    }

    /// A reply to our CANCEL on branch `b` arrived: that CANCEL is done.
    pub fn on_cancel_reply(&mut self, b: u8, _now: u64) {
        let n = self.branch_count();
        if let Some(br) = self
            .branches
            .get_mut(usize::from(b))
            .filter(|_| usize::from(b) < n)
        {
            br.flags |= bflags::CANCEL_DONE;
            br.cancel_retr_at = 0;
            br.cancel_fr_at = 0;
        }
    }

    /// Branch timers due at `now`: request and CANCEL retransmission,
    /// CANCEL give-up, FR expiry.
    pub(super) fn branch_timers(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        for bi in 0..self.branch_count() {
            let Some(br) = self.branches.get_mut(bi) else {
                continue;
            };
            let b = bi as u8;
            if br.retr_at != 0 && br.retr_at <= now {
                out.push(Action::RetransmitRequest(b));
                br.retr_step = br.retr_step.saturating_add(1);
                br.retr_at = deadline(now, retr_interval(cfg, br.retr_step));
            }
            if br.cancel_fr_at != 0 && br.cancel_fr_at <= now {
                // The CANCEL times out silently (no reply is owed to anyone).
                br.flags |= bflags::CANCEL_DONE;
                br.cancel_retr_at = 0;
                br.cancel_fr_at = 0;
            }
            if br.cancel_retr_at != 0 && br.cancel_retr_at <= now {
                out.push(Action::RetransmitCancel(b));
                br.cancel_step = br.cancel_step.saturating_add(1);
                br.cancel_retr_at = deadline(now, retr_interval(cfg, br.cancel_step));
            }
            if br.fr_at != 0 && br.fr_at <= now {
                br.fr_at = 0;
                if !br.is_final() {
                    self.fr_expired(bi, now, cfg, out);
                }
            }
        }
    }

    /// FR (Timer B/F, SER's fr_timer/fr_inv_timer) expired on branch `bi`.
    fn fr_expired(&mut self, bi: usize, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        let Some(br) = self.branches.get(bi) else {
            return;
        };
        let had_provisional = br.phase() == BranchPhase::Proceeding;
        // A branch we were cancelling (or whose caller CANCELed) that
        // times out ends as cancelled: the caller is owed a 487, not a 408.
        let canceled = self.is_invite()
            && (self.has(flags::CANCELED)
                || br.flags & (bflags::CANCEL_PENDING | bflags::CANCEL_SENT) != 0);
        let code = if canceled { 487 } else { 408 };
        // The end of the transaction's life is never the quiet ring-out.
        let life_over = self.life_end(cfg).is_some_and(|end| now >= end);
        // SER's quiet ring-out: a lone INVITE branch that rang and nobody
        // asked for a failure answer ends without a reply upstream
        // (noisy_ctimer=0); the caller gives up on its own.
        let silent = self.is_invite()
            && !self.has(flags::LOCAL)
            && self.branch_count() == 1
            && !self.has(flags::FAILURE_ROUTE)
            && had_provisional
            && !cfg.noisy_ctimer
            && !self.has(flags::NOISY_FORCED)
            && !canceled
            && !life_over;
        if had_provisional {
            self.cancel_branch(bi, now, cfg, out);
        }
        if silent {
            if let Some(br) = self.branches.get_mut(bi) {
                br.set_final(408);
                br.flags |= bflags::LOCAL_FINAL;
            }
            self.go_wait(now, cfg);
            return;
        }
        if br_unanswered(self.branches.get(bi)) {
            out.push(Action::Unanswered(bi as u8));
        }
        out.push(Action::StoreLocalReply {
            branch: bi as u8,
            code,
        });
        if let Some(br) = self.branches.get_mut(bi) {
            br.set_final(code);
            br.flags |= bflags::LOCAL_FINAL;
        }
        self.branch_negative(bi, code, now, cfg, out);
    }
}
