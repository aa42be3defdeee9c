//! Errors of the network layer.
use std::net::SocketAddr;

use nix::errno::Errno;

/// Why a listen spec, a socket or a send failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The `[proto:]addr[:port]` text is malformed.
    #[error("bad listen address \"{spec}\": {reason}")]
    BadSpec { spec: String, reason: &'static str },
    /// The port is not a number in 0..=65535 or `*`.
    #[error("bad port in listen address \"{spec}\"")]
    BadPort { spec: String },
    /// A host name could not be resolved.
    #[error("cannot resolve \"{host}\": {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    /// A host name or interface resolved to no usable address.
    #[error("\"{host}\" has no usable address")]
    NoAddress { host: String },
    /// Listing the interfaces (getifaddrs) failed.
    #[error("cannot list network interfaces: {0}")]
    Interfaces(Errno),
    /// Creating or configuring a socket failed.
    #[error("cannot create socket for {addr}: {source}")]
    Socket {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Another process (another ser?) already serves this address.
    #[error("{spec} is already in use by another process (is another ser running?)")]
    AddressServed { spec: String },
    /// Binding failed (address in use, not local, no permission).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The socket buffer is full (EAGAIN/ENOBUFS): the datagram was dropped
    /// rather than blocking the worker.
    #[error("send to {dst} would block ({errno})")]
    WouldBlock { dst: SocketAddr, errno: Errno },
    /// sendto failed for another reason (unreachable, too big, ...).
    #[error("send to {dst} failed: {errno}")]
    Send { dst: SocketAddr, errno: Errno },
    /// The kernel accepted fewer bytes than the datagram holds.
    #[error("short send to {dst}: {sent} of {len} bytes")]
    ShortSend {
        dst: SocketAddr,
        sent: usize,
        len: usize,
    },
    /// A TCP/TLS message could not be handed to the TCP main process.
    #[error("stream send to {dst}: {source}")]
    Stream {
        dst: SocketAddr,
        source: crate::net::stream::StreamSendError,
    },
}
