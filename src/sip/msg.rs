//! The parsed message: owns the received bytes, records spans into them,
//! and parses typed headers on first access (cached), so a defect in a
//! header nobody asks for never rejects the message.

use std::cell::OnceCell;

use super::cseq::{parse_cseq, CSeq};
use super::error::ParseError;
use super::hdr::{same_name, HdrKind, Header};
use super::method::Method;
use super::nameaddr::{parse_name_addr, NameAddr};
pub use super::parse::FirstLine;
use super::parse::{parse_parts, Parts};
use super::scan::parse_u32;
use super::span::Span;
use super::via::{parse_first_via, parse_via_parm, Via};

/// A parse that failed; the buffer comes back for reuse.
#[derive(Debug)]
pub struct ParseFailure {
    pub error: ParseError,
    pub buf: Vec<u8>,
}

/// A SIP message over its own receive buffer.
#[derive(Clone, Debug)]
pub struct Msg {
    buf: Vec<u8>,
    first: FirstLine,
    first_span: Span,
    headers: Vec<Header>,
    headers_end: usize,
    body: Span,
    via1: OnceCell<Result<Via, ParseError>>,
    via2: OnceCell<Result<Option<Via>, ParseError>>,
    cseq: OnceCell<Result<CSeq, ParseError>>,
    from: OnceCell<Result<NameAddr, ParseError>>,
    to: OnceCell<Result<NameAddr, ParseError>>,
}

impl Msg {
    /// Tier 1: first line, header index, body. Never panics. When
    /// Content-Length is smaller than what follows the headers, the buffer
    /// is cut there (trailing octets of a datagram are not part of it).
    pub fn parse(mut buf: Vec<u8>) -> Result<Msg, ParseFailure> {
        match parse_parts(&buf) {
            Ok(Parts {
                first,
                first_span,
                headers,
                headers_end,
                body,
                msg_end,
            }) => {
                buf.truncate(msg_end);
                Ok(Msg {
                    buf,
                    first,
                    first_span,
                    headers,
                    headers_end,
                    body,
                    via1: OnceCell::new(),
                    via2: OnceCell::new(),
                    cseq: OnceCell::new(),
                    from: OnceCell::new(),
                    to: OnceCell::new(),
                })
            }
            Err(error) => Err(ParseFailure { error, buf }),
        }
    }

    /// Gives the buffer back for reuse.
    pub fn into_buf(self) -> Vec<u8> {
        self.buf
    }

    pub fn buf(&self) -> &[u8] {
        &self.buf
    }

    pub fn first_line(&self) -> &FirstLine {
        &self.first
    }

    /// The request or status line without its line end.
    pub fn first_line_span(&self) -> Span {
        self.first_span
    }

    pub fn is_request(&self) -> bool {
        matches!(self.first, FirstLine::Request { .. })
    }

    /// The request method; for a reply the CSeq method (`Other` if the CSeq
    /// cannot be parsed).
    pub fn method(&self) -> Method {
        match self.first {
            FirstLine::Request { method, .. } => method,
            FirstLine::Reply { .. } => self.cseq().map(|c| c.method).unwrap_or(Method::Other),
        }
    }

    /// The request-line method token; for a reply the version token.
    pub fn method_bytes(&self) -> &[u8] {
        match self.first {
            FirstLine::Request { method_span, .. } => method_span.get(&self.buf),
            FirstLine::Reply { version, .. } => version.get(&self.buf),
        }
    }

    /// The Request-URI bytes (empty for a reply).
    pub fn ruri(&self) -> &[u8] {
        self.ruri_span().get(&self.buf)
    }

    pub fn ruri_span(&self) -> Span {
        match self.first {
            FirstLine::Request { uri, .. } => uri,
            FirstLine::Reply { .. } => Span::EMPTY,
        }
    }

    /// The SIP-Version token of the first line.
    pub fn version(&self) -> &[u8] {
        match self.first {
            FirstLine::Request { version, .. } | FirstLine::Reply { version, .. } => {
                version.get(&self.buf)
            }
        }
    }

    /// Status code; 0 for requests.
    pub fn status(&self) -> u16 {
        match self.first {
            FirstLine::Reply { status, .. } => status,
            FirstLine::Request { .. } => 0,
        }
    }

    /// Reason phrase; empty for requests.
    pub fn reason(&self) -> &[u8] {
        match self.first {
            FirstLine::Reply { reason, .. } => reason.get(&self.buf),
            FirstLine::Request { .. } => &[],
        }
    }

    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first header of `kind`.
    pub fn header(&self, kind: HdrKind) -> Option<&Header> {
        self.headers.iter().find(|h| h.kind == kind)
    }

    pub fn headers_of(&self, kind: HdrKind) -> impl Iterator<Item = &Header> {
        self.headers.iter().filter(move |h| h.kind == kind)
    }

    /// First header called `name`: case-insensitive, compact forms count
    /// (`i` finds Call-ID, `Allow-Events` finds `u`).
    pub fn find_header(&self, name: &[u8]) -> Option<&Header> {
        let kind = HdrKind::from_name(name);
        if kind != HdrKind::Other {
            return self.header(kind);
        }
        self.headers
            .iter()
            .find(|h| h.kind == HdrKind::Other && same_name(h.name.get(&self.buf), name))
    }

    pub fn value(&self, h: &Header) -> &[u8] {
        h.value.get(&self.buf)
    }

    pub fn body(&self) -> &[u8] {
        self.body.get(&self.buf)
    }

    pub fn body_span(&self) -> Span {
        self.body
    }

    /// Offset of the empty line that ends the headers (where `append_hf`
    /// inserts).
    pub fn headers_end(&self) -> usize {
        self.headers_end
    }

    /// The topmost via-parm.
    pub fn via1(&self) -> Result<&Via, ParseError> {
        self.via1
            .get_or_init(|| {
                let h = self
                    .header(HdrKind::Via)
                    .ok_or(ParseError::MissingHeader(HdrKind::Via))?;
                parse_first_via(&self.buf, h.value).map(|(v, _)| v)
            })
            .as_ref()
            .map_err(|e| *e)
    }

    /// The second via-parm: after a comma in the first Via header, or the
    /// first of the next Via header; `Ok(None)` when there is only one.
    pub fn via2(&self) -> Result<Option<&Via>, ParseError> {
        self.via2
            .get_or_init(|| {
                let mut vias = self.headers_of(HdrKind::Via);
                let h = vias.next().ok_or(ParseError::MissingHeader(HdrKind::Via))?;
                let (_, comma) = parse_first_via(&self.buf, h.value)?;
                if comma < h.value.end() {
                    // the rest of this value holds the next via-parm
                    let rest = Span::from_to(comma + 1, h.value.end());
                    return parse_first_via(&self.buf, rest).map(|(v, _)| Some(v));
                }
                match vias.next() {
                    Some(h2) => parse_first_via(&self.buf, h2.value).map(|(v, _)| Some(v)),
                    None => Ok(None),
                }
            })
            .as_ref()
            .map(Option::as_ref)
            .map_err(|e| *e)
    }

    /// Parses every via-parm of every Via header, in order (for callers
    /// that need them all; not cached).
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        let mut out = Vec::new();
        for h in self.headers_of(HdrKind::Via) {
            let (mut s, e) = (h.value.start as usize, h.value.end());
            loop {
                let c = super::scan::find_comma(&self.buf, s, e).ok_or(ParseError::BadVia)?;
                out.push(parse_via_parm(&self.buf, s, c)?);
                if c >= e {
                    break;
                }
                s = c + 1;
            }
        }
        Ok(out)
    }

    pub fn cseq(&self) -> Result<&CSeq, ParseError> {
        self.cseq
            .get_or_init(|| {
                let h = self
                    .header(HdrKind::CSeq)
                    .ok_or(ParseError::MissingHeader(HdrKind::CSeq))?;
                parse_cseq(&self.buf, h.value)
            })
            .as_ref()
            .map_err(|e| *e)
    }

    pub fn from(&self) -> Result<&NameAddr, ParseError> {
        self.from
            .get_or_init(|| {
                let h = self
                    .header(HdrKind::From)
                    .ok_or(ParseError::MissingHeader(HdrKind::From))?;
                parse_name_addr(&self.buf, h.value)
            })
            .as_ref()
            .map_err(|e| *e)
    }

    pub fn to(&self) -> Result<&NameAddr, ParseError> {
        self.to
            .get_or_init(|| {
                let h = self
                    .header(HdrKind::To)
                    .ok_or(ParseError::MissingHeader(HdrKind::To))?;
                parse_name_addr(&self.buf, h.value)
            })
            .as_ref()
            .map_err(|e| *e)
    }

    /// The Call-ID value: `word ["@" word]`, no whitespace (§25.1).
    pub fn call_id(&self) -> Result<&[u8], ParseError> {
        let h = self
            .header(HdrKind::CallId)
            .ok_or(ParseError::MissingHeader(HdrKind::CallId))?;
        let v = self.value(h);
        if v.is_empty() || v.iter().any(|&c| c <= b' ' || c >= 0x7f) {
            return Err(ParseError::BadCallId);
        }
        Ok(v)
    }

    /// The first Content-Length; `Ok(None)` when absent.
    pub fn content_length(&self) -> Result<Option<u32>, ParseError> {
        match self.header(HdrKind::ContentLength) {
            None => Ok(None),
            Some(h) => parse_u32(self.value(h))
                .map(Some)
                .ok_or(ParseError::BadContentLength),
        }
    }

    /// The first Max-Forwards (0..=255); `Ok(None)` when absent.
    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        match self.header(HdrKind::MaxForwards) {
            None => Ok(None),
            Some(h) => parse_u32(self.value(h))
                .filter(|n| *n <= 255)
                .map(Some)
                .ok_or(ParseError::BadMaxForwards),
        }
    }

    /// The first Expires header (delta-seconds below 2^32); `Ok(None)`
    /// when absent.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        match self.header(HdrKind::Expires) {
            None => Ok(None),
            Some(h) => parse_u32(self.value(h))
                .map(Some)
                .ok_or(ParseError::BadExpires),
        }
    }

    /// For stream transports: the length of the first message in `buf`
    /// (leading CRLFs included) once its headers are complete, `Ok(None)`
    /// while more bytes are needed. Content-Length is mandatory on streams
    /// (RFC 3261 §18.3). A buffer of only CRLFs (keep-alives) is `Empty`.
    pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
        let parts = match parse_parts(buf) {
            Ok(p) => p,
            Err(ParseError::Truncated) => return Ok(None),
            Err(e) => return Err(e),
        };
        let h = parts
            .headers
            .iter()
            .find(|h| h.kind == HdrKind::ContentLength)
            .ok_or(ParseError::MissingContentLength)?;
        let n = parse_u32(h.value.get(buf)).ok_or(ParseError::BadContentLength)?;
        Ok(Some(parts.body.start as usize + n as usize))
    }
}
