//! The listen sockets, opened in the supervisor before the fork and shared
//! by every worker: which one to send from, and which hosts are "myself".
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use super::{open_udp, ListenAddr, NetError, Proto, DEFAULT_SIP_PORT};

/// The socket behind a listen address.
#[derive(Debug)]
pub enum SockIo {
    /// Received and sent on by the UDP workers.
    Udp(UdpSocket),
    /// A TCP listener (TCP or TLS): only the TCP main process accepts on
    /// it; everybody else sends through that process (`net::stream`).
    Stream(TcpListener),
}

/// One open listen socket and the address it was configured as.
#[derive(Debug)]
pub struct ListenSocket {
    /// The configured address; the port is the bound one (so `:0` in a
    /// spec shows the kernel's choice).
    pub listen: ListenAddr,
    pub io: SockIo,
    /// Position in the [`SocketTable`] (how other processes name it).
    pub index: u8,
}

impl ListenSocket {
    pub fn udp(listen: ListenAddr, udp: UdpSocket) -> ListenSocket {
        ListenSocket {
            listen,
            io: SockIo::Udp(udp),
            index: 0,
        }
    }

    pub fn stream(listen: ListenAddr, l: TcpListener) -> ListenSocket {
        ListenSocket {
            listen,
            io: SockIo::Stream(l),
            index: 0,
        }
    }

    /// The UDP socket, if this is a UDP address.
    pub fn udp_socket(&self) -> Option<&UdpSocket> {
        match &self.io {
            SockIo::Udp(u) => Some(u),
            SockIo::Stream(_) => None,
        }
    }

    pub fn proto(&self) -> Proto {
        self.listen.proto
    }

    /// Send `bytes` to `dst` from this socket's address and transport:
    /// a datagram, or a hand-over to the TCP main process, which uses the
    /// connection from `hint` if it is still open (the one a request came
    /// on, for its replies), else one to `dst`, else connects. Never
    /// blocks beyond the stream link's short bound.
    pub fn send(
        &self,
        bytes: &[u8],
        dst: SocketAddr,
        hint: Option<SocketAddr>,
    ) -> Result<(), NetError> {
        let sent = self.send_untraced(bytes, dst, hint);
        if sent.is_ok() {
            // debug>=4 only; one atomic load otherwise.
            crate::logging::trace::message(crate::logging::trace::Traced {
                dir: crate::logging::trace::Direction::Sent,
                proto: self.listen.proto.via_name(),
                peer: dst,
                local: self.listen.addr,
                bytes,
            });
        }
        sent
    }

    fn send_untraced(
        &self,
        bytes: &[u8],
        dst: SocketAddr,
        hint: Option<SocketAddr>,
    ) -> Result<(), NetError> {
        match &self.io {
            SockIo::Udp(u) => super::send_udp(u, bytes, dst),
            SockIo::Stream(_) => {
                let req = super::stream::SendReq {
                    proto: self.listen.proto,
                    dest: dst,
                    hint,
                    sock: self.index,
                    direct: Default::default(),
                };
                super::stream::send(&req, bytes).map_err(|e| NetError::Stream { dst, source: e })
            }
        }
    }

    /// The address as written in a Via or URI host (IPv6 in brackets).
    pub fn host_text(&self) -> String {
        match self.listen.addr.ip() {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        }
    }
}

/// Every listen socket, plus `alias=` names.
#[derive(Debug, Default)]
pub struct SocketTable {
    socks: Vec<ListenSocket>,
    aliases: Vec<(String, Option<u16>)>,
}

/// Strips IPv6 brackets and parses an IP, if `host` is one.
fn host_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

impl SocketTable {
    /// Opens a UDP socket for every UDP entry. TCP/TLS entries are skipped
    /// (logged): those transports are not served yet.
    pub fn open(
        addrs: &[ListenAddr],
        rcvbuf_max: u32,
        reuseport: bool,
    ) -> Result<SocketTable, NetError> {
        let mut socks = Vec::new();
        for l in addrs {
            let sock = if l.proto == Proto::Udp {
                let udp = open_udp(l.addr, rcvbuf_max, reuseport)?;
                let bound = udp.local_addr().map_err(|source| NetError::Socket {
                    addr: l.addr,
                    source,
                })?;
                ListenSocket::udp(
                    ListenAddr {
                        addr: bound,
                        ..l.clone()
                    },
                    udp,
                )
            } else {
                let tcp = super::open_tcp_listener(l.addr)?;
                let bound = tcp.local_addr().map_err(|source| NetError::Socket {
                    addr: l.addr,
                    source,
                })?;
                ListenSocket::stream(
                    ListenAddr {
                        addr: bound,
                        ..l.clone()
                    },
                    tcp,
                )
            };
            socks.push(sock);
        }
        Ok(SocketTable::from_sockets(socks))
    }

    /// A table over sockets opened elsewhere; each learns its index.
    pub fn from_sockets(mut socks: Vec<ListenSocket>) -> SocketTable {
        for (i, s) in socks.iter_mut().enumerate() {
            s.index = u8::try_from(i).unwrap_or(u8::MAX);
        }
        SocketTable {
            socks,
            aliases: Vec::new(),
        }
    }

    /// Adds an `alias=` name; `port = None` matches any port.
    pub fn add_alias(&mut self, host: &str, port: Option<u16>) {
        self.aliases.push((host.to_owned(), port));
    }

    pub fn all(&self) -> &[ListenSocket] {
        &self.socks
    }

    /// Position of `sock` (a reference into this table) in [`Self::all`];
    /// 0 for a socket from elsewhere.
    pub fn index_of(&self, sock: &ListenSocket) -> usize {
        self.socks
            .iter()
            .position(|s| std::ptr::eq(s, sock))
            .unwrap_or(0)
    }

    /// The UDP socket to send to `dst` from ([`Self::for_dest`]).
    pub fn udp_for(&self, dst: &SocketAddr) -> Option<&ListenSocket> {
        self.for_dest(Proto::Udp, dst)
    }

    /// Whether some listen socket serves `proto`.
    pub fn serves(&self, proto: Proto) -> bool {
        self.socks.iter().any(|s| s.listen.proto == proto)
    }

    /// The socket of transport `proto` to send to `dst` from: same address
    /// family; for a loopback destination a loopback socket, otherwise a
    /// non-loopback one; failing that, any socket of the family.
    pub fn for_dest(&self, proto: Proto, dst: &SocketAddr) -> Option<&ListenSocket> {
        let want_lo = dst.ip().is_loopback();
        let mut family = self
            .socks
            .iter()
            .filter(|s| s.listen.proto == proto && s.listen.addr.is_ipv4() == dst.is_ipv4());
        let first = family.clone().next();
        family
            .find(|s| s.listen.addr.ip().is_loopback() == want_lo)
            .or(first)
    }

    /// The `myself` test: `host` (name or IP, IPv6 possibly in brackets)
    /// with `port` (5060 when absent) names one of our listen sockets or
    /// an alias.
    pub fn is_local(&self, host: &str, port: Option<u16>) -> bool {
        let port = port.unwrap_or(DEFAULT_SIP_PORT);
        let ip = host_ip(host);
        let listen_hit = self.socks.iter().any(|s| {
            s.listen.addr.port() == port
                && (s.listen.name.eq_ignore_ascii_case(host) || ip == Some(s.listen.addr.ip()))
        });
        listen_hit
            || self.aliases.iter().any(|(name, p)| {
                (p.is_none() || *p == Some(port))
                    && (name.eq_ignore_ascii_case(host) || (ip.is_some() && host_ip(name) == ip))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(proto: Proto, addr: &str, name: &str) -> ListenAddr {
        ListenAddr {
            proto,
            addr: addr.parse().unwrap(),
            name: name.into(),
        }
    }

    fn table() -> SocketTable {
        // Port 0 so tests never collide; the table records the bound port.
        SocketTable::open(
            &[
                entry(Proto::Udp, "127.0.0.1:0", "localhost"),
                entry(Proto::Tcp, "127.0.0.1:0", "127.0.0.1"),
            ],
            0,
            false,
        )
        .unwrap()
    }

    #[test]
    fn open_opens_udp_and_tcp_and_records_bound_ports() {
        let t = table();
        assert_eq!(t.all().len(), 2);
        let s = &t.all()[0];
        assert_ne!(s.listen.addr.port(), 0);
        assert_eq!(s.udp_socket().unwrap().local_addr().unwrap(), s.listen.addr);
        let tcp = &t.all()[1];
        assert_eq!(tcp.proto(), Proto::Tcp);
        assert_eq!(tcp.index, 1);
        assert!(tcp.udp_socket().is_none());
        assert!(std::net::TcpStream::connect(tcp.listen.addr).is_ok());
        assert_eq!(
            t.for_dest(Proto::Tcp, &"127.0.0.1:5060".parse().unwrap())
                .map(|s| s.index),
            Some(1)
        );
        assert!(t.serves(Proto::Tcp) && !t.serves(Proto::Tls));
    }

    #[test]
    fn udp_for_matches_family_and_loopback() {
        let t = table();
        let lo = &t.all()[0];
        assert_eq!(
            t.udp_for(&"127.0.0.1:5060".parse().unwrap())
                .unwrap()
                .listen
                .addr,
            lo.listen.addr
        );
        // No non-loopback IPv4 socket: fall back to the loopback one.
        assert!(t.udp_for(&"192.0.2.1:5060".parse().unwrap()).is_some());
        assert!(t.udp_for(&"[2001:db8::1]:5060".parse().unwrap()).is_none());
    }

    #[test]
    fn udp_for_prefers_non_loopback_for_remote() {
        // Selection looks only at the configured address, so both entries
        // can sit on loopback sockets; the second is labelled as a public
        // address to exercise the preference without needing one.
        let bind = || open_udp("127.0.0.1:0".parse().unwrap(), 0, false).unwrap();
        let t = SocketTable::from_sockets(vec![
            ListenSocket::udp(entry(Proto::Udp, "127.0.0.1:5060", "127.0.0.1"), bind()),
            ListenSocket::udp(entry(Proto::Udp, "192.0.2.10:5060", "192.0.2.10"), bind()),
        ]);
        assert_eq!(
            t.udp_for(&"198.51.100.1:5060".parse().unwrap())
                .unwrap()
                .listen
                .name,
            "192.0.2.10"
        );
        assert_eq!(
            t.udp_for(&"127.0.0.1:5060".parse().unwrap())
                .unwrap()
                .listen
                .name,
            "127.0.0.1"
        );
    }

    #[test]
    fn myself_checks() {
        let mut t = table();
        let port = t.all()[0].listen.addr.port();
        assert!(t.is_local("localhost", Some(port)));
        assert!(t.is_local("LOCALHOST", Some(port)));
        assert!(t.is_local("127.0.0.1", Some(port)));
        assert!(!t.is_local("127.0.0.1", Some(port.wrapping_add(1))));
        assert!(!t.is_local("10.9.9.9", Some(port)));
        // No port means 5060, which this table does not listen on.
        assert!(!t.is_local("127.0.0.1", None) || port == 5060);
        t.add_alias("sip.example.com", None);
        t.add_alias("[::1]", Some(5070));
        assert!(t.is_local("sip.example.com", Some(1234)));
        assert!(t.is_local("SIP.example.COM", None));
        assert!(t.is_local("::1", Some(5070)));
        assert!(t.is_local("[::1]", Some(5070)));
        assert!(!t.is_local("[::1]", None));
    }
}
