//! TLS for SIP over TCP (`tls:` listen sockets, `forward_tls`,
//! `t_relay_to_tls`), on rustls with the ring provider: no OpenSSL.
//!
//! [`TlsSettings`]: SER's `tls_*` config settings, set by name.
//!
//! Deliberate deviation from SER: `tls_method` `sslv2`/`sslv3` are refused
//! and `tlsv1`/`sslv23` both mean TLS 1.2 or 1.3 (all rustls speaks).
mod error;
mod settings;

#[cfg(test)]
mod settings_tests;

pub use error::TlsSettingError;
pub use settings::{
    TlsMethod, TlsSettings, TlsValue, DEFAULT_CERT_FILE, DEFAULT_TLS_TIMEOUT_SECS,
    TLS_SETTING_NAMES,
};
