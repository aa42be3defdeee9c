//! The timer process and the shared timer wheel it drives.
//!
//! The wheel lives in shared memory (created by the supervisor before the
//! fork); workers arm and disarm timers embedded in their shm objects, the
//! timer process expires them and dispatches each by its kind to the
//! handler registered for it (tm registers retransmission, FR, WAIT and
//! DELETE handlers). The clock is monotonic; a late tick is caught up, not
//! skipped, and the worst lateness is kept as a figure for `t_stats`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use shm::{monotonic_ms, Region, ShmError, ShmOff, ShmTimerWheel, TimerLink};

/// Longest sleep between two expiries: a timer armed while the timer
/// process sleeps is at most this late.
pub const TICK_MS: u64 = 5;

/// A handler for one timer kind; runs in the timer process.
pub type Handler = fn(&'static Region, ShmOff<TimerLink>);

/// Number of distinct timer kinds (kind 0 = unset).
pub const MAX_KINDS: usize = 16;

/// Handles created before the fork; copied into every child with the
/// address space.
struct Shared {
    region: &'static Region,
    wheel: ShmOff<ShmTimerWheel>,
    /// Milliseconds of the timer process's last pass (heartbeat).
    heartbeat: ShmOff<AtomicU64>,
    /// Worst lateness of a pass, ms.
    max_lag: ShmOff<AtomicU64>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Handlers by kind, registered before the fork (each child has a copy;
/// every process is single-threaded, so the mutex never contends).
static HANDLERS: Mutex<[Option<Handler>; MAX_KINDS]> = Mutex::new([None; MAX_KINDS]);

/// Register the handler for timers of `kind` (1..MAX_KINDS). Before the fork.
pub fn register(kind: u32, h: Handler) -> bool {
    let Ok(mut hs) = HANDLERS.lock() else {
        return false;
    };
    match hs.get_mut(kind as usize) {
        Some(slot) if kind != 0 => {
            *slot = Some(h);
            true
        }
        _ => false,
    }
}

fn handler(kind: usize) -> Option<Handler> {
    HANDLERS
        .lock()
        .ok()
        .and_then(|hs| hs.get(kind).copied().flatten())
}

#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    #[error("shared memory: {0}")]
    Shm(#[from] ShmError),
    #[error("timers are already initialised")]
    AlreadyInit,
}

/// Create the wheel in `region`. Call once, before forking.
pub fn init(region: &'static Region) -> Result<(), TimerError> {
    let now = monotonic_ms();
    let wheel = ShmTimerWheel::create(region, shm::wheel::DEFAULT_BITS, now)?;
    let heartbeat = region.alloc(AtomicU64::new(now))?;
    let max_lag = region.alloc(AtomicU64::new(0))?;
    SHARED
        .set(Shared {
            region,
            wheel,
            heartbeat,
            max_lag,
        })
        .map_err(|_| TimerError::AlreadyInit)
}

fn shared() -> Option<&'static Shared> {
    SHARED.get()
}

/// Arm `link` (owned by the caller's shm object) to fire at `deadline_ms`.
pub fn arm(link: ShmOff<TimerLink>, kind: u32, deadline_ms: u64) -> bool {
    let Some(s) = shared() else { return false };
    s.region.get(link).set_kind(kind);
    s.region.get(s.wheel).arm(s.region, link, deadline_ms);
    true
}

/// Disarm; false when the timer already fired or was not armed.
pub fn disarm(link: ShmOff<TimerLink>) -> bool {
    match shared() {
        Some(s) => s.region.get(s.wheel).disarm(s.region, link),
        None => false,
    }
}

/// The handler firing `link`, holding the timer's reference on its own
/// record (`proc::shared::hold`), is done with it: the wheel forgets the
/// firing, so that if this process dies now the reference is released by
/// its death cleanup rather than fired again by the next timer process
/// (`shm::wheel` module doc).
pub fn claim(link: ShmOff<TimerLink>) {
    if let Some(s) = shared() {
        s.region.get(s.wheel).claim(link);
    }
}

/// The timers the dead process `pid` was firing and had not claimed: the
/// next timer process fires them, so their references are not the dead
/// process's to release.
pub fn in_flight_of(pid: i32) -> Vec<ShmOff<TimerLink>> {
    match (shared(), u32::try_from(pid)) {
        (Some(s), Ok(pid)) => s.region.get(s.wheel).in_flight_of(pid),
        _ => Vec::new(),
    }
}

/// Milliseconds since the timer process last ran, and its worst lag.
pub fn health() -> Option<(u64, u64)> {
    let s = shared()?;
    let beat = s.region.get(s.heartbeat).load(Ordering::Relaxed);
    let lag = s.region.get(s.max_lag).load(Ordering::Relaxed);
    Some((monotonic_ms().saturating_sub(beat), lag))
}

/// One pass: fire everything due at `now`.
fn pass(s: &'static Shared, now: u64) -> usize {
    let region = s.region;
    let wheel = region.get(s.wheel);
    let lag = now.saturating_sub(wheel.cursor_ms().saturating_add(TICK_MS));
    region.get(s.max_lag).fetch_max(lag, Ordering::Relaxed);
    let fired = wheel.expire(region, now, |link| {
        let kind = region.get(link).kind() as usize;
        match handler(kind) {
            Some(h) => h(region, link),
            None => log::error!("timer of unknown kind {kind} fired"),
        }
    });
    region.get(s.heartbeat).store(now, Ordering::Relaxed);
    fired
}

/// The timer process's loop; never returns while the server runs.
pub fn run() -> i32 {
    let Some(s) = shared() else {
        log::error!("timer process started without timers");
        return 1;
    };
    loop {
        crate::proc::shared::beat();
        let now = monotonic_ms();
        pass(s, now);
        let wheel = s.region.get(s.wheel);
        let next = wheel.next_deadline(s.region).unwrap_or(u64::MAX);
        let sleep = next.saturating_sub(monotonic_ms()).clamp(1, TICK_MS);
        std::thread::sleep(Duration::from_millis(sleep));
    }
}
