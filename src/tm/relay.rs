//! Stateful relaying from the script: `t_newtran`, `t_relay` and its
//! variants, CANCEL and ACK handling, local replies (ser-compat-spec
//! §2.2.3–2.2.6).

use std::net::SocketAddr;

use shm::ShmOff;

use crate::cfg::ast::RouteKind;
use crate::fwd::{edit_via1, next_hops, Hops};
use crate::net::dns::Target;
use crate::net::Proto;
use crate::route::ctx::{AvpName, AvpValue, MsgCtx, ScriptError, TmTimers, MAX_BRANCHES};
use crate::route::forward::{forward_request, via_host_port};
use crate::route::interp::run_top;
use crate::sip::{push_via, HdrKind, Method};
use crate::tm::callbacks::{self, CbEvent};
use crate::tm::cell::{replace_bytes, CellRef, Peer};
use crate::tm::driver::{self, execute, finish, rearm, Deferred};
use crate::tm::env::{env, now, Env};
use crate::tm::fsm::{flags, Actions};
use crate::tm::hop;
use crate::tm::key::{MatchKind, MatchOpts, MsgKey};
use crate::tm::params::UnmatchedCancel;
use crate::tm::reply::{build_local_reply, to_tag};
use crate::tm::store::{self, branch_id, Created, Found};

/// Where branches go.
#[derive(Debug, Clone, Copy)]
pub enum Dest {
    /// Each branch's URI (or dst-URI) decides.
    Uri,
    /// A fixed next hop (`t_relay_to_udp`, `t_replicate`), and its transport.
    Fixed(SocketAddr, Proto),
}

fn opts(env: &Env) -> MatchOpts {
    MatchOpts {
        ruri_matching: env.params.ruri_matching,
        via1_matching: env.params.via1_matching,
    }
}

/// Does a transaction for this request exist already (it is a
/// retransmission)? Admission control asks before refusing a request,
/// so a call it admitted is never refused halfway.
pub fn known_request(msg: &crate::sip::Msg) -> bool {
    let Some(env) = env() else { return false };
    let Ok(mk) = MsgKey::of(msg) else {
        return false;
    };
    matches!(store::lookup(&mk, opts(env), None), Found::Cell(..))
}

/// A reference to the message's current transaction, if any.
pub fn current(ctx: &MsgCtx<'_>) -> Option<CellRef> {
    let env = env()?;
    let off = ShmOff::from_u32(ctx.tm.cell)?;
    Some(CellRef::acquire(env.region, off))
}

fn rcv_index(ctx: &MsgCtx<'_>) -> usize {
    ctx.rt.sockets.index_of(ctx.rcv)
}

/// What `newtran` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewTran {
    Created,
    /// A retransmission: our last reply was resent (or nothing yet).
    Retransmission,
    /// A hop-by-hop ACK (or the ACK of our own 2xx) absorbed.
    AckAbsorbed,
    /// The ACK of a proxied 2xx: pass it on.
    E2eAck,
    /// An ACK matching nothing: pass it on.
    UnmatchedAck,
    /// The message already has its transaction.
    Exists,
}

pub fn newtran(ctx: &mut MsgCtx<'_>) -> Result<NewTran, ScriptError> {
    let env = env().ok_or(ScriptError::Server)?;
    if ctx.tm.cell != 0 {
        return Ok(NewTran::Exists);
    }
    let msg = ctx.msg;
    let mk = MsgKey::of(msg).map_err(|_| ScriptError::Tuple)?;
    if msg.method() == Method::Ack {
        return Ok(match store::lookup(&mk, opts(env), None) {
            Found::Cell(cref, kind) => ack_on(env, &cref, kind, mk.to_tag, msg.buf()),
            Found::None => NewTran::UnmatchedAck,
        });
    }
    let src = Peer::new(ctx.src, rcv_index(ctx));
    match store::create(msg, src, false, ctx.rcv.proto().is_stream(), opts(env)) {
        Ok(Created::New(cref)) => {
            callbacks::fire(CbEvent::RequestIn, cref.cell(), 0);
            ctx.tm.cell = cref.into_raw().get();
            ctx.tm.owns_ref = true;
            Ok(NewTran::Created)
        }
        Ok(Created::Existing(cref, _)) => {
            let mut def = Deferred::default();
            {
                let mut st = cref.cell().lock();
                let mut acts = Actions::new();
                st.tx.on_request_retransmission(&mut acts);
                execute(env, cref.cell(), &mut st, &mut acts, None, &mut def);
            }
            finish(env, &cref, def);
            Ok(NewTran::Retransmission)
        }
        Err(store::StoreError::Tuple) => Err(ScriptError::Tuple),
        Err(store::StoreError::Shm(shm::ShmError::OutOfMemory { .. })) => {
            crate::tm::oom::complain("for a new transaction");
            Err(ScriptError::OutOfMemory)
        }
        Err(e) => {
            log::error!("tm: cannot create a transaction: {e}");
            Err(ScriptError::Server)
        }
    }
}

/// An ACK found `cref`: absorb it, or let it pass end to end.
fn ack_on(
    env: &'static Env,
    cref: &CellRef,
    kind: MatchKind,
    to_tag_in: &[u8],
    ack: &[u8],
) -> NewTran {
    let cell = cref.cell();
    let mut def = Deferred::default();
    let verdict = {
        let mut st = cell.lock();
        let status = st.tx.uas_status;
        let local = st.tx.picked == 0xff;
        let ours = to_tag_in.starts_with(env.tag.as_bytes());
        let absorb = match kind {
            MatchKind::Same if status >= 300 => true,
            _ if (200..300).contains(&status) && local && ours => true,
            _ => false,
        };
        if absorb {
            let mut acts = Actions::new();
            st.tx.on_ack(now(), &env.params.timers, &mut acts);
            execute(env, cell, &mut st, &mut acts, None, &mut def);
            rearm(cref, &st);
            NewTran::AckAbsorbed
        } else if (200..300).contains(&status) {
            NewTran::E2eAck
        } else {
            NewTran::UnmatchedAck
        }
    };
    finish(env, cref, def);
    if verdict == NewTran::E2eAck {
        callbacks::fire_msg(CbEvent::E2eAckIn, cell, 0, Some(ack));
    }
    verdict
}

/// Send a reply built here upstream for the current transaction.
pub fn reply_local(ctx: &mut MsgCtx<'_>, code: u16, reason: &[u8]) -> i32 {
    reply_local_with(ctx, code, reason, b"")
}

/// [`reply_local`] with `more` header lines (each ending in CRLF).
fn reply_local_with(ctx: &mut MsgCtx<'_>, code: u16, reason: &[u8], more: &[u8]) -> i32 {
    let (Some(env), Some(cref)) = (env(), current(ctx)) else {
        return -1;
    };
    if !ctx.msg.is_request() {
        // An onreply route (SER 2.1's t_grep_status example): answer from
        // the transaction's own request, not from the reply at hand.
        let bytes = driver::local_reply_bytes(env, cref.cell(), code, reason);
        if bytes.is_empty() || !send_local_reply(env, &cref, code, &bytes) {
            return -1;
        }
        return 1;
    }
    if ctx.msg.method() == Method::Ack {
        return -1;
    }
    let cell = cref.cell();
    let mut extra = ctx.reply_hdrs.clone();
    extra.extend_from_slice(more);
    if (300..400).contains(&code) {
        extra.extend_from_slice(&ctx.redirect_contacts());
    }
    let built = build_local_reply(env, ctx.msg, cell.src.addr(), code, reason, &extra);
    // `code` becomes 500 if the reply asked for is too large to send.
    let (bytes, code) = match built {
        Ok(b) => (b.bytes, b.code),
        Err(e) => {
            log::error!("tm: cannot build a {code} reply: {e}");
            return -1;
        }
    };
    if !send_local_reply(env, &cref, code, &bytes) {
        return -1;
    }
    if code >= 200 {
        ctx.tm.replied = true;
    }
    1
}

/// Send `bytes`, a reply with status `code` built here, upstream for the
/// transaction `cref` (also what the FIFO's `t_reply` uses). `false` when
/// a final was already sent and this one may not follow it.
pub fn send_local_reply(env: &'static Env, cref: &CellRef, code: u16, bytes: &[u8]) -> bool {
    let cell = cref.cell();
    let mut def = Deferred::default();
    {
        let mut st = cell.lock();
        if st.tx.uas_status >= 200 && code >= 200 && !(200..300).contains(&code) {
            return false;
        }
        driver::keep_uas_reply(env.region, &mut st, bytes);
        crate::tm::env::send_peer(env, &cell.src, bytes);
        crate::tm::stats::note_sent(code);
        let mut acts = Actions::new();
        st.tx
            .on_local_reply(code, now(), &env.params.timers, &mut acts);
        execute(env, cell, &mut st, &mut acts, None, &mut def);
        rearm(cref, &st);
    }
    finish(env, cref, def);
    if code >= 200 {
        if let Some(s) = crate::tm::stats::stats() {
            s.replied_locally
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    callbacks::fire(CbEvent::ResponseOut, cell, code);
    true
}

/// The error reply SER sends when relaying failed (tag `TM`).
fn error_reply(ctx: &mut MsgCtx<'_>) {
    let err = if ctx.last_error == ScriptError::None {
        ScriptError::Send
    } else {
        ctx.last_error
    };
    let (code, _) = err.reply();
    let reason = err.reason_with_tag("TM");
    reply_local_with(ctx, code, reason.as_bytes(), err.reply_headers());
}

/// `t_relay` and friends in a request route (or a failure route).
pub fn relay(ctx: &mut MsgCtx<'_>, dest: Dest, replicate: bool) -> i32 {
    let Some(env) = env() else {
        return ctx.fail(ScriptError::Server);
    };
    if ctx.tm.in_failure {
        // New branches come from the destination set only; a fixed next
        // hop (`t_relay_to_udp(host, port)`) still decides where they go.
        return if forward_all(ctx, dest, false) > 0 {
            1
        } else {
            -1
        };
    }
    let method = ctx.msg.method();
    if method == Method::Cancel && ctx.tm.cell == 0 {
        if let Some(r) = cancel(ctx, env, dest) {
            return r;
        }
    }
    match newtran(ctx) {
        Err(e) => return ctx.fail(e),
        Ok(NewTran::Retransmission) => return 1,
        Ok(NewTran::AckAbsorbed) => return 0,
        Ok(NewTran::E2eAck) | Ok(NewTran::UnmatchedAck) => {
            let r = stateless(ctx, dest);
            return if r > 0 { 0 } else { r };
        }
        Ok(NewTran::Created) | Ok(NewTran::Exists) => {}
    }
    if replicate {
        if let Some(c) = current(ctx) {
            c.cell().lock().tx.flags |= flags::NO_RELAY;
        }
    }
    let auto_100 = ctx.tm.auto_inv_100.unwrap_or(env.params.auto_inv_100);
    if method == Method::Invite && auto_100 && !replicate {
        let sent = current(ctx)
            .map(|c| c.cell().lock().tx.uas_status)
            .unwrap_or(0);
        if sent == 0 {
            reply_local(ctx, 100, b"trying -- your call is important to us");
        }
    }
    if forward_all(ctx, dest, true) > 0 {
        return 1;
    }
    if !replicate {
        error_reply(ctx);
    }
    0
}

/// A CANCEL: find its INVITE; `None` means "relay it as any request"
/// (`unmatched_cancel=0`, SER 0.9's t_relay: ser-compat-spec §2.2.4).
fn cancel(ctx: &mut MsgCtx<'_>, env: &'static Env, dest: Dest) -> Option<i32> {
    if let Some(inv) = cancel_target(ctx.msg) {
        return Some(cancel_invite(ctx, env, &inv));
    }
    match env.params.unmatched_cancel {
        UnmatchedCancel::Stateful => None,
        UnmatchedCancel::Stateless => Some(stateless(ctx, dest)),
        UnmatchedCancel::Drop => {
            log::debug!("tm: dropping a CANCEL that matches no INVITE (unmatched_cancel=2)");
            Some(0)
        }
    }
}

/// The INVITE transaction the CANCEL `msg` refers to, if there is one.
pub fn cancel_target(msg: &crate::sip::Msg) -> Option<CellRef> {
    let env = env()?;
    let mk = MsgKey::of(msg).ok()?;
    match store::lookup(&mk, opts(env), Some(MatchKind::CancelTarget)) {
        Found::Cell(c, _) => Some(c),
        Found::None => None,
    }
}

/// CANCEL the transaction `inv` for the CANCEL being processed and answer
/// that CANCEL 200: 1 when done (or a retransmitted CANCEL was answered
/// again), negative on error.
fn cancel_invite(ctx: &mut MsgCtx<'_>, env: &'static Env, inv: &CellRef) -> i32 {
    // With shm full the CANCEL gets no transaction of its own, yet it
    // still ends the call: ending calls is what gives the memory back.
    // Its 200 then goes out statelessly; a retransmitted CANCEL comes
    // through here again and gets another.
    let stateful = match newtran(ctx) {
        Ok(NewTran::Retransmission) => return 1,
        Ok(NewTran::Created) | Ok(NewTran::Exists) => true,
        Ok(_) => return 1,
        Err(ScriptError::OutOfMemory) => false,
        Err(e) => return ctx.fail(e),
    };
    let n = cancel_cell(env, inv);
    let reason: &[u8] = if n > 0 {
        b"canceling"
    } else {
        b"ok -- no more pending branches"
    };
    if stateful {
        reply_local(ctx, 200, reason);
    } else {
        match build_local_reply(env, ctx.msg, ctx.src, 200, reason, b"") {
            Ok(bytes) => {
                crate::tm::env::send_peer(env, &Peer::new(ctx.src, rcv_index(ctx)), &bytes.bytes);
            }
            Err(e) => log::error!("tm: cannot build the 200 for a CANCEL: {e}"),
        }
    }
    1
}

/// Cancel the INVITE transaction `inv` (an upstream CANCEL, the FIFO's
/// `t_uac_cancel`): its pending branches are CANCELed as
/// `cancel_b_method` says. Returns how many CANCELs went out now.
pub fn cancel_cell(env: &'static Env, inv: &CellRef) -> usize {
    let mut def = Deferred::default();
    let n = {
        let mut st = inv.cell().lock();
        let mut acts = Actions::new();
        let n = st.tx.on_cancel(now(), &env.params.timers, &mut acts);
        execute(env, inv.cell(), &mut st, &mut acts, None, &mut def);
        rearm(inv, &st);
        n
    };
    finish(env, inv, def);
    n
}

/// `t_relay_cancel()` (SER 2.1): for a CANCEL whose INVITE transaction
/// exists, cancel it, answer the CANCEL and return 0 so the script ends
/// there; 1 (go on with the script) when there is no such transaction or
/// the request is no CANCEL; negative on error.
pub fn relay_cancel(ctx: &mut MsgCtx<'_>) -> i32 {
    let Some(env) = env() else {
        return ctx.fail(ScriptError::Server);
    };
    if ctx.msg.method() != Method::Cancel {
        return 1;
    }
    match cancel_target(ctx.msg) {
        Some(inv) => match cancel_invite(ctx, env, &inv) {
            r if r > 0 => 0,
            r => r,
        },
        None => 1,
    }
}

/// `t_lookup_cancel([1])` (SER 2.x): whether the INVITE transaction a
/// CANCEL refers to exists; with `inherit`, the CANCEL takes the script
/// flags the INVITE was relayed with (so a script that handles the
/// CANCEL itself treats it as its INVITE).
pub fn lookup_cancel(ctx: &mut MsgCtx<'_>, inherit: bool) -> i32 {
    if ctx.msg.method() != Method::Cancel {
        return -1;
    }
    let Some(inv) = cancel_target(ctx.msg) else {
        return -1;
    };
    if inherit {
        ctx.flags = inv.cell().lock().msg_flags;
    }
    1
}

/// Pass a request on without a transaction.
fn stateless(ctx: &mut MsgCtx<'_>, dest: Dest) -> i32 {
    let (addr, proto) = match dest {
        Dest::Fixed(a, p) => (a, p),
        Dest::Uri => match crate::route::forward::uri_destination(ctx, None) {
            Ok(d) => d,
            Err(e) => return ctx.fail(e),
        },
    };
    forward_request(ctx, addr, proto)
}

/// Branches from the destination set only (failure routes, 0.9's
/// `append_branch()` without `t_relay`).
pub fn forward_dset(ctx: &mut MsgCtx<'_>) -> i32 {
    forward_all(ctx, Dest::Uri, false)
}

/// A branch ready to go: its request built, its next hops chosen (or
/// being looked up).
struct Prepared {
    /// The branch index its Via's branch id was built for.
    index: u8,
    bytes: Vec<u8>,
    /// The addresses to try in order, or the lookup that will give them.
    hops: Hops,
    sock_idx: usize,
    /// Sent over TCP/TLS: the branch is not retransmitted.
    reliable: bool,
}

/// Create and send branches: the R-URI (first relay only) and every
/// destination-set entry. Returns how many went out.
///
/// Branch requests are built without the cell's lock held: the branch
/// route runs script functions that take it (`t_set_fr`). Only the
/// process handling the request (or its failure route) adds branches, so
/// the indices read before building are still free when they are added.
pub fn forward_all(ctx: &mut MsgCtx<'_>, dest: Dest, with_ruri: bool) -> i32 {
    let (Some(env), Some(cref)) = (env(), current(ctx)) else {
        return 0;
    };
    let cell = cref.cell();
    let mut targets: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(1 + ctx.dset.len());
    if with_ruri {
        targets.push((ctx.ruri().to_vec(), ctx.dst_uri.clone()));
    }
    targets.extend(ctx.dset.drain(..).map(|b| (b.uri, b.dst_uri)));
    let first_index = {
        let mut st = cell.lock();
        if with_ruri && st.relay_uri.is_empty() {
            first_relay(ctx, env, &mut st);
        }
        if ctx.tm.in_failure && ctx.tm.on_failure != 0 {
            st.on_failure = ctx.tm.on_failure;
            st.tx.flags |= flags::FAILURE_ROUTE;
        }
        st.tx.nbranches
    };
    let mut ready = Vec::with_capacity(targets.len());
    let mut dropped = false;
    for (uri, dst_uri) in targets {
        let index = first_index.saturating_add(ready.len() as u8);
        if usize::from(index) >= MAX_BRANCHES {
            ctx.last_error = ScriptError::Branches;
            break;
        }
        match prepare_branch(ctx, env, cell, dest, index, uri, dst_uri) {
            Ok(Some(p)) => ready.push(p),
            Ok(None) => dropped = true,
            Err(e) => ctx.last_error = e,
        }
    }
    let mut sent = 0;
    let mut waiting = Vec::new();
    let mut def = Deferred::default();
    {
        let mut st = cell.lock();
        for p in ready {
            if st.tx.nbranches != p.index {
                log::error!("tm: branch {} was added elsewhere meanwhile", p.index);
                ctx.last_error = ScriptError::Server;
                break;
            }
            let (b, i) = (p.index, usize::from(p.index));
            if replace_bytes(env.region, &mut st.br[i].request, &p.bytes).is_err() {
                crate::tm::oom::complain("for a branch");
                ctx.last_error = ScriptError::OutOfMemory;
                break;
            }
            // The socket is known (the Via names it); the address may not be yet.
            st.br[i].dst = Peer::new(SocketAddr::from(([0, 0, 0, 0], 0)), p.sock_idx);
            // Registered before the send: the reply may beat sendto() back
            // (it waits for this lock). A branch waiting for its address
            // is added blind: nothing to retransmit until it has one.
            let blind = matches!(p.hops, Hops::Pending(_));
            if st
                .tx
                .add_branch(now(), &env.params.timers, p.reliable, blind)
                .is_err()
            {
                break;
            }
            match p.hops {
                Hops::Pending(q) => {
                    waiting.push((b, q));
                    sent += 1;
                }
                Hops::Ready(targets) => {
                    if hop::launch(env, cell, &mut st, b, &targets, &mut def) {
                        sent += 1;
                    } else {
                        ctx.last_error = ScriptError::Send;
                    }
                }
            }
        }
        rearm(&cref, &st);
    }
    finish(env, &cref, def);
    // With the lock released: the resolver process may answer at once.
    for (b, q) in waiting {
        hop::wait_for(env, &cref, b, &q);
    }
    if sent == 0 && dropped && ctx.last_error == ScriptError::None {
        // Every branch was dropped by the branch route: nothing to relay.
        ctx.last_error = ScriptError::Server;
    }
    ctx.tm.branches_added = ctx.tm.branches_added.saturating_add(sent as u8);
    sent
}

/// The first relay of a transaction: what it keeps from the script (the
/// R-URI, flags, AVPs, timers, armed routes and, for the failure route,
/// the request as the script edited it).
fn first_relay(ctx: &MsgCtx<'_>, env: &Env, st: &mut crate::tm::cell::CellState) {
    let _ = replace_bytes(env.region, &mut st.relay_uri, ctx.ruri());
    st.msg_flags = ctx.flags;
    apply_timer_avps(ctx, env, &mut st.tx);
    apply_script_timers(ctx, env, &mut st.tx);
    if !ctx.avps.is_empty() {
        let bytes = crate::route::avp_codec::encode(&ctx.avps);
        if replace_bytes(env.region, &mut st.avps, &bytes).is_err() {
            crate::tm::oom::complain("keeping the AVPs");
        }
    }
    if ctx.tm.on_reply != 0 {
        st.on_reply = ctx.tm.on_reply;
    }
    if ctx.tm.on_failure != 0 {
        st.on_failure = ctx.tm.on_failure;
        st.tx.flags |= flags::FAILURE_ROUTE;
        if !ctx.tm.lumps_saved {
            keep_edits(ctx, env, st);
        }
        if ctx.socket_rr.is_some() {
            st.tx.flags |= flags::SOCKET_RR;
        }
    }
}

/// The request as the script has edited it so far becomes the base of
/// branches a failure route adds (none kept = the received request).
fn keep_edits(ctx: &MsgCtx<'_>, env: &Env, st: &mut crate::tm::cell::CellState) {
    if ctx.lumps.is_empty() {
        return;
    }
    let mut base = Vec::with_capacity(ctx.msg.buf().len() + 128);
    if ctx.lumps.apply(ctx.msg.buf(), &mut base).is_ok()
        && replace_bytes(env.region, &mut st.fwd_base, &base).is_err()
    {
        crate::tm::oom::complain("keeping the edited request");
    }
}

/// `t_save_lumps()` (later 2.x): the edits made so far are what
/// failure-route branches will carry; edits after it reach only the
/// branches t_relay sends from this route. Needs the transaction
/// (`t_newtran` first): -1 without one.
pub fn save_lumps(ctx: &mut MsgCtx<'_>) -> i32 {
    let (Some(env), Some(cref)) = (env(), current(ctx)) else {
        log::warn!("tm: t_save_lumps() without a transaction (call t_newtran() first)");
        return -1;
    };
    let mut st = cref.cell().lock();
    keep_edits(ctx, env, &mut st);
    ctx.tm.lumps_saved = true;
    1
}

/// Build branch `index` towards `uri`: run the armed branch route on a
/// copy of the script's state (its edits belong to this branch only),
/// then choose the next hop and build the request. `Ok(None)`: the
/// branch route dropped the branch.
fn prepare_branch(
    ctx: &MsgCtx<'_>,
    env: &Env,
    cell: &crate::tm::cell::Cell,
    dest: Dest,
    index: u8,
    uri: Vec<u8>,
    dst_uri: Option<Vec<u8>>,
) -> Result<Option<Prepared>, ScriptError> {
    let route = usize::from(ctx.tm.on_branch)
        .checked_sub(1)
        .and_then(|i| env.rt.routes.branch.get(i));
    let mut bctx;
    let (bx, uri, dst_uri) = match route {
        None => (ctx, uri, dst_uri),
        Some(list) => {
            bctx = MsgCtx::new(ctx.rt, ctx.msg, ctx.src, ctx.rcv, RouteKind::Branch);
            bctx.new_uri = Some(uri);
            bctx.dst_uri = dst_uri;
            bctx.flags = ctx.flags;
            bctx.lumps = ctx.lumps.clone();
            bctx.force_rport = ctx.force_rport;
            bctx.send_sock = ctx.send_sock;
            bctx.adv_addr = ctx.adv_addr.clone();
            bctx.adv_port = ctx.adv_port;
            bctx.avps = ctx.avps.clone();
            bctx.tm.cell = ctx.tm.cell;
            bctx.tm.in_failure = ctx.tm.in_failure;
            bctx.rr = ctx.rr;
            bctx.socket_rr = ctx.socket_rr.clone();
            if run_top(list, &mut bctx) == 0 {
                return Ok(None);
            }
            let uri = bctx.ruri().to_vec();
            let dst_uri = bctx.dst_uri.clone();
            (&bctx, uri, dst_uri)
        }
    };
    let hops = match dest {
        Dest::Fixed(addr, proto) => Hops::Ready(vec![Target { addr, proto }]),
        Dest::Uri => {
            next_hops(dst_uri.as_deref().unwrap_or(&uri), None).map_err(ScriptError::from)?
        }
    };
    // The socket the Via is built for: the first address's, or while the
    // name is looked up the transport's (IPv4 first, as the lookup's A
    // records come before AAAA).
    let (addr, proto) = match &hops {
        Hops::Ready(t) => {
            let first = t.first().ok_or(ScriptError::Send)?;
            (first.addr, first.proto)
        }
        Hops::Pending(q) => (
            SocketAddr::from(([0, 0, 0, 0], 0)),
            q.proto
                .unwrap_or(if q.sips { Proto::Tls } else { Proto::Udp }),
        ),
    };
    let Some(sock) = crate::fwd::pick_socket(&env.rt.sockets, bx.send_sock, proto, &addr) else {
        crate::warn_limited!("tm: {proto} is not served (no listen address of that transport)");
        return Err(ScriptError::Send);
    };
    let label = cell.label.load(std::sync::atomic::Ordering::Relaxed);
    let bytes =
        branch_request(bx, cell.hash, label, index, &uri, sock).ok_or(ScriptError::Server)?;
    Ok(Some(Prepared {
        index,
        bytes,
        hops,
        sock_idx: env.rt.sockets.index_of(sock),
        reliable: proto.is_stream(),
    }))
}

/// Seconds in an FR AVP → milliseconds (tm docs: the AVPs stay seconds
/// in every version); absent, zero or nonsense → no override.
pub fn fr_from_avp(v: Option<&AvpValue>) -> Option<u32> {
    let secs = v?.as_int()?;
    u32::try_from(secs)
        .ok()
        .filter(|s| *s > 0)
        .map(|s| s.saturating_mul(1000))
}

/// `t_set_fr`/`t_set_retr`/`t_set_max_lifetime` called before the
/// transaction had a branch:
/// they override the AVPs (the script said so last).
fn apply_script_timers(ctx: &MsgCtx<'_>, env: &Env, tx: &mut crate::tm::fsm::Tx) {
    let want = ctx.tm.timers;
    if want == TmTimers::default() {
        return;
    }
    let mut o = tx.overrides();
    let life = if tx.is_invite() {
        want.life_inv
    } else {
        want.life_noninv
    };
    for (to, from) in [
        (&mut o.fr, want.fr),
        (&mut o.fr_inv, want.fr_inv),
        (&mut o.t1, want.t1),
        (&mut o.t2, want.t2),
        (&mut o.life, life),
    ] {
        if from != 0 {
            *to = from;
        }
    }
    tx.set_overrides(o, &env.params.timers);
}

/// `fr_timer_avp`/`fr_inv_timer_avp`: per-transaction FR timers, read
/// when the request is relayed. A set AVP also makes FR expiry noisy.
fn apply_timer_avps(ctx: &MsgCtx<'_>, env: &Env, tx: &mut crate::tm::fsm::Tx) {
    if ctx.avps.is_empty() {
        return;
    }
    let fr = fr_from_avp(ctx.avp(&AvpName::parse(&env.params.fr_timer_avp)));
    let fr_inv = fr_from_avp(ctx.avp(&AvpName::parse(&env.params.fr_inv_timer_avp)));
    if let Some(ms) = fr {
        tx.fr_override = ms;
        tx.flags |= flags::NOISY_FORCED;
    }
    if let Some(ms) = fr_inv {
        tx.fr_inv_override = ms;
        tx.flags |= flags::NOISY_FORCED;
    }
}

/// The bytes of branch `b`: the request with the script's edits, the
/// sender's Via fixed up, our Via (with the branch id) on top, R-URI `uri`.
fn branch_request(
    ctx: &MsgCtx<'_>,
    hash: u32,
    label: u32,
    b: u8,
    uri: &[u8],
    sock: &crate::net::ListenSocket,
) -> Option<Vec<u8>> {
    let msg = ctx.msg;
    let via1 = msg.via1().ok()?;
    let first_via = msg.header(HdrKind::Via)?;
    let mut lumps = ctx.lumps.clone();
    edit_via1(msg, via1, ctx.src, ctx.marks_rport(), &mut lumps);
    crate::route::forward::double_record_route(ctx, sock, &mut lumps);
    let (host, port) = via_host_port(ctx, sock);
    let mut via = Vec::with_capacity(96);
    push_via(
        &mut via,
        sock.proto().via_name(),
        &host,
        port,
        branch_id(hash, label, b).as_bytes(),
        b"",
    );
    lumps.insert(first_via.line.start as usize, &via);
    if uri != msg.ruri() {
        lumps.replace(msg.ruri_span(), uri);
    }
    let mut out = Vec::with_capacity(msg.buf().len() + 256);
    lumps.apply(msg.buf(), &mut out).ok()?;
    Some(out)
}

/// After the request route: a transaction nobody forwarded or answered is
/// released (SER warns), and the processing's reference is dropped.
pub fn post_script(ctx: &mut MsgCtx<'_>) {
    if !ctx.tm.owns_ref || ctx.tm.cell == 0 {
        return;
    }
    let Some(env) = env() else { return };
    let Some(off) = ShmOff::from_u32(ctx.tm.cell) else {
        return;
    };
    let cref = CellRef::adopt(env.region, off);
    ctx.tm.cell = 0;
    ctx.tm.owns_ref = false;
    let mut def = Deferred::default();
    {
        let mut st = cref.cell().lock();
        if st.tx.nbranches == 0 && st.tx.uas_status < 200 {
            log::warn!("tm: transaction created but neither relayed nor answered: released");
            let mut acts = Actions::new();
            st.tx.release(now(), &env.params.timers, &mut acts);
            execute(env, cref.cell(), &mut st, &mut acts, None, &mut def);
        }
        rearm(&cref, &st);
    }
    finish(env, &cref, def);
}

/// tm's To-tag for the current request (for `t_reply` callers that need it).
pub fn current_to_tag(ctx: &MsgCtx<'_>) -> Option<String> {
    env().map(|e| to_tag(e, ctx.msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fr_avps_are_seconds() {
        assert_eq!(fr_from_avp(Some(&AvpValue::Int(2))), Some(2000));
        assert_eq!(
            fr_from_avp(Some(&AvpValue::Str(b"15".to_vec()))),
            Some(15_000)
        );
        assert_eq!(fr_from_avp(Some(&AvpValue::Int(0))), None);
        assert_eq!(fr_from_avp(Some(&AvpValue::Str(b"x".to_vec()))), None);
        assert_eq!(fr_from_avp(None), None);
        assert_eq!(AvpName::parse("i:12"), AvpName::Int(12));
        assert_eq!(
            AvpName::parse("s:callee_fr_timer"),
            AvpName::Str(b"callee_fr_timer".to_vec())
        );
        assert_eq!(
            AvpName::parse("callee_fr_timer"),
            AvpName::Str(b"callee_fr_timer".to_vec())
        );
    }
}
