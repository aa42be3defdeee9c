//! Replies tm builds itself: `t_reply`, `100 Trying`, error replies,
//! timeouts. Replies ≥ 180 get tm's To-tag (server prefix + digest of the
//! request's top Via), so the same request always gets the same tag.

use std::net::SocketAddr;

use crate::fwd::{build_local_reply as build_local_reply_spec, ReplySpec};
use crate::sip::{BuildError, Msg};
use crate::tm::env::Env;
use crate::util::hash::hex16;

/// tm's To-tag for replies to `req`.
pub fn to_tag(env: &Env, req: &Msg) -> String {
    let b = req.buf();
    let digest = match req.via1() {
        Ok(v) => hex16(&[
            v.host.get(b),
            &v.port.unwrap_or(0).to_be_bytes(),
            v.branch.map(|x| x.get(b)).unwrap_or(&[]),
        ]),
        Err(_) => hex16(&[]),
    };
    format!("{}-{}", env.tag, digest)
}

pub use crate::fwd::Built;

/// The bytes of a reply to `req` (received from `src`).
pub fn build_local_reply(
    env: &Env,
    req: &Msg,
    src: SocketAddr,
    code: u16,
    reason: &[u8],
    extra: &[u8],
) -> Result<Built, BuildError> {
    build_reply_with(env, req, src, code, reason, extra, b"", None)
}

/// A reply with a body and, optionally, the To-tag an application chose
/// (the FIFO's `t_reply`); without one, replies ≥ 180 get tm's tag.
#[allow(clippy::too_many_arguments)]
pub fn build_reply_with(
    env: &Env,
    req: &Msg,
    src: SocketAddr,
    code: u16,
    reason: &[u8],
    extra: &[u8],
    body: &[u8],
    given_tag: Option<&str>,
) -> Result<Built, BuildError> {
    let tag = match given_tag {
        Some(t) => Some(t.to_string()),
        None => (code >= 180).then(|| to_tag(env, req)),
    };
    let spec = ReplySpec {
        code,
        reason,
        to_tag: tag.as_deref().map(str::as_bytes),
        extra_headers: extra,
        body,
        force_rport: false,
        server_header: (!env.rt.server_hdr.is_empty()).then_some(&env.rt.server_hdr[..]),
        who: "tm",
    };
    build_local_reply_spec(req, src, &spec)
}
