//! What the processes tell each other about stream (TCP/TLS) traffic.
//!
//! The TCP main process owns every connection (listening, accepting,
//! connecting, reading, closing). Messages travel as datagrams over unix
//! socketpairs made before the fork; the only descriptors that travel are
//! plain TCP sockets lent for direct writes ([`DirectTag::WantFd`],
//! [`FdNote`], `super::slots`):
//!
//! - any process → main: "send these bytes to this peer" ([`SendReq`]),
//!   one shared socketpair whose reading end only the main process uses;
//! - main → reader `i`: "this message arrived on connection c from peer p"
//!   ([`Delivery`]), one socketpair per reader. A connection always goes
//!   to the same reader (`conn % readers`), so its messages are handled in
//!   the order they arrived, as a UDP peer's are on its SO_REUSEPORT worker.
//!
//! A datagram holds a whole SIP message (up to the framer's cap, 64 KB)
//! plus a fixed header, so nothing is ever split or reassembled here.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{sendmsg, MsgFlags, UnixAddr};

use crate::net::Proto;

/// Largest SIP message carried (the stream framer's cap and more).
pub const MAX_PAYLOAD: usize = 65_535;

/// Bytes of an encoded socket address: family, 16 address bytes, port.
const ADDR_LEN: usize = 19;
/// Header of a [`SendReq`]: kind, proto, socket, flags, dest, hint, and
/// the [`DirectTag`]'s number.
const SEND_HDR: usize = 4 + 2 * ADDR_LEN + 4;
/// Header of a [`Delivery`]: kind, proto, socket, pad, conn, peer.
const DELIVERY_HDR: usize = 8 + ADDR_LEN;
/// Room for the largest datagram either way.
pub const MAX_DATAGRAM: usize = MAX_PAYLOAD + SEND_HDR + DELIVERY_HDR;

const KIND_SEND: u8 = b'S';
const KIND_DELIVERY: u8 = b'D';
/// "Here is the socket I want connections' sockets sent to" (with the
/// socket attached), from a process to the main process.
const KIND_REGISTER: u8 = b'R';
/// "Here is connection `conn`'s socket" (attached), the answer to a
/// [`DirectTag::WantFd`].
const KIND_FD: u8 = b'F';
/// "The peer of this connection is also reachable at this address"
/// (a Via `;alias`, `tcp_accept_aliases`).
const KIND_ALIAS: u8 = b'A';
const ALIAS_LEN: usize = 4 + 2 * ADDR_LEN;
/// "List your connections on the socket attached" (`core.tcp_list`).
const KIND_LIST: u8 = b'L';
/// Rows of that list, on that socket.
const KIND_ROWS: u8 = b'T';
const ROWS_HDR: usize = 8;
const ROW_LEN: usize = 8 + 2 * ADDR_LEN + 4 * 3 + 2;
/// Rows per datagram of the list.
pub const ROWS_PER_DATAGRAM: usize = 1000;

const FLAG_HINT: u8 = 1;
const FLAG_WANT_FD: u8 = 2;
const FLAG_BEHIND: u8 = 4;
const FLAG_REST: u8 = 8;

/// How long a sender waits for room in the main process's queue before
/// the send fails: long enough for a burst to drain, short enough that a
/// stuck main process never stalls a worker.
const SEND_WAIT: Duration = Duration::from_millis(20);

/// Why a datagram could not be read or sent.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("stream link datagram too short ({0} bytes)")]
    Short(usize),
    #[error("stream link datagram of unknown kind {0:#04x}")]
    Kind(u8),
    #[error("stream link datagram with bad protocol {0}")]
    Proto(u8),
    #[error("stream link datagram with bad address family {0}")]
    Family(u8),
    #[error("message of {0} bytes is larger than a stream link datagram may carry")]
    TooLarge(usize),
    #[error("the TCP main process's queue stayed full")]
    Busy,
    #[error("stream link: {0}")]
    Io(#[from] io::Error),
}

/// "Send `bytes` over `proto` to `dest`": a request to the main process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReq {
    /// Tcp or Tls.
    pub proto: Proto,
    /// Where to connect if no connection serves the peer (for a reply:
    /// the Via's sent-by, RFC 3261 18.2.2).
    pub dest: SocketAddr,
    /// The remote address of the connection to use first if it is still
    /// open (the one a request arrived on, for its replies).
    pub hint: Option<SocketAddr>,
    /// Index of our listen socket the message is sent "from" (its address
    /// is in our Via): a new connection is bound to its IP.
    pub sock: u8,
    /// What the sender has to do with direct writes (`super::slots`).
    pub direct: DirectTag,
}

/// A send request's part in direct writes (`super::slots`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectTag {
    /// Nothing.
    #[default]
    None,
    /// "And send me the socket of the connection you use" (to the
    /// channel the process with this pid registered).
    WantFd(u32),
    /// Sent by a holder of connection `conn`'s socket that could not
    /// write it directly: counted in the slot's `pending`, and meant for
    /// that connection.
    Behind(u32),
    /// As `Behind`, but the rest of a message whose start is already on
    /// the wire: for that connection only, never another one.
    Rest(u32),
}

/// "This message arrived": from the main process to a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub proto: Proto,
    /// Index of the listen socket the connection belongs to.
    pub sock: u8,
    /// The main process's id of the connection.
    pub conn: u32,
    /// The connection's remote address.
    pub peer: SocketAddr,
}

fn proto_byte(p: Proto) -> u8 {
    match p {
        Proto::Udp => 1,
        Proto::Tcp => 2,
        Proto::Tls => 3,
    }
}

fn proto_of(b: u8) -> Result<Proto, LinkError> {
    match b {
        1 => Ok(Proto::Udp),
        2 => Ok(Proto::Tcp),
        3 => Ok(Proto::Tls),
        other => Err(LinkError::Proto(other)),
    }
}

fn put_addr(out: &mut [u8], a: SocketAddr) {
    let (fam, ip) = match a.ip() {
        IpAddr::V4(v4) => (4, v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => (6, v6.octets()),
    };
    out[0] = fam;
    out[1..17].copy_from_slice(&ip);
    out[17..19].copy_from_slice(&a.port().to_le_bytes());
}

fn get_addr(b: &[u8]) -> Result<SocketAddr, LinkError> {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[1..17]);
    let port = u16::from_le_bytes([b[17], b[18]]);
    let v6 = Ipv6Addr::from(ip);
    let ip = match b[0] {
        4 => IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
        6 => IpAddr::V6(v6),
        other => return Err(LinkError::Family(other)),
    };
    Ok(SocketAddr::new(ip, port))
}

impl DirectTag {
    /// The connection a `Behind` or `Rest` message is counted against.
    pub fn counted_on(self) -> Option<u32> {
        match self {
            DirectTag::Behind(c) | DirectTag::Rest(c) => Some(c),
            DirectTag::None | DirectTag::WantFd(_) => None,
        }
    }
}

impl SendReq {
    /// The fixed header that precedes the message bytes.
    pub fn header(&self) -> [u8; SEND_HDR] {
        let mut h = [0u8; SEND_HDR];
        h[0] = KIND_SEND;
        h[1] = proto_byte(self.proto);
        h[2] = self.sock;
        let (flag, n) = match self.direct {
            DirectTag::None => (0, 0),
            DirectTag::WantFd(pid) => (FLAG_WANT_FD, pid),
            DirectTag::Behind(conn) => (FLAG_BEHIND, conn),
            DirectTag::Rest(conn) => (FLAG_REST, conn),
        };
        h[3] = flag | if self.hint.is_some() { FLAG_HINT } else { 0 };
        put_addr(&mut h[4..4 + ADDR_LEN], self.dest);
        if let Some(hint) = self.hint {
            put_addr(&mut h[4 + ADDR_LEN..4 + 2 * ADDR_LEN], hint);
        }
        h[4 + 2 * ADDR_LEN..SEND_HDR].copy_from_slice(&n.to_le_bytes());
        h
    }

    /// Splits a received datagram into the request and its message.
    pub fn decode(d: &[u8]) -> Result<(SendReq, &[u8]), LinkError> {
        if d.len() < SEND_HDR {
            return Err(LinkError::Short(d.len()));
        }
        if d[0] != KIND_SEND {
            return Err(LinkError::Kind(d[0]));
        }
        let hint = if d[3] & FLAG_HINT != 0 {
            Some(get_addr(&d[4 + ADDR_LEN..4 + 2 * ADDR_LEN])?)
        } else {
            None
        };
        let n = u32::from_le_bytes([
            d[SEND_HDR - 4],
            d[SEND_HDR - 3],
            d[SEND_HDR - 2],
            d[SEND_HDR - 1],
        ]);
        let direct = if d[3] & FLAG_WANT_FD != 0 {
            DirectTag::WantFd(n)
        } else if d[3] & FLAG_BEHIND != 0 {
            DirectTag::Behind(n)
        } else if d[3] & FLAG_REST != 0 {
            DirectTag::Rest(n)
        } else {
            DirectTag::None
        };
        let req = SendReq {
            proto: proto_of(d[1])?,
            sock: d[2],
            dest: get_addr(&d[4..4 + ADDR_LEN])?,
            hint,
            direct,
        };
        Ok((req, &d[SEND_HDR..]))
    }
}

impl Delivery {
    pub fn header(&self) -> [u8; DELIVERY_HDR] {
        let mut h = [0u8; DELIVERY_HDR];
        h[0] = KIND_DELIVERY;
        h[1] = proto_byte(self.proto);
        h[2] = self.sock;
        h[4..8].copy_from_slice(&self.conn.to_le_bytes());
        put_addr(&mut h[8..DELIVERY_HDR], self.peer);
        h
    }

    pub fn decode(d: &[u8]) -> Result<(Delivery, &[u8]), LinkError> {
        if d.len() < DELIVERY_HDR {
            return Err(LinkError::Short(d.len()));
        }
        if d[0] != KIND_DELIVERY {
            return Err(LinkError::Kind(d[0]));
        }
        let del = Delivery {
            proto: proto_of(d[1])?,
            sock: d[2],
            conn: u32::from_le_bytes([d[4], d[5], d[6], d[7]]),
            peer: get_addr(&d[8..DELIVERY_HDR])?,
        };
        Ok((del, &d[DELIVERY_HDR..]))
    }
}

/// The answer to a [`DirectTag::WantFd`]: sent with the connection's
/// socket attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdNote {
    pub conn: u32,
    /// The connection's remote address.
    pub peer: SocketAddr,
    /// The address the request named, when the connection was found by
    /// it as an alias of the peer.
    pub alias: Option<SocketAddr>,
}

const FD_NOTE_LEN: usize = 8 + 2 * ADDR_LEN;
const REGISTER_LEN: usize = 8;

impl FdNote {
    pub fn encode(&self) -> [u8; FD_NOTE_LEN] {
        let mut h = [0u8; FD_NOTE_LEN];
        h[0] = KIND_FD;
        h[1] = u8::from(self.alias.is_some());
        h[4..8].copy_from_slice(&self.conn.to_le_bytes());
        put_addr(&mut h[8..8 + ADDR_LEN], self.peer);
        if let Some(a) = self.alias {
            put_addr(&mut h[8 + ADDR_LEN..], a);
        }
        h
    }

    pub fn decode(d: &[u8]) -> Result<FdNote, LinkError> {
        if d.len() < FD_NOTE_LEN {
            return Err(LinkError::Short(d.len()));
        }
        if d[0] != KIND_FD {
            return Err(LinkError::Kind(d[0]));
        }
        let alias = if d[1] & 1 != 0 {
            Some(get_addr(&d[8 + ADDR_LEN..FD_NOTE_LEN])?)
        } else {
            None
        };
        Ok(FdNote {
            conn: u32::from_le_bytes([d[4], d[5], d[6], d[7]]),
            peer: get_addr(&d[8..8 + ADDR_LEN])?,
            alias,
        })
    }
}

/// What arrives on the main process's end of the link.
#[derive(Debug)]
pub enum LinkMsg<'a> {
    Send(SendReq, &'a [u8]),
    /// Process `pid` wants [`FdNote`]s on `chan`.
    Register {
        pid: u32,
        chan: OwnedFd,
    },
    /// Send the list of connections ([`ConnRow`]s) on `reply`.
    List {
        reply: OwnedFd,
    },
    /// The connection from `peer` is also the way to `alias`.
    Alias {
        proto: Proto,
        peer: SocketAddr,
        alias: SocketAddr,
    },
}

impl<'a> LinkMsg<'a> {
    /// A datagram and the descriptor that came with it.
    pub fn decode(d: &'a [u8], fd: Option<OwnedFd>) -> Result<LinkMsg<'a>, LinkError> {
        match d.first() {
            Some(&KIND_REGISTER) if d.len() >= REGISTER_LEN => {
                let pid = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
                match fd {
                    Some(chan) => Ok(LinkMsg::Register { pid, chan }),
                    None => Err(LinkError::Short(d.len())),
                }
            }
            Some(&KIND_REGISTER) => Err(LinkError::Short(d.len())),
            Some(&KIND_ALIAS) if d.len() >= ALIAS_LEN => Ok(LinkMsg::Alias {
                proto: proto_of(d[1])?,
                peer: get_addr(&d[4..4 + ADDR_LEN])?,
                alias: get_addr(&d[4 + ADDR_LEN..ALIAS_LEN])?,
            }),
            Some(&KIND_ALIAS) => Err(LinkError::Short(d.len())),
            Some(&KIND_LIST) => match fd {
                Some(reply) => Ok(LinkMsg::List { reply }),
                None => Err(LinkError::Short(d.len())),
            },
            // A descriptor on anything else is dropped (closed) here.
            _ => SendReq::decode(d).map(|(r, b)| LinkMsg::Send(r, b)),
        }
    }
}

/// One open connection, as `core.tcp_list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRow {
    pub id: u32,
    pub proto: Proto,
    /// We opened it.
    pub outbound: bool,
    /// The address of the listen socket it belongs to.
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// Seconds since it was accepted or its connect started.
    pub age_s: u32,
    /// Seconds since a byte went either way.
    pub idle_s: u32,
    /// Bytes waiting for the peer.
    pub queued: u32,
    /// Other addresses it serves (Via `;alias`).
    pub aliases: u16,
}

impl ConnRow {
    fn put(&self, out: &mut Vec<u8>) {
        let mut r = [0u8; ROW_LEN];
        r[0..4].copy_from_slice(&self.id.to_le_bytes());
        r[4] = proto_byte(self.proto);
        r[5] = u8::from(self.outbound);
        put_addr(&mut r[8..8 + ADDR_LEN], self.peer);
        put_addr(&mut r[8 + ADDR_LEN..8 + 2 * ADDR_LEN], self.local);
        let mut at = 8 + 2 * ADDR_LEN;
        for v in [self.age_s, self.idle_s, self.queued] {
            r[at..at + 4].copy_from_slice(&v.to_le_bytes());
            at += 4;
        }
        r[at..at + 2].copy_from_slice(&self.aliases.to_le_bytes());
        out.extend_from_slice(&r);
    }

    fn get(r: &[u8]) -> Result<ConnRow, LinkError> {
        if r.len() < ROW_LEN {
            return Err(LinkError::Short(r.len()));
        }
        let u32_at = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
        let at = 8 + 2 * ADDR_LEN;
        Ok(ConnRow {
            id: u32_at(0),
            proto: proto_of(r[4])?,
            outbound: r[5] != 0,
            peer: get_addr(&r[8..8 + ADDR_LEN])?,
            local: get_addr(&r[8 + ADDR_LEN..8 + 2 * ADDR_LEN])?,
            age_s: u32_at(at),
            idle_s: u32_at(at + 4),
            queued: u32_at(at + 8),
            aliases: u16::from_le_bytes([r[at + 12], r[at + 13]]),
        })
    }

    /// One datagram of the list: at most [`ROWS_PER_DATAGRAM`] rows, and
    /// whether it is the last.
    pub fn encode(rows: &[ConnRow], last: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(ROWS_HDR + rows.len() * ROW_LEN);
        out.extend_from_slice(&[KIND_ROWS, u8::from(last), 0, 0]);
        out.extend_from_slice(&u32::try_from(rows.len()).unwrap_or(0).to_le_bytes());
        for r in rows {
            r.put(&mut out);
        }
        out
    }

    /// The rows of one datagram, and whether more follow.
    pub fn decode(d: &[u8]) -> Result<(Vec<ConnRow>, bool), LinkError> {
        if d.len() < ROWS_HDR {
            return Err(LinkError::Short(d.len()));
        }
        if d[0] != KIND_ROWS {
            return Err(LinkError::Kind(d[0]));
        }
        let n = u32::from_le_bytes([d[4], d[5], d[6], d[7]]) as usize;
        let body = &d[ROWS_HDR..];
        if body.len() < n.saturating_mul(ROW_LEN) {
            return Err(LinkError::Short(d.len()));
        }
        let rows = body
            .chunks_exact(ROW_LEN)
            .take(n)
            .map(ConnRow::get)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, d[1] == 0))
    }
}

/// Asks the main process for its connections, to be sent on `reply`.
pub fn send_list_request(link: &UnixDatagram, reply: BorrowedFd<'_>) -> Result<(), LinkError> {
    crate::os::send_with_fd(link.as_fd(), &[&[KIND_LIST, 0, 0, 0]], Some(reply))
        .map_err(LinkError::Io)
}

/// "The connection from `peer` also reaches `alias`", for the main
/// process.
pub fn alias_header(proto: Proto, peer: SocketAddr, alias: SocketAddr) -> [u8; ALIAS_LEN] {
    let mut h = [0u8; ALIAS_LEN];
    h[0] = KIND_ALIAS;
    h[1] = proto_byte(proto);
    put_addr(&mut h[4..4 + ADDR_LEN], peer);
    put_addr(&mut h[4 + ADDR_LEN..], alias);
    h
}

/// Tells the main process (over `link`) to send this process's
/// [`FdNote`]s to `chan`'s peer.
pub fn send_register(link: &UnixDatagram, pid: u32, chan: BorrowedFd<'_>) -> Result<(), LinkError> {
    let mut h = [0u8; REGISTER_LEN];
    h[0] = KIND_REGISTER;
    h[4..8].copy_from_slice(&pid.to_le_bytes());
    crate::os::send_with_fd(link.as_fd(), &[&h], Some(chan)).map_err(LinkError::Io)
}

/// Header and message as one datagram, without copying the message;
/// waits at most `wait` for room in the receiver's queue.
pub fn send_parts(
    sock: &UnixDatagram,
    header: &[u8],
    bytes: &[u8],
    wait: Duration,
) -> Result<(), LinkError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(LinkError::TooLarge(bytes.len()));
    }
    let iov = [IoSlice::new(header), IoSlice::new(bytes)];
    let mut waited = false;
    loop {
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &[], MsgFlags::MSG_DONTWAIT, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) if !waited && !wait.is_zero() => {
                waited = true;
                let mut fds = [PollFd::new(AsFd::as_fd(sock), PollFlags::POLLOUT)];
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            Err(Errno::EAGAIN) => return Err(LinkError::Busy),
            Err(e) => return Err(LinkError::Io(io::Error::from(e))),
        }
    }
}

/// The socketpairs, made by the supervisor before the fork.
#[derive(Debug)]
pub struct Channels {
    /// Read by the main process only: every [`SendReq`].
    pub to_main_rx: UnixDatagram,
    /// Written by anyone who sends over a stream.
    pub to_main_tx: UnixDatagram,
    /// Per reader: (its reading end, the main process's writing end).
    pub readers: Vec<(UnixDatagram, UnixDatagram)>,
}

/// Large enough for a burst of full-size messages; the kernel caps it at
/// net.core.{r,w}mem_max.
const LINK_BUF: usize = 4 << 20;

fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
    let (a, b) = UnixDatagram::pair()?;
    for s in [&a, &b] {
        let s2 = socket2::SockRef::from(s);
        let _ = s2.set_send_buffer_size(LINK_BUF);
        let _ = s2.set_recv_buffer_size(LINK_BUF);
    }
    Ok((a, b))
}

impl Channels {
    pub fn new(readers: usize) -> io::Result<Channels> {
        let (to_main_rx, to_main_tx) = pair()?;
        to_main_rx.set_nonblocking(true)?;
        let mut rs = Vec::with_capacity(readers);
        for _ in 0..readers {
            let (rx, tx) = pair()?;
            tx.set_nonblocking(true)?;
            rs.push((rx, tx));
        }
        Ok(Channels {
            to_main_rx,
            to_main_tx,
            readers: rs,
        })
    }

    /// Ask the main process to send `bytes` (any process).
    pub fn send(&self, req: &SendReq, bytes: &[u8]) -> Result<(), LinkError> {
        send_parts(&self.to_main_tx, &req.header(), bytes, SEND_WAIT)
    }

    /// Tell the main process that the connection from `peer` also
    /// reaches `alias` (any process; never waits).
    pub fn alias(
        &self,
        proto: Proto,
        peer: SocketAddr,
        alias: SocketAddr,
    ) -> Result<(), LinkError> {
        send_parts(
            &self.to_main_tx,
            &alias_header(proto, peer, alias),
            &[],
            Duration::ZERO,
        )
    }

    /// The reader a connection's messages go to.
    pub fn reader_of(&self, conn: u32) -> Option<usize> {
        let n = self.readers.len();
        (n != 0).then(|| conn as usize % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> [SocketAddr; 3] {
        [
            "127.0.0.1:5060".parse().unwrap(),
            "[2001:db8::1]:65535".parse().unwrap(),
            "10.1.2.3:0".parse().unwrap(),
        ]
    }

    #[test]
    fn send_requests_round_trip() {
        for dest in addrs() {
            for (hint, direct) in [
                (None, DirectTag::None),
                (Some(addrs()[1]), DirectTag::WantFd(4242)),
                (Some(addrs()[0]), DirectTag::Behind(0x7fff_fffe)),
                (None, DirectTag::Rest(1)),
            ] {
                for proto in [Proto::Tcp, Proto::Tls] {
                    let req = SendReq {
                        proto,
                        dest,
                        hint,
                        sock: 7,
                        direct,
                    };
                    let mut d = req.header().to_vec();
                    d.extend_from_slice(b"INVITE");
                    let (back, msg) = SendReq::decode(&d).unwrap();
                    assert_eq!(back, req);
                    assert_eq!(msg, b"INVITE");
                }
            }
        }
    }

    #[test]
    fn deliveries_round_trip() {
        for peer in addrs() {
            let del = Delivery {
                proto: Proto::Tls,
                sock: 3,
                conn: 0xdead_beef,
                peer,
            };
            let d = del.header();
            let (back, msg) = Delivery::decode(&d).unwrap();
            assert_eq!(back, del);
            assert!(msg.is_empty());
        }
    }

    #[test]
    fn connection_rows_round_trip() {
        let rows: Vec<ConnRow> = addrs()
            .iter()
            .enumerate()
            .map(|(i, a)| ConnRow {
                id: i as u32 + 1,
                proto: if i == 1 { Proto::Tls } else { Proto::Tcp },
                outbound: i == 2,
                local: addrs()[0],
                peer: *a,
                age_s: 100 + i as u32,
                idle_s: i as u32,
                queued: 7,
                aliases: 2,
            })
            .collect();
        let d = ConnRow::encode(&rows, false);
        assert_eq!(ConnRow::decode(&d).unwrap(), (rows.clone(), true));
        let d = ConnRow::encode(&rows[..1], true);
        assert_eq!(ConnRow::decode(&d).unwrap(), (rows[..1].to_vec(), false));
        assert!(ConnRow::decode(&d[..d.len() - 1]).is_err());
        let full = ConnRow::encode(&vec![rows[1]; ROWS_PER_DATAGRAM], true);
        assert!(full.len() <= MAX_DATAGRAM);
    }

    #[test]
    fn aliases_round_trip_and_short_ones_are_refused() {
        let [peer, alias, _] = addrs();
        let h = alias_header(Proto::Tls, peer, alias);
        match LinkMsg::decode(&h, None) {
            Ok(LinkMsg::Alias {
                proto: Proto::Tls,
                peer: p,
                alias: a,
            }) => assert_eq!((p, a), (peer, alias)),
            other => panic!("{other:?}"),
        }
        assert!(LinkMsg::decode(&h[..h.len() - 1], None).is_err());
    }

    #[test]
    fn bad_datagrams_are_errors() {
        assert!(matches!(SendReq::decode(b"S"), Err(LinkError::Short(1))));
        let mut h = SendReq {
            proto: Proto::Tcp,
            dest: addrs()[0],
            hint: None,
            sock: 0,
            direct: Default::default(),
        }
        .header();
        h[0] = b'D';
        assert!(matches!(SendReq::decode(&h), Err(LinkError::Kind(b'D'))));
        h[0] = KIND_SEND;
        h[1] = 9;
        assert!(matches!(SendReq::decode(&h), Err(LinkError::Proto(9))));
        h[1] = 2;
        h[4] = 5;
        assert!(matches!(SendReq::decode(&h), Err(LinkError::Family(5))));
        // Every prefix of a valid datagram is refused or decodes, never panics.
        let full = Delivery {
            proto: Proto::Tcp,
            sock: 0,
            conn: 1,
            peer: addrs()[1],
        }
        .header();
        for n in 0..full.len() {
            assert!(Delivery::decode(&full[..n]).is_err());
        }
    }

    #[test]
    fn a_request_crosses_the_link_whole_and_a_full_queue_is_busy() {
        let ch = Channels::new(2).unwrap();
        let req = SendReq {
            proto: Proto::Tcp,
            dest: addrs()[0],
            hint: Some(addrs()[2]),
            sock: 1,
            direct: Default::default(),
        };
        let body = vec![b'x'; 60_000];
        ch.send(&req, &body).unwrap();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let n = ch.to_main_rx.recv(&mut buf).unwrap();
        let (back, msg) = SendReq::decode(&buf[..n]).unwrap();
        assert_eq!(back, req);
        assert_eq!(msg, &body[..]);
        assert!(matches!(
            ch.send(&req, &vec![0; MAX_PAYLOAD + 1]),
            Err(LinkError::TooLarge(_))
        ));
        // Nobody reads: the queue fills and the sender gives up, bounded.
        let mut busy = false;
        for _ in 0..100_000 {
            if let Err(e) = ch.send(&req, &body) {
                assert!(matches!(e, LinkError::Busy), "{e}");
                busy = true;
                break;
            }
        }
        assert!(busy);
        assert_eq!(ch.reader_of(5), Some(1));
        assert_eq!(Channels::new(0).unwrap().reader_of(5), None);
    }
}
