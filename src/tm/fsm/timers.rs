//! The transaction's single timer: everything due fires in one call, and
//! [`Tx::next_deadline`] tells the driver when to call again.
//!
//! A late tick catches up without a burst: each due deadline fires once
//! and its successor is scheduled from `now`.

use super::{Actions, BranchPhase, Phase, TimerCfg, Tx, TxTimers};

impl Tx {
    /// Timers: everything due at `now`.
    pub fn on_timer(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions) {
        let cfg = &self.timers(cfg);
        if matches!(self.phase(), Phase::Unused | Phase::Terminated) {
            return;
        }
        self.branch_timers(now, cfg, out);
        self.uas_timers(now, cfg, out);
    }

    /// The earliest pending deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        if matches!(self.phase(), Phase::Unused | Phase::Terminated) {
            return None;
        }
        let branch_deadlines = self
            .live_branches()
            .iter()
            .flat_map(|b| [b.retr_at, b.fr_at, b.cancel_retr_at, b.cancel_fr_at]);
        [self.uas_retr_at, self.uas_giveup_at, self.wait_until]
            .into_iter()
            .chain(branch_deadlines)
            .filter(|&t| t != 0)
            .min()
    }
}

impl Tx {
    /// This transaction's timer settings: `cfg` with the per-transaction
    /// overrides. Every event handler works from these, so an override
    /// set by the script reaches every timer the transaction arms.
    pub fn timers(&self, cfg: &TimerCfg) -> TimerCfg {
        let mut c = *cfg;
        if self.fr_override != 0 {
            c.fr = self.fr_override;
        }
        if self.fr_inv_override != 0 {
            c.fr_inv = self.fr_inv_override;
        }
        if self.t2_override != 0 {
            c.t2 = self.t2_override;
        }
        if self.life_override != 0 {
            // Only the one for this transaction's kind is ever read.
            c.max_inv_lifetime = self.life_override;
            c.max_noninv_lifetime = self.life_override;
        }
        if self.t1_override != 0 {
            // A T1 given alone doubles as RFC 3261's Timer A/E does; the
            // 0.9 per-step list only describes the config's own T1.
            let t1 = self.t1_override;
            c.retr = [t1, t1.saturating_mul(2), t1.saturating_mul(4)];
        }
        for r in &mut c.retr {
            *r = (*r).min(c.t2);
        }
        c
    }

    /// The overrides in force (0 = the config's value).
    pub fn overrides(&self) -> TxTimers {
        TxTimers {
            fr: self.fr_override,
            fr_inv: self.fr_inv_override,
            t1: self.t1_override,
            t2: self.t2_override,
            life: self.life_override,
        }
    }

    /// Replace the overrides (`t_set_fr`, `t_set_retr` and their resets on
    /// a live transaction). Running FR timers move with their timeout:
    /// a branch's deadline stays "when its timer started + the timeout in
    /// force", as SER 2.1 changes them on the fly. Retransmission
    /// intervals change from the next one scheduled.
    pub fn set_overrides(&mut self, new: TxTimers, cfg: &TimerCfg) {
        let old = self.timers(cfg);
        self.fr_override = new.fr;
        self.fr_inv_override = new.fr_inv;
        self.t1_override = new.t1;
        self.t2_override = new.t2;
        self.life_override = new.life;
        let now_cfg = self.timers(cfg);
        let life_end = self.life_end(&now_cfg);
        let invite = self.is_invite();
        for br in self.live_branches_mut() {
            if br.fr_at == 0 || br.is_final() {
                continue;
            }
            let (was, is) = if invite && br.phase() == BranchPhase::Proceeding {
                (old.fr_inv, now_cfg.fr_inv)
            } else {
                (old.fr, now_cfg.fr)
            };
            let started = br.fr_at.saturating_sub(u64::from(was));
            br.fr_at = capped(started.saturating_add(u64::from(is)).max(1), life_end);
        }
    }

    /// When this transaction's maximum lifetime ends, if it has one and
    /// has started (its first branch).
    pub fn life_end(&self, cfg: &TimerCfg) -> Option<u64> {
        if self.nbranches == 0 {
            return None;
        }
        self.life_from_birth(cfg)
    }

    /// [`Tx::life_end`] once `born` is set (the first branch is being added).
    pub(super) fn life_from_birth(&self, cfg: &TimerCfg) -> Option<u64> {
        let life = if self.is_invite() {
            cfg.max_inv_lifetime
        } else {
            cfg.max_noninv_lifetime
        };
        (life != 0).then(|| self.born.saturating_add(u64::from(life)))
    }
}

/// An FR deadline no later than the end of the transaction's life: the
/// lifetime acts through the FR timers, so its expiry ends a branch just
/// as FR does (408 or 487, CANCEL after a provisional, failure route).
/// A lifetime lengthened on the fly does not give back what it cut; a
/// branch added after the end (from a failure route) gets the next tick.
pub(super) fn capped(fr_at: u64, life_end: Option<u64>) -> u64 {
    match life_end {
        Some(end) => fr_at.min(end.max(1)),
        None => fr_at,
    }
}
