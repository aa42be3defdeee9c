//! The sending side of direct writes (`super::slots` has the rules): a
//! process keeps the sockets the main process handed it, by peer address,
//! and writes a message into one when its slot says nothing may be
//! overtaken; otherwise the message goes over the link as before.
//!
//! A socket is asked for with the first message to a peer that this
//! process has none for ([`DirectTag::WantFd`]) and arrives later on this
//! process's own channel; it is never waited for. The main process sends
//! it after that first message is written or queued, so a later direct
//! write cannot overtake it.
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

use super::ipc::{self, Channels, DirectTag, FdNote, LinkError, SendReq};
use super::slots::{Held, Slots, BROKEN, QUEUED};
use crate::net::Proto;

/// Sockets a process keeps at most (each is an open descriptor).
const MAX_HELD: usize = 256;
/// A peer asked for (answered or not) is not asked for again this soon.
const ASK_AGAIN: Duration = Duration::from_secs(1);
/// How often sockets of connections the main process has closed are
/// let go (they are shut, but each holds a descriptor until then).
const PURGE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Entry {
    conn: u32,
    fd: Rc<OwnedFd>,
}

/// One process's sockets and its channel from the main process.
#[derive(Debug, Default)]
pub struct Sender {
    /// Whose state this is: a forked child starts afresh.
    pid: u32,
    /// Our end of the channel the main process sends sockets to.
    chan: Option<UnixDatagram>,
    by_addr: HashMap<SocketAddr, Entry>,
    asked: HashMap<SocketAddr, Instant>,
    /// When we last asked: the channel is read only while an answer may
    /// still come (one `recvmsg` per message less once every socket we
    /// use is held).
    last_ask: Option<Instant>,
    last_purge: Option<Instant>,
}

enum Outcome {
    Done(Result<(), LinkError>),
    /// The socket is no longer the connection's: forget it.
    Stale,
}

thread_local! {
    static SENDER: RefCell<Sender> = RefCell::new(Sender::default());
}

/// Sends as [`super::send`] does, writing directly when this process
/// holds the connection's socket and may.
pub fn send(ch: &Channels, slots: Slots, req: &SendReq, bytes: &[u8]) -> Result<(), LinkError> {
    SENDER.with(|s| s.borrow_mut().send(ch, slots, req, bytes, Instant::now()))
}

impl Sender {
    pub fn send(
        &mut self,
        ch: &Channels,
        slots: Slots,
        req: &SendReq,
        bytes: &[u8],
        now: Instant,
    ) -> Result<(), LinkError> {
        let pid = shm::current_pid();
        if self.pid != pid {
            *self = Sender {
                pid,
                ..Sender::default()
            };
        }
        if req.proto != Proto::Tcp {
            return ch.send(req, bytes);
        }
        if self
            .last_purge
            .is_none_or(|t| now.saturating_duration_since(t) >= PURGE_EVERY)
        {
            self.last_purge = Some(now);
            self.by_addr.retain(|_, e| slots.hold(e.conn).is_some());
        }
        if self
            .last_ask
            .is_some_and(|t| now.saturating_duration_since(t) < ASK_AGAIN)
        {
            self.take_notes(slots);
        }
        for addr in req.hint.into_iter().chain([req.dest]) {
            let Some(e) = self.by_addr.get(&addr) else {
                continue;
            };
            match write(ch, slots, e, req, bytes) {
                Outcome::Done(r) => return r,
                Outcome::Stale => {
                    self.by_addr.remove(&addr);
                }
            }
        }
        let key = req.hint.unwrap_or(req.dest);
        let ask = self
            .asked
            .get(&key)
            .is_none_or(|t| now.saturating_duration_since(*t) >= ASK_AGAIN);
        let mut plain = *req;
        if ask && self.channel(ch, pid) {
            if self.asked.len() >= MAX_HELD * 4 {
                self.asked.clear();
            }
            self.asked.insert(key, now);
            self.last_ask = Some(now);
            plain.direct = DirectTag::WantFd(pid);
        }
        ch.send(&plain, bytes)
    }

    /// Our channel, made and announced to the main process on first use.
    fn channel(&mut self, ch: &Channels, pid: u32) -> bool {
        if self.chan.is_some() {
            return true;
        }
        let Ok((ours, theirs)) = UnixDatagram::pair() else {
            return false;
        };
        if ours.set_nonblocking(true).is_err() {
            return false;
        }
        if ipc::send_register(&ch.to_main_tx, pid, theirs.as_fd()).is_err() {
            return false;
        }
        self.chan = Some(ours);
        true
    }

    /// Keeps the sockets the main process has sent since the last call.
    fn take_notes(&mut self, slots: Slots) {
        let Some(chan) = &self.chan else {
            return;
        };
        let mut buf = [0u8; 64];
        loop {
            let (n, fd) = match crate::os::recv_with_fd(chan.as_fd(), &mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let (Ok(note), Some(fd)) = (FdNote::decode(buf.get(..n).unwrap_or(&[])), fd) else {
                continue;
            };
            if self.by_addr.len() >= MAX_HELD {
                self.by_addr.retain(|_, e| slots.hold(e.conn).is_some());
                if self.by_addr.len() >= MAX_HELD {
                    self.by_addr.clear();
                }
            }
            let fd = Rc::new(fd);
            for addr in [Some(note.peer), note.alias].into_iter().flatten() {
                self.by_addr.insert(
                    addr,
                    Entry {
                        conn: note.conn,
                        fd: Rc::clone(&fd),
                    },
                );
            }
        }
    }

    /// Addresses this process holds a socket for.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.by_addr.len()
    }

    #[cfg(test)]
    pub fn conn_for(&self, addr: &SocketAddr) -> Option<u32> {
        self.by_addr.get(addr).map(|e| e.conn)
    }

    /// The socket held for `addr` (tests shrink its buffer).
    #[cfg(test)]
    pub fn socket_for(&self, addr: &SocketAddr) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.by_addr.get(addr).map(|e| e.fd.as_fd())
    }
}

/// One message on a connection whose socket we hold.
fn write(ch: &Channels, slots: Slots, e: &Entry, req: &SendReq, bytes: &[u8]) -> Outcome {
    let Some(held) = slots.hold(e.conn) else {
        return Outcome::Stale;
    };
    if held.flags() & BROKEN != 0 {
        return Outcome::Stale;
    }
    if !held.writable() {
        return Outcome::Done(behind(ch, &held, DirectTag::Behind(e.conn), req, bytes));
    }
    let mut off = 0;
    while off < bytes.len() {
        let rest = bytes.get(off..).unwrap_or_default();
        match nix::sys::socket::send(
            e.fd.as_raw_fd(),
            rest,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(0) | Err(Errno::EAGAIN) => break,
            Ok(n) => off += n,
            Err(Errno::EINTR) => {}
            // Reset or shut: the main process sees it on its own socket.
            Err(_) if off == 0 => return Outcome::Stale,
            Err(_) => {
                held.set_flags(held.flags() | BROKEN);
                return Outcome::Done(Err(LinkError::Io(io::Error::other(
                    "connection failed in the middle of a message",
                ))));
            }
        }
    }
    if off == bytes.len() {
        held.slot
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Outcome::Done(Ok(()));
    }
    // The socket is full: the rest goes to the main process, which writes
    // it first when the peer reads again.
    held.set_flags(held.flags() | QUEUED);
    let tag = if off == 0 {
        DirectTag::Behind(e.conn)
    } else {
        DirectTag::Rest(e.conn)
    };
    let r = behind(ch, &held, tag, req, bytes.get(off..).unwrap_or_default());
    if r.is_err() && off > 0 {
        held.set_flags(held.flags() | BROKEN);
    }
    Outcome::Done(r)
}

/// Hands a message (or its rest) for the connection of `held` to the
/// main process, counted so that no direct write overtakes it.
fn behind(
    ch: &Channels,
    held: &Held<'_>,
    tag: DirectTag,
    req: &SendReq,
    bytes: &[u8],
) -> Result<(), LinkError> {
    held.add_pending();
    let tagged = SendReq {
        direct: tag,
        ..*req
    };
    let r = ch.send(&tagged, bytes);
    if r.is_err() {
        held.sub_pending();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::stream::ipc::{LinkMsg, MAX_DATAGRAM};
    use crate::net::stream::slots::{self, OPEN};
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    /// A sender and a stand-in for the main process: the link's reading
    /// end, the sender's registered channel, and one TCP connection.
    struct Bench {
        ch: Channels,
        slots: Slots,
        tx: Sender,
        req: SendReq,
        peer: TcpStream,
        buf: Vec<u8>,
        /// The channel the sender registered, kept by the stand-in.
        chan: Option<OwnedFd>,
    }

    const CONN: u32 = 7;

    impl Bench {
        fn new() -> Bench {
            let ch = Channels::new(1).unwrap();
            let slots = slots::for_test(16);
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            // A small window, so that a short write is easy to make.
            socket2::SockRef::from(&l)
                .set_recv_buffer_size(4096)
                .unwrap();
            let ours = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (peer, _) = l.accept().unwrap();
            peer.set_nonblocking(true).unwrap();
            let dest = ours.peer_addr().unwrap();
            let req = SendReq {
                proto: Proto::Tcp,
                dest,
                hint: None,
                sock: 0,
                direct: DirectTag::None,
            };
            let mut b = Bench {
                ch,
                slots,
                tx: Sender::default(),
                req,
                peer,
                buf: vec![0; MAX_DATAGRAM],
                chan: None,
            };
            // First message: over the link, asking for the socket.
            b.send(b"first");
            let (r, m) = b.link().expect("first message on the link");
            assert!(matches!(r.direct, DirectTag::WantFd(_)), "{r:?}");
            assert_eq!(m, b"first");
            // ... after the registration of the sender's channel.
            assert!(slots.claim(CONN, OPEN));
            let note = FdNote {
                conn: CONN,
                peer: dest,
                alias: None,
            };
            let chan = b.chan.take().expect("channel registered");
            crate::os::send_with_fd(chan.as_fd(), &[&note.encode()], Some(ours.as_fd())).unwrap();
            b
        }

        fn send(&mut self, m: &[u8]) {
            self.tx
                .send(&self.ch, self.slots, &self.req, m, Instant::now())
                .unwrap();
        }

        /// The next send request on the link; registrations are kept.
        fn link(&mut self) -> Option<(SendReq, Vec<u8>)> {
            self.ch.to_main_rx.set_nonblocking(true).unwrap();
            loop {
                let (n, fd) =
                    crate::os::recv_with_fd(self.ch.to_main_rx.as_fd(), &mut self.buf).ok()?;
                match LinkMsg::decode(&self.buf[..n], fd).unwrap() {
                    LinkMsg::Send(r, m) => return Some((r, m.to_vec())),
                    LinkMsg::Register { chan, .. } => self.chan = Some(chan),
                    LinkMsg::Alias { .. } | LinkMsg::List { .. } => {}
                }
            }
        }

        fn wire(&mut self) -> Vec<u8> {
            std::thread::sleep(Duration::from_millis(20));
            let mut got = Vec::new();
            let mut b = [0u8; 4096];
            while let Ok(n) = self.peer.read(&mut b) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
            }
            got
        }
    }

    impl Bench {
        fn held(&self) -> usize {
            self.tx.held()
        }

        fn slot(&self) -> Held<'static> {
            self.slots.hold(CONN).expect("slot of the connection")
        }
    }

    #[test]
    fn direct_when_open_and_nothing_waits_else_behind_in_order() {
        let mut b = Bench::new();
        // The second message goes direct: the socket is held now.
        b.send(b"second");
        assert!(b.link().is_none(), "nothing on the link");
        assert_eq!(b.wire(), b"second");
        assert_eq!(b.slots.writes(CONN), 1);

        // The main process holds bytes: behind it, counted.
        b.slot().set_flags(OPEN | QUEUED);
        b.send(b"third");
        let (r, m) = b.link().expect("behind the main process's bytes");
        assert_eq!(
            (r.direct, m.as_slice()),
            (DirectTag::Behind(CONN), &b"third"[..])
        );
        assert_eq!(b.slot().pending(), 1);
        assert!(b.wire().is_empty());

        // Queue written, but a counted message not yet taken: still behind.
        b.slot().set_flags(OPEN);
        b.send(b"fourth");
        let (r, _) = b.link().expect("behind the counted message");
        assert_eq!(r.direct, DirectTag::Behind(CONN));
        assert_eq!(b.slot().pending(), 2);
        assert!(b.wire().is_empty());

        // Connecting: behind too.
        b.slot().sub_pending();
        b.slot().sub_pending();
        b.slot().set_flags(0);
        b.send(b"fifth");
        assert_eq!(
            b.link().map(|(r, _)| r.direct),
            Some(DirectTag::Behind(CONN))
        );
        b.slot().sub_pending();

        // The slot went to another connection: the socket is dropped and
        // the message goes over the link like any other.
        b.slot().set_flags(OPEN);
        b.slot().release();
        assert!(b.slots.claim(CONN + 16, OPEN));
        b.send(b"sixth");
        let (r, m) = b.link().expect("over the link");
        assert_eq!(m, b"sixth");
        assert_ne!(r.direct.counted_on(), Some(CONN));
        assert_eq!(b.held(), 0);
        assert!(b.wire().is_empty());
    }

    #[test]
    fn a_short_write_hands_the_rest_over_and_marks_the_slot() {
        let mut b = Bench::new();
        b.send(b"x");
        assert_eq!(b.wire(), b"x");
        let sock = b.tx.socket_for(&b.req.dest).unwrap();
        socket2::SockRef::from(&sock)
            .set_send_buffer_size(4096)
            .unwrap();
        let big = vec![b'a'; 60_000];
        b.send(&big);
        let (r, rest) = b.link().expect("the rest on the link");
        assert_eq!(r.direct, DirectTag::Rest(CONN));
        assert!(!rest.is_empty() && rest.len() < big.len());
        assert_eq!(b.slot().flags() & QUEUED, QUEUED);
        assert_eq!(b.slot().pending(), 1);
        let on_wire = b.wire();
        assert_eq!(on_wire.len() + rest.len(), big.len());
    }
}
