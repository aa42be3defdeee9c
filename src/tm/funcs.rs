//! The tm module as the script sees it: parameters and functions of SER
//! 0.8/0.9 (`t_on_negative`, `t_relay_to` from 0.8 included).

use crate::cfg::ast::{Literal, RouteKind};
use crate::fwd::resolve;
use crate::net::Proto;
use crate::route::ctx::{MsgCtx, ScriptError};
use crate::route::export::{
    arg_int_range, arg_str, compile_regex, BoxedFn, FixupEnv, FixupError, FnDef, ModInitError,
    Module, ParamError, RouteMask as M,
};
use crate::tm::fsm::{bflags, flags, Actions, Branch};
use crate::tm::key::{MatchKind, MatchOpts, MsgKey};
use crate::tm::params::TmParams;
use crate::tm::relay::{self, current, reply_local, Dest, NewTran};
use crate::tm::twrite::TwAppends;
use crate::tm::write_fns::{t_write, Channel, TWrite};
use crate::tm::{driver, store};

#[derive(Default)]
pub struct Tm {
    params: TmParams,
    /// `tw_append` lists, parsed as they are set.
    appends: TwAppends,
}

const R: M = M::REQUEST;
const RF: M = M::REQ_FAIL;
const RFO: M = M::REQ_FAIL_ONREPLY;
const F: M = M::FAILURE;

/// Where each function may be called: the route masks of SER's own tm
/// exports (0.9 and 2.x agree on these). Re-arming `t_on_failure` from an
/// onreply route is how SER's examples retry after a 183; forwarding and
/// transaction creation are request-route business (failure routes add
/// branches with `t_relay*` only).
static FUNCS: &[FnDef] = &[
    FnDef::new("t_relay", 0, 2, RF),
    FnDef::new("t_relay_to", 2, 2, RF),
    FnDef::new("t_relay_to_udp", 2, 2, RF),
    FnDef::new("t_relay_to_tcp", 2, 2, RF),
    FnDef::new("t_relay_to_tls", 2, 2, RF),
    FnDef::new("t_replicate", 2, 2, R),
    FnDef::new("t_replicate_udp", 2, 2, R),
    FnDef::new("t_replicate_tcp", 2, 2, R),
    FnDef::new("t_replicate_tls", 2, 2, R),
    FnDef::new("t_forward_nonack", 2, 2, R),
    FnDef::new("t_forward_nonack_uri", 0, 0, R),
    FnDef::new("t_forward_nonack_udp", 2, 2, R),
    FnDef::new("t_forward_nonack_tcp", 2, 2, R),
    FnDef::new("t_forward_nonack_tls", 2, 2, R),
    FnDef::new("t_on_failure", 1, 1, RFO),
    FnDef::new("t_on_negative", 1, 1, RFO),
    FnDef::new("t_on_reply", 1, 1, RFO),
    FnDef::new("t_check_status", 1, 1, RFO),
    // SER 2.1: about the failed branch (failure route only) or any branch.
    FnDef::new("t_branch_timeout", 0, 0, F),
    FnDef::new("t_branch_replied", 0, 0, F),
    FnDef::new("t_any_timeout", 0, 0, RFO),
    FnDef::new("t_grep_status", 1, 1, RFO),
    FnDef::new("t_is_canceled", 0, 0, RFO),
    FnDef::new("t_newtran", 0, 0, R),
    FnDef::new("t_reply", 2, 2, RF),
    FnDef::new("t_lookup_request", 0, 0, R),
    FnDef::new("t_retransmit_reply", 0, 0, R),
    FnDef::new("t_release", 0, 0, R),
    FnDef::new("t_write_req", 2, 2, RF),
    FnDef::new("t_write_unix", 2, 2, RF),
];

fn fixed(def: &FnDef, args: &[Literal]) -> Result<std::net::SocketAddr, FixupError> {
    let host = arg_str(def.name, args, 0)?;
    let port = arg_int_range(def.name, args, 1, 1, 65535, "a port number")? as u16;
    resolve(host.as_bytes(), port).ok_or(FixupError::Resolve {
        host,
        reason: "no address found".into(),
    })
}

fn proto_of(name: &str) -> Proto {
    if name.ends_with("_tcp") {
        Proto::Tcp
    } else if name.ends_with("_tls") {
        Proto::Tls
    } else {
        Proto::Udp
    }
}

fn route_arg(
    def: &FnDef,
    args: &[Literal],
    env: &FixupEnv<'_>,
    kind: RouteKind,
) -> Result<u16, FixupError> {
    let name = arg_str(def.name, args, 0)?;
    match env.route_index(kind, &name) {
        Some(i) => Ok(u16::try_from(i + 1).unwrap_or(0)),
        None => Err(FixupError::BadArg {
            func: def.name,
            index: 1,
            expected: "the number of a defined route",
            found: name,
        }),
    }
}

/// Set an armed route on the transaction, or remember it for the next one.
fn arm(ctx: &mut MsgCtx<'_>, which: RouteKind, idx: u16) -> i32 {
    match which {
        RouteKind::Failure => ctx.tm.on_failure = idx,
        _ => ctx.tm.on_reply = idx,
    }
    if let Some(c) = current(ctx) {
        let mut st = c.cell().lock();
        match which {
            RouteKind::Failure => {
                st.on_failure = idx;
                st.tx.flags |= flags::FAILURE_ROUTE;
            }
            _ => st.on_reply = idx,
        }
    }
    1
}

/// `t_newtran` as the script sees it.
fn t_newtran(ctx: &mut MsgCtx<'_>) -> i32 {
    match relay::newtran(ctx) {
        Ok(NewTran::Created) | Ok(NewTran::E2eAck) | Ok(NewTran::UnmatchedAck) => 1,
        Ok(NewTran::Retransmission) | Ok(NewTran::AckAbsorbed) => 0,
        Ok(NewTran::Exists) => -10,
        Err(e) => ctx.fail(e),
    }
}

fn t_lookup_request(ctx: &mut MsgCtx<'_>) -> i32 {
    let Some(env) = crate::tm::env::env() else {
        return -1;
    };
    let Ok(mk) = MsgKey::of(ctx.msg) else {
        return -1;
    };
    let o = MatchOpts {
        ruri_matching: env.params.ruri_matching,
        via1_matching: env.params.via1_matching,
    };
    match store::lookup(&mk, o, Some(MatchKind::Same)) {
        store::Found::Cell(c, _) => {
            if ctx.tm.cell == 0 {
                ctx.tm.cell = c.into_raw().get();
                ctx.tm.owns_ref = true;
            }
            1
        }
        store::Found::None => -1,
    }
}

/// The status `t_check_status` tests: the reply being handled in a reply
/// route, the picked one in a failure route, else the last one sent.
fn status_for_check(ctx: &MsgCtx<'_>) -> u16 {
    if !ctx.msg.is_request() {
        return ctx.msg.status();
    }
    if ctx.tm.in_failure {
        return ctx.tm.reply_code;
    }
    current(ctx)
        .map(|c| c.cell().lock().tx.uas_status)
        .unwrap_or(0)
}

/// Script truth: 1 for true, -1 for false.
fn truth(b: bool) -> i32 {
    if b {
        1
    } else {
        -1
    }
}

/// Whether some branch of the current transaction satisfies `pred`; only
/// the failure route's picked branch with `picked_only`.
fn branch_test(ctx: &MsgCtx<'_>, picked_only: bool, pred: impl Fn(&Branch) -> bool) -> i32 {
    let Some(c) = current(ctx) else { return -1 };
    let st = c.cell().lock();
    let n = st.tx.branch_count();
    let hit = if picked_only {
        ctx.tm.in_failure
            && st
                .tx
                .branches
                .get(usize::from(ctx.tm.picked))
                .is_some_and(&pred)
    } else {
        st.tx.branches.iter().take(n).any(&pred)
    };
    truth(hit)
}

impl Module for Tm {
    fn name(&self) -> &'static str {
        "tm"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        self.params.set(param, value)?;
        if param == "tw_append" {
            if let Some(text) = self.params.tw_append.last() {
                self.appends.add(text).map_err(|e| ParamError::BadValue {
                    module: "tm",
                    param: param.into(),
                    reason: e.to_string(),
                })?;
            }
        }
        Ok(())
    }

    fn ctl_commands(&self) -> &'static [crate::ctl::CtlCmd] {
        crate::tm::ctl_cmds::COMMANDS
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let name = f.name;
        Ok(match name {
            "t_relay" if args.is_empty() => {
                Box::new(|ctx: &mut MsgCtx<'_>| relay::relay(ctx, Dest::Uri, false))
            }
            "t_relay" | "t_relay_to" | "t_relay_to_udp" | "t_relay_to_tcp" | "t_relay_to_tls" => {
                let addr = fixed(f, args)?;
                let dest = Dest::Fixed(addr, proto_of(name));
                Box::new(move |ctx: &mut MsgCtx<'_>| relay::relay(ctx, dest, false))
            }
            "t_replicate" | "t_replicate_udp" | "t_replicate_tcp" | "t_replicate_tls" => {
                let dest = Dest::Fixed(fixed(f, args)?, proto_of(name));
                Box::new(move |ctx: &mut MsgCtx<'_>| relay::relay(ctx, dest, true))
            }
            "t_forward_nonack_uri" => {
                Box::new(|ctx: &mut MsgCtx<'_>| forward_nonack(ctx, Dest::Uri))
            }
            "t_forward_nonack"
            | "t_forward_nonack_udp"
            | "t_forward_nonack_tcp"
            | "t_forward_nonack_tls" => {
                let dest = Dest::Fixed(fixed(f, args)?, proto_of(name));
                Box::new(move |ctx: &mut MsgCtx<'_>| forward_nonack(ctx, dest))
            }
            "t_on_failure" | "t_on_negative" => {
                let idx = route_arg(f, args, env, RouteKind::Failure)?;
                Box::new(move |ctx: &mut MsgCtx<'_>| arm(ctx, RouteKind::Failure, idx))
            }
            "t_on_reply" => {
                let idx = route_arg(f, args, env, RouteKind::OnReply)?;
                Box::new(move |ctx: &mut MsgCtx<'_>| arm(ctx, RouteKind::OnReply, idx))
            }
            "t_check_status" => {
                let re = compile_regex(&arg_str(name, args, 0)?)?;
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let code = status_for_check(ctx);
                    if code != 0 && re.is_match(code.to_string().as_bytes()) {
                        1
                    } else {
                        -1
                    }
                })
            }
            "t_branch_timeout" => Box::new(|ctx: &mut MsgCtx<'_>| {
                branch_test(ctx, true, |b| b.flags & bflags::LOCAL_FINAL != 0)
            }),
            // A reply "in the past": for a branch that timed out, any reply
            // it got; for one failed by a reply, one before that reply.
            "t_branch_replied" => Box::new(|ctx: &mut MsgCtx<'_>| {
                branch_test(ctx, true, |b| {
                    let past = if b.flags & bflags::LOCAL_FINAL != 0 {
                        bflags::REPLIED
                    } else {
                        bflags::PAST_REPLY
                    };
                    b.flags & past != 0
                })
            }),
            "t_any_timeout" => Box::new(|ctx: &mut MsgCtx<'_>| {
                branch_test(ctx, false, |b| b.flags & bflags::LOCAL_FINAL != 0)
            }),
            "t_grep_status" => {
                let code = arg_int_range(name, args, 0, 100, 699, "a status code")? as u16;
                Box::new(move |ctx: &mut MsgCtx<'_>| branch_test(ctx, false, |b| b.status == code))
            }
            "t_is_canceled" => Box::new(|ctx: &mut MsgCtx<'_>| {
                truth(current(ctx).is_some_and(|c| c.cell().lock().tx.has(flags::CANCELED)))
            }),
            "t_newtran" => Box::new(t_newtran),
            "t_reply" => {
                let code = arg_int_range(name, args, 0, 100, 999, "a 3-digit status code")? as u16;
                let reason = arg_str(name, args, 1)?.into_bytes();
                Box::new(move |ctx: &mut MsgCtx<'_>| reply_local(ctx, code, &reason))
            }
            "t_lookup_request" => Box::new(t_lookup_request),
            "t_write_req" | "t_write_unix" => {
                let channel = if name == "t_write_req" {
                    Channel::Fifo
                } else {
                    Channel::Unix
                };
                let w = TWrite::new(
                    name,
                    channel,
                    arg_str(name, args, 0)?,
                    &arg_str(name, args, 1)?,
                    &self.appends,
                )?;
                Box::new(move |ctx: &mut MsgCtx<'_>| t_write(ctx, &w))
            }
            "t_retransmit_reply" => Box::new(|ctx: &mut MsgCtx<'_>| {
                let (Some(env), Some(c)) = (crate::tm::env::env(), current(ctx)) else {
                    return -1;
                };
                let st = c.cell().lock();
                let again = driver::final_reply_again(env, c.cell(), &st);
                if crate::tm::env::send_peer(env, &c.cell().src, &again) {
                    1
                } else {
                    -1
                }
            }),
            "t_release" => Box::new(|ctx: &mut MsgCtx<'_>| {
                let (Some(env), Some(c)) = (crate::tm::env::env(), current(ctx)) else {
                    return -1;
                };
                let mut def = driver::Deferred::default();
                {
                    let mut st = c.cell().lock();
                    let mut acts = Actions::new();
                    st.tx
                        .release(crate::tm::env::now(), &env.params.timers, &mut acts);
                    driver::execute(env, c.cell(), &mut st, &mut acts, None, &mut def);
                    driver::rearm(&c, &st);
                }
                driver::finish(env, &c, def);
                1
            }),
            _ => {
                return Err(FixupError::Unavailable {
                    func: name,
                    reason: "unknown tm function",
                })
            }
        })
    }

    fn post_script(&self, ctx: &mut MsgCtx<'_>) {
        relay::post_script(ctx);
    }

    fn mod_init(
        &self,
        rt: &'static crate::route::Runtime,
        region: &'static shm::Region,
    ) -> Result<(), ModInitError> {
        for note in &self.params.seconds_notes {
            log::info!("tm: {note}");
        }
        if self.params.blst.given && !rt.core.use_dst_blacklist {
            log::info!("tm: the blst_* parameters have no effect until use_dst_blacklist=yes");
        }
        store::init(region).map_err(|e| ModInitError {
            module: "tm",
            reason: e.to_string(),
        })?;
        crate::tm::ctl_cmds::register_reports();
        driver::set_failure_runner(crate::tm::failure::run);
        if !driver::init(rt, region, self.params.clone()) {
            return Err(ModInitError {
                module: "tm",
                reason: "initialised twice".into(),
            });
        }
        Ok(())
    }
}

/// `t_forward_nonack*`: branches for an existing transaction (after
/// `t_newtran`), never for an ACK.
fn forward_nonack(ctx: &mut MsgCtx<'_>, dest: Dest) -> i32 {
    if ctx.msg.method() == crate::sip::Method::Ack || ctx.tm.cell == 0 {
        return -1;
    }
    if relay::forward_all(ctx, dest, true) > 0 {
        1
    } else {
        ctx.fail(if ctx.last_error == ScriptError::None {
            ScriptError::Send
        } else {
            ctx.last_error
        })
    }
}

/// Counters for the SIGUSR1 report and t_stats.
pub fn stats_line() -> String {
    let s = crate::tm::stats::snapshot();
    let used = shm::try_global().map(|r| r.stats().used).unwrap_or(0);
    format!(
        "tm stats: current={} waiting={} created={} freed={} shm used={}",
        s.current(),
        s.waiting,
        s.created,
        s.freed,
        used
    )
}
