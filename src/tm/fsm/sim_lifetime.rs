//! `max_inv_lifetime` / `max_noninv_lifetime` and `t_set_max_lifetime`:
//! the transaction's life, counted from its first branch, caps every FR
//! timer, and its end is never the quiet ring-out.

use super::sim::Sim;
use super::Action::*;
use super::{Phase, TxTimers};

#[test]
fn a_ringing_invite_ends_at_its_lifetime_with_cancel_and_408_even_when_quiet() {
    let mut s = Sim::new(true);
    // noisy_ctimer off: an FR_INV expiry alone would end it silently.
    s.cfg.max_inv_lifetime = 50_000;
    s.at(1000).branch();
    s.at(2000).reply(0, 180);
    assert_eq!(s.tx.branches[0].fr_at, 51_000, "FR_INV cut by the life");
    let acts = s.run_until(51_000);
    assert_eq!(
        acts,
        [
            (51_000, SendCancel(0)),
            (
                51_000,
                StoreLocalReply {
                    branch: 0,
                    code: 408
                }
            ),
            (
                51_000,
                RelayStored {
                    branch: 0,
                    as_code: 408
                }
            ),
            (51_000, Completed { code: 408 }),
        ]
    );
    assert_eq!(s.phase(), Phase::Completed);
}

#[test]
fn branches_added_later_share_the_first_ones_lifetime() {
    let mut s = Sim::new(false);
    s.cfg.max_noninv_lifetime = 10_000;
    s.cfg.max_inv_lifetime = 1;
    s.branch();
    s.at(4000).branch();
    assert_eq!(s.tx.branches[0].fr_at, 10_000);
    assert_eq!(s.tx.branches[1].fr_at, 10_000, "not 4000 + its own life");
    s.run_until(10_000);
    assert_eq!(s.times(Completed { code: 408 }), [10_000]);
}

#[test]
fn no_lifetime_by_default_and_a_short_fr_still_wins() {
    let mut s = Sim::new(true);
    s.branch();
    assert_eq!(s.tx.branches[0].fr_at, 30_000);
    s.cfg.max_inv_lifetime = 100_000;
    let mut s2 = Sim::new(true);
    s2.cfg = s.cfg;
    s2.branch();
    assert_eq!(s2.tx.branches[0].fr_at, 30_000);
}

#[test]
fn set_on_the_fly_it_cuts_running_timers_and_reset_restores_the_config() {
    let mut s = Sim::new(true);
    s.cfg.max_inv_lifetime = 100_000;
    s.branch();
    s.at(1000).reply(0, 180);
    assert_eq!(s.tx.branches[0].fr_at, 100_000);
    let cfg = s.cfg;
    s.tx.set_overrides(
        TxTimers {
            life: 20_000,
            ..s.tx.overrides()
        },
        &cfg,
    );
    assert_eq!(s.tx.branches[0].fr_at, 20_000);
    s.tx.set_overrides(TxTimers::default(), &cfg);
    assert_eq!(s.tx.overrides(), TxTimers::default());
    assert_eq!(s.tx.life_end(&s.tx.timers(&cfg)), Some(100_000));
}
