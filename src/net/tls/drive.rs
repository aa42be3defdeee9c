//! Driving a [`TlsSession`] over a non-blocking byte stream (a mio
//! `TcpStream`, a std one in non-blocking mode, a `UnixStream`), for a
//! loop that would rather not shuttle the bytes itself.
use std::io::{ErrorKind, Read, Write};

use super::error::TlsSessionError;
use super::session::TlsSession;

/// Read size: one maximal TLS record plus its header.
const READ_CHUNK: usize = 16 * 1024 + 256;

/// What the loop should wait for after [`TlsSession::drive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriveStatus {
    /// The peer closed (close_notify or end of stream): take the
    /// remaining plaintext, then close the socket.
    pub peer_closed: bool,
    /// Ciphertext is still pending because the socket would block:
    /// register for writability and drive again when writable.
    pub wants_write: bool,
}

impl TlsSession {
    /// Writes pending ciphertext until done or the stream would block;
    /// returns the bytes written.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> Result<usize, TlsSessionError> {
        let mut total = 0;
        while self.wants_write() {
            match w.write(self.pending_ciphertext()) {
                Ok(0) => return Err(TlsSessionError::Io(ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.consume_ciphertext(n);
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(TlsSessionError::Io(e)),
            }
        }
        Ok(total)
    }

    /// Moves bytes both ways until the stream would block: writes what is
    /// pending, reads and feeds until `WouldBlock` or end of stream, and
    /// writes what the input caused (handshake replies, alerts). Reading
    /// to `WouldBlock` suits edge-triggered readiness (mio); each pass of
    /// the loop either moves bytes or stops, so it never spins.
    ///
    /// Plaintext received waits in the session
    /// ([`TlsSession::read_plaintext`]). On `Err` the caller logs and
    /// closes: an alert for the peer has already been written if the
    /// socket took it.
    pub fn drive<S: Read + Write>(&mut self, io: &mut S) -> Result<DriveStatus, TlsSessionError> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            self.write_to(io)?;
            if self.peer_closed() {
                break;
            }
            let got = match io.read(&mut buf) {
                Ok(0) => self.feed_eof(),
                Ok(n) => self.feed(buf.get(..n).unwrap_or(&[])),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(TlsSessionError::Io(e)),
            };
            if let Err(e) = got {
                // Best effort: tell the peer why before the caller closes.
                let _ = self.write_to(io);
                return Err(e);
            }
        }
        Ok(DriveStatus {
            peer_closed: self.peer_closed(),
            wants_write: self.wants_write(),
        })
    }
}
