//! Datetimes between [`Value::Time`](super::Value::Time) (seconds since the
//! epoch) and what each backend stores: the *local* civil date and time,
//! as SER 0.9's `time2mysql()`/`mysql2time()` wrote and read them
//! (`localtime` + `"%Y-%m-%d %H:%M:%S"`, `strptime` + `mktime`). So rows
//! in an existing SER database read back as the instants SER meant, and
//! rows we write read correctly in SER.

use crate::os::time::{local_civil, local_secs, CivilTime};

use super::DbError;

/// SER's "forever": the expiry written for permanent bindings (aliases,
/// `ul_add` without expiry). A date now in the past, so a binding whose
/// expiry reads as exactly this must be taken as "never expires".
pub const FOREVER: CivilTime = CivilTime {
    year: 2020,
    month: 5,
    day: 28,
    hour: 21,
    minute: 32,
    second: 15,
};

/// [`FOREVER`] as an instant in this machine's zone, as SER compared it.
pub fn forever_secs() -> i64 {
    local_secs(&FOREVER).unwrap_or(1_590_701_535)
}

/// The local civil time of `secs`.
pub(crate) fn to_civil(secs: i64) -> Result<CivilTime, DbError> {
    local_civil(secs).ok_or_else(|| DbError::Type {
        column: 0,
        expected: "a representable time",
        found: format!("{secs} s"),
    })
}

/// The instant of a local civil time.
pub(crate) fn to_secs(c: &CivilTime) -> Result<i64, DbError> {
    local_secs(c).ok_or_else(|| DbError::Type {
        column: 0,
        expected: "a representable time",
        found: format(c),
    })
}

/// `YYYY-MM-DD HH:MM:SS`, MySQL's and SQLite's text form.
pub(crate) fn format(c: &CivilTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `YYYY-MM-DD[ HH:MM:SS[.fraction]]` (also with `T`); `None` otherwise.
pub(crate) fn parse(s: &str) -> Option<CivilTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let year = i32::try_from(num(0..4)?).ok()?;
    let (month, day) = (num(5..7)?, num(8..10)?);
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    if b.len() > 10 {
        if !matches!(b[10], b' ' | b'T') || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
            return None;
        }
        hour = num(11..13)?;
        minute = num(14..16)?;
        second = num(17..19)?;
        match b.get(19) {
            None => {}
            Some(b'.') if b.len() > 20 && b[20..].iter().all(u8::is_ascii_digit) => {}
            _ => return None,
        }
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    Some(CivilTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil time read as if it were UTC: what PostgreSQL's `timestamp`
/// (without zone) encodes on the wire, relative to the epoch.
pub(crate) fn naive_secs(c: &CivilTime) -> i64 {
    days_from_civil(i64::from(c.year), i64::from(c.month), i64::from(c.day)) * 86_400
        + i64::from(c.hour) * 3600
        + i64::from(c.minute) * 60
        + i64::from(c.second)
}

/// The inverse of [`naive_secs`].
pub(crate) fn naive_civil(secs: i64) -> CivilTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    CivilTime {
        year: year as i32,
        month: month as u32,
        day: day as u32,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let c = parse("2020-05-28 21:32:15").unwrap();
        assert_eq!(c, FOREVER);
        assert_eq!(format(&c), "2020-05-28 21:32:15");
        assert_eq!(parse("2020-05-28T21:32:15.123456"), Some(FOREVER));
        assert_eq!(parse("2002-09-04").unwrap().hour, 0);
        for bad in [
            "",
            "2020-5-28 21:32:15",
            "2020-05-28 21:32",
            "2020-13-01 00:00:00",
            "2020-05-28 24:00:00",
            "2020-05-28 21:32:15x",
            "yyyy-05-28 21:32:15",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn naive_seconds_match_the_calendar() {
        assert_eq!(naive_secs(&parse("1970-01-01 00:00:00").unwrap()), 0);
        assert_eq!(
            naive_secs(&parse("2000-01-01 00:00:00").unwrap()),
            946_684_800
        );
        assert_eq!(naive_secs(&FOREVER), 1_590_701_535);
        for s in [
            -86_400 * 365 * 80,
            -1,
            0,
            951_782_400,
            1_590_701_535,
            4_102_444_800,
        ] {
            assert_eq!(naive_secs(&naive_civil(s)), s, "{s}");
        }
    }

    #[test]
    fn local_conversion_round_trips() {
        for s in [1_000_000_000i64, 1_590_701_535, 1_700_000_000] {
            assert_eq!(to_secs(&to_civil(s).unwrap()).unwrap(), s);
        }
        assert_eq!(to_civil(forever_secs()).unwrap(), FOREVER);
    }
}
