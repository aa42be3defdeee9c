//! RFC 3263 section 4: from a SIP URI's host, port and transport to the
//! ordered list of addresses to try. A literal address or an explicit
//! port asks for addresses only; otherwise NAPTR (SER 2.x's
//! `dns_try_naptr`, when the URI names no transport) picks transports and
//! SRV names, SRV (SER 0.9: when no port is given) picks hosts and ports
//! by priority and weight, and a name without SRV records is used with the
//! transport's default port. The whole procedure shares one deadline.

use std::net::SocketAddr;
use std::time::Instant;

use super::{DnsError, Naptr, QType, RData, Resolver, Srv};
use crate::net::Proto;

/// One address to send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub proto: Proto,
}

/// Where a request goes, in order (the first, then the next on failure).
pub type Targets = Vec<Target>;

/// At most this many targets are kept: enough for any sane failover.
const MAX_TARGETS: usize = 16;

fn default_port(proto: Proto) -> u16 {
    if proto == Proto::Tls {
        5061
    } else {
        5060
    }
}

fn srv_name(host: &str, proto: Proto) -> String {
    match proto {
        Proto::Tls => format!("_sips._tcp.{host}"),
        Proto::Tcp => format!("_sip._tcp.{host}"),
        _ => format!("_sip._udp.{host}"),
    }
}

/// The transport a NAPTR service field names (RFC 3263 4.1).
fn naptr_proto(services: &str, sips: bool) -> Option<Proto> {
    match services {
        "SIPS+D2T" => Some(Proto::Tls),
        "SIP+D2T" if !sips => Some(Proto::Tcp),
        "SIP+D2U" if !sips => Some(Proto::Udp),
        _ => None,
    }
}

/// SRV records in the order to try (RFC 2782): by priority, and within
/// one priority heavier first — or, with `lb`, a weighted random order
/// drawn with `rand` (a number in `0..=total weight` per pick).
pub(super) fn order_srv(mut v: Vec<Srv>, lb: bool, mut rand: impl FnMut(u32) -> u32) -> Vec<Srv> {
    v.retain(|s| !s.target.is_empty() && s.target != ".");
    v.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    if !lb {
        return v;
    }
    let mut out = Vec::with_capacity(v.len());
    while !v.is_empty() {
        let p = v[0].priority;
        let n = v.iter().take_while(|s| s.priority == p).count();
        let mut group: Vec<Srv> = v.drain(..n).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|s| u32::from(s.weight)).sum();
            let pick = rand(total);
            let mut run = 0u32;
            let i = group
                .iter()
                .position(|s| {
                    run += u32::from(s.weight);
                    run >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(i));
        }
    }
    out
}

fn random_upto(total: u32) -> u32 {
    let mut b = [0u8; 4];
    let _ = crate::os::random::fill(&mut b);
    u32::from_ne_bytes(b) % total.saturating_add(1)
}

impl Resolver {
    /// Where a request to `host` (`port`, `transport` from the URI; `sips`
    /// for a sips: URI) goes, in the order to try. Blocks at most the
    /// budget in all, less when the cache knows the names.
    pub fn targets(
        &self,
        host: &str,
        port: Option<u16>,
        proto: Option<Proto>,
        sips: bool,
    ) -> Result<Targets, DnsError> {
        let deadline = Instant::now() + self.budget;
        let base = proto.unwrap_or(if sips { Proto::Tls } else { Proto::Udp });
        let literal = host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok();
        if literal || port.is_some() || self.hosts.get(host).is_some() {
            let port = port.unwrap_or(default_port(base));
            return self.addr_targets(host, port, base, deadline);
        }
        if proto.is_none() && self.settings.try_naptr {
            let t = self.naptr_targets(host, sips, deadline)?;
            if !t.is_empty() {
                return Ok(t);
            }
        }
        let t = self.srv_targets(&srv_name(host, base), base, deadline)?;
        if !t.is_empty() {
            return Ok(t);
        }
        self.addr_targets(host, default_port(base), base, deadline)
    }

    fn addr_targets(
        &self,
        host: &str,
        port: u16,
        proto: Proto,
        deadline: Instant,
    ) -> Result<Targets, DnsError> {
        let mut v: Targets = self
            .addrs_by(host, deadline)?
            .into_iter()
            .map(|ip| Target {
                addr: SocketAddr::new(ip, port),
                proto,
            })
            .collect();
        v.truncate(MAX_TARGETS);
        Ok(v)
    }

    /// The SRV records of `name` resolved to addresses; none when it has
    /// none. A target that does not resolve is skipped.
    fn srv_targets(
        &self,
        name: &str,
        proto: Proto,
        deadline: Instant,
    ) -> Result<Targets, DnsError> {
        let recs = match self.records_by(name, QType::Srv, deadline) {
            Ok(r) => r,
            Err(DnsError::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let srv: Vec<Srv> = recs
            .into_iter()
            .filter_map(|r| match r.data {
                RData::Srv(s) => Some(s),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for s in order_srv(srv, self.settings.srv_lb, random_upto) {
            if Instant::now() >= deadline || out.len() >= MAX_TARGETS {
                break;
            }
            match self.addrs_by(&s.target, deadline) {
                Ok(ips) => out.extend(ips.into_iter().map(|ip| Target {
                    addr: SocketAddr::new(ip, s.port),
                    proto,
                })),
                // A cache-only lookup cannot tell what it has not seen.
                Err(DnsError::NotCached) => return Err(DnsError::NotCached),
                Err(_) => {}
            }
        }
        out.truncate(MAX_TARGETS);
        Ok(out)
    }

    /// NAPTR (RFC 3263 4.1): the SIP services of `host` in order, each
    /// through its SRV name.
    fn naptr_targets(
        &self,
        host: &str,
        sips: bool,
        deadline: Instant,
    ) -> Result<Targets, DnsError> {
        let recs = match self.records_by(host, QType::Naptr, deadline) {
            Ok(r) => r,
            Err(DnsError::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut n: Vec<Naptr> = recs
            .into_iter()
            .filter_map(|r| match r.data {
                RData::Naptr(n) if n.flags == "s" => Some(n),
                _ => None,
            })
            .collect();
        n.sort_by_key(|x| (x.order, x.preference));
        let mut out = Vec::new();
        for x in n {
            let Some(proto) = naptr_proto(&x.services, sips) else {
                continue;
            };
            out.extend(self.srv_targets(&x.replacement, proto, deadline)?);
            if out.len() >= MAX_TARGETS {
                break;
            }
        }
        out.truncate(MAX_TARGETS);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::tests::{response, srv_rdata};
    use super::super::{Hosts, ResolvConf};
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// The question's name and type of a query.
    fn question(q: &[u8]) -> (String, u16) {
        let mut at = 12;
        let mut name = Vec::new();
        while let Some(&l) = q.get(at) {
            if l == 0 {
                break;
            }
            name.push(String::from_utf8_lossy(&q[at + 1..at + 1 + usize::from(l)]).into_owned());
            at += 1 + usize::from(l);
        }
        let t = u16::from_be_bytes([q[at + 1], q[at + 2]]);
        (name.join("."), t)
    }

    /// An authoritative server for example.test on loopback: SRV for
    /// _sip._udp (priority 5 → a, 10 → b), A records for a and b, no
    /// AAAA; NXDOMAIN for anything else. Counts the queries it got.
    fn zone() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = n.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((len, from)) = s.recv_from(&mut buf) {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let q = &buf[..len];
                let (name, t) = question(q);
                let r = match (name.as_str(), t) {
                    ("_sip._udp.example.test", 33) => response(
                        q,
                        0,
                        &[
                            (33, &srv_rdata(10, 0, 5071, "b.example.test")),
                            (33, &srv_rdata(5, 0, 5070, "a.example.test")),
                        ],
                    ),
                    ("a.example.test", 1) => response(q, 0, &[(1, &[127, 0, 0, 1])]),
                    ("b.example.test", 1) => response(q, 0, &[(1, &[127, 0, 0, 2])]),
                    ("plain.example.test", 1) => response(q, 0, &[(1, &[127, 0, 0, 3])]),
                    ("a.example.test" | "b.example.test" | "plain.example.test", _) => {
                        response(q, 0, &[])
                    }
                    _ => response(q, 3, &[]),
                };
                let _ = s.send_to(&r, from);
            }
        });
        (addr, n)
    }

    fn resolver(server: SocketAddr) -> Resolver {
        Resolver::new(
            ResolvConf {
                servers: vec![server],
                search: Vec::new(),
            },
            Hosts::default(),
            Duration::from_secs(2),
        )
    }

    fn addrs(t: &Targets) -> Vec<String> {
        t.iter().map(|x| x.addr.to_string()).collect()
    }

    #[test]
    fn srv_picks_hosts_and_ports_by_priority() {
        let (server, _) = zone();
        let r = resolver(server);
        let t = r.targets("example.test", None, None, false).unwrap();
        assert_eq!(addrs(&t), ["127.0.0.1:5070", "127.0.0.2:5071"]);
        assert!(t.iter().all(|x| x.proto == Proto::Udp));
        // A port given: no SRV, the name's own addresses.
        let t = r
            .targets("plain.example.test", Some(5080), None, false)
            .unwrap();
        assert_eq!(addrs(&t), ["127.0.0.3:5080"]);
        // No SRV records: the name with the default port.
        let t = r.targets("plain.example.test", None, None, false).unwrap();
        assert_eq!(addrs(&t), ["127.0.0.3:5060"]);
        assert!(matches!(
            r.targets("nope.example.test", None, None, false),
            Err(DnsError::NotFound)
        ));
        let t = r
            .targets("192.0.2.4", None, Some(Proto::Tls), false)
            .unwrap();
        assert_eq!(addrs(&t), ["192.0.2.4:5061"]);
    }

    fn srv(p: u16, w: u16, t: &str) -> Srv {
        Srv {
            priority: p,
            weight: w,
            port: 5060,
            target: t.into(),
        }
    }

    #[test]
    fn srv_order_is_priority_then_weight() {
        let v = vec![
            srv(20, 0, "c"),
            srv(10, 1, "b"),
            srv(10, 9, "a"),
            srv(5, 0, "."),
        ];
        let names: Vec<String> = order_srv(v.clone(), false, |_| 0)
            .into_iter()
            .map(|s| s.target)
            .collect();
        assert_eq!(names, ["a", "b", "c"], "'.' means no service");
        // Weighted: a pick of 1 lands on the first with a running sum >= 1.
        let names: Vec<String> = order_srv(v, true, |_| 1)
            .into_iter()
            .map(|s| s.target)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        let two = vec![srv(1, 1, "x"), srv(1, 3, "y")];
        let mut firsts = [0usize; 2];
        for pick in 0..=4 {
            let o = order_srv(two.clone(), true, |_| pick);
            firsts[usize::from(o[0].target == "x")] += 1;
        }
        // y (weight 3) wins picks 0..=3, x (weight 1) wins pick 4.
        assert_eq!(firsts, [4, 1]);
    }

    #[test]
    fn naptr_services_name_transports() {
        assert_eq!(naptr_proto("SIP+D2U", false), Some(Proto::Udp));
        assert_eq!(naptr_proto("SIP+D2T", false), Some(Proto::Tcp));
        assert_eq!(naptr_proto("SIPS+D2T", false), Some(Proto::Tls));
        assert_eq!(naptr_proto("SIP+D2U", true), None);
        assert_eq!(naptr_proto("E2U+sip", false), None);
        assert_eq!(srv_name("h.test", Proto::Tls), "_sips._tcp.h.test");
    }
}
