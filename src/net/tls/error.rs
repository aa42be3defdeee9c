//! Errors of the TLS layer, one enum per stage: a setting from the config,
//! building the rustls configs at startup, and a live session.

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
