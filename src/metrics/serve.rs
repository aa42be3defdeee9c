//! The metrics process: one connection at a time on a blocking socket,
//! each under a fixed time budget, so a slow or hostile client delays the
//! next scrape by at most [`READ_BUDGET`] + [`WRITE_BUDGET`] and can never
//! hold the process. Every wait ends in time for the heartbeat: a
//! scraper that is slow inside its budget never makes us look stalled.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::metrics::http::{self, Ask};
use crate::metrics::{collect, text};

/// Time a client has to send its whole request head.
pub const READ_BUDGET: Duration = Duration::from_secs(2);
/// Time a client has to take the whole answer.
pub const WRITE_BUDGET: Duration = Duration::from_secs(2);

/// The process body: accept and answer forever (SIGTERM ends it, as every
/// child). Never returns while the listener works; a failing accept
/// (out of descriptors, say) is logged and retried after a pause. The
/// listener is non-blocking and waited on with `poll`, so that an idle
/// server still beats.
pub fn serve(listener: &TcpListener) -> i32 {
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("metrics: {e}");
        return 1;
    }
    loop {
        let wait = crate::proc::shared::beat_wait(None);
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                crate::warn_limited!("metrics: poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        match listener.accept() {
            // Accepted sockets do not inherit O_NONBLOCK: the budgets
            // below are socket timeouts.
            Ok((stream, _)) => answer(stream),
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
            Err(e) => {
                crate::warn_limited!("metrics: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads one request head within the budget, answers it, closes.
fn answer(mut stream: TcpStream) {
    let Some(ask) = read_head(&mut stream, Instant::now() + READ_BUDGET) else {
        // Gave up, stalled or went away: nothing worth answering.
        return;
    };
    let body = match ask {
        Ask::Metrics { .. } => text::render(&collect::families()),
        _ => String::new(),
    };
    let out = http::respond(ask, text::CONTENT_TYPE, &body);
    write_all(&mut stream, &out, Instant::now() + WRITE_BUDGET);
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Whether a read or write with a socket timeout just timed out.
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
    )
}

/// The request head, or `None` if the client did not finish it in time.
/// The timeout is re-armed with what is left of one budget before every
/// read, so trickling a byte at a time does not extend it; and cut at
/// the next heartbeat, so a slow client does not make us look stalled.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Option<Ask> {
    let mut buf = vec![0u8; http::MAX_HEAD];
    let mut len = 0;
    loop {
        let wait = crate::proc::shared::beat_wait(Some(remaining(deadline)?));
        stream.set_read_timeout(Some(wait)).ok()?;
        let n = match stream.read(&mut buf[len..]) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if timed_out(&e) => continue,
            Err(_) => return None,
        };
        len += n;
        if let Some(ask) = http::parse(&buf[..len]) {
            return Some(ask);
        }
    }
}

/// Writes `out` unless the client stops taking it before `deadline`.
fn write_all(stream: &mut TcpStream, mut out: &[u8], deadline: Instant) {
    while !out.is_empty() {
        let Some(left) = remaining(deadline) else {
            return;
        };
        let wait = crate::proc::shared::beat_wait(Some(left));
        if stream.set_write_timeout(Some(wait)).is_err() {
            return;
        }
        match stream.write(out) {
            Ok(0) => return,
            Ok(n) => out = out.get(n..).unwrap_or_default(),
            Err(e) if timed_out(&e) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that sends half a head and stalls is dropped at the
    /// budget; one that trickles cannot stretch it.
    #[test]
    fn a_stalled_client_is_dropped_at_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /metr").unwrap();
        let (mut s, _) = l.accept().unwrap();
        let t0 = Instant::now();
        assert_eq!(
            read_head(&mut s, Instant::now() + Duration::from_millis(300)),
            None
        );
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn a_whole_head_in_pieces_is_read() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"GET /metrics HT").unwrap();
        let w = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            c.write_all(b"TP/1.1\r\n\r\n").unwrap();
            c
        });
        assert_eq!(
            read_head(&mut s, Instant::now() + Duration::from_secs(2)),
            Some(Ask::Metrics {
                head_only: false,
                minor: 1
            })
        );
        drop(w.join());
    }
}
