//! rr — record routing (RFC 3261 §16.6 step 4, §16.12): `record_route()`,
//! `record_route_preset("host[:port]")`, `loose_route()` and
//! `is_direction("downstream"|"upstream")`.
//!
//! The logic lives in [`record`] and [`loose`] as pure functions over the
//! parsed message; the script functions here only read the context,
//! call them, and store the outcome (lumps, `new_uri`, `dst_uri`).

pub mod direction;
pub mod loose;
pub mod record;

#[cfg(test)]
mod script_tests;
#[cfg(test)]
mod tests;

use crate::cfg::ast::Literal;
use crate::route::ctx::record_route_line;
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask,
};
use crate::route::forward::socket_target;
use crate::route::MsgCtx;

use direction::Direction;
use loose::plan_loose_route;
use record::{from_tag, preset_target, rr_insert_at, rr_params, RrStyle};

/// The module and its parameters.
#[derive(Debug, Clone)]
pub struct Rr {
    style: RrStyle,
    /// SER's `enable_double_rr` (default 1). We record-route with one
    /// entry for the receiving socket only (there is one transport family
    /// to forward on), so the flag only decides whether `loose_route()`
    /// removes the partner of an own entry marked `r2`, as another SER
    /// in front of us may have inserted such pairs.
    double_rr: bool,
}

impl Default for Rr {
    fn default() -> Self {
        Rr {
            style: RrStyle::default(),
            double_rr: true,
        }
    }
}

static FUNCS: &[FnDef] = &[
    FnDef::new(
        "record_route",
        0,
        0,
        RouteMask::REQ_FAIL.or(RouteMask::BRANCH),
    ),
    FnDef::new(
        "record_route_preset",
        1,
        1,
        RouteMask::REQ_FAIL.or(RouteMask::BRANCH),
    ),
    FnDef::new("loose_route", 0, 0, RouteMask::REQUEST),
    FnDef::new("is_direction", 1, 1, RouteMask::REQ_FAIL),
];

/// What follows `sip:` in our entry.
#[derive(Debug, Clone)]
enum Target {
    /// The receiving socket as advertised; with `double`, two entries
    /// when the request leaves from another socket (`enable_double_rr`).
    Socket {
        double: bool,
    },
    Preset(Vec<u8>),
}

fn record(ctx: &mut MsgCtx<'_>, style: RrStyle, target: &Target) -> i32 {
    let msg = ctx.msg;
    if !msg.is_request() {
        return -1;
    }
    if ctx.rr.recorded {
        return 1;
    }
    let ftag = match from_tag(msg, style) {
        Ok(t) => t,
        Err(e) => {
            log::error!("record_route: cannot read the From tag: {e}");
            return -1;
        }
    };
    let (target, double) = match target {
        Target::Socket { double } => (socket_target(ctx, ctx.rcv).into_bytes(), *double),
        Target::Preset(p) => (p.clone(), false),
    };
    let params = rr_params(ftag, style);
    let line = record_route_line(&target, &params);
    let lump = ctx.lumps.insert_named(rr_insert_at(msg), &line);
    if double {
        ctx.socket_rr = Some(crate::route::ctx::SocketRr { lump, params });
    }
    ctx.rr.recorded = true;
    1
}

fn loose_route(ctx: &mut MsgCtx<'_>, double_rr: bool) -> i32 {
    if let Some(code) = ctx.rr.loose_route {
        return code;
    }
    let rt = ctx.rt;
    let msg = ctx.msg;
    let planned = plan_loose_route(msg, ctx.ruri(), double_rr, |h, p| rt.is_myself(h, p));
    let code = match planned {
        Ok(None) => -1,
        Ok(Some(plan)) => {
            plan.edit(msg, &mut ctx.lumps);
            if let Some(u) = plan.new_ruri {
                ctx.new_uri = Some(u);
            }
            if let Some(d) = plan.dst_uri {
                ctx.dst_uri = Some(d);
            }
            plan.status.code()
        }
        Err(e) => {
            log::warn!("loose_route: {e}");
            -1
        }
    };
    ctx.rr.loose_route = Some(code);
    code
}

fn bool_param(param: &str, value: &Literal) -> Result<bool, ParamError> {
    crate::route::export::param_int_or_quoted("rr", param, value).map(|n| n != 0)
}

impl Module for Rr {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        match param {
            "enable_full_lr" => self.style.full_lr = bool_param(param, value)?,
            "append_fromtag" => self.style.append_fromtag = bool_param(param, value)?,
            "enable_double_rr" => self.double_rr = bool_param(param, value)?,
            _ => return Err(super::no_params("rr", param)),
        }
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let style = self.style;
        match f.name {
            "record_route" => {
                let target = Target::Socket {
                    double: self.double_rr,
                };
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    record(ctx, style, &target)
                }))
            }
            "record_route_preset" => {
                let s = arg_str(f.name, args, 0)?;
                let t = preset_target(&s);
                if t.is_empty() {
                    return Err(FixupError::BadArg {
                        func: f.name,
                        index: 1,
                        expected: "host[:port]",
                        found: format!("{s:?}"),
                    });
                }
                let target = Target::Preset(t.as_bytes().to_vec());
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    record(ctx, style, &target)
                }))
            }
            "loose_route" => {
                let double_rr = self.double_rr;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    loose_route(ctx, double_rr)
                }))
            }
            "is_direction" => {
                let s = arg_str(f.name, args, 0)?;
                let want = Direction::parse(&s).ok_or_else(|| FixupError::BadArg {
                    func: f.name,
                    index: 1,
                    expected: "\"downstream\" or \"upstream\"",
                    found: format!("{s:?}"),
                })?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let rt = ctx.rt;
                    match direction::direction(ctx.msg, |h, p| rt.is_myself(h, p)) {
                        Some(d) if d == want => 1,
                        _ => -1,
                    }
                }))
            }
            _ => Err(FixupError::Unavailable {
                func: f.name,
                reason: "not an rr function",
            }),
        }
    }
}
