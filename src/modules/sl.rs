//! sl — stateless replies (`sl_send_reply`, `sl_reply_error`), counted
//! for `sl_stats` (`sl_stats`).
//!
//! Replies are built from the request's parsed Via/From/To/Call-ID/CSeq
//! and sent from the receiving socket to the packet's source (or to the
//! Via address with `reply_to_via`). Replies ≥ 180 without a To-tag get
//! ours: a per-server prefix plus a digest of the top Via, so an ACK for
//! such a reply is recognised by its tag and absorbed before the script.

use std::net::SocketAddr;

use crate::cfg::ast::Literal;
use crate::fwd::{answer_destination, build_local_reply, ReplySpec};
use crate::net::ListenSocket;
use crate::route::export::{
    arg_int_range, arg_str, BoxedFn, FixupEnv, FixupError, FnDef, ModInitError, Module, RouteMask,
};
use crate::route::{MsgCtx, Runtime};
use crate::sip::{BuildError, Method, Msg};
use crate::util::hash::hex16;

pub struct Sl;

static FUNCS: &[FnDef] = &[
    FnDef::new("sl_send_reply", 2, 2, RouteMask::REQ_FAIL),
    FnDef::new("sl_reply", 2, 2, RouteMask::REQ_FAIL),
    FnDef::new("sl_reply_error", 0, 0, RouteMask::REQ_FAIL),
];

/// To-tag for a reply to `msg`: server prefix `.` digest of the top Via.
pub fn to_tag(rt: &Runtime, msg: &Msg) -> String {
    let buf = msg.buf();
    let digest = match msg.via1() {
        Ok(v) => hex16(&[
            v.host.get(buf),
            &v.port.unwrap_or(0).to_be_bytes(),
            v.branch.map(|b| b.get(buf)).unwrap_or(&[]),
        ]),
        Err(_) => hex16(&[]),
    };
    format!("{}.{}", rt.sl_tag, digest)
}

/// Everything a stateless reply needs besides the request.
pub struct LocalReply<'a> {
    pub code: u16,
    pub reason: &'a [u8],
    /// Extra header lines (CRLF-terminated): `append_to_reply`, Contact for 3xx.
    pub extra: &'a [u8],
    pub new_uri: Option<&'a [u8]>,
    pub force_rport: bool,
}

/// Build and send a stateless reply to `msg`. The worker uses this for
/// `400 Bad Request` on malformed input too.
pub fn send_reply(
    rt: &Runtime,
    msg: &Msg,
    src: SocketAddr,
    rcv: &ListenSocket,
    r: &LocalReply<'_>,
) -> Result<(), SendReplyError> {
    if msg.method() == Method::Ack {
        return Err(SendReplyError::Ack);
    }
    let tag = if r.code >= 180 && msg.to().map(|t| t.tag.is_none()).unwrap_or(false) {
        Some(to_tag(rt, msg))
    } else {
        None
    };
    let mut extra = r.extra.to_vec();
    if rt.core.sip_warning {
        extra.extend_from_slice(warning_line(msg, src, rcv, r.new_uri).as_bytes());
    }
    let spec = ReplySpec {
        code: r.code,
        reason: r.reason,
        to_tag: tag.as_deref().map(str::as_bytes),
        extra_headers: &extra,
        body: b"",
        force_rport: r.force_rport,
        server_header: (!rt.server_hdr.is_empty()).then_some(&rt.server_hdr[..]),
        who: "sl",
    };
    let built = match build_local_reply(msg, src, &spec) {
        Ok(b) => b,
        Err(BuildError::TooLarge { len }) => return Err(SendReplyError::TooLarge { len }),
        Err(_) => return Err(SendReplyError::Build),
    };
    let dst = answer_destination(msg, src, rt.core.reply_to_via);
    // Over TCP/TLS the connection the request came on carries it (RFC
    // 3261 18.2.2); `dst` is where to connect if it is gone.
    rcv.send(&built.bytes, dst, Some(src))
        .map_err(|_| SendReplyError::Send)?;
    // Counted by the status that went out (a 500 in place of a reply too
    // large for a datagram), once it went out, as SER's sl counted.
    crate::modules::sl_stats::note_sent(built.code);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendReplyError {
    #[error("ACK cannot be answered")]
    Ack,
    #[error("request too broken to answer")]
    Build,
    #[error("send failed")]
    Send,
    #[error("even a bare 500 would be {len} bytes, more than a datagram")]
    TooLarge { len: usize },
}

/// SER's diagnostic `Warning: 392` header (`sip_warning=1`).
fn warning_line(msg: &Msg, src: SocketAddr, rcv: &ListenSocket, new_uri: Option<&[u8]>) -> String {
    let via_cnt: usize = msg.headers_of(crate::sip::HdrKind::Via).count();
    format!(
        "Warning: 392 {}:{} \"Noisy feedback tells: pid={} req_src_ip={} req_src_port={} in_uri={} out_uri={} via_cnt=={}\"\r\n",
        rcv.listen.addr.ip(),
        rcv.listen.addr.port(),
        std::process::id(),
        src.ip(),
        src.port(),
        String::from_utf8_lossy(msg.ruri()),
        String::from_utf8_lossy(new_uri.unwrap_or(msg.ruri())),
        via_cnt
    )
}

/// `sl_send_reply` for the script: also used by other modules (registrar).
pub fn reply_from_script(ctx: &mut MsgCtx<'_>, code: u16, reason: &[u8], more_hdrs: &[u8]) -> i32 {
    let mut extra = ctx.reply_hdrs.clone();
    extra.extend_from_slice(more_hdrs);
    if (300..400).contains(&code) {
        extra.extend_from_slice(&ctx.redirect_contacts());
    }
    let r = LocalReply {
        code,
        reason,
        extra: &extra,
        new_uri: ctx.new_uri.as_deref(),
        force_rport: ctx.force_rport,
    };
    match send_reply(ctx.rt, ctx.msg, ctx.src, ctx.rcv, &r) {
        Ok(()) => 1,
        Err(e) => {
            crate::log_limited!(log::Level::Error, "sl: cannot send {code} reply: {e}");
            -1
        }
    }
}

impl Module for Sl {
    fn name(&self) -> &'static str {
        "sl"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        match f.name {
            "sl_send_reply" | "sl_reply" => {
                let code =
                    arg_int_range(f.name, args, 0, 100, 699, "a status code 100..699")? as u16;
                let reason = arg_str(f.name, args, 1)?.into_bytes();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    reply_from_script(ctx, code, &reason, b"")
                }))
            }
            _ => Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                let err = ctx.last_error;
                let (code, _) = err.reply();
                let reason = err.reason_with_tag("SL");
                reply_from_script(ctx, code, reason.as_bytes(), err.reply_headers())
            })),
        }
    }

    fn ctl_commands(&self) -> &'static [crate::ctl::CtlCmd] {
        crate::modules::sl_stats::COMMANDS
    }

    /// The `sl_stats` counters go in shm before the fork.
    fn mod_init(
        &self,
        _rt: &'static Runtime,
        region: &'static shm::Region,
    ) -> Result<(), ModInitError> {
        crate::modules::sl_stats::init(region).map_err(|e| ModInitError {
            module: "sl",
            reason: format!("no shared memory for the reply counters: {e}"),
        })
    }

    /// An ACK carrying our stateless To-tag acknowledges a reply we built:
    /// it ends here (SER sl's ACK filter).
    fn pre_script(&self, ctx: &mut MsgCtx<'_>) -> Option<i32> {
        let msg = ctx.msg;
        if msg.method() != Method::Ack {
            return None;
        }
        let tag = msg.to().ok()?.tag?;
        if tag.get(msg.buf()).starts_with(ctx.rt.sl_tag.as_bytes()) {
            return Some(0);
        }
        None
    }
}
