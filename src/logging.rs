//! The `log` crate backend: SER's numeric `debug` levels, syslog or stderr.
//!
//! SER levels: −3 alert, −2 crit, −1 err, 1 warn, 2 notice, 3 info, 4 debug
//! (`debug=2` by default, each `-d` adds one). A message is emitted when its
//! level is ≤ the configured `debug`. `log::Level`s map onto them as:
//! Error = −1, Warn = 1, Info = 2 (notice: shown by default), Debug = 4,
//! Trace = 5.
//!
//! The level lives in an atomic and is mirrored into `log::set_max_level`,
//! so the `log` macros skip formatting below the level with one atomic load.
//!
//! Messages a peer can trigger go through [`warn_limited!`](crate::warn_limited)
//! (see [`rate`]), so that no peer can fill the disk with them; `debug>=4`
//! traces every message received and sent ([`trace`]).
//!
//! Lines to stderr (`-E`, `log_stderror=yes`) start with the time in UTC
//! to the millisecond (syslog stamps its own lines, stderr has nothing
//! else); `log()`/`xlog()` text from the script stays verbatim, as in SER.
pub mod rate;
pub mod trace;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::os::syslog;

/// SER's default `debug` value.
pub const DEFAULT_LEVEL: i32 = 2;

static LEVEL: AtomicI32 = AtomicI32::new(DEFAULT_LEVEL);
static TO_STDERR: AtomicBool = AtomicBool::new(true);
/// What this process calls itself in stderr lines (`udp receiver`, ...).
/// A std Mutex is fine: it is per-process state and processes are
/// single-threaded.
static PROC_DESC: Mutex<String> = Mutex::new(String::new());

static LOGGER: SerLogger = SerLogger;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `log_facility` named no known syslog facility.
    #[error("unknown log facility \"{0}\"")]
    UnknownFacility(String),
    /// A logger was already installed in this process.
    #[error("a logger is already installed")]
    AlreadyInstalled,
}

/// Installs the logger. `ser_level` is the `debug` value, `to_stderr` is
/// `log_stderror`/`-E`, `facility` e.g. `"LOG_DAEMON"`, `ident` the syslog
/// tag (normally `ser`).
///
/// Returns where the lines go. Syslog is asked for but no daemon listens
/// at `/dev/log` (a container, a minimal system): rather than lose every
/// line, logging falls back to stderr and says so once.
pub fn init(
    ser_level: i32,
    to_stderr: bool,
    facility: &str,
    ident: &str,
) -> Result<LogSink, LogError> {
    let fac = syslog::facility_from_name(facility)
        .ok_or_else(|| LogError::UnknownFacility(facility.to_owned()))?;
    log::set_logger(&LOGGER).map_err(|_| LogError::AlreadyInstalled)?;
    set_level(ser_level);
    let sink = if to_stderr {
        LogSink::Stderr
    } else if syslog::available() {
        LogSink::Syslog
    } else {
        LogSink::StderrNoSyslog
    };
    TO_STDERR.store(sink != LogSink::Syslog, Ordering::Relaxed);
    match sink {
        LogSink::Syslog => syslog::open(ident, fac),
        LogSink::StderrNoSyslog => log::warn!(
            "no syslog daemon at {}: logging to stderr instead (not to syslog as {ident:?}, facility {})",
            syslog::SYSLOG_SOCKET,
            facility.trim().to_ascii_uppercase()
        ),
        LogSink::Stderr => {}
    }
    Ok(sink)
}

/// Where log lines go, as decided by [`init`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// `-E` / `log_stderror=yes`.
    Stderr,
    /// Syslog was asked for and is there.
    Syslog,
    /// Syslog was asked for but nothing listens at `/dev/log`.
    StderrNoSyslog,
}

impl LogSink {
    pub fn is_stderr(self) -> bool {
        self != LogSink::Syslog
    }
}

/// Changes the `debug` level (also at run time, e.g. from a FIFO command).
pub fn set_level(ser_level: i32) {
    LEVEL.store(ser_level, Ordering::Relaxed);
    log::set_max_level(level_filter(ser_level));
}

/// The current `debug` level.
pub fn level() -> i32 {
    LEVEL.load(Ordering::Relaxed)
}

/// Whether a message at `ser_level` would be emitted: one atomic load, for
/// callers that want to skip building a message.
pub fn enabled(ser_level: i32) -> bool {
    ser_level <= level()
}

/// Sets the description this process shows in stderr lines (its `ps`
/// description). Call it in each child right after fork.
pub fn set_process_desc(desc: &str) {
    if let Ok(mut d) = PROC_DESC.lock() {
        d.clear();
        d.push_str(desc);
    }
}

/// Which `log` records a SER `debug` value lets through.
pub fn level_filter(ser_level: i32) -> LevelFilter {
    match ser_level {
        i32::MIN..=-2 => LevelFilter::Off,
        -1..=0 => LevelFilter::Error,
        1 => LevelFilter::Warn,
        2..=3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// The SER level a `log::Level` counts as.
pub fn ser_level_of(level: Level) -> i32 {
    match level {
        Level::Error => -1,
        Level::Warn => 1,
        Level::Info => 2,
        Level::Debug => 4,
        Level::Trace => 5,
    }
}

/// The syslog priority for a SER level.
fn syslog_priority(ser_level: i32) -> i32 {
    match ser_level {
        i32::MIN..=-3 => syslog::LOG_ALERT,
        -2 => syslog::LOG_CRIT,
        -1..=0 => syslog::LOG_ERR,
        1 => syslog::LOG_WARNING,
        2 => syslog::LOG_NOTICE,
        3 => syslog::LOG_INFO,
        _ => syslog::LOG_DEBUG,
    }
}

/// The level word printed in stderr lines.
fn level_name(ser_level: i32) -> &'static str {
    match ser_level {
        i32::MIN..=-3 => "ALERT",
        -2 => "CRITICAL",
        -1..=0 => "ERROR",
        1 => "WARNING",
        2 => "NOTICE",
        3 => "INFO",
        4 => "DEBUG",
        _ => "TRACE",
    }
}

/// Formats a stderr line: `<UTC time> <pid>(<desc>) <LEVEL>: <message>\n`.
fn format_line(stamp: &str, pid: u32, desc: &str, ser_level: i32, msg: &str) -> String {
    let mut line = format!("{stamp} {pid}({desc}) {}: {msg}", level_name(ser_level));
    if !line.ends_with('\n') {
        line.push('\n');
    }
    line
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: ISO 8601 in UTC, so that lines from
/// machines in different zones (and across a DST change) sort and compare
/// as they are. Computed from the epoch count, with no time-zone file to
/// read and no libc state to share.
fn utc_stamp(now: std::time::SystemTime) -> String {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date of day `days` after 1970-01-01: the
/// era-based conversion (400-year eras of 146 097 days, years counted
/// from March so the leap day ends the year).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Writes `bytes` to stderr with one `write(2)` (stderr is unbuffered, and
/// one call keeps lines from different processes from interleaving).
fn write_stderr(bytes: &[u8]) {
    // Nothing useful can be done if stderr is gone.
    let _ = std::io::stderr().lock().write_all(bytes);
}

fn emit(ser_level: i32, msg: &str) {
    if TO_STDERR.load(Ordering::Relaxed) {
        let desc = PROC_DESC.lock().map(|d| d.clone()).unwrap_or_default();
        // The supervisor never names itself; children always do (spawn).
        let desc = if desc.is_empty() {
            "main".to_owned()
        } else {
            desc
        };
        let stamp = utc_stamp(std::time::SystemTime::now());
        write_stderr(format_line(&stamp, std::process::id(), &desc, ser_level, msg).as_bytes());
    } else {
        syslog::send(syslog_priority(ser_level), msg);
    }
}

/// The script's `log(level, "text")`: emitted when `ser_level` ≤ the
/// current `debug`, the text written verbatim (scripts put their own `\n`).
pub fn script_log(ser_level: i32, text: &str) {
    if !enabled(ser_level) {
        return;
    }
    if TO_STDERR.load(Ordering::Relaxed) {
        write_stderr(text.as_bytes());
    } else {
        syslog::send(syslog_priority(ser_level), text);
    }
}

struct SerLogger;

impl Log for SerLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        ser_level_of(metadata.level()) <= level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        emit(ser_level_of(record.level()), &record.args().to_string());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ser_levels_map_to_filters() {
        assert_eq!(level_filter(-3), LevelFilter::Off);
        assert_eq!(level_filter(-1), LevelFilter::Error);
        assert_eq!(level_filter(1), LevelFilter::Warn);
        assert_eq!(level_filter(2), LevelFilter::Info);
        assert_eq!(level_filter(3), LevelFilter::Info);
        assert_eq!(level_filter(4), LevelFilter::Debug);
        assert_eq!(level_filter(9), LevelFilter::Trace);
    }

    #[test]
    fn log_levels_count_as_ser_levels() {
        // A record passes the filter exactly when its SER level ≤ debug.
        for debug in -3..=6 {
            for lvl in [
                Level::Error,
                Level::Warn,
                Level::Info,
                Level::Debug,
                Level::Trace,
            ] {
                let by_filter = lvl <= level_filter(debug);
                assert_eq!(by_filter, ser_level_of(lvl) <= debug, "debug={debug} {lvl}");
            }
        }
    }

    #[test]
    fn syslog_priorities_and_names() {
        assert_eq!(syslog_priority(-3), syslog::LOG_ALERT);
        assert_eq!(syslog_priority(-2), syslog::LOG_CRIT);
        assert_eq!(syslog_priority(-1), syslog::LOG_ERR);
        assert_eq!(syslog_priority(2), syslog::LOG_NOTICE);
        assert_eq!(syslog_priority(4), syslog::LOG_DEBUG);
        assert_eq!(level_name(1), "WARNING");
    }

    #[test]
    fn stderr_line_shape() {
        assert_eq!(
            format_line("T", 42, "timer", -1, "boom"),
            "T 42(timer) ERROR: boom\n"
        );
        assert_eq!(format_line("T", 7, "", 2, "x\n"), "T 7() NOTICE: x\n");
    }

    #[test]
    fn utc_stamps() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |secs: u64, ms: u64| {
            utc_stamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century year divisible by 400).
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        // 2026-12-01 13:15:18.123 UTC.
        assert_eq!(at(1_796_130_918, 123), "2026-12-01T13:15:18.123Z");
        // The last second of a non-leap year, then New Year.
        assert_eq!(at(1_798_761_599, 999), "2026-12-31T23:59:59.999Z");
        assert_eq!(at(1_798_761_600, 0), "2027-01-01T00:00:00.000Z");
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(at(4_107_456_000, 0), "2100-02-28T00:00:00.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn unknown_facility_is_refused_before_installing() {
        assert!(matches!(
            init(2, true, "LOG_BOGUS", "ser"),
            Err(LogError::UnknownFacility(_))
        ));
    }
}
