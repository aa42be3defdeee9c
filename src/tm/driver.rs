//! The driver: lock a cell, feed its machine one event, carry out the
//! actions, re-arm the cell's timer — then, with the lock released, do what
//! must not run under it (failure routes, unlinking).
//!
//! Replies are relayed while the reply lock is held, so two replies of one
//! transaction always leave in the order the machine decided them, even
//! when two processes received them.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use shm::{Region, ShmOff, TimerLink};

use crate::cfg::ast::RouteKind;
use crate::fwd::without_top_via;
use crate::route::ctx::{AvpName, AvpValue, RETRY_AFTER};
use crate::route::interp::run_top;
use crate::route::{MsgCtx, Runtime};
use crate::sip::{build_ack_cancel, HdrKind, HopRequest, Method, Msg, MAX_REPLY_LEN};
use crate::tm::ac_hdrs::copy_prefixed;
use crate::tm::callbacks::{self, CbEvent};
use crate::tm::cell::{replace_bytes, Cell, CellRef, CellState, Peer};
use crate::tm::challenge::{is_challenge, merge_challenges};
use crate::tm::env::{env, now, send_peer, Env};
use crate::tm::fsm::{Action, Actions, Phase};
use crate::tm::params::TmParams;
use crate::tm::reply::build_local_reply;
use crate::tm::store;

/// Timer kind of tm cells in the shared wheel.
pub const TIMER_KIND: u32 = 1;

/// Runs a transaction's failure route once a branch was picked and tells
/// the machine what the route did. It runs scripts and relays new
/// branches, so it lives above the driver (`tm::failure`); the driver
/// reaches it through this hook, set once before the fork.
pub type FailureRunner = fn(&'static Env, &CellRef, u8) -> Deferred;

static FAILURE_RUNNER: OnceLock<FailureRunner> = OnceLock::new();

/// Install the failure-route runner. Once, before the fork.
pub fn set_failure_runner(run: FailureRunner) {
    let _ = FAILURE_RUNNER.set(run);
}

/// Sends a failed branch's request to its next DNS address as a new
/// branch (`use_dns_failover`) and tells the machine whether it could
/// (`tm::hop`, above the driver like the failure route).
pub type FailoverRunner = fn(&'static Env, &CellRef, u8) -> Deferred;

static FAILOVER_RUNNER: OnceLock<FailoverRunner> = OnceLock::new();

/// Install the failover runner. Once, before the fork.
pub fn set_failover_runner(run: FailoverRunner) {
    let _ = FAILOVER_RUNNER.set(run);
}

/// Set tm's environment up and register its timer handler. Once, before
/// the fork.
pub fn init(rt: &'static Runtime, region: &'static Region, params: TmParams) -> bool {
    crate::tm::env::init(rt, region, params) && crate::timer::register(TIMER_KIND, on_timer_fired)
}

/// What has to wait until the reply lock is released.
#[derive(Debug, Default)]
pub struct Deferred {
    pub failure: Option<u8>,
    /// A branch to fail over to its next DNS address (`tm::hop`).
    pub failover: Option<u8>,
    pub terminate: bool,
    pub completed: Option<u16>,
    /// A local UAC transaction ended: (report kind, parameter, final reply).
    pub uac: Option<(u32, Vec<u8>, Vec<u8>)>,
}

/// The reply being processed, when the event is a reply.
pub struct ReplyIn<'m> {
    pub msg: &'m Msg,
    /// The reply without our Via, ready to go upstream.
    pub upstream: &'m [u8],
}

fn class_of(code: u16) -> usize {
    usize::from(code / 100).min(6)
}

/// Carry out `acts` for `cell` (its state locked as `st`).
pub fn execute(
    env: &Env,
    cell: &Cell,
    st: &mut CellState,
    acts: &mut Actions,
    reply: Option<&ReplyIn<'_>>,
    def: &mut Deferred,
) {
    let region = env.region;
    // The machine has already moved; counting first means that whoever
    // sees a reply this sends also sees the figures that go with it.
    sync_wait_gauge(st);
    for a in acts.drain() {
        match a {
            Action::RetransmitRequest(b) => {
                let br = st.br[usize::from(b)];
                send_peer(env, &br.dst, region.slice(br.request));
            }
            Action::RetransmitCancel(b) => {
                let i = usize::from(b);
                let kept = region.slice(st.br[i].cancel);
                if !kept.is_empty() {
                    send_peer(env, &st.br[i].dst, kept);
                } else if let Some(out) = cancel_of(env, st, i) {
                    // Its copy could not be kept (shm full): build it again.
                    send_peer(env, &st.br[i].dst, &out);
                }
            }
            Action::SendCancel(b) => {
                let i = usize::from(b);
                let Some(out) = cancel_of(env, st, i) else {
                    continue;
                };
                if replace_bytes(region, &mut st.br[i].cancel, &out).is_err() {
                    crate::tm::oom::complain("storing a CANCEL");
                }
                send_peer(env, &st.br[i].dst, &out);
            }
            Action::SendAck(b) => {
                let i = usize::from(b);
                let Some(r) = reply else { continue };
                let to = r.msg.header(HdrKind::To).map(|h| r.msg.value(h));
                let Ok(req) = Msg::parse(region.slice(st.br[i].request).to_vec()) else {
                    continue;
                };
                let mut out = Vec::with_capacity(512);
                if build_ack_cancel(&req, HopRequest::Ack, to, user_agent(env), &mut out).is_ok() {
                    copy_prefixed(&req, &env.params.ac_extra_hdrs, &mut out);
                    send_peer(env, &st.br[i].dst, &out);
                }
            }
            Action::StoreReply(b) => {
                if let Some(r) = reply {
                    if replace_bytes(region, &mut st.br[usize::from(b)].reply, r.upstream).is_err()
                    {
                        crate::tm::oom::complain("storing a reply");
                    }
                }
            }
            Action::StoreLocalReply { branch, code } => {
                let bytes = local_reply_bytes(env, cell, code, reason_of(code));
                if replace_bytes(region, &mut st.br[usize::from(branch)].reply, &bytes).is_err() {
                    crate::tm::oom::complain("storing a local reply");
                }
            }
            Action::Unanswered(b) => {
                if let Some(br) = st.br.get(usize::from(b)) {
                    crate::tm::blst::on_unanswered(env, cell.method, br.dst.addr());
                }
            }
            Action::RunOnReply(_) => {}
            Action::RelayReceived(_) => {
                if let Some(r) = reply {
                    relay_up(env, cell, st, r.upstream, r.msg.status());
                    callbacks::fire(CbEvent::ResponseFwded, cell, r.msg.status());
                }
            }
            Action::RelayStored { branch, as_code } => {
                let stored = region.slice(st.br[usize::from(branch)].reply).to_vec();
                let code = st
                    .tx
                    .branches
                    .get(usize::from(branch))
                    .map(|b| b.status)
                    .unwrap_or(0);
                let bytes = if as_code != code || stored.is_empty() {
                    local_reply_bytes(env, cell, as_code, reason_of(as_code))
                } else if env.params.aggregate_challenges && is_challenge(code) {
                    with_all_challenges(env, st, branch, stored)
                } else {
                    stored
                };
                relay_up(env, cell, st, &bytes, as_code);
                callbacks::fire(CbEvent::ResponseFwded, cell, as_code);
            }
            Action::RunFailure { picked } => def.failure = Some(picked),
            Action::Failover(b) => def.failover = Some(b),
            Action::ResendUasReply => {
                send_peer(env, &cell.src, &final_reply_again(env, cell, st));
            }
            Action::Completed { code } => {
                if let Some(s) = crate::tm::stats::stats() {
                    s.completed[class_of(code)].fetch_add(1, Ordering::Relaxed);
                }
                def.completed = Some(code);
                if let Some(r) = reply {
                    ack_local_2xx(env, cell, st, r.msg, code);
                }
                if st.uac_cb != 0 {
                    // A UAC transaction has one branch: completing on
                    // anything but a received reply means the final was
                    // made here (FR timeout, send failure), which reports
                    // say by giving no reply text.
                    let reply_bytes = reply.map(|r| r.upstream.to_vec()).unwrap_or_default();
                    def.uac = Some((st.uac_cb, region.slice(st.uac_param).to_vec(), reply_bytes));
                }
            }
            Action::Terminate => def.terminate = true,
        }
    }
}

/// The picked 401/407 (`stored`, from branch `picked`) with the
/// challenges of every other branch that ended in 401/407 (RFC 3261 16.7
/// step 7). With no other such branch it goes as it is; a merge that
/// would not fit a datagram falls back to it too, since one challenge
/// the caller can answer beats a reply that cannot be sent.
fn with_all_challenges(env: &Env, st: &CellState, picked: u8, stored: Vec<u8>) -> Vec<u8> {
    let others: Vec<&[u8]> = st
        .tx
        .branches
        .iter()
        .take(usize::from(st.tx.nbranches))
        .enumerate()
        .filter(|(i, b)| {
            *i != usize::from(picked) && b.is_final() && b.dropped == 0 && is_challenge(b.status)
        })
        .filter_map(|(i, _)| st.br.get(i).map(|br| env.region.slice(br.reply)))
        .filter(|r| !r.is_empty())
        .collect();
    if others.is_empty() {
        return stored;
    }
    match merge_challenges(&stored, &others, MAX_REPLY_LEN) {
        Ok(merged) => merged,
        Err(e) => {
            crate::warn_limited!(
                "tm: challenges of {} branches not merged: {e}",
                others.len() + 1
            );
            stored
        }
    }
}

/// Our own UAC's INVITE got a 2xx: the ACK is ours to send (a proxy
/// passes the caller's on; here there is no caller).
fn ack_local_2xx(env: &Env, cell: &Cell, st: &CellState, reply: &Msg, code: u16) {
    use crate::tm::fsm::flags;
    if !(200..300).contains(&code) || !st.tx.has(flags::LOCAL) || !st.tx.has(flags::INVITE) {
        return;
    }
    let Ok(invite) = Msg::parse(env.region.slice(st.br[0].request).to_vec()) else {
        return;
    };
    let Some(sock) = env.rt.sockets.all().get(usize::from(st.br[0].dst.sock)) else {
        return;
    };
    let port = sock.listen.addr.port();
    match crate::tm::dialog::dialog_ack(&invite, reply, &sock.host_text(), port) {
        Some((ack, dst)) => {
            let peer = Peer::new(dst, env.rt.sockets.index_of(sock));
            send_peer(env, &peer, &ack);
        }
        None => log::warn!(
            "tm: no way to ACK the 2xx of local INVITE (hash {})",
            cell.hash
        ),
    }
}

/// Keep the `waiting` gauge in step with the machine. The machine has
/// already moved when its actions are carried out, so the phase before
/// the event is unknown here; the cell instead remembers whether it is
/// counted, and each execution settles the difference.
fn sync_wait_gauge(st: &mut CellState) {
    let waiting = st.tx.phase == Phase::Wait as u8;
    if waiting == (st.wait_counted != 0) {
        return;
    }
    st.wait_counted = u16::from(waiting);
    let Some(s) = crate::tm::stats::stats() else {
        return;
    };
    if waiting {
        s.waiting.fetch_add(1, Ordering::Relaxed);
    } else {
        s.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

fn user_agent(env: &Env) -> Option<&'static [u8]> {
    if env.rt.server_hdr.is_empty() {
        None
    } else {
        Some(env.rt.server_hdr.as_slice())
    }
}

pub(crate) fn reason_of(code: u16) -> &'static [u8] {
    match code {
        408 => b"Request Timeout",
        478 => b"Unresolvable destination",
        487 => b"Request Terminated",
        500 => b"Server Internal Error",
        503 => b"Service Unavailable",
        _ => b"Unknown",
    }
}

/// A reply built here from the cell's request (FR timeouts, 503 → 500).
/// A 503 made here is the overload answer, so it says when to retry.
pub(crate) fn local_reply_bytes(env: &Env, cell: &Cell, code: u16, reason: &[u8]) -> Vec<u8> {
    let Ok(req) = Msg::parse(env.region.slice(cell.req).to_vec()) else {
        return Vec::new();
    };
    let extra = if code == 503 { RETRY_AFTER } else { b"" };
    build_local_reply(env, &req, cell.src.addr(), code, reason, extra)
        .map(|b| b.bytes)
        .unwrap_or_default()
}

/// The CANCEL for branch `i`, built from the request that branch sent
/// (with its `ac_extra_hdrs` fields).
fn cancel_of(env: &Env, st: &CellState, i: usize) -> Option<Vec<u8>> {
    let req = Msg::parse(env.region.slice(st.br[i].request).to_vec()).ok()?;
    let mut out = Vec::with_capacity(512);
    build_ack_cancel(&req, HopRequest::Cancel, None, user_agent(env), &mut out).ok()?;
    copy_prefixed(&req, &env.params.ac_extra_hdrs, &mut out);
    Some(out)
}

/// Keep `bytes` as the reply to resend upstream. When shm is too full for
/// the copy, the older reply is dropped too, so that a retransmission
/// never repeats a stale provisional in place of the final.
pub fn keep_uas_reply(region: &Region, st: &mut CellState, bytes: &[u8]) {
    if replace_bytes(region, &mut st.uas_reply, bytes).is_err() {
        crate::tm::oom::complain("keeping a reply");
        region.free_slice(std::mem::take(&mut st.uas_reply));
    }
}

/// The reply to send again upstream: the kept copy. When shm was too full
/// to keep it, the picked branch's stored reply, or — for a negative
/// final — one built again from the request (same To-tag, so the caller
/// still matches and ACKs it): a final made here (408, 503) must not go
/// out only once.
pub fn final_reply_again(env: &Env, cell: &Cell, st: &CellState) -> Cow<'static, [u8]> {
    let kept = env.region.slice(st.uas_reply);
    let code = st.tx.uas_status;
    if !kept.is_empty() || code < 200 {
        return Cow::Borrowed(kept);
    }
    let picked = usize::from(st.tx.picked);
    if let (Some(br), Some(b)) = (st.br.get(picked), st.tx.branches.get(picked)) {
        let stored = env.region.slice(br.reply);
        if !stored.is_empty() && b.status == code {
            return Cow::Borrowed(stored);
        }
    }
    if code < 300 {
        return Cow::Borrowed(&[]);
    }
    Cow::Owned(local_reply_bytes(env, cell, code, reason_of(code)))
}

/// Send a reply upstream and keep it for retransmissions.
fn relay_up(env: &Env, cell: &Cell, st: &mut CellState, bytes: &[u8], code: u16) {
    keep_uas_reply(env.region, st, bytes);
    send_peer(env, &cell.src, bytes);
    crate::tm::stats::note_sent(code);
}

fn timer_link(off: ShmOff<Cell>) -> ShmOff<TimerLink> {
    shm::shm_field!(off, Cell, timer)
}

/// Arm the cell's timer at the machine's next deadline (or disarm it).
/// Under the reply lock: arming and disarming one link is serialised. An
/// armed timer holds a reference to the cell.
pub fn rearm(cref: &CellRef, st: &CellState) {
    let cell = cref.cell();
    let link = timer_link(cref.off());
    match st.tx.next_deadline() {
        Some(at) => {
            // The reference is counted before the timer can fire.
            let was_armed = cell.timer.is_armed();
            if !was_armed {
                cell.refs.inc();
            }
            if !crate::timer::arm(link, TIMER_KIND, at) && !was_armed {
                let last = cell.refs.dec();
                debug_assert!(!last, "the caller's reference keeps the cell");
            }
        }
        None => {
            if crate::timer::disarm(link) {
                // We still hold our own reference: this cannot be the last.
                let last = cell.refs.dec();
                debug_assert!(!last, "timer reference was the last one");
            }
        }
    }
}

/// Handle what was deferred past the lock: failure routes, unlinking.
pub fn finish(env: &'static Env, cref: &CellRef, mut def: Deferred) {
    loop {
        if let Some(code) = def.completed.take() {
            callbacks::fire(CbEvent::Completed, cref.cell(), code);
            if let Some((kind, param, reply)) = def.uac.take() {
                callbacks::report(
                    kind,
                    &callbacks::UacOutcome {
                        code,
                        param: &param,
                        reply: &reply,
                    },
                );
            }
        }
        if def.terminate {
            store::unlink(cref);
            return;
        }
        if let Some(b) = def.failover.take() {
            match FAILOVER_RUNNER.get() {
                Some(run) => def = run(env, cref, b),
                None => log::error!("tm: a DNS failover is due but no runner is installed"),
            }
            continue;
        }
        match def.failure.take() {
            Some(picked) => match FAILURE_RUNNER.get() {
                Some(run) => def = run(env, cref, picked),
                None => {
                    log::error!("tm: a failure route is due but no runner is installed");
                    return;
                }
            },
            None => return,
        }
    }
}

/// The timer process: a cell's timer fired (the wheel's reference is ours).
fn on_timer_fired(region: &'static Region, link: ShmOff<TimerLink>) {
    let Some(env) = env() else { return };
    let Some(off) = shm::shm_container!(link, Cell, timer) else {
        return;
    };
    let cref = CellRef::adopt(region, off);
    let mut def = Deferred::default();
    {
        let cell = cref.cell();
        let mut st = cell.lock();
        // Re-armed meanwhile by a worker: that arming took its own
        // reference; this firing's is released when `cref` drops.
        if st.tx.phase != Phase::Terminated as u8 {
            let mut acts = Actions::new();
            st.tx.on_timer(now(), &env.params.timers, &mut acts);
            execute(env, cell, &mut st, &mut acts, None, &mut def);
            rearm(&cref, &st);
        }
    }
    finish(env, &cref, def);
    // Done: the wheel forgets this firing, and the reference goes back
    // through our own record when `cref` drops. Dying before this line
    // leaves it listed on the wheel, and the next timer process fires the
    // cell again (its machine redoes what is due); after it, the death
    // cleanup releases the reference.
    crate::timer::claim(link);
}

/// A reply arrived. True when it belonged to a transaction of ours.
pub fn on_reply(msg: &Msg, src: std::net::SocketAddr, rcv: &crate::net::ListenSocket) -> bool {
    let Some(env) = env() else { return false };
    let Ok(v1) = msg.via1() else { return false };
    let Some(branch) = v1.branch else {
        return false;
    };
    let Some((hash, label, b)) = store::parse_branch_id(branch.get(msg.buf())) else {
        return false;
    };
    let Some(cref) = store::lookup_id(hash, label) else {
        return false;
    };
    let cell = cref.cell();
    let Ok(cseq) = msg.cseq() else { return false };
    let cell_method = cell.method;
    if cseq.method == Method::Cancel && cell_method == Method::Invite as u32 {
        cell.lock().tx.on_cancel_reply(b, now());
        return true;
    }
    if cseq.method as u32 != cell_method {
        return false;
    }
    let code = msg.status();
    if code == 503 {
        // SER 2.1 blacklists the 503's source (`blst_503`); a reply only
        // gets here with our signed branch id, so it cannot be forged blindly.
        crate::tm::blst::on_503(env, msg, src);
    }
    callbacks::fire(CbEvent::ResponseIn, cell, code);
    // onreply_route runs before the decision, unlocked (as SER).
    let (on_reply, flags, avps) = {
        let st = cell.lock();
        let avps = if st.on_reply == 0 {
            Vec::new()
        } else {
            stored_avps(env.region, &st)
        };
        (st.on_reply, st.msg_flags, avps)
    };
    if let Some(list) = usize::from(on_reply)
        .checked_sub(1)
        .and_then(|i| env.rt.routes.onreply.get(i))
    {
        let mut ctx = MsgCtx::new(env.rt, msg, src, rcv, RouteKind::OnReply);
        ctx.flags = flags;
        ctx.avps = avps;
        ctx.tm.cell = cref.off().get();
        run_top(list, &mut ctx);
    }
    let mut upstream = Vec::with_capacity(msg.buf().len());
    if without_top_via(msg, &mut upstream).is_err() {
        upstream.clear();
    }
    let rin = ReplyIn {
        msg,
        upstream: &upstream,
    };
    let mut def = Deferred::default();
    {
        let mut st = cell.lock();
        let mut acts = Actions::new();
        st.tx
            .on_reply(b, code, now(), &env.params.timers, &mut acts);
        execute(env, cell, &mut st, &mut acts, Some(&rin), &mut def);
        rearm(&cref, &st);
    }
    finish(env, &cref, def);
    true
}

/// The AVPs kept with the transaction (under its reply lock). A damaged
/// block is logged and read as none: the routes still run.
pub(crate) fn stored_avps(region: &Region, st: &CellState) -> Vec<(AvpName, AvpValue)> {
    if st.avps.is_empty() {
        return Vec::new();
    }
    crate::route::avp_codec::decode(region.slice(st.avps)).unwrap_or_else(|e| {
        log::error!("tm: the transaction's AVPs are damaged: {e}");
        Vec::new()
    })
}
