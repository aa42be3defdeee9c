//! Handing framed messages to the readers without ever waiting: a
//! reader whose queue is full gets its messages later, from a bounded
//! backlog kept in order; past the bound messages are dropped (SIP
//! retransmits over UDP hops, and a stream peer's transaction times out,
//! which is better than the main process blocking every connection).
use std::collections::VecDeque;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use super::ipc::{send_parts, Delivery, LinkError};

/// Messages one reader's backlog may hold.
pub const BACKLOG_MSGS: usize = 1024;
/// Bytes one reader's backlog may hold.
pub const BACKLOG_BYTES: usize = 8 << 20;

/// What became of a delivery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    /// The reader's queue was full: kept for later.
    Backlogged,
    /// The backlog is full too (or the reader is gone): dropped.
    Dropped,
}

#[derive(Debug, Default)]
struct Backlog {
    /// Whole datagrams (header and message), oldest first.
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
}

/// The per-reader backlogs.
#[derive(Debug)]
pub(crate) struct Deliverer {
    backlogs: Vec<Backlog>,
}

impl Deliverer {
    pub(crate) fn new(readers: usize) -> Self {
        Deliverer {
            backlogs: (0..readers).map(|_| Backlog::default()).collect(),
        }
    }

    /// Sends `del` and `bytes` to reader `idx` through `sock` (its
    /// non-blocking writing end), or backlogs it.
    pub(crate) fn deliver(
        &mut self,
        idx: usize,
        sock: &UnixDatagram,
        del: &Delivery,
        bytes: &[u8],
    ) -> Outcome {
        let Some(b) = self.backlogs.get_mut(idx) else {
            return Outcome::Dropped;
        };
        let header = del.header();
        if b.queue.is_empty() {
            match send_parts(sock, &header, bytes, Duration::ZERO) {
                Ok(()) => return Outcome::Sent,
                Err(LinkError::Busy) => {}
                Err(e) => {
                    crate::warn_limited!(
                        "tcp: message from {} for reader {idx} dropped: {e}",
                        del.peer
                    );
                    return Outcome::Dropped;
                }
            }
        }
        let len = header.len() + bytes.len();
        if b.queue.len() >= BACKLOG_MSGS || b.bytes + len > BACKLOG_BYTES {
            crate::warn_limited!(
                "tcp: reader {idx} is not keeping up ({} messages waiting): message from {} dropped",
                b.queue.len(),
                del.peer
            );
            return Outcome::Dropped;
        }
        let mut d = Vec::with_capacity(len);
        d.extend_from_slice(&header);
        d.extend_from_slice(bytes);
        b.bytes += len;
        b.queue.push_back(d);
        Outcome::Backlogged
    }

    /// Whether any reader has messages waiting.
    pub(crate) fn has_backlog(&self) -> bool {
        self.backlogs.iter().any(|b| !b.queue.is_empty())
    }

    /// Sends what waits, oldest first, until each reader's queue is full
    /// again. `socks[i]` is reader i's writing end. True when any message
    /// left a backlog (sent, or dropped on an error).
    pub(crate) fn flush<'a>(&mut self, socks: impl IntoIterator<Item = &'a UnixDatagram>) -> bool {
        let mut moved = false;
        for (idx, (b, sock)) in self.backlogs.iter_mut().zip(socks).enumerate() {
            while let Some(d) = b.queue.front() {
                match send_parts(sock, d, &[], Duration::ZERO) {
                    Ok(()) => {}
                    Err(LinkError::Busy) => break,
                    Err(e) => {
                        crate::warn_limited!("tcp: message for reader {idx} dropped: {e}");
                    }
                }
                b.bytes = b.bytes.saturating_sub(d.len());
                b.queue.pop_front();
                moved = true;
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Proto;

    fn del(conn: u32) -> Delivery {
        Delivery {
            proto: Proto::Tcp,
            sock: 0,
            conn,
            peer: "127.0.0.1:5060".parse().unwrap(),
        }
    }

    #[test]
    fn a_full_reader_gets_its_messages_later_in_order_and_bounded() {
        let (rx, tx) = UnixDatagram::pair().unwrap();
        tx.set_nonblocking(true).unwrap();
        rx.set_nonblocking(true).unwrap();
        let mut d = Deliverer::new(1);
        let mut seq = 0u32;
        while d.deliver(0, &tx, &del(seq), b"m") == Outcome::Sent {
            seq += 1;
            assert!(seq < 1_000_000, "the queue never filled");
        }
        let direct = seq;
        seq += 1;
        while seq < direct + BACKLOG_MSGS as u32 {
            assert_eq!(d.deliver(0, &tx, &del(seq), b"m"), Outcome::Backlogged);
            seq += 1;
        }
        assert_eq!(d.deliver(0, &tx, &del(seq), b"m"), Outcome::Dropped);
        assert!(d.has_backlog());
        // A reader that takes nothing: nothing moves (the loop backs off).
        assert!(!d.flush([&tx]));
        // The reader catches up: every message but the dropped one, in
        // order.
        let mut buf = [0u8; 256];
        let mut want = 0u32;
        while want < seq {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    let (got, m) = Delivery::decode(&buf[..n]).unwrap();
                    assert_eq!((got.conn, m), (want, &b"m"[..]));
                    want += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(d.has_backlog(), "stuck at {want}");
                    assert!(d.flush([&tx]), "an empty queue took nothing");
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(!d.has_backlog());
        assert!(rx.recv(&mut buf).is_err());
    }
}
