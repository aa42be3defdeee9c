//! SER modules built into the binary. `loadmodule ".../name.so"` selects
//! one by its base name; anything else is refused with this list.

use crate::route::export::Module;

pub mod acc;
pub mod auth;
pub mod auth_db;
pub mod avpops;
pub mod ctl_mods;
pub mod db_conn;
pub mod domain;
pub mod exec;
pub mod group;
pub mod maxfwd;
pub mod nathelper;
pub mod permissions;
pub mod pike;
pub mod print;
pub mod registrar;
pub mod rr;
pub mod sl;
pub mod sl_stats;
pub mod textops;
pub mod uri;
pub mod uri_db;
pub mod uri_parts;
pub mod usrloc;
pub mod xlog;

/// Module names a config may load.
pub const SUPPORTED: &[&str] = &[
    "sl",
    "tm",
    "rr",
    "maxfwd",
    "usrloc",
    "registrar",
    "textops",
    "xlog",
    "print",
    "acc",
    "avpops",
    "auth",
    "auth_db",
    "domain",
    "group",
    "uri",
    "uri_db",
    "pike",
    "exec",
    "nathelper",
    "permissions",
    "mysql",
    "postgres",
    "db_sqlite",
    "fifo",
    "unixsock",
];

/// What `loadmodule` can find, handed to `route::load`.
pub const CATALOG: crate::route::ModuleCatalog = crate::route::ModuleCatalog {
    create,
    names: SUPPORTED,
};

pub fn create(name: &str) -> Option<Box<dyn Module>> {
    match name {
        "sl" => Some(Box::new(sl::Sl)),
        "tm" => Some(Box::new(crate::tm::funcs::Tm::default())),
        "maxfwd" => Some(Box::new(maxfwd::MaxFwd::default())),
        "textops" => Some(Box::new(textops::TextOps)),
        "xlog" => Some(Box::new(xlog::Xlog::default())),
        "print" => Some(Box::new(print::Print)),
        "fifo" => Some(Box::new(ctl_mods::Fifo::default())),
        "unixsock" => Some(Box::new(ctl_mods::UnixSock::default())),
        "acc" => Some(Box::new(acc::Acc::default())),
        "avpops" => Some(Box::new(avpops::AvpOps::default())),
        "auth" => Some(Box::new(auth::Auth::default())),
        "auth_db" => Some(Box::new(auth_db::AuthDb::default())),
        "domain" => Some(Box::new(domain::Domain::default())),
        "group" => Some(Box::new(group::Group::default())),
        "uri" => Some(Box::new(uri::Uri)),
        "uri_db" => Some(Box::new(uri_db::UriDb::default())),
        "pike" => Some(Box::new(pike::Pike::default())),
        "exec" => Some(Box::new(exec::Exec::default())),
        "mysql" => Some(Box::new(DbDriver("mysql"))),
        "postgres" => Some(Box::new(DbDriver("postgres"))),
        "db_sqlite" => Some(Box::new(DbDriver("db_sqlite"))),
        "rr" => Some(Box::new(rr::Rr::default())),
        "nathelper" => Some(Box::new(nathelper::NatHelper::default())),
        "permissions" => Some(Box::new(permissions::Permissions::default())),
        "registrar" => Some(Box::new(registrar::Registrar::default())),
        "usrloc" => Some(Box::new(usrloc::Usrloc::default())),
        _ => None,
    }
}

/// SER's database driver modules (`mysql.so`, 2.x's `postgres.so`,
/// Kamailio's `db_sqlite.so`): loading one is how a SER config says which
/// backend its `db_url`s use. The drivers are built in (`crate::db`,
/// chosen by the URL's scheme), so the module itself has no functions
/// and no parameters.
pub struct DbDriver(pub &'static str);

impl Module for DbDriver {
    fn name(&self) -> &'static str {
        self.0
    }

    fn functions(&self) -> &'static [crate::route::export::FnDef] {
        &[]
    }

    fn fixup(
        &self,
        f: &crate::route::export::FnDef,
        _args: &[crate::cfg::ast::Literal],
        _env: &crate::route::export::FixupEnv<'_>,
    ) -> Result<crate::route::export::BoxedFn, crate::route::export::FixupError> {
        Err(crate::route::export::FixupError::Unavailable {
            func: f.name,
            reason: "a database driver module exports no functions",
        })
    }
}

/// A `modparam` that must be a non-empty quoted string (a table or
/// column name, a URL).
pub fn str_param(
    module: &'static str,
    param: &str,
    v: &crate::cfg::ast::Literal,
) -> Result<String, crate::route::export::ParamError> {
    match v {
        crate::cfg::ast::Literal::Str(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(crate::route::export::ParamError::BadType {
            module,
            param: param.into(),
            expected: "a non-empty string",
        }),
    }
}

/// A `modparam` that is a switch: 0/1, or yes/no and on/off as SER's
/// config grammar allowed.
pub fn flag_param(
    module: &'static str,
    param: &str,
    v: &crate::cfg::ast::Literal,
) -> Result<bool, crate::route::export::ParamError> {
    use crate::cfg::ast::Literal;
    match v {
        Literal::Int(0) => Ok(false),
        Literal::Int(1) => Ok(true),
        Literal::Ident(s) if s.eq_ignore_ascii_case("yes") || s.eq_ignore_ascii_case("on") => {
            Ok(true)
        }
        Literal::Ident(s) if s.eq_ignore_ascii_case("no") || s.eq_ignore_ascii_case("off") => {
            Ok(false)
        }
        _ => Err(crate::route::export::ParamError::BadType {
            module,
            param: param.into(),
            expected: "0/1 (or yes/no)",
        }),
    }
}

/// Refuse any parameter: for modules that have none.
pub fn no_params(module: &'static str, param: &str) -> crate::route::export::ParamError {
    crate::route::export::ParamError::Unknown {
        module,
        param: param.to_string(),
    }
}
