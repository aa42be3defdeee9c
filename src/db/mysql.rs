//! MySQL and MariaDB through the blocking `mysql` crate, without TLS.
//!
//! Statements go through the binary protocol (prepared, values bound);
//! the crate keeps them prepared per connection, keyed by their text.
//! The socket carries the connect timeout and read/write timeouts, so no
//! call blocks longer than those. `CLIENT_FOUND_ROWS` makes an update
//! count the rows it matched, as PostgreSQL and SQLite do.

use std::collections::HashSet;
use std::io;
use std::time::Duration;

use ::mysql::consts::{CapabilityFlags, ColumnType};
use ::mysql::prelude::Queryable;
use ::mysql::{Error as MyError, OptsBuilder, Params, Value as MyValue};

use super::error::Fail;
use super::sqlite::with_column;
use super::{time, DbError, DbOptions, Row, ServerAddr, Value};
use crate::os::time::CivilTime;

/// Statements kept prepared per connection.
const CACHE: usize = 256;
/// MySQL's character set number for binary data (blobs).
const BINARY_CHARSET: u16 = 63;
/// ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME.
const DUPLICATE: [u16; 2] = [1062, 1586];
/// Server codes that mean the session is over: shutdown in progress,
/// connection killed, server gone, lost.
const SESSION_OVER: [u16; 5] = [1053, 1927, 2006, 2013, 4031];

pub(crate) struct Conn {
    c: ::mysql::Conn,
    seen: HashSet<Box<str>>,
    io_timeout: Duration,
    pub(crate) prepares: u64,
}

impl Conn {
    pub(crate) fn open(a: &ServerAddr, opts: &DbOptions) -> Result<Conn, Fail> {
        let builder = OptsBuilder::new()
            .ip_or_hostname(Some(a.host.clone()))
            .tcp_port(a.port)
            .user(a.user.clone())
            .pass(a.password.clone())
            .db_name(Some(a.database.clone()))
            .tcp_connect_timeout(Some(opts.connect_timeout))
            .read_timeout(Some(opts.io_timeout))
            .write_timeout(Some(opts.io_timeout))
            // One TCP connection, not a second one over the server's unix
            // socket (which the crate would otherwise switch to).
            .prefer_socket(false)
            .stmt_cache_size(CACHE)
            .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS);
        let c = ::mysql::Conn::new(builder).map_err(|e| match fail(e, opts.io_timeout) {
            Fail::Other(e) => Fail::Connect(e.to_string()),
            Fail::Connect(r) | Fail::Lost(r) => Fail::Connect(r),
            Fail::Timeout(after) => Fail::Connect(format!("no answer within {after:?}")),
        })?;
        Ok(Conn {
            c,
            seen: HashSet::new(),
            io_timeout: opts.io_timeout,
            prepares: 0,
        })
    }

    fn prepare(&mut self, sql: &str) -> Result<::mysql::Statement, Fail> {
        let io = self.io_timeout;
        let stmt = self.c.prep(sql).map_err(|e| fail(e, io))?;
        if !self.seen.contains(sql) {
            if self.seen.len() >= CACHE {
                self.seen.clear();
            }
            self.seen.insert(sql.into());
            self.prepares += 1;
        }
        Ok(stmt)
    }

    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, Fail> {
        let bound = bind(params)?;
        let stmt = self.prepare(sql)?;
        let io = self.io_timeout;
        let result = self.c.exec_iter(&stmt, bound).map_err(|e| fail(e, io))?;
        let mut out = Vec::new();
        for row in result {
            let row = row.map_err(|e| fail(e, io))?;
            let cols: Vec<(ColumnType, u16)> = row
                .columns_ref()
                .iter()
                .map(|c| (c.column_type(), c.character_set()))
                .collect();
            let mut vals = Vec::with_capacity(cols.len());
            // `Row::unwrap` is the crate's "into the values", not a panic.
            for (i, (v, (ty, charset))) in row.unwrap().into_iter().zip(cols).enumerate() {
                vals.push(read(v, ty, charset).map_err(|e| with_column(e, i))?);
            }
            out.push(Row::new(vals));
        }
        Ok(out)
    }

    pub(crate) fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, Fail> {
        let bound = bind(params)?;
        let stmt = self.prepare(sql)?;
        let io = self.io_timeout;
        self.c.exec_drop(&stmt, bound).map_err(|e| fail(e, io))?;
        Ok(self.c.affected_rows())
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), Fail> {
        let io = self.io_timeout;
        // The text protocol takes one statement at a time here (the crate
        // does not enable multi-statements for prepared use).
        for one in split_statements(sql) {
            self.c.query_drop(one).map_err(|e| fail(e, io))?;
        }
        Ok(())
    }

    pub(crate) fn ping(&mut self) -> Result<(), Fail> {
        let io = self.io_timeout;
        self.c.ping().map_err(|e| fail(e, io))
    }
}

/// The statements of a batch built in this crate (no `;` inside literals).
pub(crate) fn split_statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').map(str::trim).filter(|s| !s.is_empty())
}

fn bind(params: &[Value]) -> Result<Params, Fail> {
    if params.is_empty() {
        return Ok(Params::Empty);
    }
    let mut out = Vec::with_capacity(params.len());
    for (i, v) in params.iter().enumerate() {
        out.push(match v {
            Value::Null => MyValue::NULL,
            Value::Int(n) => MyValue::Int(*n),
            Value::Float(f) => MyValue::Double(*f),
            Value::Str(s) => MyValue::Bytes(s.as_bytes().to_vec()),
            Value::Bytes(b) => MyValue::Bytes(b.clone()),
            Value::Time(t) => {
                let c = time::to_civil(*t).map_err(|e| with_column(e, i))?;
                let (Ok(y), Ok(mo), Ok(d), Ok(h), Ok(mi), Ok(s)) = (
                    u16::try_from(c.year),
                    u8::try_from(c.month),
                    u8::try_from(c.day),
                    u8::try_from(c.hour),
                    u8::try_from(c.minute),
                    u8::try_from(c.second),
                ) else {
                    return Err(Fail::Other(DbError::Type {
                        column: i,
                        expected: "a time MySQL can store",
                        found: time::format(&c),
                    }));
                };
                MyValue::Date(y, mo, d, h, mi, s, 0)
            }
        });
    }
    Ok(Params::Positional(out))
}

fn read(v: MyValue, ty: ColumnType, charset: u16) -> Result<Value, DbError> {
    Ok(match v {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) => Value::Int(i),
        MyValue::UInt(u) => Value::Int(i64::try_from(u).map_err(|_| DbError::Type {
            column: 0,
            expected: "an integer up to 2^63-1",
            found: u.to_string(),
        })?),
        MyValue::Float(f) => Value::Float(f64::from(f)),
        MyValue::Double(f) => Value::Float(f),
        MyValue::Bytes(b) => match ty {
            ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                let text = Value::text_or_bytes(b);
                match text.as_float() {
                    Some(f) => Value::Float(f),
                    None => text,
                }
            }
            _ if charset == BINARY_CHARSET => Value::Bytes(b),
            _ => Value::text_or_bytes(b),
        },
        // MySQL's zero date ('0000-00-00 00:00:00', SER's default for
        // unset datetimes) names no instant.
        MyValue::Date(0, 0, 0, ..) => Value::Null,
        MyValue::Date(y, mo, d, h, mi, s, _) => {
            let c = CivilTime {
                year: i32::from(y),
                month: u32::from(mo),
                day: u32::from(d),
                hour: u32::from(h),
                minute: u32::from(mi),
                second: u32::from(s),
            };
            Value::Time(time::to_secs(&c)?)
        }
        // A TIME column: a duration, as signed seconds.
        MyValue::Time(neg, days, h, m, s, _) => {
            let secs =
                i64::from(days) * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s);
            Value::Int(if neg { -secs } else { secs })
        }
    })
}

fn io_fail(e: &io::Error, io: Duration) -> Fail {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fail::Timeout(io),
        _ => Fail::Lost(e.to_string()),
    }
}

fn fail(e: MyError, io: Duration) -> Fail {
    match &e {
        MyError::IoError(err) => io_fail(err, io),
        MyError::CodecError(codec) => {
            match std::error::Error::source(codec).and_then(|s| s.downcast_ref::<io::Error>()) {
                Some(err) => io_fail(err, io),
                None => Fail::Lost(e.to_string()),
            }
        }
        MyError::DriverError(::mysql::DriverError::ConnectTimeout) => {
            Fail::Connect("connect timed out".into())
        }
        MyError::DriverError(::mysql::DriverError::CouldNotConnect(_)) => {
            Fail::Connect(e.to_string())
        }
        MyError::DriverError(_) => Fail::Lost(e.to_string()),
        MyError::MySqlError(me) if DUPLICATE.contains(&me.code) => {
            Fail::Other(DbError::Duplicate {
                message: me.message.clone(),
            })
        }
        MyError::MySqlError(me) if SESSION_OVER.contains(&me.code) => {
            Fail::Lost(me.message.clone())
        }
        MyError::MySqlError(me) => Fail::Other(DbError::Refused {
            code: me.code.to_string(),
            message: me.message.clone(),
        }),
        MyError::UrlError(_) => Fail::Connect(e.to_string()),
        MyError::FromValueError(_) | MyError::FromRowError(_) => Fail::Other(DbError::Type {
            column: 0,
            expected: "a supported value",
            found: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_by_column_type() {
        let text = ColumnType::MYSQL_TYPE_VAR_STRING;
        assert_eq!(
            read(MyValue::Bytes(b"ab".to_vec()), text, 33).unwrap(),
            Value::from("ab")
        );
        assert_eq!(
            read(
                MyValue::Bytes(b"ab".to_vec()),
                ColumnType::MYSQL_TYPE_BLOB,
                63
            )
            .unwrap(),
            Value::Bytes(b"ab".to_vec())
        );
        assert_eq!(
            read(
                MyValue::Bytes(b"0.50".to_vec()),
                ColumnType::MYSQL_TYPE_NEWDECIMAL,
                63
            )
            .unwrap(),
            Value::Float(0.5)
        );
        let zero = MyValue::Date(0, 0, 0, 0, 0, 0, 0);
        assert_eq!(
            read(zero, ColumnType::MYSQL_TYPE_DATETIME, 63).unwrap(),
            Value::Null
        );
        let t = read(
            MyValue::Date(2020, 5, 28, 21, 32, 15, 0),
            ColumnType::MYSQL_TYPE_DATETIME,
            63,
        )
        .unwrap();
        assert_eq!(t, Value::Time(time::forever_secs()));
        assert!(read(MyValue::UInt(u64::MAX), ColumnType::MYSQL_TYPE_LONGLONG, 63).is_err());
    }

    #[test]
    fn batches_split_on_semicolons() {
        let v: Vec<&str> =
            split_statements("CREATE TABLE a (x INT);\n\n  INSERT INTO a VALUES (1);  ").collect();
        assert_eq!(v, ["CREATE TABLE a (x INT)", "INSERT INTO a VALUES (1)"]);
    }
}
