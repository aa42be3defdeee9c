//! A thin safe wrapper over libc `openlog`/`syslog`.
use std::ffi::CString;

/// Facility names accepted by `log_facility` and their libc values.
const FACILITIES: &[(&str, libc::c_int)] = &[
    ("LOG_AUTH", libc::LOG_AUTH),
    ("LOG_AUTHPRIV", libc::LOG_AUTHPRIV),
    ("LOG_CRON", libc::LOG_CRON),
    ("LOG_DAEMON", libc::LOG_DAEMON),
    ("LOG_FTP", libc::LOG_FTP),
    ("LOG_KERN", libc::LOG_KERN),
    ("LOG_LOCAL0", libc::LOG_LOCAL0),
    ("LOG_LOCAL1", libc::LOG_LOCAL1),
    ("LOG_LOCAL2", libc::LOG_LOCAL2),
    ("LOG_LOCAL3", libc::LOG_LOCAL3),
    ("LOG_LOCAL4", libc::LOG_LOCAL4),
    ("LOG_LOCAL5", libc::LOG_LOCAL5),
    ("LOG_LOCAL6", libc::LOG_LOCAL6),
    ("LOG_LOCAL7", libc::LOG_LOCAL7),
    ("LOG_LPR", libc::LOG_LPR),
    ("LOG_MAIL", libc::LOG_MAIL),
    ("LOG_NEWS", libc::LOG_NEWS),
    ("LOG_SYSLOG", libc::LOG_SYSLOG),
    ("LOG_USER", libc::LOG_USER),
    ("LOG_UUCP", libc::LOG_UUCP),
];

/// Syslog priorities, re-exported so callers need no libc.
pub const LOG_ALERT: i32 = libc::LOG_ALERT;
pub const LOG_CRIT: i32 = libc::LOG_CRIT;
pub const LOG_ERR: i32 = libc::LOG_ERR;
pub const LOG_WARNING: i32 = libc::LOG_WARNING;
pub const LOG_NOTICE: i32 = libc::LOG_NOTICE;
pub const LOG_INFO: i32 = libc::LOG_INFO;
pub const LOG_DEBUG: i32 = libc::LOG_DEBUG;

/// Maps a facility name (`LOG_LOCAL0`, case-insensitive, `LOG_` optional)
/// to its value.
pub fn facility_from_name(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("LOG_") {
        upper
    } else {
        format!("LOG_{upper}")
    };
    FACILITIES.iter().find(|(n, _)| *n == full).map(|(_, v)| *v)
}

/// Where libc's `syslog` sends its lines.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// Whether a syslog daemon listens at [`SYSLOG_SOCKET`]. libc tries a
/// datagram connection, then a stream one, and otherwise drops every line
/// without a word (or writes it to the console): that silence is what this
/// check is for.
pub fn available() -> bool {
    use std::os::unix::net::{UnixDatagram, UnixStream};
    let dgram = UnixDatagram::unbound().is_ok_and(|s| s.connect(SYSLOG_SOCKET).is_ok());
    dgram || UnixStream::connect(SYSLOG_SOCKET).is_ok()
}

/// Opens the syslog connection with the process id in every line. The
/// ident string is leaked on purpose: `openlog` keeps the pointer for the
/// life of the process.
pub fn open(ident: &str, facility: i32) {
    let clean: String = ident.chars().filter(|c| *c != '\0').collect();
    let ident = match CString::new(clean) {
        Ok(c) => Box::leak(c.into_boxed_c_str()),
        Err(_) => return,
    };
    // SAFETY: `ident` is a NUL-terminated string leaked for 'static, as
    // openlog requires; the option and facility values are plain ints.
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID | libc::LOG_CONS, facility) };
}

/// Sends one message at `priority`. NUL bytes (which would cut the C
/// string) are dropped.
pub fn send(priority: i32, msg: &str) {
    let bytes: Vec<u8> = msg.bytes().filter(|b| *b != 0).collect();
    let Ok(text) = CString::new(bytes) else {
        return;
    };
    // SAFETY: the format is a static "%s" and its one argument is a valid
    // NUL-terminated string alive for the call, so syslog reads no further.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_names() {
        assert_eq!(facility_from_name("LOG_DAEMON"), Some(libc::LOG_DAEMON));
        assert_eq!(facility_from_name("log_local0"), Some(libc::LOG_LOCAL0));
        assert_eq!(facility_from_name("LOCAL7"), Some(libc::LOG_LOCAL7));
        assert_eq!(facility_from_name("LOG_NOPE"), None);
    }
}
