//! PostgreSQL through `tokio-postgres`, without TLS (`NoTls`).
//!
//! Each connection owns a current-thread tokio runtime, made when the
//! connection is opened — in the process that uses it, after any fork —
//! and driven only inside our calls (`block_on`), so no thread ever runs:
//! the host name is resolved here, before the runtime sees it, because
//! tokio would resolve a name on a thread of its blocking pool. Every
//! await is wrapped in a timeout. Statements are prepared once per
//! connection and kept by their text; values are converted to the types
//! the server inferred for the placeholders before they are sent.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::error::Fail;
use super::sqlite::with_column;
use super::{time, DbError, DbOptions, Row, ServerAddr, Value};

/// Statements kept prepared per connection.
const CACHE: usize = 256;
/// At most this many addresses of a host name are tried.
const MAX_ADDRS: usize = 4;

type BoxError = Box<dyn StdError + Sync + Send>;

pub(crate) struct Conn {
    rt: Runtime,
    client: Option<Client>,
    task: Option<JoinHandle<()>>,
    stmts: HashMap<Box<str>, Statement>,
    io_timeout: Duration,
    pub(crate) prepares: u64,
}

/// Runs `fut` on `rt`, at most `io` long.
fn block<T>(
    rt: &Runtime,
    io: Duration,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Fail> {
    match rt.block_on(async { tokio::time::timeout(io, fut).await }) {
        Err(_) => Err(Fail::Timeout(io)),
        Ok(Err(e)) => Err(fail(&e)),
        Ok(Ok(v)) => Ok(v),
    }
}

/// The addresses of `host`, resolved in this thread (no resolver thread).
fn resolve(host: &str, port: u16) -> Result<Vec<IpAddr>, Fail> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let addrs: Vec<IpAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Fail::Connect(format!("{host}: {e}")))?
        .map(|a| a.ip())
        .take(MAX_ADDRS)
        .collect();
    if addrs.is_empty() {
        return Err(Fail::Connect(format!("{host}: no address")));
    }
    Ok(addrs)
}

impl Conn {
    pub(crate) fn open(a: &ServerAddr, opts: &DbOptions) -> Result<Conn, Fail> {
        let mut cfg = Config::new();
        for ip in resolve(&a.host, a.port)? {
            cfg.host(ip.to_string());
        }
        cfg.port(a.port)
            .dbname(&a.database)
            .connect_timeout(opts.connect_timeout)
            .application_name("ser");
        if let Some(u) = &a.user {
            cfg.user(u);
        }
        if let Some(p) = &a.password {
            cfg.password(p);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Fail::Connect(format!("runtime: {e}")))?;
        let bound = opts.connect_timeout + opts.io_timeout;
        let (client, connection) =
            match rt.block_on(async { tokio::time::timeout(bound, cfg.connect(NoTls)).await }) {
                Err(_) => return Err(Fail::Connect(format!("no answer within {bound:?}"))),
                Ok(Err(e)) => return Err(Fail::Connect(message(&e))),
                Ok(Ok(pair)) => pair,
            };
        // The connection's I/O runs as a task, polled whenever one of our
        // calls blocks on the runtime.
        let task = rt.spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            rt,
            client: Some(client),
            task: Some(task),
            stmts: HashMap::new(),
            io_timeout: opts.io_timeout,
            prepares: 0,
        })
    }

    fn client(&self) -> Result<&Client, Fail> {
        self.client
            .as_ref()
            .ok_or_else(|| Fail::Lost("connection closed".into()))
    }

    fn prepare(&mut self, sql: &str) -> Result<Statement, Fail> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let stmt = block(&self.rt, self.io_timeout, self.client()?.prepare(sql))?;
        if self.stmts.len() >= CACHE {
            // Dropping them closes them on the server.
            self.stmts.clear();
        }
        self.stmts.insert(sql.into(), stmt.clone());
        self.prepares += 1;
        Ok(stmt)
    }

    fn typed(stmt: &Statement, params: &[Value]) -> Result<Vec<Param>, Fail> {
        let types = stmt.params();
        if types.len() != params.len() {
            return Err(Fail::Other(DbError::Params {
                expected: types.len(),
                given: params.len(),
            }));
        }
        let mut out = Vec::with_capacity(params.len());
        for (i, (v, ty)) in params.iter().zip(types).enumerate() {
            out.push(convert(v, ty).map_err(|e| with_column(e, i))?);
        }
        Ok(out)
    }

    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, Fail> {
        let stmt = self.prepare(sql)?;
        let typed = Conn::typed(&stmt, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = typed.iter().map(|p| p as _).collect();
        let rows = block(
            &self.rt,
            self.io_timeout,
            self.client()?.query(&stmt, &refs),
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut vals = Vec::with_capacity(row.len());
            for (i, col) in row.columns().iter().enumerate() {
                let v: Option<PgValue> = row.try_get(i).map_err(|_| DbError::Type {
                    column: i,
                    expected: "a supported column type",
                    found: col.type_().name().to_string(),
                })?;
                vals.push(v.map_or(Value::Null, |v| v.0));
            }
            out.push(Row::new(vals));
        }
        Ok(out)
    }

    pub(crate) fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, Fail> {
        let stmt = self.prepare(sql)?;
        let typed = Conn::typed(&stmt, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = typed.iter().map(|p| p as _).collect();
        block(
            &self.rt,
            self.io_timeout,
            self.client()?.execute(&stmt, &refs),
        )
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), Fail> {
        block(&self.rt, self.io_timeout, self.client()?.batch_execute(sql))
    }

    pub(crate) fn ping(&mut self) -> Result<(), Fail> {
        block(&self.rt, self.io_timeout, self.client()?.simple_query("")).map(|_| ())
    }
}

impl Drop for Conn {
    /// Says goodbye (Terminate) and lets the I/O task finish, briefly.
    /// Never runs in a process that inherited the connection: the handle
    /// leaks those instead.
    fn drop(&mut self) {
        self.stmts.clear();
        drop(self.client.take());
        if let Some(task) = self.task.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_millis(200), task).await });
        }
    }
}

/// The server's message for a database error, else the client's with its
/// causes ("error connecting to server: Connection refused").
fn message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.code().code(), db.message());
    }
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

fn fail(e: &tokio_postgres::Error) -> Fail {
    let Some(db) = e.as_db_error() else {
        // No answer from the server: the connection broke or closed.
        return Fail::Lost(message(e));
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        Fail::Other(DbError::Duplicate {
            message: db.message().to_string(),
        })
    } else if *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
    {
        Fail::Lost(db.message().to_string())
    } else {
        Fail::Other(DbError::Refused {
            code: code.code().to_string(),
            message: db.message().to_string(),
        })
    }
}

/// A value converted to the type the server expects for its placeholder.
#[derive(Debug)]
enum Param {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Text(String),
    Bytes(Vec<u8>),
    Stamp(SystemTime),
}

fn is_text(ty: &Type) -> bool {
    <&str as FromSql>::accepts(ty)
}

fn system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    }
}

fn convert(v: &Value, ty: &Type) -> Result<Param, DbError> {
    let mismatch = || DbError::Type {
        column: 0,
        expected: "a value of the column's type",
        found: format!("{} for {}", v.kind(), ty.name()),
    };
    if v.is_null() {
        return Ok(Param::Null);
    }
    let int = || v.as_int().ok_or_else(mismatch);
    let p = if *ty == Type::BOOL {
        Param::Bool(int()? != 0)
    } else if *ty == Type::INT2 {
        Param::I16(i16::try_from(int()?).map_err(|_| mismatch())?)
    } else if *ty == Type::INT4 {
        Param::I32(i32::try_from(int()?).map_err(|_| mismatch())?)
    } else if *ty == Type::INT8 {
        Param::I64(int()?)
    } else if *ty == Type::FLOAT4 {
        Param::F32(v.as_float().ok_or_else(mismatch)? as f32)
    } else if *ty == Type::FLOAT8 {
        Param::F64(v.as_float().ok_or_else(mismatch)?)
    } else if *ty == Type::BYTEA {
        match v {
            Value::Bytes(b) => Param::Bytes(b.clone()),
            Value::Str(s) => Param::Bytes(s.as_bytes().to_vec()),
            _ => return Err(mismatch()),
        }
    } else if *ty == Type::TIMESTAMP {
        // Without zone: the local civil time, sent as if it were UTC.
        let civil = match v {
            Value::Time(t) => time::to_civil(*t)?,
            Value::Str(s) => time::parse(s).ok_or_else(mismatch)?,
            _ => return Err(mismatch()),
        };
        Param::Stamp(system_time(time::naive_secs(&civil)))
    } else if *ty == Type::TIMESTAMPTZ {
        let secs = match v {
            Value::Time(t) => *t,
            Value::Str(s) => time::to_secs(&time::parse(s).ok_or_else(mismatch)?)?,
            _ => return Err(mismatch()),
        };
        Param::Stamp(system_time(secs))
    } else if is_text(ty) {
        Param::Text(match v {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Time(t) => time::format(&time::to_civil(*t)?),
            Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| mismatch())?,
            Value::Null => return Ok(Param::Null),
        })
    } else {
        return Err(mismatch());
    };
    Ok(p)
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Bool(b) => b.to_sql(ty, out),
            Param::I16(i) => i.to_sql(ty, out),
            Param::I32(i) => i.to_sql(ty, out),
            Param::I64(i) => i.to_sql(ty, out),
            Param::F32(f) => f.to_sql(ty, out),
            Param::F64(f) => f.to_sql(ty, out),
            Param::Text(s) => s.to_sql(ty, out),
            Param::Bytes(b) => b.to_sql(ty, out),
            Param::Stamp(t) => t.to_sql(ty, out),
        }
    }

    /// `convert` picked the variant from this very type.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column value read by the column's type.
struct PgValue(Value);

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<PgValue, BoxError> {
        let v = if *ty == Type::BOOL {
            Value::Int(i64::from(bool::from_sql(ty, raw)?))
        } else if *ty == Type::INT2 {
            Value::Int(i64::from(i16::from_sql(ty, raw)?))
        } else if *ty == Type::INT4 {
            Value::Int(i64::from(i32::from_sql(ty, raw)?))
        } else if *ty == Type::INT8 {
            Value::Int(i64::from_sql(ty, raw)?)
        } else if *ty == Type::OID {
            Value::Int(i64::from(u32::from_sql(ty, raw)?))
        } else if *ty == Type::FLOAT4 {
            Value::Float(f64::from(f32::from_sql(ty, raw)?))
        } else if *ty == Type::FLOAT8 {
            Value::Float(f64::from_sql(ty, raw)?)
        } else if *ty == Type::BYTEA {
            Value::Bytes(<Vec<u8>>::from_sql(ty, raw)?)
        } else if *ty == Type::TIMESTAMP {
            let civil = time::naive_civil(unix_secs(SystemTime::from_sql(ty, raw)?));
            Value::Time(time::to_secs(&civil)?)
        } else if *ty == Type::TIMESTAMPTZ {
            Value::Time(unix_secs(SystemTime::from_sql(ty, raw)?))
        } else {
            Value::Str(String::from_sql(ty, raw)?)
        };
        Ok(PgValue(v))
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::BOOL,
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::OID,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::BYTEA,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
        ]
        .contains(ty)
            || is_text(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_to_the_placeholder_type() {
        assert!(matches!(
            convert(&Value::Int(7), &Type::INT4),
            Ok(Param::I32(7))
        ));
        assert!(matches!(
            convert(&Value::from("42"), &Type::INT8),
            Ok(Param::I64(42))
        ));
        assert!(matches!(
            convert(&Value::Int(7), &Type::VARCHAR),
            Ok(Param::Text(ref s)) if s == "7"
        ));
        assert!(matches!(
            convert(&Value::Null, &Type::INT4),
            Ok(Param::Null)
        ));
        assert!(convert(&Value::Int(1 << 40), &Type::INT4).is_err());
        assert!(convert(&Value::from("x' OR '1'='1"), &Type::INT4).is_err());
        // Timestamps without zone carry the local civil time.
        let forever = time::forever_secs();
        let Ok(Param::Stamp(t)) = convert(&Value::Time(forever), &Type::TIMESTAMP) else {
            panic!("not a timestamp");
        };
        assert_eq!(time::naive_civil(unix_secs(t)), time::FOREVER);
    }

    #[test]
    fn instants_before_the_epoch() {
        for s in [-86_401i64, -1, 0, 1, 1_700_000_000] {
            assert_eq!(unix_secs(system_time(s)), s);
        }
    }
}
