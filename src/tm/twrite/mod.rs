//! `t_write_req(fifo, app)` / `t_write_unix(socket, app)` (tm, SER 0.9):
//! hand a request to an external application (SEMS, a voicemail) as text,
//! while the transaction waits on a blind branch for the application's
//! `t_reply`. This module holds the parts that do not touch the
//! transaction: the `tw_append` parameter (`append`), the description of
//! the request (`describe`) and the two ways of delivering it (`io`).
//! The script functions in tm create the transaction and its blind branch
//! and then call these.

pub mod append;
pub mod describe;
pub mod error;
pub mod io;

#[cfg(test)]
mod append_tests;
#[cfg(test)]
mod describe_tests;
#[cfg(test)]
mod io_tests;

pub use append::{
    parse_tw_append, split_action, TwAppend, TwAppendError, TwAppends, TwItem, TwSource,
};
pub use describe::{describe, describe_request, reverse_hex, TwRequest};
pub use error::TwriteError;
pub use io::{write_fifo, write_unix};
