//! Admission control: when a worker falls behind, new requests are turned
//! away with a cheap stateless 503 before any transaction exists, while
//! replies, ACKs, CANCELs, in-dialog requests and retransmissions of known
//! transactions are still served.
//!
//! Why: past saturation a proxy that accepts everything spends its CPU on
//! calls that time out anyway, their retransmissions pile up in the
//! socket, and goodput collapses (Kamailio 5.6 falls to about a third of
//! its peak). Finishing the calls already admitted and refusing the rest
//! early keeps goodput near the peak.
//!
//! "Behind" is measured, not guessed: the kernel stamps every datagram
//! with its arrival time (SO_TIMESTAMPNS), so the worker knows how long
//! each message waited in its socket. Shedding starts when that wait
//! passes [`ENTER_QUEUED`] and stops when it falls under [`LEAVE_QUEUED`]
//! (hysteresis, so one late message does not flip the state back and
//! forth). The thresholds sit well under RFC 3261's T1 (500 ms): a
//! request answered within them does not provoke retransmissions.

use std::time::Duration;

/// Queueing delay from which new requests are refused.
pub const ENTER_QUEUED: Duration = Duration::from_millis(80);
/// Queueing delay under which they are admitted again.
pub const LEAVE_QUEUED: Duration = Duration::from_millis(20);
/// The 503's `Retry-After`, shared with the other overload answers.
pub use crate::route::ctx::RETRY_AFTER;

/// One worker's view of its own backlog.
#[derive(Debug, Default)]
pub struct Overload {
    shedding: bool,
    /// Requests refused since start (for the log and `ps`-style figures).
    pub shed: u64,
    /// Times shedding started.
    pub episodes: u64,
}

impl Overload {
    /// Account for one received message that waited `queued` in the
    /// socket; returns whether new requests are to be refused now.
    pub fn observe(&mut self, queued: Duration) -> bool {
        if self.shedding {
            if queued < LEAVE_QUEUED {
                self.shedding = false;
            }
        } else if queued >= ENTER_QUEUED {
            self.shedding = true;
            self.episodes += 1;
        }
        self.shedding
    }

    pub fn shedding(&self) -> bool {
        self.shedding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn hysteresis_between_the_thresholds() {
        let mut o = Overload::default();
        assert!(!o.observe(ms(0)));
        assert!(!o.observe(ms(79)));
        assert!(o.observe(ms(80)));
        // Between the thresholds the state holds, both ways.
        assert!(o.observe(ms(50)));
        assert!(o.observe(ms(20)));
        assert!(!o.observe(ms(19)));
        assert!(!o.observe(ms(50)));
        assert!(o.observe(ms(500)));
        assert_eq!(o.episodes, 2);
    }
}
