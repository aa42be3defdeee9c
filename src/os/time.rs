//! Local time as `ctime(3)` prints it, for the `uptime` command.

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

#[cfg(test)]
mod tests {
    #[test]
    fn shape() {
        let s = super::ctime(1_700_000_000);
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.contains("2023"), "{s}");
    }
}
