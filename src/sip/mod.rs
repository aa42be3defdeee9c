//! SIP message model: zero-copy parsing, typed header access, builders and
//! the forwarding edit list. Depends on nothing else in the crate: no I/O,
//! no clock, no shared memory.
//!
//! Parsing runs in two tiers (see `docs/style.md`): `Msg::parse` splits the
//! first line, header lines and body in one pass; typed headers (Via, CSeq,
//! From/To, Contact, URIs) are parsed on first access and cached, and
//! `Msg::validate` runs the checks a message must pass before it is acted on.
//! On TCP and TLS, `stream::Framer` first cuts the byte stream into messages.

pub mod build;
pub mod cseq;
pub mod error;
pub mod hdr;
pub mod lump;
pub mod method;
pub mod msg;
pub mod nameaddr;
mod parse;
pub mod salvage;
mod scan;
pub mod span;
pub mod stream;
pub mod uri;
mod validate;
pub mod via;

#[cfg(test)]
mod tests;

pub use build::{
    build_ack_cancel, build_reply, build_reply_within, push_via, HopRequest, ReplyFit, ReplyOpts,
    MAX_REPLY_LEN,
};
pub use cseq::{parse_cseq, CSeq};
pub use error::{BuildError, LumpError, ParseError, StreamError};
pub use hdr::{HdrKind, Header};
pub use lump::{LumpId, Lumps};
pub use method::Method;
pub use msg::{FirstLine, Msg, ParseFailure};
pub use nameaddr::{parse_contacts, parse_name_addr, Contact, NameAddr};
pub use span::Span;
pub use stream::{Frame, Framer};
pub use uri::{parse_uri, Scheme, Uri};

/// SER's MAX_BRANCHES: the R-URI plus 11 appended branches, so at most 12
/// destinations of one request (the script's destination set and tm's
/// forks both count against it). One definition for both.
pub const MAX_BRANCHES: usize = 12;
pub use via::{Transport, Via};
