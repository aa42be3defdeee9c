//! The heartbeat as the layers below `proc` see it. net's loops (the TCP
//! main process, the DNS resolver's threads) must beat, but the process
//! table they beat into belongs to `proc`, above them: `proc::shared`
//! installs its functions here once, before the first fork, and these
//! calls reach them (nothing happens before that, or in tests).

use std::sync::OnceLock;
use std::time::Duration;

/// Threads of one process that can beat separately (the DNS resolver's).
pub const BEAT_LANES: usize = 4;
/// The longest a process waits for input before it beats again.
pub const BEAT_EVERY: Duration = Duration::from_millis(500);

/// What `proc::shared` provides.
#[derive(Debug, Clone, Copy)]
pub struct Hooks {
    /// The calling thread's lane beats now.
    pub beat_lane: fn(usize),
    /// The lane stops being watched (its thread ended).
    pub end_lane: fn(usize),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the process table's functions (once; later calls are ignored).
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// This process (lane 0) is alive and looping.
pub fn beat() {
    beat_lane(0);
}

/// Lane `lane` of this process is alive and looping.
pub fn beat_lane(lane: usize) {
    if let Some(h) = HOOKS.get() {
        (h.beat_lane)(lane);
    }
}

/// Lane `lane`'s thread ended: no longer watched.
pub fn end_lane(lane: usize) {
    if let Some(h) = HOOKS.get() {
        (h.end_lane)(lane);
    }
}
