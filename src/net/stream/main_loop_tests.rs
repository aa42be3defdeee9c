//! The loop on real sockets: `run` on a thread with listeners on
//! 127.0.0.1:0, plain std clients, the readers' ends of the link read by
//! the test. Every wait is bounded.
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::direct::Sender;
use super::ipc::{Channels, Delivery, SendReq, MAX_DATAGRAM};
use super::main_loop::{run_observed, Listener, MainLoopError, Observer, StreamCfg};
use super::slots::{self, Slots};
use super::table::StreamStats;
use crate::net::tls::{TlsContext, TlsSettings};
use crate::net::Proto;

const WAIT: Duration = Duration::from_secs(3);

struct Obs {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<StreamStats>>,
}

impl Observer for Obs {
    fn stop(&mut self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn stats(&mut self, s: &StreamStats) {
        if let Ok(mut g) = self.stats.lock() {
            *g = *s;
        }
    }
}

/// A running loop; stopped and joined on drop.
struct Harness {
    ch: Arc<Channels>,
    /// Listen addresses, in the order of the protocols asked for (their
    /// index is the `sock`).
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<StreamStats>>,
    thread: Option<JoinHandle<Result<(), MainLoopError>>>,
}

impl Harness {
    fn start(cfg: StreamCfg, protos: &[Proto], tls: Option<TlsContext>) -> Harness {
        Harness::start_with(cfg, protos, tls, None)
    }

    fn start_with(
        cfg: StreamCfg,
        protos: &[Proto],
        tls: Option<TlsContext>,
        slots: Option<Slots>,
    ) -> Harness {
        let ch = Arc::new(Channels::new(2).unwrap());
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for (i, p) in protos.iter().enumerate() {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let local = l.local_addr().unwrap();
            addrs.push(local);
            listeners.push(Listener {
                sock: u8::try_from(i).unwrap(),
                proto: *p,
                listener: l,
                local,
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(StreamStats::default()));
        let mut obs = Obs {
            stop: stop.clone(),
            stats: stats.clone(),
        };
        let ch2 = ch.clone();
        let thread = std::thread::spawn(move || {
            run_observed(&cfg, listeners, &ch2, tls.as_ref(), slots, &mut obs)
        });
        Harness {
            ch,
            addrs,
            stop,
            stats,
            thread: Some(thread),
        }
    }

    fn connect(&self, sock: usize) -> TcpStream {
        let s = TcpStream::connect(self.addrs[sock]).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    }

    /// The next delivery to any reader, with the reader's index.
    fn delivery(&self) -> (usize, Delivery, Vec<u8>) {
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while Instant::now() < deadline {
            for (i, (rx, _)) in self.ch.readers.iter().enumerate() {
                rx.set_read_timeout(Some(Duration::from_millis(10)))
                    .unwrap();
                if let Ok(n) = rx.recv(&mut buf) {
                    let (d, m) = Delivery::decode(&buf[..n]).unwrap();
                    return (i, d, m.to_vec());
                }
            }
        }
        panic!("no delivery within {WAIT:?}");
    }

    fn send(&self, req: SendReq, bytes: &[u8]) {
        self.ch.send(&req, bytes).unwrap();
    }

    fn stats(&self) -> StreamStats {
        *self.stats.lock().unwrap()
    }

    /// Waits until `f(stats)` holds.
    fn wait_stats(&self, what: &str, f: impl Fn(&StreamStats) -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if f(&self.stats()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{what}: stats stayed {:?}", self.stats());
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.expect("loop thread").expect("loop result");
            }
        }
    }
}

fn msg(n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{n}\r\n\
         From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c{n}\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 4\r\n\r\nbody"
    )
    .into_bytes()
}

fn head(extra: &str) -> Vec<u8> {
    format!(
        "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
         From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: refused\r\nCSeq: 1 INVITE\r\n\
         {extra}\r\n"
    )
    .into_bytes()
}

fn fast_cfg() -> StreamCfg {
    StreamCfg {
        connection_lifetime: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(2),
        send_timeout: Duration::from_secs(2),
        incomplete_timeout: Duration::from_secs(20),
        ..StreamCfg::default()
    }
}

/// Reads until end of stream (or a reset); what came before it.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "not closed: got {got:?}");
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("not closed within {WAIT:?} ({e}); got {got:?}"),
        }
    }
}

fn read_exact_timed(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).expect("bytes from the loop");
    v
}

/// A connection from the loop to a test listener, blocking with a read
/// timeout.
fn accept_within(far: &TcpListener) -> (TcpStream, SocketAddr) {
    far.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match far.accept() {
            Ok((s, from)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(WAIT)).unwrap();
                return (s, from);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("no connection from the loop: {e}"),
        }
    }
}

fn ping(s: &mut TcpStream) {
    s.write_all(b"\r\n\r\n").unwrap();
    assert_eq!(read_exact_timed(s, 2), b"\r\n");
}

#[test]
fn messages_whole_and_split_reach_one_reader() {
    let h = Harness::start(fast_cfg(), &[Proto::Tcp], None);
    let mut c = h.connect(0);
    c.write_all(&[msg(1), msg(2)].concat()).unwrap();
    let m3 = msg(3);
    for chunk in m3.chunks(9) {
        c.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let me = c.local_addr().unwrap();
    let got: Vec<_> = (0..3).map(|_| h.delivery()).collect();
    let conn = got[0].1.conn;
    assert_ne!(conn, 0);
    for (i, (reader, d, _)) in got.iter().enumerate() {
        assert_eq!(*reader, conn as usize % 2, "message {i}");
        assert_eq!(
            *d,
            Delivery {
                proto: Proto::Tcp,
                sock: 0,
                conn,
                peer: me
            }
        );
    }
    let bodies: Vec<_> = got.into_iter().map(|g| g.2).collect();
    assert_eq!(bodies, vec![msg(1), msg(2), msg(3)]);
    h.wait_stats("accepted", |s| s.accepted == 1 && s.open == 1);
}

#[test]
fn a_ping_gets_a_pong() {
    let h = Harness::start(fast_cfg(), &[Proto::Tcp], None);
    let mut c = h.connect(0);
    ping(&mut c);
    ping(&mut c);
}

#[test]
fn sends_use_the_hinted_connection() {
    let h = Harness::start(fast_cfg(), &[Proto::Tcp], None);
    let mut c = h.connect(0);
    c.write_all(&msg(1)).unwrap();
    let (_, d, _) = h.delivery();
    let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    h.send(
        SendReq {
            proto: Proto::Tcp,
            // Where nobody listens: the hint must win.
            dest: "127.0.0.1:9".parse().unwrap(),
            hint: Some(d.peer),
            sock: 0,
            direct: Default::default(),
        },
        reply,
    );
    assert_eq!(read_exact_timed(&mut c, reply.len()), reply);
}

#[test]
fn sends_connect_out_and_replies_come_back_on_that_connection() {
    let h = Harness::start(fast_cfg(), &[Proto::Tcp], None);
    let far = TcpListener::bind("127.0.0.1:0").unwrap();
    let dest = far.local_addr().unwrap();
    let req = SendReq {
        proto: Proto::Tcp,
        dest,
        hint: None,
        sock: 0,
        direct: Default::default(),
    };
    h.send(req, &msg(1));
    let (mut s, from) = accept_within(&far);
    assert_eq!(from.ip(), h.addrs[0].ip(), "bound to the listener's IP");
    assert_eq!(read_exact_timed(&mut s, msg(1).len()), msg(1));
    // A second send to the same place reuses the connection.
    h.send(req, &msg(2));
    assert_eq!(read_exact_timed(&mut s, msg(2).len()), msg(2));
    assert!(far.accept().is_err(), "no second connection");
    // What the far end sends back is delivered as from that connection.
    s.write_all(&msg(3)).unwrap();
    let (reader, d, m) = h.delivery();
    assert_eq!(m, msg(3));
    assert_eq!((d.peer, d.proto, d.sock), (dest, Proto::Tcp, 0));
    assert_eq!(reader, d.conn as usize % 2);
    h.wait_stats("connected", |s| s.connected == 1 && s.accepted == 0);
}

#[test]
fn a_failed_connect_is_counted_and_its_requests_answered_503() {
    let h = Harness::start(fast_cfg(), &[Proto::Tcp], None);
    // A port nobody listens on: refused at once on loopback.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dest = dead.local_addr().unwrap();
    drop(dead);
    let req = SendReq {
        proto: Proto::Tcp,
        dest,
        hint: None,
        sock: 0,
        direct: Default::default(),
    };
    h.send(req, &msg(1));
    h.send(
        req,
        b"ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKa\r\nContent-Length: 0\r\n\r\n",
    );
    h.wait_stats("connect error", |s| s.errors == 1 && s.open == 0);
    // The OPTIONS comes back as a 503 from the peer that could not be
    // reached (RFC 3261 8.1.3.1); the ACK gets nothing.
    let (_, d, m) = h.delivery();
    assert_eq!((d.peer, d.proto), (dest, Proto::Tcp));
    let text = String::from_utf8_lossy(&m);
    assert!(text.starts_with("SIP/2.0 503 "), "{text}");
    assert!(text.contains("Call-ID: c1\r\n"), "{text}");
    assert!(
        h.ch.readers.iter().all(|(rx, _)| {
            rx.set_nonblocking(true).unwrap();
            rx.recv(&mut [0u8; 64]).is_err()
        }),
        "nothing for the ACK"
    );
}

#[test]
fn framing_errors_are_answered_then_closed() {
    let h = Harness::start(fast_cfg(), &[Proto::Tcp], None);
    let mut c = h.connect(0);
    c.write_all(&head("")).unwrap();
    let got = read_to_close(&mut c);
    assert!(
        got.starts_with(b"SIP/2.0 400 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(got.windows(16).any(|w| w == b"Call-ID: refused"));

    let mut c = h.connect(0);
    let mut big = head("Content-Length: 70000\r\n");
    big.extend_from_slice(&[b'x'; 3000]);
    c.write_all(&big).unwrap();
    let got = read_to_close(&mut c);
    assert!(
        got.starts_with(b"SIP/2.0 513 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    let mut c = h.connect(0);
    c.write_all(b"\x00\x01\x02\xff\xfe binary").unwrap();
    assert!(read_to_close(&mut c).is_empty());
    h.wait_stats("three errors", |s| s.errors == 3 && s.open == 0);
}

#[test]
fn slowloris_and_idle_connections_are_closed() {
    let cfg = StreamCfg {
        incomplete_timeout: Duration::from_millis(300),
        connection_lifetime: Duration::from_millis(600),
        ..fast_cfg()
    };
    let h = Harness::start(cfg, &[Proto::Tcp], None);
    let t0 = Instant::now();
    let mut slow = h.connect(0);
    let mut idle = h.connect(0);
    slow.write_all(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n")
        .unwrap();
    assert!(read_to_close(&mut slow).is_empty());
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(550),
        "{took:?}"
    );
    assert!(read_to_close(&mut idle).is_empty());
    assert!(
        t0.elapsed() >= Duration::from_millis(550),
        "{:?}",
        t0.elapsed()
    );
    h.wait_stats("closes", |s| {
        s.closed == 2 && s.idle_closed == 1 && s.errors == 1
    });
}

#[test]
fn the_longest_idle_connection_makes_room() {
    let cfg = StreamCfg {
        max_connections: 3,
        ..fast_cfg()
    };
    let h = Harness::start(cfg, &[Proto::Tcp], None);
    let mut cs: Vec<TcpStream> = Vec::new();
    for _ in 0..3 {
        let mut c = h.connect(0);
        ping(&mut c);
        std::thread::sleep(Duration::from_millis(20));
        cs.push(c);
    }
    // The first one is the idlest now; touch the second.
    ping(&mut cs[1]);
    let mut fourth = h.connect(0);
    ping(&mut fourth);
    assert!(read_to_close(&mut cs[0]).is_empty());
    ping(&mut cs[1]);
    ping(&mut cs[2]);
    h.wait_stats("evicted", |s| s.open == 3 && s.closed == 1 && s.errors == 0);
}

#[test]
fn a_peer_that_does_not_read_is_closed_and_others_are_served() {
    let cfg = StreamCfg {
        send_timeout: Duration::from_millis(500),
        ..fast_cfg()
    };
    let h = Harness::start(cfg, &[Proto::Tcp], None);
    // A tiny receive window, so that the kernel buffers fill early.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&h.addrs[0].into()).unwrap();
    let mut stuck: TcpStream = sock.into();
    stuck.set_read_timeout(Some(WAIT)).unwrap();
    stuck.write_all(&msg(1)).unwrap();
    let (_, d, _) = h.delivery();
    let mut other = h.connect(0);
    let req = SendReq {
        proto: Proto::Tcp,
        dest: d.peer,
        hint: Some(d.peer),
        sock: 0,
        direct: Default::default(),
    };
    // 12 MB: the kernel's buffers on both sides absorb a few MB even
    // with the small window, our queue 1 MB; the rest is dropped.
    let chunk = vec![b'y'; 60_000];
    for _ in 0..200 {
        // The link may be busy for a moment; that is not what is tested.
        let _ = h.ch.send(&req, &chunk);
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(900) {
        ping(&mut other);
        std::thread::sleep(Duration::from_millis(50));
    }
    h.wait_stats("send timeout", |s| s.errors == 1 && s.open == 1);
    let got = read_to_close(&mut stuck);
    assert!(!got.is_empty() && got.iter().all(|&b| b == b'y'));
    assert!(got.len() < 200 * chunk.len());
    ping(&mut other);
}

#[test]
fn two_hundred_connections() {
    let h = Harness::start(fast_cfg(), &[Proto::Tcp], None);
    let mut cs = Vec::new();
    for i in 0..200 {
        let mut c = h.connect(0);
        c.write_all(&msg(i)).unwrap();
        cs.push(c);
    }
    let mut conns = std::collections::HashSet::new();
    let mut bodies = std::collections::HashSet::new();
    for _ in 0..200 {
        let (reader, d, m) = h.delivery();
        assert_eq!(reader, d.conn as usize % 2);
        conns.insert(d.conn);
        bodies.insert(m);
    }
    assert_eq!((conns.len(), bodies.len()), (200, 200));
    h.wait_stats("all open", |s| s.open == 200 && s.accepted == 200);
}

fn tls_contexts(pki: &crate::net::tls::test_pki::TestPki) -> (TlsContext, TlsSettings) {
    let srv = pki.settings(&pki.server).context().unwrap();
    (srv, pki.settings(&pki.client))
}

fn tls_client(
    addr: SocketAddr,
    cli: &TlsSettings,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cli.client_config().unwrap(), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

#[test]
fn tls_messages_and_replies() {
    let pki = crate::net::tls::test_pki::TestPki::new("main-loop");
    let (ctx, cli) = tls_contexts(&pki);
    let h = Harness::start(fast_cfg(), &[Proto::Tcp, Proto::Tls], Some(ctx));
    let mut c = tls_client(h.addrs[1], &cli);
    c.write_all(&msg(1)).unwrap();
    let (reader, d, m) = h.delivery();
    assert_eq!(m, msg(1));
    assert_eq!(
        (d.proto, d.sock, reader),
        (Proto::Tls, 1, d.conn as usize % 2)
    );
    assert_eq!(d.peer, c.sock.local_addr().unwrap());

    // Garbage where a ClientHello belongs: closed, the others unaffected.
    let mut bad = h.connect(1);
    bad.write_all(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n").unwrap();
    let _ = read_to_close(&mut bad);

    let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    h.send(
        SendReq {
            proto: Proto::Tls,
            dest: d.peer,
            hint: Some(d.peer),
            sock: 1,
            direct: Default::default(),
        },
        reply,
    );
    let mut got = vec![0u8; reply.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, reply);
    c.write_all(&msg(2)).unwrap();
    let (_, d2, m) = h.delivery();
    assert_eq!((d2.conn, m), (d.conn, msg(2)));
    h.wait_stats("tls error", |s| s.errors == 1 && s.open == 1);
    // close_notify ends the connection though TCP stays open.
    c.conn.send_close_notify();
    while c.conn.wants_write() {
        c.conn.write_tls(&mut c.sock).unwrap();
    }
    h.wait_stats("close_notify", |s| s.errors == 1 && s.open == 0);
}

#[test]
fn tls_connects_out() {
    let pki = crate::net::tls::test_pki::TestPki::new("main-loop-out");
    let (ctx, _) = tls_contexts(&pki);
    let h = Harness::start(fast_cfg(), &[Proto::Tls], Some(ctx.clone()));
    // The far end: a TLS server with the same certificate (it names
    // 127.0.0.1, which the loop verifies against).
    let far = TcpListener::bind("127.0.0.1:0").unwrap();
    let dest = far.local_addr().unwrap();
    let req = SendReq {
        proto: Proto::Tls,
        dest,
        hint: None,
        sock: 0,
        direct: Default::default(),
    };
    h.send(req, &msg(1));
    let (tcp, _) = accept_within(&far);
    let conn = rustls::ServerConnection::new(ctx.server_config().clone()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut got = vec![0u8; msg(1).len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg(1));
    s.write_all(&msg(2)).unwrap();
    let (_, d, m) = h.delivery();
    assert_eq!((d.proto, d.peer, m), (Proto::Tls, dest, msg(2)));
    h.wait_stats("connected", |s| s.connected == 1);
}

/// A loop with direct writes, a far listener it connects to, and a
/// sender that holds the connection's socket: the first messages went
/// over the link until the socket was handed out.
struct Lent {
    h: Harness,
    slots: Slots,
    req: SendReq,
    tx: Sender,
    far: TcpListener,
    /// The far end of the connection.
    peer: TcpStream,
    /// The connection's id.
    conn: u32,
}

impl Lent {
    /// `far_rcvbuf`: a receive buffer for the far end (a small window).
    fn new(far_rcvbuf: Option<usize>) -> Lent {
        let slots = slots::for_test(64);
        let h = Harness::start_with(fast_cfg(), &[Proto::Tcp], None, Some(slots));
        let far = TcpListener::bind("127.0.0.1:0").unwrap();
        if let Some(n) = far_rcvbuf {
            socket2::SockRef::from(&far)
                .set_recv_buffer_size(n)
                .unwrap();
        }
        let req = SendReq {
            proto: Proto::Tcp,
            dest: far.local_addr().unwrap(),
            hint: None,
            sock: 0,
            direct: Default::default(),
        };
        let mut tx = Sender::default();
        tx.send(&h.ch, slots, &req, &msg(0), Instant::now())
            .unwrap();
        let (mut peer, _) = accept_within(&far);
        assert_eq!(read_exact_timed(&mut peer, msg(0).len()), msg(0));
        // The socket comes on the sender's channel after that first
        // message; until then messages keep going over the link.
        let deadline = Instant::now() + WAIT;
        let mut n = 1;
        while tx.held() == 0 {
            assert!(Instant::now() < deadline, "no socket handed out");
            std::thread::sleep(Duration::from_millis(5));
            tx.send(&h.ch, slots, &req, &msg(n), Instant::now())
                .unwrap();
            assert_eq!(read_exact_timed(&mut peer, msg(n).len()), msg(n));
            n += 1;
        }
        let conn = slots::for_test_id(slots, &req.dest, &tx);
        Lent {
            h,
            slots,
            req,
            tx,
            far,
            peer,
            conn,
        }
    }

    fn send(&mut self, m: &[u8]) {
        self.tx
            .send(&self.h.ch, self.slots, &self.req, m, Instant::now())
            .unwrap();
    }

    fn writes(&self) -> u32 {
        self.slots.writes(self.conn)
    }
}

/// A sender that holds the connection's socket writes to it itself; the
/// main process sees those writes only through the slot's counter.
#[test]
fn direct_writes_go_out_after_the_first_message_and_in_order() {
    let mut l = Lent::new(None);
    let before = l.writes();
    for i in 100..150 {
        l.send(&msg(i));
    }
    for i in 100..150 {
        assert_eq!(
            read_exact_timed(&mut l.peer, msg(i).len()),
            msg(i),
            "message {i}"
        );
    }
    assert_eq!(l.writes().wrapping_sub(before), 50, "all written directly");
}

/// A peer that reads slowly fills the socket: the rest of a message and
/// every later one go through the main process until it has written
/// them, and nothing overtakes, interleaves or is cut.
#[test]
fn a_full_socket_hands_the_rest_to_the_main_process_in_order() {
    let mut l = Lent::new(Some(4096));
    let big = |n: u32| {
        let mut m =
            format!("MESSAGE sip:a@b SIP/2.0\r\nCSeq: {n} MESSAGE\r\nContent-Length: 2000\r\n\r\n")
                .into_bytes();
        m.resize(m.len() + 2_000, b'a' + (n % 26) as u8);
        m
    };
    // 200 messages of 2 KB in bursts of 10, more than the socket holds
    // (its buffer is made small), while the peer reads slowly: room keeps
    // appearing while the main process still holds the rest of an
    // earlier message, and a direct write then must not take it.
    let sent = 200u32;
    let sock = l.tx.socket_for(&l.req.dest).expect("socket held");
    socket2::SockRef::from(&sock)
        .set_send_buffer_size(8192)
        .unwrap();
    let before = l.writes();
    let want: Vec<u8> = (1..=sent).flat_map(big).collect();
    let want_len = want.len();
    let mut s = l.peer.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && got.len() < want_len {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    break
                }
                Err(e) => panic!("{e}"),
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        got
    });
    for n in 1..=sent {
        l.send(&big(n));
        // Now and then the peer catches up, and writes go direct again.
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let direct = l.writes().wrapping_sub(before);
    assert!(
        direct < sent,
        "the socket never filled: {direct} written directly"
    );
    assert!(direct > 0, "none written directly");
    let got = reader.join().unwrap();
    let mut rest = &got[..];
    for n in 1..=sent {
        let m = big(n);
        assert!(
            rest.len() >= m.len(),
            "message {n} missing ({} bytes left)",
            rest.len()
        );
        assert_eq!(
            &rest[..m.len()],
            &m[..],
            "message {n} whole and in its place"
        );
        rest = &rest[m.len()..];
    }
    assert!(rest.is_empty());
}

/// When the main process closes a connection, a process holding its
/// socket notices at its next message, which then goes over a new
/// connection.
#[test]
fn a_closed_connection_is_not_written_and_the_message_is_not_lost() {
    let mut l = Lent::new(None);
    // The peer closes; the main process reads the end and closes too.
    let peer = l.peer.try_clone().unwrap();
    drop(peer);
    l.peer.shutdown(std::net::Shutdown::Both).unwrap();
    l.h.wait_stats("closed", |st| st.closed == 1);
    l.send(&msg(99));
    let (mut s2, _) = accept_within(&l.far);
    assert_eq!(read_exact_timed(&mut s2, msg(99).len()), msg(99));
}
