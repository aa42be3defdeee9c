//! Challenge aggregation (RFC 3261 §16.7 step 7, SER 2.1's
//! `aggregate_challenges`): when the reply picked to go upstream is a 401
//! or 407 and other branches were challenged too, the caller must see
//! every branch's challenge at once, or it can only ever authenticate
//! towards one of the forked destinations.
//!
//! Pure over byte slices, so it is tested without a transaction: the
//! picked reply is kept as it is (status line, its own headers, body) and
//! the `WWW-Authenticate` / `Proxy-Authenticate` fields of the others are
//! added after its last header.

use crate::sip::{HdrKind, Msg};

/// Statuses whose replies carry challenges.
pub fn is_challenge(code: u16) -> bool {
    code == 401 || code == 407
}

/// Why no merged reply was built; the caller then relays the picked
/// reply as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("the picked reply does not parse")]
    Unparsable,
    #[error("the merged reply would be {len} bytes, more than the {limit} a datagram takes")]
    TooLarge { len: usize, limit: usize },
}

fn is_challenge_field(kind: HdrKind) -> bool {
    matches!(kind, HdrKind::WwwAuthenticate | HdrKind::ProxyAuthenticate)
}

/// `picked` with the challenge fields of every reply in `others` added
/// after its own headers, in the order given. Each field is copied as
/// received, continuation lines included, and ends in CRLF. `others` that
/// do not parse or carry no challenge add nothing. A result longer than
/// `limit` is refused rather than cut: a challenge cut in half is worse
/// than a missing one.
pub fn merge_challenges(
    picked: &[u8],
    others: &[&[u8]],
    limit: usize,
) -> Result<Vec<u8>, MergeError> {
    let top = Msg::parse(picked.to_vec()).map_err(|_| MergeError::Unparsable)?;
    let at = top.headers_end().min(picked.len());
    let mut added = Vec::new();
    for other in others {
        let Ok(m) = Msg::parse(other.to_vec()) else {
            continue;
        };
        for h in m.headers().iter().filter(|h| is_challenge_field(h.kind)) {
            let line = h.line.get(m.buf());
            let end = line
                .iter()
                .rposition(|c| *c != b'\r' && *c != b'\n')
                .map_or(0, |i| i + 1);
            added.extend_from_slice(&line[..end]);
            added.extend_from_slice(b"\r\n");
        }
    }
    let len = picked.len() + added.len();
    if len > limit {
        return Err(MergeError::TooLarge { len, limit });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&picked[..at]);
    out.extend_from_slice(&added);
    out.extend_from_slice(&picked[at..]);
    Ok(out)
}
