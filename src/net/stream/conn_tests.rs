//! The connection rules and the table without sockets, on a made-up clock.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::conn::{CloseReason, Conn, ConnInfo, QueueError, Timeouts, CONN_QUEUE_MAX, LINGER};
use super::table::{ConnTable, MAX_CONN_ID};
use crate::net::Proto;
use crate::sip::StreamError;

const T: Timeouts = Timeouts {
    idle: Duration::from_secs(120),
    send: Duration::from_secs(10),
    incomplete: Duration::from_secs(5),
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn info(id: u32, peer: &str) -> ConnInfo {
    ConnInfo {
        id,
        peer: addr(peer),
        sock: 1,
        proto: Proto::Tcp,
        outbound: false,
    }
}

fn conn(id: u32, now: Instant) -> Conn {
    Conn::new(info(id, "192.0.2.1:5060"), None, 65_535, T, None, now)
}

fn msg(n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{n}\r\n\
         From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c{n}\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 4\r\n\r\nbody"
    )
    .into_bytes()
}

/// Feeds `data` and returns the messages delivered.
fn feed(c: &mut Conn, data: &[u8], now: Instant) -> Result<Vec<Vec<u8>>, CloseReason> {
    let mut got = Vec::new();
    c.on_data(data, now, &mut |i, b| {
        assert_eq!(i.id, 7);
        got.push(b.to_vec());
    })?;
    Ok(got)
}

#[test]
fn messages_are_framed_whole_or_split() {
    let now = Instant::now();
    let mut c = conn(7, now);
    let two = [msg(1), msg(2)].concat();
    assert_eq!(feed(&mut c, &two, now).unwrap(), vec![msg(1), msg(2)]);
    let one = msg(3);
    let mut got = Vec::new();
    for b in one.chunks(7) {
        got.extend(feed(&mut c, b, now).unwrap());
    }
    assert_eq!(got, vec![msg(3)]);
    // Larger than one framer buffer in one go.
    let many: Vec<u8> = (0..500).flat_map(msg).collect();
    assert_eq!(feed(&mut c, &many, now).unwrap().len(), 500);
}

#[test]
fn a_ping_gets_a_pong() {
    let now = Instant::now();
    let mut c = conn(7, now);
    assert!(feed(&mut c, b"\r\n\r\n", now).unwrap().is_empty());
    assert_eq!(c.pending_out(), b"\r\n");
    c.wrote(2, now);
    assert!(c.pending_out().is_empty());
}

#[test]
fn missing_content_length_is_answered_then_closed() {
    let now = Instant::now();
    let mut c = conn(7, now);
    let bad = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
        From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert!(feed(&mut c, bad, now).unwrap().is_empty());
    assert!(c.is_closing());
    assert!(c.pending_out().starts_with(b"SIP/2.0 400 "));
    assert!(!c.should_shut(), "the reply goes out first");
    // What follows is read and dropped.
    assert!(feed(&mut c, &msg(1), now).unwrap().is_empty());
    let n = c.pending_out().len();
    c.wrote(n, now);
    assert!(c.should_shut());
    c.shut_done();
    assert!(!c.should_shut());
    let why = c.on_eof(now, &mut |_, _| panic!("nothing delivered"));
    assert!(matches!(
        why,
        CloseReason::Framing(StreamError::MissingContentLength { .. })
    ));
    // A peer that never closes: the linger deadline closes it.
    let mut c = conn(7, now);
    feed(&mut c, bad, now).unwrap();
    assert_eq!(c.deadline(), Some(now + LINGER));
    assert!(c.handle_timeout(now + LINGER).is_some());
}

#[test]
fn too_large_is_513_and_garbage_closes_at_once() {
    let now = Instant::now();
    let mut c = conn(7, now);
    let big = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
        From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
        Content-Length: 70000\r\n\r\n";
    feed(&mut c, big, now).unwrap();
    assert!(c.pending_out().starts_with(b"SIP/2.0 513 "));
    let mut c = conn(7, now);
    let Err(CloseReason::Framing(e)) = feed(&mut c, b"\x16\x03\x01\x02\x00\x01", now) else {
        panic!("garbage must close");
    };
    assert_eq!(e, StreamError::BadStartLine);
    // A refused reply is not answered: nothing to answer to.
    let mut c = conn(7, now);
    assert!(matches!(
        feed(&mut c, b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n", now),
        Err(CloseReason::Framing(_))
    ));
}

#[test]
fn timers() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut c = conn(7, t0);
    assert_eq!(c.deadline(), Some(t0 + T.idle));
    // Half a message: the slowloris timer runs from its first byte...
    feed(&mut c, b"OPTIONS sip:a@b SIP/2.0\r\n", t0).unwrap();
    feed(&mut c, b"Via: x\r\n", t0 + s).unwrap();
    assert_eq!(c.deadline(), Some(t0 + T.incomplete));
    assert!(c.handle_timeout(t0 + T.incomplete - s).is_none());
    assert!(matches!(
        c.handle_timeout(t0 + T.incomplete),
        Some(CloseReason::Incomplete(_))
    ));
    // ...and restarts with each message completed.
    let mut c = conn(7, t0);
    let m = msg(1);
    feed(&mut c, &m[..10], t0).unwrap();
    let mut rest = m[10..].to_vec();
    rest.extend_from_slice(&m[..10]);
    feed(&mut c, &rest, t0 + 3 * s).unwrap();
    assert_eq!(c.deadline(), Some(t0 + 3 * s + T.incomplete));
    // Idle: nothing read or written.
    let mut c = conn(7, t0);
    assert!(c.handle_timeout(t0 + T.idle - s).is_none());
    assert!(matches!(
        c.handle_timeout(t0 + T.idle),
        Some(CloseReason::Idle(_))
    ));
    // Send: a queue that does not move; progress restarts the timer.
    let mut c = conn(7, t0);
    c.queue(&[b'x'; 100], t0).unwrap();
    assert_eq!(c.deadline(), Some(t0 + T.send));
    c.wrote(10, t0 + 5 * s);
    assert_eq!(c.deadline(), Some(t0 + 5 * s + T.send));
    assert!(matches!(
        c.handle_timeout(t0 + 5 * s + T.send),
        Some(CloseReason::SendTimeout(_))
    ));
    c.wrote(90, t0 + 6 * s);
    assert_eq!(c.deadline(), Some(t0 + 6 * s + T.idle));
}

#[test]
fn queue_is_bounded() {
    let now = Instant::now();
    let mut c = conn(7, now);
    let chunk = vec![b'x'; 60_000];
    let mut queued = 0;
    while c.queue(&chunk, now).is_ok() {
        queued += chunk.len();
    }
    assert!(queued <= CONN_QUEUE_MAX && queued + chunk.len() > CONN_QUEUE_MAX);
    assert!(matches!(c.queue(&chunk, now), Err(QueueError::Full { .. })));
    // What fits still goes.
    assert!(c.queue(b"x", now).is_ok());
    let n = c.pending_out().len();
    assert_eq!(n, queued + 1);
    c.wrote(n - 1, now);
    assert_eq!(c.pending_out(), b"x");
}

#[test]
fn connecting_writes_nothing_until_connected() {
    let t0 = Instant::now();
    let mut c = Conn::new(
        info(7, "192.0.2.1:5060"),
        None,
        65_535,
        T,
        Some(Duration::from_secs(3)),
        t0,
    );
    assert!(c.is_connecting());
    c.queue(b"hello", t0).unwrap();
    assert!(c.pending_out().is_empty());
    assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(3)));
    assert!(matches!(
        c.handle_timeout(t0 + Duration::from_secs(3)),
        Some(CloseReason::ConnectTimeout(_))
    ));
    let t1 = t0 + Duration::from_secs(1);
    c.on_connected(t1);
    assert_eq!(c.pending_out(), b"hello");
    // The send timer runs from the connect, not from the queueing.
    assert_eq!(c.deadline(), Some(t1 + T.send));
}

#[test]
fn ids_never_zero_never_in_use_and_wrapping() {
    let now = Instant::now();
    let mut t: ConnTable<()> = ConnTable::new(false);
    let a = t.next_id().unwrap();
    assert_eq!(a, 1);
    t.insert(conn(a, now), ());
    assert_eq!(t.next_id(), Some(2));
    // Near the top the ids wrap to 1, which is taken, so 2 follows.
    let mut t: ConnTable<()> = ConnTable::new(false);
    t.insert(conn(1, now), ());
    t.set_last_id(MAX_CONN_ID - 1);
    assert_eq!(t.next_id(), Some(MAX_CONN_ID));
    assert_eq!(t.next_id(), Some(2));
}

#[test]
fn lookup_by_hint_dest_and_alias() {
    let now = Instant::now();
    let mut t: ConnTable<()> = ConnTable::new(true);
    t.insert(
        Conn::new(info(1, "192.0.2.1:4000"), None, 65_535, T, None, now),
        (),
    );
    t.insert(
        Conn::new(info(2, "192.0.2.1:5060"), None, 65_535, T, None, now),
        (),
    );
    let d = addr("192.0.2.1:5060");
    assert_eq!(t.find(Proto::Tcp, d, Some(addr("192.0.2.1:4000"))), Some(1));
    assert_eq!(t.find(Proto::Tcp, d, Some(addr("192.0.2.9:1"))), Some(2));
    assert_eq!(t.find(Proto::Tls, d, None), None);
    assert_eq!(t.find(Proto::Tcp, addr("198.51.100.1:5060"), None), None);
    assert!(t.alias(1, addr("198.51.100.1:5060")));
    assert_eq!(t.find(Proto::Tcp, addr("198.51.100.1:5060"), None), Some(1));
    t.remove(1, &CloseReason::PeerClosed);
    assert_eq!(t.find(Proto::Tcp, addr("198.51.100.1:5060"), None), None);
    assert_eq!(t.find(Proto::Tcp, d, Some(addr("192.0.2.1:4000"))), Some(2));
    let mut off: ConnTable<()> = ConnTable::new(false);
    off.insert(conn(1, now), ());
    assert!(!off.alias(1, addr("198.51.100.1:5060")));
}

#[test]
fn eviction_prefers_the_idlest_with_nothing_queued() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut t: ConnTable<()> = ConnTable::new(false);
    let mut busy = conn(1, t0);
    busy.queue(b"x", t0).unwrap();
    t.insert(busy, ());
    t.insert(conn(2, t0 + s), ());
    t.insert(conn(3, t0 + 2 * s), ());
    assert_eq!(t.eviction_candidate(), Some(2));
    t.remove(2, &CloseReason::Evicted);
    t.remove(3, &CloseReason::Idle(s));
    assert_eq!(t.eviction_candidate(), Some(1));
    t.remove(
        1,
        &CloseReason::Io(std::io::ErrorKind::ConnectionReset.into()),
    );
    let st = t.stats();
    assert_eq!(
        (st.open, st.accepted, st.closed, st.idle_closed, st.errors),
        (0, 3, 3, 1, 1)
    );
}
