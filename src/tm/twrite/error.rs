//! Why `t_write_req`/`t_write_unix` failed after the transaction exists;
//! the script function returns −1 on any of them.

use std::io;

use thiserror::Error;

use crate::sip::{HdrKind, ParseError};

#[derive(Debug, Error)]
pub enum TwriteError {
    /// Only requests are written to applications.
    #[error("not a request")]
    NotRequest,
    /// The current Request-URI does not parse.
    #[error("malformed Request-URI")]
    BadRuri,
    /// From, To, Call-ID or CSeq is missing or malformed; also a Contact
    /// or Record-Route that is present but malformed (the application
    /// could not reach the caller).
    #[error("{header:?}: {error}")]
    Header { header: HdrKind, error: ParseError },
    /// The FIFO exists but no process has it open for reading (ENXIO on a
    /// non-blocking open): the application is not running.
    #[error("no application reads the FIFO")]
    NoReader,
    /// The path does not exist (FIFO or socket).
    #[error("no such FIFO or socket")]
    Missing,
    /// The path exists but is not a FIFO.
    #[error("not a FIFO")]
    NotFifo,
    /// The FIFO's pipe buffer is full (the application reads too slowly).
    #[error("FIFO full")]
    Full,
    /// Fewer bytes went out than the description holds; the application
    /// got a truncated request it must discard.
    #[error("short write: {written} of {len} bytes")]
    Short { written: usize, len: usize },
    /// Nobody is bound to the socket path (ECONNREFUSED).
    #[error("no application bound to the socket")]
    Refused,
    /// The datagram could not be queued within `unix_tx_timeout`.
    #[error("send timed out")]
    Timeout,
    /// The description is larger than one datagram may be.
    #[error("request too large for one datagram")]
    TooLarge,
    /// Any other system error.
    #[error("{0}")]
    Io(#[source] io::Error),
}
