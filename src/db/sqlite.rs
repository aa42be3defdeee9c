//! SQLite through `rusqlite` (SQLite compiled in): a file, no server.
//!
//! Several processes share the file: write-ahead logging lets readers go
//! on while one writes, and a writer waits at most `io_timeout` for the
//! lock (then [`Fail::Timeout`]). Datetimes are stored as local
//! `YYYY-MM-DD HH:MM:SS` text in columns declared `DATETIME`/`TIMESTAMP`,
//! and read back as [`Value::Time`] from such columns.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{ffi, OpenFlags};

use super::error::Fail;
use super::{time, DbError, DbOptions, Row, Value};

/// Statements kept prepared per connection (rusqlite's cache).
const CACHE: usize = 256;

pub(crate) struct Conn {
    c: rusqlite::Connection,
    seen: HashSet<Box<str>>,
    io_timeout: Duration,
    pub(crate) prepares: u64,
}

impl Conn {
    pub(crate) fn open(path: &Path, opts: &DbOptions) -> Result<Conn, Fail> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = rusqlite::Connection::open_with_flags(path, flags)
            .map_err(|e| Fail::Connect(format!("{}: {e}", path.display())))?;
        c.busy_timeout(opts.io_timeout)
            .map_err(|e| Fail::Connect(e.to_string()))?;
        // A double-quoted name that matches no column must be an error,
        // not (SQLite's legacy) a string literal: a misspelt column in the
        // configuration would otherwise compare against its own name.
        for dqs in [
            DbConfig::SQLITE_DBCONFIG_DQS_DML,
            DbConfig::SQLITE_DBCONFIG_DQS_DDL,
        ] {
            c.set_db_config(dqs, false)
                .map_err(|e| Fail::Connect(e.to_string()))?;
        }
        // WAL is a property of the file, kept once set; a reader holding
        // the file may make the switch fail now, which is harmless.
        let _ = c.pragma_update(None, "journal_mode", "WAL");
        let _ = c.pragma_update(None, "synchronous", "NORMAL");
        c.set_prepared_statement_cache_capacity(CACHE);
        Ok(Conn {
            c,
            seen: HashSet::new(),
            io_timeout: opts.io_timeout,
            prepares: 0,
        })
    }

    fn count_prepare(&mut self, sql: &str) {
        if !self.seen.contains(sql) {
            if self.seen.len() >= CACHE {
                self.seen.clear();
            }
            self.seen.insert(sql.into());
            self.prepares += 1;
        }
    }

    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, Fail> {
        let bound = bind(params)?;
        self.count_prepare(sql);
        let io = self.io_timeout;
        let mut st = self.c.prepare_cached(sql).map_err(|e| fail(e, io))?;
        let times: Vec<bool> = st
            .columns()
            .iter()
            .map(|c| c.decl_type().is_some_and(is_time_decl))
            .collect();
        let mut rows = st
            .query(rusqlite::params_from_iter(bound.iter()))
            .map_err(|e| fail(e, io))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| fail(e, io))? {
            let mut vals = Vec::with_capacity(times.len());
            for (i, is_time) in times.iter().enumerate() {
                let v = r.get_ref(i).map_err(|e| fail(e, io))?;
                vals.push(read(v, *is_time));
            }
            out.push(Row::new(vals));
        }
        Ok(out)
    }

    pub(crate) fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, Fail> {
        let bound = bind(params)?;
        self.count_prepare(sql);
        let io = self.io_timeout;
        let mut st = self.c.prepare_cached(sql).map_err(|e| fail(e, io))?;
        let n = st
            .execute(rusqlite::params_from_iter(bound.iter()))
            .map_err(|e| fail(e, io))?;
        Ok(n as u64)
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), Fail> {
        self.c
            .execute_batch(sql)
            .map_err(|e| fail(e, self.io_timeout))
    }
}

/// `DATETIME`, `TIMESTAMP`, `DATE` declared types.
fn is_time_decl(decl: &str) -> bool {
    let d = decl.to_ascii_uppercase();
    d.contains("DATE") || d.contains("TIME")
}

fn bind(params: &[Value]) -> Result<Vec<SqlValue>, Fail> {
    params
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Ok(match v {
                Value::Null => SqlValue::Null,
                Value::Int(n) => SqlValue::Integer(*n),
                Value::Float(f) => SqlValue::Real(*f),
                Value::Str(s) => SqlValue::Text(s.clone()),
                Value::Bytes(b) => SqlValue::Blob(b.clone()),
                Value::Time(t) => {
                    let c = time::to_civil(*t).map_err(|e| with_column(e, i))?;
                    SqlValue::Text(time::format(&c))
                }
            })
        })
        .collect()
}

pub(crate) fn with_column(e: DbError, column: usize) -> DbError {
    match e {
        DbError::Type {
            expected, found, ..
        } => DbError::Type {
            column,
            expected,
            found,
        },
        other => other,
    }
}

fn read(v: ValueRef<'_>, is_time: bool) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => {
            if is_time {
                let parsed = std::str::from_utf8(t)
                    .ok()
                    .and_then(time::parse)
                    .and_then(|c| time::to_secs(&c).ok());
                if let Some(secs) = parsed {
                    return Value::Time(secs);
                }
            }
            Value::text_or_bytes(t.to_vec())
        }
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

fn fail(e: rusqlite::Error, io: Duration) -> Fail {
    match &e {
        rusqlite::Error::SqliteFailure(err, msg) => {
            let message = msg.clone().unwrap_or_else(|| e.to_string());
            match err.code {
                ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => Fail::Timeout(io),
                ffi::ErrorCode::ConstraintViolation
                    if matches!(
                        err.extended_code,
                        ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_UNIQUE
                    ) =>
                {
                    Fail::Other(DbError::Duplicate { message })
                }
                ffi::ErrorCode::CannotOpen
                | ffi::ErrorCode::SystemIoFailure
                | ffi::ErrorCode::NotADatabase
                | ffi::ErrorCode::DatabaseCorrupt => Fail::Lost(message),
                _ => Fail::Other(DbError::Refused {
                    code: format!("SQLITE {}", err.extended_code),
                    message,
                }),
            }
        }
        _ => Fail::Other(DbError::Refused {
            code: "rusqlite".into(),
            message: e.to_string(),
        }),
    }
}
