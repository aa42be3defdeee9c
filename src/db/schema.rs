//! SER 0.9's tables, as its `scripts/ser_mysql.sh` created them, for
//! each backend; [`create`] makes them and fills the `version` table, as
//! `serctl db init` will.
//!
//! Names and types stay SER 0.9's, so an existing SER MySQL database is
//! read unchanged. The MySQL 4 forms that servers refuse today are given
//! their meaning in today's syntax: `timestamp(14)` (a display width) is
//! a `timestamp` set on insert and update; `TYPE=MyISAM` is left to the
//! server's default engine; the zero date `'0000-00-00 00:00:00'` default
//! (refused under `NO_ZERO_DATE`) becomes `'1900-01-01 00:00:01'` (read
//! back, a zero date is NULL). PostgreSQL and SQLite get the nearest
//! types: `int unsigned` → BIGINT, `float` → REAL, `datetime` →
//! `TIMESTAMP WITHOUT TIME ZONE` (SQLite: `DATETIME`, local text).
//! `q` is `float(10,2)`, as in SER 0.9's script.

use super::{Backend, Db, DbError, Ident, Stmt, Value};

/// Default of SER's `datetime NOT NULL` columns (SER: the zero date).
const NO_DATE: &str = "1900-01-01 00:00:01";
/// SER's "forever" (see [`super::time::FOREVER`]), the default expiry.
const FOREVER: &str = "2020-05-28 21:32:15";

/// A column type, in SER 0.9's (MySQL) terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// `varchar(n)`
    Varchar(u16),
    /// `char(n)`
    Char(u8),
    /// `int(11)` / `int(10)`
    Int,
    /// `int(10) unsigned`
    IntUnsigned,
    /// `smallint(5)`
    SmallInt,
    /// `tinyint(1) unsigned`
    TinyIntUnsigned,
    /// `float(10,2)`
    Float,
    /// `datetime`
    Datetime,
    /// MySQL 4's `timestamp(14)`: set to "now" on insert and update.
    Timestamp,
}

/// A column's default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColDefault {
    /// A text (also used for datetimes and numbers written as text).
    Text(&'static str),
    /// A number.
    Int(i64),
}

/// One column: name, type, NULL allowed, default.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// SER 0.9's column name.
    pub name: &'static str,
    /// Its type.
    pub ty: ColType,
    /// NULL allowed?
    pub null: bool,
    /// Its default, if any.
    pub default: Option<ColDefault>,
}

/// A table of SER 0.9.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// Table name.
    pub name: &'static str,
    /// Its `version` row, checked by the module that uses it.
    pub version: i64,
    /// Columns, in SER's order.
    pub columns: &'static [Column],
    /// Primary key columns (none for acc, missed_calls, version).
    pub primary: &'static [&'static str],
    /// Unique indexes: name, columns.
    pub unique: &'static [(&'static str, &'static [&'static str])],
    /// Other indexes: name, columns.
    pub index: &'static [(&'static str, &'static [&'static str])],
}

const fn col(name: &'static str, ty: ColType) -> Column {
    Column {
        name,
        ty,
        null: false,
        default: None,
    }
}

const fn text(name: &'static str, ty: ColType, default: &'static str) -> Column {
    Column {
        name,
        ty,
        null: false,
        default: Some(ColDefault::Text(default)),
    }
}

const fn int(name: &'static str, ty: ColType, default: i64) -> Column {
    Column {
        name,
        ty,
        null: false,
        default: Some(ColDefault::Int(default)),
    }
}

const fn null(name: &'static str, ty: ColType) -> Column {
    Column {
        name,
        ty,
        null: true,
        default: None,
    }
}

use ColType::*;

/// `version`: each module's table version.
pub const VERSION: Table = Table {
    name: "version",
    version: 0,
    columns: &[
        col("table_name", Varchar(64)),
        int("table_version", SmallInt, 0),
    ],
    primary: &[],
    unique: &[],
    index: &[],
};

/// `subscriber`: auth_db's users (serctl add).
pub const SUBSCRIBER: Table = Table {
    name: "subscriber",
    version: 5,
    columns: &[
        text("phplib_id", Varchar(32), ""),
        text("username", Varchar(64), ""),
        text("domain", Varchar(128), ""),
        text("password", Varchar(25), ""),
        text("first_name", Varchar(25), ""),
        text("last_name", Varchar(45), ""),
        text("phone", Varchar(15), ""),
        text("email_address", Varchar(50), ""),
        text("datetime_created", Datetime, NO_DATE),
        text("datetime_modified", Datetime, NO_DATE),
        text("confirmation", Varchar(64), ""),
        text("flag", Char(1), "o"),
        text("sendnotification", Varchar(50), ""),
        text("greeting", Varchar(50), ""),
        text("ha1", Varchar(128), ""),
        text("ha1b", Varchar(128), ""),
        text("allow_find", Char(1), "0"),
        null("timezone", Varchar(128)),
        null("rpid", Varchar(128)),
        null("domn", Int),
        null("uuid", Varchar(64)),
    ],
    primary: &["username", "domain"],
    unique: &[("phplib_id", &["phplib_id"])],
    index: &[("user_2", &["username"])],
};

/// The columns of usrloc's tables (`location`, `aliases`, and any other
/// table a `save()` names).
const USRLOC_COLUMNS: &[Column] = &[
    text("username", Varchar(64), ""),
    text("domain", Varchar(128), ""),
    text("contact", Varchar(255), ""),
    null("received", Varchar(255)),
    text("expires", Datetime, FOREVER),
    text("q", Float, "1.0"),
    text("callid", Varchar(255), "Default-Call-ID"),
    int("cseq", Int, 42),
    col("last_modified", Timestamp),
    int("replicate", IntUnsigned, 0),
    int("state", TinyIntUnsigned, 0),
    int("flags", Int, 0),
    text("user_agent", Varchar(50), ""),
];

/// `location`: usrloc's registrations.
pub const LOCATION: Table = Table {
    name: "location",
    version: 6,
    columns: USRLOC_COLUMNS,
    primary: &["username", "domain", "contact"],
    unique: &[],
    index: &[],
};

/// `aliases`: usrloc's table of aliases.
pub const ALIASES: Table = Table {
    name: "aliases",
    version: 6,
    columns: USRLOC_COLUMNS,
    primary: &["username", "domain", "contact"],
    unique: &[],
    index: &[("aliases_contact", &["contact"])],
};

/// The columns acc and missed_calls share (between the acc-only ones).
macro_rules! acc_columns {
    ($($head:expr,)* ; $($tail:expr,)*) => {
        &[
            $($head,)*
            text("sip_from", Varchar(128), ""),
            text("sip_to", Varchar(128), ""),
            text("sip_status", Varchar(128), ""),
            text("sip_method", Varchar(16), ""),
            text("i_uri", Varchar(128), ""),
            text("o_uri", Varchar(128), ""),
            text("from_uri", Varchar(128), ""),
            text("to_uri", Varchar(128), ""),
            text("sip_callid", Varchar(128), ""),
            text("username", Varchar(64), ""),
            text("domain", Varchar(128), ""),
            text("fromtag", Varchar(128), ""),
            text("totag", Varchar(128), ""),
            text("time", Datetime, NO_DATE),
            col("timestamp", Timestamp),
            $($tail,)*
        ]
    };
}

/// `acc`: accounted transactions (acc's `db_flag`).
pub const ACC: Table = Table {
    name: "acc",
    version: 2,
    columns: acc_columns!(
        text("caller_UUID", Varchar(64), ""),
        text("callee_UUID", Varchar(64), ""),
        ;
        text("caller_deleted", Char(1), "0"),
        text("callee_deleted", Char(1), "0"),
    ),
    primary: &[],
    unique: &[],
    index: &[
        ("acc_user", &["username", "domain"]),
        ("sip_callid", &["sip_callid"]),
    ],
};

/// `missed_calls`: acc's `db_missed_flag`.
pub const MISSED_CALLS: Table = Table {
    name: "missed_calls",
    version: 2,
    columns: acc_columns!(;),
    primary: &[],
    unique: &[],
    index: &[("mc_user", &["username", "domain"])],
};

/// `grp`: group membership (`is_in_group`).
pub const GRP: Table = Table {
    name: "grp",
    version: 2,
    columns: &[
        text("username", Varchar(64), ""),
        text("domain", Varchar(128), ""),
        text("grp", Varchar(50), ""),
        text("last_modified", Datetime, NO_DATE),
    ],
    primary: &["username", "domain", "grp"],
    unique: &[],
    index: &[],
};

/// `domain`: the domains this proxy serves (`is_from_local`).
pub const DOMAIN: Table = Table {
    name: "domain",
    version: 1,
    columns: &[
        text("domain", Varchar(128), ""),
        text("last_modified", Datetime, NO_DATE),
    ],
    primary: &["domain"],
    unique: &[],
    index: &[],
};

/// `uri`: URI user parts a user may use (uri_db's `use_uri_table`).
pub const URI: Table = Table {
    name: "uri",
    version: 1,
    columns: &[
        text("username", Varchar(64), ""),
        text("domain", Varchar(128), ""),
        text("uri_user", Varchar(50), ""),
        text("last_modified", Datetime, NO_DATE),
    ],
    primary: &["username", "domain", "uri_user"],
    unique: &[],
    index: &[],
};

/// `trusted`: permissions' `allow_trusted`.
pub const TRUSTED: Table = Table {
    name: "trusted",
    version: 1,
    columns: &[
        col("src_ip", Varchar(39)),
        col("proto", Varchar(4)),
        col("from_pattern", Varchar(64)),
    ],
    primary: &["src_ip", "proto", "from_pattern"],
    unique: &[],
    index: &[],
};

/// Every table [`create`] makes, `version` first.
pub const TABLES: &[Table] = &[
    VERSION,
    SUBSCRIBER,
    LOCATION,
    ALIASES,
    ACC,
    MISSED_CALLS,
    GRP,
    DOMAIN,
    URI,
    TRUSTED,
];

fn q(name: &str, b: Backend) -> String {
    // Names here are constants or checked by the callers; Ident checks
    // again so nothing unchecked ever reaches the text.
    Ident::new(name)
        .map(|i| i.quoted(b))
        .unwrap_or_else(|_| String::from("\"\""))
}

fn col_type(ty: ColType, b: Backend) -> String {
    match (ty, b) {
        (Varchar(n), _) => format!("VARCHAR({n})"),
        (Char(n), _) => format!("CHAR({n})"),
        (Int, Backend::Mysql) => "INT(11)".into(),
        (IntUnsigned, Backend::Mysql) => "INT(10) UNSIGNED".into(),
        (SmallInt, Backend::Mysql) => "SMALLINT(5)".into(),
        (TinyIntUnsigned, Backend::Mysql) => "TINYINT(1) UNSIGNED".into(),
        (Float, Backend::Mysql) => "FLOAT(10,2)".into(),
        (Datetime, Backend::Mysql) => "DATETIME".into(),
        (Timestamp, Backend::Mysql) => "TIMESTAMP".into(),
        (Int, Backend::Postgres) => "INTEGER".into(),
        (IntUnsigned, Backend::Postgres) => "BIGINT".into(),
        (SmallInt | TinyIntUnsigned, Backend::Postgres) => "SMALLINT".into(),
        (Float, Backend::Postgres) => "REAL".into(),
        (Datetime | Timestamp, Backend::Postgres) => "TIMESTAMP WITHOUT TIME ZONE".into(),
        (Int | IntUnsigned | SmallInt | TinyIntUnsigned, Backend::Sqlite) => "INTEGER".into(),
        (Float, Backend::Sqlite) => "REAL".into(),
        (Datetime, Backend::Sqlite) => "DATETIME".into(),
        (Timestamp, Backend::Sqlite) => "TIMESTAMP".into(),
    }
}

fn column_sql(c: &Column, b: Backend) -> String {
    let mut s = format!("{} {}", q(c.name, b), col_type(c.ty, b));
    s.push_str(if c.null { " NULL" } else { " NOT NULL" });
    match c.default {
        // Literal defaults come from the constants above, never from input.
        Some(ColDefault::Text(t)) => s.push_str(&format!(" DEFAULT '{}'", t.replace('\'', "''"))),
        Some(ColDefault::Int(i)) => s.push_str(&format!(" DEFAULT {i}")),
        None if c.ty == Timestamp => s.push_str(match b {
            Backend::Mysql => " DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP",
            Backend::Postgres => " DEFAULT LOCALTIMESTAMP(0)",
            Backend::Sqlite => " DEFAULT (datetime('now', 'localtime'))",
        }),
        None => {}
    }
    s
}

fn list(cols: &[&str], b: Backend) -> String {
    cols.iter().map(|c| q(c, b)).collect::<Vec<_>>().join(", ")
}

/// The statements creating `t` under the name `name` on `b` (the table,
/// then its indexes where they are separate statements). Existing tables
/// are left as they are.
pub fn create_sql(t: &Table, name: &str, b: Backend) -> Result<Vec<String>, DbError> {
    let table = Ident::new(name)?;
    let tq = table.quoted(b);
    let mut parts: Vec<String> = t.columns.iter().map(|c| column_sql(c, b)).collect();
    if !t.primary.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", list(t.primary, b)));
    }
    let mut after = Vec::new();
    for (idx, cols) in t.unique {
        match b {
            Backend::Mysql => parts.push(format!("UNIQUE KEY {} ({})", q(idx, b), list(cols, b))),
            // Index names are per schema there, not per table.
            _ => after.push(format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {tq} ({})",
                q(&format!("{name}_{idx}"), b),
                list(cols, b)
            )),
        }
    }
    for (idx, cols) in t.index {
        match b {
            Backend::Mysql => parts.push(format!("INDEX {} ({})", q(idx, b), list(cols, b))),
            _ => after.push(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {tq} ({})",
                q(&format!("{name}_{idx}"), b),
                list(cols, b)
            )),
        }
    }
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {tq} (\n  {}\n)",
        parts.join(",\n  ")
    )];
    out.extend(after);
    Ok(out)
}

/// Creates SER's tables (those of [`TABLES`]) that do not exist yet and
/// gives each a `version` row, unless it has one: what SER 0.9's
/// `ser_mysql.sh create` did, minus the database, its users and the
/// sample `admin` subscriber. Safe to run on a database that has them.
pub fn create(db: &mut Db) -> Result<(), DbError> {
    for t in TABLES {
        create_table(db, t, t.name)?;
    }
    Ok(())
}

/// Creates one table of `t`'s shape named `name` (usrloc keeps one table
/// per domain name given to `save()`, all shaped as `location`), and its
/// `version` row (with `t`'s version) unless it has one.
pub fn create_table(db: &mut Db, t: &Table, name: &str) -> Result<(), DbError> {
    for sql in create_sql(t, name, db.backend())? {
        db.batch(&sql)?;
    }
    if t.name == VERSION.name {
        return Ok(());
    }
    if version(db, name)?.is_none() {
        let ins = Stmt::insert(VERSION.name, &["table_name", "table_version"])?;
        db.exec(&ins, &[Value::from(name), Value::Int(t.version)])?;
    }
    Ok(())
}

/// The version the `version` table gives for `table`, if it has a row.
pub fn version(db: &mut Db, table: &str) -> Result<Option<i64>, DbError> {
    let sel = Stmt::select(VERSION.name, &["table_version"])
        .where_eq(&["table_name"])
        .build()?;
    match db.query_one(&sel, &[Value::from(table)])? {
        Some(row) => Ok(Some(row.int(0)?)),
        None => Ok(None),
    }
}

/// Checks `table`'s version as SER's modules did at start-up
/// (`table_version()`); a mismatch is [`DbError::Version`].
pub fn check_version(db: &mut Db, table: &str, expected: i64) -> Result<(), DbError> {
    match version(db, table)? {
        Some(v) if v == expected => Ok(()),
        found => Err(DbError::Version {
            table: table.to_string(),
            expected,
            found,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_text_keeps_sers_names_and_types() {
        let sql = create_sql(&SUBSCRIBER, "subscriber", Backend::Mysql).unwrap();
        assert_eq!(sql.len(), 1);
        let s = &sql[0];
        for part in [
            "CREATE TABLE IF NOT EXISTS `subscriber` (",
            "`phplib_id` VARCHAR(32) NOT NULL DEFAULT ''",
            "`flag` CHAR(1) NOT NULL DEFAULT 'o'",
            "`ha1b` VARCHAR(128) NOT NULL DEFAULT ''",
            "`timezone` VARCHAR(128) NULL",
            "`domn` INT(11) NULL",
            "PRIMARY KEY (`username`, `domain`)",
            "UNIQUE KEY `phplib_id` (`phplib_id`)",
            "INDEX `user_2` (`username`)",
        ] {
            assert!(s.contains(part), "{part} not in {s}");
        }
        let loc = &create_sql(&LOCATION, "location", Backend::Mysql).unwrap()[0];
        assert!(loc.contains("`expires` DATETIME NOT NULL DEFAULT '2020-05-28 21:32:15'"));
        assert!(loc.contains("`q` FLOAT(10,2) NOT NULL DEFAULT '1.0'"));
        assert!(loc.contains(
            "`last_modified` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
        ));
    }

    #[test]
    fn other_backends_get_separate_index_names() {
        let sql = create_sql(&ACC, "acc", Backend::Postgres).unwrap();
        assert_eq!(sql.len(), 3);
        assert!(sql[0].contains("\"caller_uuid\" VARCHAR(64)"));
        assert!(sql[0].contains("\"time\" TIMESTAMP WITHOUT TIME ZONE NOT NULL"));
        assert!(!sql[0].contains("PRIMARY KEY"));
        assert_eq!(
            sql[1],
            "CREATE INDEX IF NOT EXISTS \"acc_acc_user\" ON \"acc\" (\"username\", \"domain\")"
        );
        let sql = create_sql(&SUBSCRIBER, "subscriber", Backend::Sqlite).unwrap();
        assert!(sql[1].starts_with("CREATE UNIQUE INDEX IF NOT EXISTS \"subscriber_phplib_id\""));
        assert!(create_sql(&LOCATION, "loc;drop", Backend::Sqlite).is_err());
    }

    #[test]
    fn acc_and_missed_calls_columns() {
        let names: Vec<&str> = ACC.columns.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), 19);
        assert_eq!(names[..3], ["caller_UUID", "callee_UUID", "sip_from"]);
        assert_eq!(
            names[16..],
            ["timestamp", "caller_deleted", "callee_deleted"]
        );
        let missed: Vec<&str> = MISSED_CALLS.columns.iter().map(|c| c.name).collect();
        assert_eq!(missed, names[2..17]);
    }
}
