//! The TCP main process's counters in shared memory, so the FIFO and unix
//! socket servers can answer `core.tcp_info` (and tests can see the
//! connection table return to idle) without asking that process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use shm::{Region, ShmError};

use super::StreamStats;

shm::shm_struct! {
    /// [`StreamStats`], one atomic per field.
    #[derive(Debug, Default)]
    pub struct SharedStats {
        pub open: AtomicU64,
        pub accepted: AtomicU64,
        pub connected: AtomicU64,
        pub closed: AtomicU64,
        pub idle_closed: AtomicU64,
        pub errors: AtomicU64,
    }
}

static SHARED: OnceLock<&'static SharedStats> = OnceLock::new();

/// Allocate the counters and the direct-write slots. Once, before the
/// fork.
pub fn init(region: &'static Region) -> Result<(), ShmError> {
    if SHARED.get().is_some() {
        return Ok(());
    }
    super::slots::init(region)?;
    let off = region.alloc(SharedStats::default())?;
    let _ = SHARED.set(region.get(off));
    Ok(())
}

/// Publish the TCP main process's counters (it alone writes them).
pub fn publish(s: &StreamStats) {
    if let Some(c) = SHARED.get() {
        for (a, v) in [
            (&c.open, s.open),
            (&c.accepted, s.accepted),
            (&c.connected, s.connected),
            (&c.closed, s.closed),
            (&c.idle_closed, s.idle_closed),
            (&c.errors, s.errors),
        ] {
            a.store(v, Ordering::Relaxed);
        }
    }
}

/// The last published counters; `None` when no stream is served.
pub fn snapshot() -> Option<StreamStats> {
    let c = SHARED.get()?;
    Some(StreamStats {
        open: c.open.load(Ordering::Relaxed),
        accepted: c.accepted.load(Ordering::Relaxed),
        connected: c.connected.load(Ordering::Relaxed),
        closed: c.closed.load(Ordering::Relaxed),
        idle_closed: c.idle_closed.load(Ordering::Relaxed),
        errors: c.errors.load(Ordering::Relaxed),
    })
}
