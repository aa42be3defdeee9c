//! UDP listen sockets and non-blocking sends.
use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendto, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrLike,
    SockaddrStorage,
};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::NetError;

/// `maxbuffer` default: the receive-buffer probe stops here.
pub const DEFAULT_RCVBUF_MAX: u32 = 256 * 1024;

/// Raises the receive buffer toward `max`: try `max`, halve on refusal,
/// stop at the first size the kernel accepts and that beats the current
/// one. (Linux clamps silently to `net.core.rmem_max`, so the read-back is
/// what counts.) Returns the resulting size.
fn probe_rcvbuf(sock: &Socket, max: u32) -> usize {
    let start = sock.recv_buffer_size().unwrap_or(0);
    let mut target = max as usize;
    while target > start {
        if sock.set_recv_buffer_size(target).is_ok() {
            if let Ok(now) = sock.recv_buffer_size() {
                if now > start {
                    return now;
                }
            }
        }
        target /= 2;
    }
    start
}

/// Opens a UDP socket bound to `addr` (IPv6 sockets are IPv6-only), with
/// SO_REUSEPORT when asked (one socket per worker), and its receive buffer
/// probed up to `rcvbuf_max` (0: leave the default). The socket blocks on
/// receive; sends go through `send_udp`, which never blocks.
pub fn open_udp(addr: SocketAddr, rcvbuf_max: u32, reuseport: bool) -> Result<UdpSocket, NetError> {
    let sock_err = |source| NetError::Socket { addr, source };
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(sock_err)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(sock_err)?;
    }
    if reuseport {
        sock.set_reuse_port(true).map_err(sock_err)?;
    }
    sock.bind(&addr.into())
        .map_err(|source| NetError::Bind { addr, source })?;
    if rcvbuf_max > 0 {
        let size = probe_rcvbuf(&sock, rcvbuf_max);
        log::debug!("udp socket {addr}: receive buffer {size} bytes");
    }
    Ok(sock.into())
}

/// A TCP listening socket for `listen=tcp:`/`tls:` (SO_REUSEADDR so a
/// restart does not wait for TIME_WAIT; never SO_REUSEPORT, which would
/// let a second server take half of the connections), non-blocking for
/// the TCP main process's event loop.
pub fn open_tcp_listener(addr: SocketAddr) -> Result<std::net::TcpListener, NetError> {
    let sock_err = |source| NetError::Socket { addr, source };
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(sock_err)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(sock_err)?;
    }
    sock.set_reuse_address(true).map_err(sock_err)?;
    sock.bind(&addr.into())
        .map_err(|source| NetError::Bind { addr, source })?;
    sock.listen(1024)
        .map_err(|source| NetError::Bind { addr, source })?;
    sock.set_nonblocking(true).map_err(sock_err)?;
    Ok(sock.into())
}

/// The receive buffer size of a socket (for logging and tests).
pub fn rcvbuf_size(sock: &UdpSocket) -> std::io::Result<usize> {
    SockRef::from(sock).recv_buffer_size()
}

/// Sends one datagram without ever blocking: a full socket buffer is
/// `NetError::WouldBlock` (the caller drops or retries later, as UDP
/// allows) instead of stalling a worker.
pub fn send_udp(sock: &UdpSocket, data: &[u8], dst: SocketAddr) -> Result<(), NetError> {
    let to = SockaddrStorage::from(dst);
    loop {
        match sendto(sock.as_raw_fd(), data, &to, MsgFlags::MSG_DONTWAIT) {
            Ok(n) if n == data.len() => return Ok(()),
            Ok(sent) => {
                return Err(NetError::ShortSend {
                    dst,
                    sent,
                    len: data.len(),
                })
            }
            Err(Errno::EINTR) => continue,
            Err(errno @ (Errno::EAGAIN | Errno::ENOBUFS)) => {
                return Err(NetError::WouldBlock { dst, errno })
            }
            Err(errno) => return Err(NetError::Send { dst, errno }),
        }
    }
}

/// Ask the kernel to stamp every datagram with its arrival time
/// (SO_TIMESTAMPNS), so [`recv_stamped`] can tell how long it waited.
pub fn enable_arrival_stamps(sock: &UdpSocket) -> Result<(), Errno> {
    setsockopt(sock, sockopt::ReceiveTimestampns, &true)
}

/// Room for the arrival-stamp control message of [`recv_stamped`].
pub fn stamp_space() -> Vec<u8> {
    nix::cmsg_space!(TimeSpec)
}

/// One datagram read by [`recv_stamped`].
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    pub src: SocketAddr,
    /// How long it waited in the socket; `None` without a stamp (stamps
    /// not enabled) or when the wall clock stepped back meanwhile.
    pub queued: Option<Duration>,
}

/// Receive one datagram into `buf` with its arrival stamp (`cmsg` from
/// [`stamp_space`], reused across calls). A datagram larger than `buf` is
/// cut, as `recv_from` does.
pub fn recv_stamped(
    sock: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> std::io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg =
        recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())?;
    let src = msg
        .address
        .as_ref()
        .and_then(socket_addr_of)
        .ok_or_else(|| std::io::Error::other("datagram without a usable source address"))?;
    let mut queued = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                queued = waited_since(ts);
            }
        }
    }
    Ok(Received {
        len: msg.bytes,
        src,
        queued,
    })
}

fn socket_addr_of(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
        .filter(|_| a.family().is_some())
}

/// Time from a kernel arrival stamp (wall clock) until now.
fn waited_since(ts: TimeSpec) -> Option<Duration> {
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
    let arrived = SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))?;
    SystemTime::now().duration_since(arrived).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn lo0() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn bind_loopback_and_exchange() {
        let a = open_udp(lo0(), DEFAULT_RCVBUF_MAX, false).unwrap();
        let b = open_udp(lo0(), 0, false).unwrap();
        let b_addr = b.local_addr().unwrap();
        assert_ne!(b_addr.port(), 0);
        send_udp(&a, b"OPTIONS sip:x SIP/2.0\r\n\r\n", b_addr).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"OPTIONS sip:x SIP/2.0\r\n\r\n");
        assert_eq!(from, a.local_addr().unwrap());
    }

    #[test]
    fn stamped_receive_tells_how_long_a_datagram_waited() {
        let rx = open_udp(lo0(), 0, false).unwrap();
        enable_arrival_stamps(&rx).unwrap();
        // The kernel switches arrival stamping on asynchronously (a static
        // key flipped from a work queue); until then it stamps at read time.
        std::thread::sleep(Duration::from_millis(100));
        let tx = open_udp(lo0(), 0, false).unwrap();
        send_udp(&tx, b"first", rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        let mut buf = [0u8; 64];
        let mut cmsg = stamp_space();
        let r = recv_stamped(&rx, &mut buf, &mut cmsg).unwrap();
        assert_eq!(&buf[..r.len], b"first");
        assert_eq!(r.src, tx.local_addr().unwrap());
        let q = r.queued.expect("a stamp");
        assert!(
            q >= Duration::from_millis(50) && q < Duration::from_secs(5),
            "{q:?}"
        );
        // Without stamps enabled there is nothing to read.
        let plain = open_udp(lo0(), 0, false).unwrap();
        send_udp(&tx, b"x", plain.local_addr().unwrap()).unwrap();
        plain
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let r = recv_stamped(&plain, &mut buf, &mut cmsg).unwrap();
        assert_eq!(r.queued, None);
    }

    #[test]
    fn rcvbuf_is_probed_upward_not_down() {
        let plain = open_udp(lo0(), 0, false).unwrap();
        let probed = open_udp(lo0(), DEFAULT_RCVBUF_MAX, false).unwrap();
        assert!(rcvbuf_size(&probed).unwrap() >= rcvbuf_size(&plain).unwrap());
        let tiny = open_udp(lo0(), 1, false).unwrap();
        assert_eq!(rcvbuf_size(&tiny).unwrap(), rcvbuf_size(&plain).unwrap());
    }

    #[test]
    fn reuseport_allows_a_second_bind() {
        let a = open_udp(lo0(), 0, true).unwrap();
        let addr = a.local_addr().unwrap();
        let _b = open_udp(addr, 0, true).unwrap();
        assert!(matches!(
            open_udp(addr, 0, false),
            Err(NetError::Bind { .. })
        ));
    }

    #[test]
    fn full_buffer_is_an_error_not_a_hang() {
        // Fill a tiny receive buffer that nobody reads; with the peer's queue
        // full, loopback sends fail or are dropped, but never block.
        let rx = open_udp(lo0(), 0, false).unwrap();
        SockRef::from(&rx).set_recv_buffer_size(1).unwrap();
        let tx = open_udp(lo0(), 0, false).unwrap();
        SockRef::from(&tx).set_send_buffer_size(1).unwrap();
        let dst = rx.local_addr().unwrap();
        let data = [0u8; 1400];
        for _ in 0..2000 {
            match send_udp(&tx, &data, dst) {
                Ok(()) | Err(NetError::WouldBlock { .. }) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
}
