//! The pure part of nathelper: which addresses are private, how a Contact
//! URI and an SDP body look once fixed. No message context, no I/O.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::sip::{parse_uri, Span};

/// An IPv4 address of RFC 1918's private blocks (SER's `is1918addr`:
/// 10/8, 172.16/12, 192.168/16). Names and IPv6 are not.
pub fn is_1918(host: &[u8]) -> bool {
    let Some(ip) = std::str::from_utf8(host)
        .ok()
        .and_then(|h| h.parse::<Ipv4Addr>().ok())
    else {
        return false;
    };
    let o = ip.octets();
    o[0] == 10 || (o[0] == 172 && (16..32).contains(&o[1])) || (o[0] == 192 && o[1] == 168)
}

/// `host` (a Via sent-by or URI host, IPv6 possibly in brackets) as an IP.
pub(crate) fn host_ip(host: &[u8]) -> Option<IpAddr> {
    let h = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    std::str::from_utf8(h).ok()?.parse().ok()
}

/// `ip:port` as a URI host part (IPv6 in brackets).
pub(crate) fn hostport(src: SocketAddr) -> String {
    src.to_string()
}

/// The IP alone as a URI host (IPv6 in brackets).
pub(crate) fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(a) => format!("[{a}]"),
        IpAddr::V4(a) => a.to_string(),
    }
}

/// `uri` with its host and port replaced by `src` (SER 0.9
/// `fix_nated_contact`: user, parameters and headers kept). `None` if the
/// URI does not parse or has no host.
pub fn contact_to_source(uri: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
    let u = parse_uri(uri).ok()?;
    if u.host.is_empty() {
        return None;
    }
    let end = u.port_span.map(|p| p.end()).unwrap_or(u.host.end());
    let mut out = Vec::with_capacity(uri.len() + 24);
    out.extend_from_slice(uri.get(..u.host.start as usize)?);
    out.extend_from_slice(hostport(src).as_bytes());
    out.extend_from_slice(uri.get(end..)?);
    Some(out)
}

/// The port a URI names, or 5060 (SER's `SIP_PORT`; 0.9 did not treat
/// sips specially here).
pub(crate) fn uri_port(uri: &[u8]) -> Option<u16> {
    Some(parse_uri(uri).ok()?.port.unwrap_or(5060))
}

/// The host of a URI.
pub(crate) fn uri_host(uri: &[u8]) -> Option<&[u8]> {
    let u = parse_uri(uri).ok()?;
    Some(u.host.get(uri)).filter(|h| !h.is_empty())
}

/// One `c=` line's address in an SDP body: its span (relative to the
/// body) and whether it is `IP4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaAddr {
    pub span: Span,
    pub ip4: bool,
}

/// The address of every `c=` line (`c=IN IP4 192.168.1.5`), in order.
pub fn media_addrs(body: &[u8]) -> Vec<MediaAddr> {
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < body.len() {
        let rest = &body[start..];
        let line_len = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..line_len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(v) = line.strip_prefix(b"c=") {
            if let Some(m) = connection_addr(v, start + 2) {
                out.push(m);
            }
        }
        start += line_len + 1;
    }
    out
}

/// `IN IP4 addr[/ttl]` at body offset `at`.
fn connection_addr(v: &[u8], at: usize) -> Option<MediaAddr> {
    let mut fields = Vec::new();
    let mut i = 0;
    while i < v.len() {
        while i < v.len() && v[i] == b' ' {
            i += 1;
        }
        let s = i;
        while i < v.len() && v[i] != b' ' {
            i += 1;
        }
        if i > s {
            fields.push((s, i));
        }
    }
    let [_, (ts, te), (as_, ae)] = fields.get(..3)?.try_into().ok()?;
    let addr = &v[as_..ae];
    // A multicast TTL or count (`/127`) is not part of the address.
    let alen = memchr::memchr(b'/', addr).unwrap_or(addr.len());
    Some(MediaAddr {
        span: Span::new(at + as_, alen),
        ip4: &v[ts..te] == b"IP4",
    })
}

/// Does the first `c=` line name a private IPv4 address (nat_uac_test 8)?
/// `0.0.0.0` (hold) is not.
pub fn sdp_1918(body: &[u8]) -> bool {
    media_addrs(body)
        .first()
        .is_some_and(|m| m.ip4 && is_1918(m.span.get(body)))
}

/// A line appended to an SDP body: after its last line when it ends in a
/// line break, else after a CRLF of our own. (SER 0.9 always put CRLF
/// first, which left an empty line in bodies that ended properly.)
pub(crate) fn sdp_line(body: &[u8], line: &str) -> Vec<u8> {
    if body.is_empty() || body.ends_with(b"\n") {
        format!("{line}\r\n").into_bytes()
    } else {
        format!("\r\n{line}").into_bytes()
    }
}
