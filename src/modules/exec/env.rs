//! The environment a command sees with `setvars` on (SER 0.9's
//! `exec_hf.c`): one `SIP_HF_<NAME>` per header name, and the well-known
//! `SIP_TID SIP_DID SIP_SRCIP SIP_RURI SIP_ORURI SIP_USER SIP_OUSER`.
//!
//! Everything here comes from the network, so it only ever travels as
//! variable *values*. Names are built from `SIP_HF_` and the header name
//! reduced to `[A-Z0-9_]`, so no header can name (or replace) `PATH`,
//! `LD_PRELOAD` or `BASH_FUNC_…`. Values lose NUL bytes (which cannot
//! be in the environment) and folded lines are unfolded.
//!
//! SER's C source spells the original URI's variable `SIP_ORUI` while its
//! README documents `SIP_ORURI`; both are set.

use crate::route::MsgCtx;
use crate::sip::{hdr, parse_uri, Msg};
use crate::util::hash::hex128;

pub type Vars = Vec<(Vec<u8>, Vec<u8>)>;

/// `SIP_HF_` + the header's full name in capitals, other symbols as `_`.
fn hf_var_name(name: &[u8]) -> Vec<u8> {
    let full = hdr::full_name(name).unwrap_or(name);
    let mut v = b"SIP_HF_".to_vec();
    v.extend(full.iter().map(|c| match c {
        b'a'..=b'z' => c.to_ascii_uppercase(),
        b'A'..=b'Z' | b'0'..=b'9' => *c,
        _ => b'_',
    }));
    v
}

/// A header value as one line: folding (CRLF + white space) becomes one
/// space, stray CR/LF a space, NUL dropped.
fn env_value(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'\r' | b'\n' => {
                while i < v.len() && matches!(v[i], b'\r' | b'\n' | b' ' | b'\t') {
                    i += 1;
                }
                out.push(b' ');
                continue;
            }
            0 => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// One variable per header name, in the order names first appear;
/// repeated headers joined with `,` as SER does.
pub fn header_vars(msg: &Msg) -> Vars {
    let mut vars: Vars = Vec::new();
    for h in msg.headers() {
        let name = hf_var_name(h.name.get(msg.buf()));
        let value = env_value(msg.value(h));
        match vars.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(b',');
                v.extend_from_slice(&value);
            }
            None => vars.push((name, value)),
        }
    }
    vars
}

/// SIP_TID: the same for a request, its retransmissions and the CANCEL
/// or ACK of it: the RFC 3261 branch of the top Via, else (RFC 2543
/// peers) a digest of Call-ID, From tag, CSeq number and the top Via.
pub fn transaction_id(msg: &Msg) -> Vec<u8> {
    let buf = msg.buf();
    if let Ok(via) = msg.via1() {
        if let Some(b) = via.branch.map(|s| s.get(buf)) {
            if b.starts_with(b"z9hG4bK") {
                return env_value(b);
            }
        }
    }
    let call_id = msg.call_id().unwrap_or_default();
    let from_tag = msg
        .from()
        .ok()
        .and_then(|f| f.tag)
        .map(|t| t.get(buf))
        .unwrap_or_default();
    let cseq = msg.cseq().map(|c| c.num.to_string()).unwrap_or_default();
    let via = msg.via1().map(|v| v.span.get(buf)).unwrap_or_default();
    hex128(&[call_id, from_tag, cseq.as_bytes(), via]).into_bytes()
}

fn user_of(uri: &[u8]) -> Vec<u8> {
    parse_uri(uri)
        .ok()
        .and_then(|u| u.user)
        .map(|s| env_value(s.get(uri)))
        .unwrap_or_default()
}

/// Everything `setvars` exports for the message being processed.
pub fn sip_vars(ctx: &MsgCtx<'_>) -> Vars {
    let msg = ctx.msg;
    let mut vars = header_vars(msg);
    let did = msg
        .to()
        .ok()
        .and_then(|t| t.tag)
        .map(|t| env_value(t.get(msg.buf())))
        .unwrap_or_default();
    let oruri = env_value(msg.ruri());
    vars.push((b"SIP_TID".to_vec(), transaction_id(msg)));
    vars.push((b"SIP_DID".to_vec(), did));
    vars.push((b"SIP_SRCIP".to_vec(), ctx.src.ip().to_string().into_bytes()));
    vars.push((b"SIP_RURI".to_vec(), env_value(ctx.ruri())));
    vars.push((b"SIP_ORURI".to_vec(), oruri.clone()));
    vars.push((b"SIP_ORUI".to_vec(), oruri));
    vars.push((b"SIP_USER".to_vec(), user_of(ctx.ruri())));
    vars.push((b"SIP_OUSER".to_vec(), user_of(msg.ruri())));
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(raw: &str) -> Msg {
        Msg::parse(raw.replace('\n', "\r\n").into_bytes()).unwrap()
    }

    fn get<'a>(vars: &'a Vars, name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\n\
        v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\n\
        Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKdef\n\
        f: <sip:alice@example.com>;tag=1\n\
        To: <sip:bob@example.com>\n\
        i: call-1\n\
        CSeq: 1 INVITE\n\
        X-Weird.Name!: $(reboot)\n\
        Subject: folded\n  over two lines\n\
        Content-Length: 0\n\n";

    #[test]
    fn headers_become_sip_hf_variables() {
        let vars = header_vars(&msg(INVITE));
        assert_eq!(
            get(&vars, "SIP_HF_VIA"),
            Some("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc,SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKdef")
        );
        assert_eq!(
            get(&vars, "SIP_HF_FROM"),
            Some("<sip:alice@example.com>;tag=1")
        );
        assert_eq!(get(&vars, "SIP_HF_CALL_ID"), Some("call-1"));
        assert_eq!(get(&vars, "SIP_HF_CSEQ"), Some("1 INVITE"));
        assert_eq!(get(&vars, "SIP_HF_X_WEIRD_NAME_"), Some("$(reboot)"));
        assert_eq!(get(&vars, "SIP_HF_SUBJECT"), Some("folded over two lines"));
        assert!(vars.iter().all(|(n, _)| n
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')));
    }

    #[test]
    fn transaction_ids() {
        assert_eq!(transaction_id(&msg(INVITE)), b"z9hG4bKabc");
        let old = INVITE.replace("branch=z9hG4bKabc", "branch=1");
        let cancel = old
            .replace("INVITE sip", "CANCEL sip")
            .replace("1 INVITE", "1 CANCEL");
        let a = transaction_id(&msg(&old));
        assert_eq!(a.len(), 32);
        assert_eq!(a, transaction_id(&msg(&cancel)));
    }

    #[test]
    fn values_lose_nul_and_line_breaks() {
        assert_eq!(env_value(b"a\0b\r\n c\nd"), b"ab c d");
    }
}
