//! group — SER 0.9's `is_user_in(URI, group)`: is the user of the
//! Request-URI, To, From, or of the credentials that authorized the
//! request, a member of `group` in the `grp` table (`table`,
//! `user_column`, `domain_column`, `group_column`; `use_domain` matches
//! the domain too).

use crate::cfg::ast::Literal;
use crate::db::{DbUrl, Stmt, Value};
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;

const DEFAULT_URL: &str = "mysql://serro:47serro11@localhost/ser";

#[derive(Debug, Clone)]
pub struct Group {
    db_url: String,
    table: String,
    user_column: String,
    domain_column: String,
    group_column: String,
    use_domain: bool,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            db_url: DEFAULT_URL.into(),
            table: "grp".into(),
            user_column: "username".into(),
            domain_column: "domain".into(),
            group_column: "grp".into(),
            use_domain: false,
        }
    }
}

static FUNCS: &[FnDef] = &[FnDef::new("is_user_in", 2, 2, RouteMask::REQ_FAIL)];

/// Whose user is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whose {
    RequestUri,
    To,
    From,
    Credentials,
}

impl Module for Group {
    fn name(&self) -> &'static str {
        "group"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        let text = || super::str_param("group", param, value);
        match param {
            "db_url" => {
                super::db_conn::parse_param("group", param, value)?;
                self.db_url = text()?;
            }
            "table" => self.table = text()?,
            "user_column" => self.user_column = text()?,
            "domain_column" => self.domain_column = text()?,
            "group_column" => self.group_column = text()?,
            "use_domain" => self.use_domain = super::flag_param("group", param, value)?,
            _ => return Err(super::no_params("group", param)),
        }
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let bad = |index, expected, found: String| FixupError::BadArg {
            func: f.name,
            index,
            expected,
            found,
        };
        let url = DbUrl::parse(&self.db_url)
            .map_err(|e| bad(0, "group's db_url to be a database URL", e.to_string()))?;
        let which = arg_str(f.name, args, 0)?;
        let whose = match which.to_ascii_lowercase().as_str() {
            "request-uri" => Whose::RequestUri,
            "to" => Whose::To,
            "from" => Whose::From,
            "credentials" => Whose::Credentials,
            _ => {
                return Err(bad(
                    0,
                    "\"Request-URI\", \"To\", \"From\" or \"Credentials\"",
                    which,
                ))
            }
        };
        let group = arg_str(f.name, args, 1)?;
        let mut keys = vec![self.user_column.as_str(), self.group_column.as_str()];
        if self.use_domain {
            keys.push(&self.domain_column);
        }
        let stmt = Stmt::select(&self.table, &[&self.user_column])
            .where_eq(&keys)
            .limit(1)
            .build()
            .map_err(|e| {
                bad(
                    1,
                    "table and columns named with letters, digits and _",
                    e.to_string(),
                )
            })?;
        let use_domain = self.use_domain;
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let Some((user, domain)) = user_of(ctx, whose) else {
                return -1;
            };
            let mut params = vec![Value::Str(user), Value::Str(group.clone())];
            if use_domain {
                params.push(Value::Str(domain));
            }
            super::db_conn::exists(&url, &stmt, &params, "group")
        }))
    }
}

/// The (user, domain) to check.
fn user_of(ctx: &MsgCtx<'_>, whose: Whose) -> Option<(String, String)> {
    let msg = ctx.msg;
    let uri: Vec<u8> = match whose {
        Whose::RequestUri => ctx.ruri().to_vec(),
        Whose::To => msg.to().ok()?.uri.get(msg.buf()).to_vec(),
        Whose::From => msg.from().ok()?.uri.get(msg.buf()).to_vec(),
        Whose::Credentials => {
            let (user, domain) = super::auth::authorized_user(ctx)?;
            return Some((user, domain));
        }
    };
    super::uri_parts::user_host(&uri)
}
