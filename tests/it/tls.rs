//! TLS (issue 15): the real `ser` with a `tls:` listener and certificates
//! made here with rcgen. A SIP-over-TLS client written on rustls calls a
//! UDP callee through ser (and gets every reply back on its connection),
//! on one connection and on several at once; a UDP caller reaches a TLS
//! callee ser connects to, verifying its certificate against the test CA
//! (a callee from another CA or naming another host is refused); a callee
//! may send its own requests on the connection ser opened and close it;
//! `tls_verify` + `tls_require_certificate` refuse a client whose
//! certificate comes from another CA (or that has none) and serve one the
//! CA signed; framing does not depend on how TLS records cut the stream;
//! a handshake never started is closed by `tls_handshake_timeout`; and
//! `ser -c` refuses a certificate file that is not there, naming
//! `tls_certificate`.

use crate::common::server::{check_config, Ser};
use crate::common::sip::{param, reply_to};
use crate::common::{free_udp_port, header_value, serial, status_of, Request, TestDir, UdpPeer};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use std::collections::HashSet;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------
// Certificates

/// One certificate with its key: DER for the test's own rustls configs,
/// PEM files for ser.
struct Identity {
    cert: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl Identity {
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

/// The test PKI: a CA that signed the server, one client and a server
/// certificate for another host; a rogue CA that signed another client
/// and another server certificate for 127.0.0.1.
struct Pki {
    ca: CertificateDer<'static>,
    ca_file: PathBuf,
    server: Identity,
    client: Identity,
    rogue_client: Identity,
    rogue_server: Identity,
    misnamed_server: Identity,
}

type Issuer = (rcgen::Certificate, KeyPair);

fn make_ca(name: &str) -> Issuer {
    let key = KeyPair::generate().expect("CA key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "ser black-box tests");
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).expect("CA cert");
    (cert, key)
}

fn make_leaf(
    dir: &TestDir,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer,
) -> Identity {
    let key = KeyPair::generate().expect("leaf key");
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).expect("leaf params");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).expect("leaf cert");
    Identity {
        cert_file: dir.write(&format!("{name}.pem"), cert.pem().as_bytes()),
        key_file: dir.write(&format!("{name}.key"), key.serialize_pem().as_bytes()),
        cert: cert.der().clone(),
        key_pkcs8: key.serialize_der(),
    }
}

impl Pki {
    /// Makes every certificate and writes the PEM files into `dir`.
    fn new(dir: &TestDir) -> Pki {
        let ca = make_ca("ser test CA");
        let rogue = make_ca("rogue CA");
        Pki {
            ca: ca.0.der().clone(),
            ca_file: dir.write("ca.pem", ca.0.pem().as_bytes()),
            server: make_leaf(
                dir,
                "server",
                &["127.0.0.1", "localhost"],
                ExtendedKeyUsagePurpose::ServerAuth,
                &ca,
            ),
            client: make_leaf(
                dir,
                "client",
                &["client.test"],
                ExtendedKeyUsagePurpose::ClientAuth,
                &ca,
            ),
            rogue_client: make_leaf(
                dir,
                "rogue_client",
                &["rogue.test"],
                ExtendedKeyUsagePurpose::ClientAuth,
                &rogue,
            ),
            rogue_server: make_leaf(
                dir,
                "rogue_server",
                &["127.0.0.1", "localhost"],
                ExtendedKeyUsagePurpose::ServerAuth,
                &rogue,
            ),
            misnamed_server: make_leaf(
                dir,
                "misnamed_server",
                &["elsewhere.test"],
                ExtendedKeyUsagePurpose::ServerAuth,
                &ca,
            ),
        }
    }

    /// The `tls_*` lines for ser: our server certificate, the CA list.
    fn ser_settings(&self) -> String {
        format!(
            "tls_certificate=\"{}\"\ntls_private_key=\"{}\"\ntls_ca_list=\"{}\"\n",
            self.server.cert_file.display(),
            self.server.key_file.display(),
            self.ca_file.display()
        )
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("test CA as a root");
        Arc::new(roots)
    }

    /// A client config that verifies the server against the test CA and
    /// shows `id` when asked for a certificate; `versions` restricts the
    /// protocol (TLS 1.2 fails a bad client certificate in the handshake,
    /// TLS 1.3 after it).
    fn client_config(
        &self,
        id: Option<&Identity>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let b = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_root_certificates(self.roots());
        Arc::new(match id {
            Some(id) => b
                .with_client_auth_cert(vec![id.cert.clone()], id.key())
                .expect("client cert"),
            None => b.with_no_client_auth(),
        })
    }

    /// A server config showing `id`, asking no client certificate.
    fn server_config(&self, id: &Identity) -> Arc<ServerConfig> {
        Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(vec![id.cert.clone()], id.key())
                .expect("server cert"),
        )
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------
// SIP over one TLS connection

/// A rustls stream, client or server side.
trait Stream: Read + Write + Send {
    /// Queues our close_notify and writes it.
    fn close_notify(&mut self);
}

impl<C, D> Stream for rustls::StreamOwned<C, TcpStream>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>> + Send,
    D: rustls::SideData,
{
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

/// One TLS connection carrying SIP, with a framer for what it reads
/// (messages delimited by their Content-Length, RFC 3261 §18.3).
struct SipTls {
    tls: Box<dyn Stream>,
    /// The same socket, for read timeouts.
    raw: TcpStream,
    buf: Vec<u8>,
}

/// How a read ended when it got no message.
#[derive(Debug)]
enum RecvError {
    Timeout,
    Closed,
    Failed(io::Error),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Timeout => f.write_str("timed out"),
            RecvError::Closed => f.write_str("connection closed"),
            RecvError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl SipTls {
    fn new(tls: Box<dyn Stream>, raw: TcpStream) -> SipTls {
        SipTls {
            tls,
            raw,
            buf: Vec::new(),
        }
    }

    /// Connects to ser at 127.0.0.1:`port` and completes the handshake
    /// (the client's side of it: with TLS 1.3 the server still judges
    /// our certificate after this returns).
    fn connect(port: u16, cfg: Arc<ClientConfig>) -> io::Result<SipTls> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        sock.set_write_timeout(Some(Duration::from_secs(5)))?;
        sock.set_nodelay(true)?;
        let name = ServerName::try_from("127.0.0.1").expect("server name");
        let mut conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        let raw = sock.try_clone()?;
        Ok(SipTls::new(
            Box::new(rustls::StreamOwned::new(conn, sock)),
            raw,
        ))
    }

    fn local_port(&self) -> u16 {
        self.raw.local_addr().expect("local_addr").port()
    }

    /// Sends our close_notify (the TCP connection stays open).
    fn close_notify(&mut self) {
        self.tls.close_notify();
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tls.write_all(msg)?;
        self.tls.flush()
    }

    /// The next whole message, waiting at most until `deadline`.
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>, RecvError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(m) = self.frame() {
                return Ok(m);
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or(RecvError::Timeout)?;
            self.raw
                .set_read_timeout(Some(left))
                .map_err(RecvError::Failed)?;
            match self.tls.read(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Err(RecvError::Closed),
                Err(e) => return Err(RecvError::Failed(e)),
            }
        }
    }

    /// Takes one whole message off the front of the buffer, if there is
    /// one (CRLF keep-alives before it are dropped).
    fn frame(&mut self) -> Option<Vec<u8>> {
        let skip = self
            .buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.buf.len());
        self.buf.drain(..skip);
        let head = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let len = header_value(&self.buf[..head], "Content-Length")
            .expect("a message on a stream without Content-Length")
            .parse::<usize>()
            .expect("Content-Length a number");
        if self.buf.len() < head + len {
            return None;
        }
        Some(self.buf.drain(..head + len).collect())
    }
}

/// `req` as a TLS client sends it: `Request` writes a UDP Via.
fn over_tls(req: &Request) -> Vec<u8> {
    let raw = String::from_utf8(req.build()).expect("utf-8 request");
    raw.replacen("SIP/2.0/UDP", "SIP/2.0/TLS", 1).into_bytes()
}

fn method_of_cseq(msg: &[u8]) -> String {
    header_value(msg, "CSeq")
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_default()
}

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

// ---------------------------------------------------------------------
// Callees

/// What a callee answered, counted once per (method, Call-ID, CSeq), so a
/// retransmission is not a second call.
#[derive(Default, Debug)]
struct Seen {
    requests: HashSet<(String, String, String)>,
    /// Every request line, and how connections ended, for failures.
    log: Vec<String>,
    /// Connections accepted (TLS callee).
    connections: usize,
}

impl Seen {
    fn count(&self, method: &str) -> usize {
        self.requests.iter().filter(|(m, _, _)| m == method).count()
    }
}

/// What a UAS answers: 180 then 200 (with a Contact) to INVITE, 200 with
/// the request's body to MESSAGE, 200 to anything but ACK.
fn answer(req: &[u8], contact: &str, seen: &Mutex<Seen>) -> Vec<Vec<u8>> {
    let line = crate::common::sip::first_line(req);
    let Some(method) = line.split_whitespace().next().map(str::to_string) else {
        return Vec::new();
    };
    if status_of(req).is_some() {
        return Vec::new();
    }
    {
        let mut s = seen.lock().unwrap();
        s.requests.insert((
            method.clone(),
            header_value(req, "Call-ID").unwrap_or_default(),
            header_value(req, "CSeq").unwrap_or_default(),
        ));
        s.log.push(line);
    }
    let tag = Some("callee");
    let with_contact = |r: Vec<u8>| {
        text(&r)
            .replacen(
                "Content-Length: 0\r\n",
                &format!("Contact: <{contact}>\r\nContent-Length: 0\r\n"),
                1,
            )
            .into_bytes()
    };
    match method.as_str() {
        "INVITE" => vec![
            with_contact(reply_to(req, 180, "Ringing", tag)),
            with_contact(reply_to(req, 200, "OK", tag)),
        ],
        "ACK" => Vec::new(),
        // A MESSAGE's body comes back in the 200, to test big replies.
        "MESSAGE" => {
            let body = crate::common::body_of(req);
            let head = text(&reply_to(req, 200, "OK", tag)).replacen(
                "Content-Length: 0\r\n",
                &format!(
                    "Content-Type: text/plain\r\nContent-Length: {}\r\n",
                    body.len()
                ),
                1,
            );
            let mut r = head.into_bytes();
            r.extend_from_slice(body);
            vec![r]
        }
        _ => vec![reply_to(req, 200, "OK", tag)],
    }
}

/// A callee on a thread until stopped; returns what it saw.
struct Callee {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Callee {
    /// A UAS on UDP, answering to the source of each request.
    fn udp() -> Callee {
        let peer = UdpPeer::bind();
        let port = peer.port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (st, sn) = (stop.clone(), seen.clone());
        let contact = format!("sip:callee@127.0.0.1:{port}");
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Some((req, from)) = peer.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                for r in answer(&req, &contact, &sn) {
                    peer.send(&r, from);
                }
            }
        });
        Callee {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// A UAS on TLS with the server certificate: every connection ser
    /// opens gets a thread that answers on that connection.
    fn tls(cfg: Arc<ServerConfig>) -> Callee {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS callee");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (st, sn) = (stop.clone(), seen.clone());
        let contact = format!("sip:callee@127.0.0.1:{port};transport=tls");
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        sn.lock().unwrap().connections += 1;
                        let (cfg, st, sn, contact) =
                            (cfg.clone(), st.clone(), sn.clone(), contact.clone());
                        conns.push(std::thread::spawn(move || {
                            serve_tls_conn(sock, cfg, &st, &sn, &contact)
                        }));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("TLS callee accept: {e}"),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Callee {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("callee thread");
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Callee {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One connection ser opened to the TLS callee, served until the stop
/// flag or the connection's end.
fn serve_tls_conn(
    sock: TcpStream,
    cfg: Arc<ServerConfig>,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
    contact: &str,
) {
    sock.set_nonblocking(false).expect("blocking");
    // A 180 and a 200 written back to back must not wait for an ACK.
    sock.set_nodelay(true).expect("nodelay");
    let raw = sock.try_clone().expect("clone");
    let conn = ServerConnection::new(cfg).expect("server connection");
    let mut sip = SipTls::new(Box::new(rustls::StreamOwned::new(conn, sock)), raw);
    while !stop.load(Ordering::Relaxed) {
        match sip.recv(Instant::now() + Duration::from_millis(50)) {
            Ok(req) => {
                for r in answer(&req, contact, seen) {
                    if sip.send(&r).is_err() {
                        return;
                    }
                }
            }
            Err(RecvError::Timeout) => {}
            Err(e) => {
                seen.lock().unwrap().log.push(format!("connection: {e}"));
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------
// ser

/// ser on UDP and TLS at `port` with the test PKI, sl and tm, then
/// `extra` lines (settings, modparams) and the `route` block.
fn tls_cfg(pki: &Pki, port: u16, extra: &str, route: &str) -> String {
    format!(
        r#"
debug=2
log_stderror=yes
listen=udp:127.0.0.1:{port}
listen=tls:127.0.0.1:{port}
children=2
fifo=""
{tls}
loadmodule "/usr/local/lib/ser/modules/sl.so"
loadmodule "/usr/local/lib/ser/modules/tm.so"
{extra}
{route}
"#,
        tls = pki.ser_settings()
    )
}

/// ser on UDP and TLS at `port` with the test PKI, relaying every request
/// but OPTIONS (answered 200 Alive) to the callee at `uas` over `to`.
fn relay_cfg(pki: &Pki, port: u16, to: &str, uas: u16, extra: &str) -> String {
    tls_cfg(
        pki,
        port,
        extra,
        &format!(
            r#"route {{
    if (method == OPTIONS) {{
        sl_send_reply("200", "Alive");
        break;
    }};
    if (!t_relay_to_{to}("127.0.0.1", "{uas}")) {{
        sl_reply_error();
    }};
}}"#
        ),
    )
}

/// ser on UDP and TLS at `port` relaying by Request-URI (`t_relay()`,
/// `;transport=tls` choosing TLS), a transaction giving up after 1 s.
fn uri_relay_cfg(pki: &Pki, port: u16, extra: &str) -> String {
    tls_cfg(
        pki,
        port,
        &format!("{extra}\nmodparam(\"tm\", \"fr_timer\", 1)"),
        r#"route {
    if (!t_relay()) {
        sl_reply_error();
    };
}"#,
    )
}

/// A MESSAGE from `caller` through ser at `ser_port` to the TLS callee at
/// `callee_port`: the final status the caller got within 5 s.
fn message_to_tls_callee(caller: &UdpPeer, ser_port: u16, callee_port: u16) -> Option<u16> {
    caller.drain();
    let uri = format!("sip:bob@127.0.0.1:{callee_port};transport=tls");
    let req = Request::new("MESSAGE", &uri, caller.port())
        .header("Content-Type", "text/plain")
        .body(b"hello over TLS");
    caller.send_to_port(&req.build(), ser_port);
    caller
        .recv_final(Duration::from_secs(5))
        .and_then(|(m, _)| status_of(&m))
}

/// Reads until the final reply to `method`, noting the provisional
/// codes seen before it.
fn await_final(
    sip: &mut SipTls,
    method: &str,
    deadline: Instant,
) -> Result<(u16, Vec<u16>), String> {
    let mut provisional = Vec::new();
    loop {
        let m = sip
            .recv(deadline)
            .map_err(|e| format!("waiting for the final reply to {method}: {e}"))?;
        let Some(code) = status_of(&m) else {
            return Err(format!(
                "a request on the caller's connection: {}",
                text(&m)
            ));
        };
        if method_of_cseq(&m) != method {
            continue;
        }
        if code >= 200 {
            return Ok((code, provisional));
        }
        provisional.push(code);
    }
}

// ---------------------------------------------------------------------
// The tests

/// `calls` calls (INVITE, 180, 200, ACK, BYE, 200) one after the other
/// on `sip` to the callee at `callee`; what went wrong, one line a call.
fn calls_on(sip: &mut SipTls, callee: u16, calls: usize, deadline: Instant) -> Vec<String> {
    let me = sip.local_port();
    let uri = format!("sip:bob@127.0.0.1:{callee}");
    let sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                t=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
    let mut failed = Vec::new();
    for call in 0..calls {
        let invite = Request::new("INVITE", &uri, me)
            .rport()
            .header(
                "Contact",
                &format!("<sip:alice@127.0.0.1:{me};transport=tls>"),
            )
            .header("Content-Type", "application/sdp")
            .body(sdp);
        if let Err(e) = sip.send(&over_tls(&invite)) {
            failed.push(format!("call {call}: sending INVITE: {e}"));
            break;
        }
        match await_final(sip, "INVITE", deadline) {
            Ok((200, prov)) if prov.contains(&180) => {}
            Ok((code, prov)) => {
                failed.push(format!("call {call}: INVITE got {prov:?} then {code}"))
            }
            Err(e) => {
                failed.push(format!("call {call}: {e}"));
                break;
            }
        }
        // ACK and BYE in the dialog, To with the callee's tag.
        let mut ack = invite.clone();
        ack.method = "ACK".into();
        ack.branch = format!("{}-ack", invite.branch);
        ack.to = format!("{};tag=callee", invite.to);
        ack.headers.retain(|(n, _)| n == "Max-Forwards");
        ack.body.clear();
        let mut bye = ack.clone();
        bye.method = "BYE".into();
        bye.branch = format!("{}-bye", invite.branch);
        bye.cseq = 2;
        if let Err(e) = sip
            .send(&over_tls(&ack))
            .and_then(|()| sip.send(&over_tls(&bye)))
        {
            failed.push(format!("call {call}: sending ACK, BYE: {e}"));
            break;
        }
        match await_final(sip, "BYE", deadline) {
            Ok((200, _)) => {}
            Ok((code, _)) => failed.push(format!("call {call}: BYE got {code}")),
            Err(e) => {
                failed.push(format!("call {call}: {e}"));
                break;
            }
        }
    }
    failed
}

/// Waits (2 s at most) for the last ACKs still on their way to `callee`.
fn await_acks(callee: &Callee, n: usize) {
    let until = Instant::now() + Duration::from_secs(2);
    while callee.seen.lock().unwrap().count("ACK") < n && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// 200 calls (INVITE, 180, 200, ACK, BYE, 200) on one TLS connection
/// from the test's client through ser to a callee on UDP.
#[test]
fn calls_from_a_tls_caller_reach_a_udp_callee_and_replies_come_back() {
    let _g = serial();
    const CALLS: usize = 200;
    let dir = TestDir::new();
    let pki = Pki::new(&dir);
    let callee = Callee::udp();
    let port = free_udp_port();
    let ser = Ser::start_in(dir, &relay_cfg(&pki, port, "udp", callee.port, ""), &[]);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let mut sip = SipTls::connect(port, pki.client_config(None, rustls::ALL_VERSIONS))
        .unwrap_or_else(|e| panic!("TLS connect to ser: {e}\n{}", ser.log()));
    let failed = calls_on(&mut sip, callee.port, CALLS, deadline);
    let took = started.elapsed();
    await_acks(&callee, CALLS);
    let seen = callee.stop();
    eprintln!("tls -> udp: {CALLS} calls on one connection in {took:?}");
    assert!(failed.is_empty(), "{failed:#?}\n{}", ser.log());
    for m in ["INVITE", "ACK", "BYE"] {
        assert_eq!(seen.count(m), CALLS, "{m} at the callee\n{}", ser.log());
    }
    assert!(
        took < Duration::from_secs(30),
        "{CALLS} calls took {took:?}"
    );
}

/// Eight TLS connections at once, 50 calls each, through ser's TLS
/// readers to one UDP callee.
#[test]
fn calls_on_parallel_tls_connections() {
    let _g = serial();
    const CONNS: usize = 8;
    const CALLS: usize = 50;
    let dir = TestDir::new();
    let pki = Pki::new(&dir);
    let callee = Callee::udp();
    let port = free_udp_port();
    let ser = Ser::start_in(dir, &relay_cfg(&pki, port, "udp", callee.port, ""), &[]);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let cfg = pki.client_config(Some(&pki.client), rustls::ALL_VERSIONS);
    let failed: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..CONNS)
            .map(|i| {
                let cfg = cfg.clone();
                let callee = callee.port;
                s.spawn(move || match SipTls::connect(port, cfg) {
                    Ok(mut sip) => calls_on(&mut sip, callee, CALLS, deadline),
                    Err(e) => vec![format!("connection {i}: {e}")],
                })
            })
            .collect();
        runs.into_iter()
            .flat_map(|r| r.join().expect("caller thread"))
            .collect()
    });
    let took = started.elapsed();
    await_acks(&callee, CONNS * CALLS);
    let seen = callee.stop();
    eprintln!("tls -> udp: {CONNS} connections x {CALLS} calls in {took:?}");
    assert!(failed.is_empty(), "{failed:#?}\n{}", ser.log());
    for m in ["INVITE", "ACK", "BYE"] {
        assert_eq!(
            seen.count(m),
            CONNS * CALLS,
            "{m} at the callee\n{}",
            ser.log()
        );
    }
}

/// ser connects out over TLS (verifying the callee's certificate against
/// `tls_ca_list`) for requests from a UDP caller; the callee's replies
/// come back on that connection and reach the caller.
#[test]
fn calls_from_a_udp_caller_reach_a_tls_callee() {
    let _g = serial();
    const CALLS: usize = 20;
    let dir = TestDir::new();
    let pki = Pki::new(&dir);
    let callee = Callee::tls(pki.server_config(&pki.server));
    let port = free_udp_port();
    let ser = Ser::start_in(
        dir,
        &relay_cfg(&pki, port, "tls", callee.port, "tls_verify_server=1"),
        &[],
    );
    let caller = UdpPeer::bind();
    let uri = format!("sip:bob@127.0.0.1:{};transport=tls", callee.port);
    let started = Instant::now();
    let wait = Duration::from_secs(5);
    for call in 0..CALLS {
        let invite = Request::new("INVITE", &uri, caller.port()).header(
            "Contact",
            &format!("<sip:alice@127.0.0.1:{}>", caller.port()),
        );
        caller.send_to_port(&invite.build(), port);
        let mut got = Vec::new();
        let fin = caller.recv_matching(wait, |m| {
            let c = status_of(m);
            got.extend(c);
            c.is_some_and(|c| c >= 200) && method_of_cseq(m) == "INVITE"
        });
        let Some((ok, _)) = fin else {
            let seen = callee.stop();
            panic!(
                "call {call}: no final reply to INVITE (got {got:?})\ncallee: {seen:#?}\n{}",
                ser.log()
            );
        };
        assert_eq!(status_of(&ok), Some(200), "call {call}: {}", text(&ok));
        assert!(got.contains(&180), "call {call}: {got:?}");
        let to = header_value(&ok, "To").expect("To in 200");
        assert_eq!(param(&to, "tag").as_deref(), Some("callee"));
        let mut ack = invite.clone();
        ack.method = "ACK".into();
        ack.branch = format!("{}-ack", invite.branch);
        ack.to = to;
        ack.headers.retain(|(n, _)| n == "Max-Forwards");
        caller.send_to_port(&ack.build(), port);
        let mut bye = ack.clone();
        bye.method = "BYE".into();
        bye.branch = format!("{}-bye", invite.branch);
        bye.cseq = 2;
        caller.send_to_port(&bye.build(), port);
        let fin = caller.recv_matching(wait, |m| {
            status_of(m).is_some_and(|c| c >= 200) && method_of_cseq(m) == "BYE"
        });
        let Some((ok, _)) = fin else {
            panic!("call {call}: no final reply to BYE\n{}", ser.log());
        };
        assert_eq!(status_of(&ok), Some(200), "call {call}: {}", text(&ok));
    }
    let took = started.elapsed();
    let until = Instant::now() + Duration::from_secs(2);
    while callee.seen.lock().unwrap().count("ACK") < CALLS && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let seen = callee.stop();
    eprintln!("udp -> tls: {CALLS} calls in {took:?}");
    assert_eq!(seen.connections, 1, "ser reuses its connection: {seen:#?}");
    for m in ["INVITE", "ACK", "BYE"] {
        assert_eq!(
            seen.count(m),
            CALLS,
            "{m} at the callee: {seen:#?}\n{}",
            ser.log()
        );
    }
}

/// OPTIONS over a fresh TLS connection with `cfg`: Ok(the reply), or why
/// there was none (handshake refused, alert, close).
fn options_over_tls(port: u16, cfg: Arc<ClientConfig>) -> Result<Vec<u8>, String> {
    let mut sip = SipTls::connect(port, cfg).map_err(|e| format!("handshake: {e}"))?;
    let me = sip.local_port();
    let req = Request::new("OPTIONS", &format!("sip:127.0.0.1:{port}"), me).rport();
    sip.send(&over_tls(&req))
        .map_err(|e| format!("send: {e}"))?;
    sip.recv(Instant::now() + Duration::from_secs(5))
        .map_err(|e| format!("read: {e}"))
}

/// With `tls_verify=1` and `tls_require_certificate=1`, ser serves a
/// client whose certificate the CA signed and refuses one from a rogue CA
/// or without any, over TLS 1.2 and 1.3.
#[test]
fn client_certificates_are_verified_against_the_ca_list() {
    let _g = serial();
    let dir = TestDir::new();
    let pki = Pki::new(&dir);
    let port = free_udp_port();
    let ser = Ser::start_in(
        dir,
        &relay_cfg(
            &pki,
            port,
            "udp",
            9,
            "tls_verify=1\ntls_require_certificate=1",
        ),
        &[],
    );
    let versions: [(&str, &[&'static rustls::SupportedProtocolVersion]); 2] = [
        ("TLS 1.2", &[&rustls::version::TLS12]),
        ("TLS 1.3", &[&rustls::version::TLS13]),
    ];
    for (v, versions) in versions {
        let good = options_over_tls(port, pki.client_config(Some(&pki.client), versions));
        match &good {
            Ok(m) => assert!(
                m.starts_with(b"SIP/2.0 200 Alive"),
                "{v}: {}\n{}",
                text(m),
                ser.log()
            ),
            Err(e) => panic!("{v}: the CA's client was refused: {e}\n{}", ser.log()),
        }
        let rogue = options_over_tls(port, pki.client_config(Some(&pki.rogue_client), versions));
        assert!(
            rogue.is_err(),
            "{v}: the rogue CA's client was served: {}\n{}",
            text(rogue.as_deref().unwrap_or_default()),
            ser.log()
        );
        let none = options_over_tls(port, pki.client_config(None, versions));
        assert!(
            none.is_err(),
            "{v}: a client without certificate was served: {}\n{}",
            text(none.as_deref().unwrap_or_default()),
            ser.log()
        );
        eprintln!("{v}: rogue: {:?}; none: {:?}", rogue.err(), none.err());
    }
    // Each refusal is one warning naming the reason.
    let log = ser.log();
    for why in ["peer certificate refused", "peer sent no certificate"] {
        assert!(log.contains(why), "{why}\n{log}");
    }
    // ser is still serving after the refusals.
    let again = options_over_tls(
        port,
        pki.client_config(Some(&pki.client), rustls::ALL_VERSIONS),
    );
    assert!(
        again
            .as_deref()
            .is_ok_and(|m| m.starts_with(b"SIP/2.0 200 ")),
        "{again:?}\n{}",
        ser.log()
    );
}

/// `ser -c` with a `tls:` listener and a certificate file that does not
/// exist: refused, naming the setting and the file.
#[test]
fn a_missing_certificate_file_refuses_the_config() {
    let dir = TestDir::new();
    let pki = Pki::new(&dir);
    let missing = dir.join("no-such-cert.pem");
    let port = free_udp_port();
    let cfg = relay_cfg(&pki, port, "udp", 9, "").replace(
        &format!("tls_certificate=\"{}\"", pki.server.cert_file.display()),
        &format!("tls_certificate=\"{}\"", missing.display()),
    );
    assert!(cfg.contains("no-such-cert.pem"), "{cfg}");
    let file = dir.write("ser.cfg", cfg.as_bytes());
    let r = check_config(&file);
    assert_ne!(r.code(), Some(0), "{r:?}");
    assert!(r.status.is_some(), "ser -c did not finish: {r:?}");
    assert!(
        r.stderr.contains("tls_certificate") && r.stderr.contains("no-such-cert.pem"),
        "{}",
        r.stderr
    );
    // The same config with the file present is accepted.
    let good = dir.write("good.cfg", relay_cfg(&pki, port, "udp", 9, "").as_bytes());
    let r = check_config(&good);
    assert_eq!(r.code(), Some(0), "{r:?}");
}

/// ser connecting out verifies the callee (`tls_verify_server`, on by
/// default with a CA list): a certificate from another CA, or one from
/// the CA naming another host than the 127.0.0.1 ser connected to, ends
/// the handshake, the request never reaches that callee, and the branch
/// fails at once (a local 503, which a proxy passes on as 500: RFC 3261
/// 8.1.3.1, 16.7) instead of the caller waiting for the transaction's
/// timeout. With `tls_verify_server=0` the rogue CA's callee is served.
#[test]
fn a_tls_callee_whose_certificate_does_not_verify_is_refused() {
    let _g = serial();
    let dir = TestDir::new();
    let pki = Pki::new(&dir);
    let rogue = Callee::tls(pki.server_config(&pki.rogue_server));
    let misnamed = Callee::tls(pki.server_config(&pki.misnamed_server));
    let good = Callee::tls(pki.server_config(&pki.server));
    let port = free_udp_port();
    let ser = Ser::start_in(dir, &uri_relay_cfg(&pki, port, ""), &[]);
    let caller = UdpPeer::bind();
    let started = Instant::now();
    // The URI routing itself works: the CA's callee for 127.0.0.1 is served.
    let code = message_to_tls_callee(&caller, port, good.port);
    assert_eq!(code, Some(200), "good callee\n{}", ser.log());
    for (what, callee) in [("rogue CA", &rogue), ("misnamed", &misnamed)] {
        let code = message_to_tls_callee(&caller, port, callee.port);
        assert_eq!(code, Some(500), "{what} callee\n{}", ser.log());
        let seen = callee.seen.lock().unwrap();
        assert!(seen.connections >= 1, "{what}: ser never connected");
        assert!(seen.requests.is_empty(), "{what}: {seen:#?}");
        let refused = format!(
            "to 127.0.0.1:{} closed: peer certificate refused",
            callee.port
        );
        assert!(
            ser.log().contains(&refused),
            "{what}: {refused}\n{}",
            ser.log()
        );
    }
    eprintln!("verify_server refusals in {:?}", started.elapsed());
    // Without verification the rogue callee gets the request.
    let port2 = free_udp_port();
    let lax = Ser::start(&uri_relay_cfg(&pki, port2, "tls_verify_server=0\n"));
    let code = message_to_tls_callee(&caller, port2, rogue.port);
    assert_eq!(
        code,
        Some(200),
        "rogue callee, no verification\n{}",
        lax.log()
    );
    let seen = rogue.stop();
    assert_eq!(seen.count("MESSAGE"), 1, "{seen:#?}");
    drop(ser);
}

/// The framing of SIP inside TLS records does not depend on how the
/// client cuts them: 20 requests in one write, one request a byte per
/// record, a 30 000-byte MESSAGE out and its 30 000-byte reply back
/// (several records each way); close_notify ends the connection.
#[test]
fn messages_are_framed_however_tls_records_cut_them() {
    let _g = serial();
    let dir = TestDir::new();
    let pki = Pki::new(&dir);
    let callee = Callee::udp();
    let port = free_udp_port();
    let ser = Ser::start_in(dir, &relay_cfg(&pki, port, "udp", callee.port, ""), &[]);
    let started = Instant::now();
    let cfg = pki.client_config(None, rustls::ALL_VERSIONS);
    let mut sip = SipTls::connect(port, cfg)
        .unwrap_or_else(|e| panic!("TLS connect to ser: {e}\n{}", ser.log()));
    let me = sip.local_port();
    let deadline = Instant::now() + Duration::from_secs(10);
    let options = || Request::new("OPTIONS", &format!("sip:127.0.0.1:{port}"), me).rport();
    // Pipelined: one write, one TLS record, 20 messages.
    let mut batch = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let r = options();
        ids.push(r.call_id.clone());
        batch.extend_from_slice(&over_tls(&r));
    }
    sip.send(&batch).expect("send batch");
    for id in &ids {
        let m = sip
            .recv(deadline)
            .unwrap_or_else(|e| panic!("batch reply: {e}\n{}", ser.log()));
        assert!(m.starts_with(b"SIP/2.0 200 Alive"), "{}", text(&m));
        assert_eq!(header_value(&m, "Call-ID").as_deref(), Some(id.as_str()));
    }
    // Trickled: a record per byte.
    let one = over_tls(&options());
    for b in &one {
        sip.send(std::slice::from_ref(b)).expect("send a byte");
    }
    let m = sip
        .recv(deadline)
        .unwrap_or_else(|e| panic!("trickled reply: {e}\n{}", ser.log()));
    assert!(m.starts_with(b"SIP/2.0 200 Alive"), "{}", text(&m));
    // Big: relayed to the UDP callee, whose 200 carries the body back.
    let body: Vec<u8> = (0..30_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let msg = Request::new("MESSAGE", &format!("sip:bob@127.0.0.1:{}", callee.port), me)
        .rport()
        .header("Content-Type", "text/plain")
        .body(&body);
    sip.send(&over_tls(&msg)).expect("send MESSAGE");
    let m = loop {
        let m = sip
            .recv(deadline)
            .unwrap_or_else(|e| panic!("MESSAGE reply: {e}\n{}", ser.log()));
        if status_of(&m).is_some_and(|c| c >= 200) {
            break m;
        }
    };
    assert_eq!(status_of(&m), Some(200), "{}", text(&m[..m.len().min(500)]));
    assert!(
        crate::common::body_of(&m) == body,
        "the body came back changed"
    );
    // close_notify: ser closes its side too.
    sip.close_notify();
    match sip.recv(Instant::now() + Duration::from_secs(5)) {
        Err(RecvError::Closed) => {}
        other => panic!("after close_notify: {other:?}\n{}", ser.log()),
    }
    eprintln!("framing checks in {:?}", started.elapsed());
    let seen = callee.stop();
    assert_eq!(seen.count("MESSAGE"), 1, "{seen:#?}");
}

/// A connection that never starts its handshake is closed after
/// `tls_handshake_timeout`, and others are served meanwhile.
#[test]
fn a_handshake_never_started_is_closed_after_the_timeout() {
    let _g = serial();
    let dir = TestDir::new();
    let pki = Pki::new(&dir);
    let port = free_udp_port();
    let ser = Ser::start_in(
        dir,
        &relay_cfg(&pki, port, "udp", 9, "tls_handshake_timeout=1"),
        &[],
    );
    let started = Instant::now();
    let mut mute = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let served = options_over_tls(port, pki.client_config(None, rustls::ALL_VERSIONS));
    assert!(
        served
            .as_deref()
            .is_ok_and(|m| m.starts_with(b"SIP/2.0 200 ")),
        "{served:?}\n{}",
        ser.log()
    );
    mute.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Whatever ser sends before closing (an alert, say) is read past.
    let mut buf = [0u8; 64];
    let closed = loop {
        match mute.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(_) => break true,
        }
    };
    let took = started.elapsed();
    assert!(closed, "still open after {took:?}\n{}", ser.log());
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    eprintln!("mute TLS connection closed after {took:?}");
}

/// The next connection to `l` within 5 s, as the TLS server side.
fn accept_tls(l: &TcpListener, cfg: &Arc<ServerConfig>, ser: &Ser) -> SipTls {
    l.set_nonblocking(true).expect("nonblocking");
    let until = Instant::now() + Duration::from_secs(5);
    let sock = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("no connection from ser: {e}\n{}", ser.log()),
        }
    };
    sock.set_nonblocking(false).expect("blocking");
    sock.set_nodelay(true).expect("nodelay");
    let raw = sock.try_clone().expect("clone");
    let conn = ServerConnection::new(cfg.clone()).expect("server connection");
    SipTls::new(Box::new(rustls::StreamOwned::new(conn, sock)), raw)
}

/// A connection ser opened to a TLS callee carries the callee's own
/// requests too: its BYE reaches the UDP caller and the caller's 200
/// comes back on that connection. When the callee closes it, ser closes
/// too and the next call opens a new one.
#[test]
fn a_tls_callee_sends_on_the_connection_ser_opened_and_may_close_it() {
    let _g = serial();
    let dir = TestDir::new();
    let pki = Pki::new(&dir);
    let scfg = pki.server_config(&pki.server);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS callee");
    let lport = listener.local_addr().unwrap().port();
    let port = free_udp_port();
    let ser = Ser::start_in(dir, &uri_relay_cfg(&pki, port, ""), &[]);
    let caller = UdpPeer::bind();
    let seen = Mutex::new(Seen::default());
    let contact = format!("sip:callee@127.0.0.1:{lport};transport=tls");
    let deadline = Instant::now() + Duration::from_secs(20);
    let started = Instant::now();
    for call in 0..2 {
        let invite = Request::new(
            "INVITE",
            &format!("sip:bob@127.0.0.1:{lport};transport=tls"),
            caller.port(),
        )
        .header(
            "Contact",
            &format!("<sip:alice@127.0.0.1:{}>", caller.port()),
        );
        caller.send_to_port(&invite.build(), port);
        let mut callee = accept_tls(&listener, &scfg, &ser);
        let got = callee
            .recv(deadline)
            .unwrap_or_else(|e| panic!("call {call}: INVITE at the callee: {e}\n{}", ser.log()));
        assert!(got.starts_with(b"INVITE "), "{}", text(&got));
        for r in answer(&got, &contact, &seen) {
            callee.send(&r).expect("answer INVITE");
        }
        let (ok, _) = caller
            .recv_matching(Duration::from_secs(5), |m| status_of(m) == Some(200))
            .unwrap_or_else(|| panic!("call {call}: no 200 at the caller\n{}", ser.log()));
        let to = header_value(&ok, "To").expect("To");
        let mut ack = invite.clone();
        ack.method = "ACK".into();
        ack.uri = contact.clone();
        ack.branch = format!("{}-ack", invite.branch);
        ack.to = to.clone();
        ack.headers.retain(|(n, _)| n == "Max-Forwards");
        caller.send_to_port(&ack.build(), port);
        let got = callee
            .recv(deadline)
            .unwrap_or_else(|e| panic!("call {call}: ACK at the callee: {e}\n{}", ser.log()));
        assert!(got.starts_with(b"ACK "), "{}", text(&got));
        // The callee hangs up, on the connection ser opened.
        let mut bye = Request::new(
            "BYE",
            &format!("sip:alice@127.0.0.1:{}", caller.port()),
            lport,
        )
        .rport();
        bye.from = to;
        bye.to = invite.from.clone();
        bye.call_id = invite.call_id.clone();
        callee.send(&over_tls(&bye)).expect("send BYE");
        let (got, from) = caller
            .recv_matching(Duration::from_secs(5), |m| m.starts_with(b"BYE "))
            .unwrap_or_else(|| panic!("call {call}: no BYE at the caller\n{}", ser.log()));
        caller.send(&reply_to(&got, 200, "OK", None), from);
        let fin = await_final(&mut callee, "BYE", deadline);
        assert!(
            matches!(fin, Ok((200, _))),
            "call {call}: {fin:?}\n{}",
            ser.log()
        );
        // The callee closes; ser answers with its own close.
        callee.close_notify();
        match callee.recv(Instant::now() + Duration::from_secs(5)) {
            Err(RecvError::Closed) => {}
            other => panic!("call {call}: after close_notify: {other:?}\n{}", ser.log()),
        }
    }
    eprintln!("callee-side BYE and reconnect in {:?}", started.elapsed());
}
