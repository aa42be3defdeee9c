//! tm's counters in shared memory (`t_stats`, the SIGUSR1 line): a leaf
//! that cells, the table and the driver all update.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use shm::{Region, ShmError};

shm::shm_struct! {
    /// Counters behind `t_stats` and the SIGUSR1 report.
    #[derive(Debug, Default)]
    pub struct TmStats {
        pub created: AtomicU64,
        pub freed: AtomicU64,
        /// Cells currently in the wait phase.
        pub waiting: AtomicU64,
        /// Transactions started by our own UAC.
        pub local: AtomicU64,
        /// Final replies generated here rather than relayed.
        pub replied_locally: AtomicU64,
        /// Final replies sent upstream by class 1..6 (index 0 unused).
        pub completed: [AtomicU64; 7],
        /// Every reply sent upstream by class 1..6 (index 0 unused),
        /// provisional ones included, relayed or made here; first sends
        /// only, not retransmissions.
        pub sent: [AtomicU64; 7],
    }
}

static STATS: OnceLock<&'static TmStats> = OnceLock::new();

/// Allocate the counters. Once, before the fork (with the table).
pub fn init(region: &'static Region) -> Result<(), ShmError> {
    if STATS.get().is_some() {
        // A second init (tests) keeps the first counters.
        return Ok(());
    }
    let off = region.alloc(TmStats::default())?;
    let _ = STATS.set(region.get(off));
    Ok(())
}

/// The counters, once [`init`] ran.
pub fn stats() -> Option<&'static TmStats> {
    STATS.get().copied()
}

/// A cell was freed.
pub fn note_freed() {
    if let Some(s) = stats() {
        s.freed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A reply with status `code` went upstream (relayed or local).
pub fn note_sent(code: u16) {
    if let Some(s) = stats() {
        let class = usize::from(code / 100).min(6);
        s.sent[class].fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub created: u64,
    pub freed: u64,
    pub waiting: u64,
    pub local: u64,
    pub replied_locally: u64,
    pub completed: [u64; 7],
    pub sent: [u64; 7],
}

impl StatsSnapshot {
    pub fn current(&self) -> u64 {
        self.created.saturating_sub(self.freed)
    }
}

pub fn snapshot() -> StatsSnapshot {
    let Some(s) = stats() else {
        return StatsSnapshot::default();
    };
    let load = |from: &[AtomicU64; 7]| {
        let mut out = [0u64; 7];
        for (c, a) in out.iter_mut().zip(from.iter()) {
            *c = a.load(Ordering::Relaxed);
        }
        out
    };
    StatsSnapshot {
        created: s.created.load(Ordering::Relaxed),
        freed: s.freed.load(Ordering::Relaxed),
        waiting: s.waiting.load(Ordering::Relaxed),
        local: s.local.load(Ordering::Relaxed),
        replied_locally: s.replied_locally.load(Ordering::Relaxed),
        completed: load(&s.completed),
        sent: load(&s.sent),
    }
}
