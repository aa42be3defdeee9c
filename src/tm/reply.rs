//! Replies tm builds itself: `t_reply`, `100 Trying`, error replies,
//! timeouts. Replies ≥ 180 get tm's To-tag (server prefix + digest of the
//! request's top Via), so the same request always gets the same tag.

use std::net::SocketAddr;

use crate::route::forward::{via1_received_params, via1_replaced_spans};
use crate::sip::{build_reply_within, BuildError, Msg, ReplyFit, ReplyOpts, MAX_REPLY_LEN};
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

/// A reply built here: its bytes and the status they carry — `500` when
/// the reply asked for would not fit a datagram (see
/// `sip::build_reply_within`); the transaction must record that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub code: u16,
}

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
    let via_extra = via1_received_params(req, src, false);
    let via_drop = via1_replaced_spans(req, src, false);
    let opts = ReplyOpts {
        to_tag: tag.as_deref().map(str::as_bytes),
        via1_extra: &via_extra,
        via1_drop: &via_drop,
        extra_headers: extra,
        body,
        server_header: if env.rt.server_hdr.is_empty() {
            None
        } else {
            Some(&env.rt.server_hdr)
        },
    };
    let mut out = Vec::with_capacity(req.buf().len() + 256);
    let code = match build_reply_within(req, code, reason, &opts, MAX_REPLY_LEN, &mut out)? {
        ReplyFit::AsAsked => code,
        ReplyFit::Replaced { len } => {
            crate::warn_limited!(
                "tm: a {code} reply of {len} bytes does not fit a datagram; 500 sent instead"
            );
            500
        }
    };
    Ok(Built { bytes: out, code })
}
