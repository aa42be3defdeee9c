//! Where a message goes: the next hop of a request from its URI
//! (`maddr`, host, port, `transport`), the way back of a reply from its
//! second Via, and name resolution — the system resolver for names in the
//! config (at load), the bounded stub resolver for names in messages.
//! A destination names its transport, so TCP and TLS take their place
//! beside UDP here.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::net::Proto;
use crate::sip::{parse_uri, Msg, Scheme, Transport, Via};

/// Why a URI gives no destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DestError {
    #[error("the URI does not parse")]
    BadUri,
    #[error("the host does not resolve")]
    Unresolvable,
}

/// Where a request for `uri` goes: the first of [`destinations_of`].
pub fn destination_of(
    uri: &[u8],
    port_override: Option<u16>,
) -> Result<(SocketAddr, Proto), DestError> {
    let t = destinations_of(uri, port_override)?;
    t.first()
        .map(|t| (t.addr, t.proto))
        .ok_or(DestError::Unresolvable)
}

/// Every address a request for `uri` may go to, in the order to try
/// (RFC 3263: `maddr` or host, port, `transport`; SRV when no port is
/// given, NAPTR with `dns_try_naptr` when no transport is). Names go
/// through the bounded stub resolver and the shared DNS cache; this may
/// wait up to the resolver's budget (see [`next_hops`] for what a worker
/// relaying a request uses).
pub fn destinations_of(
    uri: &[u8],
    port_override: Option<u16>,
) -> Result<crate::net::dns::Targets, DestError> {
    match lookup(uri, port_override, crate::net::dns::Resolver::system())? {
        Hops::Ready(t) => Ok(t),
        // The full resolver never leaves a name unlooked-up.
        Hops::Pending(_) => Err(DestError::Unresolvable),
    }
}

/// Where a request for `uri` goes, or — for a name the DNS cache does not
/// hold while the resolver process runs — the lookup to hand it, so the
/// caller need not wait on a nameserver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hops {
    Ready(crate::net::dns::Targets),
    Pending(crate::net::dns::queue::Query),
}

/// [`destinations_of`] for a worker: from the cache only when lookups can
/// be left to the resolver process (`use_dns_cache`), else bounded as
/// there.
pub fn next_hops(uri: &[u8], port_override: Option<u16>) -> Result<Hops, DestError> {
    use crate::net::dns::{queue, Resolver};
    let r = if queue::enabled() {
        Resolver::cache_only()
    } else {
        Resolver::system()
    };
    lookup(uri, port_override, r)
}

fn lookup(
    uri: &[u8],
    port_override: Option<u16>,
    resolver: &crate::net::dns::Resolver,
) -> Result<Hops, DestError> {
    use crate::net::dns::{queue::Query, DnsError, Target};
    let u = parse_uri(uri).map_err(|_| DestError::BadUri)?;
    let proto = match u.transport.map(|t| t.get(uri).to_ascii_lowercase()) {
        Some(t) if t == b"tcp" => Some(Proto::Tcp),
        Some(t) if t == b"tls" => Some(Proto::Tls),
        Some(t) if t == b"udp" => Some(Proto::Udp),
        _ if matches!(u.scheme, Scheme::Sips) => Some(Proto::Tls),
        _ => None,
    };
    let port = port_override.or(u.port).filter(|p| *p != 0);
    let host = u
        .maddr
        .map(|m| m.get(uri))
        .unwrap_or_else(|| u.host.get(uri));
    if let Some(a) = numeric(host, port.unwrap_or(0)) {
        // The hot path: most next hops are addresses.
        let proto = proto.unwrap_or(Proto::Udp);
        let port = port.unwrap_or(if proto == Proto::Tls { 5061 } else { 5060 });
        return Ok(Hops::Ready(vec![Target {
            addr: SocketAddr::new(a.ip(), port),
            proto,
        }]));
    }
    let h = std::str::from_utf8(host).map_err(|_| DestError::Unresolvable)?;
    let sips = matches!(u.scheme, Scheme::Sips);
    match resolver.targets(h, port, proto, sips) {
        Ok(t) if !t.is_empty() => Ok(Hops::Ready(t)),
        Ok(_) => Err(DestError::Unresolvable),
        Err(DnsError::NotCached) => Ok(Hops::Pending(Query {
            host: h.to_owned(),
            port,
            proto,
            sips,
        })),
        Err(e) => {
            log::debug!("cannot resolve {h:?}: {e}");
            Err(DestError::Unresolvable)
        }
    }
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

/// Where a reply goes back to: the second Via's `received`/`rport`
/// address, or its sent-by when that is an IP address. Never a DNS
/// lookup: this runs for any reply that matched no transaction, so a
/// host name here would let anyone stall a worker on a dead nameserver
/// (or use us to reflect replies to a name they control).
pub fn reply_destination(msg: &Msg) -> Result<SocketAddr, ReplyRouteError> {
    let v2 = match msg.via2() {
        Ok(Some(v)) => v,
        _ => return Err(ReplyRouteError::NoVia2),
    };
    let (host, port) = via_return(v2, msg.buf());
    numeric(host, port).ok_or(ReplyRouteError::NotNumeric)
}

/// The transport a reply goes back over: that of the Via it follows.
pub fn reply_transport(msg: &Msg) -> Proto {
    match msg.via2() {
        Ok(Some(v)) => match v.transport {
            Transport::Tcp => Proto::Tcp,
            Transport::Tls => Proto::Tls,
            _ => Proto::Udp,
        },
        _ => Proto::Udp,
    }
}

/// The host and port a Via says to answer to (RFC 3261 18.2.2, RFC 3581):
/// `received` over the sent-by host, a filled `rport` over the sent-by
/// port, 5060 when neither gives one (a port of 0 counts as none).
fn via_return<'m>(v: &Via, buf: &'m [u8]) -> (&'m [u8], u16) {
    let host = v
        .received
        .map(|r| r.get(buf))
        .unwrap_or_else(|| v.host.get(buf));
    let port = match v.rport {
        Some(Some(p)) if p != 0 => p,
        _ => v.port.filter(|p| *p != 0).unwrap_or(5060),
    };
    (host, port)
}

/// Where a reply built here for a request goes: the packet's source, or
/// with `reply_to_via` the top Via's `received`/`rport`/sent-by (a name
/// there goes through the bounded resolver; failing that, the source).
pub fn answer_destination(msg: &Msg, src: SocketAddr, reply_to_via: bool) -> SocketAddr {
    if !reply_to_via {
        return src;
    }
    match msg.via1() {
        Ok(v) => {
            let (host, port) = via_return(v, msg.buf());
            resolve_bounded(host, port).unwrap_or(src)
        }
        Err(_) => src,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
