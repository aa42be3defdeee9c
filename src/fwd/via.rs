//! Via editing on the way through: the `received`/`rport` a server adds
//! to the sender's Via (RFC 3261 18.2.1, RFC 3581), and a reply without
//! our own Via on its way back (18.2.2).

use std::net::{IpAddr, SocketAddr};

use crate::fwd::ReplyRouteError;
use crate::sip::{HdrKind, Lumps, Msg, Span, Via};

/// The `received`/`rport` parameters RFC 3261 §18.2.1 and RFC 3581 ask a
/// server to add to the top Via of a request it received; empty when
/// none is needed. Also used for the Via of locally built replies.
pub fn via1_received_params(msg: &Msg, src: SocketAddr, force_rport: bool) -> Vec<u8> {
    let Ok(v) = msg.via1() else { return Vec::new() };
    let host = v.host.get(msg.buf());
    let host_ip = std::str::from_utf8(host).ok().and_then(|h| {
        h.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok()
    });
    let want_rport = force_rport || matches!(v.rport, Some(None));
    let same_host = match host_ip {
        Some(ip) => ip == src.ip(),
        // A name: SER's `dns`/`rev_dns` may find it is the source.
        None => std::str::from_utf8(host)
            .is_ok_and(|h| crate::net::dns::Resolver::system().via_host_is(h, src.ip())),
    };
    let mut out = Vec::new();
    if want_rport || !same_host {
        out.extend_from_slice(b";received=");
        out.extend_from_slice(src.ip().to_string().as_bytes());
    }
    if want_rport {
        out.extend_from_slice(b";rport=");
        out.extend_from_slice(src.port().to_string().as_bytes());
    }
    out
}

/// The params of the top Via that [`via1_received_params`] replaces: an
/// empty or stale `rport` and an old `received`, as whole `;name=value`
/// spans. Empty when nothing is added.
pub fn via1_replaced_spans(msg: &Msg, src: SocketAddr, force_rport: bool) -> Vec<Span> {
    let Ok(v) = msg.via1() else { return Vec::new() };
    if via1_received_params(msg, src, force_rport).is_empty() {
        return Vec::new();
    }
    let mut spans = Vec::with_capacity(2);
    if let Some(rs) = v.rport_span {
        spans.push(rs);
    }
    if let Some(r) = v.received {
        // The value span, widened to the whole ";received=..." param.
        let start = (r.start as usize).saturating_sub(";received=".len());
        spans.push(Span::new(start, r.end() - start));
    }
    spans
}

/// Add the received/rport edits to `lumps`, replacing rather than
/// duplicating params already there.
pub fn edit_via1(msg: &Msg, v: &Via, src: SocketAddr, force_rport: bool, lumps: &mut Lumps) {
    let params = via1_received_params(msg, src, force_rport);
    if params.is_empty() {
        return;
    }
    for s in via1_replaced_spans(msg, src, force_rport) {
        lumps.delete(s);
    }
    lumps.insert(v.span.end(), &params);
}

/// Append `msg` without its top via-parm to `out` (a reply on its way
/// back: our Via goes, the rest stays, whether the Vias share a header
/// line or not).
pub fn without_top_via(msg: &Msg, out: &mut Vec<u8>) -> Result<(), ReplyRouteError> {
    let v1 = msg.via1().map_err(|_| ReplyRouteError::NoVia2)?;
    let first = msg.header(HdrKind::Via).ok_or(ReplyRouteError::NoVia2)?;
    let mut lumps = Lumps::default();
    match msg.via2() {
        Ok(Some(v2)) if (v2.span.start as usize) < first.line.end() => {
            // Both in one header: delete "via1, " up to the second via-parm.
            lumps.delete(Span::new(
                v1.span.start as usize,
                (v2.span.start - v1.span.start) as usize,
            ));
        }
        _ => lumps.delete(first.line),
    }
    lumps
        .apply(msg.buf(), out)
        .map_err(|_| ReplyRouteError::Edit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{build_reply, ReplyOpts};

    fn req(via: &str) -> Msg {
        let raw = format!(
            "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\n\
             Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        Msg::parse(raw.into_bytes()).map_err(|f| f.error).unwrap()
    }

    fn src() -> SocketAddr {
        "127.0.0.1:5062".parse().unwrap()
    }

    fn first_via(out: &[u8]) -> String {
        let s = String::from_utf8_lossy(out).into_owned();
        s.lines()
            .find(|l| l.starts_with("Via:"))
            .unwrap()
            .to_string()
    }

    #[test]
    fn empty_rport_is_filled_not_duplicated() {
        let m = req("SIP/2.0/UDP client.invalid:5062;branch=z9hG4bKa;rport;alias");
        let extra = via1_received_params(&m, src(), false);
        assert_eq!(extra, b";received=127.0.0.1;rport=5062");
        let drop = via1_replaced_spans(&m, src(), false);
        let mut out = Vec::new();
        let opts = ReplyOpts {
            via1_extra: &extra,
            via1_drop: &drop,
            ..Default::default()
        };
        build_reply(&m, 200, b"OK", &opts, &mut out).unwrap();
        assert_eq!(first_via(&out), "Via: SIP/2.0/UDP client.invalid:5062;branch=z9hG4bKa;alias;received=127.0.0.1;rport=5062");

        let mut lumps = Lumps::default();
        edit_via1(&m, m.via1().unwrap(), src(), false, &mut lumps);
        let mut fwd = Vec::new();
        lumps.apply(m.buf(), &mut fwd).unwrap();
        assert_eq!(first_via(&fwd), "Via: SIP/2.0/UDP client.invalid:5062;branch=z9hG4bKa;alias;received=127.0.0.1;rport=5062");
    }

    #[test]
    fn matching_source_needs_no_params() {
        let m = req("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKa");
        assert!(via1_received_params(&m, src(), false).is_empty());
        assert!(via1_replaced_spans(&m, src(), false).is_empty());
        // force_rport asks for both even when the address matches.
        assert_eq!(
            via1_received_params(&m, src(), true),
            b";received=127.0.0.1;rport=5062"
        );
    }

    #[test]
    fn stale_received_is_replaced() {
        let m = req("SIP/2.0/UDP h.invalid;received=10.0.0.1;branch=z9hG4bKa");
        let mut lumps = Lumps::default();
        edit_via1(&m, m.via1().unwrap(), src(), false, &mut lumps);
        let mut fwd = Vec::new();
        lumps.apply(m.buf(), &mut fwd).unwrap();
        assert_eq!(
            first_via(&fwd),
            "Via: SIP/2.0/UDP h.invalid;branch=z9hG4bKa;received=127.0.0.1"
        );
    }
}
