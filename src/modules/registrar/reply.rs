//! The header lines of the registrar's replies.
//!
//! A 200 OK carries one `Contact:` line listing every live binding of the
//! AOR as `<uri>[;q=Q];expires=N`, joined by `, ` (SER 0.9's format; RFC
//! 3261 §10.3 step 8). No `Date:` — SER's registrar added none (scripts
//! use textops `append_time()`). Errors carry `P-Registrar-Error:`.

use crate::modules::usrloc::Binding;

use super::save::RegError;

/// Status, reason and extra header lines of one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegReply {
    pub code: u16,
    pub reason: &'static str,
    pub headers: Vec<u8>,
}

/// The `Contact:` line for `bindings` at `now_ms`, highest q first
/// (lookup order); empty when there are none.
pub fn contact_line(bindings: &[Binding], now_ms: u64) -> Vec<u8> {
    let mut live: Vec<&Binding> = bindings.iter().filter(|b| b.is_live(now_ms)).collect();
    if live.is_empty() {
        return Vec::new();
    }
    live.sort_by_key(|b| b.order_key());
    let mut out = b"Contact: ".to_vec();
    for (i, b) in live.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'<');
        out.extend_from_slice(&b.contact);
        out.push(b'>');
        if let Some(q) = b.q_text() {
            out.extend_from_slice(b";q=");
            out.extend_from_slice(q.as_bytes());
        }
        out.extend_from_slice(format!(";expires={}", b.expires_in_s(now_ms)).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

pub fn ok(bindings: &[Binding], now_ms: u64) -> RegReply {
    RegReply {
        code: 200,
        reason: "OK",
        headers: contact_line(bindings, now_ms),
    }
}

/// The reply refusing a REGISTER; `retry_after` (s, 0 = none) goes on
/// the 503 for too many contacts.
pub fn error(e: RegError, retry_after: u32) -> RegReply {
    let (code, reason) = e.status();
    let mut headers = format!("P-Registrar-Error: {}\r\n", e.info()).into_bytes();
    if e == RegError::TooMany && retry_after > 0 {
        headers.extend_from_slice(format!("Retry-After: {retry_after}\r\n").as_bytes());
    }
    RegReply {
        code,
        reason,
        headers,
    }
}
