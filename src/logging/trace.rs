//! The message trace of `debug>=4` (SER's L_DBG): one line for each SIP
//! message received and each sent, with its first line, the peer, the
//! transport, the local socket and, when the top Via is one of our branch
//! ids, the transaction it belongs to (`tx hash:label`, as the FIFO's
//! `t_reply` takes it).
//!
//! Below debug 4 a call costs one atomic load and returns: nothing is
//! formatted or scanned. At debug 4 the lines share one token bucket per
//! process ([`TRACE_BURST`] lines at once, then [`TRACE_BURST`] per
//! [`TRACE_INTERVAL`]), so a flood can be traced without filling the disk;
//! what is held back is counted in the next line that passes.
//!
//! Transactions belong to tm, a layer above this one: tm registers the
//! function that reads its branch ids ([`set_transaction_finder`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use super::rate::RateLimit;

/// The SER level of the trace lines (L_DBG).
pub const TRACE_LEVEL: i32 = 4;
/// Lines the trace may write at once.
pub const TRACE_BURST: u32 = 200;
/// Time in which a drained trace bucket refills (200 lines per 10 s
/// sustained: enough to follow a few calls a second, too few to matter
/// on disk under a flood).
pub const TRACE_INTERVAL: Duration = Duration::from_secs(10);
/// Bytes of the first line shown; the rest is cut with `…`.
const FIRST_LINE_MAX: usize = 160;

static LIMIT: RateLimit = RateLimit::new(TRACE_BURST, TRACE_INTERVAL);

/// Reads `(hash, label)` out of a raw message's top Via when it is one of
/// our branch ids.
pub type TransactionFinder = fn(&[u8]) -> Option<(u32, u32)>;

static FINDER: OnceLock<TransactionFinder> = OnceLock::new();

/// Installs tm's branch reader. A second call is ignored (the first one
/// is tm's, and there is only one tm).
pub fn set_transaction_finder(f: TransactionFinder) {
    let _ = FINDER.set(f);
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Received,
    Sent,
}

/// One message as the trace shows it.
#[derive(Debug, Clone, Copy)]
pub struct Traced<'a> {
    pub dir: Direction,
    /// `UDP`, `TCP`, `TLS`.
    pub proto: &'a str,
    /// The other end: the source of a received message, the destination
    /// of a sent one.
    pub peer: SocketAddr,
    /// Our socket it came in on or went out from.
    pub local: SocketAddr,
    pub bytes: &'a [u8],
}

/// Logs `m` when `debug>=4`, through the trace's bucket.
#[inline]
pub fn message(m: Traced<'_>) {
    if !super::enabled(TRACE_LEVEL) {
        return;
    }
    LIMIT.log(log::Level::Debug, (file!(), line!()), format_args!("{m}"));
}

impl fmt::Display for Traced<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verb, prep, back) = match self.dir {
            Direction::Received => ("received", "from", "on"),
            Direction::Sent => ("sent", "to", "from"),
        };
        write!(
            f,
            "{verb} {} {prep} {} {back} {} ({} bytes): {}",
            self.proto,
            self.peer,
            self.local,
            self.bytes.len(),
            FirstLine(self.bytes)
        )?;
        if let Some((hash, label)) = FINDER.get().and_then(|find| find(self.bytes)) {
            write!(f, " [tx {hash}:{label}]")?;
        }
        Ok(())
    }
}

/// A message's first line, escaped (a peer chooses these bytes: no
/// control character may reach the log) and cut at [`FIRST_LINE_MAX`].
struct FirstLine<'a>(&'a [u8]);

impl fmt::Display for FirstLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self
            .0
            .split(|&c| c == b'\r' || c == b'\n')
            .next()
            .unwrap_or_default();
        let cut = line.len() > FIRST_LINE_MAX;
        let shown = line.get(..FIRST_LINE_MAX).unwrap_or(line);
        write!(f, "{}", shown.escape_ascii())?;
        if cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::rate::Verdict;
    use std::time::Instant;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn received_and_sent_lines() {
        let rx = Traced {
            dir: Direction::Received,
            proto: "UDP",
            peer: addr("127.0.0.1:5070"),
            local: addr("127.0.0.1:5060"),
            bytes: b"OPTIONS sip:x@h SIP/2.0\r\nVia: x\r\n\r\n",
        };
        assert_eq!(
            rx.to_string(),
            "received UDP from 127.0.0.1:5070 on 127.0.0.1:5060 (35 bytes): OPTIONS sip:x@h SIP/2.0"
        );
        let tx = Traced {
            dir: Direction::Sent,
            proto: "TCP",
            peer: addr("[::1]:5070"),
            local: addr("[::1]:5060"),
            bytes: b"SIP/2.0 200 OK\r\n",
        };
        assert_eq!(
            tx.to_string(),
            "sent TCP to [::1]:5070 from [::1]:5060 (16 bytes): SIP/2.0 200 OK"
        );
    }

    #[test]
    fn first_line_is_escaped_and_bounded() {
        let evil = b"INVITE sip:a\x1b[31m\x00 SIP/2.0\nX: y";
        assert_eq!(
            FirstLine(evil).to_string(),
            "INVITE sip:a\\x1b[31m\\x00 SIP/2.0"
        );
        let long = vec![b'a'; 1000];
        let shown = FirstLine(&long).to_string();
        assert_eq!(shown.len(), FIRST_LINE_MAX + "…".len());
        assert!(shown.ends_with('…'));
        assert_eq!(FirstLine(b"").to_string(), "");
    }

    #[test]
    fn the_trace_bucket_bounds_a_flood() {
        // The trace's own bucket size: a burst, then the refill rate; what
        // is held back is counted for the next line that passes.
        let rl = RateLimit::new(TRACE_BURST, TRACE_INTERVAL);
        let t0 = Instant::now();
        let passed = (0..10_000)
            .filter(|_| matches!(rl.check_at(t0), Verdict::Emit { .. }))
            .count();
        assert_eq!(passed, TRACE_BURST as usize);
        let per_line = TRACE_INTERVAL / TRACE_BURST;
        assert_eq!(
            rl.check_at(t0 + per_line),
            Verdict::Emit {
                suppressed: 10_000 - u64::from(TRACE_BURST)
            }
        );
        assert_eq!(rl.check_at(t0 + per_line), Verdict::Suppress);
    }
}
