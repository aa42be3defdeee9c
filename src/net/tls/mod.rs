//! TLS for SIP over TCP (`tls:` listen sockets, `forward_tls`,
//! `t_relay_to_tls`), on rustls with the ring provider: no OpenSSL.
//!
//! Three parts, none of which touches a socket by itself:
//! - [`TlsSettings`]: SER's `tls_*` config settings, set by name;
//! - [`TlsSettings::server_config`] / [`TlsSettings::client_config`] (or
//!   both at once, [`TlsSettings::context`]): the rustls configs, built at
//!   startup before the fork so a bad PEM file refuses the config;
//! - [`TlsSession`]: one connection as a byte pump for a non-blocking
//!   event loop, plus [`TlsSession::drive`] over any `Read + Write`.
//!
//! Driving a session from a mio loop (one `TcpStream` per connection,
//! registered for READABLE, plus WRITABLE while `wants_write`):
//!
//! ```text
//! at startup, before the fork:  ctx = settings.context()?      // TlsError: refuse the config
//! accepted conn:                sess = ctx.accept(now)?
//! outgoing conn:                sess = ctx.connect(ServerName::from(ip), now)?
//!                               (then drive once: the ClientHello is already pending)
//! on readiness:                 match sess.drive(&mut stream) {
//!                                 Ok(st) => { sess.read_plaintext(&mut conn.buf); parse SIP;
//!                                             if st.peer_closed { close }
//!                                             reregister WRITABLE iff st.wants_write }
//!                                 Err(e) => { log e (and sess.peer_certificate()); close } }
//! to send a SIP message:        sess.send(bytes)?  then sess.drive/write_to(&mut stream)
//!                               (SendQueueFull: not fatal, nothing queued; the loop applies
//!                               tls_send_timeout to a queue that does not drain)
//! timers:                       at sess.handshake_deadline(): sess.handle_timeout(now) -> close on Err
//! after handshake:              log sess.peer_certificate() (subject, issuer, verified)
//! ```
//!
//! A loop that does its own socket I/O uses [`TlsSession::feed`] /
//! [`TlsSession::feed_eof`] with what it read and writes
//! [`TlsSession::pending_ciphertext`], then [`TlsSession::consume_ciphertext`].
//!
//! Deliberate deviations from SER: `tls_method` `sslv2`/`sslv3` are
//! refused and `tlsv1`/`sslv23` both mean TLS 1.2 or 1.3 (all rustls
//! speaks); verification needs `tls_ca_list` (SER's OpenSSL would just
//! fail every certificate); a verified server certificate must also name
//! the host we connected to (RFC 3261 §26.3.1, RFC 5922), which SER did
//! not check.
mod config;
mod context;
mod drive;
mod error;
mod pem;
mod session;
mod settings;
mod x509;

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod settings_tests;
#[cfg(test)]
pub(crate) mod test_pki;

pub use context::TlsContext;
pub use drive::DriveStatus;
pub use error::{PemRole, TlsError, TlsSessionError, TlsSettingError};
pub use rustls::pki_types::ServerName;
pub use session::{PeerCertificate, TlsSession, DEFAULT_SEND_QUEUE_LIMIT};
pub use settings::{
    TlsMethod, TlsSettings, TlsValue, DEFAULT_CERT_FILE, DEFAULT_TLS_TIMEOUT_SECS,
    TLS_SETTING_NAMES,
};
