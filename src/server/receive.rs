//! One received datagram, start to end: parse, check, run the script for
//! a request, route a reply back. A broken request is answered 400 (505
//! for another SIP version, 420 for an unknown Proxy-Require) when it can
//! be addressed, else dropped; replies and keep-alives are never answered.
//! Logged at most once a second per kind; nothing here can take the
//! worker down.

use std::net::SocketAddr;

use crate::cfg::ast::RouteKind;
use crate::modules::sl::{send_reply, LocalReply};
use crate::net::ListenSocket;
use crate::route::interp::run_top;
use crate::route::{forward, MsgCtx, Runtime};
use crate::server::overload::{Overload, RETRY_AFTER};
use crate::sip::{salvage, HdrKind, Method, Msg};

/// Per-process state of a receiving worker.
pub struct Receiver<'a> {
    pub rt: &'a Runtime,
    /// This worker's backlog and whether it refuses new requests now.
    pub overload: Overload,
}

impl<'a> Receiver<'a> {
    pub fn new(rt: &'a Runtime) -> Self {
        Receiver {
            rt,
            overload: Overload::default(),
        }
    }

    /// Handle one datagram; hands the buffer back for reuse.
    pub fn handle(&mut self, buf: Vec<u8>, src: SocketAddr, rcv: &ListenSocket) -> Vec<u8> {
        if is_keepalive(&buf) {
            crate::log_limited!(log::Level::Debug, "keep-alive from {src}");
            return buf;
        }
        // debug>=4 only; one atomic load otherwise.
        crate::logging::trace::message(crate::logging::trace::Traced {
            dir: crate::logging::trace::Direction::Received,
            proto: rcv.proto().via_name(),
            peer: src,
            local: rcv.listen.addr,
            bytes: &buf,
        });
        let msg = match Msg::parse(buf) {
            Ok(m) => m,
            Err(f) => {
                crate::warn_limited!("unparsable message from {src}: {}", f.error);
                let tag = format!("{}.bad", self.rt.sl_tag);
                if let Some(out) = salvage::bad_request(&f.buf, &f.error, &tag) {
                    if let Err(e) = rcv.send(&out, src, Some(src)) {
                        log::debug!("400 for unparsable request not sent: {e}");
                    }
                }
                return f.buf;
            }
        };
        if let Err(e) = msg.validate() {
            crate::warn_limited!("bad message from {src}: {e}");
            let reason = match e.reply_code() {
                Some(505) => "Version Not Supported".to_string(),
                _ => format!("Bad Request ({e})"),
            };
            if let Some(code) = e.reply_code().filter(|_| msg.is_request()) {
                let r = LocalReply {
                    code,
                    reason: reason.as_bytes(),
                    extra: b"",
                    new_uri: None,
                    force_rport: false,
                };
                if let Err(se) = send_reply(self.rt, &msg, src, rcv, &r) {
                    log::debug!("{code} for malformed request not sent: {se}");
                }
            }
            return msg.into_buf();
        }
        if msg.is_request() {
            if self.overload.shedding() && self.refuse_new(&msg, src, rcv) {
                return msg.into_buf();
            }
            if self.refuse_extensions(&msg, src, rcv) {
                return msg.into_buf();
            }
            if self.rt.core.tcp_accept_aliases && rcv.proto().is_stream() {
                note_alias(&msg, src, rcv.proto());
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
        crate::proc::shared::note_refused();
        crate::warn_limited!(
            "overloaded (requests wait over {} ms): new requests refused with 503, {} so far",
            crate::server::overload::ENTER_QUEUED.as_millis(),
            self.overload.shed
        );
        true
    }

    /// RFC 3261 16.3 step 5: a request whose Proxy-Require names option
    /// tags we do not implement (we implement none) is answered `420`
    /// with `Unsupported` listing them. An ACK cannot be answered and
    /// passes. True when refused.
    fn refuse_extensions(&mut self, msg: &Msg, src: SocketAddr, rcv: &ListenSocket) -> bool {
        if msg.method() == Method::Ack {
            return false;
        }
        let tags = proxy_require_tags(msg);
        if tags.is_empty() {
            return false;
        }
        let mut extra = b"Unsupported: ".to_vec();
        extra.extend_from_slice(&tags.join(&b", "[..]));
        extra.extend_from_slice(b"\r\n");
        let r = LocalReply {
            code: 420,
            reason: b"Bad Extension",
            extra: &extra,
            new_uri: None,
            force_rport: false,
        };
        if let Err(e) = send_reply(self.rt, msg, src, rcv, &r) {
            log::debug!("420 not sent: {e}");
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
            Err(e @ crate::fwd::ReplyRouteError::NotNumeric) => {
                crate::log_limited!(log::Level::Debug, "reply from {src} dropped: {e}");
            }
            Err(e) => {
                crate::log_limited!(log::Level::Info, "reply from {src} not forwarded: {e}");
            }
        }
    }
}

/// A datagram of line ends only: the RFC 5626 CRLF keep-alive (or an
/// empty datagram). Nothing to answer, nothing worth a warning.
fn is_keepalive(buf: &[u8]) -> bool {
    buf.iter().all(|&c| c == b'\r' || c == b'\n')
}

/// The option tags of every Proxy-Require header (comma lists split,
/// blanks trimmed, duplicates once).
fn proxy_require_tags(msg: &Msg) -> Vec<&[u8]> {
    let mut tags: Vec<&[u8]> = Vec::new();
    for h in msg.headers_of(HdrKind::ProxyRequire) {
        for t in msg.value(h).split(|&c| c == b',') {
            let t = t.trim_ascii();
            if !t.is_empty() && !tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                tags.push(t);
            }
        }
    }
    tags
}

/// SER's `tcp_accept_aliases`: a request whose top Via carries `;alias`
/// makes its connection the way to the Via's port at the source's IP too,
/// so requests to that address reuse it instead of connecting (the peer
/// may not even accept connections: it is behind NAT).
fn note_alias(msg: &Msg, src: SocketAddr, proto: crate::net::Proto) {
    let Ok(via) = msg.via1() else {
        return;
    };
    let params = via.params.get(msg.buf());
    let has_alias = params.split(|&b| b == b';').any(|p| {
        let name = p.split(|&b| b == b'=').next().unwrap_or_default();
        name.trim_ascii().eq_ignore_ascii_case(b"alias")
    });
    if !has_alias {
        return;
    }
    let port = via.port.unwrap_or(match proto {
        crate::net::Proto::Tls => 5061,
        _ => 5060,
    });
    if port != src.port() {
        crate::net::stream::alias(proto, src, SocketAddr::new(src.ip(), port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives() {
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(is_keepalive(b"\r\n"));
        assert!(is_keepalive(b""));
        assert!(!is_keepalive(b"\r\nOPTIONS"));
    }

    #[test]
    fn proxy_require_tags_are_collected() {
        let m = Msg::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n\
              To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nProxy-Require: foo, bar\r\n\
              Proxy-Require: FOO,baz\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
        .map_err(|f| f.error)
        .unwrap();
        assert_eq!(proxy_require_tags(&m), vec![&b"foo"[..], b"bar", b"baz"]);
    }
}
