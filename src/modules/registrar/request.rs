//! A REGISTER read into what `save` needs (RFC 3261 §10.3 steps 5–6):
//! the AOR, Call-ID/CSeq, and each Contact with its final expiry and q.

use std::net::SocketAddr;

use crate::sip::{parse_contacts, parse_uri, HdrKind, Msg, Scheme};

use super::aor::{aor_of, AorError, AorRule};
use super::config::RegCfg;
use super::save::RegError;

/// What the Contact headers ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// No Contact: report the current bindings.
    Query,
    /// `Contact: *` with `Expires: 0`: remove them all.
    Star,
    List(Vec<NewContact>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    /// The URI without `<>` and header parameters.
    pub uri: Vec<u8>,
    /// Final expiry in seconds (0 = remove).
    pub expires_s: u32,
    /// q × 1000 or `Q_UNSPECIFIED`.
    pub q: i32,
    /// `sip:ip:port` to reach it through a NAT, or empty.
    pub received: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegRequest {
    pub aor: Vec<u8>,
    pub call_id: Vec<u8>,
    pub cseq: u32,
    pub user_agent: Vec<u8>,
    /// The script marked the request as coming from behind a NAT.
    pub nat: bool,
    pub contacts: Contacts,
}

/// Where the request came from, as the NAT handling needs it.
#[derive(Debug, Clone)]
pub struct Origin {
    pub src: SocketAddr,
    /// `nat_flag` is set on the message.
    pub nat: bool,
    /// The value of `received_avp`, when configured and present.
    pub received_avp: Option<Vec<u8>>,
    /// nathelper's `fix_nated_contact`: the first Contact URI's span and
    /// its rewritten text, which is what gets stored (as in SER 0.9).
    pub contact_fix: Option<(crate::sip::Span, Vec<u8>)>,
}

impl RegRequest {
    pub fn from_msg(
        msg: &Msg,
        cfg: &RegCfg,
        rule: &AorRule,
        origin: &Origin,
    ) -> Result<Self, RegError> {
        let buf = msg.buf();
        let to = msg.to().map_err(|_| RegError::ToMissing)?;
        let aor = aor_of(to.uri.get(buf), rule).map_err(|e| match e {
            AorError::NoUser => RegError::NoUser,
            AorError::Parse | AorError::Unescape => RegError::AorParse,
        })?;
        let call_id = msg.call_id().map_err(|_| RegError::CallIdMissing)?.to_vec();
        let cseq = msg.cseq().map_err(|_| RegError::CSeqMissing)?.num;
        let header_expires = msg.expires().map_err(|_| RegError::BadExpires)?;
        let user_agent = msg
            .header(HdrKind::UserAgent)
            .map(|h| msg.value(h).to_vec())
            .unwrap_or_default();

        let mut parsed = Vec::new();
        for h in msg.headers_of(HdrKind::Contact) {
            match parse_contacts(buf, h.value) {
                Ok(v) => parsed.extend(v),
                Err(_) if star_in_list(msg.value(h)) => return Err(RegError::StarNotAlone),
                Err(_) => return Err(RegError::BadContact),
            }
        }
        let contacts = if parsed.is_empty() {
            Contacts::Query
        } else if parsed.iter().any(|c| c.star) {
            // RFC 3261 §10.3 step 6: `*` stands alone, with Expires: 0.
            if parsed.len() > 1 {
                return Err(RegError::StarNotAlone);
            }
            if header_expires != Some(0) {
                return Err(RegError::StarExpires);
            }
            Contacts::Star
        } else {
            let list = parsed
                .iter()
                .map(|c| {
                    let uri = match &origin.contact_fix {
                        Some((span, fixed)) if *span == c.addr.uri => fixed.clone(),
                        _ => c.addr.uri.get(buf).to_vec(),
                    };
                    NewContact {
                        expires_s: cfg.expiry(c.expires, header_expires),
                        q: c.q.map(i32::from).unwrap_or(cfg.default_q),
                        received: received_for(&uri, origin),
                        uri,
                    }
                })
                .collect();
            Contacts::List(list)
        };
        Ok(RegRequest {
            aor,
            call_id,
            cseq,
            user_agent,
            nat: origin.nat,
            contacts,
        })
    }
}

/// `*, <sip:…>`: the parser refuses it as a list; SER names the reason.
fn star_in_list(value: &[u8]) -> bool {
    value
        .split(|&c| c == b',')
        .any(|item| item.trim_ascii() == b"*")
}

/// A NATed phone's Contact names an address we cannot reach; remember
/// where its REGISTER really came from so `lookup` can send there.
fn received_for(contact: &[u8], origin: &Origin) -> Vec<u8> {
    if !origin.nat {
        return Vec::new();
    }
    if let Some(r) = &origin.received_avp {
        return r.clone();
    }
    let Ok(u) = parse_uri(contact) else {
        return Vec::new();
    };
    let default_port = if u.scheme == Scheme::Sips { 5061 } else { 5060 };
    let port = u.port.unwrap_or(default_port);
    let host = u.host.get(contact);
    let host = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    let same_host = std::str::from_utf8(host)
        .ok()
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip == origin.src.ip());
    if same_host && port == origin.src.port() {
        Vec::new()
    } else {
        // SocketAddr prints IPv6 in brackets, as a SIP URI wants it.
        format!("sip:{}", origin.src).into_bytes()
    }
}
