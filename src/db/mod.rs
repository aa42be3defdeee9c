//! The database layer: SER's `db_url` ([`DbUrl`]), one connection per
//! process ([`Db`]), statements described once and rendered per backend
//! ([`Stmt`]), typed values ([`Value`], [`Row`]) and SER 0.9's tables
//! ([`schema`]). Backends: MySQL/MariaDB (the `mysql` crate, blocking),
//! PostgreSQL (`tokio-postgres` on a current-thread runtime of the
//! connection's own) and SQLite (`rusqlite`, compiled in).
//!
//! **Processes.** A [`Db`] may be made anywhere (it does no I/O until
//! used), but a connection belongs to the process that opened it, as SER's
//! `child_init` connections did: a call in a process other than the
//! opener (a forked child) abandons the inherited connection without a
//! word on its socket — the parent still uses that socket, and a `QUIT`
//! or SQLite's close-time checkpoint from the child would break it — and
//! opens its own. A process that used a database and is about to fork
//! calls [`Db::close`] first, as SER closed its `mod_init` connections.
//! No runtime and no thread is created before the first use in a process:
//! PostgreSQL's runtime is made then, current-thread, in that process, and
//! host names are resolved before it so it never starts a resolver thread.
//!
//! **A database that is down never hangs a process.** Connecting is
//! bounded by `connect_timeout` (plus one `io_timeout` for the login), each
//! statement by `io_timeout`. A failed connect or a timeout starts a
//! back-off (100 ms doubling to 5 s by default): until it passes, calls
//! fail at once with [`DbError::Unavailable`]. A connection that breaks
//! ([`DbError::Lost`]) is dropped and the next call connects again; a
//! select that finds its idle connection gone is retried once on a fresh
//! one (it changes nothing). [`DbError::is_unavailable`] is what a SIP
//! request needing the database answers 500 for.

mod error;
mod mysql;
mod postgres;
pub mod schema;
#[cfg(test)]
pub(crate) mod scratch;
mod sqlite;
mod stmt;
pub mod time;
mod url;
mod value;

use std::time::{Duration, Instant};

pub use error::DbError;
pub use stmt::{Filtered, Ident, Op, Stmt};
pub use url::{Backend, DbUrl, ServerAddr, UrlError};
pub use value::{Row, Value};

use error::Fail;

/// Timeouts and back-off of a [`Db`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbOptions {
    /// Bound on establishing the TCP connection; the login that follows
    /// gets one more `io_timeout`.
    pub connect_timeout: Duration,
    /// Bound on each statement's round trip (and SQLite's wait for a lock).
    pub io_timeout: Duration,
    /// First delay after a failed connect or a timeout.
    pub backoff_min: Duration,
    /// The delay doubles up to this.
    pub backoff_max: Duration,
    /// A connection unused this long is pinged before use, so one the
    /// server closed meanwhile (MySQL's `wait_timeout`) is replaced
    /// instead of failing a write.
    pub ping_after_idle: Duration,
}

impl Default for DbOptions {
    fn default() -> DbOptions {
        DbOptions {
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            ping_after_idle: Duration::from_secs(60),
        }
    }
}

/// Counters of one [`Db`] handle, for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Connections opened (in any process that used this handle's copy).
    pub connects: u64,
    /// Statements prepared on the current connection (a cached statement
    /// is not prepared again).
    pub prepares: u64,
    /// Calls that failed because the database was out of reach.
    pub unavailable: u64,
}

/// A backend's open connection.
enum Conn {
    Mysql(mysql::Conn),
    Postgres(postgres::Conn),
    Sqlite(sqlite::Conn),
}

impl Conn {
    fn open(url: &DbUrl, opts: &DbOptions) -> Result<Conn, Fail> {
        Ok(match url {
            DbUrl::Mysql(a) => Conn::Mysql(mysql::Conn::open(a, opts)?),
            DbUrl::Postgres(a) => Conn::Postgres(postgres::Conn::open(a, opts)?),
            DbUrl::Sqlite(p) => Conn::Sqlite(sqlite::Conn::open(p, opts)?),
        })
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, Fail> {
        match self {
            Conn::Mysql(c) => c.query(sql, params),
            Conn::Postgres(c) => c.query(sql, params),
            Conn::Sqlite(c) => c.query(sql, params),
        }
    }

    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, Fail> {
        match self {
            Conn::Mysql(c) => c.exec(sql, params),
            Conn::Postgres(c) => c.exec(sql, params),
            Conn::Sqlite(c) => c.exec(sql, params),
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), Fail> {
        match self {
            Conn::Mysql(c) => c.batch(sql),
            Conn::Postgres(c) => c.batch(sql),
            Conn::Sqlite(c) => c.batch(sql),
        }
    }

    fn ping(&mut self) -> Result<(), Fail> {
        match self {
            Conn::Mysql(c) => c.ping(),
            Conn::Postgres(c) => c.ping(),
            Conn::Sqlite(_) => Ok(()),
        }
    }

    fn prepares(&self) -> u64 {
        match self {
            Conn::Mysql(c) => c.prepares,
            Conn::Postgres(c) => c.prepares,
            Conn::Sqlite(c) => c.prepares,
        }
    }
}

/// A connection and the process that opened it.
struct Open {
    pid: u32,
    conn: Conn,
    last_used: Instant,
}

/// When the next connection attempt may be made.
#[derive(Debug, Default)]
struct Backoff {
    not_before: Option<Instant>,
    delay: Duration,
    cause: String,
}

/// A database handle: the URL, and this process's connection once used.
///
/// Methods take `&mut self`: each process is single-threaded and keeps
/// its handles in process-local state.
pub struct Db {
    url: DbUrl,
    shown: String,
    opts: DbOptions,
    open: Option<Open>,
    backoff: Backoff,
    stats: DbStats,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("url", &self.shown)
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// Does a select find its reused connection gone: retry it once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    ReadOnly,
    Never,
}

impl Db {
    /// A handle with the default timeouts; connects on first use.
    pub fn new(url: DbUrl) -> Db {
        Db::with_options(url, DbOptions::default())
    }

    /// A handle with the given timeouts and back-off.
    pub fn with_options(url: DbUrl, opts: DbOptions) -> Db {
        Db {
            shown: url.to_string(),
            url,
            opts,
            open: None,
            backoff: Backoff::default(),
            stats: DbStats::default(),
        }
    }

    /// Parses a `db_url` and makes a handle with the default timeouts.
    pub fn from_url(url: &str) -> Result<Db, DbError> {
        Ok(Db::new(DbUrl::parse(url)?))
    }

    /// The URL.
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// Which backend.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The counters.
    pub fn stats(&self) -> DbStats {
        let mut s = self.stats;
        s.prepares = self.open.as_ref().map_or(0, |o| o.conn.prepares());
        s
    }

    /// Is there a connection opened by this process?
    pub fn is_connected(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.pid == shm::current_pid())
    }

    /// Connects now if not connected (SER's `child_init`); calls connect
    /// by themselves anyway.
    pub fn connect(&mut self) -> Result<(), DbError> {
        self.ensure_open().map(|_| ())
    }

    /// Closes this process's connection (before a fork, or to let go of
    /// the server). An inherited connection is abandoned, not closed.
    pub fn close(&mut self) {
        self.drop_conn();
    }

    /// Runs a select; one [`Row`] per result row, its columns in the
    /// statement's order.
    pub fn query(&mut self, stmt: &Stmt, params: &[Value]) -> Result<Vec<Row>, DbError> {
        check_params(stmt, params)?;
        let sql = stmt.sql(self.backend());
        self.run(Retry::ReadOnly, |c| c.query(sql, params))
    }

    /// Runs a select and returns its first row, if any.
    pub fn query_one(&mut self, stmt: &Stmt, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(stmt, params)?.into_iter().next())
    }

    /// Runs an insert, update or delete; the number of rows it matched
    /// (MySQL is asked for found rows, so an update that changes nothing
    /// counts the rows it found, as on the other backends).
    pub fn exec(&mut self, stmt: &Stmt, params: &[Value]) -> Result<u64, DbError> {
        check_params(stmt, params)?;
        let sql = stmt.sql(self.backend());
        self.run(Retry::Never, |c| c.exec(sql, params))
    }

    /// Runs statements without parameters (table creation, for
    /// [`schema`]). Only text built in this crate, never from values.
    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.run(Retry::Never, |c| c.batch(sql))
    }

    fn run<T>(
        &mut self,
        retry: Retry,
        mut f: impl FnMut(&mut Conn) -> Result<T, Fail>,
    ) -> Result<T, DbError> {
        let mut reused = self.ensure_open()?;
        loop {
            let Some(open) = self.open.as_mut() else {
                // ensure_open() succeeded, so this is unreachable; answer
                // as if the connection had just gone.
                return Err(Fail::Lost("no connection".into()).into_error(&self.shown));
            };
            match f(&mut open.conn) {
                Ok(v) => {
                    open.last_used = Instant::now();
                    return Ok(v);
                }
                Err(Fail::Other(e)) => {
                    open.last_used = Instant::now();
                    return Err(e);
                }
                Err(Fail::Timeout(after)) => {
                    self.drop_conn();
                    let e = Fail::Timeout(after).into_error(&self.shown);
                    self.failed(&e);
                    return Err(e);
                }
                Err(f @ (Fail::Lost(_) | Fail::Connect(_))) => {
                    self.drop_conn();
                    let e = f.into_error(&self.shown);
                    if retry == Retry::ReadOnly && reused {
                        crate::warn_limited!("{e}; reconnecting");
                        reused = self.ensure_open()?;
                        continue;
                    }
                    self.stats.unavailable += 1;
                    return Err(e);
                }
            }
        }
    }

    /// Makes sure this process has a connection; `Ok(true)` if it was
    /// already there (so a failure on it may be an idle disconnect).
    fn ensure_open(&mut self) -> Result<bool, DbError> {
        let pid = shm::current_pid();
        if self.open.as_ref().is_some_and(|o| o.pid != pid) {
            // Inherited across fork: the parent still talks on this
            // socket. Leak it (memory and one descriptor) rather than
            // let its destructor say goodbye on the parent's behalf.
            std::mem::forget(self.open.take());
        }
        if let Some(open) = self.open.as_mut() {
            if open.last_used.elapsed() < self.opts.ping_after_idle {
                return Ok(true);
            }
            match open.conn.ping() {
                Ok(()) => {
                    open.last_used = Instant::now();
                    return Ok(true);
                }
                Err(Fail::Timeout(after)) => {
                    self.drop_conn();
                    let e = Fail::Timeout(after).into_error(&self.shown);
                    self.failed(&e);
                    return Err(e);
                }
                // Gone while idle: connect afresh below.
                Err(_) => self.drop_conn(),
            }
        }
        let now = Instant::now();
        if let Some(t) = self.backoff.not_before.filter(|t| now < *t) {
            self.stats.unavailable += 1;
            return Err(DbError::Unavailable {
                url: self.shown.clone(),
                retry_in: t - now,
                cause: self.backoff.cause.clone(),
            });
        }
        match Conn::open(&self.url, &self.opts) {
            Ok(conn) => {
                self.open = Some(Open {
                    pid,
                    conn,
                    last_used: Instant::now(),
                });
                self.stats.connects += 1;
                if self.backoff.not_before.take().is_some() {
                    log::info!("database {} reachable again", self.shown);
                }
                self.backoff.delay = Duration::ZERO;
                Ok(false)
            }
            Err(f) => {
                let e = match f {
                    Fail::Other(e) => e,
                    Fail::Connect(r) | Fail::Lost(r) => DbError::Connect {
                        url: self.shown.clone(),
                        reason: r,
                    },
                    Fail::Timeout(after) => DbError::Connect {
                        url: self.shown.clone(),
                        reason: format!("no answer within {after:?}"),
                    },
                };
                self.failed(&e);
                Err(e)
            }
        }
    }

    /// Starts or lengthens the back-off after a failed connect or a
    /// timeout.
    fn failed(&mut self, e: &DbError) {
        self.stats.unavailable += 1;
        let delay = if self.backoff.delay.is_zero() {
            self.opts.backoff_min
        } else {
            (self.backoff.delay * 2).min(self.opts.backoff_max)
        };
        self.backoff.delay = delay;
        self.backoff.not_before = Some(Instant::now() + delay);
        self.backoff.cause = e.to_string();
        crate::warn_limited!("{e}; next attempt in {delay:?}");
    }

    fn drop_conn(&mut self) {
        if let Some(open) = self.open.take() {
            if open.pid == shm::current_pid() {
                drop(open);
            } else {
                std::mem::forget(open);
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.drop_conn();
    }
}

fn check_params(stmt: &Stmt, params: &[Value]) -> Result<(), DbError> {
    if stmt.params() == params.len() {
        Ok(())
    } else {
        Err(DbError::Params {
            expected: stmt.params(),
            given: params.len(),
        })
    }
}

#[cfg(test)]
mod tests;
