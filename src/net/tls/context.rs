//! Both rustls configs built once at startup, with what the sessions need
//! to know about them, so the event loop makes a session in one call.
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use super::error::{TlsError, TlsSessionError};
use super::session::TlsSession;
use super::settings::TlsSettings;

/// The TLS side of a running server: built before the fork, shared by the
/// processes after it (the configs are immutable).
#[derive(Debug, Clone)]
pub struct TlsContext {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    verify_client: bool,
    verify_server: bool,
    handshake_timeout: Duration,
    send_timeout: Duration,
}

impl TlsSettings {
    /// Loads every file and builds both configs; the first problem refuses
    /// the whole TLS setup.
    pub fn context(&self) -> Result<TlsContext, TlsError> {
        Ok(TlsContext {
            server: self.server_config()?,
            client: self.client_config()?,
            verify_client: self.verify_client,
            verify_server: self.verifies_server(),
            handshake_timeout: self.handshake_timeout,
            send_timeout: self.send_timeout,
        })
    }
}

impl TlsContext {
    /// A session for a connection just accepted, its handshake timer
    /// running from `now`.
    pub fn accept(&self, now: Instant) -> Result<TlsSession, TlsSessionError> {
        let mut s = TlsSession::server(self.server.clone(), self.verify_client)?;
        s.start_handshake_timer(now, self.handshake_timeout);
        Ok(s)
    }

    /// A session for a connection we open to `server` (host name or IP
    /// the certificate must name when verified), timer from `now`.
    pub fn connect(
        &self,
        server: ServerName<'static>,
        now: Instant,
    ) -> Result<TlsSession, TlsSessionError> {
        let mut s = TlsSession::client(self.client.clone(), server, self.verify_server)?;
        s.start_handshake_timer(now, self.handshake_timeout);
        Ok(s)
    }

    /// The server config, for a caller that builds sessions itself.
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }

    /// The client config, for a caller that builds sessions itself.
    pub fn client_config(&self) -> &Arc<ClientConfig> {
        &self.client
    }

    /// `tls_send_timeout`: the loop closes a connection whose queued data
    /// has not moved for this long.
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }
}
