//! auth_db — SER 0.9's `www_authorize(realm, table)` and
//! `proxy_authorize(realm, table)`: digest credentials checked against
//! the `subscriber` table (or the one named), through auth's check
//! ([`super::auth::authorize`]).
//!
//! Parameters, as SER 0.9: `db_url`, `user_column` (username),
//! `domain_column` (domain), `password_column` (ha1),
//! `password_column_2` (ha1b, for usernames written `user@domain`),
//! `calculate_ha1` (the password column holds the plain password),
//! `use_domain` (match the domain too, for multi-domain setups) and
//! `rpid_column` (the subscriber's Remote-Party-ID, for auth's
//! `append_rpid_hf`).
//!
//! Each process opens its own connection on first use (SER's
//! `child_init`); the select is prepared once per connection and its
//! values bound. A database out of reach answers 500 and ends the script,
//! never a hang: the layer bounds every wait ([`crate::db`]).

use crate::cfg::ast::Literal;
use crate::db::{DbUrl, Stmt, Value};
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, ModInitError, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;

use super::auth::{self, DigestUser, Found, Kind, LookupFailed, Secret};

/// SER 0.9's default (a read-only MySQL user).
const DEFAULT_URL: &str = "mysql://serro:47serro11@localhost/ser";

#[derive(Debug, Clone)]
pub struct AuthDb {
    db_url: String,
    user_column: String,
    domain_column: String,
    password_column: String,
    password_column_2: String,
    calculate_ha1: bool,
    use_domain: bool,
    rpid_column: String,
}

impl Default for AuthDb {
    fn default() -> Self {
        AuthDb {
            db_url: DEFAULT_URL.into(),
            user_column: "username".into(),
            domain_column: "domain".into(),
            password_column: "ha1".into(),
            password_column_2: "ha1b".into(),
            calculate_ha1: false,
            use_domain: false,
            rpid_column: "rpid".into(),
        }
    }
}

static FUNCS: &[FnDef] = &[
    FnDef::new("www_authorize", 2, 2, RouteMask::REQUEST),
    FnDef::new("proxy_authorize", 2, 2, RouteMask::REQUEST),
];

/// The two selects of one table: by username (and domain), the HA1 (or
/// password) column, and the `ha1b` one for `user@domain` usernames.
struct Lookups {
    url: DbUrl,
    plain: Stmt,
    with_domain_part: Stmt,
    use_domain: bool,
    calculate_ha1: bool,
}

impl Module for AuthDb {
    fn name(&self) -> &'static str {
        "auth_db"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        let text = || super::str_param("auth_db", param, value);
        let flag = || super::flag_param("auth_db", param, value);
        match param {
            "db_url" => {
                super::db_conn::parse_param("auth_db", param, value)?;
                self.db_url = text()?;
            }
            "user_column" => self.user_column = text()?,
            "domain_column" => self.domain_column = text()?,
            "password_column" => self.password_column = text()?,
            "password_column_2" => self.password_column_2 = text()?,
            "calculate_ha1" => self.calculate_ha1 = flag()?,
            "use_domain" => self.use_domain = flag()?,
            "rpid_column" => self.rpid_column = text()?,
            _ => return Err(super::no_params("auth_db", param)),
        }
        Ok(())
    }

    fn mod_init(
        &self,
        _rt: &'static crate::route::Runtime,
        _region: &'static shm::Region,
    ) -> Result<(), ModInitError> {
        if !auth::loaded() {
            return Err(ModInitError {
                module: "auth_db",
                reason: "needs the auth module, loaded before it".into(),
            });
        }
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let url = DbUrl::parse(&self.db_url).map_err(|e| FixupError::BadArg {
            func: f.name,
            index: 0,
            expected: "auth_db's db_url to be a database URL",
            found: e.to_string(),
        })?;
        let realm = arg_str(f.name, args, 0)?;
        let table = arg_str(f.name, args, 1)?;
        let cols_err = |e: crate::db::DbError| FixupError::BadArg {
            func: f.name,
            index: 1,
            expected: "a table and columns named with letters, digits and _",
            found: e.to_string(),
        };
        let keys: Vec<&str> = if self.use_domain {
            vec![&self.user_column, &self.domain_column]
        } else {
            vec![&self.user_column]
        };
        // With calculate_ha1 the one column holds the plain password, for
        // either form of username.
        let second = if self.calculate_ha1 {
            &self.password_column
        } else {
            &self.password_column_2
        };
        let lookups = Lookups {
            url,
            plain: Stmt::select(&table, &[&self.password_column, &self.rpid_column])
                .where_eq(&keys)
                .build()
                .map_err(cols_err)?,
            with_domain_part: Stmt::select(&table, &[second, &self.rpid_column])
                .where_eq(&keys)
                .build()
                .map_err(cols_err)?,
            use_domain: self.use_domain,
            calculate_ha1: self.calculate_ha1,
        };
        let kind = if f.name == "www_authorize" {
            Kind::Www
        } else {
            Kind::Proxy
        };
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            auth::authorize(ctx, kind, &realm, &mut |user, realm| {
                lookups.find(user, realm)
            })
        }))
    }
}

impl Lookups {
    fn find(&self, user: &DigestUser<'_>, realm: &str) -> Result<Option<Found>, LookupFailed> {
        let stmt = if user.domain.is_some() {
            &self.with_domain_part
        } else {
            &self.plain
        };
        let mut params = vec![Value::Str(user.user.to_string())];
        if self.use_domain {
            params.push(Value::Str(user.domain.unwrap_or(realm).to_string()));
        }
        let row = match super::db_conn::with_db(&self.url, |db| db.query_one(stmt, &params)) {
            Ok(r) => r,
            Err(e) => {
                crate::warn_limited!("auth_db: subscriber lookup failed: {e}");
                return Err(LookupFailed);
            }
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let Some(text) = row.get(0).and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        let secret = if self.calculate_ha1 {
            Secret::Password(text.to_string())
        } else {
            Secret::Ha1(text.to_string())
        };
        let rpid = row
            .get(1)
            .and_then(|v| v.as_str())
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        Ok(Some(Found { secret, rpid }))
    }
}
