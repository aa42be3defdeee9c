//! SER 0.9 serctl's user management, straight on SER's database:
//! `db init`, `add`, `passwd`, `rm` (the `subscriber` table) and `alias`
//! (the usrloc-shaped `aliases` table). The database is `-d`, else
//! `$SER_DB_URL`, else SER 0.9's default `mysql://ser:heslo@localhost/ser`;
//! the domain is `$SIP_DOMAIN`, as in SER's serctl.
//!
//! Every value is bound, never spliced into SQL: a user name full of
//! quotes is stored as typed and matches only itself. A database that is
//! down fails within the layer's connect bound (see [`crate::db`]).
use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use super::cli::{Command, Invocation};
use super::run::{EnvPaths, EXIT_OK, EXIT_SERVER_ERROR, EXIT_UNREACHABLE, EXIT_USAGE};
use crate::db::{schema, time::forever_secs, Db, DbError, Stmt, Value};
use crate::modules::auth::digest::hex_md5;

/// SER 0.9's `db_url` default, which its serctl's SQL defaults matched.
pub const DEFAULT_DB_URL: &str = "mysql://ser:heslo@localhost/ser";

/// Why a user command failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// `$SIP_DOMAIN` is not set and the command needs it.
    #[error("SIP_DOMAIN is not set: export SIP_DOMAIN=<your SIP domain>")]
    NoDomain,
    /// `add` of a user the domain already has.
    #[error("user exists: {0}@{1}")]
    Exists(String, String),
    /// `passwd`/`rm` of a user the domain does not have.
    #[error("no such user: {0}@{1}")]
    NoSuchUser(String, String),
    /// `alias add` of an alias already pointing at that URI.
    #[error("alias exists: {0}@{1} -> {2}")]
    AliasExists(String, String, String),
    /// `alias show ALIAS`/`alias rm` of an alias the domain does not have.
    #[error("no such alias: {0}@{1}")]
    NoSuchAlias(String, String),
    /// The database layer's error.
    #[error("database: {0}")]
    Db(#[from] DbError),
}

impl UserError {
    /// The exit status: configuration problems are usage errors, a
    /// database out of reach is "unreachable", the rest a refusal.
    pub fn exit_code(&self) -> i32 {
        match self {
            UserError::NoDomain | UserError::Db(DbError::Url(_)) => EXIT_USAGE,
            UserError::Db(e) if e.is_unavailable() => EXIT_UNREACHABLE,
            _ => EXIT_SERVER_ERROR,
        }
    }
}

/// Runs a database command; returns the exit status.
pub fn run(inv: &Invocation, env: &EnvPaths, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match execute(inv, env, out, err) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "serctl: {e}");
            e.exit_code()
        }
    }
}

fn execute(
    inv: &Invocation,
    env: &EnvPaths,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), UserError> {
    // The domain first: a missing one is reported without touching the
    // database.
    let domain = || env.sip_domain.clone().ok_or(UserError::NoDomain);
    let url = inv
        .db_url
        .as_deref()
        .or(env.db_url.as_deref())
        .unwrap_or(DEFAULT_DB_URL);
    let open = || Db::from_url(url).map_err(UserError::from);
    match &inv.command {
        Command::DbInit => {
            let mut db = open()?;
            schema::create(&mut db)?;
            let _ = writeln!(out, "database initialised: {}", db.url());
        }
        Command::Add {
            user,
            password,
            email,
        } => {
            let d = domain()?;
            add(&mut open()?, user, &d, password, email)?;
        }
        Command::Passwd { user, password } => {
            let d = domain()?;
            passwd(&mut open()?, user, &d, password)?;
        }
        Command::Rm(user) => {
            let d = domain()?;
            let del = Stmt::delete("subscriber")
                .where_eq(&["username", "domain"])
                .build()?;
            if open()?.exec(&del, &[user.as_str().into(), d.as_str().into()])? == 0 {
                return Err(UserError::NoSuchUser(user.clone(), d));
            }
        }
        Command::AliasShow(alias) => {
            let d = domain()?;
            alias_show(&mut open()?, alias.as_deref(), &d, out)?;
        }
        Command::AliasAdd { alias, uri } => {
            let d = domain()?;
            alias_add(&mut open()?, alias, &d, uri)?;
            // SER 0.9's ul_add: table, AOR, contact, expires (0: permanent),
            // q, replicate, flags (128: permanent).
            let aor = format!("{alias}@{d}");
            push_alias(
                inv,
                env,
                "ul_add",
                &["aliases", &aor, uri, "0", "1", "0", "128"],
                err,
            );
        }
        Command::AliasRm(alias) => {
            let d = domain()?;
            let del = Stmt::delete("aliases")
                .where_eq(&["username", "domain"])
                .build()?;
            if open()?.exec(&del, &[alias.as_str().into(), d.as_str().into()])? == 0 {
                return Err(UserError::NoSuchAlias(alias.clone(), d));
            }
            push_alias(
                inv,
                env,
                "ul_rm",
                &["aliases", &format!("{alias}@{d}")],
                err,
            );
        }
        _ => {}
    }
    Ok(())
}

/// Tells a running ser about an alias change over its FIFO or socket, as
/// SER 0.9's serctl did: it then resolves the alias at once (and with
/// usrloc `db_mode` 1–3 writes its own row, which is the same one, or with
/// `use_domain` off one that differs only in `domain` and is read as the
/// same binding). No server answering, or one whose script has no
/// `aliases` table, is not an error: the database row is what counts, and
/// a server in `db_mode` 1 or 2 loads it when it starts.
fn push_alias(inv: &Invocation, env: &EnvPaths, cmd: &str, params: &[&str], err: &mut dyn Write) {
    let t = inv.transport.clone().unwrap_or_else(|| env.transport());
    match t.exchange(cmd, params, inv.timeout) {
        Ok(r) if r.is_success() => {}
        Ok(r) if r.code == 400 || r.code == 404 => {}
        Ok(r) => {
            let _ = writeln!(
                err,
                "serctl: ser ({t}) did not take the alias change: {}",
                r.code
            );
        }
        Err(e) => {
            let _ = writeln!(
                err,
                "serctl: no running ser told ({e}); the alias is in the database"
            );
        }
    }
}

/// `ha1` and `ha1b` of a user, as SER 0.9's serctl computed them: the
/// realm is the domain; `ha1b` is for clients that send `user@domain` as
/// the digest user name.
pub fn ha1s(user: &str, domain: &str, password: &str) -> (String, String) {
    let ha1 = hex_md5(&[
        user.as_bytes(),
        b":",
        domain.as_bytes(),
        b":",
        password.as_bytes(),
    ]);
    let ha1b = hex_md5(&[
        user.as_bytes(),
        b"@",
        domain.as_bytes(),
        b":",
        domain.as_bytes(),
        b":",
        password.as_bytes(),
    ]);
    (ha1, ha1b)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random `phplib_id` (32 hex digits, the column's width): MD5 of
/// kernel randomness, the user and the time, so it stays unique even
/// where `/dev/urandom` cannot be read.
fn phplib_id(user: &str, domain: &str) -> String {
    let mut rnd = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut rnd));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hex_md5(&[
        &rnd,
        user.as_bytes(),
        b"@",
        domain.as_bytes(),
        &nanos.to_le_bytes(),
        &std::process::id().to_le_bytes(),
    ])
}

fn add(
    db: &mut Db,
    user: &str,
    domain: &str,
    password: &str,
    email: &str,
) -> Result<(), UserError> {
    let exists = Stmt::select("subscriber", &["username"])
        .where_eq(&["username", "domain"])
        .build()?;
    let key = [Value::from(user), Value::from(domain)];
    if db.query_one(&exists, &key)?.is_some() {
        return Err(UserError::Exists(user.to_owned(), domain.to_owned()));
    }
    let (ha1, ha1b) = ha1s(user, domain, password);
    let ins = Stmt::insert(
        "subscriber",
        &[
            "phplib_id",
            "username",
            "domain",
            "password",
            "email_address",
            "datetime_created",
            "ha1",
            "ha1b",
        ],
    )?;
    let vals = [
        Value::from(phplib_id(user, domain).as_str()),
        Value::from(user),
        Value::from(domain),
        Value::from(password),
        Value::from(email),
        Value::Time(now_secs()),
        Value::from(ha1.as_str()),
        Value::from(ha1b.as_str()),
    ];
    match db.exec(&ins, &vals) {
        Ok(_) => Ok(()),
        // Added meanwhile by someone else.
        Err(DbError::Duplicate { .. }) => {
            Err(UserError::Exists(user.to_owned(), domain.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

fn passwd(db: &mut Db, user: &str, domain: &str, password: &str) -> Result<(), UserError> {
    let (ha1, ha1b) = ha1s(user, domain, password);
    let upd = Stmt::update(
        "subscriber",
        &["password", "ha1", "ha1b", "datetime_modified"],
    )
    .where_eq(&["username", "domain"])
    .build()?;
    let vals = [
        Value::from(password),
        Value::from(ha1.as_str()),
        Value::from(ha1b.as_str()),
        Value::Time(now_secs()),
        Value::from(user),
        Value::from(domain),
    ];
    if db.exec(&upd, &vals)? == 0 {
        return Err(UserError::NoSuchUser(user.to_owned(), domain.to_owned()));
    }
    Ok(())
}

/// One line per alias binding: `alias@domain<TAB>uri`.
fn alias_show(
    db: &mut Db,
    alias: Option<&str>,
    domain: &str,
    out: &mut dyn Write,
) -> Result<(), UserError> {
    let rows = match alias {
        Some(a) => {
            let sel = Stmt::select("aliases", &["username", "contact"])
                .where_eq(&["username", "domain"])
                .order_by("contact")
                .build()?;
            let rows = db.query(&sel, &[a.into(), domain.into()])?;
            if rows.is_empty() {
                return Err(UserError::NoSuchAlias(a.to_owned(), domain.to_owned()));
            }
            rows
        }
        None => {
            let sel = Stmt::select("aliases", &["username", "contact"])
                .where_eq(&["domain"])
                .order_by("username")
                .order_by("contact")
                .build()?;
            db.query(&sel, &[domain.into()])?
        }
    };
    for row in rows {
        let _ = writeln!(out, "{}@{domain}\t{}", row.str(0)?, row.str(1)?);
    }
    Ok(())
}

/// A permanent binding, as SER 0.9's `ul_add aliases` wrote one: expires
/// "forever", q 1.0, callid `Default-Call-ID`, cseq 42.
fn alias_add(db: &mut Db, alias: &str, domain: &str, uri: &str) -> Result<(), UserError> {
    let ins = Stmt::insert(
        "aliases",
        &[
            "username", "domain", "contact", "expires", "q", "callid", "cseq",
        ],
    )?;
    let vals = [
        Value::from(alias),
        Value::from(domain),
        Value::from(uri),
        Value::Time(forever_secs()),
        Value::Float(1.0),
        Value::from("Default-Call-ID"),
        Value::Int(42),
    ];
    match db.exec(&ins, &vals) {
        Ok(_) => Ok(()),
        Err(DbError::Duplicate { .. }) => Err(UserError::AliasExists(
            alias.to_owned(),
            domain.to_owned(),
            uri.to_owned(),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_and_ha1b_are_sers() {
        let (ha1, ha1b) = ha1s("alice", "example.com", "secret");
        assert_eq!(ha1, hex_md5(&[b"alice:example.com:secret"]));
        assert_eq!(ha1b, hex_md5(&[b"alice@example.com:example.com:secret"]));
    }

    #[test]
    fn phplib_ids_differ_and_fit_the_column() {
        let (a, b) = (phplib_id("u", "d"), phplib_id("u", "d"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(UserError::NoDomain.exit_code(), EXIT_USAGE);
        assert_eq!(
            UserError::Exists("a".into(), "d".into()).exit_code(),
            EXIT_SERVER_ERROR
        );
        let down = DbError::Connect {
            url: "x".into(),
            reason: "refused".into(),
        };
        assert_eq!(UserError::Db(down).exit_code(), EXIT_UNREACHABLE);
    }
}
