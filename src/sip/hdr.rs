//! Header kinds and the tier-1 header index entry.

use super::span::Span;

/// The headers the server looks at by kind; everything else is `Other`
/// and is found by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HdrKind {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    ContentLength,
    ContentType,
    MaxForwards,
    Route,
    RecordRoute,
    Expires,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    Allow,
    Event,
    Subject,
    UserAgent,
    Server,
    Accept,
    AcceptEncoding,
    ContentEncoding,
    Other,
}

/// Names of the known kinds, full form, for `from_name`.
const NAMES: &[(&[u8], HdrKind)] = &[
    (b"via", HdrKind::Via),
    (b"from", HdrKind::From),
    (b"to", HdrKind::To),
    (b"call-id", HdrKind::CallId),
    (b"cseq", HdrKind::CSeq),
    (b"contact", HdrKind::Contact),
    (b"content-length", HdrKind::ContentLength),
    (b"content-type", HdrKind::ContentType),
    (b"max-forwards", HdrKind::MaxForwards),
    (b"route", HdrKind::Route),
    (b"record-route", HdrKind::RecordRoute),
    (b"expires", HdrKind::Expires),
    (b"authorization", HdrKind::Authorization),
    (b"proxy-authorization", HdrKind::ProxyAuthorization),
    (b"www-authenticate", HdrKind::WwwAuthenticate),
    (b"proxy-authenticate", HdrKind::ProxyAuthenticate),
    (b"supported", HdrKind::Supported),
    (b"require", HdrKind::Require),
    (b"proxy-require", HdrKind::ProxyRequire),
    (b"unsupported", HdrKind::Unsupported),
    (b"allow", HdrKind::Allow),
    (b"event", HdrKind::Event),
    (b"subject", HdrKind::Subject),
    (b"user-agent", HdrKind::UserAgent),
    (b"server", HdrKind::Server),
    (b"accept", HdrKind::Accept),
    (b"accept-encoding", HdrKind::AcceptEncoding),
    (b"content-encoding", HdrKind::ContentEncoding),
];

/// Compact forms of headers that have no kind of their own (RFC 3265,
/// 3515, 3892, 4028, 3841, 4474), so `find_header` can match either form.
const OTHER_COMPACT: &[(u8, &[u8])] = &[
    (b'u', b"allow-events"),
    (b'r', b"refer-to"),
    (b'b', b"referred-by"),
    (b'x', b"session-expires"),
    (b'a', b"accept-contact"),
    (b'j', b"reject-contact"),
    (b'd', b"request-disposition"),
    (b'y', b"identity"),
    (b'n', b"identity-info"),
];

impl HdrKind {
    /// Kind of a header name: case-insensitive, compact forms understood
    /// (RFC 3261 §7.3.3). Names are never unescaped: `C%6Fntact` is an
    /// extension header (RFC 4475 §3.1.1.5).
    pub fn from_name(name: &[u8]) -> HdrKind {
        if let [c] = name {
            return match c.to_ascii_lowercase() {
                b'v' => HdrKind::Via,
                b'f' => HdrKind::From,
                b't' => HdrKind::To,
                b'i' => HdrKind::CallId,
                b'm' => HdrKind::Contact,
                b'l' => HdrKind::ContentLength,
                b'c' => HdrKind::ContentType,
                b'k' => HdrKind::Supported,
                b's' => HdrKind::Subject,
                b'e' => HdrKind::ContentEncoding,
                b'o' => HdrKind::Event,
                _ => HdrKind::Other,
            };
        }
        // Dispatch on length and first letter so a name costs one or two
        // compares, not a walk over the whole table.
        let first = name.first().map_or(0, |c| c.to_ascii_lowercase());
        let len = name.len();
        for (n, k) in NAMES {
            if n.len() == len && n.first() == Some(&first) && n.eq_ignore_ascii_case(name) {
                return *k;
            }
        }
        HdrKind::Other
    }
}

/// The full name (lower case) a compact header name stands for
/// (`v` → `via`, `u` → `allow-events`); `None` for any other name.
pub fn full_name(name: &[u8]) -> Option<&'static [u8]> {
    let [c] = name else { return None };
    match HdrKind::from_name(name) {
        HdrKind::Other => {
            let c = c.to_ascii_lowercase();
            OTHER_COMPACT.iter().find(|(k, _)| *k == c).map(|(_, n)| *n)
        }
        kind => NAMES.iter().find(|(_, k)| *k == kind).map(|(n, _)| *n),
    }
}

/// Whether two header names denote the same header (case-insensitive,
/// compact forms of `Other` headers included).
pub fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let (short, long) = match (a.len(), b.len()) {
        (1, _) => (a, b),
        (_, 1) => (b, a),
        _ => return false,
    };
    let c = short.first().map(|c| c.to_ascii_lowercase()).unwrap_or(0);
    OTHER_COMPACT
        .iter()
        .any(|(k, n)| *k == c && n.eq_ignore_ascii_case(long))
}

/// One header line as found by the tier-1 pass.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub kind: HdrKind,
    /// The name as written (compact or full).
    pub name: Span,
    /// The value with surrounding whitespace trimmed; folded lines keep
    /// their CRLF and leading whitespace inside.
    pub value: Span,
    /// From the first byte of the name through the CRLF (or LF) that ends
    /// the header, continuation lines included: delete this to remove it.
    pub line: Span,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_names_expand() {
        assert_eq!(full_name(b"v"), Some(&b"via"[..]));
        assert_eq!(full_name(b"I"), Some(&b"call-id"[..]));
        assert_eq!(full_name(b"u"), Some(&b"allow-events"[..]));
        assert_eq!(full_name(b"z"), None);
        assert_eq!(full_name(b"via"), None);
    }

    #[test]
    fn names() {
        assert_eq!(HdrKind::from_name(b"VIA"), HdrKind::Via);
        assert_eq!(HdrKind::from_name(b"v"), HdrKind::Via);
        assert_eq!(HdrKind::from_name(b"I"), HdrKind::CallId);
        assert_eq!(HdrKind::from_name(b"call-ID"), HdrKind::CallId);
        assert_eq!(HdrKind::from_name(b"m"), HdrKind::Contact);
        assert_eq!(HdrKind::from_name(b"l"), HdrKind::ContentLength);
        assert_eq!(HdrKind::from_name(b"Record-Route"), HdrKind::RecordRoute);
        assert_eq!(HdrKind::from_name(b"C%6Fntact"), HdrKind::Other);
        assert_eq!(HdrKind::from_name(b""), HdrKind::Other);
        assert_eq!(HdrKind::from_name(b"u"), HdrKind::Other);
        for (n, k) in NAMES {
            assert_eq!(HdrKind::from_name(n), *k);
        }
    }

    #[test]
    fn same_names() {
        assert!(same_name(b"X-Foo", b"x-foo"));
        assert!(same_name(b"u", b"Allow-Events"));
        assert!(same_name(b"Refer-To", b"R"));
        assert!(!same_name(b"u", b"Refer-To"));
        assert!(!same_name(b"", b"x"));
    }
}
