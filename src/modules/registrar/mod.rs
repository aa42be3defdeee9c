//! registrar — SER 0.9's REGISTER handling over the usrloc location table.
//!
//! `save("t")` (also `save_noreply`, `save_memory`) applies a REGISTER to
//! table `t` and answers it statelessly; `lookup("t")` turns the R-URI's
//! AOR into its registered contacts; `registered("t")` tests for one.
//! The REGISTER logic is pure (`request`, `save`, `reply`, `lookup`); the
//! table is reached through the [`Location`] trait.

pub mod aor;
pub mod config;
pub mod lookup;
#[cfg(test)]
pub mod mem_location;
pub mod reply;
pub mod request;
pub mod save;
pub mod shm_location;
pub mod store;

#[cfg(test)]
mod tests;

use crate::cfg::ast::Literal;
use crate::route::ctx::AvpValue;
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, ModInitError, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;
use crate::sip::Msg;

pub use aor::{aor_of, AorError, AorRule};
pub use config::RegCfg;
pub use lookup::{Dest, LookupOpts};
#[cfg(test)]
pub use mem_location::MemLocation;
pub use reply::RegReply;
pub use request::{Origin, RegRequest};
pub use save::{RegError, SaveOutcome, FL_NAT};
pub use store::{LocError, Location, UpdateFn};

/// The store the registrar uses: usrloc's shared-memory table.
pub fn default_location() -> &'static dyn Location {
    &shm_location::SHM_LOCATION
}

pub struct Registrar {
    cfg: RegCfg,
    loc: &'static dyn Location,
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar {
            cfg: RegCfg::default(),
            loc: default_location(),
        }
    }
}

impl Registrar {
    pub fn with_location(loc: &'static dyn Location) -> Self {
        Registrar {
            cfg: RegCfg::default(),
            loc,
        }
    }
}

static FUNCS: &[FnDef] = &[
    FnDef::new("save", 1, 1, RouteMask::REQUEST),
    FnDef::new("save_noreply", 1, 1, RouteMask::REQUEST),
    FnDef::new("save_memory", 1, 1, RouteMask::REQUEST),
    FnDef::new("lookup", 1, 1, RouteMask::REQ_FAIL),
    FnDef::new("registered", 1, 1, RouteMask::REQ_FAIL),
];

fn aor_rule(cfg: &RegCfg, loc: &dyn Location) -> AorRule {
    AorRule {
        use_domain: cfg.use_domain.unwrap_or_else(|| loc.use_domain()),
        realm_prefix: cfg.realm_prefix.clone(),
    }
}

/// One REGISTER through the store: the reply to send and the verdict.
pub fn handle_register(
    msg: &Msg,
    origin: &Origin,
    loc: &dyn Location,
    domain: &str,
    cfg: &RegCfg,
    now_ms: u64,
) -> (RegReply, Result<SaveOutcome, RegError>) {
    let rule = aor_rule(cfg, loc);
    let result = RegRequest::from_msg(msg, cfg, &rule, origin).and_then(|req| {
        let mut f = |v: &mut Vec<_>| save::apply(v, &req, cfg, now_ms);
        match loc.update(domain, &req.aor, now_ms, &mut f) {
            Ok(r) => r,
            Err(e) => {
                crate::log_limited!(log::Level::Error, "registrar: save into {domain:?}: {e}");
                Err(RegError::Store)
            }
        }
    });
    let reply = match &result {
        Ok(out) => reply::ok(&out.bindings, now_ms),
        Err(e) => reply::error(*e, cfg.retry_after),
    };
    (reply, result)
}

/// `lookup` on `ruri`: SER 0.9's codes — 1 found, −1 no usable AOR,
/// −2 store failure, −3 nothing (live) registered.
pub fn lookup_into(
    loc: &dyn Location,
    domain: &str,
    ruri: &[u8],
    cfg: &RegCfg,
    now_ms: u64,
    dest: Dest<'_>,
) -> i32 {
    let Ok(aor) = aor_of(ruri, &aor_rule(cfg, loc)) else {
        return -1;
    };
    let bindings = match loc.get(domain, &aor, now_ms) {
        Ok(b) => b,
        Err(e) => {
            crate::log_limited!(log::Level::Error, "registrar: lookup in {domain:?}: {e}");
            return -2;
        }
    };
    let opts = LookupOpts {
        append_branches: cfg.append_branches,
        desc_time_order: cfg.desc_time_order,
        nat_flag: cfg.nat_flag,
    };
    if lookup::apply(bindings, opts, dest) {
        1
    } else {
        -3
    }
}

/// `registered`: 1 when the AOR of `ruri` has a live binding, else −1.
pub fn is_registered(
    loc: &dyn Location,
    domain: &str,
    ruri: &[u8],
    cfg: &RegCfg,
    now_ms: u64,
) -> i32 {
    let Ok(aor) = aor_of(ruri, &aor_rule(cfg, loc)) else {
        return -1;
    };
    match loc.get(domain, &aor, now_ms) {
        Ok(b) if !b.is_empty() => 1,
        _ => -1,
    }
}

fn origin_of(ctx: &MsgCtx<'_>, cfg: &RegCfg) -> Origin {
    let received_avp = cfg
        .received_avp
        .as_ref()
        .and_then(|n| ctx.avp(n))
        .map(|v| match v {
            AvpValue::Str(s) => s.clone(),
            AvpValue::Int(n) => n.to_string().into_bytes(),
        })
        .filter(|v| !v.is_empty());
    Origin {
        src: ctx.src,
        nat: ctx.flag_set(cfg.nat_flag),
        received_avp,
        contact_fix: ctx.nat.contact.clone(),
    }
}

fn run_save(
    ctx: &mut MsgCtx<'_>,
    loc: &dyn Location,
    cfg: &RegCfg,
    domain: &str,
    send: bool,
) -> i32 {
    let now = shm::monotonic_ms();
    let origin = origin_of(ctx, cfg);
    let (r, result) = handle_register(ctx.msg, &origin, loc, domain, cfg, now);
    if send
        && crate::modules::sl::reply_from_script(ctx, r.code, r.reason.as_bytes(), &r.headers) < 0
    {
        return -1;
    }
    if result.is_ok() {
        1
    } else {
        -1
    }
}

impl Module for Registrar {
    fn name(&self) -> &'static str {
        "registrar"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        self.cfg.set(param, value)
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let domain = arg_str(f.name, args, 0)?;
        // The table exists from load time on, as SER's fixup created it.
        self.loc.register_domain(&domain);
        let cfg = self.cfg.clone();
        let loc = self.loc;
        Ok(match f.name {
            "save" | "save_memory" => {
                Box::new(move |ctx: &mut MsgCtx<'_>| run_save(ctx, loc, &cfg, &domain, true))
            }
            "save_noreply" => {
                Box::new(move |ctx: &mut MsgCtx<'_>| run_save(ctx, loc, &cfg, &domain, false))
            }
            "lookup" => Box::new(move |ctx: &mut MsgCtx<'_>| {
                let ruri = ctx.ruri().to_vec();
                let dest = Dest {
                    new_uri: &mut ctx.new_uri,
                    dst_uri: &mut ctx.dst_uri,
                    dset: &mut ctx.dset,
                    flags: &mut ctx.flags,
                };
                lookup_into(loc, &domain, &ruri, &cfg, shm::monotonic_ms(), dest)
            }),
            _ => Box::new(move |ctx: &mut MsgCtx<'_>| {
                is_registered(loc, &domain, ctx.ruri(), &cfg, shm::monotonic_ms())
            }),
        })
    }

    fn mod_init(
        &self,
        _rt: &'static crate::route::Runtime,
        _region: &'static shm::Region,
    ) -> Result<(), ModInitError> {
        self.loc.set_case_sensitive(self.cfg.case_sensitive);
        Ok(())
    }
}
