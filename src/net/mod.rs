//! Network I/O: listen addresses (`listen=`/`-l`), UDP sockets opened before
//! the fork, and the table workers use to pick a sending socket and to
//! answer "is this host myself?"; the destination blacklist in shared
//! memory (`blacklist`); the TLS building block (`tls`).
pub mod blacklist;
#[cfg(test)]
mod blacklist_tests;
mod claim;
pub mod dns;
mod error;
mod iface;
mod listen;
pub mod stream;
mod table;
pub mod tls;
mod udp;
mod unix_dgram;

pub use claim::{claim_listen, ListenClaim};
pub use error::NetError;
pub use iface::{interface_addrs, interface_named};
pub use listen::{
    parse_spec, resolve_listen, resolve_listen_for, ListenAddr, ListenSpec, Proto,
    DEFAULT_SIP_PORT, DEFAULT_TLS_PORT,
};
pub use table::SockIo;
pub use table::{ListenSocket, SocketTable};
pub use udp::{
    enable_arrival_stamps, open_tcp_listener, open_udp, rcvbuf_size, recv_stamped, send_udp,
    stamp_space, Received, DEFAULT_RCVBUF_MAX,
};
pub use unix_dgram::{send_unix_datagram, UnixSendError};
