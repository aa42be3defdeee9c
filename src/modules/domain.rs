//! domain — SER 0.9's `is_from_local()` and `is_uri_host_local()`: is the
//! host of the From URI, or of the Request-URI, one of the domains in the
//! `domain` table (`domain_table`, `domain_col`), so a multi-domain proxy
//! knows which requests are its own. Looked up in the database each time
//! (`db_mode` 0); SER's in-memory copy (`db_mode` 1, with the FIFO's
//! `domain_reload`) is not here, so `db_mode` 1 is refused at load.

use crate::cfg::ast::Literal;
use crate::db::{DbUrl, Stmt, Value};
use crate::route::export::{BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask};
use crate::route::MsgCtx;

/// SER 0.9's default.
const DEFAULT_URL: &str = "mysql://ser:heslo@localhost/ser";

#[derive(Debug, Clone)]
pub struct Domain {
    db_url: String,
    table: String,
    column: String,
}

impl Default for Domain {
    fn default() -> Self {
        Domain {
            db_url: DEFAULT_URL.into(),
            table: "domain".into(),
            column: "domain".into(),
        }
    }
}

static FUNCS: &[FnDef] = &[
    FnDef::new("is_from_local", 0, 0, RouteMask::REQUEST),
    FnDef::new("is_uri_host_local", 0, 0, RouteMask::REQUEST),
];

impl Module for Domain {
    fn name(&self) -> &'static str {
        "domain"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        let text = || super::str_param("domain", param, value);
        match param {
            "db_url" => {
                super::db_conn::parse_param("domain", param, value)?;
                self.db_url = text()?;
            }
            "domain_table" => self.table = text()?,
            "domain_col" => self.column = text()?,
            "db_mode" if matches!(value, Literal::Int(0)) => {}
            "db_mode" => {
                return Err(ParamError::BadType {
                    module: "domain",
                    param: param.into(),
                    expected: "0 (each check asks the database; the cached mode 1 and \
                               domain_reload are not supported)",
                })
            }
            _ => return Err(super::no_params("domain", param)),
        }
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        _args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let url = DbUrl::parse(&self.db_url).map_err(|e| FixupError::BadArg {
            func: f.name,
            index: 0,
            expected: "domain's db_url to be a database URL",
            found: e.to_string(),
        })?;
        let stmt = Stmt::select(&self.table, &[&self.column])
            .where_eq(&[&self.column])
            .limit(1)
            .build()
            .map_err(|e| FixupError::BadArg {
                func: f.name,
                index: 0,
                expected: "domain_table and domain_col named with letters, digits and _",
                found: e.to_string(),
            })?;
        let from = f.name == "is_from_local";
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let host = if from {
                ctx.msg
                    .from()
                    .ok()
                    .and_then(|na| super::uri_parts::host_of(na.uri.get(ctx.msg.buf())))
            } else {
                super::uri_parts::host_of(ctx.ruri())
            };
            let Some(host) = host else {
                return -1;
            };
            is_local(&url, &stmt, &host)
        }))
    }
}

/// 1 when `host` is in the table, -1 when not or when the database did
/// not answer (a request is then treated as not ours).
fn is_local(url: &DbUrl, stmt: &Stmt, host: &str) -> i32 {
    super::db_conn::exists(url, stmt, &[Value::Str(host.to_string())], "domain")
}
