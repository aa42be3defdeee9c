//! Refusing a second server on an address that is already served.
//!
//! Every worker binds its own socket with SO_REUSEPORT, and the kernel lets
//! any later socket of the same user join that group: a second `ser` started
//! on the same address would silently take half of the traffic. Before the
//! sockets are opened, each listen address is therefore *claimed*:
//! - a probe bind without SO_REUSEPORT fails while anything else (another
//!   ser, another SIP server) has the address bound;
//! - a lock held for the life of the server (an abstract unix socket named
//!   after the address; the kernel releases it when the last process holding
//!   it dies, so a crash leaves nothing stale behind) closes the window
//!   between two servers started at the same moment, which could both pass
//!   the probe before either had bound.
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

use super::{open_udp, NetError, Proto};

/// Held while the server runs; dropping it gives the address up.
#[derive(Debug)]
pub struct ListenClaim {
    _lock: Option<UnixDatagram>,
}

/// The lock's name in the abstract namespace (per network namespace, as the
/// ports themselves are).
fn lock_name(proto: Proto, addr: SocketAddr) -> String {
    format!("ser-listen-{proto}-{addr}")
}

fn in_use(proto: Proto, addr: SocketAddr) -> NetError {
    NetError::AddressServed {
        spec: format!("{proto}:{addr}"),
    }
}

/// Claims `addr` for this server, or says who holds it. Port 0 (the
/// kernel picks a free port per socket) cannot collide and is not claimed.
pub fn claim_listen(proto: Proto, addr: SocketAddr) -> Result<ListenClaim, NetError> {
    if addr.port() == 0 {
        return Ok(ListenClaim { _lock: None });
    }
    let name = lock_name(proto, addr);
    let lock_addr = UnixAddr::from_abstract_name(name.as_bytes())
        .map_err(|source| NetError::Socket { addr, source })?;
    let lock = match UnixDatagram::bind_addr(&lock_addr) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(in_use(proto, addr)),
        Err(source) => return Err(NetError::Socket { addr, source }),
    };
    if proto == Proto::Udp {
        match open_udp(addr, 0, false) {
            Ok(probe) => drop(probe),
            Err(NetError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                return Err(in_use(proto, addr))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(ListenClaim { _lock: Some(lock) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn free_addr() -> SocketAddr {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn second_claim_of_one_address_is_refused_until_the_first_is_dropped() {
        let addr = free_addr();
        let first = claim_listen(Proto::Udp, addr).unwrap();
        let err = claim_listen(Proto::Udp, addr).unwrap_err();
        assert!(matches!(err, NetError::AddressServed { .. }), "{err}");
        drop(first);
        claim_listen(Proto::Udp, addr).unwrap();
    }

    #[test]
    fn an_address_bound_by_another_program_is_refused() {
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = claim_listen(Proto::Udp, other.local_addr().unwrap()).unwrap_err();
        assert!(err.to_string().contains("already"), "{err}");
    }

    #[test]
    fn a_reuseport_group_is_refused_too() {
        // What a running ser holds: sockets with SO_REUSEPORT.
        let held = open_udp(free_addr(), 0, true).unwrap();
        let err = claim_listen(Proto::Udp, held.local_addr().unwrap()).unwrap_err();
        assert!(matches!(err, NetError::AddressServed { .. }), "{err}");
    }

    #[test]
    fn port_zero_is_never_claimed() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let _a = claim_listen(Proto::Udp, any).unwrap();
        let _b = claim_listen(Proto::Udp, any).unwrap();
    }
}
