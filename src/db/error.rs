//! What can go wrong with the database, sorted by who is to blame: the
//! configuration (URL, names), the caller (parameters, types), the
//! server's answer (refused statement, duplicate key), or the database
//! being out of reach (connect, lost, timeout, backing off).

use std::time::Duration;

use super::url::UrlError;

/// An error of the database layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DbError {
    /// The `db_url` does not parse.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// A table or column name (from the configuration) is not an SQL
    /// identifier `[A-Za-z_][A-Za-z0-9_]*` of at most 64 characters.
    #[error("\"{0}\" is not a valid table or column name")]
    BadName(String),
    /// A statement description that cannot be built: no columns, or
    /// ORDER BY/LIMIT on something other than a select.
    #[error("bad statement: {0}")]
    BadStatement(&'static str),
    /// A statement was given a different number of values than it has
    /// placeholders.
    #[error("statement takes {expected} values, {given} given")]
    Params {
        /// Placeholders in the statement.
        expected: usize,
        /// Values passed.
        given: usize,
    },
    /// Connecting (or logging in) failed: the server is down, refuses us
    /// or does not answer within the connect timeout.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// What the client library or the server said.
        reason: String,
    },
    /// The connection broke during a call (server stopped, network gone).
    /// The connection is dropped; the next call connects again.
    #[error("connection to {url} lost: {reason}")]
    Lost {
        /// The URL, password hidden.
        url: String,
        /// What the client library said.
        reason: String,
    },
    /// The server did not answer within the read/write timeout. The
    /// connection is dropped and the next attempts back off.
    #[error("{url} did not answer within {after:?}")]
    Timeout {
        /// The URL, password hidden.
        url: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// A recent attempt failed; no new one is made until the back-off
    /// delay has passed, so a dead database costs a call nothing.
    #[error("{url} unavailable (next attempt in {retry_in:?}): {cause}")]
    Unavailable {
        /// The URL, password hidden.
        url: String,
        /// Time left before the next connection attempt.
        retry_in: Duration,
        /// The error of the last attempt.
        cause: String,
    },
    /// The server executed nothing: it refused the statement (unknown
    /// table or column, type mismatch, constraint other than a duplicate
    /// key, permissions).
    #[error("statement refused ({code}): {message}")]
    Refused {
        /// The backend's error code (MySQL number, SQLSTATE, SQLite code).
        code: String,
        /// The server's message.
        message: String,
    },
    /// An insert or update would duplicate a primary or unique key.
    #[error("duplicate key: {message}")]
    Duplicate {
        /// The server's message.
        message: String,
    },
    /// A value of a result row is not of the type asked for, or a value
    /// given does not fit the column.
    #[error("column {column}: expected {expected}, found {found}")]
    Type {
        /// Column (or parameter) index, from 0.
        column: usize,
        /// What was asked for.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// The `version` table gives another version for a table than this
    /// code reads and writes (SER's modules refuse to start then).
    #[error("table {table} has version {found:?} in the version table, {expected} needed")]
    Version {
        /// The table checked.
        table: String,
        /// The version this code needs.
        expected: i64,
        /// What the `version` table says (`None`: no row).
        found: Option<i64>,
    },
}

impl DbError {
    /// The database is out of reach (rather than refusing what was asked):
    /// what a SIP request needing it answers with 500, and what clears by
    /// itself when the database comes back.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Connect { .. }
                | DbError::Lost { .. }
                | DbError::Timeout { .. }
                | DbError::Unavailable { .. }
        )
    }
}

/// A failure inside a backend, before the handle adds its URL.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Could not connect or log in.
    Connect(String),
    /// The connection broke.
    Lost(String),
    /// No answer in time.
    Timeout(Duration),
    /// Everything else is final and leaves the connection usable.
    Other(DbError),
}

impl Fail {
    /// Adds the URL (password hidden) to the connection-level failures.
    pub(crate) fn into_error(self, url: &str) -> DbError {
        let url = url.to_string();
        match self {
            Fail::Connect(reason) => DbError::Connect { url, reason },
            Fail::Lost(reason) => DbError::Lost { url, reason },
            Fail::Timeout(after) => DbError::Timeout { url, after },
            Fail::Other(e) => e,
        }
    }
}

impl From<DbError> for Fail {
    fn from(e: DbError) -> Fail {
        Fail::Other(e)
    }
}
