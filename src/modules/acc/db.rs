//! acc's SQL sink (SER 0.9's `SQL_ACC`): one row per report in `acc`
//! (`db_flag`, `acc_db_request`, e2e ACKs) or `missed_calls`
//! (`db_missed_flag`).
//!
//! The values are the syslog line's ([`super::line::field`]) for SER
//! 0.9's fixed formats — `FTmiofcts0drX` for `acc` (username and domain
//! of the From URI) and `FTmiofctspdrD` for `missed_calls` (of the
//! request URI, the callee) — plus the `time` column, in the order of
//! SER's `db_keys`. Missing values are written `n/a`, as SER did.
//!
//! Each process opens its own connection on first use; a database out of
//! reach loses the row with a rate-limited warning and never holds the
//! reply path longer than the layer's bounded connect ([`crate::db`]).

use std::sync::OnceLock;

use crate::db::{DbError, DbUrl, Ident, Stmt, Value};
use crate::os::time::{local_secs, CivilTime};

use super::line::{self, Input};

/// `acc` rows: username and domain of the From URI.
pub(super) const ACC_FMT: &str = "FTmiofcts0drX";
/// `missed_calls` rows: username and domain of the request URI.
pub(super) const MC_FMT: &str = "FTmiofctspdrD";

/// SER 0.9's default `db_url` (`DEFAULT_DB_URL`).
pub(super) const DEFAULT_URL: &str = "mysql://ser:heslo@localhost/ser";

/// The column parameters, in the order of the formats' letters then
/// `time`, with SER 0.9's defaults.
pub(super) const COLUMN_PARAMS: [(&str, &str); 14] = [
    ("acc_from_uri_column", "from_uri"),
    ("acc_to_uri_column", "to_uri"),
    ("acc_sip_method_column", "sip_method"),
    ("acc_i_uri_column", "i_uri"),
    ("acc_o_uri_column", "o_uri"),
    ("acc_sip_from_column", "sip_from"),
    ("acc_sip_callid_column", "sip_callid"),
    ("acc_sip_to_column", "sip_to"),
    ("acc_sip_status_column", "sip_status"),
    ("acc_user_column", "username"),
    ("acc_totag_column", "totag"),
    ("acc_fromtag_column", "fromtag"),
    ("acc_domain_column", "domain"),
    ("acc_time_column", "time"),
];

/// The default column names.
pub(super) fn default_columns() -> Vec<String> {
    COLUMN_PARAMS.iter().map(|(_, c)| c.to_string()).collect()
}

/// A table or column name as the layer will accept it.
pub(super) fn check_name(name: &str) -> Result<(), DbError> {
    Ident::new(name).map(|_| ())
}

/// The insert of one table with the configured columns.
pub(super) fn insert_stmt(table: &str, cols: &[String]) -> Result<Stmt, DbError> {
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    Stmt::insert(table, &cols)
}

/// The URL every process connects to (set at load).
static URL: OnceLock<DbUrl> = OnceLock::new();

/// Record the URL at load; a second call keeps the first (one `db_url`).
pub(super) fn set_url(url: &str) -> Result<(), DbError> {
    let u = DbUrl::parse(url)?;
    let _ = URL.set(u);
    Ok(())
}

/// The civil date of the instant `secs` in UTC (Howard Hinnant's
/// `civil_from_days`).
fn utc_civil(secs: i64) -> CivilTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    CivilTime {
        year: i32::try_from(year).unwrap_or(1970),
        month: u32::try_from(month).unwrap_or(1),
        day: u32::try_from(day).unwrap_or(1),
        hour: u32::try_from(rem / 3600).unwrap_or(0),
        minute: u32::try_from(rem % 3600 / 60).unwrap_or(0),
        second: u32::try_from(rem % 60).unwrap_or(0),
    }
}

/// The `time` value: now, written as local time with `db_localtime`,
/// else as UTC (SER's `gmtime`). The layer writes a `Value::Time` as the
/// local civil time, so the UTC civil time is passed as the instant whose
/// local civil time it is.
fn now_value(localtime: bool) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    if localtime {
        Value::Time(now)
    } else {
        Value::Time(local_secs(&utc_civil(now)).unwrap_or(now))
    }
}

/// The row's values: one per letter of `fmt`, then the time.
pub(super) fn values(fmt: &str, inp: &Input<'_>, localtime: bool) -> Vec<Value> {
    let mut v: Vec<Value> = fmt
        .chars()
        .map(|c| Value::Str(String::from_utf8_lossy(line::field(c, inp).1).into_owned()))
        .collect();
    v.push(now_value(localtime));
    v
}

/// Insert one row; `false` (and a rate-limited warning) when it is lost.
pub(super) fn write(stmt: &Stmt, table: &str, fmt: &str, inp: &Input<'_>, localtime: bool) -> bool {
    let Some(url) = URL.get() else {
        crate::warn_limited!("acc: no db_url, {table} row lost");
        return false;
    };
    let vals = values(fmt, inp, localtime);
    let r = crate::modules::db_conn::with_db(url, |db| db.exec(stmt, &vals));
    match r {
        Ok(_) => true,
        Err(e) => {
            crate::warn_limited!("acc: {table} row lost: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Msg;

    #[test]
    fn utc_civil_dates() {
        let c = utc_civil(0);
        assert_eq!((c.year, c.month, c.day, c.hour), (1970, 1, 1, 0));
        // 2004-02-29 12:34:56 UTC
        let c = utc_civil(1_078_058_096);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2004, 2, 29, 12, 34, 56)
        );
        let c = utc_civil(1_735_689_599); // 2024-12-31 23:59:59
        assert_eq!((c.year, c.month, c.day, c.second), (2024, 12, 31, 59));
    }

    #[test]
    fn row_values_follow_ser_formats() {
        let req = Msg::parse(
            b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
From: \"A\" <sip:alice@atlanta.com>;tag=ft\r\nTo: <sip:bob@example.com>\r\n\
Call-ID: cid\r\nCSeq: 1 INVITE\r\n\r\n"
                .to_vec(),
        )
        .unwrap();
        let inp = Input {
            req: &req,
            to: None,
            out_uri: Some(b"sip:bob@10.0.0.2"),
            phrase: b"486 Busy Here",
        };
        let v = values(MC_FMT, &inp, true);
        assert_eq!(v.len(), COLUMN_PARAMS.len());
        let s: Vec<&str> = v.iter().filter_map(Value::as_str).collect();
        assert_eq!(
            s,
            [
                "sip:alice@atlanta.com",
                "sip:bob@example.com",
                "INVITE",
                "sip:bob@example.com",
                "sip:bob@10.0.0.2",
                "\"A\" <sip:alice@atlanta.com>;tag=ft",
                "cid",
                "<sip:bob@example.com>",
                "486 Busy Here",
                "bob",
                "n/a",
                "ft",
                "example.com",
            ]
        );
        assert!(matches!(v[13], Value::Time(_)));
        let a = values(ACC_FMT, &inp, false);
        assert_eq!(a[9].as_str(), Some("alice"));
        assert_eq!(a[12].as_str(), Some("atlanta.com"));
        assert!(insert_stmt("acc", &default_columns()).is_ok());
        assert!(insert_stmt("acc;drop", &default_columns()).is_err());
    }
}
