//! Which socket a message leaves from, and sending it there.

use std::net::SocketAddr;

use crate::net::{ListenSocket, NetError, Proto, SocketTable};

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No listen socket of that transport (a URI or function asked for
    /// TCP or TLS on a server listening on UDP only).
    #[error("{0} is not served (no listen address of that transport)")]
    TransportNotServed(Proto),
    #[error("no socket to send to {0}")]
    NoSocket(SocketAddr),
    #[error("{0}")]
    Net(#[from] NetError),
}

/// The socket to send to `dst` over `proto` from: the one the script
/// forced (`force_send_socket`) when it has that transport, else the
/// table's choice for the address.
pub fn pick_socket<'t>(
    table: &'t SocketTable,
    forced: Option<usize>,
    proto: Proto,
    dst: &SocketAddr,
) -> Option<&'t ListenSocket> {
    forced
        .and_then(|i| table.all().get(i))
        .filter(|s| s.proto() == proto)
        .or_else(|| table.for_dest(proto, dst))
}

/// Send `bytes` to `dst` over `proto` from `sock`; never blocks.
pub fn send_to(
    sock: &ListenSocket,
    proto: Proto,
    bytes: &[u8],
    dst: SocketAddr,
) -> Result<(), SendError> {
    if sock.proto() != proto {
        return Err(SendError::TransportNotServed(proto));
    }
    Ok(sock.send(bytes, dst, None)?)
}
