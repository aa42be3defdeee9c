//! The database connection of this process for a `db_url`, shared by
//! every module of the process that names the same URL (auth_db, group,
//! domain, …). Opened on first use in the process (SER's `child_init`),
//! never before the fork: [`crate::db`] does no I/O until a query.

use std::cell::RefCell;

use crate::db::{Db, DbUrl};

thread_local! {
    /// This process's handles, by URL (a config names a few at most;
    /// processes are single-threaded).
    static DBS: RefCell<Vec<(DbUrl, Db)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this process's handle for `url`.
pub fn with_db<T>(url: &DbUrl, f: impl FnOnce(&mut Db) -> T) -> T {
    DBS.with(|cell| {
        let mut dbs = cell.borrow_mut();
        let i = match dbs.iter().position(|(u, _)| u == url) {
            Some(i) => i,
            None => {
                dbs.push((url.clone(), Db::new(url.clone())));
                dbs.len() - 1
            }
        };
        f(&mut dbs[i].1)
    })
}

/// A module's `db_url` parameter: checked when set, so a bad URL is
/// refused at load with file:line.
pub fn parse_param(
    module: &'static str,
    param: &str,
    value: &crate::cfg::ast::Literal,
) -> Result<DbUrl, crate::route::export::ParamError> {
    let bad = || crate::route::export::ParamError::BadType {
        module,
        param: param.into(),
        expected: "a database URL: mysql://user:pass@host/db, postgres://… or sqlite:///path",
    };
    match value {
        crate::cfg::ast::Literal::Str(s) => DbUrl::parse(s).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// 1 when `stmt` finds a row for `params`, -1 when not or when the
/// database did not answer (logged for `who`: the check then fails, as
/// SER's did).
pub fn exists(url: &DbUrl, stmt: &crate::db::Stmt, params: &[crate::db::Value], who: &str) -> i32 {
    match with_db(url, |db| db.query_one(stmt, params)) {
        Ok(Some(_)) => 1,
        Ok(None) => -1,
        Err(e) => {
            crate::warn_limited!("{who}: lookup failed: {e}");
            -1
        }
    }
}
