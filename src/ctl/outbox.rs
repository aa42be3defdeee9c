//! Unix socket replies whose client's queue is full.
//!
//! A client that sends requests and never reads fills its receive queue;
//! waiting for room there (as a blocking send does) would stop the server
//! for every other client. Instead the server never blocks: a reply that
//! does not fit now is parked here on a socket of its own connected to
//! the client, sent when `poll` says the client's queue has room, and
//! dropped when `unix_tx_timeout` passes first.
//!
//! Replies queued for such a client also stay charged to the socket that
//! sent them, so with large replies the server socket's own buffer fills
//! and it cannot send to anyone. A reply that the server socket cannot
//! send is therefore tried at once from a fresh socket, and parked only
//! if its client's queue is full. At most [`MAX_PARKED`] replies wait;
//! one more displaces the oldest. A client with room is served in the
//! next round, before any new request is read, so only replies to
//! clients that do not read are ever displaced: a flood costs bounded
//! memory and no one else's answer.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

/// Replies that may wait for room at once (each up to `MAX_REPLY`).
pub const MAX_PARKED: usize = 16;

/// Why a reply was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DropReason {
    #[error("its queue stayed full while {MAX_PARKED} newer replies waited")]
    Displaced,
    #[error("its queue stayed full for {0:?}")]
    StayedFull(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

struct Parked {
    sock: UnixDatagram,
    bytes: Vec<u8>,
    peer: PathBuf,
    until: Instant,
}

/// The parked replies of one unix socket server process.
pub struct Outbox {
    parked: VecDeque<Parked>,
    patience: Duration,
    sndbuf: usize,
}

impl Outbox {
    /// `patience` is `unix_tx_timeout`: how long a reply may wait for
    /// room (zero: not at all). `sndbuf` is asked for on parked sockets
    /// so that a large reply fits them as it fits the server's.
    pub fn new(patience: Duration, sndbuf: usize) -> Self {
        Outbox {
            parked: VecDeque::new(),
            patience,
            sndbuf,
        }
    }

    /// Sends `bytes` to `peer` from `server` (a non-blocking socket), or
    /// from a fresh socket when the server's is full; parks it when the
    /// peer's queue is full. Returns the replies given up on now: this
    /// one, or the oldest parked one it displaced.
    pub fn send(
        &mut self,
        server: &UnixDatagram,
        peer: &Path,
        bytes: Vec<u8>,
        now: Instant,
    ) -> Vec<(PathBuf, DropReason)> {
        let gone = |e: DropReason| vec![(peer.to_path_buf(), e)];
        match server.send_to(&bytes, peer) {
            Ok(_) => return Vec::new(),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return gone(e.into()),
        }
        let sock = match self.connected(peer) {
            Ok(s) => s,
            Err(e) => return gone(e.into()),
        };
        match sock.send(&bytes) {
            Ok(_) => return Vec::new(),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return gone(e.into()),
        }
        if self.patience.is_zero() {
            return gone(DropReason::StayedFull(Duration::ZERO));
        }
        let mut dropped = Vec::new();
        if self.parked.len() >= MAX_PARKED {
            if let Some(old) = self.parked.pop_front() {
                dropped.push((old.peer, DropReason::Displaced));
            }
        }
        self.parked.push_back(Parked {
            sock,
            bytes,
            peer: peer.to_path_buf(),
            until: now + self.patience,
        });
        dropped
    }

    /// A non-blocking socket of its own connected to `peer`: connected,
    /// poll reports room in the peer's queue (Linux unix_dgram_poll);
    /// unconnected it would report only our own buffer.
    fn connected(&self, peer: &Path) -> std::io::Result<UnixDatagram> {
        let sock = UnixDatagram::unbound()?;
        let _ =
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::SndBuf, &self.sndbuf);
        sock.connect(peer)?;
        sock.set_nonblocking(true)?;
        Ok(sock)
    }

    /// Poll entries for the parked sockets, in order, to append after the
    /// server socket's own entry.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        self.parked
            .iter()
            .map(|p| PollFd::new(p.sock.as_fd(), PollFlags::POLLOUT))
            .collect()
    }

    /// The earliest moment a parked reply gives up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.parked.iter().map(|p| p.until).min()
    }

    /// After `poll`: sends the replies whose socket is `writable` (same
    /// order as [`poll_fds`](Self::poll_fds)) and drops those out of
    /// time. Returns the replies given up, with why.
    pub fn progress(&mut self, writable: &[bool], now: Instant) -> Vec<(PathBuf, DropReason)> {
        let mut dropped = Vec::new();
        let mut keep = VecDeque::with_capacity(self.parked.len());
        for (i, p) in std::mem::take(&mut self.parked).into_iter().enumerate() {
            if writable.get(i).copied().unwrap_or(false) {
                match p.sock.send(&p.bytes) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => {
                        dropped.push((p.peer, e.into()));
                        continue;
                    }
                }
            }
            if now >= p.until {
                dropped.push((p.peer, DropReason::StayedFull(self.patience)));
            } else {
                keep.push_back(p);
            }
        }
        self.parked = keep;
        dropped
    }

    /// Replies waiting now.
    pub fn len(&self) -> usize {
        self.parked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("ser-outbox-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    /// A server socket and a client that does not read until told.
    fn pair(tag: &str) -> (UnixDatagram, UnixDatagram, PathBuf, PathBuf) {
        let sp = tmp(&format!("{tag}-srv"));
        let cp = tmp(&format!("{tag}-cli"));
        let server = UnixDatagram::bind(&sp).unwrap();
        server.set_nonblocking(true).unwrap();
        let client = UnixDatagram::bind(&cp).unwrap();
        (server, client, sp, cp)
    }

    /// Fills the client's queue (bounded: the kernel's queue length is
    /// small) and returns how many datagrams it took.
    fn fill(server: &UnixDatagram, client: &Path) -> usize {
        for n in 0..10_000 {
            match server.send_to(b"x", client) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("queue never filled");
    }

    #[test]
    fn a_full_queue_parks_then_delivers_when_read() {
        let (server, client, sp, cp) = pair("deliver");
        let queued = fill(&server, &cp);
        let mut ob = Outbox::new(Duration::from_secs(5), 4096);
        let t0 = Instant::now();
        assert!(ob.send(&server, &cp, b"late reply".to_vec(), t0).is_empty());
        assert_eq!(ob.len(), 1);
        // Still full: nothing moves, nothing is dropped.
        assert!(ob.progress(&[true], t0).is_empty());
        assert_eq!(ob.len(), 1);
        let mut buf = [0u8; 64];
        for _ in 0..queued {
            client.recv(&mut buf).unwrap();
        }
        assert!(ob.progress(&[true], t0).is_empty());
        assert!(ob.is_empty());
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late reply");
        for p in [sp, cp] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn a_clogged_server_socket_still_answers_a_client_with_room() {
        let (server, _deaf, sp, dp) = pair("clog");
        let live_path = tmp("clog-live");
        let live = UnixDatagram::bind(&live_path).unwrap();
        let _ = nix::sys::socket::setsockopt(&server, nix::sys::socket::sockopt::SndBuf, &4096);
        // Large datagrams queued for the deaf client stay charged to the
        // server socket until it fills (bounded by the deaf queue).
        let big = vec![b'x'; 3000];
        let clogged = (0..100).any(
            |_| matches!(server.send_to(&big, &dp), Err(e) if e.kind() == ErrorKind::WouldBlock),
        );
        assert!(clogged);
        assert!(server.send_to(b"r", &live_path).is_err());
        let mut ob = Outbox::new(Duration::from_secs(5), 4096);
        assert!(ob
            .send(&server, &live_path, b"for you".to_vec(), Instant::now())
            .is_empty());
        assert!(ob.is_empty(), "sent at once, not parked");
        let mut buf = [0u8; 64];
        let n = live.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"for you");
        for p in [sp, dp, live_path] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn parked_replies_expire_and_the_oldest_is_displaced() {
        let (server, _client, sp, cp) = pair("expire");
        fill(&server, &cp);
        let mut ob = Outbox::new(Duration::from_millis(500), 4096);
        let t0 = Instant::now();
        for _ in 0..MAX_PARKED {
            assert!(ob.send(&server, &cp, b"r".to_vec(), t0).is_empty());
        }
        let t1 = t0 + Duration::from_millis(100);
        let gone = ob.send(&server, &cp, b"r".to_vec(), t1);
        assert!(
            matches!(gone.as_slice(), [(_, DropReason::Displaced)]),
            "{gone:?}"
        );
        assert_eq!(ob.len(), MAX_PARKED);
        assert_eq!(ob.next_deadline(), Some(t0 + Duration::from_millis(500)));
        assert!(ob
            .progress(&[true; MAX_PARKED], t0 + Duration::from_millis(499))
            .is_empty());
        let gone = ob.progress(&[false; MAX_PARKED], t0 + Duration::from_millis(500));
        assert_eq!(gone.len(), MAX_PARKED - 1);
        let gone = ob.progress(&[false], t1 + Duration::from_millis(500));
        assert_eq!(gone.len(), 1);
        assert!(ob.is_empty() && ob.next_deadline().is_none());
        for p in [sp, cp] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn zero_patience_drops_at_once_and_a_gone_peer_is_an_error() {
        let (server, client, sp, cp) = pair("zero");
        fill(&server, &cp);
        let mut ob = Outbox::new(Duration::ZERO, 4096);
        let gone = ob.send(&server, &cp, b"r".to_vec(), Instant::now());
        assert!(
            matches!(gone.as_slice(), [(_, DropReason::StayedFull(_))]),
            "{gone:?}"
        );
        drop(client);
        let _ = std::fs::remove_file(&cp);
        let gone = ob.send(&server, &cp, b"r".to_vec(), Instant::now());
        assert!(
            matches!(gone.as_slice(), [(_, DropReason::Io(_))]),
            "{gone:?}"
        );
        assert!(ob.is_empty());
        let _ = std::fs::remove_file(sp);
    }
}
