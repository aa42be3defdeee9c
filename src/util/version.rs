//! What this build calls itself: the `Server:`/`User-Agent:` text and the
//! version line. Build constants only, so any layer may use it.

/// `Sip EXpress router (<version> (<arch>/<os>))`, SER's server name.
pub fn server_name() -> String {
    format!("Sip EXpress router ({})", version_tag())
}

/// `<version> (<arch>/<os>)`.
pub fn version_tag() -> String {
    format!(
        "{} ({}/{})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}
