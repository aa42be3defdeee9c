//! Dialog helpers for our own UAC: the ACK a 2xx to our INVITE is owed
//! (RFC 3261 13.2.2.4), the remote target and the route set a reply sets
//! up (12.1.2). Pure message work plus the next hop's address.

use crate::fwd::destination_of;
use crate::net::Proto;
use crate::sip::{push_via, Msg};
use crate::util::hash::hex128;

/// The ACK our UAC owes a 2xx to its INVITE (RFC 3261 13.2.2.4): a new
/// transaction to the remote target (the 2xx's Contact) along the route
/// set (its Record-Route, reversed), with the 2xx's To-tag, the INVITE's
/// CSeq number and a fresh branch. `None` when the reply gives no usable
/// target. Returns the bytes and where they go.
pub fn dialog_ack(
    invite: &Msg,
    ok: &Msg,
    via_host: &str,
    via_port: u16,
) -> Option<(Vec<u8>, std::net::SocketAddr)> {
    use crate::sip::HdrKind;
    let target = remote_target(ok).unwrap_or_else(|| invite.ruri().to_vec());
    let routes = route_set(ok);
    let next_hop: Vec<u8> = routes.first().cloned().unwrap_or_else(|| target.clone());
    let (dst, proto) = destination_of(&next_hop, None).ok()?;
    if !matches!(proto, Proto::Udp) {
        return None;
    }
    let from = invite.header(HdrKind::From).map(|h| invite.value(h))?;
    let to = ok.header(HdrKind::To).map(|h| ok.value(h))?;
    let call_id = invite.call_id().ok()?;
    let cseq = invite.cseq().ok()?.num;
    let branch = format!(
        "z9hG4bK{}",
        &hex128(&[b"dialog-ack", call_id, &cseq.to_be_bytes(), to])[..16]
    );
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"ACK ");
    out.extend_from_slice(&target);
    out.extend_from_slice(b" SIP/2.0\r\n");
    push_via(&mut out, "UDP", via_host, via_port, branch.as_bytes(), b"");
    for (name, value) in [(&b"From"[..], from), (b"To", to), (b"Call-ID", call_id)] {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("CSeq: {cseq} ACK\r\nMax-Forwards: 70\r\n").as_bytes());
    for r in &routes {
        out.extend_from_slice(b"Route: <");
        out.extend_from_slice(r);
        out.extend_from_slice(b">\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some((out, dst))
}

/// The remote target a reply sets up: its first Contact URI (not `*`).
pub fn remote_target(reply: &Msg) -> Option<Vec<u8>> {
    let b = reply.buf();
    let h = reply.header(crate::sip::HdrKind::Contact)?;
    let contacts = crate::sip::parse_contacts(b, h.value).ok()?;
    contacts
        .first()
        .filter(|c| !c.star)
        .map(|c| c.addr.uri.get(b).to_vec())
}

/// A UAC's route set from a reply: the Record-Route URIs in reverse
/// order (RFC 3261 12.1.2). A Record-Route list has the grammar of a
/// Contact list, so the Contact parser reads it.
pub fn route_set(reply: &Msg) -> Vec<Vec<u8>> {
    let b = reply.buf();
    let mut uris: Vec<Vec<u8>> = reply
        .headers_of(crate::sip::HdrKind::RecordRoute)
        .filter_map(|h| crate::sip::parse_contacts(b, h.value).ok())
        .flatten()
        .filter(|c| !c.star)
        .map(|c| c.addr.uri.get(b).to_vec())
        .collect();
    uris.reverse();
    uris
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Msg {
        Msg::parse(b.to_vec()).map_err(|e| e.error).unwrap()
    }

    #[test]
    fn dialog_ack_follows_contact_and_reversed_record_route() {
        let invite = parse(
            b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa.1.0\r\n\
From: <sip:uac@dev.null>;tag=f1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1@x\r\nCSeq: 10 INVITE\r\n\
Content-Length: 0\r\n\r\n",
        );
        let ok = parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa.1.0\r\n\
Record-Route: <sip:127.0.0.1:5091;lr>, <sip:127.0.0.1:5090;lr>\r\n\
From: <sip:uac@dev.null>;tag=f1\r\nTo: <sip:bob@example.com>;tag=t9\r\nCall-ID: c1@x\r\n\
CSeq: 10 INVITE\r\nContact: <sip:bob@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n",
        );
        let (ack, dst) = dialog_ack(&invite, &ok, "127.0.0.1", 5060).unwrap();
        assert_eq!(dst, "127.0.0.1:5090".parse().unwrap());
        let a = parse(&ack);
        assert_eq!(a.ruri(), b"sip:bob@127.0.0.1:5070");
        let text = String::from_utf8_lossy(&ack);
        assert!(
            text.contains("To: <sip:bob@example.com>;tag=t9\r\n"),
            "{text}"
        );
        assert!(text.contains("CSeq: 10 ACK\r\n"), "{text}");
        assert!(
            text.contains("Route: <sip:127.0.0.1:5090;lr>\r\nRoute: <sip:127.0.0.1:5091;lr>\r\n"),
            "{text}"
        );
        // A new transaction: not the INVITE's branch.
        assert!(!text.contains("branch=z9hG4bKa.1.0"), "{text}");
        // No Contact and no route: back to the INVITE's R-URI.
        let bare = parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa.1.0\r\n\
From: <sip:uac@dev.null>;tag=f1\r\nTo: <sip:bob@127.0.0.1:5077>;tag=t9\r\nCall-ID: c1@x\r\n\
CSeq: 10 INVITE\r\nContent-Length: 0\r\n\r\n",
        );
        let inv2 = parse(
            b"INVITE sip:bob@127.0.0.1:5077 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa.1.0\r\n\
From: <sip:uac@dev.null>;tag=f1\r\nTo: <sip:bob@127.0.0.1:5077>\r\nCall-ID: c1@x\r\nCSeq: 10 INVITE\r\n\
Content-Length: 0\r\n\r\n",
        );
        let (_, dst) = dialog_ack(&inv2, &bare, "127.0.0.1", 5060).unwrap();
        assert_eq!(dst, "127.0.0.1:5077".parse().unwrap());
    }
}
