//! Errors of the sip layer: parsing (with the reply each implies),
//! stream framing, edit-list application and reply building.

use super::hdr::HdrKind;
use thiserror::Error;

/// Why a message (or one of its headers) could not be parsed or failed the
/// tier-2 checks. `reply_code` says whether a request that failed this way
/// can still be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Nothing but line ends (or nothing at all) in the buffer.
    #[error("empty message")]
    Empty,
    /// The buffer ends before the first line or the header block is complete.
    #[error("message truncated (no end of headers)")]
    Truncated,
    /// The request line is not `Method SP Request-URI SP SIP-Version`.
    #[error("malformed request line")]
    BadRequestLine,
    /// The status line is not `SIP-Version SP 3DIGIT SP Reason-Phrase`.
    #[error("malformed status line")]
    BadStatusLine,
    /// A SIP version that is well formed but not 2.0 (answer 505).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// A header line without a token name and a colon, or a continuation
    /// line before the first header.
    #[error("malformed header line")]
    BadHeaderLine,
    /// A header every message must carry is absent.
    #[error("missing mandatory header {0:?}")]
    MissingHeader(HdrKind),
    /// A header that may appear once appears several times (RFC 4475 §3.3.8).
    #[error("duplicate single-valued header {0:?}")]
    DuplicateHeader(HdrKind),
    /// A Via value that is not a list of via-parms.
    #[error("malformed Via")]
    BadVia,
    /// A CSeq that is not `1*DIGIT LWS Method` with the number below 2^32.
    #[error("malformed CSeq")]
    BadCSeq,
    /// The CSeq method differs from the request-line method (RFC 3261 §8.1.1.5).
    #[error("CSeq method differs from request method")]
    CSeqMethodMismatch,
    /// A From, To or Contact value that is no name-addr / addr-spec.
    #[error("malformed name-addr")]
    BadNameAddr,
    /// An empty or malformed Call-ID.
    #[error("malformed Call-ID")]
    BadCallId,
    /// Content-Length is not `1*DIGIT` below 2^32 (negative included).
    #[error("malformed Content-Length")]
    BadContentLength,
    /// Content-Length claims more body than the datagram holds.
    #[error("Content-Length larger than the body")]
    ContentLengthTooLarge,
    /// A message on a stream transport without Content-Length (RFC 3261 §18.3).
    #[error("missing Content-Length on a stream")]
    MissingContentLength,
    /// Max-Forwards is not a number in 0..=255.
    #[error("malformed Max-Forwards")]
    BadMaxForwards,
    /// A URI that does not follow RFC 3261 §25 (or an empty one).
    #[error("malformed URI")]
    BadUri,
    /// The Request-URI is malformed, or is a SIP URI carrying headers or
    /// enclosed in `<>` (RFC 4475 §3.1.2.7, §3.1.2.11).
    #[error("malformed Request-URI")]
    BadRequestUri,
    /// A status code outside 100..=699.
    #[error("status code out of range")]
    BadStatus,
    /// Expires is not delta-seconds below 2^32.
    #[error("malformed Expires")]
    BadExpires,
}

impl ParseError {
    /// The reply a request that failed this way deserves, or `None` to drop
    /// it silently: a reply needs the first line and the Via, From, To,
    /// Call-ID and CSeq headers, so errors in those (or before the header
    /// index exists) mean drop. Meaningful for requests only: a broken reply
    /// is always dropped.
    pub fn reply_code(&self) -> Option<u16> {
        match self {
            ParseError::Empty
            | ParseError::Truncated
            | ParseError::BadRequestLine
            | ParseError::BadStatusLine
            | ParseError::BadHeaderLine
            | ParseError::BadVia
            | ParseError::BadStatus
            | ParseError::MissingHeader(HdrKind::Via) => None,
            // With a Via we can still answer (RFC 4475 §3.1.2.18 wants 400).
            ParseError::MissingHeader(_) => Some(400),
            ParseError::UnsupportedVersion => Some(505),
            ParseError::DuplicateHeader(_)
            | ParseError::BadCSeq
            | ParseError::CSeqMethodMismatch
            | ParseError::BadNameAddr
            | ParseError::BadCallId
            | ParseError::BadContentLength
            | ParseError::ContentLengthTooLarge
            | ParseError::MissingContentLength
            | ParseError::BadMaxForwards
            | ParseError::BadUri
            | ParseError::BadRequestUri
            | ParseError::BadExpires => Some(400),
        }
    }

    /// A short stable name, used to rate-limit log lines per kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::Truncated => "truncated",
            ParseError::BadRequestLine => "bad_request_line",
            ParseError::BadStatusLine => "bad_status_line",
            ParseError::UnsupportedVersion => "unsupported_version",
            ParseError::BadHeaderLine => "bad_header_line",
            ParseError::MissingHeader(_) => "missing_header",
            ParseError::DuplicateHeader(_) => "duplicate_header",
            ParseError::BadVia => "bad_via",
            ParseError::BadCSeq => "bad_cseq",
            ParseError::CSeqMethodMismatch => "cseq_method_mismatch",
            ParseError::BadNameAddr => "bad_name_addr",
            ParseError::BadCallId => "bad_call_id",
            ParseError::BadContentLength => "bad_content_length",
            ParseError::ContentLengthTooLarge => "content_length_too_large",
            ParseError::MissingContentLength => "missing_content_length",
            ParseError::BadMaxForwards => "bad_max_forwards",
            ParseError::BadUri => "bad_uri",
            ParseError::BadRequestUri => "bad_request_uri",
            ParseError::BadStatus => "bad_status",
            ParseError::BadExpires => "bad_expires",
        }
    }
}

/// Why a TCP/TLS byte stream could not be cut into messages (see
/// `stream::Framer`). Every one of them loses the frame boundary, so the
/// framer is poisoned and the connection must be closed, after answering
/// `reply_code` when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StreamError {
    /// Where a message must start there is neither a request line nor a
    /// status line: a byte that cannot begin a method or `SIP/`, or a
    /// complete first line the message parser would refuse. Typically the
    /// rest of a body whose Content-Length was too small, or another
    /// protocol on the port.
    #[error("no SIP start line where a message must begin")]
    BadStartLine,
    /// The header block (start line through the empty line) does not end
    /// within `limit` bytes.
    #[error("header block longer than {limit} bytes")]
    HeaderTooLarge { limit: usize },
    /// A complete header block without Content-Length (RFC 3261 §18.3:
    /// mandatory on streams). `header` is that block, for building a 400.
    #[error("missing Content-Length on a stream")]
    MissingContentLength { header: Vec<u8> },
    /// Content-Length is not `1*DIGIT` below 2^32 (negative and overflowing
    /// values included), is folded, or two of them disagree. `header` is the
    /// header block, for building a 400.
    #[error("malformed or conflicting Content-Length on a stream")]
    BadContentLength { header: Vec<u8> },
    /// Header block plus Content-Length would be `len` bytes, more than the
    /// `limit` a message may have; found before any of the body is
    /// buffered. `header` is the header block, for building a 513.
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        header: Vec<u8>,
        len: u64,
        limit: usize,
    },
    /// `next` was called again after it returned one of the errors above.
    #[error("stream framer used after an error")]
    Poisoned,
}

impl StreamError {
    /// The reply the offending request deserves before the connection is
    /// closed, or `None` to close silently (no complete header block to
    /// answer from). Whether the block holds a request, and the Via, From,
    /// To, Call-ID and CSeq a reply copies, is for the caller to parse.
    pub fn reply_code(&self) -> Option<u16> {
        match self {
            StreamError::MissingContentLength { .. } | StreamError::BadContentLength { .. } => {
                Some(400)
            }
            StreamError::MessageTooLarge { .. } => Some(513),
            StreamError::BadStartLine
            | StreamError::HeaderTooLarge { .. }
            | StreamError::Poisoned => None,
        }
    }

    /// The complete header block of the refused message, when there is one.
    pub fn header(&self) -> Option<&[u8]> {
        match self {
            StreamError::MissingContentLength { header }
            | StreamError::BadContentLength { header }
            | StreamError::MessageTooLarge { header, .. } => Some(header),
            StreamError::BadStartLine
            | StreamError::HeaderTooLarge { .. }
            | StreamError::Poisoned => None,
        }
    }

    /// A short stable name, used to rate-limit log lines per kind.
    pub fn kind(&self) -> &'static str {
        match self {
            StreamError::BadStartLine => "bad_start_line",
            StreamError::HeaderTooLarge { .. } => "header_too_large",
            StreamError::MissingContentLength { .. } => "missing_content_length",
            StreamError::BadContentLength { .. } => "bad_content_length",
            StreamError::MessageTooLarge { .. } => "message_too_large",
            StreamError::Poisoned => "poisoned",
        }
    }
}

/// Why an edit list could not be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum LumpError {
    /// An edit reaches beyond the end of the original buffer.
    #[error("edit beyond the end of the message")]
    OutOfRange,
    /// Two deletions/replacements overlap, or an insertion falls strictly
    /// inside a deleted range.
    #[error("overlapping edits")]
    Overlap,
}

/// Why a reply could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum BuildError {
    /// Replies are built for requests only.
    #[error("not a request")]
    NotARequest,
    /// The status code is outside 100..=699.
    #[error("status code out of range")]
    BadCode,
    /// The reason phrase or a header value contains CR or LF.
    #[error("line break in reason or header value")]
    BadText,
    /// The request lacks a header the reply must copy.
    #[error("request lacks {0:?}")]
    MissingHeader(HdrKind),
    /// The first Via cannot be parsed, so the reply cannot be routed.
    #[error("unparsable Via")]
    BadVia,
    /// Even the bare `500` that replaces an oversized reply is larger than
    /// one datagram (the request's own Vias fill it).
    #[error("a reply of {len} bytes does not fit one datagram")]
    TooLarge { len: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_kinds() {
        assert_eq!(ParseError::BadCSeq.reply_code(), Some(400));
        assert_eq!(ParseError::MissingHeader(HdrKind::Via).reply_code(), None);
        assert_eq!(ParseError::UnsupportedVersion.reply_code(), Some(505));
        assert_eq!(ParseError::Truncated.reply_code(), None);
        assert_eq!(
            ParseError::ContentLengthTooLarge.kind(),
            "content_length_too_large"
        );
    }
}
