//! SER's TLS core settings (`tls_*` in ser.cfg) as plain data, filled by
//! the config loader through [`TlsSettings::set`].
use std::path::PathBuf;
use std::time::Duration;

use rustls::SupportedProtocolVersion;

use super::error::TlsSettingError;

/// SER 0.9 looks for `cert.pem` in its config directory for both the
/// certificate and the key: one PEM file may hold the two.
pub const DEFAULT_CERT_FILE: &str = "/usr/local/etc/ser/cert.pem";
/// SER 0.9's `tls_handshake_timeout` and `tls_send_timeout`, in seconds.
pub const DEFAULT_TLS_TIMEOUT_SECS: u64 = 120;

/// The names [`TlsSettings::set`] understands, for a loader that routes
/// `name = value` lines by name.
pub const TLS_SETTING_NAMES: &[&str] = &[
    "tls_certificate",
    "tls_private_key",
    "tls_ca_list",
    "tls_verify",
    "tls_verify_client",
    "tls_verify_server",
    "tls_require_certificate",
    "tls_method",
    "tls_handshake_timeout",
    "tls_send_timeout",
];

/// A value as the config gives it. Word values (`yes`, `off`, …) arrive
/// as `Int` already; `tls_method`'s words (`sslv23`, …) as `Str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsValue<'a> {
    Int(i64),
    Str(&'a str),
}

/// `tls_method`. SER took OpenSSL's method names; rustls speaks TLS 1.2
/// and 1.3 only, so both words it can honour mean "TLS 1.2 or 1.3".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMethod {
    /// `sslv23`: "any version the peers share" (SER 0.9's default).
    Sslv23,
    /// `tlsv1`: SER meant TLS 1.0 only; rustls has no TLS 1.0, and 1.2/1.3
    /// is what a peer that speaks TLS 1.0 today also speaks.
    Tlsv1,
}

impl TlsMethod {
    /// Parses SER's word, in any case. `sslv2`/`sslv3` are refused with
    /// the reason, so a config asking for them fails at startup.
    pub fn parse(word: &str) -> Result<Self, TlsSettingError> {
        match word.to_ascii_lowercase().as_str() {
            "sslv23" => Ok(TlsMethod::Sslv23),
            "tlsv1" => Ok(TlsMethod::Tlsv1),
            "sslv2" => Err(TlsSettingError::UnsupportedMethod { method: "sslv2" }),
            "sslv3" => Err(TlsSettingError::UnsupportedMethod { method: "sslv3" }),
            _ => Err(TlsSettingError::BadMethod {
                value: word.to_owned(),
            }),
        }
    }

    /// SER's word for this method.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMethod::Sslv23 => "sslv23",
            TlsMethod::Tlsv1 => "tlsv1",
        }
    }

    /// The protocol versions rustls offers for this method.
    pub fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        // Both words map to the same pair; the match keeps a future word
        // (say a TLS-1.3-only one) from silently inheriting it.
        match self {
            TlsMethod::Sslv23 | TlsMethod::Tlsv1 => rustls::ALL_VERSIONS,
        }
    }
}

/// SER 0.9's TLS core settings plus SER 2.x's `tls_verify_client` /
/// `tls_verify_server`. Defaults are SER 0.9's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls_certificate`: PEM file with our certificate chain, leaf first.
    pub certificate: PathBuf,
    /// `tls_private_key`: PEM file with the key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// `tls_ca_list`: PEM file of CA certificates trusted for peers.
    pub ca_list: Option<PathBuf>,
    /// `tls_verify` / `tls_verify_client`: as a server, ask clients for a
    /// certificate and refuse one that does not chain to `ca_list`.
    pub verify_client: bool,
    /// `tls_require_certificate`: with `verify_client`, also refuse a
    /// client that sends no certificate. Alone it does nothing, as in SER
    /// (OpenSSL ignores "fail if no peer cert" without "verify peer").
    pub require_certificate: bool,
    /// `tls_verify_server`: when connecting out, refuse a server whose
    /// certificate does not chain to `ca_list` or does not name the host
    /// we connected to. `None`: on exactly when a CA list is given.
    pub verify_server: Option<bool>,
    /// `tls_method`.
    pub method: TlsMethod,
    /// `tls_handshake_timeout`: how long a connection may stay in the
    /// handshake before it is closed.
    pub handshake_timeout: Duration,
    /// `tls_send_timeout`: how long queued data may wait for the peer to
    /// read it before the connection is closed. Enforced by the event loop.
    pub send_timeout: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            certificate: PathBuf::from(DEFAULT_CERT_FILE),
            private_key: PathBuf::from(DEFAULT_CERT_FILE),
            ca_list: None,
            verify_client: false,
            require_certificate: false,
            verify_server: None,
            method: TlsMethod::Sslv23,
            handshake_timeout: Duration::from_secs(DEFAULT_TLS_TIMEOUT_SECS),
            send_timeout: Duration::from_secs(DEFAULT_TLS_TIMEOUT_SECS),
        }
    }
}

fn int(name: &str, value: TlsValue<'_>) -> Result<i64, TlsSettingError> {
    match value {
        TlsValue::Int(n) => Ok(n),
        TlsValue::Str(_) => Err(TlsSettingError::WrongType {
            name: name.to_owned(),
            expected: "a number",
        }),
    }
}

fn path(name: &str, value: TlsValue<'_>) -> Result<PathBuf, TlsSettingError> {
    match value {
        TlsValue::Str(s) if !s.is_empty() => Ok(PathBuf::from(s)),
        TlsValue::Str(_) => Err(TlsSettingError::EmptyPath {
            name: name.to_owned(),
        }),
        TlsValue::Int(_) => Err(TlsSettingError::WrongType {
            name: name.to_owned(),
            expected: "a file name in quotes",
        }),
    }
}

fn seconds(name: &str, value: TlsValue<'_>) -> Result<Duration, TlsSettingError> {
    let n = int(name, value)?;
    // A zero timeout would close every connection at its first tick.
    match u64::try_from(n) {
        Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(TlsSettingError::BadTimeout {
            name: name.to_owned(),
            value: n,
        }),
    }
}

impl TlsSettings {
    /// Applies one `name = value` from the config. Unknown names and
    /// values of the wrong kind are errors; nothing changes on error.
    pub fn set(&mut self, name: &str, value: TlsValue<'_>) -> Result<(), TlsSettingError> {
        match name {
            "tls_certificate" => self.certificate = path(name, value)?,
            "tls_private_key" => self.private_key = path(name, value)?,
            "tls_ca_list" => self.ca_list = Some(path(name, value)?),
            "tls_verify" | "tls_verify_client" => self.verify_client = int(name, value)? != 0,
            "tls_verify_server" => self.verify_server = Some(int(name, value)? != 0),
            "tls_require_certificate" => self.require_certificate = int(name, value)? != 0,
            "tls_method" => {
                self.method = match value {
                    TlsValue::Str(word) => TlsMethod::parse(word)?,
                    TlsValue::Int(_) => {
                        return Err(TlsSettingError::WrongType {
                            name: name.to_owned(),
                            expected: "sslv23, sslv2, sslv3 or tlsv1",
                        })
                    }
                }
            }
            "tls_handshake_timeout" => self.handshake_timeout = seconds(name, value)?,
            "tls_send_timeout" => self.send_timeout = seconds(name, value)?,
            _ => {
                return Err(TlsSettingError::Unknown {
                    name: name.to_owned(),
                })
            }
        }
        Ok(())
    }

    /// Whether a server certificate is verified when connecting out.
    pub fn verifies_server(&self) -> bool {
        self.verify_server.unwrap_or(self.ca_list.is_some())
    }
}
