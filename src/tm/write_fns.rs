//! The script side of `t_write_req(fifo, "app[/append]")` and
//! `t_write_unix(socket, "app[/append]")`: make sure the request has a
//! transaction, describe it to the application (`twrite`), and leave a
//! blind branch whose FR timer answers 408 if the application never
//! replies through the FIFO's `t_reply`.
//!
//! An application that cannot take the request (no reader on its FIFO, a
//! missing socket, a queue still full after `unix_tx_timeout`) makes the
//! function fail, and the caller gets `500` at once rather than a 408
//! much later.

use std::path::PathBuf;
use std::time::Duration;

use crate::route::ctx::{MsgCtx, ScriptError};
use crate::route::export::FixupError;
use crate::sip::Method;
use crate::tm::driver;
use crate::tm::env::now;
use crate::tm::relay::{self, current, NewTran};
use crate::tm::twrite::{self, describe_request, TwAppend, TwAppends, TwRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Fifo,
    Unix,
}

/// A fixed-up `t_write_*` call.
#[derive(Debug, Clone)]
pub struct TWrite {
    pub channel: Channel,
    pub path: PathBuf,
    pub action: String,
    pub append: Option<TwAppend>,
}

impl TWrite {
    /// From the script arguments; an `/append` naming no `tw_append` list
    /// is a config error.
    pub fn new(
        func: &'static str,
        channel: Channel,
        path: String,
        action_arg: &str,
        appends: &TwAppends,
    ) -> Result<TWrite, FixupError> {
        let (action, append) = twrite::split_action(action_arg);
        if action.is_empty() || path.is_empty() {
            return Err(FixupError::BadArg {
                func,
                index: if path.is_empty() { 1 } else { 2 },
                expected: "a non-empty path and application name",
                found: format!("{path:?}, {action_arg:?}"),
            });
        }
        let append = match append {
            None => None,
            Some(name) => Some(appends.get(name).cloned().ok_or(FixupError::BadArg {
                func,
                index: 2,
                expected: "a tw_append list defined by modparam(\"tm\", \"tw_append\", ...)",
                found: name.to_string(),
            })?),
        };
        Ok(TWrite {
            channel,
            path: path.into(),
            action: action.to_string(),
            append,
        })
    }
}

/// Run `t_write_*`: 1 when the application has the request, −1 otherwise
/// (then the caller has been answered 500), 0 for a retransmission.
pub fn t_write(ctx: &mut MsgCtx<'_>, w: &TWrite) -> i32 {
    let Some(env) = crate::tm::env::env() else {
        return -1;
    };
    if ctx.msg.method() == Method::Ack {
        return -1;
    }
    match relay::newtran(ctx) {
        Ok(NewTran::Created) | Ok(NewTran::Exists) => {}
        Ok(NewTran::Retransmission) => return 0,
        Ok(_) => return -1,
        Err(e) => return ctx.fail(e),
    }
    let Some(cref) = current(ctx) else { return -1 };
    let cell = cref.cell();
    let label = cell.label.load(std::sync::atomic::Ordering::Relaxed);
    let new_ruri = ctx.new_uri.as_deref();
    let req = TwRequest {
        action: &w.action,
        append: w.append.as_ref(),
        avps: &ctx.avps,
        rcv: ctx.rcv.listen.addr,
        hash: cell.hash,
        label,
        msg_flags: ctx.flags,
        new_ruri,
    };
    let sent = describe_request(ctx.msg, &req).and_then(|text| match w.channel {
        Channel::Fifo => twrite::write_fifo(&w.path, &text),
        Channel::Unix => twrite::write_unix(
            &w.path,
            &text,
            Duration::from_millis(u64::from(env.params.unix_tx_timeout_ms)),
        ),
    });
    if let Err(e) = sent {
        log::error!("tm: {} for '{}' failed: {e}", w.path.display(), w.action);
        ctx.last_error = ScriptError::Exec;
        let (code, _) = ScriptError::Exec.reply();
        let reason = ScriptError::Exec.reason_with_tag("TM");
        relay::reply_local(ctx, code, reason.as_bytes());
        return -1;
    }
    // The blind branch: nothing is sent, but its FR timer runs, so a
    // silent application ends in 408.
    let mut st = cell.lock();
    let ok = st
        .tx
        .add_branch(now(), &env.params.timers, false, true)
        .is_ok();
    driver::rearm(&cref, &st);
    if ok {
        1
    } else {
        -1
    }
}
