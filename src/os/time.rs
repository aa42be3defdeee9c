//! Local time: as `ctime(3)` prints it, for the `uptime` command, and the
//! civil date and time of an instant in the local zone and back
//! (`localtime_r`/`mktime`), which SER's database modules used for their
//! `datetime` columns.

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Www Mmm dd hh:mm:ss yyyy` in the local time zone (no newline).
pub fn ctime(secs: i64) -> String {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: `tm` is plain old data for which all-zeroes is valid;
    // localtime_r only writes into it and reads `t`, both valid for the
    // call; it is the re-entrant variant, so no static buffer is shared.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return format!("@{secs}");
        }
        tm
    };
    let day = DAYS.get(tm.tm_wday as usize).copied().unwrap_or("???");
    let mon = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("???");
    format!(
        "{day} {mon} {:2} {:02}:{:02}:{:02} {}",
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

/// A date and time of day on the calendar, without a zone: what a
/// `datetime` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilTime {
    /// The year, e.g. 2005.
    pub year: i32,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0–60 (a leap second may appear).
    pub second: u32,
}

/// The local civil time of the instant `secs` (seconds since the epoch),
/// as SER's `localtime()`; `None` if the C library cannot represent it.
pub fn local_civil(secs: i64) -> Option<CivilTime> {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: as in `ctime`: `tm` is plain data, zeroes are valid, and the
    // re-entrant localtime_r only reads `t` and writes `tm`.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some(CivilTime {
        year: tm.tm_year.checked_add(1900)?,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        second: u32::try_from(tm.tm_sec).ok()?,
    })
}

/// The instant (seconds since the epoch) of a local civil time, as SER's
/// `mktime()` with the zone's own daylight-saving rule deciding (an hour
/// that repeats at the end of summer time takes one of its two instants).
/// `None` if out of range for the C library.
pub fn local_secs(c: &CivilTime) -> Option<i64> {
    let int = |v: u32| libc::c_int::try_from(v).ok();
    // SAFETY: `tm` is plain data for which all-zeroes is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = c.year.checked_sub(1900)?;
    tm.tm_mon = int(c.month)?.checked_sub(1)?;
    tm.tm_mday = int(c.day)?;
    tm.tm_hour = int(c.hour)?;
    tm.tm_min = int(c.minute)?;
    tm.tm_sec = int(c.second)?;
    tm.tm_isdst = -1;
    // SAFETY: mktime reads and normalises the `tm` we own for the whole
    // call; it touches the library's zone state under its own lock.
    let t = unsafe { libc::mktime(&mut tm) };
    if t == -1 && !(c.year == 1969 || c.year == 1970) {
        return None;
    }
    Some(t as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_civil_time_round_trips() {
        for secs in [0i64, 1_117_315_935, 1_700_000_000, 2_000_000_000] {
            let c = local_civil(secs).unwrap();
            assert_eq!(local_secs(&c), Some(secs), "{c:?}");
        }
    }

    #[test]
    fn shape() {
        let s = ctime(1_700_000_000);
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.contains("2023"), "{s}");
    }
}
