//! Which socket a message leaves from, and sending it there.

use std::net::SocketAddr;

use crate::net::{send_udp, ListenSocket, NetError, Proto, SocketTable};

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// TCP and TLS are not served yet (`ser -c` refuses their listen
    /// addresses; a URI may still ask for them).
    #[error("{0} is not served by this build")]
    TransportNotServed(Proto),
    #[error("no socket to send to {0}")]
    NoSocket(SocketAddr),
    #[error("{0}")]
    Net(#[from] NetError),
}

/// The socket to send to `dst` from: the one the script forced
/// (`force_send_socket`), else the table's choice for the address.
pub fn pick_socket<'t>(
    table: &'t SocketTable,
    forced: Option<usize>,
    dst: &SocketAddr,
) -> Option<&'t ListenSocket> {
    match forced {
        Some(i) => table.all().get(i),
        None => table.udp_for(dst),
    }
}

/// Send `bytes` to `dst` over `proto` from `sock`; never blocks.
pub fn send_to(
    sock: &ListenSocket,
    proto: Proto,
    bytes: &[u8],
    dst: SocketAddr,
) -> Result<(), SendError> {
    match proto {
        Proto::Udp => Ok(send_udp(&sock.udp, bytes, dst)?),
        other => Err(SendError::TransportNotServed(other)),
    }
}
