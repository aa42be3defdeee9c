//! Replies built here rather than relayed — sl's stateless replies and
//! tm's local ones share one builder: the sender's Via gets its
//! `received`/`rport`, the reply never exceeds a datagram (a `500` takes
//! its place, logged rate-limited), and the caller learns which status
//! actually went out.

use std::net::SocketAddr;

use crate::sip::{build_reply_within, BuildError, Msg, ReplyFit, ReplyOpts, MAX_REPLY_LEN};

/// What to answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplySpec<'a> {
    pub code: u16,
    pub reason: &'a [u8],
    /// The To-tag to add (when the request's To has none).
    pub to_tag: Option<&'a [u8]>,
    /// Extra header lines, each ending in CRLF.
    pub extra_headers: &'a [u8],
    pub body: &'a [u8],
    /// `force_rport()`: add `rport` even when the sender did not ask.
    pub force_rport: bool,
    /// The `Server:` value, if one is sent.
    pub server_header: Option<&'a [u8]>,
    /// Who builds it, for the log (`"sl"`, `"tm"`).
    pub who: &'static str,
}

/// A reply built here: its bytes and the status they carry — `500` when
/// the reply asked for would not fit a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub code: u16,
}

/// The reply `r` to `req`, received from `src`.
pub fn build_local_reply(
    req: &Msg,
    src: SocketAddr,
    r: &ReplySpec<'_>,
) -> Result<Built, BuildError> {
    let via_extra = crate::fwd::via1_received_params(req, src, r.force_rport);
    let via_drop = crate::fwd::via1_replaced_spans(req, src, r.force_rport);
    let opts = ReplyOpts {
        to_tag: r.to_tag,
        via1_extra: &via_extra,
        via1_drop: &via_drop,
        extra_headers: r.extra_headers,
        body: r.body,
        server_header: r.server_header,
    };
    let mut out = Vec::with_capacity(req.buf().len() + 256);
    let code = match build_reply_within(req, r.code, r.reason, &opts, MAX_REPLY_LEN, &mut out)? {
        ReplyFit::AsAsked => r.code,
        ReplyFit::Replaced { len } => {
            crate::warn_limited!(
                "{}: a {} reply of {len} bytes does not fit a datagram; 500 sent instead",
                r.who,
                r.code
            );
            500
        }
    };
    Ok(Built { bytes: out, code })
}
