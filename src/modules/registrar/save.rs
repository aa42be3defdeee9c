//! Applying a REGISTER to an AOR's bindings (RFC 3261 §10.3 steps 6–8).
//!
//! Pure: runs under the location store's lock on the record's bindings
//! and either changes them as a whole or leaves them untouched.

use crate::modules::usrloc::Binding;

use super::config::RegCfg;
use super::request::{Contacts, RegRequest};

/// Binding flag: registered from behind a NAT (SER's FL_NAT); `lookup`
/// sets the message's `nat_flag` again when it picks such a binding.
pub const FL_NAT: u32 = 1;

/// Why a REGISTER is refused. Each knows its reply (SER 0.9's codes) and
/// the text of the `P-Registrar-Error` header that explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegError {
    #[error("To header missing or malformed")]
    ToMissing,
    #[error("To URI has no user")]
    NoUser,
    #[error("To URI cannot be turned into an address-of-record")]
    AorParse,
    #[error("Call-ID header missing or malformed")]
    CallIdMissing,
    #[error("CSeq header missing or malformed")]
    CSeqMissing,
    #[error("Expires header is not a number")]
    BadExpires,
    #[error("Contact header malformed")]
    BadContact,
    #[error("Contact * needs Expires: 0")]
    StarExpires,
    #[error("Contact * must be the only contact")]
    StarNotAlone,
    #[error("more contacts than max_contacts")]
    TooMany,
    #[error("location store failure")]
    Store,
}

impl RegError {
    /// Status code and reason phrase of the reply.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            RegError::TooMany => (503, "Service Unavailable"),
            RegError::Store => (500, "Server Internal Error"),
            _ => (400, "Bad Request"),
        }
    }

    /// Value of the `P-Registrar-Error` header.
    pub fn info(self) -> &'static str {
        match self {
            RegError::ToMissing => "To header missing or invalid",
            RegError::NoUser => "To URI has no username",
            RegError::AorParse => "Cannot parse address of record",
            RegError::CallIdMissing => "Call-ID header missing or invalid",
            RegError::CSeqMissing => "CSeq header missing or invalid",
            RegError::BadExpires => "Invalid Expires header",
            RegError::BadContact => "Invalid Contact header",
            RegError::StarExpires => "Contact * with non-zero expires",
            RegError::StarNotAlone => "Contact * together with other contacts",
            RegError::TooMany => "Too many registered contacts",
            RegError::Store => "Location database failure",
        }
    }
}

/// The bindings after a REGISTER, for the 200 OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveOutcome {
    pub bindings: Vec<Binding>,
    /// The request was out of order or a retransmission (same Call-ID,
    /// CSeq not higher): nothing changed, SER still answers 200.
    pub stale: bool,
}

/// Apply `req` to `v` (live bindings of its AOR) at `now_ms`. On `Err`
/// and on a stale request `v` is left exactly as it was.
pub fn apply(
    v: &mut Vec<Binding>,
    req: &RegRequest,
    cfg: &RegCfg,
    now_ms: u64,
) -> Result<SaveOutcome, RegError> {
    let list = match &req.contacts {
        Contacts::Query => return Ok(outcome(v, false)),
        Contacts::Star => {
            v.clear();
            return Ok(outcome(v, false));
        }
        Contacts::List(list) => list,
    };
    // RFC 3261 §10.3 step 7: a refresh of a binding made under the same
    // Call-ID must carry a higher CSeq, else the whole update is aborted.
    let stale = list.iter().any(|c| {
        v.iter()
            .any(|b| b.contact == c.uri && b.call_id == req.call_id && req.cseq <= b.cseq)
    });
    if stale {
        return Ok(outcome(v, true));
    }
    let flags = if req.nat { FL_NAT } else { 0 };
    let mut next = v.clone();
    let mut added = false;
    for c in list {
        let pos = next.iter().position(|b| b.contact == c.uri);
        if c.expires_s == 0 {
            if let Some(i) = pos {
                next.remove(i);
            }
            continue;
        }
        let expires_ms = now_ms.saturating_add(u64::from(c.expires_s) * 1000);
        match pos.and_then(|i| next.get_mut(i)) {
            Some(b) => {
                b.expires_ms = expires_ms;
                b.q = c.q;
                b.call_id.clone_from(&req.call_id);
                b.cseq = req.cseq;
                b.flags = (b.flags & !FL_NAT) | flags;
                b.user_agent.clone_from(&req.user_agent);
                b.received.clone_from(&c.received);
                b.last_modified_ms = now_ms;
            }
            None => {
                added = true;
                next.push(Binding {
                    contact: c.uri.clone(),
                    expires_ms,
                    q: c.q,
                    call_id: req.call_id.clone(),
                    cseq: req.cseq,
                    flags,
                    user_agent: req.user_agent.clone(),
                    received: c.received.clone(),
                    last_modified_ms: now_ms,
                });
            }
        }
    }
    let max = usize::try_from(cfg.max_contacts).unwrap_or(usize::MAX);
    if added && max > 0 && next.len() > max {
        return Err(RegError::TooMany);
    }
    *v = next;
    Ok(outcome(v, false))
}

fn outcome(v: &[Binding], stale: bool) -> SaveOutcome {
    SaveOutcome {
        bindings: v.to_vec(),
        stale,
    }
}
