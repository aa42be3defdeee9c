//! RFC 3263 next hops through the real binary, in a network namespace
//! whose nameserver is this test (an authoritative server for
//! `example.test` on 127.0.0.1:53): `t_relay()` to a name without a port
//! follows its SRV records to the lowest priority, and the answer is
//! kept in the shared DNS cache — with the nameserver gone the next call
//! is relayed at once, and `dns.view` lists what is cached; with
//! `dns=yes` a Via host that resolves to the source gets no `received`.
//! With `use_dns_failover` a 503 from the first SRV target sends the call
//! to the next; and a name whose nameserver never answers costs its own
//! call the lookup time, not the next call (the resolver process looks
//! it up while the worker goes on).

use crate::common::netns::{run_test_in_netns, IN_NETNS};
use crate::common::sip::{header_value, via_list, Request, UdpPeer};
use crate::common::{free_udp_port, Ser};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The question of a query: its name (lower case) and type.
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let l = usize::from(*q.get(at)?);
        if l == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(at + 1..at + 1 + l)?).to_ascii_lowercase());
        at += 1 + l;
    }
    let t = u16::from_be_bytes([*q.get(at + 1)?, *q.get(at + 2)?]);
    Some((labels.join("."), t, at + 5))
}

fn name_bytes(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// The answer to `q` (question ending at `end`): `rcode`, records of
/// type `t` with these rdatas, TTL 300.
fn answer(q: &[u8], end: usize, rcode: u8, t: u16, rdatas: &[Vec<u8>]) -> Vec<u8> {
    let mut r = q[..end].to_vec();
    r[2] = 0x85; // response, authoritative, RD
    r[3] = 0x80 | rcode;
    r[6..8].copy_from_slice(&(rdatas.len() as u16).to_be_bytes());
    r[8..12].copy_from_slice(&[0, 0, 0, 0]);
    for d in rdatas {
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&t.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 1, 44]);
        r.extend_from_slice(&(d.len() as u16).to_be_bytes());
        r.extend_from_slice(d);
    }
    r
}

fn srv(prio: u16, port: u16, target: &str) -> Vec<u8> {
    let mut d = prio.to_be_bytes().to_vec();
    d.extend_from_slice(&[0, 10]);
    d.extend_from_slice(&port.to_be_bytes());
    d.extend_from_slice(&name_bytes(target));
    d
}

/// The zone, served on 127.0.0.1:53 until dropped.
struct Zone {
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Zone {
    /// `_sip._udp.example.test`: priority 5 → lo.example.test:`lo`,
    /// priority 10 → hi.example.test:`hi`; both hosts 127.0.0.1.
    fn start(lo: u16, hi: u16) -> Zone {
        let sock = UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53 in the netns");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(100);
            let mut buf = [0u8; 1500];
            while !s.load(Relaxed) && Instant::now() < deadline {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                n.fetch_add(1, Relaxed);
                let q = &buf[..len];
                let Some((name, t, end)) = question(q) else {
                    continue;
                };
                if name.ends_with("dead.test") {
                    // A nameserver that never answers for this zone.
                    continue;
                }
                let r = match (name.as_str(), t) {
                    ("_sip._udp.example.test", 33) => answer(
                        q,
                        end,
                        0,
                        33,
                        &[
                            srv(10, hi, "hi.example.test"),
                            srv(5, lo, "lo.example.test"),
                        ],
                    ),
                    ("lo.example.test" | "hi.example.test", 1) => {
                        answer(q, end, 0, 1, &[vec![127, 0, 0, 1]])
                    }
                    ("lo.example.test" | "hi.example.test" | "example.test", _) => {
                        answer(q, end, 0, t, &[])
                    }
                    _ => answer(q, end, 3, t, &[]),
                };
                let _ = sock.send_to(&r, from);
            }
        });
        Zone {
            queries,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Zone {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cfg(port: u16, fifo: &std::path::Path) -> String {
    cfg_with(port, fifo, "")
}

fn cfg_with(port: u16, fifo: &std::path::Path, more: &str) -> String {
    format!(
        r#"
debug=3
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=1
dns=yes
{more}
fifo="{fifo}"
loadmodule "sl.so"
loadmodule "tm.so"
route {{
    if (!t_relay()) {{ sl_reply_error(); }};
}}
"#,
        fifo = fifo.display()
    )
}

/// Sends an INVITE to `sip:bob@example.test` and says whether `to` got
/// it within `limit`.
fn invite_reaches(caller: &UdpPeer, port: u16, to: &UdpPeer, limit: Duration) -> bool {
    let r = Request::new("INVITE", "sip:bob@example.test", caller.port());
    caller.send_to_port(&r.build(), port);
    to.recv_matching(limit, |m| {
        m.starts_with(b"INVITE ")
            && header_value(m, "Call-ID").as_deref() == Some(r.call_id.as_str())
    })
    .is_some()
}

#[test]
fn srv_picks_the_lowest_priority_and_the_cache_keeps_it() {
    if std::env::var_os(IN_NETNS).is_none() {
        return run_test_in_netns(
            module_path!(),
            "srv_picks_the_lowest_priority_and_the_cache_keeps_it",
            "nameserver 127.0.0.1\n",
        );
    }
    let (lo, hi, caller) = (UdpPeer::bind(), UdpPeer::bind(), UdpPeer::bind());
    let zone = Zone::start(lo.port(), hi.port());
    let port = free_udp_port();
    let dir = crate::common::TestDir::new();
    let fifo = dir.join("fifo");
    let ser = Ser::start(&cfg(port, &fifo));
    assert!(
        invite_reaches(&caller, port, &lo, Duration::from_secs(5)),
        "the priority-5 target got no INVITE; ser log:\n{}",
        ser.log()
    );
    assert!(zone.queries.load(Relaxed) >= 2, "SRV and A asked");
    drop(zone);
    // The nameserver is gone: the cached answer serves the next call at
    // once (a lookup would fail).
    let t0 = Instant::now();
    assert!(
        invite_reaches(&caller, port, &lo, Duration::from_secs(1)),
        "the second call was not relayed from the cache; ser log:\n{}",
        ser.log()
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serctl"))
        .args(["fifo", "dns.view"])
        .env("SER_FIFO", &fifo)
        .env_remove("SER_UNIXSOCK")
        .output()
        .expect("serctl");
    let view = String::from_utf8_lossy(&out.stdout);
    assert!(
        view.contains("_sip._udp.example.test SRV")
            && view.contains(&format!("5 10 {} lo.example.test", lo.port())),
        "{view}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(view.contains("lo.example.test A"), "{view}");
    // dns=yes: a Via naming its host by a name that is the source address
    // gets no received= (the name is in the cache by now).
    let mut r = Request::new("INVITE", "sip:bob@example.test", caller.port());
    r = r.via_host("lo.example.test");
    caller.send_to_port(&r.build(), port);
    let (m, _) = lo
        .recv_matching(Duration::from_secs(2), |m| {
            m.starts_with(b"INVITE ")
                && header_value(m, "Call-ID").as_deref() == Some(r.call_id.as_str())
        })
        .unwrap_or_else(|| panic!("no INVITE; ser log:\n{}", ser.log()));
    let vias = via_list(&m);
    assert!(
        vias.len() == 2 && vias[1].contains("lo.example.test") && !vias[1].contains("received="),
        "{vias:?}"
    );
}

/// The INVITE of `call_id` arriving at `to` within `limit`.
fn invite_of(to: &UdpPeer, call_id: &str, limit: Duration) -> Option<Vec<u8>> {
    to.recv_matching(limit, |m| {
        m.starts_with(b"INVITE ") && header_value(m, "Call-ID").as_deref() == Some(call_id)
    })
    .map(|(m, _)| m)
}

#[test]
fn a_503_fails_over_to_the_next_srv_target() {
    if std::env::var_os(IN_NETNS).is_none() {
        return run_test_in_netns(
            module_path!(),
            "a_503_fails_over_to_the_next_srv_target",
            "nameserver 127.0.0.1\n",
        );
    }
    let (lo, hi, caller) = (UdpPeer::bind(), UdpPeer::bind(), UdpPeer::bind());
    let _zone = Zone::start(lo.port(), hi.port());
    let port = free_udp_port();
    let dir = crate::common::TestDir::new();
    let ser = Ser::start(&cfg_with(port, &dir.join("fifo"), "use_dns_failover=yes"));
    let r = Request::new("INVITE", "sip:bob@example.test", caller.port());
    caller.send_to_port(&r.build(), port);
    let first = invite_of(&lo, &r.call_id, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no INVITE at the priority-5 target; log:\n{}", ser.log()));
    lo.send(
        &crate::common::sip::reply_to(&first, 503, "Overloaded", Some("lo")),
        ([127, 0, 0, 1], port).into(),
    );
    let second = invite_of(&hi, &r.call_id, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no failover to the priority-10 target; log:\n{}", ser.log()));
    // A branch of its own: another branch id, the same request otherwise.
    let branch = |m: &[u8]| crate::common::sip::param(&via_list(m)[0], "branch");
    assert_ne!(branch(&first), branch(&second));
    assert_eq!(via_list(&first)[1], via_list(&second)[1]);
    hi.send(
        &crate::common::sip::reply_to(&second, 200, "OK", Some("hi")),
        ([127, 0, 0, 1], port).into(),
    );
    let got = caller
        .recv_matching(Duration::from_secs(3), |m| {
            crate::common::sip::status_of(m).is_some_and(|c| c >= 200)
        })
        .map(|(m, _)| m)
        .unwrap_or_else(|| panic!("no final at the caller; log:\n{}", ser.log()));
    assert_eq!(
        crate::common::sip::status_of(&got),
        Some(200),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Without use_dns_failover the 503 ends the call (as 500, 2.x).
    drop(ser);
    let port = free_udp_port();
    let ser = Ser::start(&cfg(port, &dir.join("fifo2")));
    let r = Request::new("INVITE", "sip:bob@example.test", caller.port());
    caller.send_to_port(&r.build(), port);
    let first = invite_of(&lo, &r.call_id, Duration::from_secs(5)).expect("INVITE");
    lo.send(
        &crate::common::sip::reply_to(&first, 503, "Overloaded", Some("lo")),
        ([127, 0, 0, 1], port).into(),
    );
    let got = caller
        .recv_matching(Duration::from_secs(3), |m| {
            crate::common::sip::status_of(m).is_some_and(|c| c >= 200)
        })
        .map(|(m, _)| m)
        .unwrap_or_else(|| panic!("no final at the caller; log:\n{}", ser.log()));
    assert_eq!(crate::common::sip::status_of(&got), Some(500));
    assert!(invite_of(&hi, &r.call_id, Duration::from_millis(300)).is_none());
}

#[test]
fn a_silent_nameserver_does_not_hold_the_next_call() {
    if std::env::var_os(IN_NETNS).is_none() {
        return run_test_in_netns(
            module_path!(),
            "a_silent_nameserver_does_not_hold_the_next_call",
            "nameserver 127.0.0.1\n",
        );
    }
    let (callee, caller) = (UdpPeer::bind(), UdpPeer::bind());
    let _zone = Zone::start(callee.port(), callee.port());
    let port = free_udp_port();
    let dir = crate::common::TestDir::new();
    // One worker: were it waiting on the nameserver, nothing else would
    // be relayed meanwhile.
    let ser = Ser::start(&cfg(port, &dir.join("fifo")));
    let stuck = Request::new("INVITE", "sip:bob@dead.test", caller.port());
    caller.send_to_port(&stuck.build(), port);
    std::thread::sleep(Duration::from_millis(100));
    let next = Request::new(
        "INVITE",
        &format!("sip:carol@127.0.0.1:{}", callee.port()),
        caller.port(),
    );
    caller.send_to_port(&next.build(), port);
    // Well within the 2 s a lookup may take.
    assert!(
        invite_of(&callee, &next.call_id, Duration::from_millis(1000)).is_some(),
        "the second call waited for the first one's lookup; log:\n{}",
        ser.log()
    );
    // The first call ends when its lookup gives up: 478, SER's
    // "Unresolvable destination".
    let got = caller
        .recv_matching(Duration::from_secs(6), |m| {
            crate::common::sip::status_of(m).is_some_and(|c| c >= 200)
                && header_value(m, "Call-ID").as_deref() == Some(stuck.call_id.as_str())
        })
        .map(|(m, _)| m)
        .unwrap_or_else(|| panic!("no final for the unresolvable call; log:\n{}", ser.log()));
    assert_eq!(
        crate::common::sip::status_of(&got),
        Some(478),
        "{}",
        String::from_utf8_lossy(&got)
    );
}
