//! The transaction's single timer: everything due fires in one call, and
//! [`Tx::next_deadline`] tells the driver when to call again.
//!
//! A late tick catches up without a burst: each due deadline fires once
//! and its successor is scheduled from `now`.

use super::{Actions, Phase, TimerCfg, Tx};

impl Tx {
    /// Timers: everything due at `now`.
    pub fn on_timer(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions) {
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
