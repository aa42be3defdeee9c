//! What a process is for. Ranks are what modules' `child_init` sees and what
//! the FIFO `ps` command describes.
use std::fmt;

/// The role of one `ser` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rank {
    /// The supervisor ("attendant" in `ps`).
    Main,
    /// The timer process (retransmissions, FR, WAIT, DELETE).
    Timer,
    /// The FIFO server.
    Fifo,
    /// The unix datagram socket server.
    UnixSock,
    /// UDP worker `idx` on listen socket number `sock`.
    Udp { sock: u16, idx: u16 },
    /// The TCP connection owner.
    TcpMain,
    /// TCP reader/worker number n.
    TcpReader(u16),
    /// The Prometheus endpoint (`metrics_listen`).
    Metrics,
    /// A module's own process, by its `ps` description.
    Module(&'static str),
}

impl Rank {
    /// `ps` description of a UDP worker: `receiver child=<n> sock= <ip>:<port>`.
    pub fn udp_desc(idx: u16, sock_addr: &std::net::SocketAddr) -> String {
        format!(
            "receiver child={idx} sock= {}:{}",
            sock_addr.ip(),
            sock_addr.port()
        )
    }

    /// `ps` description of the only worker when not forking:
    /// `stand-alone receiver @ <ip>:<port>`.
    pub fn standalone_desc(sock_addr: &std::net::SocketAddr) -> String {
        format!(
            "stand-alone receiver @ {}:{}",
            sock_addr.ip(),
            sock_addr.port()
        )
    }

    /// The fixed `ps` description for ranks that have one (UDP workers need
    /// their socket: see `udp_desc`).
    pub fn fixed_desc(&self) -> Option<&'static str> {
        match self {
            Rank::Main => Some("attendant"),
            Rank::Timer => Some("timer"),
            Rank::Fifo => Some("fifo server"),
            Rank::UnixSock => Some("unix domain socket server"),
            Rank::TcpMain => Some("tcp main process"),
            Rank::TcpReader(_) => Some("tcp receiver"),
            Rank::Metrics => Some("metrics server"),
            Rank::Module(desc) => Some(desc),
            Rank::Udp { .. } => None,
        }
    }
}

impl fmt::Display for Rank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rank::Udp { sock, idx } => write!(f, "udp {sock}/{idx}"),
            Rank::TcpReader(n) => write!(f, "tcp reader {n}"),
            other => f.write_str(other.fixed_desc().unwrap_or("?")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_descriptions() {
        let a: std::net::SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert_eq!(
            Rank::udp_desc(3, &a),
            "receiver child=3 sock= 127.0.0.1:5060"
        );
        assert_eq!(
            Rank::standalone_desc(&a),
            "stand-alone receiver @ 127.0.0.1:5060"
        );
        assert_eq!(Rank::Main.fixed_desc(), Some("attendant"));
        assert_eq!(Rank::Fifo.fixed_desc(), Some("fifo server"));
        assert_eq!(Rank::Udp { sock: 0, idx: 1 }.fixed_desc(), None);
        assert_eq!(Rank::Udp { sock: 0, idx: 1 }.to_string(), "udp 0/1");
    }
}
