//! Stateless forwarding: requests to a next hop with our Via on top, and
//! replies back along their Via path (RFC 3261 §16.11, §18.2.2).
//!
//! Everything is an edit of the received bytes (lumps): the new Via goes
//! in front of the first Via line, `received`/`rport` are appended to the
//! sender's Via, the R-URI is replaced when the script rewrote it.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::net::{send_udp, ListenSocket, Proto};
use crate::route::ctx::{MsgCtx, ScriptError};
use crate::route::runtime::Runtime;
use crate::sip::{parse_uri, push_via, HdrKind, Lumps, Msg, Scheme, Span, Via};
use crate::util::hash::fnv64;

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
    let mut out = Vec::new();
    if want_rport || host_ip != Some(src.ip()) {
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

/// Branch id for a statelessly forwarded request: a function of what
/// identifies the transaction, so retransmissions, the CANCEL and the ACK
/// of a negative reply get the same branch (§16.11).
fn stateless_branch(ctx: &MsgCtx<'_>, dst: SocketAddr) -> Vec<u8> {
    let msg = ctx.msg;
    let buf = msg.buf();
    let dst_s = dst.to_string();
    let h = match msg.via1() {
        Ok(v)
            if v.branch
                .map(|b| b.get(buf).starts_with(b"z9hG4bK"))
                .unwrap_or(false) =>
        {
            fnv64(
                1,
                &[
                    v.branch.map(|b| b.get(buf)).unwrap_or(&[]),
                    v.host.get(buf),
                    ctx.ruri(),
                    dst_s.as_bytes(),
                ],
            )
        }
        _ => {
            let call_id = msg.call_id().unwrap_or(&[]);
            let cseq = msg.cseq().map(|c| c.num).unwrap_or(0).to_be_bytes();
            let ftag = msg
                .from()
                .ok()
                .and_then(|f| f.tag)
                .map(|t| t.get(buf))
                .unwrap_or(&[]);
            let via = msg.via1().map(|v| v.span.get(buf)).unwrap_or(&[]);
            fnv64(
                2,
                &[call_id, &cseq, ftag, via, ctx.ruri(), dst_s.as_bytes()],
            )
        }
    };
    format!("z9hG4bKsl{h:016x}").into_bytes()
}

/// The address we put in Via: advertised or the socket's own.
pub fn via_host_port(ctx: &MsgCtx<'_>, sock: &ListenSocket) -> (String, u16) {
    let host = ctx
        .adv_addr
        .clone()
        .or_else(|| ctx.rt.core.advertised_address.clone())
        .unwrap_or_else(|| sock.host_text());
    let port = ctx
        .adv_port
        .or(ctx.rt.core.advertised_port)
        .unwrap_or(sock.listen.addr.port());
    (host, port)
}

fn pick_socket<'r>(
    rt: &'r Runtime,
    ctx_sock: Option<usize>,
    dst: &SocketAddr,
) -> Option<&'r ListenSocket> {
    match ctx_sock {
        Some(i) => rt.sockets.all().get(i),
        None => rt.sockets.udp_for(dst),
    }
}

/// Forward the current request statelessly to `dst` over `proto`.
pub fn forward_request(ctx: &mut MsgCtx<'_>, dst: SocketAddr, proto: Proto) -> i32 {
    if !matches!(proto, Proto::Udp) {
        log::error!("forward: only UDP is available (TCP/TLS transports are not built yet)");
        return ctx.fail(ScriptError::Send);
    }
    let rt = ctx.rt;
    let Some(sock) = pick_socket(rt, ctx.send_sock, &dst) else {
        log::error!("forward: no socket to send to {dst}");
        return ctx.fail(ScriptError::Send);
    };
    let msg = ctx.msg;
    let Ok(via1) = msg.via1() else {
        return ctx.fail(ScriptError::BadRequest);
    };
    let Some(first_via) = msg.header(HdrKind::Via) else {
        return ctx.fail(ScriptError::BadRequest);
    };
    let mut lumps = ctx.lumps.clone();
    edit_via1(msg, via1, ctx.src, ctx.force_rport, &mut lumps);
    let (host, port) = via_host_port(ctx, sock);
    let branch = stateless_branch(ctx, dst);
    let mut via = Vec::with_capacity(96);
    push_via(&mut via, "UDP", &host, port, &branch, b"");
    lumps.insert(first_via.line.start as usize, &via);
    if let Some(u) = &ctx.new_uri {
        lumps.replace(msg.ruri_span(), u);
    }
    let mut out = Vec::with_capacity(msg.buf().len() + 256);
    if lumps.apply(msg.buf(), &mut out).is_err() {
        log::error!("forward: conflicting edits of the message");
        return ctx.fail(ScriptError::Server);
    }
    match send_udp(&sock.udp, &out, dst) {
        Ok(()) => 1,
        Err(e) => {
            log::error!("forward: send to {dst} failed: {e}");
            ctx.fail(ScriptError::Send)
        }
    }
}

/// Next hop of the current request from its dst-URI or R-URI: host,
/// port (5060, or 5061 for sips) and transport.
pub fn uri_destination(
    ctx: &MsgCtx<'_>,
    port_override: Option<u16>,
) -> Result<(SocketAddr, Proto), ScriptError> {
    destination_of(
        ctx.dst_uri.as_deref().unwrap_or_else(|| ctx.ruri()),
        port_override,
    )
}

/// Where a request for `uri` goes: `maddr` or host, port, `transport`.
pub fn destination_of(
    uri: &[u8],
    port_override: Option<u16>,
) -> Result<(SocketAddr, Proto), ScriptError> {
    let u = parse_uri(uri).map_err(|_| ScriptError::Uri)?;
    let proto = match u.transport.map(|t| t.get(uri).to_ascii_lowercase()) {
        Some(t) if t == b"tcp" => Proto::Tcp,
        Some(t) if t == b"tls" => Proto::Tls,
        _ if matches!(u.scheme, Scheme::Sips) => Proto::Tls,
        _ => Proto::Udp,
    };
    let default_port = if matches!(proto, Proto::Tls) {
        5061
    } else {
        5060
    };
    let port = port_override
        .or(u.port)
        .filter(|p| *p != 0)
        .unwrap_or(default_port);
    let host = u
        .maddr
        .map(|m| m.get(uri))
        .unwrap_or_else(|| u.host.get(uri));
    let addr = resolve_bounded(host, port).ok_or(ScriptError::Resolve)?;
    Ok((addr, proto))
}

/// An IP literal (`[v6]` allowed) as an address; None for a name.
pub fn numeric(host: &[u8], port: u16) -> Option<SocketAddr> {
    let h = std::str::from_utf8(host)
        .ok()?
        .trim_matches(|c| c == '[' || c == ']');
    h.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port))
}

/// Resolve a host (IP literal, `[v6]`, or name) to one address with the
/// system's full resolver (NSS), however long it takes: for names in the
/// config, at load only. While handling a message use [`resolve_bounded`].
pub fn resolve(host: &[u8], port: u16) -> Option<SocketAddr> {
    if let Some(a) = numeric(host, port) {
        return Some(a);
    }
    let h = std::str::from_utf8(host).ok()?;
    (h, port).to_socket_addrs().ok()?.next()
}

/// Resolve a host named by a message: literals directly, names through
/// the stub resolver, which gives up after [`crate::net::dns::BUDGET`].
pub fn resolve_bounded(host: &[u8], port: u16) -> Option<SocketAddr> {
    if let Some(a) = numeric(host, port) {
        return Some(a);
    }
    let h = std::str::from_utf8(host).ok()?;
    match crate::net::dns::Resolver::system().lookup(h) {
        Ok(ip) => Some(SocketAddr::new(ip, port)),
        Err(e) => {
            log::debug!("cannot resolve {h:?}: {e}");
            None
        }
    }
}

/// Why a reply could not be routed back statelessly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyRouteError {
    #[error("top Via is not ours")]
    NotOurVia,
    #[error("no second Via to route to")]
    NoVia2,
    /// RFC 3261 18.2.2 would look the name up; a reply that matched no
    /// transaction must not make a worker wait on DNS, so it is dropped.
    #[error("second Via names a host, not an address, and has no received")]
    NotNumeric,
    #[error("no socket for the destination")]
    NoSocket,
    #[error("edit conflict")]
    Edit,
    #[error("send failed")]
    Send,
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

/// Where a reply goes back to: the second Via's `received`/`rport`
/// address, or its sent-by when that is an IP address. Never a DNS
/// lookup: this runs for any reply that matched no transaction, so a
/// host name here would let anyone stall a worker on a dead nameserver
/// (or use us to reflect replies to a name they control).
pub fn reply_destination(msg: &Msg) -> Result<SocketAddr, ReplyRouteError> {
    let buf = msg.buf();
    let v2 = match msg.via2() {
        Ok(Some(v)) => v,
        _ => return Err(ReplyRouteError::NoVia2),
    };
    let host = v2
        .received
        .map(|r| r.get(buf))
        .unwrap_or_else(|| v2.host.get(buf));
    let port = match v2.rport {
        Some(Some(p)) if p != 0 => p,
        _ => v2.port.filter(|p| *p != 0).unwrap_or(5060),
    };
    numeric(host, port).ok_or(ReplyRouteError::NotNumeric)
}

/// Route a reply back by its Via: strip our Via, send to the second one's
/// `received`/`rport` address or its sent-by.
pub fn forward_reply(rt: &Runtime, msg: &Msg) -> Result<(), ReplyRouteError> {
    let v1 = msg.via1().map_err(|_| ReplyRouteError::NoVia2)?;
    if rt.core.check_via && !rt.is_myself(v1.host.get(msg.buf()), v1.port) {
        return Err(ReplyRouteError::NotOurVia);
    }
    let dst = reply_destination(msg)?;
    let sock = rt.sockets.udp_for(&dst).ok_or(ReplyRouteError::NoSocket)?;
    let mut out = Vec::with_capacity(msg.buf().len());
    without_top_via(msg, &mut out)?;
    send_udp(&sock.udp, &out, dst).map_err(|_| ReplyRouteError::Send)
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

    fn reply(via2: &str) -> Msg {
        let raw = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nVia: {via2}\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:x@h>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        Msg::parse(raw.into_bytes()).map_err(|f| f.error).unwrap()
    }

    #[test]
    fn stray_replies_go_only_to_addresses() {
        let to = |v: &str| reply_destination(&reply(v));
        assert_eq!(
            to("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa"),
            Ok("192.0.2.1:5070".parse().unwrap())
        );
        assert_eq!(
            to("SIP/2.0/UDP [2001:db8::1];branch=z9hG4bKa"),
            Ok("[2001:db8::1]:5060".parse().unwrap())
        );
        assert_eq!(
            to("SIP/2.0/UDP pbx.example:5070;branch=z9hG4bKa;received=192.0.2.9;rport=6000"),
            Ok("192.0.2.9:6000".parse().unwrap())
        );
        // A name is never looked up: the reply is dropped instead.
        assert_eq!(
            to("SIP/2.0/UDP pbx.example:5070;branch=z9hG4bKa"),
            Err(ReplyRouteError::NotNumeric)
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
