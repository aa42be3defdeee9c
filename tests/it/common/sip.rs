//! A deliberately small SIP-over-UDP peer for black-box tests: raw bytes
//! in and out, a request builder, and lookups into raw messages. It trusts
//! nothing and parses only what the tests assert on.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A UDP socket on 127.0.0.1.
pub(crate) struct UdpPeer {
    sock: UdpSocket,
}

impl UdpPeer {
    /// Binds a loopback port handed out by `free_udp_port`, so a peer can
    /// never take a port another test of this process was given but has
    /// not bound yet (binding port 0 could).
    pub(crate) fn bind() -> UdpPeer {
        for _ in 0..100 {
            if let Ok(sock) = UdpSocket::bind(("127.0.0.1", super::free_udp_port())) {
                return UdpPeer { sock };
            }
        }
        panic!("no bindable loopback UDP port for a peer");
    }

    /// Binds a handed-out port on another loopback address (Linux
    /// answers for all of 127.0.0.0/8), for a second source address.
    pub(crate) fn bind_ip(ip: [u8; 4]) -> UdpPeer {
        for _ in 0..100 {
            if let Ok(sock) =
                UdpSocket::bind((std::net::Ipv4Addr::from(ip), super::free_udp_port()))
            {
                return UdpPeer { sock };
            }
        }
        panic!("no bindable UDP port on {ip:?} for a peer");
    }

    pub(crate) fn bind_port(port: u16) -> UdpPeer {
        let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind UdpPeer");
        UdpPeer { sock }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local_addr")
    }

    pub(crate) fn port(&self) -> u16 {
        self.addr().port()
    }

    pub(crate) fn send(&self, raw: &[u8], to: SocketAddr) {
        self.sock.send_to(raw, to).expect("send_to");
    }

    /// Sends to 127.0.0.1:port.
    pub(crate) fn send_to_port(&self, raw: &[u8], port: u16) {
        self.send(raw, SocketAddr::from(([127, 0, 0, 1], port)));
    }

    /// One datagram, or None when nothing arrives within `d`.
    pub(crate) fn recv_timeout(&self, d: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let d = d.max(Duration::from_millis(1));
        self.sock
            .set_read_timeout(Some(d))
            .expect("set_read_timeout");
        let mut buf = vec![0u8; 65536];
        match self.sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                buf.truncate(n);
                Some((buf, from))
            }
            Err(_) => None,
        }
    }

    /// Waits up to `d` for a datagram accepted by `pred`, dropping others
    /// (e.g. a 100 Trying before the final reply).
    pub(crate) fn recv_matching(
        &self,
        d: Duration,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> Option<(Vec<u8>, SocketAddr)> {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let (m, from) = self.recv_timeout(left)?;
            if pred(&m) {
                return Some((m, from));
            }
        }
    }

    /// Waits up to `d` for a reply (status line) with a final code >= 200.
    pub(crate) fn recv_final(&self, d: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        self.recv_matching(d, |m| status_of(m).is_some_and(|c| c >= 200))
    }

    /// Discards whatever is queued.
    pub(crate) fn drain(&self) {
        while self.recv_timeout(Duration::from_millis(1)).is_some() {}
    }
}

/// Status code of a reply (`SIP/2.0 NNN ...`), None for anything else.
pub(crate) fn status_of(raw: &[u8]) -> Option<u16> {
    let rest = raw.strip_prefix(b"SIP/2.0 ")?;
    let code = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    match rest.get(3) {
        None | Some(b' ') | Some(b'\r') => Some(code),
        _ => None,
    }
}

/// First line of a message, lossily decoded.
pub(crate) fn first_line(raw: &[u8]) -> String {
    let end = raw
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// A header name folded to one spelling: lower case, compact form for the
/// headers that have one (RFC 3261 §7.3.3), so `Via` and `v` compare equal.
fn canonical(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    compact_form(&lower).map_or(lower, str::to_string)
}

fn compact_form(lower: &str) -> Option<&'static str> {
    Some(match lower {
        "via" => "v",
        "from" => "f",
        "to" => "t",
        "call-id" => "i",
        "contact" => "m",
        "content-length" => "l",
        "content-type" => "c",
        "subject" => "s",
        "supported" => "k",
        _ => return None,
    })
}

/// Values of every header line named `name` (case-insensitive, compact
/// forms included, folded lines joined), in message order. Comma-joined
/// values on one line are returned as one string.
pub(crate) fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let wanted = canonical(name);
    let mut out: Vec<String> = Vec::new();
    let mut in_match = false;
    for line in head.split("\r\n").skip(1) {
        if line.starts_with(' ') || line.starts_with('\t') {
            if in_match {
                if let Some(last) = out.last_mut() {
                    last.push(' ');
                    last.push_str(line.trim());
                }
            }
            continue;
        }
        in_match = false;
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if canonical(n) == wanted {
            in_match = true;
            out.push(v.trim().to_string());
        }
    }
    out
}

/// Every Via value in order, splitting comma-joined lines (SIPp's
/// `[last_Via:]` writes all Vias as one line; RFC 3261 §7.3.1 allows it).
pub(crate) fn via_list(raw: &[u8]) -> Vec<String> {
    header_values(raw, "Via")
        .iter()
        .flat_map(|v| split_commas(v))
        .collect()
}

/// Splits a header value at commas that are not inside quotes or `<>`.
pub(crate) fn split_commas(v: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut quoted, mut angle) = (false, false);
    for ch in v.chars() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// First value of header `name`.
pub(crate) fn header_value(raw: &[u8], name: &str) -> Option<String> {
    header_values(raw, name).into_iter().next()
}

/// Parameter `p` of a header value (`;p=v` → Some("v"), `;p` → Some("")).
pub(crate) fn param(value: &str, p: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.trim()
            .eq_ignore_ascii_case(p)
            .then(|| v.trim().trim_end_matches(['>', ',']).to_string())
    })
}

/// The body after the blank line.
pub(crate) fn body_of(raw: &[u8]) -> &[u8] {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |i| &raw[i + 4..])
}

fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 32)
}

/// A simple request. Defaults give a well-formed RFC 3261 request from the
/// peer at `127.0.0.1:<via_port>`; fields are public to make variants easy.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub method: String,
    pub uri: String,
    pub via_host: String,
    pub via_port: u16,
    pub branch: String,
    pub rport: bool,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn new(method: &str, uri: &str, via_port: u16) -> Request {
        let u = unique();
        Request {
            method: method.to_string(),
            uri: uri.to_string(),
            via_host: "127.0.0.1".into(),
            via_port,
            branch: format!("z9hG4bK-t{u:x}"),
            rport: false,
            from: format!("<sip:alice@127.0.0.1>;tag=f{u:x}"),
            to: "<sip:bob@127.0.0.1>".into(),
            call_id: format!("c{u:x}@127.0.0.1"),
            cseq: 1,
            headers: vec![("Max-Forwards".into(), "70".into())],
            body: Vec::new(),
        }
    }

    pub(crate) fn via_host(mut self, h: &str) -> Request {
        self.via_host = h.to_string();
        self
    }

    pub(crate) fn rport(mut self) -> Request {
        self.rport = true;
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub(crate) fn body(mut self, b: &[u8]) -> Request {
        self.body = b.to_vec();
        self
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let mut s = format!(
            "{m} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{p};branch={b}{r}\r\nFrom: {f}\r\nTo: {t}\r\nCall-ID: {c}\r\nCSeq: {n} {m}\r\n",
            m = self.method,
            uri = self.uri,
            h = self.via_host,
            p = self.via_port,
            b = self.branch,
            r = if self.rport { ";rport" } else { "" },
            f = self.from,
            t = self.to,
            c = self.call_id,
            n = self.cseq,
        );
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A reply to `req` as a UAS would build it: every Via, From, To (tag
/// added when `to_tag` is given and To has none), Call-ID, CSeq copied.
pub(crate) fn reply_to(req: &[u8], code: u16, reason: &str, to_tag: Option<&str>) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in header_values(req, "Via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(mut v) = header_value(req, name) {
            if name == "To" && param(&v, "tag").is_none() {
                if let Some(t) = to_tag {
                    v.push_str(&format!(";tag={t}"));
                }
            }
            s.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}
