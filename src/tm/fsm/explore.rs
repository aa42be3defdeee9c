//! Event sequences against the machine, driven the way the driver drives
//! it (failure route answered at once, timers at each deadline), with the
//! invariants checked after every call. The choices come from a [`Pick`]:
//! a seeded generator in the property test (`sim_random`), the input
//! bytes under the fuzzer ([`fuzz_events`]). A broken invariant panics
//! with the trace of the run.

use super::{flags, Action, Actions, Phase, TimerCfg, Tx, UnrepliedCancel, MAX_BRANCHES};

/// Where a run's choices come from.
pub trait Pick {
    /// In `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64;
    /// True `pct` times in a hundred.
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

impl Pick for shm::TestRng {
    fn below(&mut self, n: u64) -> u64 {
        shm::TestRng::below(self, n)
    }
}

/// Choices read from fuzzer input: as many bytes as `n` needs, little
/// endian; zeros once the input is used up.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Pick for Bytes<'_> {
    fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        let width = (64 - (n - 1).leading_zeros()).div_ceil(8) as usize;
        let (take, rest) = self.0.split_at(width.min(self.0.len()));
        self.0 = rest;
        let v = take
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        v % n
    }
}

const CODES: &[u16] = &[
    100, 180, 183, 200, 202, 302, 401, 404, 407, 408, 480, 486, 487, 500, 503, 603,
];

/// One transaction under test and what it has done so far.
pub struct Run {
    tx: Tx,
    cfg: TimerCfg,
    now: u64,
    out: Actions,
    completed: usize,
    relayed_stored: usize,
    terminated: usize,
    trace: Vec<String>,
}

impl Run {
    /// A transaction and timer settings drawn from `rng`, at a random time.
    pub fn new(rng: &mut impl Pick, label: String) -> Run {
        let mut tx = Tx::new(rng.chance(70), rng.chance(15), rng.chance(20));
        for bit in [flags::FAILURE_ROUTE, flags::NOISY_FORCED, flags::NO_RELAY] {
            if rng.chance(if bit == flags::FAILURE_ROUTE { 40 } else { 10 }) {
                tx.flags |= bit;
            }
        }
        if rng.chance(20) {
            tx.fr_override = 1 + rng.below(20_000) as u32;
            tx.fr_inv_override = 1 + rng.below(60_000) as u32;
        }
        let cfg = TimerCfg {
            noisy_ctimer: rng.chance(50),
            restart_fr_on_each_reply: rng.chance(50),
            cancel_b_method: UnrepliedCancel::from_int(rng.below(3) as i64).unwrap_or_default(),
            max_inv_lifetime: if rng.chance(20) {
                1 + rng.below(90_000) as u32
            } else {
                0
            },
            max_noninv_lifetime: if rng.chance(20) {
                1 + rng.below(30_000) as u32
            } else {
                0
            },
            ..TimerCfg::default()
        };
        let mut run = Run {
            tx,
            cfg,
            now: rng.below(1 << 40),
            out: Actions::new(),
            completed: 0,
            relayed_stored: 0,
            terminated: 0,
            trace: vec![label],
        };
        if rng.chance(80) {
            let _ = run.tx.add_branch(run.now, &cfg, rng.chance(20), false);
        }
        run
    }

    /// The end of a run: the driver releases a transaction nobody
    /// forwarded or answered, then time passes; the transaction must
    /// have terminated once, with no timer left.
    pub fn finish(&mut self, rng: &mut impl Pick) {
        if self.tx.phase() == Phase::Proceeding && self.tx.branch_count() == 0 {
            self.tx.release(self.now, &self.cfg, &mut self.out);
            self.check(rng, None);
        }
        let end = self.now + 24 * 3600 * 1000;
        self.timers_until(rng, end);
        assert_eq!(
            self.tx.phase(),
            Phase::Terminated,
            "{}",
            self.trace.join("\n")
        );
        assert_eq!(self.terminated, 1);
        assert_eq!(self.tx.next_deadline(), None);
    }

    /// Check what the last call pushed. `reply_code` is the code of the
    /// reply being handled, if the call was `on_reply`.
    fn check(&mut self, rng: &mut impl Pick, reply_code: Option<u16>) {
        let acts: Vec<Action> = self.out.drain().collect();
        self.trace
            .push(format!("{} {:?} -> {acts:?}", self.now, reply_code));
        let n = self.tx.branch_count() as u8;
        let mut failure = None;
        let mut failover = None;
        for (i, a) in acts.iter().enumerate() {
            match *a {
                Action::RelayReceived(b) => {
                    assert_ne!(
                        reply_code,
                        Some(100),
                        "100 relayed\n{}",
                        self.trace.join("\n")
                    );
                    assert!(reply_code.is_some(), "RelayReceived outside on_reply");
                    assert!(!self.tx.no_upstream());
                    assert!(b < n);
                }
                Action::RelayStored { branch, as_code } => {
                    self.relayed_stored += 1;
                    assert!(branch < n && as_code >= 300 && as_code != 503);
                    assert_eq!(acts.get(i + 1), Some(&Action::Completed { code: as_code }));
                }
                Action::Completed { .. } => self.completed += 1,
                Action::Terminate => self.terminated += 1,
                Action::RunFailure { picked } => {
                    assert!(picked < n);
                    failure = Some(picked);
                }
                Action::Failover(b) => {
                    assert!(b < n && self.tx.has(flags::FAILOVER));
                    assert!(!self.tx.has(flags::CANCELED));
                    failover = Some(b);
                }
                Action::RetransmitRequest(b)
                | Action::SendCancel(b)
                | Action::RetransmitCancel(b)
                | Action::SendAck(b)
                | Action::StoreReply(b)
                | Action::RunOnReply(b)
                | Action::Unanswered(b)
                | Action::StoreLocalReply { branch: b, .. } => assert!(b < n),
                Action::ResendUasReply => {}
            }
        }
        assert!(
            self.completed <= 1,
            "two finals upstream\n{}",
            self.trace.join("\n")
        );
        assert!(
            self.relayed_stored <= 1,
            "two stored finals relayed\n{}",
            self.trace.join("\n")
        );
        assert!(self.terminated <= 1);
        assert!(
            self.tx.is_sane(),
            "a state the machine reached fails is_sane: {:?}\n{}",
            self.tx,
            self.trace.join("\n")
        );
        if let Some(d) = self.tx.next_deadline() {
            assert!(
                d > self.now,
                "deadline {d} not after {}\n{}",
                self.now,
                self.trace.join("\n")
            );
        }
        assert!(failure.is_none() || failover.is_none());
        if failure.is_some() {
            self.failure_route(rng);
        }
        if failover.is_some() {
            self.failover(rng);
        }
    }

    /// What the driver does on a failover: add the branch to the next
    /// address (which may have more, or fail at once), or find none.
    fn failover(&mut self, rng: &mut impl Pick) {
        if rng.chance(70) {
            if let Ok(b) = self
                .tx
                .add_branch(self.now, &self.cfg, rng.chance(20), false)
            {
                self.tx.branches[usize::from(b)].more = u8::from(rng.chance(50));
                if rng.chance(20) {
                    self.tx.on_reply(b, 503, self.now, &self.cfg, &mut self.out);
                    self.check(rng, Some(503));
                }
            }
        }
        self.tx.failover_done(self.now, &self.cfg, &mut self.out);
        self.check(rng, None);
    }

    /// What a script's failure route may do: add branches, reply, or nothing.
    fn failure_route(&mut self, rng: &mut impl Pick) {
        assert!(self.tx.has(flags::IN_FAILURE));
        let mut added = false;
        let mut replied = false;
        match rng.below(4) {
            0 => {
                for _ in 0..=rng.below(2) {
                    added |= self
                        .tx
                        .add_branch(self.now, &self.cfg, rng.chance(20), false)
                        .is_ok();
                }
                if rng.chance(50) {
                    self.tx.flags |= flags::FAILURE_ROUTE;
                }
            }
            1 => {
                self.tx.on_local_reply(
                    480 + rng.below(10) as u16,
                    self.now,
                    &self.cfg,
                    &mut self.out,
                );
                replied = true;
                self.check(rng, None);
            }
            _ => {}
        }
        self.tx
            .after_failure(added, replied, self.now, &self.cfg, &mut self.out);
        self.check(rng, None);
    }

    fn timers_until(&mut self, rng: &mut impl Pick, t: u64) {
        while let Some(d) = self.tx.next_deadline() {
            if d > t {
                break;
            }
            assert!(d >= self.now);
            self.now = d;
            self.tx.on_timer(d, &self.cfg, &mut self.out);
            self.check(rng, None);
        }
        self.now = self.now.max(t);
    }

    /// One event of a random kind, then a little time passes.
    pub fn event(&mut self, rng: &mut impl Pick) {
        let now = self.now;
        let cfg = self.cfg;
        match rng.below(100) {
            0..=39 => {
                let b = rng.below(self.tx.branch_count() as u64 + 1) as u8;
                let code = CODES[rng.below(CODES.len() as u64) as usize];
                self.tx.on_reply(b, code, now, &cfg, &mut self.out);
                self.check(rng, Some(code));
            }
            40..=64 => {
                let t = self.now + rng.below(40_000);
                self.timers_until(rng, t);
            }
            65..=74 => {
                if let Ok(b) = self.tx.add_branch(now, &cfg, rng.chance(20), rng.chance(5)) {
                    // A name with more addresses (use_dns_failover).
                    self.tx.branches[usize::from(b)].more = u8::from(rng.chance(30));
                }
                self.check(rng, None);
            }
            75..=79 => {
                self.tx.on_cancel(now, &cfg, &mut self.out);
                self.check(rng, None);
            }
            80..=84 => {
                let b = rng.below(MAX_BRANCHES as u64) as u8;
                self.tx.on_cancel_reply(b, now);
                self.check(rng, None);
            }
            85..=89 => {
                self.tx.on_ack(now, &cfg, &mut self.out);
                self.check(rng, None);
            }
            90..=94 => {
                let code = [100, 180, 200, 404, 486, 500][rng.below(6) as usize];
                self.tx.on_local_reply(code, now, &cfg, &mut self.out);
                self.check(rng, None);
            }
            95..=97 => {
                let _ = self.tx.on_request_retransmission(&mut self.out);
                self.check(rng, None);
            }
            _ => {
                self.tx.release(now, &cfg, &mut self.out);
                self.check(rng, None);
            }
        }
        // Time moves on a little between events.
        let t = self.now + rng.below(300);
        self.timers_until(rng, t);
    }
}

/// Fuzz target body: a transaction set up from the first bytes, then
/// one event per few bytes until the input is used up (at most 400).
pub fn fuzz_events(data: &[u8]) {
    let mut src = Bytes(data);
    let mut run = Run::new(&mut src, format!("input {data:?}"));
    for _ in 0..400 {
        if src.is_empty() {
            break;
        }
        run.event(&mut src);
    }
    run.finish(&mut src);
}
