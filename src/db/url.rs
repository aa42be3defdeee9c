//! SER's `db_url`: `mysql://user:pass@host[:port]/db`,
//! `postgres://…` (or `postgresql://…`) of the same shape, and
//! `sqlite:///abs/path/file.db` for the embedded database.
//!
//! As SER 0.9's `parse_sql_url`, nothing is percent-decoded: the password
//! is what stands between the first `:` and the last `@` of the part
//! before the host, so a password may hold `@` and `:`; it may not hold
//! `/`. User and password may be left out (`mysql://host/db`), as the
//! servers' own defaults allow.

use std::fmt;
use std::path::PathBuf;

/// Which database server (or library) a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// MySQL or MariaDB (`mysql://`), SER 0.9's own.
    Mysql,
    /// PostgreSQL (`postgres://`, `postgresql://`), SER 2.x's postgres module.
    Postgres,
    /// SQLite in a file (`sqlite:///path`), no server.
    Sqlite,
}

impl Backend {
    /// The scheme as written in URLs we print.
    pub fn scheme(self) -> &'static str {
        match self {
            Backend::Mysql => "mysql",
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// Where a server-backed database is and who logs in.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// User name; `None` leaves it to the client library's default.
    pub user: Option<String>,
    /// Password; never printed.
    pub password: Option<String>,
    /// Host name or address (IPv6 without its brackets).
    pub host: String,
    /// Port; the backend's default (3306, 5432) when the URL has none.
    pub port: u16,
    /// Database name.
    pub database: String,
}

/// A parsed `db_url`. `Display` and `Debug` show `***` for the password.
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// MySQL or MariaDB.
    Mysql(ServerAddr),
    /// PostgreSQL.
    Postgres(ServerAddr),
    /// SQLite: the absolute path of the database file.
    Sqlite(PathBuf),
}

/// Why a `db_url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://` at the start.
    #[error("no scheme:// in the database URL")]
    NoScheme,
    /// A scheme other than mysql, postgres, postgresql and sqlite.
    #[error("unknown database scheme \"{0}\" (supported: mysql, postgres, sqlite)")]
    UnknownScheme(String),
    /// Nothing between `@` (or `//`) and the port or `/`.
    #[error("no host in the database URL")]
    NoHost,
    /// The port is not a number in 1–65535.
    #[error("bad port \"{0}\" in the database URL")]
    BadPort(String),
    /// An IPv6 address opened with `[` but not closed.
    #[error("unclosed [ in the host of the database URL")]
    UnclosedBracket,
    /// No `/database` after the host.
    #[error("no database name in the database URL")]
    NoDatabase,
    /// A database name with `/`, `?` or a control character.
    #[error("bad database name \"{0}\" in the database URL")]
    BadDatabase(String),
    /// Text after the port that is not `/database`.
    #[error("unexpected \"{0}\" after the host in the database URL")]
    Trailing(String),
    /// An SQLite URL whose path is not absolute (`sqlite:///abs/path`).
    #[error("sqlite URL needs an absolute path: sqlite:///path/to/file.db")]
    RelativePath,
}

impl DbUrl {
    /// Parses a `db_url` as SER's modules take it.
    pub fn parse(s: &str) -> Result<DbUrl, UrlError> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").ok_or(UrlError::NoScheme)?;
        let backend = match scheme.to_ascii_lowercase().as_str() {
            "mysql" => Backend::Mysql,
            "postgres" | "postgresql" => Backend::Postgres,
            "sqlite" => Backend::Sqlite,
            _ => return Err(UrlError::UnknownScheme(scheme.to_string())),
        };
        match backend {
            Backend::Sqlite => {
                // `sqlite://` + an absolute path: the "host" is empty.
                if !rest.starts_with('/') || rest.len() < 2 {
                    return Err(UrlError::RelativePath);
                }
                Ok(DbUrl::Sqlite(PathBuf::from(rest)))
            }
            Backend::Mysql => Ok(DbUrl::Mysql(parse_server(rest, 3306)?)),
            Backend::Postgres => Ok(DbUrl::Postgres(parse_server(rest, 5432)?)),
        }
    }

    /// The backend this URL names.
    pub fn backend(&self) -> Backend {
        match self {
            DbUrl::Mysql(_) => Backend::Mysql,
            DbUrl::Postgres(_) => Backend::Postgres,
            DbUrl::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The server address, for the server backends.
    pub fn server(&self) -> Option<&ServerAddr> {
        match self {
            DbUrl::Mysql(a) | DbUrl::Postgres(a) => Some(a),
            DbUrl::Sqlite(_) => None,
        }
    }
}

impl std::str::FromStr for DbUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<DbUrl, UrlError> {
        DbUrl::parse(s)
    }
}

/// `[user[:password]@]host[:port]/database`.
fn parse_server(rest: &str, default_port: u16) -> Result<ServerAddr, UrlError> {
    // The userinfo ends at the last '@' (a password may contain '@'); the
    // host part runs from there to the first '/'.
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (non_empty(user), Some(pass.to_string())),
            None => (non_empty(u), None),
        },
    };
    let (hostport, database) = match hostpart.find('/') {
        Some(i) => (&hostpart[..i], &hostpart[i + 1..]),
        None => (hostpart, ""),
    };
    let (host, port) = split_host_port(hostport)?;
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(UrlError::BadPort(p.to_string())),
        },
    };
    if database.is_empty() {
        return Err(UrlError::NoDatabase);
    }
    if database
        .chars()
        .any(|c| c == '/' || c == '?' || c.is_control())
    {
        return Err(UrlError::BadDatabase(database.to_string()));
    }
    Ok(ServerAddr {
        user,
        password,
        host: host.to_string(),
        port,
        database: database.to_string(),
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), UrlError> {
    if let Some(inner) = s.strip_prefix('[') {
        let end = inner.find(']').ok_or(UrlError::UnclosedBracket)?;
        let host = &inner[..end];
        let after = &inner[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(p))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(UrlError::Trailing(after.to_string())),
        };
    }
    match s.split_once(':') {
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((s, None)),
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DbUrl::Mysql(a) | DbUrl::Postgres(a) => {
                write!(f, "{}://", self.backend().scheme())?;
                if let Some(u) = &a.user {
                    f.write_str(u)?;
                }
                if a.password.is_some() {
                    f.write_str(":***")?;
                }
                if a.user.is_some() || a.password.is_some() {
                    f.write_str("@")?;
                }
                if a.host.contains(':') {
                    write!(f, "[{}]", a.host)?;
                } else {
                    f.write_str(&a.host)?;
                }
                write!(f, ":{}/{}", a.port, a.database)
            }
        }
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({self})")
    }
}

impl fmt::Debug for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAddr")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> ServerAddr {
        DbUrl::parse(url).unwrap().server().unwrap().clone()
    }

    #[test]
    fn sers_default_url_parses() {
        let u = DbUrl::parse("mysql://ser:heslo@localhost/ser").unwrap();
        assert_eq!(u.backend(), Backend::Mysql);
        let a = u.server().unwrap();
        assert_eq!(a.user.as_deref(), Some("ser"));
        assert_eq!(a.password.as_deref(), Some("heslo"));
        assert_eq!((a.host.as_str(), a.port), ("localhost", 3306));
        assert_eq!(a.database, "ser");
    }

    #[test]
    fn ports_schemes_and_ipv6() {
        let a = server("postgres://u:p@127.0.0.1:6543/db");
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 6543));
        let u = DbUrl::parse("postgresql://u@[::1]/db").unwrap();
        assert_eq!(u.backend(), Backend::Postgres);
        let a = u.server().unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.password.as_ref()),
            ("::1", 5432, None)
        );
        assert_eq!(server("mysql://[::1]:3307/x").port, 3307);
        let a = server("MYSQL://db.example/ser");
        assert_eq!((a.user.as_ref(), a.host.as_str()), (None, "db.example"));
    }

    #[test]
    fn a_password_may_hold_at_and_colon() {
        let a = server("mysql://ser:p@ss:w@rd@host/ser");
        assert_eq!(a.user.as_deref(), Some("ser"));
        assert_eq!(a.password.as_deref(), Some("p@ss:w@rd"));
        assert_eq!(a.host, "host");
    }

    #[test]
    fn sqlite_needs_an_absolute_path() {
        assert_eq!(
            DbUrl::parse("sqlite:///var/lib/ser/ser.db").unwrap(),
            DbUrl::Sqlite(PathBuf::from("/var/lib/ser/ser.db"))
        );
        assert_eq!(DbUrl::parse("sqlite://ser.db"), Err(UrlError::RelativePath));
        assert_eq!(DbUrl::parse("sqlite:///"), Err(UrlError::RelativePath));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let cases = [
            ("localhost/ser", UrlError::NoScheme),
            ("oracle://h/db", UrlError::UnknownScheme("oracle".into())),
            ("mysql://u:p@/db", UrlError::NoHost),
            ("mysql://u:p@:3306/db", UrlError::NoHost),
            ("mysql://h:0/db", UrlError::BadPort("0".into())),
            ("mysql://h:99999/db", UrlError::BadPort("99999".into())),
            ("mysql://h:x/db", UrlError::BadPort("x".into())),
            ("mysql://h", UrlError::NoDatabase),
            ("mysql://h/", UrlError::NoDatabase),
            ("mysql://h/a/b", UrlError::BadDatabase("a/b".into())),
            ("mysql://[::1/db", UrlError::UnclosedBracket),
            ("mysql://[::1]x/db", UrlError::Trailing("x".into())),
        ];
        for (url, want) in cases {
            assert_eq!(DbUrl::parse(url), Err(want), "{url}");
        }
    }

    #[test]
    fn display_and_debug_hide_the_password() {
        let u = DbUrl::parse("mysql://ser:heslo@localhost/ser").unwrap();
        assert_eq!(u.to_string(), "mysql://ser:***@localhost:3306/ser");
        assert!(!format!("{u:?}").contains("heslo"));
        assert!(!format!("{:?}", u.server().unwrap()).contains("heslo"));
        let u = DbUrl::parse("postgresql://[::1]:5433/ser").unwrap();
        assert_eq!(u.to_string(), "postgres://[::1]:5433/ser");
        let u = DbUrl::parse("mysql://ser@h/ser").unwrap();
        assert_eq!(u.to_string(), "mysql://ser@h:3306/ser");
        // What Display prints parses back to the same place.
        let back = DbUrl::parse("postgres://u:***@h:1/d").unwrap();
        assert_eq!(back.server().unwrap().host, "h");
    }
}
