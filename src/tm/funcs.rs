//! The tm module as the script sees it: parameters and functions of SER
//! 0.8/0.9 (`t_on_negative`, `t_relay_to` from 0.8 included).

use crate::cfg::ast::{Literal, RouteKind};
use crate::fwd::resolve;
use crate::net::Proto;
use crate::route::ctx::{AvpName, MsgCtx, ScriptError};
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
/// Every route that handles a transaction's messages, branch routes too.
const RFOB: M = M::REQ_FAIL_ONREPLY.or(M::BRANCH);

/// Longest timer a script may set: a day, in milliseconds.
const MAX_TIMER_MS: i64 = 86_400_000;

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
    // SER 2.x: the next hop as (protocol, "host[:port]"), or both in AVPs.
    FnDef::new("t_replicate_to", 2, 2, R),
    FnDef::new("t_forward_nonack_to", 2, 2, R),
    FnDef::new("t_relay_to_avp", 2, 2, R),
    FnDef::new("t_on_failure", 1, 1, RFO),
    FnDef::new("t_on_negative", 1, 1, RFO),
    FnDef::new("t_on_reply", 1, 1, RFO),
    // SER 2.1: a route run for each new branch, and per-transaction timers.
    FnDef::new("t_on_branch", 1, 1, RF),
    FnDef::new("t_set_fr", 1, 2, RFOB),
    FnDef::new("t_reset_fr", 0, 0, RFOB),
    FnDef::new("t_set_retr", 2, 2, RFOB),
    FnDef::new("t_reset_retr", 0, 0, RFOB),
    // Later 2.x releases: the longest a transaction may wait for a final.
    FnDef::new("t_set_max_lifetime", 2, 2, RFOB),
    FnDef::new("t_reset_max_lifetime", 0, 0, RFOB),
    FnDef::new("t_set_auto_inv_100", 1, 1, R),
    // Later 2.x: fix the edits failure-route branches carry.
    FnDef::new("t_save_lumps", 0, 0, R),
    FnDef::new("t_check_status", 1, 1, RFO),
    // SER 2.1: about the failed branch (failure route only) or any branch
    // (from every route of the transaction, branch routes too).
    FnDef::new("t_branch_timeout", 0, 0, F),
    FnDef::new("t_branch_replied", 0, 0, F),
    // Later 2.x: the failed replies are not picked again.
    FnDef::new("t_drop_replies", 0, 1, F),
    FnDef::new("t_any_timeout", 0, 0, RFOB),
    FnDef::new("t_any_replied", 0, 0, RFOB),
    FnDef::new("t_grep_status", 1, 1, RFOB),
    FnDef::new("t_is_canceled", 0, 0, RFOB),
    FnDef::new("t_newtran", 0, 0, R),
    // SER 2.1 answers from an onreply route too (its t_grep_status example).
    FnDef::new("t_reply", 2, 2, RFO),
    FnDef::new("t_lookup_request", 0, 0, R),
    FnDef::new("t_retransmit_reply", 0, 0, R),
    FnDef::new("t_release", 0, 0, R),
    FnDef::new("t_write_req", 2, 2, RF),
    FnDef::new("t_write_unix", 2, 2, RF),
    // SER 2.1 / 2.x: CANCELs found by their INVITE (request route only).
    FnDef::new("t_relay_cancel", 0, 0, R),
    FnDef::new("t_lookup_cancel", 0, 1, R),
];

fn fixed(def: &FnDef, args: &[Literal]) -> Result<std::net::SocketAddr, FixupError> {
    let host = arg_str(def.name, args, 0)?;
    let port = arg_int_range(def.name, args, 1, 1, 65535, "a port number")? as u16;
    resolve(host.as_bytes(), port).ok_or(FixupError::Resolve {
        host,
        reason: "no address found".into(),
    })
}

/// A protocol named in a script or an AVP: `udp`, `tcp`, `tls` (any
/// case), or SER's numbers for them (1, 2, 3).
fn proto_named(text: &str) -> Option<Proto> {
    match text.to_ascii_lowercase().as_str() {
        "udp" | "1" => Some(Proto::Udp),
        "tcp" | "2" => Some(Proto::Tcp),
        "tls" | "3" => Some(Proto::Tls),
        _ => None,
    }
}

/// `"host[:port]"` (port 5060 when absent, as SER 2.x).
fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p.parse().ok()?),
        _ => (text, 5060),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty() && port != 0).then_some((host, port))
}

/// The 2.x `(proto, "host[:port]")` pair given as literals, resolved at
/// load like every fixed next hop.
fn fixed_to(def: &FnDef, args: &[Literal]) -> Result<Dest, FixupError> {
    let proto_text = arg_str(def.name, args, 0)?;
    let proto = proto_named(&proto_text).ok_or(FixupError::BadArg {
        func: def.name,
        index: 1,
        expected: "udp, tcp or tls",
        found: proto_text,
    })?;
    let hp = arg_str(def.name, args, 1)?;
    let (host, port) = host_port(&hp).ok_or_else(|| FixupError::BadArg {
        func: def.name,
        index: 2,
        expected: "host[:port]",
        found: hp.clone(),
    })?;
    let addr = resolve(host.as_bytes(), port).ok_or(FixupError::Resolve {
        host: host.to_string(),
        reason: "no address found".into(),
    })?;
    Ok(Dest::Fixed(addr, proto))
}

/// An AVP named in a script argument: `$name`, `$avp(name)` or the
/// avpops spelling (`s:name`, `i:N`).
fn avp_arg(def: &FnDef, args: &[Literal], i: usize) -> Result<AvpName, FixupError> {
    let text = arg_str(def.name, args, i)?;
    let bare = text.strip_prefix('$').unwrap_or(&text);
    let bare = bare
        .strip_prefix("avp(")
        .and_then(|b| b.strip_suffix(')'))
        .unwrap_or(bare);
    if bare.is_empty() {
        return Err(FixupError::BadArg {
            func: def.name,
            index: i + 1,
            expected: "an AVP name",
            found: text,
        });
    }
    Ok(AvpName::parse(bare))
}

/// `t_relay_to_avp`: the next hop from two AVPs, resolved now with the
/// bounded resolver (a name in an AVP may come from the message).
fn relay_to_avp(ctx: &mut MsgCtx<'_>, proto: &AvpName, addr: &AvpName) -> i32 {
    let text = |v: Option<&crate::route::ctx::AvpValue>| {
        v.map(|v| match v {
            crate::route::ctx::AvpValue::Int(n) => n.to_string(),
            crate::route::ctx::AvpValue::Str(s) => String::from_utf8_lossy(s).into_owned(),
        })
    };
    let proto = text(ctx.avp(proto))
        .as_deref()
        .map_or(Some(Proto::Udp), proto_named);
    let Some(proto) = proto else {
        return ctx.fail(ScriptError::Uri);
    };
    let Some(hp) = text(ctx.avp(addr)) else {
        return ctx.fail(ScriptError::Uri);
    };
    let Some((host, port)) = host_port(&hp) else {
        return ctx.fail(ScriptError::Uri);
    };
    let Some(a) = crate::fwd::resolve_bounded(host.as_bytes(), port) else {
        return ctx.fail(ScriptError::Resolve);
    };
    relay::relay(ctx, Dest::Fixed(a, proto), false)
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
        RouteKind::Branch => {
            // Consumed by the branches this script invocation creates.
            ctx.tm.on_branch = idx;
            return 1;
        }
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

/// Whether branch `b` got a reply before the one being handled now: for a
/// branch that timed out, any reply; for one failed by a reply, one before
/// it (SER 2.1's "the current reply is not taken into account").
fn replied_in_past(b: &Branch) -> bool {
    let past = if b.flags & bflags::LOCAL_FINAL != 0 {
        bflags::REPLIED
    } else {
        bflags::PAST_REPLY
    };
    b.flags & past != 0
}

/// `t_any_replied`: some branch got a reply, not counting the one being
/// handled. An onreply route runs before its reply is recorded, so there
/// every recorded reply is a past one; a failure route's picked branch
/// has recorded the reply that failed it.
fn any_replied(ctx: &mut MsgCtx<'_>) -> i32 {
    let Some(c) = current(ctx) else { return -1 };
    let st = c.cell().lock();
    let picked = ctx.tm.in_failure.then_some(usize::from(ctx.tm.picked));
    truth(st.tx.live_branches().iter().enumerate().any(|(i, b)| {
        if Some(i) == picked {
            replied_in_past(b)
        } else {
            b.flags & bflags::REPLIED != 0
        }
    }))
}

/// What a timer function does to (fr, fr_inv, t1, t2, INVITE lifetime,
/// other lifetime): `Some(v)` sets v (0 = back to the config's value),
/// `None` leaves it.
type TimerEdit = [Option<u32>; 6];

/// A nonzero value sets, 0 leaves unchanged (`t_set_fr`, `t_set_retr`).
fn nonzero(v: u32) -> Option<u32> {
    (v != 0).then_some(v)
}

fn edit(values: [&mut u32; 6], e: TimerEdit) {
    for (v, change) in values.into_iter().zip(e) {
        if let Some(n) = change {
            *v = n;
        }
    }
}

/// `t_set_fr`/`t_set_retr` and resets: for transactions this script
/// invocation creates, and on the fly for the current one.
fn edit_timers(ctx: &mut MsgCtx<'_>, e: TimerEdit) -> i32 {
    let t = &mut ctx.tm.timers;
    edit(
        [
            &mut t.fr,
            &mut t.fr_inv,
            &mut t.t1,
            &mut t.t2,
            &mut t.life_inv,
            &mut t.life_noninv,
        ],
        e,
    );
    if let (Some(env), Some(c)) = (crate::tm::env::env(), current(ctx)) {
        let mut st = c.cell().lock();
        let mut o = st.tx.overrides();
        // A live transaction has one lifetime: that of its kind.
        let (mut inv, mut noninv) = (o.life, o.life);
        edit(
            [
                &mut o.fr,
                &mut o.fr_inv,
                &mut o.t1,
                &mut o.t2,
                &mut inv,
                &mut noninv,
            ],
            e,
        );
        o.life = if st.tx.is_invite() { inv } else { noninv };
        st.tx.set_overrides(o, &env.params.timers);
        driver::rearm(&c, &st);
    }
    1
}

fn timer_arg(def: &FnDef, args: &[Literal], i: usize, max: i64) -> Result<u32, FixupError> {
    if i >= args.len() {
        return Ok(0);
    }
    Ok(arg_int_range(def.name, args, i, 0, max, "milliseconds")? as u32)
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
            "t_replicate_to" => {
                let dest = fixed_to(f, args)?;
                Box::new(move |ctx: &mut MsgCtx<'_>| relay::relay(ctx, dest, true))
            }
            "t_forward_nonack_to" => {
                let dest = fixed_to(f, args)?;
                Box::new(move |ctx: &mut MsgCtx<'_>| forward_nonack(ctx, dest))
            }
            "t_relay_to_avp" => {
                let (proto, addr) = (avp_arg(f, args, 0)?, avp_arg(f, args, 1)?);
                Box::new(move |ctx: &mut MsgCtx<'_>| relay_to_avp(ctx, &proto, &addr))
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
            "t_branch_replied" => {
                Box::new(|ctx: &mut MsgCtx<'_>| branch_test(ctx, true, replied_in_past))
            }
            "t_any_replied" => Box::new(any_replied),
            "t_on_branch" => {
                let idx = route_arg(f, args, env, RouteKind::Branch)?;
                Box::new(move |ctx: &mut MsgCtx<'_>| arm(ctx, RouteKind::Branch, idx))
            }
            "t_set_fr" => {
                let inv = timer_arg(f, args, 0, MAX_TIMER_MS)?;
                let fr = timer_arg(f, args, 1, MAX_TIMER_MS)?;
                let e = [nonzero(fr), nonzero(inv), None, None, None, None];
                Box::new(move |ctx: &mut MsgCtx<'_>| edit_timers(ctx, e))
            }
            "t_reset_fr" => Box::new(|ctx: &mut MsgCtx<'_>| {
                edit_timers(ctx, [Some(0), Some(0), None, None, None, None])
            }),
            "t_set_retr" => {
                let t1 = timer_arg(f, args, 0, MAX_TIMER_MS)?;
                let t2 = timer_arg(f, args, 1, MAX_TIMER_MS)?;
                let e = [None, None, nonzero(t1), nonzero(t2), None, None];
                Box::new(move |ctx: &mut MsgCtx<'_>| edit_timers(ctx, e))
            }
            "t_reset_retr" => Box::new(|ctx: &mut MsgCtx<'_>| {
                edit_timers(ctx, [None, None, Some(0), Some(0), None, None])
            }),
            "t_save_lumps" => Box::new(relay::save_lumps),
            "t_drop_replies" => {
                // "a" (the default): every reply so far; "l": the round
                // that just failed; "n": none.
                let mode = if args.is_empty() {
                    "a".to_string()
                } else {
                    arg_str(name, args, 0)?
                };
                let all = match mode.as_str() {
                    "a" => Some(true),
                    "l" => Some(false),
                    "n" => None,
                    _ => {
                        return Err(FixupError::BadArg {
                            func: name,
                            index: 1,
                            expected: "\"a\", \"l\" or \"n\"",
                            found: mode,
                        })
                    }
                };
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let (Some(all), Some(c)) = (all, current(ctx)) else {
                        return 1;
                    };
                    c.cell().lock().tx.drop_replies(all);
                    1
                })
            }
            "t_set_max_lifetime" => {
                let inv = timer_arg(f, args, 0, MAX_TIMER_MS)?;
                let noninv = timer_arg(f, args, 1, MAX_TIMER_MS)?;
                let e = [None, None, None, None, nonzero(inv), nonzero(noninv)];
                Box::new(move |ctx: &mut MsgCtx<'_>| edit_timers(ctx, e))
            }
            "t_reset_max_lifetime" => Box::new(|ctx: &mut MsgCtx<'_>| {
                edit_timers(ctx, [None, None, None, None, Some(0), Some(0)])
            }),
            "t_set_auto_inv_100" => {
                let on = arg_int_range(name, args, 0, 0, 1, "0 or 1")? != 0;
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    ctx.tm.auto_inv_100 = Some(on);
                    1
                })
            }
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
            "t_relay_cancel" => Box::new(relay::relay_cancel),
            "t_lookup_cancel" => {
                let inherit = if args.is_empty() {
                    false
                } else {
                    arg_int_range(name, args, 0, 0, 1, "0 or 1")? == 1
                };
                Box::new(move |ctx: &mut MsgCtx<'_>| relay::lookup_cancel(ctx, inherit))
            }
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
        driver::set_failover_runner(crate::tm::hop::failover);
        // With the DNS cache, names it lacks are looked up by the resolver
        // process, not by the worker relaying the request (`tm::hop`).
        if crate::net::dns::cache::enabled() {
            crate::net::dns::queue::init().map_err(|e| ModInitError {
                module: "tm",
                reason: format!("the DNS resolver's queue: {e}"),
            })?;
            crate::net::dns::queue::set_continuation(crate::tm::hop::resolved);
        }
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
