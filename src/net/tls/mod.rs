//! TLS for SIP over TCP (`tls:` listen sockets, `forward_tls`,
//! `t_relay_to_tls`), on rustls with the ring provider: no OpenSSL.
//!
//! - [`TlsSettings`]: SER's `tls_*` config settings, set by name;
//! - [`TlsSettings::server_config`] / [`TlsSettings::client_config`]: the
//!   rustls configs, built at startup before the fork so a bad PEM file
//!   refuses the config.
//!
//! Deliberate deviations from SER: `tls_method` `sslv2`/`sslv3` are
//! refused and `tlsv1`/`sslv23` both mean TLS 1.2 or 1.3 (all rustls
//! speaks); verification needs `tls_ca_list` (SER's OpenSSL would just
//! fail every certificate); a verified server certificate must also name
//! the host we connected to (RFC 3261 §26.3.1, RFC 5922), which SER did
//! not check.
mod config;
mod error;
mod pem;
mod settings;

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod settings_tests;
#[cfg(test)]
mod test_pki;

pub use error::{PemRole, TlsError, TlsSettingError};
pub use settings::{
    TlsMethod, TlsSettings, TlsValue, DEFAULT_CERT_FILE, DEFAULT_TLS_TIMEOUT_SECS,
    TLS_SETTING_NAMES,
};
