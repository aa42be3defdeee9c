//! Statements described once and rendered for each backend.
//!
//! Callers never write SQL: they name a table, columns and the columns a
//! `WHERE` compares, and get a [`Stmt`] whose text for MySQL (`?`,
//! backquotes), PostgreSQL (`$1`, double quotes) and SQLite (`?`, double
//! quotes) is built here. Values only ever travel as bound parameters;
//! the only words put into the text are table and column names, checked
//! against `[A-Za-z_][A-Za-z0-9_]*` (they come from configuration, e.g.
//! auth_db's `password_column`).
//!
//! Build a statement once (at module start-up) and run it many times: each
//! connection prepares it on first use and keeps it (see [`super::Db`]).

use super::{Backend, DbError};

/// Longest name MySQL accepts for a table or column.
const MAX_NAME: usize = 64;

/// A checked table or column name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(Box<str>);

impl Ident {
    /// Checks `name` against `[A-Za-z_][A-Za-z0-9_]*`, at most 64 long.
    pub fn new(name: &str) -> Result<Ident, DbError> {
        let mut chars = name.chars();
        let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= MAX_NAME;
        if ok {
            Ok(Ident(name.into()))
        } else {
            Err(DbError::BadName(name.to_string()))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted for `backend`. Quoting keeps SER's column names
    /// `time` and `timestamp` from being read as keywords. PostgreSQL folds
    /// unquoted names to lower case, so its quoted form is the lower-case
    /// name: the same column an unquoted `caller_UUID` would have created.
    pub(crate) fn quoted(&self, backend: Backend) -> String {
        match backend {
            Backend::Mysql => format!("`{}`", self.0),
            Backend::Sqlite => format!("\"{}\"", self.0),
            Backend::Postgres => format!("\"{}\"", self.0.to_ascii_lowercase()),
        }
    }
}

fn idents(names: &[&str]) -> Result<Vec<Ident>, DbError> {
    names.iter().map(|n| Ident::new(n)).collect()
}

/// How a `WHERE` column is compared with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// The kind of statement, with its own columns.
#[derive(Debug, Clone)]
enum Kind {
    Select {
        cols: Vec<Ident>,
    },
    Update {
        set: Vec<Ident>,
    },
    Delete,
    Insert {
        cols: Vec<Ident>,
    },
    Upsert {
        keys: Vec<Ident>,
        others: Vec<Ident>,
    },
}

/// A statement ready to run on any backend: its text for each, the number
/// of values it takes, and (for a select) of columns it returns.
#[derive(Debug, Clone)]
pub struct Stmt {
    mysql: Box<str>,
    postgres: Box<str>,
    sqlite: Box<str>,
    params: usize,
    columns: usize,
}

impl Stmt {
    /// `SELECT cols FROM table [WHERE …] [ORDER BY …] [LIMIT n]`; the
    /// values are those of the `WHERE` columns, in order.
    pub fn select(table: &str, cols: &[&str]) -> Filtered {
        Filtered::new(table, idents(cols).map(|cols| Kind::Select { cols }))
    }

    /// `UPDATE table SET c1 = ?, … [WHERE …]`; the values are the new
    /// ones, then those of the `WHERE` columns. Without a `WHERE`, every
    /// row changes.
    pub fn update(table: &str, set: &[&str]) -> Filtered {
        Filtered::new(table, idents(set).map(|set| Kind::Update { set }))
    }

    /// `DELETE FROM table [WHERE …]`. Without a `WHERE`, every row goes.
    pub fn delete(table: &str) -> Filtered {
        Filtered::new(table, Ok(Kind::Delete))
    }

    /// `INSERT INTO table (cols) VALUES (…)`.
    pub fn insert(table: &str, cols: &[&str]) -> Result<Stmt, DbError> {
        Filtered::new(table, idents(cols).map(|cols| Kind::Insert { cols })).build()
    }

    /// Insert, or update `others` of the row with the same `keys` (which
    /// must be the table's primary key or a unique index): MySQL's
    /// `ON DUPLICATE KEY UPDATE`, `ON CONFLICT … DO UPDATE` elsewhere.
    /// Values: the keys, then the others. The affected-row count differs
    /// between backends here (MySQL says 2 for an update).
    pub fn upsert(table: &str, keys: &[&str], others: &[&str]) -> Result<Stmt, DbError> {
        let kind = idents(keys).and_then(|keys| {
            Ok(Kind::Upsert {
                keys,
                others: idents(others)?,
            })
        });
        Filtered::new(table, kind).build()
    }

    /// The text sent to `backend`.
    pub fn sql(&self, backend: Backend) -> &str {
        match backend {
            Backend::Mysql => &self.mysql,
            Backend::Postgres => &self.postgres,
            Backend::Sqlite => &self.sqlite,
        }
    }

    /// Number of values the statement takes.
    pub fn params(&self) -> usize {
        self.params
    }

    /// Number of columns of each result row (0 unless a select).
    pub fn columns(&self) -> usize {
        self.columns
    }
}

/// A statement being described: `WHERE` columns, order, limit.
#[derive(Debug)]
pub struct Filtered {
    table: Result<Ident, DbError>,
    kind: Result<Kind, DbError>,
    filter: Vec<(Result<Ident, DbError>, Op)>,
    order: Vec<(Result<Ident, DbError>, bool)>,
    limit: Option<u32>,
}

impl Filtered {
    fn new(table: &str, kind: Result<Kind, DbError>) -> Filtered {
        Filtered {
            table: Ident::new(table),
            kind,
            filter: Vec::new(),
            order: Vec::new(),
            limit: None,
        }
    }

    /// `col = ?` for each column, joined with `AND`.
    pub fn where_eq(mut self, cols: &[&str]) -> Filtered {
        for c in cols {
            self.filter.push((Ident::new(c), Op::Eq));
        }
        self
    }

    /// `col <op> ?`, joined with `AND` to the others.
    pub fn where_op(mut self, col: &str, op: Op) -> Filtered {
        self.filter.push((Ident::new(col), op));
        self
    }

    /// `ORDER BY col` (ascending); a select only.
    pub fn order_by(mut self, col: &str) -> Filtered {
        self.order.push((Ident::new(col), false));
        self
    }

    /// `ORDER BY col DESC`; a select only.
    pub fn order_by_desc(mut self, col: &str) -> Filtered {
        self.order.push((Ident::new(col), true));
        self
    }

    /// `LIMIT n`; a select only.
    pub fn limit(mut self, n: u32) -> Filtered {
        self.limit = Some(n);
        self
    }

    /// Checks every name and renders the text for each backend.
    pub fn build(self) -> Result<Stmt, DbError> {
        let table = self.table?;
        let kind = self.kind?;
        let filter = self
            .filter
            .into_iter()
            .map(|(c, op)| c.map(|c| (c, op)))
            .collect::<Result<Vec<_>, _>>()?;
        let order = self
            .order
            .into_iter()
            .map(|(c, d)| c.map(|c| (c, d)))
            .collect::<Result<Vec<_>, _>>()?;
        let (params, columns) = match &kind {
            Kind::Select { cols } => {
                if cols.is_empty() {
                    return Err(DbError::BadStatement("no columns to select"));
                }
                (filter.len(), cols.len())
            }
            _ if !order.is_empty() || self.limit.is_some() => {
                return Err(DbError::BadStatement("ORDER BY or LIMIT outside a select"))
            }
            Kind::Update { set } if set.is_empty() => {
                return Err(DbError::BadStatement("no columns to update"))
            }
            Kind::Update { set } => (set.len() + filter.len(), 0),
            Kind::Delete => (filter.len(), 0),
            Kind::Insert { cols } if cols.is_empty() => {
                return Err(DbError::BadStatement("no columns to insert"))
            }
            Kind::Insert { cols } => (cols.len(), 0),
            Kind::Upsert { keys, .. } if keys.is_empty() => {
                return Err(DbError::BadStatement("no key columns to upsert"))
            }
            Kind::Upsert { keys, others } => (keys.len() + others.len(), 0),
        };
        let parts = Parts {
            table: &table,
            kind: &kind,
            filter: &filter,
            order: &order,
            limit: self.limit,
        };
        Ok(Stmt {
            mysql: parts.render(Backend::Mysql).into(),
            postgres: parts.render(Backend::Postgres).into(),
            sqlite: parts.render(Backend::Sqlite).into(),
            params,
            columns,
        })
    }
}

/// A checked description, rendered per backend.
struct Parts<'a> {
    table: &'a Ident,
    kind: &'a Kind,
    filter: &'a [(Ident, Op)],
    order: &'a [(Ident, bool)],
    limit: Option<u32>,
}

/// Placeholder number `n` (from 1) of `backend`.
fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("${n}"),
        Backend::Mysql | Backend::Sqlite => "?".to_string(),
    }
}

impl Parts<'_> {
    fn render(&self, b: Backend) -> String {
        let q = |i: &Ident| i.quoted(b);
        let list = |cols: &[Ident]| cols.iter().map(q).collect::<Vec<_>>().join(", ");
        let mut n = 0;
        let mut next = || {
            n += 1;
            placeholder(b, n)
        };
        let table = q(self.table);
        let mut sql = match self.kind {
            Kind::Select { cols } => format!("SELECT {} FROM {table}", list(cols)),
            Kind::Delete => format!("DELETE FROM {table}"),
            Kind::Update { set } => {
                let set: Vec<String> = set
                    .iter()
                    .map(|c| format!("{} = {}", q(c), next()))
                    .collect();
                format!("UPDATE {table} SET {}", set.join(", "))
            }
            Kind::Insert { cols } => {
                let vals: Vec<String> = cols.iter().map(|_| next()).collect();
                format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    list(cols),
                    vals.join(", ")
                )
            }
            Kind::Upsert { keys, others } => {
                let all: Vec<Ident> = keys.iter().chain(others).cloned().collect();
                let vals: Vec<String> = all.iter().map(|_| next()).collect();
                let insert = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    list(&all),
                    vals.join(", ")
                );
                match b {
                    Backend::Mysql => {
                        // A no-op assignment when there is nothing else to
                        // update keeps the duplicate from being an error.
                        let set: Vec<String> = if others.is_empty() {
                            // build() refused an upsert without keys.
                            keys.iter()
                                .take(1)
                                .map(|k| format!("{0} = {0}", q(k)))
                                .collect()
                        } else {
                            others
                                .iter()
                                .map(|c| format!("{0} = VALUES({0})", q(c)))
                                .collect()
                        };
                        format!("{insert} ON DUPLICATE KEY UPDATE {}", set.join(", "))
                    }
                    Backend::Postgres | Backend::Sqlite => {
                        if others.is_empty() {
                            format!("{insert} ON CONFLICT ({}) DO NOTHING", list(keys))
                        } else {
                            let set: Vec<String> = others
                                .iter()
                                .map(|c| format!("{0} = excluded.{0}", q(c)))
                                .collect();
                            format!(
                                "{insert} ON CONFLICT ({}) DO UPDATE SET {}",
                                list(keys),
                                set.join(", ")
                            )
                        }
                    }
                }
            }
        };
        if !self.filter.is_empty() {
            let conds: Vec<String> = self
                .filter
                .iter()
                .map(|(c, op)| format!("{} {} {}", q(c), op.sql(), next()))
                .collect();
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        if !self.order.is_empty() {
            let ord: Vec<String> = self
                .order
                .iter()
                .map(|(c, desc)| format!("{}{}", q(c), if *desc { " DESC" } else { "" }))
                .collect();
            sql.push_str(" ORDER BY ");
            sql.push_str(&ord.join(", "));
        }
        if let Some(l) = self.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["username", "caller_UUID", "_x", "a1", &"a".repeat(64)] {
            assert!(Ident::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "user name",
            "ha1;DROP",
            "a`b",
            "a\"b",
            "x--",
            "é",
            &"a".repeat(65),
        ] {
            assert_eq!(
                Ident::new(bad),
                Err(DbError::BadName(bad.to_string())),
                "{bad}"
            );
        }
        let e = Stmt::select("subscriber", &["ha1", "password;--"])
            .where_eq(&["username"])
            .build()
            .unwrap_err();
        assert_eq!(e, DbError::BadName("password;--".into()));
        let e = Stmt::delete("s").where_eq(&["a b"]).build().unwrap_err();
        assert_eq!(e, DbError::BadName("a b".into()));
        assert!(Stmt::insert("t t", &["a"]).is_err());
    }

    #[test]
    fn one_description_three_dialects() {
        let s = Stmt::select("subscriber", &["ha1", "ha1b"])
            .where_eq(&["username", "domain"])
            .build()
            .unwrap();
        assert_eq!(
            s.sql(Backend::Mysql),
            "SELECT `ha1`, `ha1b` FROM `subscriber` WHERE `username` = ? AND `domain` = ?"
        );
        assert_eq!(
            s.sql(Backend::Postgres),
            "SELECT \"ha1\", \"ha1b\" FROM \"subscriber\" WHERE \"username\" = $1 AND \"domain\" = $2"
        );
        assert_eq!(
            s.sql(Backend::Sqlite),
            "SELECT \"ha1\", \"ha1b\" FROM \"subscriber\" WHERE \"username\" = ? AND \"domain\" = ?"
        );
        assert_eq!((s.params(), s.columns()), (2, 2));
    }

    #[test]
    fn update_numbers_set_values_before_the_where() {
        let s = Stmt::update("location", &["expires", "q"])
            .where_eq(&["username"])
            .where_op("expires", Op::Lt)
            .build()
            .unwrap();
        assert_eq!(
            s.sql(Backend::Postgres),
            "UPDATE \"location\" SET \"expires\" = $1, \"q\" = $2 \
             WHERE \"username\" = $3 AND \"expires\" < $4"
        );
        assert_eq!(s.params(), 4);
    }

    #[test]
    fn insert_delete_select_extras() {
        let s = Stmt::insert("acc", &["caller_UUID", "time"]).unwrap();
        assert_eq!(
            s.sql(Backend::Mysql),
            "INSERT INTO `acc` (`caller_UUID`, `time`) VALUES (?, ?)"
        );
        assert_eq!(
            s.sql(Backend::Postgres),
            "INSERT INTO \"acc\" (\"caller_uuid\", \"time\") VALUES ($1, $2)"
        );
        let s = Stmt::delete("location").build().unwrap();
        assert_eq!(s.sql(Backend::Sqlite), "DELETE FROM \"location\"");
        assert_eq!(s.params(), 0);
        let s = Stmt::select("location", &["contact"])
            .where_op("expires", Op::Ge)
            .order_by_desc("q")
            .order_by("contact")
            .limit(10)
            .build()
            .unwrap();
        assert_eq!(
            s.sql(Backend::Mysql),
            "SELECT `contact` FROM `location` WHERE `expires` >= ? \
             ORDER BY `q` DESC, `contact` LIMIT 10"
        );
        assert!(Stmt::delete("t").limit(1).build().is_err());
        assert!(Stmt::select("t", &[]).build().is_err());
        assert!(Stmt::update("t", &[]).build().is_err());
    }

    #[test]
    fn upsert_per_dialect() {
        let s = Stmt::upsert("location", &["username", "contact"], &["expires"]).unwrap();
        assert_eq!(
            s.sql(Backend::Mysql),
            "INSERT INTO `location` (`username`, `contact`, `expires`) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE `expires` = VALUES(`expires`)"
        );
        assert_eq!(
            s.sql(Backend::Postgres),
            "INSERT INTO \"location\" (\"username\", \"contact\", \"expires\") VALUES ($1, $2, $3) \
             ON CONFLICT (\"username\", \"contact\") DO UPDATE SET \"expires\" = excluded.\"expires\""
        );
        let s = Stmt::upsert("domain", &["domain"], &[]).unwrap();
        assert!(s
            .sql(Backend::Sqlite)
            .ends_with("ON CONFLICT (\"domain\") DO NOTHING"));
        assert!(s
            .sql(Backend::Mysql)
            .ends_with("UPDATE `domain` = `domain`"));
        assert_eq!(s.params(), 1);
    }
}
