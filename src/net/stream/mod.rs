//! Stream transports (TCP, TLS) across processes: the TCP main process
//! owns every connection; other processes reach it through the link of
//! [`ipc`] (see there for why bytes travel, not file descriptors).
//!
//! Plain TCP messages skip that hand-over when they can: the main
//! process lends a connection's socket to a process that sends on it,
//! and [`slots`] keeps their writes in order ([`direct`] is the sender).
//!
//! The main process runs [`run`]: a mio loop (`main_loop`) around two
//! sans-io parts, [`Conn`] (one connection: framing, the reply to a
//! refused message, the send queue, every timer) and [`ConnTable`] (ids,
//! lookup by peer and alias, eviction under `max_connections`, the
//! [`StreamStats`] counters).

mod conn;
mod deliver;
pub mod direct;
pub mod ipc;
mod main_loop;
pub mod shared;
pub mod slots;
mod table;

#[cfg(test)]
mod conn_tests;
#[cfg(test)]
mod main_loop_tests;

use std::sync::OnceLock;

pub use conn::{CloseReason, Conn, ConnInfo, QueueError, Timeouts, CONN_QUEUE_MAX, LINGER};
pub use deliver::{BACKLOG_BYTES, BACKLOG_MSGS};
pub use ipc::{
    Channels, ConnRow, Delivery, DirectTag, LinkError, SendReq, MAX_DATAGRAM, MAX_PAYLOAD,
};
pub use main_loop::{run, run_observed, Listener, MainLoopError, Observer, StreamCfg, TICK};
pub use table::{ConnTable, Slot, StreamStats, MAX_CONN_ID};

/// The link, set by the supervisor before the fork (every child inherits
/// it); unset when no TCP or TLS socket is served.
static LINK: OnceLock<Channels> = OnceLock::new();

/// Make `ch` the link of this process and of the children it forks.
/// False if one was already installed.
pub fn install(ch: Channels) -> bool {
    LINK.set(ch).is_ok()
}

/// The installed link, if streams are served.
pub fn link() -> Option<&'static Channels> {
    LINK.get()
}

/// Why a message could not be handed over for a stream send.
#[derive(Debug, thiserror::Error)]
pub enum StreamSendError {
    #[error("TCP/TLS is not served (no tcp: or tls: listen address)")]
    NotServed,
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// Hand `bytes` to the TCP main process for sending as `req` says; never
/// waits more than the link's short bound. Success means handed over:
/// a connection that then fails is the main process's to log.
/// The TCP main process's connections, asked over the link and answered
/// on a socketpair of our own; `wait` bounds the whole exchange.
pub fn list_connections(wait: std::time::Duration) -> Result<Vec<ConnRow>, StreamSendError> {
    use std::os::fd::AsFd;
    let link = link().ok_or(StreamSendError::NotServed)?;
    let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().map_err(LinkError::Io)?;
    ipc::send_list_request(&link.to_main_tx, theirs.as_fd())?;
    drop(theirs);
    let end = std::time::Instant::now() + wait;
    let mut rows = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(LinkError::Busy.into());
        }
        ours.set_read_timeout(Some(left)).map_err(LinkError::Io)?;
        let n = match ours.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(LinkError::Busy.into())
            }
            Err(e) => return Err(LinkError::Io(e).into()),
        };
        let (mut part, more) = ConnRow::decode(buf.get(..n).unwrap_or_default())?;
        rows.append(&mut part);
        if !more {
            return Ok(rows);
        }
    }
}

/// The connection from `peer` also reaches `alias` (a Via `;alias` with
/// `tcp_accept_aliases`): sends there will use it. Best effort.
pub fn alias(proto: crate::net::Proto, peer: std::net::SocketAddr, alias: std::net::SocketAddr) {
    if let Some(link) = link() {
        if let Err(e) = link.alias(proto, peer, alias) {
            log::debug!("{proto}: alias {alias} of {peer} not recorded: {e}");
        }
    }
}

/// A plain TCP message goes straight into the connection's socket when
/// this process holds it and may ([`slots`]).
pub fn send(req: &SendReq, bytes: &[u8]) -> Result<(), StreamSendError> {
    let link = link().ok_or(StreamSendError::NotServed)?;
    match slots::shared() {
        Some(s) => Ok(direct::send(link, s, req, bytes)?),
        None => Ok(link.send(req, bytes)?),
    }
}
