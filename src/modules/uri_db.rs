//! uri_db — SER 0.9's `check_to()`, `check_from()` and
//! `does_uri_exist()`: a user may only use the identities it
//! authenticated as. Without `use_uri_table` the To/From URI user must be
//! the digest username (and, with `use_domain`, its host the realm);
//! with it, the `uri` table lists which URI users each subscriber may
//! use. `does_uri_exist()` asks whether the Request-URI's user is a
//! subscriber (or, with `use_uri_table`, a listed URI user).

use crate::cfg::ast::Literal;
use crate::db::{DbUrl, Stmt, Value};
use crate::route::export::{BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask};
use crate::route::MsgCtx;

const DEFAULT_URL: &str = "mysql://serro:47serro11@localhost/ser";

#[derive(Debug, Clone)]
pub struct UriDb {
    db_url: String,
    uri_table: String,
    uri_user_column: String,
    uri_domain_column: String,
    uri_uriuser_column: String,
    subscriber_table: String,
    subscriber_user_column: String,
    subscriber_domain_column: String,
    use_uri_table: bool,
    use_domain: bool,
}

impl Default for UriDb {
    fn default() -> Self {
        UriDb {
            db_url: DEFAULT_URL.into(),
            uri_table: "uri".into(),
            uri_user_column: "username".into(),
            uri_domain_column: "domain".into(),
            uri_uriuser_column: "uri_user".into(),
            subscriber_table: "subscriber".into(),
            subscriber_user_column: "username".into(),
            subscriber_domain_column: "domain".into(),
            use_uri_table: false,
            use_domain: false,
        }
    }
}

static FUNCS: &[FnDef] = &[
    FnDef::new("check_to", 0, 0, RouteMask::REQUEST),
    FnDef::new("check_from", 0, 0, RouteMask::REQUEST),
    FnDef::new("does_uri_exist", 0, 0, RouteMask::REQUEST),
];

impl Module for UriDb {
    fn name(&self) -> &'static str {
        "uri_db"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        let text = || super::str_param("uri_db", param, value);
        let flag = || super::flag_param("uri_db", param, value);
        match param {
            "db_url" => {
                super::db_conn::parse_param("uri_db", param, value)?;
                self.db_url = text()?;
            }
            "uri_table" => self.uri_table = text()?,
            "uri_user_column" => self.uri_user_column = text()?,
            "uri_domain_column" => self.uri_domain_column = text()?,
            "uri_uriuser_column" => self.uri_uriuser_column = text()?,
            "subscriber_table" => self.subscriber_table = text()?,
            "subscriber_user_column" => self.subscriber_user_column = text()?,
            "subscriber_domain_column" => self.subscriber_domain_column = text()?,
            "use_uri_table" => self.use_uri_table = flag()?,
            "use_domain" => self.use_domain = flag()?,
            _ => return Err(super::no_params("uri_db", param)),
        }
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        _args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let bad = |e: String| FixupError::BadArg {
            func: f.name,
            index: 0,
            expected: "uri_db's db_url, tables and columns to be valid",
            found: e,
        };
        let url = DbUrl::parse(&self.db_url).map_err(|e| bad(e.to_string()))?;
        let use_domain = self.use_domain;
        if f.name == "does_uri_exist" {
            let (table, user, domain) = if self.use_uri_table {
                (
                    &self.uri_table,
                    &self.uri_uriuser_column,
                    &self.uri_domain_column,
                )
            } else {
                (
                    &self.subscriber_table,
                    &self.subscriber_user_column,
                    &self.subscriber_domain_column,
                )
            };
            let mut keys = vec![user.as_str()];
            if use_domain {
                keys.push(domain);
            }
            let stmt = Stmt::select(table, &[user])
                .where_eq(&keys)
                .limit(1)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            return Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                let Some((u, h)) = super::uri_parts::user_host(ctx.ruri()) else {
                    return -1;
                };
                let mut p = vec![Value::Str(u)];
                if use_domain {
                    p.push(Value::Str(h));
                }
                exists(&url, &stmt, &p)
            }));
        }
        let to = f.name == "check_to";
        let lookup = if self.use_uri_table {
            let mut keys = vec![self.uri_user_column.as_str()];
            if use_domain {
                keys.push(&self.uri_domain_column);
            }
            keys.push(&self.uri_uriuser_column);
            Some(
                Stmt::select(&self.uri_table, &[&self.uri_user_column])
                    .where_eq(&keys)
                    .limit(1)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let Some((cred_user, realm)) = super::auth::authorized_user(ctx) else {
                return -1;
            };
            let msg = ctx.msg;
            let na = if to { msg.to() } else { msg.from() };
            let Some((u, h)) = na
                .ok()
                .and_then(|na| super::uri_parts::user_host(na.uri.get(msg.buf())))
            else {
                return -1;
            };
            match &lookup {
                None => {
                    let same = u == cred_user && (!use_domain || h == realm);
                    if same {
                        1
                    } else {
                        -1
                    }
                }
                Some(stmt) => {
                    let mut p = vec![Value::Str(cred_user)];
                    if use_domain {
                        p.push(Value::Str(realm));
                    }
                    p.push(Value::Str(u));
                    exists(&url, stmt, &p)
                }
            }
        }))
    }
}

fn exists(url: &DbUrl, stmt: &Stmt, params: &[Value]) -> i32 {
    super::db_conn::exists(url, stmt, params, "uri_db")
}
