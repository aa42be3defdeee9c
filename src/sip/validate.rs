//! Tier 2: the checks a message must pass before the server acts on it
//! (RFC 3261 §8.1.1, §8.2, §18.3; RFC 4475 §3.1.2 and §3.3).

use super::error::ParseError;
use super::hdr::HdrKind;
use super::msg::Msg;
use super::parse::FirstLine;
use super::uri::{parse_uri, Scheme};

/// Headers every request and reply carries (RFC 3261 §8.1.1).
const MANDATORY: [HdrKind; 5] = [
    HdrKind::Via,
    HdrKind::From,
    HdrKind::To,
    HdrKind::CallId,
    HdrKind::CSeq,
];

/// Headers that may appear once only (RFC 4475 §3.3.8, §3.3.9).
const SINGLE: [HdrKind; 6] = [
    HdrKind::From,
    HdrKind::To,
    HdrKind::CallId,
    HdrKind::CSeq,
    HdrKind::MaxForwards,
    HdrKind::ContentLength,
];

impl Msg {
    /// Tier-2 checks for a datagram (Content-Length optional).
    pub fn validate(&self) -> Result<(), ParseError> {
        self.validate_for(false)
    }

    /// Tier-2 checks; `stream` demands Content-Length (RFC 3261 §18.3).
    /// Errors that leave the message unanswerable come first, so the
    /// error's `reply_code` is right for the message as a whole.
    pub fn validate_for(&self, stream: bool) -> Result<(), ParseError> {
        // Via first: without a usable one nothing can be answered.
        if self.header(HdrKind::Via).is_none() {
            return Err(ParseError::MissingHeader(HdrKind::Via));
        }
        self.via1()?;
        for k in MANDATORY {
            if self.header(k).is_none() {
                return Err(ParseError::MissingHeader(k));
            }
        }
        if let FirstLine::Reply { status, .. } = self.first_line() {
            if !(100..=699).contains(status) {
                return Err(ParseError::BadStatus);
            }
        }
        if !self.version().eq_ignore_ascii_case(b"SIP/2.0") {
            return Err(ParseError::UnsupportedVersion);
        }
        for k in SINGLE {
            if self.headers_of(k).nth(1).is_some() {
                return Err(ParseError::DuplicateHeader(k));
            }
        }
        self.from()?;
        self.to()?;
        self.call_id()?;
        let cseq = self.cseq()?;
        if self.is_request() {
            if cseq.method_span.get(self.buf()) != self.method_bytes() {
                return Err(ParseError::CSeqMethodMismatch);
            }
            self.check_ruri()?;
        }
        match self.content_length()? {
            Some(n) => {
                let avail = self
                    .buf()
                    .len()
                    .saturating_sub(self.body_span().start as usize);
                if n as usize > avail {
                    return Err(ParseError::ContentLengthTooLarge);
                }
            }
            None if stream => return Err(ParseError::MissingContentLength),
            None => {}
        }
        self.max_forwards()?;
        Ok(())
    }

    /// A SIP/SIPS Request-URI must parse and carry no headers (RFC 3261
    /// §19.1.5); other schemes are left to the proxy (416).
    fn check_ruri(&self) -> Result<(), ParseError> {
        let r = self.ruri();
        if r.iter().any(|&c| c == b'<' || c == b'>') {
            return Err(ParseError::BadRequestUri);
        }
        let u = parse_uri(r).map_err(|_| ParseError::BadRequestUri)?;
        if matches!(u.scheme, Scheme::Sip | Scheme::Sips) && !u.headers.is_empty() {
            return Err(ParseError::BadRequestUri);
        }
        Ok(())
    }
}
