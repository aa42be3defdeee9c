//! One connection of the TCP main process as plain data: what it has
//! read and not framed yet, what waits to be written, and its timers.
//! No socket here: the loop reads into [`Conn::on_data`], writes what
//! [`Conn::pending_out`] shows and reports it with [`Conn::wrote`], and
//! asks [`Conn::deadline`] / [`Conn::handle_timeout`] with its own clock,
//! so every rule below is tested without a socket.
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::net::tls::{TlsSession, TlsSessionError};
use crate::net::Proto;
use crate::sip::stream::Limits;
use crate::sip::{build_reply, Frame, Framer, Msg, ReplyOpts, StreamError};

/// Bytes that may wait for one peer. Past it a message is dropped rather
/// than queued: a peer that reads this slowly is closed by the send
/// timeout soon anyway.
pub const CONN_QUEUE_MAX: usize = 1 << 20;

/// How long a connection refused for a framing error may take to hand
/// the peer our 400/513 and see its end of the stream, before it is
/// closed regardless.
pub const LINGER: Duration = Duration::from_secs(2);

/// RFC 5626 §4.4.1: the answer to a CRLFCRLF keep-alive.
const PONG: &[u8] = b"\r\n";

/// The timeouts that apply to every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Nothing read or written for this long: closed
    /// (`tcp_connection_lifetime`).
    pub idle: Duration,
    /// A queue to the peer that has not moved for this long: closed
    /// (`tcp_send_timeout`; `tls_send_timeout` for TLS).
    pub send: Duration,
    /// A message begun and not finished for this long: closed.
    pub incomplete: Duration,
}

/// Why a connection was closed: the log line's reason, and the stats.
#[derive(Debug)]
pub enum CloseReason {
    /// The peer closed its side between messages.
    PeerClosed,
    /// The peer closed its side in the middle of a message.
    PeerClosedMidMessage { pending: usize },
    /// Nothing read or written for the connection lifetime.
    Idle(Duration),
    /// A message begun and not finished in time (slowloris).
    Incomplete(Duration),
    /// The peer did not take what we queued for it in time.
    SendTimeout(Duration),
    /// The outgoing connection was not established in time.
    ConnectTimeout(Duration),
    /// The outgoing connection failed.
    ConnectFailed(std::io::Error),
    /// The byte stream is not SIP, or a message broke the rules; a 400
    /// or 513 was sent first when the message could be answered.
    Framing(StreamError),
    /// The TLS session failed (handshake, certificate, alert, timeout).
    Tls(TlsSessionError),
    /// Reading or writing the socket failed (a reset, mostly).
    Io(std::io::Error),
    /// Closed to make room under `max_connections`.
    Evicted,
    /// The process is stopping.
    Shutdown,
}

impl CloseReason {
    /// Whether this close is a failure for the stats and the log (an
    /// orderly end by the peer, the idle timer, eviction and shutdown are
    /// not).
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            CloseReason::PeerClosed
                | CloseReason::Idle(_)
                | CloseReason::Evicted
                | CloseReason::Shutdown
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by the peer"),
            CloseReason::PeerClosedMidMessage { pending } => {
                write!(f, "closed by the peer inside a message ({pending} bytes)")
            }
            CloseReason::Idle(d) => write!(f, "idle for {d:?}"),
            CloseReason::Incomplete(d) => write!(f, "message not completed within {d:?}"),
            CloseReason::SendTimeout(d) => write!(f, "peer took nothing for {d:?}"),
            CloseReason::ConnectTimeout(d) => write!(f, "connect not done within {d:?}"),
            CloseReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            CloseReason::Framing(e) => write!(f, "{e}"),
            CloseReason::Tls(e) => write!(f, "{e}"),
            CloseReason::Io(e) => write!(f, "{e}"),
            CloseReason::Evicted => f.write_str("closed for a new one (max connections)"),
            CloseReason::Shutdown => f.write_str("shutting down"),
        }
    }
}

/// Why [`Conn::queue`] took nothing.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The peer has not read enough of what is queued already.
    #[error("send queue to the peer full ({queued} bytes queued)")]
    Full { queued: usize },
    /// The connection is being closed.
    #[error("connection is closing")]
    Closing,
    /// The TLS session refused the data (it failed before).
    #[error(transparent)]
    Tls(TlsSessionError),
}

/// Where a connection is in its life.
#[derive(Debug)]
enum Phase {
    /// Our connect is in progress; nothing is written before it ends.
    Connecting {
        deadline: Instant,
        timeout: Duration,
    },
    Open,
    /// Refused: what is queued (a 400 or 513) goes out, then our side is
    /// shut and the connection waits for the peer's end or `deadline`.
    Closing {
        deadline: Instant,
        reason: Option<CloseReason>,
    },
}

/// Bytes to the peer, in the clear or through TLS.
#[derive(Debug)]
enum Wire {
    Plain { out: Vec<u8>, pos: usize },
    Tls(Box<TlsSession>),
}

/// Who the connection is, for the log and the readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: u32,
    pub peer: SocketAddr,
    pub sock: u8,
    pub proto: Proto,
    /// We opened it (vs accepted it).
    pub outbound: bool,
}

/// One connection's state; see the module doc.
pub struct Conn {
    pub info: ConnInfo,
    phase: Phase,
    wire: Wire,
    framer: Framer,
    /// Plaintext out of the TLS session, on its way into the framer.
    plain: Vec<u8>,
    /// Last time a byte was read or written.
    last_activity: Instant,
    /// Since when an unfinished message has been waiting.
    partial_since: Option<Instant>,
    /// Since when queued bytes have not moved (None: queue empty).
    stalled_since: Option<Instant>,
    /// Our side has been shut after the last queued byte (closing only).
    shut: bool,
    timeouts: Timeouts,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("info", &self.info)
            .field("phase", &self.phase)
            .field("queued", &self.queued_len())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection just accepted (`tls`: its server session), or one
    /// whose connect has been started (`connect_timeout`: how long it may
    /// take).
    pub fn new(
        info: ConnInfo,
        tls: Option<TlsSession>,
        max_msg: usize,
        timeouts: Timeouts,
        connect_timeout: Option<Duration>,
        now: Instant,
    ) -> Conn {
        let wire = match tls {
            Some(mut s) => {
                s.set_send_queue_limit(CONN_QUEUE_MAX);
                Wire::Tls(Box::new(s))
            }
            None => Wire::Plain {
                out: Vec::new(),
                pos: 0,
            },
        };
        let phase = match connect_timeout {
            Some(timeout) => Phase::Connecting {
                deadline: now.checked_add(timeout).unwrap_or(now),
                timeout,
            },
            None => Phase::Open,
        };
        let limits = Limits {
            max_msg,
            ..Limits::default()
        };
        let mut c = Conn {
            info,
            phase,
            wire,
            framer: Framer::new(limits),
            plain: Vec::new(),
            last_activity: now,
            partial_since: None,
            stalled_since: None,
            shut: false,
            timeouts,
        };
        // A TLS client's ClientHello is pending from the start.
        c.note_queued(now);
        c
    }

    /// When nothing was read or written last.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// Traffic the connection's owner did not see itself (a message
    /// written directly by another process) keeps it from idling out.
    pub fn touch(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    pub fn is_connecting(&self) -> bool {
        matches!(self.phase, Phase::Connecting { .. })
    }

    pub fn is_closing(&self) -> bool {
        matches!(self.phase, Phase::Closing { .. })
    }

    /// The connect finished: queued bytes may go out now.
    pub fn on_connected(&mut self, now: Instant) {
        if self.is_connecting() {
            self.phase = Phase::Open;
            self.last_activity = now;
            if self.stalled_since.is_some() {
                // The send timer runs from when writing became possible.
                self.stalled_since = Some(now);
            }
        }
    }

    /// Bytes read from the socket. Each complete message goes to
    /// `deliver`; pings are answered. `Err`: close now. A message that
    /// breaks the framing rules is answered (400/513) when it can be and
    /// the connection turns to closing (see [`Conn::is_closing`]).
    pub fn on_data(
        &mut self,
        data: &[u8],
        now: Instant,
        deliver: &mut dyn FnMut(&ConnInfo, &[u8]),
    ) -> Result<(), CloseReason> {
        self.last_activity = now;
        if let Wire::Tls(s) = &mut self.wire {
            let fed = s.feed(data);
            s.read_plaintext(&mut self.plain);
            self.note_queued(now);
            if let Err(e) = fed {
                return Err(CloseReason::Tls(e));
            }
            if let Phase::Closing { .. } = self.phase {
                self.plain.clear();
                return Ok(());
            }
            let plain = std::mem::take(&mut self.plain);
            let r = self.frame(&plain, now, deliver);
            self.plain = plain;
            self.plain.clear();
            r?;
            if self.tls().is_some_and(TlsSession::peer_closed) {
                // close_notify: nothing more will come, even if the TCP
                // connection stays open.
                return Err(self.end_reason());
            }
            return Ok(());
        }
        if let Phase::Closing { .. } = self.phase {
            // Read and dropped, so that closing later does not reset the
            // connection (and destroy our 400 before the peer reads it).
            return Ok(());
        }
        self.frame(data, now, deliver)
    }

    /// The peer closed its side. Always ends in a close: what it sent
    /// before is framed and delivered first.
    pub fn on_eof(
        &mut self,
        now: Instant,
        deliver: &mut dyn FnMut(&ConnInfo, &[u8]),
    ) -> CloseReason {
        if let Phase::Closing { reason, .. } = &mut self.phase {
            return reason.take().unwrap_or(CloseReason::PeerClosed);
        }
        if let Wire::Tls(s) = &mut self.wire {
            let r = s.feed_eof();
            s.read_plaintext(&mut self.plain);
            if let Err(e) = r {
                return CloseReason::Tls(e);
            }
            let plain = std::mem::take(&mut self.plain);
            let r = self.frame(&plain, now, deliver);
            self.plain = plain;
            self.plain.clear();
            if let Err(reason) = r {
                return reason;
            }
        }
        self.end_reason()
    }

    /// Why the connection ends now that the peer has finished sending.
    fn end_reason(&mut self) -> CloseReason {
        if let Phase::Closing { reason, .. } = &mut self.phase {
            return reason.take().unwrap_or(CloseReason::PeerClosed);
        }
        match self.framer.pending() {
            0 => CloseReason::PeerClosed,
            pending => CloseReason::PeerClosedMidMessage { pending },
        }
    }

    /// Feeds plaintext to the framer and handles what comes out.
    fn frame(
        &mut self,
        mut data: &[u8],
        now: Instant,
        deliver: &mut dyn FnMut(&ConnInfo, &[u8]),
    ) -> Result<(), CloseReason> {
        let mut framed = false;
        loop {
            let took = self.framer.push(data);
            data = data.get(took..).unwrap_or(&[]);
            loop {
                match self.framer.next() {
                    Ok(None) => break,
                    Ok(Some(Frame::Message { bytes, .. })) => {
                        framed = true;
                        deliver(&self.info, bytes);
                    }
                    Ok(Some(Frame::Ping)) => {
                        framed = true;
                        // A pong that does not fit is not worth a close:
                        // the peer will ping again.
                        let _ = self.queue(PONG, now);
                    }
                    Err(e) => return self.refuse(e, now),
                }
            }
            if data.is_empty() || took == 0 {
                break;
            }
        }
        // The slowloris timer runs from the start of the message that is
        // still incomplete.
        if self.framer.pending() == 0 {
            self.partial_since = None;
        } else if framed || self.partial_since.is_none() {
            self.partial_since = Some(now);
        }
        Ok(())
    }

    /// A framing error: answer it if it can be answered, then close.
    fn refuse(&mut self, e: StreamError, now: Instant) -> Result<(), CloseReason> {
        let reply = match (e.reply_code(), e.header()) {
            (Some(code), Some(header)) => error_reply(code, header),
            _ => None,
        };
        let Some(reply) = reply else {
            return Err(CloseReason::Framing(e));
        };
        if self.queue(&reply, now).is_err() {
            return Err(CloseReason::Framing(e));
        }
        self.start_closing(now, CloseReason::Framing(e));
        Ok(())
    }

    /// Stops taking input and sends out what is queued, then closes.
    fn start_closing(&mut self, now: Instant, reason: CloseReason) {
        if let Wire::Tls(s) = &mut self.wire {
            s.close();
        }
        self.partial_since = None;
        self.phase = Phase::Closing {
            deadline: now + LINGER,
            reason: Some(reason),
        };
        self.note_queued(now);
    }

    /// Queues a whole message for the peer, or nothing.
    pub fn queue(&mut self, bytes: &[u8], now: Instant) -> Result<(), QueueError> {
        if let Phase::Closing { .. } = self.phase {
            // Only the refusal itself, queued before the phase changes.
            return Err(QueueError::Closing);
        }
        let queued = self.queued_len();
        match &mut self.wire {
            Wire::Plain { out, pos } => {
                if queued.saturating_add(bytes.len()) > CONN_QUEUE_MAX {
                    return Err(QueueError::Full { queued });
                }
                if *pos == out.len() {
                    out.clear();
                    *pos = 0;
                }
                out.extend_from_slice(bytes);
            }
            Wire::Tls(s) => match s.send(bytes) {
                Ok(()) => {}
                Err(TlsSessionError::SendQueueFull { queued, .. }) => {
                    return Err(QueueError::Full { queued })
                }
                Err(e) => return Err(QueueError::Tls(e)),
            },
        }
        self.note_queued(now);
        Ok(())
    }

    /// Starts the send timer when bytes wait and it is not running.
    fn note_queued(&mut self, now: Instant) {
        if self.stalled_since.is_none() && self.queued_len() > 0 {
            self.stalled_since = Some(now);
        }
    }

    /// Bytes waiting for the peer (plaintext held by a handshaking TLS
    /// session included).
    pub fn queued_len(&self) -> usize {
        match &self.wire {
            Wire::Plain { out, pos } => out.len().saturating_sub(*pos),
            Wire::Tls(s) => s.queued_len(),
        }
    }

    /// What to write to the socket now (nothing while connecting).
    pub fn pending_out(&self) -> &[u8] {
        if self.is_connecting() {
            return &[];
        }
        match &self.wire {
            Wire::Plain { out, pos } => out.get(*pos..).unwrap_or(&[]),
            Wire::Tls(s) => s.pending_ciphertext(),
        }
    }

    /// `n` bytes of [`Conn::pending_out`] were written.
    pub fn wrote(&mut self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        match &mut self.wire {
            Wire::Plain { out, pos } => {
                *pos = pos.saturating_add(n).min(out.len());
                if *pos == out.len() {
                    out.clear();
                    *pos = 0;
                } else if *pos > CONN_QUEUE_MAX / 2 {
                    out.drain(..*pos);
                    *pos = 0;
                }
            }
            Wire::Tls(s) => s.consume_ciphertext(n),
        }
        self.last_activity = now;
        // Progress restarts the send timer; an empty queue stops it.
        self.stalled_since = (self.queued_len() > 0).then_some(now);
    }

    /// Closing, everything written and our side not shut yet: the loop
    /// shuts the socket for writing and calls [`Conn::shut_done`].
    pub fn should_shut(&self) -> bool {
        self.is_closing() && !self.shut && self.pending_out().is_empty()
    }

    pub fn shut_done(&mut self) {
        self.shut = true;
    }

    /// The earliest time [`Conn::handle_timeout`] may close this.
    pub fn deadline(&self) -> Option<Instant> {
        let t = &self.timeouts;
        let mut at = match &self.phase {
            Phase::Connecting { deadline, .. } | Phase::Closing { deadline, .. } => Some(*deadline),
            Phase::Open => None,
        };
        let mut earliest = |d: Option<Instant>| {
            if let Some(d) = d {
                at = Some(at.map_or(d, |a| a.min(d)));
            }
        };
        earliest(self.last_activity.checked_add(t.idle));
        earliest(self.partial_since.and_then(|p| p.checked_add(t.incomplete)));
        if !self.is_connecting() {
            earliest(self.stalled_since.and_then(|s| s.checked_add(t.send)));
        }
        if let Wire::Tls(s) = &self.wire {
            earliest(s.handshake_deadline());
        }
        at
    }

    /// Checks every timer against `now`: `Some` means close, for that.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<CloseReason> {
        let t = self.timeouts;
        let passed = |since: Option<Instant>, d: Duration| {
            since
                .and_then(|s| s.checked_add(d))
                .is_some_and(|at| now >= at)
        };
        match &mut self.phase {
            Phase::Connecting { deadline, timeout } if now >= *deadline => {
                return Some(CloseReason::ConnectTimeout(*timeout));
            }
            Phase::Closing { deadline, reason } if now >= *deadline => {
                return Some(reason.take().unwrap_or(CloseReason::Shutdown));
            }
            _ => {}
        }
        if let Wire::Tls(s) = &mut self.wire {
            if let Err(e) = s.handle_timeout(now) {
                return Some(CloseReason::Tls(e));
            }
        }
        if !self.is_connecting() && passed(self.stalled_since, t.send) {
            return Some(CloseReason::SendTimeout(t.send));
        }
        if passed(self.partial_since, t.incomplete) {
            return Some(CloseReason::Incomplete(t.incomplete));
        }
        if passed(Some(self.last_activity), t.idle) {
            return Some(CloseReason::Idle(t.idle));
        }
        None
    }

    /// The TLS session, for the log after the handshake.
    pub fn tls(&self) -> Option<&TlsSession> {
        match &self.wire {
            Wire::Tls(s) => Some(s),
            Wire::Plain { .. } => None,
        }
    }
}

/// The reply to a message refused by the framer, built from its header
/// block; `None` when the block does not parse or is not a request (a
/// reply is never answered).
pub(crate) fn error_reply(code: u16, header: &[u8]) -> Option<Vec<u8>> {
    let req = Msg::parse(header.to_vec()).ok()?;
    if !req.is_request() {
        return None;
    }
    let reason: &[u8] = match code {
        513 => b"Message Too Large",
        _ => b"Bad Request",
    };
    let mut out = Vec::new();
    build_reply(&req, code, reason, &ReplyOpts::default(), &mut out).ok()?;
    Some(out)
}
