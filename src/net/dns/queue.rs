//! Lookups no worker waits for: the resolver process.
//!
//! A worker relaying a request to a name the shared cache does not hold
//! hands the name to this queue and goes on with the next message; the
//! resolver process asks the nameservers (within [`super::BUDGET`]),
//! fills the cache, and passes the answer to the continuation installed
//! before the fork (tm's: send the branch that waited, or fail it). So a
//! nameserver that never answers costs the calls to its names their
//! lookup time and nobody else anything.
//!
//! The queue is a unix datagram socket pair made before the fork: each
//! job is one datagram (the query and an opaque payload the continuation
//! gets back), written without blocking — a full queue is refused at
//! once, never waited on. The resolver process reads it from a few
//! threads, so one slow name does not hold the names behind it.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

use super::{DnsError, Resolver, Targets};
use crate::net::Proto;

/// What to resolve: a next hop's host and what its URI said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub host: String,
    pub port: Option<u16>,
    pub proto: Option<Proto>,
    pub sips: bool,
}

/// What the resolver process does with an answer: `payload` is what the
/// job carried.
pub type Continuation = fn(payload: &[u8], result: Result<Targets, DnsError>);

/// Why a job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("there is no resolver process")]
    Disabled,
    #[error("the resolver's queue is full")]
    Full,
    #[error("the job does not fit a datagram")]
    TooLarge,
    #[error("queueing failed: {0}")]
    Io(#[from] io::Error),
}

/// Lookups in flight at once in the resolver process.
pub const THREADS: usize = 4;
// Each thread beats on its own lane (a thread stuck in a failure route
// must show even while the others beat).
const _: () = assert!(THREADS <= crate::os::heartbeat::BEAT_LANES);

/// The longest job: a host name (≤ 255) plus a payload.
const MAX_JOB: usize = 2048;

struct Channel {
    tx: UnixDatagram,
    rx: UnixDatagram,
}

static CHANNEL: OnceLock<Channel> = OnceLock::new();
static CONTINUATION: OnceLock<Continuation> = OnceLock::new();

/// Make the queue (before the fork). Lookups go through it from then on.
pub fn init() -> io::Result<()> {
    let (tx, rx) = UnixDatagram::pair()?;
    tx.set_nonblocking(true)?;
    let _ = CHANNEL.set(Channel { tx, rx });
    Ok(())
}

/// Is there a resolver process to hand lookups to?
pub fn enabled() -> bool {
    CHANNEL.get().is_some()
}

/// Install what the resolver process does with answers (before the fork).
pub fn set_continuation(f: Continuation) {
    let _ = CONTINUATION.set(f);
}

/// Queue a lookup; never blocks.
pub fn submit(q: &Query, payload: &[u8]) -> Result<(), QueueError> {
    let ch = CHANNEL.get().ok_or(QueueError::Disabled)?;
    let job = encode(q, payload).ok_or(QueueError::TooLarge)?;
    match ch.tx.send(&job) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(QueueError::Full),
        Err(e) => Err(e.into()),
    }
}

/// The resolver process: answer jobs until killed.
pub fn run() -> i32 {
    let Some(ch) = CHANNEL.get() else {
        log::error!("dns resolver: no queue");
        return 1;
    };
    // An idle thread wakes up now and then to beat (the timeout is the
    // socket's, shared by the threads).
    if let Err(e) = ch
        .rx
        .set_read_timeout(Some(crate::os::heartbeat::BEAT_EVERY))
    {
        log::warn!("dns resolver: no receive timeout ({e}): an idle resolver looks stalled");
    }
    std::thread::scope(|s| {
        for lane in 0..THREADS {
            s.spawn(move || {
                serve(&ch.rx, lane);
                crate::os::heartbeat::end_lane(lane);
            });
        }
    });
    0
}

/// One thread's loop: between two beats it waits at most the receive
/// timeout, then one lookup (within [`super::BUDGET`]) and its
/// continuation.
fn serve(rx: &UnixDatagram, lane: usize) {
    let mut buf = vec![0u8; MAX_JOB];
    loop {
        crate::os::heartbeat::beat_lane(lane);
        let n = match rx.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                log::error!("dns resolver: reading the queue failed: {e}");
                return;
            }
        };
        // The wait for a job is not part of the lookup's time.
        crate::os::heartbeat::beat_lane(lane);
        let Some((q, payload)) = decode(&buf[..n]) else {
            log::error!("dns resolver: a malformed job ({n} bytes) dropped");
            continue;
        };
        let result = Resolver::system().targets(&q.host, q.port, q.proto, q.sips);
        if let Err(e) = &result {
            log::debug!("dns resolver: {}: {e}", q.host);
        }
        if let Some(k) = CONTINUATION.get() {
            k(payload, result);
        }
    }
}

fn proto_code(p: Option<Proto>) -> u8 {
    match p {
        None => 0,
        Some(Proto::Udp) => 1,
        Some(Proto::Tcp) => 2,
        Some(Proto::Tls) => 3,
    }
}

fn proto_of(c: u8) -> Option<Option<Proto>> {
    Some(match c {
        0 => None,
        1 => Some(Proto::Udp),
        2 => Some(Proto::Tcp),
        3 => Some(Proto::Tls),
        _ => return None,
    })
}

/// `[sips][proto][has port][port:2][host len][host][payload]`.
fn encode(q: &Query, payload: &[u8]) -> Option<Vec<u8>> {
    let host = q.host.as_bytes();
    if host.len() > 255 || 6 + host.len() + payload.len() > MAX_JOB {
        return None;
    }
    let mut out = Vec::with_capacity(6 + host.len() + payload.len());
    out.push(u8::from(q.sips));
    out.push(proto_code(q.proto));
    out.push(u8::from(q.port.is_some()));
    out.extend_from_slice(&q.port.unwrap_or(0).to_be_bytes());
    out.push(host.len() as u8);
    out.extend_from_slice(host);
    out.extend_from_slice(payload);
    Some(out)
}

fn decode(b: &[u8]) -> Option<(Query, &[u8])> {
    let (&sips, b) = b.split_first()?;
    let (&proto, b) = b.split_first()?;
    let (&has_port, b) = b.split_first()?;
    let port = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let b = b.get(2..)?;
    let (&len, b) = b.split_first()?;
    let host = std::str::from_utf8(b.get(..usize::from(len))?).ok()?;
    let payload = b.get(usize::from(len)..)?;
    Some((
        Query {
            host: host.to_owned(),
            port: (has_port != 0).then_some(port),
            proto: proto_of(proto)?,
            sips: sips != 0,
        },
        payload,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_and_bad_ones_are_refused() {
        let q = Query {
            host: "example.test".into(),
            port: Some(5070),
            proto: Some(Proto::Tcp),
            sips: false,
        };
        let job = encode(&q, b"\x01\x02\x03").unwrap();
        assert_eq!(decode(&job), Some((q.clone(), &b"\x01\x02\x03"[..])));
        let q2 = Query {
            port: None,
            proto: None,
            sips: true,
            ..q.clone()
        };
        assert_eq!(decode(&encode(&q2, b"").unwrap()), Some((q2, &b""[..])));
        // Truncations and a bad transport code do not decode.
        for n in 0..job.len() - 3 {
            assert!(decode(&job[..n]).is_none(), "{n}");
        }
        let mut bad = job.clone();
        bad[1] = 9;
        assert!(decode(&bad).is_none());
        // A host longer than a DNS name is not queued.
        let long = Query {
            host: "a".repeat(256),
            ..q
        };
        assert!(encode(&long, b"").is_none());
    }
}
