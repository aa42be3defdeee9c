//! Sessions talking to each other: in memory, over a Unix socket pair and
//! over TCP on 127.0.0.1, with the test PKI.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{AlertDescription, CertificateError};

use super::test_pki::TestPki;
use super::{ServerName, TlsSession, TlsSessionError, TlsSettings, TlsValue};

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

fn server_session(s: &TlsSettings) -> TlsSession {
    TlsSession::server(s.server_config().unwrap(), s.verify_client).unwrap()
}

fn client_session(s: &TlsSettings, name: ServerName<'static>) -> TlsSession {
    TlsSession::client(s.client_config().unwrap(), name, s.verifies_server()).unwrap()
}

/// What each side ended with after [`pump`].
#[derive(Debug, Default)]
struct Outcome {
    client: Option<TlsSessionError>,
    server: Option<TlsSessionError>,
}

/// Carries ciphertext both ways in memory until both sides are quiet or
/// have failed. A failing side's alert is still delivered.
fn pump(c: &mut TlsSession, s: &mut TlsSession) -> Outcome {
    let mut out = Outcome::default();
    for _ in 0..50 {
        let to_s = c.pending_ciphertext().to_vec();
        c.consume_ciphertext(to_s.len());
        if out.server.is_none() && !to_s.is_empty() {
            out.server = s.feed(&to_s).err();
        }
        let to_c = s.pending_ciphertext().to_vec();
        s.consume_ciphertext(to_c.len());
        if out.client.is_none() && !to_c.is_empty() {
            out.client = c.feed(&to_c).err();
        }
        if to_s.is_empty() && to_c.is_empty() {
            return out;
        }
    }
    panic!("sessions never went quiet");
}

fn plaintext(s: &mut TlsSession) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_plaintext(&mut v);
    v
}

#[test]
fn handshake_with_client_certificate_and_data_both_ways() {
    let pki = TestPki::new("hs-ok");
    let mut srv = pki.settings(&pki.server);
    srv.set("tls_verify", TlsValue::Int(1)).unwrap();
    srv.set("tls_require_certificate", TlsValue::Int(1))
        .unwrap();
    let cli = pki.settings(&pki.client);
    let mut s = server_session(&srv);
    let mut c = client_session(&cli, localhost());
    assert!(c.is_handshaking() && s.is_handshaking());
    assert!(c.wants_write(), "ClientHello pending at once");

    let o = pump(&mut c, &mut s);
    assert!(o.client.is_none() && o.server.is_none(), "{o:?}");
    assert!(!c.is_handshaking() && !s.is_handshaking());
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));

    let invite = b"INVITE sip:bob@localhost SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    c.send(invite).unwrap();
    assert!(pump(&mut c, &mut s).server.is_none());
    assert_eq!(plaintext(&mut s), invite);
    s.send(b"SIP/2.0 100 Trying\r\n\r\n").unwrap();
    assert!(pump(&mut c, &mut s).client.is_none());
    assert_eq!(plaintext(&mut c), b"SIP/2.0 100 Trying\r\n\r\n");

    let pc = s.peer_certificate().expect("client certificate");
    assert_eq!(pc.subject, "/C=DE/CN=client.test");
    assert_eq!(pc.issuer, "/O=ser tests/CN=ser test CA");
    assert!(pc.verified);
    let ps = c.peer_certificate().expect("server certificate");
    assert_eq!(ps.subject, "/C=DE/CN=localhost");
    assert!(ps.verified, "a CA list turns tls_verify_server on");

    // close_notify ends it cleanly; nothing can be sent afterwards.
    c.close();
    assert!(matches!(c.send(b"x"), Err(TlsSessionError::Closed)));
    assert!(pump(&mut c, &mut s).server.is_none());
    assert!(s.peer_closed());
}

#[test]
fn tls_1_2_still_works() {
    let pki = TestPki::new("hs-12");
    let srv = pki.settings(&pki.server);
    let cli = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(super::pem::load_ca_list(&pki.ca).unwrap())
    .with_no_client_auth();
    let mut s = server_session(&srv);
    let mut c = TlsSession::client(Arc::new(cli), localhost(), true).unwrap();
    let o = pump(&mut c, &mut s);
    assert!(o.client.is_none() && o.server.is_none(), "{o:?}");
    assert_eq!(s.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
}

#[test]
fn a_client_certificate_from_an_unknown_ca_is_refused_when_verifying() {
    let pki = TestPki::new("hs-rogue");
    let mut srv = pki.settings(&pki.server);
    srv.set("tls_verify", TlsValue::Int(1)).unwrap();
    let cli = pki.settings(&pki.rogue_client);
    let mut s = server_session(&srv);
    let mut c = client_session(&cli, localhost());
    let o = pump(&mut c, &mut s);
    assert!(
        matches!(
            o.server,
            Some(TlsSessionError::BadCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{o:?}"
    );
    assert!(o.server.as_ref().unwrap().is_fatal());
    // The server's alert told the client why.
    assert!(
        matches!(
            o.client,
            Some(TlsSessionError::AlertReceived(AlertDescription::UnknownCA))
        ),
        "{o:?}"
    );
    assert_eq!(s.peer_certificate(), None);
}

#[test]
fn without_tls_verify_any_client_is_accepted_and_no_certificate_asked() {
    let pki = TestPki::new("hs-noverify");
    let srv = pki.settings(&pki.server);
    let cli = pki.settings(&pki.rogue_client);
    let mut s = server_session(&srv);
    let mut c = client_session(&cli, localhost());
    let o = pump(&mut c, &mut s);
    assert!(o.client.is_none() && o.server.is_none(), "{o:?}");
    assert_eq!(s.peer_certificate(), None);
}

/// A client that has no certificate to offer.
fn anonymous_client(pki: &TestPki) -> TlsSession {
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(super::pem::load_ca_list(&pki.ca).unwrap())
    .with_no_client_auth();
    TlsSession::client(Arc::new(cfg), localhost(), true).unwrap()
}

#[test]
fn tls_require_certificate_refuses_a_client_without_one() {
    let pki = TestPki::new("hs-require");
    let mut srv = pki.settings(&pki.server);
    srv.set("tls_verify", TlsValue::Int(1)).unwrap();
    srv.set("tls_require_certificate", TlsValue::Int(1))
        .unwrap();
    let mut s = server_session(&srv);
    let mut c = anonymous_client(&pki);
    let o = pump(&mut c, &mut s);
    assert!(
        matches!(o.server, Some(TlsSessionError::NoCertificate)),
        "{o:?}"
    );
    assert!(
        matches!(o.client, Some(TlsSessionError::AlertReceived(_))),
        "{o:?}"
    );

    // Verify without require: a client without a certificate gets in.
    srv.set("tls_require_certificate", TlsValue::Int(0))
        .unwrap();
    let mut s = server_session(&srv);
    let mut c = anonymous_client(&pki);
    let o = pump(&mut c, &mut s);
    assert!(o.client.is_none() && o.server.is_none(), "{o:?}");
    assert_eq!(s.peer_certificate(), None);
}

#[test]
fn a_server_is_refused_when_its_ca_or_name_is_wrong() {
    let pki = TestPki::new("hs-server");
    let srv = pki.settings(&pki.server);

    let mut cli = pki.settings(&pki.client);
    cli.set("tls_ca_list", TlsValue::Str(pki.rogue_ca.to_str().unwrap()))
        .unwrap();
    let mut s = server_session(&srv);
    let mut c = client_session(&cli, localhost());
    let o = pump(&mut c, &mut s);
    assert!(
        matches!(
            o.client,
            Some(TlsSessionError::BadCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{o:?}"
    );
    assert!(
        matches!(o.server, Some(TlsSessionError::AlertReceived(_))),
        "{o:?}"
    );

    // Right CA, but the certificate does not name the host we dialled.
    let cli = pki.settings(&pki.client);
    let mut s = server_session(&srv);
    let mut c = client_session(&cli, ServerName::try_from("proxy.example").unwrap());
    let o = pump(&mut c, &mut s);
    assert!(
        matches!(o.client, Some(TlsSessionError::BadCertificate(_))),
        "{o:?}"
    );

    // tls_verify_server off: the same server is taken, and says so.
    let mut cli = pki.settings(&pki.client);
    cli.set("tls_ca_list", TlsValue::Str(pki.rogue_ca.to_str().unwrap()))
        .unwrap();
    cli.set("tls_verify_server", TlsValue::Int(0)).unwrap();
    let mut s = server_session(&srv);
    let mut c = client_session(&cli, ServerName::try_from("proxy.example").unwrap());
    let o = pump(&mut c, &mut s);
    assert!(o.client.is_none() && o.server.is_none(), "{o:?}");
    let pc = c.peer_certificate().unwrap();
    assert!(!pc.verified);
    assert_eq!(pc.subject, "/C=DE/CN=localhost");
}

#[test]
fn garbage_fed_to_a_server_is_an_error_not_a_panic() {
    let pki = TestPki::new("garbage");
    let srv = pki.settings(&pki.server);
    let cfg = srv.server_config().unwrap();

    let mut s = TlsSession::server(cfg.clone(), false).unwrap();
    let e = s
        .feed(b"OPTIONS sip:localhost SIP/2.0\r\nVia: SIP/2.0/TLS x\r\n\r\n")
        .unwrap_err();
    assert!(matches!(e, TlsSessionError::Protocol(_)), "{e:?}");
    assert!(e.is_fatal());
    // It stays failed; the alert for the peer is pending.
    assert!(s.feed(b"more").is_err());
    assert!(s.wants_write());

    // Pseudo-random bytes, some starting like a handshake record, must
    // never panic whatever they hold.
    let mut x: u32 = 0x2545_f491;
    for round in 0..300 {
        let mut s = TlsSession::server(cfg.clone(), false).unwrap();
        let mut junk: Vec<u8> = (0..(round % 97 + 1) * 7)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        if round % 2 == 0 {
            junk.splice(0..0, [0x16, 0x03, 0x01, 0x00, 0x40, 0x01]);
        }
        let _ = s.feed(&junk);
        let _ = s.feed_eof();
    }

    // Garbage after a good handshake breaks the session too.
    let mut s = TlsSession::server(cfg, false).unwrap();
    let mut c = client_session(&pki.settings(&pki.client), localhost());
    assert!(pump(&mut c, &mut s).server.is_none());
    let e = s
        .feed(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap_err();
    assert!(matches!(e, TlsSessionError::Protocol(_)), "{e:?}");
}

#[test]
fn handshake_timer_send_limit_early_data_and_eof() {
    let pki = TestPki::new("timers");
    let srv = pki.settings(&pki.server);
    let cli = pki.settings(&pki.client);
    let ctx = srv.context().unwrap();
    let t0 = Instant::now();
    let mut s = ctx.accept(t0).unwrap();
    assert_eq!(s.handshake_deadline(), Some(t0 + srv.handshake_timeout));
    s.handle_timeout(t0 + Duration::from_secs(119)).unwrap();
    assert!(matches!(
        s.handle_timeout(t0 + Duration::from_secs(120)),
        Err(TlsSessionError::HandshakeTimeout(d)) if d == Duration::from_secs(120)
    ));

    // Data sent before the handshake ends waits, counts, and arrives.
    let mut c = client_session(&cli, localhost());
    c.set_send_queue_limit(1000);
    c.send(&[b'a'; 600]).unwrap();
    let e = c.send(&[b'b'; 600]).unwrap_err();
    assert!(
        matches!(e, TlsSessionError::SendQueueFull { limit: 1000, .. }),
        "{e:?}"
    );
    assert!(!e.is_fatal());
    let mut s = ctx.accept(t0).unwrap();
    assert!(pump(&mut c, &mut s).server.is_none());
    assert_eq!(plaintext(&mut s), vec![b'a'; 600]);
    assert_eq!(s.handshake_deadline(), None, "handshake over, timer off");
    s.handle_timeout(t0 + Duration::from_secs(1000)).unwrap();
    assert_eq!(c.queued_len(), 0);
    c.send(&[b'b'; 600]).unwrap();

    // TCP closed under a handshake: a reason to log.
    let mut s = ctx.accept(t0).unwrap();
    assert!(matches!(
        s.feed_eof(),
        Err(TlsSessionError::ClosedDuringHandshake)
    ));
}

/// Drives both ends over non-blocking streams from one thread until both
/// handshakes are done; `drive` must never block or spin.
fn drive_until_ready<S: Read + Write>(
    c: &mut TlsSession,
    cs: &mut S,
    s: &mut TlsSession,
    ss: &mut S,
) {
    for _ in 0..100 {
        c.drive(cs).unwrap();
        s.drive(ss).unwrap();
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            return;
        }
    }
    panic!("handshake did not finish over the socket");
}

fn exchange<S: Read + Write>(c: &mut TlsSession, cs: &mut S, s: &mut TlsSession, ss: &mut S) {
    drive_until_ready(c, cs, s, ss);
    // Bigger than one record and than the socket buffer may take at once.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    c.set_send_queue_limit(big.len());
    c.send(&big).unwrap();
    let mut got = Vec::new();
    for _ in 0..10_000 {
        c.drive(cs).unwrap();
        s.drive(ss).unwrap();
        s.read_plaintext(&mut got);
        if got.len() == big.len() {
            break;
        }
    }
    assert!(got == big, "got {} of {} bytes", got.len(), big.len());

    s.send(b"SIP/2.0 200 OK\r\n\r\n").unwrap();
    s.close();
    let st = s.drive(ss).unwrap();
    assert!(!st.wants_write);
    let mut reply = Vec::new();
    for _ in 0..100 {
        let st = c.drive(cs).unwrap();
        c.read_plaintext(&mut reply);
        if st.peer_closed {
            break;
        }
    }
    assert_eq!(reply, b"SIP/2.0 200 OK\r\n\r\n");
    assert!(c.peer_closed());
}

#[test]
fn drive_over_a_unix_socket_pair() {
    let pki = TestPki::new("drive-unix");
    let mut srv = pki.settings(&pki.server);
    srv.set("tls_verify", TlsValue::Int(1)).unwrap();
    let cli = pki.settings(&pki.client);
    let (mut cs, mut ss) = UnixStream::pair().unwrap();
    cs.set_nonblocking(true).unwrap();
    ss.set_nonblocking(true).unwrap();
    let mut s = server_session(&srv);
    let mut c = client_session(&cli, localhost());
    exchange(&mut c, &mut cs, &mut s, &mut ss);
    assert!(s.peer_certificate().unwrap().verified);
}

#[test]
fn drive_over_tcp_on_loopback_with_an_ip_name() {
    let pki = TestPki::new("drive-tcp");
    let srv = pki.settings(&pki.server);
    let cli = pki.settings(&pki.client);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cs = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut ss, _) = listener.accept().unwrap();
    cs.set_nonblocking(true).unwrap();
    ss.set_nonblocking(true).unwrap();
    let ip = ServerName::try_from("127.0.0.1").unwrap();
    let mut s = server_session(&srv);
    let mut c = client_session(&cli, ip);
    exchange(&mut c, &mut cs, &mut s, &mut ss);
    assert!(c.peer_certificate().unwrap().verified);
}

#[test]
fn a_refused_handshake_over_a_socket_is_an_error_on_both_sides() {
    let pki = TestPki::new("drive-refused");
    let mut srv = pki.settings(&pki.server);
    srv.set("tls_verify", TlsValue::Int(1)).unwrap();
    let cli = pki.settings(&pki.rogue_client);
    let (mut cs, mut ss) = UnixStream::pair().unwrap();
    cs.set_nonblocking(true).unwrap();
    ss.set_nonblocking(true).unwrap();
    let mut s = server_session(&srv);
    let mut c = client_session(&cli, localhost());
    let (mut c_err, mut s_err) = (None, None);
    for _ in 0..20 {
        if c_err.is_none() {
            c_err = c.drive(&mut cs).err();
        }
        if s_err.is_none() {
            s_err = s.drive(&mut ss).err();
        }
    }
    assert!(
        matches!(s_err, Some(TlsSessionError::BadCertificate(_))),
        "{s_err:?}"
    );
    assert!(
        matches!(c_err, Some(TlsSessionError::AlertReceived(_))),
        "{c_err:?}"
    );
}
