//! The address-of-record of a URI, as SER keys its location table: the
//! unescaped user part, plus `@host` when usrloc's `use_domain` is on.
//! Case folding is usrloc's business (its `case_sensitive`).

use crate::sip::{parse_uri, Scheme};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AorError {
    #[error("URI does not parse")]
    Parse,
    /// SER keys bindings by user; a URI without one has no AOR.
    #[error("URI has no user part")]
    NoUser,
    #[error("bad %-escape in the user part")]
    Unescape,
}

/// How AORs are formed (module parameters).
#[derive(Debug, Clone, Default)]
pub struct AorRule {
    pub use_domain: bool,
    /// Stripped from the front of the host (registrar's `realm_prefix`).
    pub realm_prefix: String,
}

/// The AOR of `uri` under `rule`.
pub fn aor_of(uri: &[u8], rule: &AorRule) -> Result<Vec<u8>, AorError> {
    let u = parse_uri(uri).map_err(|_| AorError::Parse)?;
    if matches!(u.scheme, Scheme::Other) {
        return Err(AorError::Parse);
    }
    let user = u.user.map(|s| s.get(uri)).unwrap_or(&[]);
    if user.is_empty() {
        return Err(AorError::NoUser);
    }
    let mut aor = unescape(user).ok_or(AorError::Unescape)?;
    if rule.use_domain {
        let mut host = u.host.get(uri);
        let prefix = rule.realm_prefix.as_bytes();
        if !prefix.is_empty() && host.len() > prefix.len() && host.starts_with(prefix) {
            host = host.get(prefix.len()..).unwrap_or(host);
        }
        aor.push(b'@');
        aor.extend_from_slice(host);
    }
    Ok(aor)
}

/// `%XX` escapes decoded, so `sip:al%69ce@h` and `sip:alice@h` are one AOR
/// (RFC 3261 §19.1.4 compares users unescaped).
fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'%' {
            let hi = hex(*s.get(i + 1)?)?;
            let lo = hex(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_or_user_at_host() {
        let plain = AorRule::default();
        assert_eq!(
            aor_of(b"sip:alice@example.com:5070;transport=udp", &plain).unwrap(),
            b"alice"
        );
        assert_eq!(
            aor_of(b"sip:al%69ce@example.com", &plain).unwrap(),
            b"alice"
        );
        let dom = AorRule {
            use_domain: true,
            realm_prefix: "sip.".into(),
        };
        assert_eq!(
            aor_of(b"sip:alice@sip.example.com:5070", &dom).unwrap(),
            b"alice@example.com"
        );
        assert_eq!(aor_of(b"sips:bob@h.org", &dom).unwrap(), b"bob@h.org");
    }

    #[test]
    fn refused() {
        let r = AorRule::default();
        assert_eq!(aor_of(b"sip:example.com", &r), Err(AorError::NoUser));
        assert_eq!(aor_of(b"not a uri", &r), Err(AorError::Parse));
        assert_eq!(aor_of(b"mailto:a@b", &r), Err(AorError::Parse));
    }
}
