//! One TLS connection as a byte pump, with no socket inside: ciphertext
//! read from the socket goes in through [`TlsSession::feed`], plaintext
//! comes out through [`TlsSession::read_plaintext`]; plaintext to send
//! goes in through [`TlsSession::send`], ciphertext to write comes out
//! through [`TlsSession::pending_ciphertext`]. The event loop owns the
//! socket, the readiness and the clock.
//!
//! When to close: every `Err` this type returns is fatal except
//! [`TlsSessionError::SendQueueFull`] (see
//! [`TlsSessionError::is_fatal`]). On a fatal error the caller writes out
//! what `pending_ciphertext` still holds, if the socket takes it without
//! blocking (it may hold the alert that tells the peer why), logs the
//! error and closes the socket. After [`TlsSession::peer_closed`] turns
//! true the caller processes the plaintext it has and closes too.
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use super::error::TlsSessionError;
use super::x509;

/// How many bytes may wait for the peer before [`TlsSession::send`]
/// refuses more: four maximal SIP messages. A peer that does not read
/// should not make us hold megabytes; `tls_send_timeout` closes it soon.
pub const DEFAULT_SEND_QUEUE_LIMIT: usize = 4 * 65536;

/// The peer's certificate, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Subject in OpenSSL's one-line form (`/C=DE/O=iptel/CN=proxy`), as
    /// SER logged it. Control characters are escaped.
    pub subject: String,
    /// Issuer, in the same form.
    pub issuer: String,
    /// True when the certificate was checked against `tls_ca_list`; false
    /// when it was taken unchecked (`tls_verify_server` off).
    pub verified: bool,
}

/// One TLS connection, client or server side. See the module doc.
#[derive(Debug)]
pub struct TlsSession {
    conn: Connection,
    /// Whether a peer certificate this session accepts was verified.
    verifies_peer: bool,
    /// Plaintext received and not yet taken.
    plain_in: Vec<u8>,
    /// Ciphertext to write; `out[out_pos..]` is still pending.
    out: Vec<u8>,
    out_pos: usize,
    /// Plaintext queued by `send` while handshaking: rustls holds it
    /// until the handshake ends, and it counts against the limit.
    early: usize,
    limit: usize,
    deadline: Option<(Instant, Duration)>,
    peer_closed: bool,
    closed: bool,
}

impl TlsSession {
    fn new(conn: Connection, verifies_peer: bool) -> Self {
        let mut s = TlsSession {
            conn,
            verifies_peer,
            plain_in: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            early: 0,
            limit: DEFAULT_SEND_QUEUE_LIMIT,
            deadline: None,
            peer_closed: false,
            closed: false,
        };
        // We count the queue ourselves (all or nothing per `send`); a
        // rustls limit would accept half a SIP message.
        s.conn.set_buffer_limit(None);
        // A client speaks first: its ClientHello is pending at once.
        s.pump_out();
        s
    }

    /// A session for a connection accepted on a `tls:` socket.
    /// `verifies_client`: the config checks client certificates
    /// (`tls_verify`), so a certificate the session accepts is verified.
    pub fn server(
        config: Arc<ServerConfig>,
        verifies_client: bool,
    ) -> Result<Self, TlsSessionError> {
        let conn = ServerConnection::new(config).map_err(TlsSessionError::Protocol)?;
        Ok(Self::new(conn.into(), verifies_client))
    }

    /// A session for a connection we open to `server` (the name or IP the
    /// certificate must show when `verifies_server`).
    pub fn client(
        config: Arc<ClientConfig>,
        server: ServerName<'static>,
        verifies_server: bool,
    ) -> Result<Self, TlsSessionError> {
        let conn = ClientConnection::new(config, server).map_err(TlsSessionError::Protocol)?;
        Ok(Self::new(conn.into(), verifies_server))
    }

    /// Arms `tls_handshake_timeout`: [`TlsSession::handle_timeout`] fails
    /// once `now + timeout` passes with the handshake still going.
    pub fn start_handshake_timer(&mut self, now: Instant, timeout: Duration) {
        self.deadline = now.checked_add(timeout).map(|at| (at, timeout));
    }

    /// When the loop must call [`TlsSession::handle_timeout`]; `None`
    /// once the handshake is over (or no timer was armed).
    pub fn handshake_deadline(&self) -> Option<Instant> {
        match self.deadline {
            Some((at, _)) if self.is_handshaking() => Some(at),
            _ => None,
        }
    }

    /// Fails with [`TlsSessionError::HandshakeTimeout`] when the handshake
    /// is still going at its deadline.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), TlsSessionError> {
        match self.deadline {
            Some((at, timeout)) if self.is_handshaking() && now >= at => {
                Err(TlsSessionError::HandshakeTimeout(timeout))
            }
            _ => Ok(()),
        }
    }

    /// Takes ciphertext read from the socket. Handshake replies and
    /// alerts it causes become pending ciphertext; application data
    /// becomes plaintext. An error is the peer's doing (bad certificate,
    /// not TLS, fatal alert) and ends the session; any alert rustls
    /// answered with is pending before the error returns.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), TlsSessionError> {
        while !data.is_empty() {
            // `read_tls` takes at most one buffer's worth; the loop feeds
            // the rest after processing, so its buffers never fill.
            let n = self.conn.read_tls(&mut data).map_err(TlsSessionError::Io)?;
            if n == 0 {
                // close_notify came: what follows it is not from the peer's
                // TLS session and is dropped.
                break;
            }
            self.process()?;
        }
        Ok(())
    }

    /// Tells the session the peer closed its side of the TCP connection.
    /// During the handshake that is an error to log
    /// ([`TlsSessionError::ClosedDuringHandshake`]); afterwards
    /// [`TlsSession::peer_closed`] turns true.
    pub fn feed_eof(&mut self) -> Result<(), TlsSessionError> {
        self.peer_closed = true;
        if self.is_handshaking() {
            return Err(TlsSessionError::ClosedDuringHandshake);
        }
        // Records rustls still buffers are processed; a missing
        // close_notify (truncation) does not matter to SIP, whose messages
        // carry their own length.
        let _ = self.conn.read_tls(&mut std::io::empty());
        self.process()
    }

    fn process(&mut self) -> Result<(), TlsSessionError> {
        let res = self.conn.process_new_packets();
        // Also after an error: rustls queued the alert for the peer.
        self.pump_out();
        let state = res?;
        let n = state.plaintext_bytes_to_read();
        if n > 0 {
            let start = self.plain_in.len();
            self.plain_in.resize(start + n, 0);
            self.conn
                .reader()
                .read_exact(&mut self.plain_in[start..])
                .map_err(TlsSessionError::Io)?;
        }
        if state.peer_has_closed() {
            self.peer_closed = true;
        }
        Ok(())
    }

    /// Moves what rustls has to send into our queue.
    fn pump_out(&mut self) {
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail.
            if self.conn.write_tls(&mut self.out).is_err() {
                break;
            }
        }
        if !self.conn.is_handshaking() {
            // rustls encrypted the early plaintext when the handshake
            // ended: it is in `out` now.
            self.early = 0;
        }
    }

    /// Appends the plaintext received so far to `out`; returns how many
    /// bytes that was.
    pub fn read_plaintext(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.plain_in.len();
        if out.is_empty() {
            std::mem::swap(out, &mut self.plain_in);
        } else {
            out.append(&mut self.plain_in);
        }
        n
    }

    /// Queues `data` whole, or nothing: [`TlsSessionError::SendQueueFull`]
    /// when the peer has not read enough of what is queued already (the
    /// session stays usable). Before the handshake ends the data waits
    /// inside the session and goes out right after it.
    pub fn send(&mut self, data: &[u8]) -> Result<(), TlsSessionError> {
        if self.closed {
            return Err(TlsSessionError::Closed);
        }
        let queued = self.queued_len();
        if queued.saturating_add(data.len()) > self.limit {
            return Err(TlsSessionError::SendQueueFull {
                queued,
                limit: self.limit,
            });
        }
        // With no rustls buffer limit the writer takes everything.
        std::io::Write::write_all(&mut self.conn.writer(), data).map_err(TlsSessionError::Io)?;
        if self.conn.is_handshaking() {
            self.early += data.len();
        }
        self.pump_out();
        Ok(())
    }

    /// Queues close_notify; nothing can be sent after it. The caller
    /// closes the socket once the pending ciphertext is written.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.conn.send_close_notify();
            self.pump_out();
        }
    }

    /// Ciphertext to write to the socket; after writing, report how much
    /// went with [`TlsSession::consume_ciphertext`].
    pub fn pending_ciphertext(&self) -> &[u8] {
        self.out.get(self.out_pos..).unwrap_or(&[])
    }

    /// Drops the first `n` bytes of the pending ciphertext.
    pub fn consume_ciphertext(&mut self, n: usize) {
        self.out_pos = self.out_pos.saturating_add(n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > self.out.len() / 2 {
            // Compact now and then, not on every partial write.
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    /// Whether there is ciphertext to write (register for writability).
    pub fn wants_write(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// Bytes waiting for the peer: pending ciphertext plus plaintext held
    /// until the handshake ends.
    pub fn queued_len(&self) -> usize {
        (self.out.len() - self.out_pos) + self.early
    }

    /// Changes the limit [`TlsSession::send`] checks.
    pub fn set_send_queue_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// True until the handshake has finished.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The peer sent close_notify or closed the TCP connection.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The negotiated version, once known (for the log).
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The negotiated cipher suite, once known (for the log).
    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        self.conn.negotiated_cipher_suite().map(|s| s.suite())
    }

    /// The peer's leaf certificate, once the handshake accepted it. A
    /// server without `tls_verify` does not ask for one, so has none.
    pub fn peer_certificate(&self) -> Option<PeerCertificate> {
        if self.is_handshaking() {
            return None;
        }
        let leaf = self.conn.peer_certificates()?.first()?;
        let (subject, issuer) = match x509::subject_and_issuer(leaf) {
            Some(names) => names,
            None => ("(unparsable)".to_owned(), "(unparsable)".to_owned()),
        };
        Some(PeerCertificate {
            subject,
            issuer,
            verified: self.verifies_peer,
        })
    }
}
