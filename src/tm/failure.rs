//! The failure route (`t_on_failure`, SER 0.8's `t_on_negative`): run the
//! armed route once every branch failed and one was picked, then tell the
//! machine whether the route relayed new branches or replied. It runs
//! scripts and relays, so it stands above both the driver and relaying;
//! the driver calls it through `driver::set_failure_runner`.

use crate::cfg::ast::RouteKind;
use crate::route::interp::run_top;
use crate::route::MsgCtx;
use crate::sip::Msg;
use crate::tm::callbacks::{self, CbEvent};
use crate::tm::cell::{replace_bytes, CellRef};
use crate::tm::driver::{self, execute, rearm, Deferred};
use crate::tm::env::{now, Env};
use crate::tm::fsm::Actions;
use crate::tm::relay;

/// Run the armed failure route (tm docs: the URI starts from its value at
/// relay time), then tell the machine what the route did.
pub fn run(env: &'static Env, cref: &CellRef, picked: u8) -> Deferred {
    let cell = cref.cell();
    let region = env.region;
    let code = {
        let st = cell.lock();
        st.tx
            .branches
            .get(usize::from(picked))
            .map(|b| b.status)
            .unwrap_or(0)
    };
    // Before the route's snapshot: a callback may change the saved flags
    // (acc clears log_missed_flag once the miss is reported, as SER).
    callbacks::fire(CbEvent::OnFailure, cell, code);
    let (base, relay_uri, flags, route, avps, socket_rr) = {
        let st = cell.lock();
        let base = if st.fwd_base.is_empty() {
            cell.req
        } else {
            st.fwd_base
        };
        (
            region.slice(base).to_vec(),
            region.slice(st.relay_uri).to_vec(),
            st.msg_flags,
            st.on_failure,
            driver::stored_avps(region, &st),
            st.tx.flags & crate::tm::fsm::flags::SOCKET_RR != 0,
        )
    };
    let mut replied = false;
    let mut added = false;
    let mut new_flags = flags;
    let mut new_avps = None;
    if let (Some(list), Ok(msg)) = (
        usize::from(route)
            .checked_sub(1)
            .and_then(|i| env.rt.routes.failure.get(i)),
        Msg::parse(base),
    ) {
        let src = cell.src.addr();
        if let Some(rcv) = env.rt.sockets.all().get(usize::from(cell.src.sock)) {
            let mut ctx = MsgCtx::new(env.rt, &msg, src, rcv, RouteKind::Failure);
            if !relay_uri.is_empty() {
                ctx.new_uri = Some(relay_uri);
            }
            ctx.flags = flags;
            ctx.avps = avps.clone();
            ctx.tm.cell = cref.off().get();
            ctx.tm.in_failure = true;
            ctx.tm.reply_code = code;
            ctx.tm.picked = picked;
            if socket_rr {
                crate::route::forward::adopt_record_route(&mut ctx);
            }
            run_top(list, &mut ctx);
            // 0.9 docs: append_branch() alone in a failure route starts the
            // new branch; forward what the route left in the set.
            if !ctx.tm.replied && !ctx.dset.is_empty() {
                relay::forward_dset(&mut ctx);
            }
            replied = ctx.tm.replied;
            added = ctx.tm.branches_added > 0;
            new_flags = ctx.flags;
            if ctx.avps != avps {
                new_avps = Some(crate::route::avp_codec::encode(&ctx.avps));
            }
        }
    }
    let mut def = Deferred::default();
    let mut acts = Actions::new();
    let mut st = cell.lock();
    st.msg_flags = new_flags;
    if let Some(bytes) = new_avps {
        if replace_bytes(region, &mut st.avps, &bytes).is_err() {
            crate::tm::oom::complain("keeping the AVPs");
        }
    }
    st.tx
        .after_failure(added, replied, now(), &env.params.timers, &mut acts);
    execute(env, cell, &mut st, &mut acts, None, &mut def);
    rearm(cref, &st);
    def
}
