//! NAT keep-alive: every `natping_interval` seconds, a datagram to each
//! registered contact (only those flagged as NATed with
//! `ping_nated_only`), so the NAT keeps the phone's binding open and
//! calls can reach it. As SER 0.9: four zero bytes, or with
//! `sipping_from` a stateless SIP request (OPTIONS) whose reply is
//! dropped. Sent to the binding's `received` address when it has one,
//! else to its Contact; from the UDP listen socket that suits the
//! destination.
//!
//! It runs in a process of its own (`Module::procs`): walking every
//! binding must not delay tm's timers or a worker. Sends never block (a
//! full socket buffer drops that ping).

use std::net::SocketAddr;
use std::time::Duration;

use crate::modules::usrloc::{self, FL_NAT};

use super::{ping_target, PingCfg, PING};

/// SER 0.9's UDP ping: four zero bytes, which phones ignore.
pub(crate) const ZERO_PING: [u8; 4] = [0; 4];

/// The ping process's body.
pub(super) fn process() -> i32 {
    let Some((cfg, rt)) = PING.get() else {
        log::error!("nathelper: keep-alive process without configuration");
        return 1;
    };
    let every = Duration::from_secs(u64::from(cfg.interval_s.max(1)));
    let mut seq: u64 = 0;
    loop {
        crate::proc::shared::sleep_beating(every);
        let n = round(cfg, &rt.sockets, &mut seq);
        log::debug!("nathelper: {n} keep-alive ping(s) sent");
    }
}

/// Destinations of one round: live bindings, NATed ones only when asked,
/// reachable over UDP at a numeric address; each address once.
pub(crate) fn targets(nated_only: bool, now_ms: u64) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let r = usrloc::for_each_binding(now_ms, |_, _, b| {
        if nated_only && b.flags & FL_NAT == 0 {
            return;
        }
        if let Some(dst) = ping_target(&b.contact, &b.received) {
            if !out.iter().any(|(d, _)| *d == dst) {
                out.push((dst, b.contact.clone()));
            }
        }
    });
    if let Err(e) = r {
        crate::warn_limited!("nathelper: cannot read the location table: {e}");
    }
    out
}

/// One round of pings; returns how many left.
fn round(cfg: &PingCfg, sockets: &crate::net::SocketTable, seq: &mut u64) -> usize {
    let mut sent = 0;
    for (dst, contact) in targets(cfg.nated_only, shm::monotonic_ms()) {
        let Some(sock) = sockets.udp_for(&dst) else {
            continue;
        };
        let bytes = match &cfg.sip_from {
            Some(from) => {
                *seq += 1;
                sip_ping(&cfg.sip_method, from, &contact, sock, *seq)
            }
            None => ZERO_PING.to_vec(),
        };
        match sock.send(&bytes, dst, None) {
            Ok(()) => sent += 1,
            Err(e) => crate::warn_limited!("nathelper: ping to {dst}: {e}"),
        }
    }
    sent
}

/// A stateless SIP ping (SER's `sipping_from`/`sipping_method`).
pub(crate) fn sip_ping(
    method: &str,
    from: &str,
    contact: &[u8],
    sock: &crate::net::ListenSocket,
    seq: u64,
) -> Vec<u8> {
    let contact = String::from_utf8_lossy(contact);
    let pid = std::process::id();
    let host = sock.host_text();
    let port = sock.listen.addr.port();
    format!(
        "{method} {contact} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bKnp{pid:x}.{seq:x}\r\n\
         From: <{from}>;tag={pid:x}-{seq:x}\r\n\
         To: <{contact}>\r\n\
         Call-ID: {pid:x}-{seq:x}@{host}\r\n\
         CSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}
