//! Helpers for the stateful (tm) black-box tests: a config template, the
//! SIGUSR1 transaction/shm figures, in-transaction requests built from an
//! INVITE (ACK, CANCEL), and a pump that serves several UDP peers from one
//! thread so a test can play caller and callees at once.

use super::server::Ser;
use super::sip::{first_line, header_value, param, status_of, via_list, Request, UdpPeer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A stateful proxy config on 127.0.0.1:`port`: sl and tm loaded, the
/// wait timer at 2 s (so finished transactions are freed quickly), extra
/// `modparams` lines, then the route blocks in `routes`.
pub(crate) fn tm_cfg(port: u16, children: u32, modparams: &str, routes: &str) -> String {
    format!(
        r#"
debug=2
log_stderror=yes
listen=udp:127.0.0.1:{port}
children={children}
fifo=""
loadmodule "/usr/local/lib/ser/modules/sl.so"
loadmodule "/usr/local/lib/ser/modules/tm.so"
modparam("tm", "wt_timer", 2)
{modparams}
{routes}
"#
    )
}

/// One `tm stats:` line of the server log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TmStats {
    pub current: u64,
    pub waiting: u64,
    pub created: u64,
    pub freed: u64,
    pub shm_used: u64,
}

/// Parses `tm stats: current=3 waiting=1 created=10 freed=7 shm used=123456`
/// (anything may precede `tm stats:`, e.g. a log prefix).
pub(crate) fn parse_tm_stats(line: &str) -> Option<TmStats> {
    let rest = &line[line.find("tm stats:")? + "tm stats:".len()..];
    let field = |name: &str| -> Option<u64> {
        let at = rest.find(name)? + name.len();
        let digits: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    };
    Some(TmStats {
        current: field("current=")?,
        waiting: field("waiting=")?,
        created: field("created=")?,
        freed: field("freed=")?,
        shm_used: field("shm used=")?,
    })
}

/// Complete (newline-terminated) `tm stats:` lines of the log so far; an
/// unterminated last line may still be being written and is skipped.
fn stats_lines(log: &str) -> Vec<String> {
    let mut parts: Vec<&str> = log.split('\n').collect();
    parts.pop();
    parts
        .into_iter()
        .filter(|l| l.contains("tm stats:"))
        .map(str::to_string)
        .collect()
}

/// Sends SIGUSR1 to the server and returns the figures of the next
/// `tm stats:` line it logs (waits up to 5 s).
pub(crate) fn tm_stats(ser: &Ser) -> TmStats {
    // The pid file is written once the supervisor collects its signals;
    // a SIGUSR1 before that (ports are bound earlier) would kill it.
    assert!(
        ser.wait_pid_file(Duration::from_secs(5)),
        "no pid file within 5 s; log:\n{}",
        ser.log()
    );
    let before = stats_lines(&ser.log()).len();
    kill(Pid::from_raw(ser.pid()), Signal::SIGUSR1).expect("SIGUSR1 to ser");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = stats_lines(&ser.log());
        if let Some(l) = lines.get(before) {
            return parse_tm_stats(l).unwrap_or_else(|| panic!("unparsable tm stats line: {l:?}"));
        }
        assert!(
            Instant::now() < deadline,
            "no `tm stats:` line within 5 s of SIGUSR1; log:\n{}",
            ser.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hop-by-hop ACK a UAC sends for a non-2xx final reply to `invite`
/// (RFC 3261 17.1.1.3): same R-URI, Via (branch), From, Call-ID and CSeq
/// number; To taken from the reply (with its tag).
pub(crate) fn ack_for(invite: &Request, reply: &[u8]) -> Request {
    let mut ack = invite.clone();
    ack.method = "ACK".into();
    if let Some(to) = header_value(reply, "To") {
        ack.to = to;
    }
    ack.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("Content-Type"));
    ack.body.clear();
    ack
}

/// The CANCEL for `invite` (RFC 3261 9.1): same R-URI, Via, From, To,
/// Call-ID and CSeq number.
pub(crate) fn cancel_for(invite: &Request) -> Request {
    let mut c = invite.clone();
    c.method = "CANCEL".into();
    c.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("Content-Type"));
    c.body.clear();
    c
}

/// `raw` with `;branch=<branch>` removed from its Via: a pre-RFC 3261
/// request (RFC 2543 had no branch on a UAC's Via).
pub(crate) fn without_branch(raw: &[u8], branch: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).into_owned();
    text.replacen(&format!(";branch={branch}"), "", 1)
        .into_bytes()
}

/// The method of a request, None for a reply.
pub(crate) fn method_of(raw: &[u8]) -> Option<String> {
    if status_of(raw).is_some() {
        return None;
    }
    first_line(raw).split(' ').next().map(str::to_string)
}

/// The R-URI of a request.
pub(crate) fn ruri_of(raw: &[u8]) -> Option<String> {
    first_line(raw).split(' ').nth(1).map(str::to_string)
}

/// Branch parameter of the top Via.
pub(crate) fn top_branch(raw: &[u8]) -> Option<String> {
    via_list(raw).first().and_then(|v| param(v, "branch"))
}

/// The CSeq header value, e.g. `1 ACK`.
pub(crate) fn cseq_of(raw: &[u8]) -> String {
    header_value(raw, "CSeq").unwrap_or_default()
}

/// The To tag.
pub(crate) fn to_tag_of(raw: &[u8]) -> Option<String> {
    header_value(raw, "To").and_then(|v| param(&v, "tag"))
}

/// Is `raw` a reply to a request of method `m` (by CSeq)?
pub(crate) fn is_reply_for(raw: &[u8], m: &str) -> bool {
    status_of(raw).is_some() && cseq_of(raw).split_whitespace().nth(1) == Some(m)
}

/// One datagram received by peer number `who` of a [`pump`] call.
#[derive(Debug, Clone)]
pub(crate) struct Heard {
    pub who: usize,
    pub at: Instant,
    pub msg: Vec<u8>,
    pub from: SocketAddr,
}

/// Serves `peers` round-robin for up to `d`: every datagram is handed to
/// `f` (which may answer through the peers) and recorded. Stops early when
/// `f` returns true. Resolution is a few milliseconds, plenty for SIP timers.
pub(crate) fn pump(
    peers: &[&UdpPeer],
    d: Duration,
    mut f: impl FnMut(&Heard) -> bool,
) -> Vec<Heard> {
    let deadline = Instant::now() + d;
    let mut log = Vec::new();
    while Instant::now() < deadline {
        for (who, p) in peers.iter().enumerate() {
            // Empty the socket before moving on, so a burst on one peer
            // is not delayed by the others' polling.
            while let Some((msg, from)) = p.recv_timeout(Duration::from_millis(1)) {
                let h = Heard {
                    who,
                    at: Instant::now(),
                    msg,
                    from,
                };
                let stop = f(&h);
                log.push(h);
                if stop {
                    return log;
                }
            }
        }
    }
    log
}

/// Human-readable summary of what a pump heard (for assertion messages).
pub(crate) fn describe(heard: &[Heard], t0: Instant) -> String {
    heard
        .iter()
        .map(|h| {
            format!(
                "  +{:>6} ms peer{} {} [{}]\n",
                h.at.saturating_duration_since(t0).as_millis(),
                h.who,
                first_line(&h.msg),
                cseq_of(&h.msg)
            )
        })
        .collect()
}

// --- a forked call played by one thread ---------------------------------

/// What a callee of [`fork_call`] does with the INVITE.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Callee {
    Silent,
    Rings,
    Answers(u16),
    RingsThen(u16),
    /// Answers with this final carrying these extra header lines (each
    /// ending in CRLF).
    AnswersWith(u16, &'static str),
}

/// A route block that forks to `callees`' ports on 127.0.0.1 (the first
/// through the R-URI, the others as branches) after the lines `before`.
pub(crate) fn fork_route(callees: &[u16], before: &str) -> String {
    let mut route = format!(
        "route {{\n{before}    rewritehostport(\"127.0.0.1:{}\");\n",
        callees[0]
    );
    for p in &callees[1..] {
        route.push_str(&format!("    append_branch(\"sip:x@127.0.0.1:{p}\");\n"));
    }
    route.push_str("    t_relay();\n}\n");
    route
}

/// What [`fork_call`] saw.
pub(crate) struct ForkCall {
    /// Final replies to the INVITE the caller got, in order.
    pub(crate) finals: Vec<u16>,
    /// Those final replies as the caller received them.
    pub(crate) replies: Vec<Vec<u8>>,
    /// Every datagram heard, by peer (0 = caller, then the callees).
    pub(crate) heard: Vec<Heard>,
    /// When the INVITE was sent.
    pub(crate) t0: Instant,
    /// Every datagram heard, then the server log (for assertion messages).
    pub(crate) text: String,
    pub(crate) ser: Ser,
}

fn reason(code: u16) -> &'static str {
    match code {
        180 => "Ringing",
        404 => "Not Found",
        401 => "Unauthorized",
        407 => "Proxy Authentication Required",
        486 => "Busy Here",
        603 => "Decline",
        _ => "Failed",
    }
}

/// One call through ser started on `cfg(port, callee ports)`: the caller
/// ACKs every final and, with `cancel_after_ring`, CANCELs at its first
/// 180; each callee acts as `callees` says and answers a CANCEL as a UAS
/// does (200, then 487 for the INVITE, RFC 3261 9.2). Runs until half a
/// second after the first final (a second final, or a CANCEL the final
/// set off, shows in that time), 6 s at most. Hold [`super::serial`].
pub(crate) fn fork_call(
    cfg: impl FnOnce(u16, &[u16]) -> String,
    callees: &[Callee],
    cancel_after_ring: bool,
) -> ForkCall {
    fork_call_with(cfg, callees, cancel_after_ring, &[])
}

/// [`fork_call`] with extra headers in the caller's INVITE (its ACK and
/// CANCEL carry them too); `invite_headers` may name the callee ports as
/// `{c0}`, `{c1}`, … and ser's port as `{ser}`.
pub(crate) fn fork_call_with(
    cfg: impl FnOnce(u16, &[u16]) -> String,
    callees: &[Callee],
    cancel_after_ring: bool,
    invite_headers: &[(&str, &str)],
) -> ForkCall {
    let caller = UdpPeer::bind();
    let peers_c: Vec<UdpPeer> = callees.iter().map(|_| UdpPeer::bind()).collect();
    let port = super::free_udp_port();
    let ports: Vec<u16> = peers_c.iter().map(|c| c.port()).collect();
    let ser = Ser::start(&cfg(port, &ports));
    let inv = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    )
    .header(
        "Contact",
        &format!("<sip:alice@127.0.0.1:{}>", caller.port()),
    );
    let mut inv = inv;
    for (name, value) in invite_headers {
        let mut v = value.replace("{ser}", &port.to_string());
        for (i, p) in ports.iter().enumerate() {
            v = v.replace(&format!("{{c{i}}}"), &p.to_string());
        }
        inv = inv.header(name, &v);
    }
    caller.send_to_port(&inv.build(), port);
    let mut peers: Vec<&UdpPeer> = vec![&caller];
    peers.extend(peers_c.iter());
    let t0 = Instant::now();
    let mut invites: Vec<Option<Vec<u8>>> = vec![None; callees.len()];
    let mut finals = Vec::new();
    let mut replies = Vec::new();
    let mut cancelled = false;
    let mut serve = |h: &Heard, finals: &mut Vec<u16>, replies: &mut Vec<Vec<u8>>| {
        if h.who == 0 {
            let Some(code) = status_of(&h.msg).filter(|_| is_reply_for(&h.msg, "INVITE")) else {
                return false;
            };
            if code >= 200 {
                finals.push(code);
                replies.push(h.msg.clone());
                caller.send_to_port(&ack_for(&inv, &h.msg).build(), port);
                return true;
            }
            if code == 180 && cancel_after_ring && !cancelled {
                cancelled = true;
                caller.send_to_port(&cancel_for(&inv).build(), port);
            }
            return false;
        }
        let i = h.who - 1;
        let callee = &peers_c[i];
        let answer = |code: u16| {
            callee.send(
                &super::sip::reply_to(&h.msg, code, reason(code), Some("t")),
                h.from,
            )
        };
        match method_of(&h.msg).as_deref() {
            Some("INVITE") => {
                invites[i] = Some(h.msg.clone());
                match callees[i] {
                    Callee::Silent => {}
                    Callee::Rings => answer(180),
                    Callee::Answers(code) => answer(code),
                    Callee::RingsThen(code) => {
                        answer(180);
                        answer(code);
                    }
                    Callee::AnswersWith(code, extra) => {
                        let r = super::sip::reply_to(&h.msg, code, reason(code), Some("t"));
                        let text = String::from_utf8_lossy(&r).replacen(
                            "Content-Length:",
                            &format!("{extra}Content-Length:"),
                            1,
                        );
                        callee.send(text.as_bytes(), h.from);
                    }
                }
            }
            Some("CANCEL") => {
                answer(200);
                if let Some(inv) = &invites[i] {
                    callee.send(
                        &super::sip::reply_to(inv, 487, "Request Terminated", Some("t")),
                        h.from,
                    );
                }
            }
            _ => {}
        }
        false
    };
    let mut heard = pump(&peers, Duration::from_secs(6), |h| {
        serve(h, &mut finals, &mut replies)
    });
    heard.extend(pump(&peers, Duration::from_millis(500), |h| {
        serve(h, &mut finals, &mut replies);
        false
    }));
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    ForkCall {
        finals,
        replies,
        heard,
        t0,
        text,
        ser,
    }
}

/// Polls the SIGUSR1 figures until no transaction is left and shm is at
/// `idle` (or 20 s pass); returns the last figures seen.
pub(crate) fn settle(ser: &Ser, idle_shm: Option<u64>) -> TmStats {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = tm_stats(ser);
        let shm_ok = !matches!(idle_shm, Some(i) if i != s.shm_used);
        if (s.current == 0 && shm_ok && s.created == s.freed) || Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
