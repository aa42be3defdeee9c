//! `listen` entries: `[proto:]addr[:port]`, where proto is `udp`, `tcp`,
//! `tls` or `*`, addr an IP literal (IPv6 in `[]` when a port follows), a
//! host name, an interface name or `*`, and port a number or `*`.
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::{interface_addrs, interface_named, NetError};

/// SIP's default port (`port=` overrides it for UDP/TCP entries).
pub const DEFAULT_SIP_PORT: u16 = 5060;
/// SIP over TLS default port.
pub const DEFAULT_TLS_PORT: u16 = 5061;

/// Transport of a listen socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
}

impl Proto {
    /// The transport as a Via names it (`SIP/2.0/TCP`).
    pub fn via_name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "TLS",
        }
    }

    /// A reliable transport: no retransmissions (RFC 3261 17.1.1.2).
    pub fn is_stream(self) -> bool {
        self != Proto::Udp
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
        })
    }
}

/// One resolved listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    pub proto: Proto,
    pub addr: SocketAddr,
    /// The host as written in the spec (a host name), or the IP text for
    /// literals, interfaces and `*`. Used for `myself` checks and Via.
    pub name: String,
}

/// A listen spec split into its parts, before any resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// `None` for an absent or `*` protocol.
    pub proto: Option<Proto>,
    /// The address part without IPv6 brackets; `*` for any interface.
    pub host: String,
    /// `None` for an absent or `*` port.
    pub port: Option<u16>,
}

fn strip_proto(spec: &str) -> (Option<Proto>, &str) {
    for (prefix, proto) in [
        ("udp:", Some(Proto::Udp)),
        ("tcp:", Some(Proto::Tcp)),
        ("tls:", Some(Proto::Tls)),
        ("*:", None),
    ] {
        if spec.len() >= prefix.len()
            && spec.is_char_boundary(prefix.len())
            && spec[..prefix.len()].eq_ignore_ascii_case(prefix)
        {
            return (proto, &spec[prefix.len()..]);
        }
    }
    (None, spec)
}

fn parse_port(text: &str, spec: &str) -> Result<Option<u16>, NetError> {
    if text == "*" {
        return Ok(None);
    }
    text.parse::<u16>()
        .map(Some)
        .map_err(|_| NetError::BadPort {
            spec: spec.to_owned(),
        })
}

/// Splits a `[proto:]addr[:port]` spec.
pub fn parse_spec(spec: &str) -> Result<ListenSpec, NetError> {
    let bad = |reason| NetError::BadSpec {
        spec: spec.to_owned(),
        reason,
    };
    let (proto, rest) = strip_proto(spec.trim());
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        let port = match after {
            "" => None,
            p => parse_port(
                p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?,
                spec,
            )?,
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address inside []"));
        }
        (host, port)
    } else if rest.matches(':').count() > 1 {
        // A bare IPv6 literal cannot carry a port: every ':' is its own.
        (rest, None)
    } else if let Some((h, p)) = rest.split_once(':') {
        (h, parse_port(p, spec)?)
    } else {
        (rest, None)
    };
    if host.is_empty() {
        return Err(bad("empty address"));
    }
    Ok(ListenSpec {
        proto,
        host: host.to_owned(),
        port,
    })
}

/// Resolves the host of a spec to addresses, with the name to show for
/// each. `*` and interface names expand to several.
fn resolve_host(host: &str, port: u16) -> Result<Vec<(IpAddr, String)>, NetError> {
    let as_text = |ips: Vec<IpAddr>| {
        ips.into_iter()
            .map(|ip| (ip, ip.to_string()))
            .collect::<Vec<_>>()
    };
    if host == "*" {
        return Ok(as_text(
            interface_addrs()?
                .into_iter()
                .filter(IpAddr::is_ipv4)
                .collect(),
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![(ip, host.to_owned())]);
    }
    let on_iface = interface_named(host)?;
    if !on_iface.is_empty() {
        return Ok(as_text(on_iface));
    }
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| NetError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    // One address per name, IPv4 first, as a SIP host name in Via and
    // Record-Route stands for one socket.
    let pick = found.iter().find(|a| a.is_ipv4()).or_else(|| found.first());
    match pick {
        Some(a) => Ok(vec![(a.ip(), host.to_owned())]),
        None => Err(NetError::NoAddress {
            host: host.to_owned(),
        }),
    }
}

/// [`resolve_listen_for`] with a bare spec meaning UDP only.
pub fn resolve_listen(specs: &[String], default_port: u16) -> Result<Vec<ListenAddr>, NetError> {
    resolve_listen_for(specs, default_port, DEFAULT_TLS_PORT, &[Proto::Udp])
}

/// Resolves listen specs (from `-l` or `listen=`). With no specs, every
/// IPv4 interface address (127.0.0.1 included) on `default_port`. A spec
/// without protocol (or `*`) yields one entry per transport of `bare`
/// (SER: UDP and TCP, TLS too when enabled); its TLS entry always takes
/// `tls_port`, so it never collides with the TCP one. Duplicates are
/// dropped.
pub fn resolve_listen_for(
    specs: &[String],
    default_port: u16,
    tls_port: u16,
    bare: &[Proto],
) -> Result<Vec<ListenAddr>, NetError> {
    let parsed: Vec<ListenSpec> = if specs.is_empty() {
        vec![ListenSpec {
            proto: None,
            host: "*".into(),
            port: None,
        }]
    } else {
        specs
            .iter()
            .map(|s| parse_spec(s))
            .collect::<Result<_, _>>()?
    };
    let mut out: Vec<ListenAddr> = Vec::new();
    let expanded = parsed.into_iter().flat_map(|spec| {
        let protos: Vec<(Proto, Option<u16>)> = match spec.proto {
            Some(p) => vec![(p, spec.port)],
            None => bare
                .iter()
                .map(|&p| {
                    (
                        p,
                        if p == Proto::Tls {
                            Some(tls_port)
                        } else {
                            spec.port
                        },
                    )
                })
                .collect(),
        };
        protos
            .into_iter()
            .map(move |(p, port)| (spec.clone(), p, port))
    });
    for (spec, proto, port) in expanded {
        let port = port.unwrap_or(if proto == Proto::Tls {
            tls_port
        } else {
            default_port
        });
        let hosts = resolve_host(&spec.host, port)?;
        if hosts.is_empty() {
            return Err(NetError::NoAddress { host: spec.host });
        }
        for (ip, name) in hosts {
            let entry = ListenAddr {
                proto,
                addr: SocketAddr::new(ip, port),
                name,
            };
            if !out
                .iter()
                .any(|e| e.proto == entry.proto && e.addr == entry.addr)
            {
                out.push(entry);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ListenSpec {
        parse_spec(s).unwrap()
    }

    fn one(s: &str) -> ListenAddr {
        let mut v = resolve_listen(&[s.to_string()], 5060).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    #[test]
    fn spec_forms() {
        assert_eq!(
            spec("10.0.0.1"),
            ListenSpec {
                proto: None,
                host: "10.0.0.1".into(),
                port: None
            }
        );
        assert_eq!(spec("udp:10.0.0.1:5070").proto, Some(Proto::Udp));
        assert_eq!(spec("udp:10.0.0.1:5070").port, Some(5070));
        assert_eq!(spec("TCP:host.example").proto, Some(Proto::Tcp));
        assert_eq!(
            spec("*:10.0.0.1:*"),
            ListenSpec {
                proto: None,
                host: "10.0.0.1".into(),
                port: None
            }
        );
        assert_eq!(
            spec("[::1]:5062"),
            ListenSpec {
                proto: None,
                host: "::1".into(),
                port: Some(5062)
            }
        );
        assert_eq!(spec("tls:[2001:db8::1]").host, "2001:db8::1");
        assert_eq!(spec("::1").host, "::1");
        assert_eq!(spec("*").host, "*");
    }

    #[test]
    fn spec_errors() {
        assert!(matches!(
            parse_spec("10.0.0.1:99999"),
            Err(NetError::BadPort { .. })
        ));
        assert!(matches!(
            parse_spec("10.0.0.1:x"),
            Err(NetError::BadPort { .. })
        ));
        assert!(matches!(parse_spec("[::1"), Err(NetError::BadSpec { .. })));
        assert!(matches!(
            parse_spec("[::1]5060"),
            Err(NetError::BadSpec { .. })
        ));
        assert!(matches!(
            parse_spec("[host]:5060"),
            Err(NetError::BadSpec { .. })
        ));
        assert!(matches!(parse_spec("udp:"), Err(NetError::BadSpec { .. })));
        assert!(matches!(parse_spec(":5060"), Err(NetError::BadSpec { .. })));
    }

    #[test]
    fn literals() {
        let a = one("127.0.0.1");
        assert_eq!(
            (a.proto, a.addr, a.name.as_str()),
            (Proto::Udp, "127.0.0.1:5060".parse().unwrap(), "127.0.0.1")
        );
        assert_eq!(one("udp:127.0.0.1:5070").addr.port(), 5070);
        assert_eq!(one("tcp:127.0.0.1").proto, Proto::Tcp);
        assert_eq!(one("tls:127.0.0.1").addr.port(), 5061);
        assert_eq!(one("[::1]:5062").addr, "[::1]:5062".parse().unwrap());
        assert_eq!(
            resolve_listen(&["127.0.0.1".into()], 5080).unwrap()[0]
                .addr
                .port(),
            5080
        );
    }

    #[test]
    fn host_name_keeps_its_name() {
        let a = one("localhost:5090");
        assert!(a.addr.ip().is_loopback());
        assert_eq!(a.addr.port(), 5090);
        assert_eq!(a.name, "localhost");
    }

    #[test]
    fn interface_name_expands() {
        let v = resolve_listen(&["lo".into()], 5060).unwrap();
        assert!(v
            .iter()
            .any(|l| l.addr == "127.0.0.1:5060".parse().unwrap() && l.name == "127.0.0.1"));
    }

    #[test]
    fn no_specs_means_every_ipv4_interface() {
        let v = resolve_listen(&[], 5060).unwrap();
        assert!(v
            .iter()
            .any(|l| l.addr == "127.0.0.1:5060".parse().unwrap()));
        assert!(v.iter().all(|l| l.addr.is_ipv4() && l.proto == Proto::Udp));
    }

    #[test]
    fn a_bare_spec_opens_every_transport_asked_for() {
        let all = [Proto::Udp, Proto::Tcp, Proto::Tls];
        let v = resolve_listen_for(&["127.0.0.1:5070".into()], 5060, 5071, &all).unwrap();
        let got: Vec<(Proto, u16)> = v.iter().map(|l| (l.proto, l.addr.port())).collect();
        assert_eq!(
            got,
            [(Proto::Udp, 5070), (Proto::Tcp, 5070), (Proto::Tls, 5071)]
        );
        let v = resolve_listen_for(&["tcp:127.0.0.1".into()], 5060, 5071, &all).unwrap();
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn duplicates_are_dropped() {
        let v = resolve_listen(&["127.0.0.1".into(), "udp:127.0.0.1:5060".into()], 5060).unwrap();
        assert_eq!(v.len(), 1);
    }
}
