//! One received datagram, start to end: parse, check, run the script for
//! a request, route a reply back. Bad input is dropped or answered 400 and
//! logged at most once a second per kind; nothing here can take the
//! worker down.

use std::net::SocketAddr;

use crate::cfg::ast::RouteKind;
use crate::logging::LogLimiter;
use crate::modules::sl::{send_reply, LocalReply};
use crate::net::ListenSocket;
use crate::route::interp::run_top;
use crate::route::{forward, MsgCtx, Runtime};
use crate::server::overload::{Overload, RETRY_AFTER};
use crate::sip::{Method, Msg};

/// Per-process state of a receiving worker.
pub struct Receiver<'a> {
    pub rt: &'a Runtime,
    pub limiter: LogLimiter,
    /// This worker's backlog and whether it refuses new requests now.
    pub overload: Overload,
}

impl<'a> Receiver<'a> {
    pub fn new(rt: &'a Runtime) -> Self {
        Receiver {
            rt,
            limiter: LogLimiter::default(),
            overload: Overload::default(),
        }
    }

    /// Handle one datagram; hands the buffer back for reuse.
    pub fn handle(&mut self, buf: Vec<u8>, src: SocketAddr, rcv: &ListenSocket) -> Vec<u8> {
        let msg = match Msg::parse(buf) {
            Ok(m) => m,
            Err(f) => {
                if self.limiter.allow(f.error.kind()) {
                    log::warn!("dropping unparsable message from {src}: {}", f.error);
                }
                return f.buf;
            }
        };
        if let Err(e) = msg.validate() {
            if self.limiter.allow(e.kind()) {
                log::warn!("bad message from {src}: {e}");
            }
            if msg.is_request() && e.reply_code() == Some(400) {
                let r = LocalReply {
                    code: 400,
                    reason: b"Bad Request",
                    extra: b"",
                    new_uri: None,
                    force_rport: false,
                };
                if let Err(se) = send_reply(self.rt, &msg, src, rcv, &r) {
                    log::debug!("400 for malformed request not sent: {se}");
                }
            }
            return msg.into_buf();
        }
        if msg.is_request() {
            if self.overload.shedding() && self.refuse_new(&msg, src, rcv) {
                return msg.into_buf();
            }
            self.request(&msg, src, rcv);
        } else {
            self.reply(&msg, src, rcv);
        }
        msg.into_buf()
    }

    fn request(&mut self, msg: &Msg, src: SocketAddr, rcv: &ListenSocket) {
        let rt = self.rt;
        let mut ctx = MsgCtx::new(rt, msg, src, rcv, RouteKind::Request);
        for m in &rt.modules {
            if m.pre_script(&mut ctx).is_some() {
                return;
            }
        }
        run_top(rt.routes.main(), &mut ctx);
        for m in &rt.modules {
            m.post_script(&mut ctx);
        }
    }

    /// While overloaded: answer a request that would start something new
    /// (not ACK/CANCEL, no To-tag, no transaction yet) with a stateless
    /// 503 and `Retry-After`, before the script runs. True when refused.
    fn refuse_new(&mut self, msg: &Msg, src: SocketAddr, rcv: &ListenSocket) -> bool {
        if matches!(msg.method(), Method::Ack | Method::Cancel) {
            return false;
        }
        match msg.to() {
            Ok(to) if to.tag.is_none() => {}
            _ => return false,
        }
        if crate::tm::relay::known_request(msg) {
            return false;
        }
        let r = LocalReply {
            code: 503,
            reason: b"Service Unavailable",
            extra: RETRY_AFTER,
            new_uri: None,
            force_rport: false,
        };
        if let Err(e) = send_reply(self.rt, msg, src, rcv, &r) {
            log::debug!("503 while overloaded not sent: {e}");
        }
        self.overload.shed += 1;
        if self.limiter.allow("overload") {
            log::warn!(
                "overloaded (requests wait over {} ms): new requests refused with 503, {} so far",
                crate::server::overload::ENTER_QUEUED.as_millis(),
                self.overload.shed
            );
        }
        true
    }

    fn reply(&mut self, msg: &Msg, src: SocketAddr, rcv: &ListenSocket) {
        let rt = self.rt;
        if let Some(core_reply) = &rt.routes.core_reply {
            let mut ctx = MsgCtx::new(rt, msg, src, rcv, RouteKind::CoreReply);
            if run_top(core_reply, &mut ctx) == 0 {
                return;
            }
        }
        if crate::tm::driver::on_reply(msg, src, rcv) {
            return;
        }
        match forward::forward_reply(rt, msg) {
            Ok(()) => {}
            // Anyone can send these; at debug only, so they cannot fill the log.
            Err(e @ forward::ReplyRouteError::NotNumeric) => {
                if self.limiter.allow("reply-route-name") {
                    log::debug!("reply from {src} dropped: {e}");
                }
            }
            Err(e) => {
                if self.limiter.allow("reply-route") {
                    log::info!("reply from {src} not forwarded: {e}");
                }
            }
        }
    }
}
