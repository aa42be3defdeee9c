//! Errors of the TLS layer, one enum per stage: a setting from the config,
//! building the rustls configs at startup, and a live session.
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rustls::AlertDescription;

/// A `tls_*` config line the settings refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsSettingError {
    /// Not one of [`super::TLS_SETTING_NAMES`].
    #[error("unknown TLS setting \"{name}\"")]
    Unknown { name: String },
    /// A number where a string is needed or the other way round.
    #[error("{name} needs {expected}")]
    WrongType {
        name: String,
        expected: &'static str,
    },
    /// A file setting given as `""`.
    #[error("{name} needs a file name, not an empty string")]
    EmptyPath { name: String },
    /// A `tls_method` word SER never had.
    #[error("tls_method \"{value}\" is not one of sslv23, sslv2, sslv3, tlsv1")]
    BadMethod { value: String },
    /// `sslv2` or `sslv3`: SER knew them, this build refuses them.
    #[error(
        "tls_method {method} is refused: rustls does not speak SSL 2.0 or 3.0, and both are \
         broken (DROWN, POODLE); use tlsv1 or sslv23, which here mean TLS 1.2 or 1.3"
    )]
    UnsupportedMethod { method: &'static str },
    /// A timeout that is zero or negative.
    #[error("{name} = {value}: a timeout is a number of seconds, at least 1")]
    BadTimeout { name: String, value: i64 },
}

/// Which setting names a PEM file, so an error says which line to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemRole {
    Certificate,
    PrivateKey,
    CaList,
}

impl fmt::Display for PemRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PemRole::Certificate => "tls_certificate",
            PemRole::PrivateKey => "tls_private_key",
            PemRole::CaList => "tls_ca_list",
        })
    }
}

/// Why the TLS settings cannot become a rustls config. Raised at startup,
/// before the fork, so the config is refused with this message.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be opened or read.
    #[error("{role} {path:?}: cannot read: {source}")]
    Read {
        role: PemRole,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not well-formed PEM (bad base64, a section without end).
    #[error("{role} {path:?}: not valid PEM: {source}")]
    BadPem {
        role: PemRole,
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    /// The file holds no `CERTIFICATE` section.
    #[error("{role} {path:?}: no certificate in it (expected a \"BEGIN CERTIFICATE\" section)")]
    NoCertificate { role: PemRole, path: PathBuf },
    /// The file holds no `PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY` section.
    #[error(
        "tls_private_key {path:?}: no private key in it (expected PKCS#8 \"PRIVATE KEY\", \
         PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\")"
    )]
    NoPrivateKey { path: PathBuf },
    /// The key parses as PEM but rustls cannot use it (unknown algorithm,
    /// corrupt DER).
    #[error("tls_private_key {path:?}: unusable key: {source}")]
    BadKey {
        path: PathBuf,
        source: rustls::Error,
    },
    /// The key is not the one the certificate was issued for.
    #[error("tls_private_key {key:?} does not match the certificate in tls_certificate {cert:?}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The certificate cannot be used with the key (rustls cannot parse
    /// the leaf certificate, or refuses the pair for another reason).
    #[error("tls_certificate {cert:?} with tls_private_key {key:?}: {source}")]
    BadCertificate {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    /// A CA certificate is not a usable trust anchor.
    #[error("tls_ca_list {path:?}: certificate #{index} is not a usable CA: {source}")]
    BadCa {
        path: PathBuf,
        index: usize,
        source: rustls::Error,
    },
    /// Verification is on and there is nothing to verify against.
    #[error("{setting} is on but tls_ca_list is not set: no peer certificate could be verified")]
    NoCaList { setting: &'static str },
    /// rustls refused the verifier built from the CA list.
    #[error("tls_ca_list {path:?}: {source}")]
    Verifier {
        path: PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
    /// rustls refused the protocol versions (cannot happen with the
    /// methods we accept; kept typed rather than unwrapped).
    #[error("tls_method {method}: {source}")]
    Method {
        method: &'static str,
        source: rustls::Error,
    },
}

/// Why a TLS session ended. Every variant is fatal to the connection:
/// the caller writes out what [`super::TlsSession::pending_ciphertext`]
/// still holds (it may carry the alert telling the peer why), then
/// closes. Sorted by who is to blame.
#[derive(Debug, thiserror::Error)]
pub enum TlsSessionError {
    /// The peer's certificate was refused (unknown CA, expired, wrong
    /// name, bad signature, …).
    #[error("peer certificate refused: {0}")]
    BadCertificate(rustls::CertificateError),
    /// We require a client certificate and the client sent none.
    #[error("peer sent no certificate and one is required")]
    NoCertificate,
    /// The peer refused us with a fatal alert (it did not like our
    /// certificate, or shares no version or cipher with us).
    #[error("peer sent alert: {0:?}")]
    AlertReceived(AlertDescription),
    /// The peer sent something that is not TLS, or broke the protocol.
    #[error("TLS protocol error: {0}")]
    Protocol(rustls::Error),
    /// The peer closed the TCP connection before the handshake ended
    /// (often how a peer says it did not like our certificate).
    #[error("peer closed the connection during the TLS handshake")]
    ClosedDuringHandshake,
    /// The handshake did not finish within `tls_handshake_timeout`.
    #[error("TLS handshake not finished after {0:?}")]
    HandshakeTimeout(Duration),
    /// The peer does not read: the queue to it is over its limit.
    #[error("send queue full ({queued} bytes queued, limit {limit})")]
    SendQueueFull { queued: usize, limit: usize },
    /// Data queued after [`super::TlsSession::close`].
    #[error("send on a closed TLS session")]
    Closed,
    /// The socket failed ([`super::TlsSession::drive`]), or rustls
    /// refused to buffer more input from the peer.
    #[error("TLS connection I/O: {0}")]
    Io(std::io::Error),
}

impl TlsSessionError {
    /// Whether the connection must be closed. Only a full send queue
    /// leaves the session usable: the refused data was not queued at all.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, TlsSessionError::SendQueueFull { .. })
    }
}

impl From<rustls::Error> for TlsSessionError {
    fn from(e: rustls::Error) -> Self {
        match e {
            rustls::Error::InvalidCertificate(c) => TlsSessionError::BadCertificate(c),
            rustls::Error::NoCertificatesPresented => TlsSessionError::NoCertificate,
            rustls::Error::AlertReceived(a) => TlsSessionError::AlertReceived(a),
            other => TlsSessionError::Protocol(other),
        }
    }
}
