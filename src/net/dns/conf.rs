//! The system's resolver configuration: nameservers and search domains
//! from resolv.conf(5), names from hosts(5). Parsed from text so the
//! rules are testable; read from /etc by [`super::Resolver::system`].

use std::net::{IpAddr, SocketAddr};

/// glibc uses at most three nameservers (MAXNS); so do we.
const MAX_SERVERS: usize = 3;

/// What resolv.conf says, as far as we use it. Its `options` (timeout,
/// attempts) are deliberately not honoured: a worker must never wait
/// longer than [`super::BUDGET`], whatever the file asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub servers: Vec<SocketAddr>,
    pub search: Vec<String>,
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut servers = Vec::new();
        let mut search = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    let ip = words.next().and_then(|w| {
                        // A zone index (fe80::1%eth0) is not supported: skipped.
                        w.parse::<IpAddr>().ok()
                    });
                    if let Some(ip) = ip {
                        if servers.len() < MAX_SERVERS {
                            servers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                // The last of `domain` / `search` wins, as in glibc.
                Some("domain") => search = words.take(1).map(str::to_string).collect(),
                Some("search") => search = words.map(str::to_string).collect(),
                _ => {}
            }
        }
        if servers.is_empty() {
            // resolv.conf(5): no nameserver line means the local machine.
            servers.push(SocketAddr::from(([127, 0, 0, 1], 53)));
        }
        ResolvConf { servers, search }
    }

    /// The names to ask for `host`, in order: a name without a dot is
    /// tried in the search domains first (glibc's ndots:1), then as is.
    pub fn candidates(&self, host: &str) -> Vec<String> {
        let mut out = Vec::with_capacity(1 + self.search.len());
        if !host.contains('.') {
            out.extend(self.search.iter().map(|d| format!("{host}.{d}")));
        }
        out.push(host.to_string());
        out
    }
}

/// The hosts file: `(lower-case name, address)` pairs in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts(Vec<(String, IpAddr)>);

impl Hosts {
    pub fn parse(text: &str) -> Hosts {
        let mut v = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
                continue;
            };
            v.extend(words.map(|n| (n.to_ascii_lowercase(), ip)));
        }
        Hosts(v)
    }

    /// The first address of `name`, IPv4 preferred (as the A query is
    /// asked before AAAA).
    pub fn get(&self, name: &str) -> Option<IpAddr> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let mut found = self.0.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = found.clone().next().map(|(_, ip)| *ip);
        found
            .find(|(_, ip)| ip.is_ipv4())
            .map(|(_, ip)| *ip)
            .or(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let c = ResolvConf::parse(
            "# comment\nnameserver 10.0.0.1\nnameserver ::1\noptions timeout:30 attempts:5\n\
             domain a.example\nsearch b.example c.example\nnameserver bogus\n\
             nameserver 10.0.0.2\nnameserver 10.0.0.3\n",
        );
        assert_eq!(
            c.servers,
            vec![
                "10.0.0.1:53".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "10.0.0.2:53".parse().unwrap()
            ]
        );
        assert_eq!(c.search, vec!["b.example", "c.example"]);
        assert_eq!(
            c.candidates("pbx"),
            vec!["pbx.b.example", "pbx.c.example", "pbx"]
        );
        assert_eq!(c.candidates("pbx.example.com"), vec!["pbx.example.com"]);
        let empty = ResolvConf::parse("");
        assert_eq!(empty.servers, vec!["127.0.0.1:53".parse().unwrap()]);
    }

    #[test]
    fn hosts_file() {
        let h = Hosts::parse(
            "127.0.0.1 localhost\n::1 localhost ip6-localhost # v6\n# 10.0.0.9 hidden\n\
             192.0.2.5 PBX.example pbx\nbad line\n",
        );
        assert_eq!(h.get("localhost"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(h.get("ip6-localhost"), Some("::1".parse().unwrap()));
        assert_eq!(h.get("pbx.EXAMPLE."), Some("192.0.2.5".parse().unwrap()));
        assert_eq!(h.get("hidden"), None);
    }
}
