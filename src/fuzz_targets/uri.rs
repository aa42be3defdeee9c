//! The URI target: `parse_uri`, parameter lookup, the name-addr and
//! Contact forms around a URI, and the script's URI rewrites.

use crate::route::uri_ops::{rewrite, UriEdit, MAX_URI};
use crate::sip::{parse_contacts, parse_name_addr, parse_uri, Scheme, Span};

/// Fuzz target body. What parses must keep its promises: spans inside
/// the input, a port that is its digits, a host for sip/sips; a rewrite
/// of a parsable URI with a well-formed part gives a parsable URI.
pub fn uri(data: &[u8]) {
    if let Ok(u) = parse_uri(data) {
        let spans = [Some(u.host), Some(u.params), Some(u.headers)];
        let opt = [u.user, u.password, u.port_span, u.transport, u.maddr];
        for s in spans.iter().chain(opt.iter()).flatten() {
            assert!(s.end() <= data.len(), "span {s:?} outside the URI");
        }
        if let (Some(p), Some(sp)) = (u.port, u.port_span) {
            let digits = std::str::from_utf8(sp.get(data)).expect("port digits are ASCII");
            assert_eq!(digits.parse::<u16>().ok(), Some(p));
        }
        if matches!(u.scheme, Scheme::Sip | Scheme::Sips) {
            assert!(!u.host.get(data).is_empty(), "sip URI without a host");
            assert_eq!(u.lr, u.param(data, b"lr").is_some());
        }
        for name in [&b"transport"[..], b"maddr", b"user", b"ttl", b""] {
            let _ = u.param(data, name);
        }
        if u.scheme == Scheme::Sip && data.len() < MAX_URI - 64 {
            for edit in edits() {
                if let Ok(new) = rewrite(data, &edit) {
                    assert!(
                        parse_uri(&new).is_ok(),
                        "{edit:?} on {:?} gave {:?}",
                        String::from_utf8_lossy(data),
                        String::from_utf8_lossy(&new)
                    );
                }
            }
        }
    }
    for edit in edits() {
        let _ = rewrite(data, &edit);
    }
    // the same bytes as a header value: name-addr and Contact lists
    let whole = Span::from_to(0, data.len());
    let _ = parse_name_addr(data, whole);
    let _ = parse_contacts(data, whole);
}

/// Edits with well-formed new parts (what a loaded script may apply).
fn edits() -> [UriEdit; 8] {
    [
        UriEdit::Host(b"example.net".to_vec()),
        UriEdit::HostPort(b"192.0.2.7:5070".to_vec()),
        UriEdit::Port(b"5080".to_vec()),
        UriEdit::User(b"bob".to_vec()),
        UriEdit::UserPass(b"bob:secret".to_vec()),
        UriEdit::Prefix(b"00".to_vec()),
        UriEdit::Strip(2),
        UriEdit::StripTail(3),
    ]
}
