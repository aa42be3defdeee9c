//! Rate-limited logging for messages a peer can trigger at will.
//!
//! Anything a remote party (a SIP peer, a FIFO writer, a unix socket
//! client) can make us log once, it can make us log a million times: that
//! fills the disk and buries the line that matters. Such call sites log
//! through [`warn_limited!`](crate::warn_limited) (or
//! [`log_limited!`](crate::log_limited) for another level), which gives
//! each call site its own token bucket:
//!
//! - up to [`BURST`] lines pass at once, then one more every
//!   `INTERVAL / BURST` (10 lines, then one every 6 s, per call site and
//!   per process);
//! - the lines held back are counted, and the next line that passes is
//!   preceded by one `… N similar messages suppressed (file:line)` line,
//!   so nothing is hidden silently.
//!
//! ```ignore
//! crate::warn_limited!("unix_sock: reply to {} not sent: {e}", p.display());
//! ```
//!
//! The bucket is checked only when the level is enabled, so a disabled
//! message costs what a plain `log::warn!` costs. A call site with other
//! needs can hold its own [`RateLimit`] and call [`RateLimit::check_at`]
//! with its own clock; that is also how the bucket is tested.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines a call site may log at once.
pub const BURST: u32 = 10;
/// Time in which a drained bucket refills completely.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// What a call site should do with its message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` lines were held back since the last one.
    Emit { suppressed: u64 },
    /// Hold it back (it is counted).
    Suppress,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens as of `at`, in units of one line. Starts full (`None`).
    tokens: f64,
    at: Option<Instant>,
    suppressed: u64,
}

/// A token bucket: `burst` lines at once, refilled at `burst` per
/// `interval`. Lives in a `static` per call site (the macros make one).
/// The std `Mutex` is process-local, which is what is wanted: every
/// process is single-threaded, the lock is never held across a call out,
/// so a fork never copies it locked, and each process limits its own
/// output.
#[derive(Debug)]
pub struct RateLimit {
    burst: u32,
    interval: Duration,
    state: Mutex<Bucket>,
}

impl RateLimit {
    /// A full bucket of `burst` lines refilled over `interval`. `burst`
    /// 0 is taken as 1 (a limiter that never lets anything through would
    /// hide the problem it is meant to report).
    pub const fn new(burst: u32, interval: Duration) -> Self {
        RateLimit {
            burst: if burst == 0 { 1 } else { burst },
            interval,
            state: Mutex::new(Bucket {
                tokens: 0.0,
                at: None,
                suppressed: 0,
            }),
        }
    }

    /// The bucket the macros use: [`BURST`] per [`INTERVAL`].
    pub const fn standard() -> Self {
        Self::new(BURST, INTERVAL)
    }

    /// Whether a line may be logged now.
    pub fn check(&self) -> Verdict {
        self.check_at(Instant::now())
    }

    /// [`check`](Self::check) with the caller's clock. A clock that goes
    /// backwards refills nothing.
    pub fn check_at(&self, now: Instant) -> Verdict {
        let Ok(mut b) = self.state.lock() else {
            // Only a panic while holding the lock poisons it, and the
            // release profile aborts on panic; let the line through.
            return Verdict::Emit { suppressed: 0 };
        };
        let cap = f64::from(self.burst);
        b.tokens = match b.at {
            None => cap,
            Some(prev) => {
                let dt = now.saturating_duration_since(prev).as_secs_f64();
                let per_sec = cap / self.interval.as_secs_f64().max(1e-9);
                (b.tokens + dt * per_sec).min(cap)
            }
        };
        b.at = Some(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            let suppressed = std::mem::take(&mut b.suppressed);
            Verdict::Emit { suppressed }
        } else {
            b.suppressed = b.suppressed.saturating_add(1);
            Verdict::Suppress
        }
    }

    /// Logs `args` at `lvl` if this bucket lets it through, preceded by
    /// the count of lines held back since the last one (`site` names the
    /// call site in that line). The caller checks that `lvl` is enabled
    /// first, so a disabled level costs neither the lock nor formatting.
    /// What [`log_limited!`](crate::log_limited) expands to, and what a
    /// call site with its own bucket size (the message trace) calls.
    pub fn log(&self, lvl: log::Level, site: (&str, u32), args: std::fmt::Arguments<'_>) {
        if let Verdict::Emit { suppressed } = self.check() {
            if suppressed > 0 {
                log::log!(
                    lvl,
                    "{} similar messages suppressed ({}:{})",
                    suppressed,
                    site.0,
                    site.1
                );
            }
            log::log!(lvl, "{}", args);
        }
    }
}

/// `log::log!` through a per-call-site [`RateLimit`]: at most
/// [`BURST`] lines at once, then one every `INTERVAL / BURST`; what is
/// held back is reported as one line before the next that passes.
/// `log_limited!(log::Level::Warn, "fmt", args…)`.
#[macro_export]
macro_rules! log_limited {
    ($lvl:expr, $($arg:tt)+) => {{
        static LIMIT: $crate::logging::rate::RateLimit =
            $crate::logging::rate::RateLimit::standard();
        let lvl: ::log::Level = $lvl;
        if ::log::log_enabled!(lvl) {
            LIMIT.log(lvl, (file!(), line!()), format_args!($($arg)+));
        }
    }};
}

/// [`log_limited!`] at warning level: for every warning a peer can
/// trigger. `warn_limited!("fifo: line {l:?} skipped: {e}")`.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {
        $crate::log_limited!(::log::Level::Warn, $($arg)+)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emits(v: Verdict) -> Option<u64> {
        match v {
            Verdict::Emit { suppressed } => Some(suppressed),
            Verdict::Suppress => None,
        }
    }

    #[test]
    fn burst_then_suppressed_then_counted() {
        let rl = RateLimit::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(emits(rl.check_at(t0)), Some(0));
        }
        for _ in 0..1000 {
            assert_eq!(rl.check_at(t0), Verdict::Suppress);
        }
        // One token refills every 10 s.
        assert_eq!(rl.check_at(t0 + Duration::from_secs(9)), Verdict::Suppress);
        assert_eq!(emits(rl.check_at(t0 + Duration::from_secs(10))), Some(1001));
        assert_eq!(rl.check_at(t0 + Duration::from_secs(10)), Verdict::Suppress);
        assert_eq!(emits(rl.check_at(t0 + Duration::from_secs(20))), Some(1));
    }

    #[test]
    fn a_flood_is_bounded_by_the_rate() {
        // 100 attempts a second for 10 minutes: what passes is the burst
        // plus one line per refill period, and every attempt is counted.
        let rl = RateLimit::standard();
        let t0 = Instant::now();
        let (mut lines, mut reported) = (0u64, 0u64);
        let attempts = 100 * 600;
        for i in 0..attempts {
            let now = t0 + Duration::from_millis(10 * i);
            if let Verdict::Emit { suppressed } = rl.check_at(now) {
                lines += 1;
                reported += suppressed;
            }
        }
        let per = INTERVAL.as_secs_f64() / f64::from(BURST);
        let max = u64::from(BURST) + (600.0 / per) as u64 + 1;
        assert!(lines <= max, "{lines} lines > {max}");
        assert!(lines >= max - 2, "{lines} lines, expected about {max}");
        // Held back lines are all reported but the ones after the last
        // emitted line.
        assert!(attempts - lines - reported < 1000, "{reported} reported");
    }

    #[test]
    fn idle_time_refills_only_to_the_burst() {
        let rl = RateLimit::new(2, Duration::from_secs(2));
        let t0 = Instant::now();
        assert!(emits(rl.check_at(t0)).is_some());
        let later = t0 + Duration::from_secs(3600);
        assert!(emits(rl.check_at(later)).is_some());
        assert!(emits(rl.check_at(later)).is_some());
        assert_eq!(rl.check_at(later), Verdict::Suppress);
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let rl = RateLimit::new(1, Duration::from_secs(1));
        let t0 = Instant::now() + Duration::from_secs(5);
        assert!(emits(rl.check_at(t0)).is_some());
        assert_eq!(rl.check_at(t0 - Duration::from_secs(5)), Verdict::Suppress);
    }

    #[test]
    fn zero_burst_still_lets_one_through() {
        let rl = RateLimit::new(0, Duration::from_secs(1));
        assert!(emits(rl.check()).is_some());
    }

    #[test]
    fn the_macro_compiles_at_any_level() {
        // Each expansion owns its static; a disabled level skips the
        // bucket entirely.
        for i in 0..3 {
            crate::warn_limited!("warn {i}");
            crate::log_limited!(log::Level::Debug, "debug {}", i);
        }
    }
}
