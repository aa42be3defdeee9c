//! The operating-system layer: the only module of the `ser` crate allowed to
//! use `unsafe`. Everything that needs a raw libc call (fork, syslog, rlimits,
//! signal waits) lives here behind a safe function, so the rest of the crate
//! keeps `#![deny(unsafe_code)]`.
//!
//! Every process is single-threaded (see DESIGN.md), which is what makes
//! `fork` sound here: the child never inherits a lock held by another thread.
#![allow(unsafe_code)]

pub mod command;
mod daemon;
mod error;
mod fdpass;
pub mod heartbeat;
mod limits;
mod privs;
pub mod random;
pub mod signals;
pub mod syslog;
pub mod time;

pub use daemon::{chroot_to, daemonize, fork_child, set_parent_death_signal, ForkResult};
pub use error::OsError;
pub use fdpass::{recv_with_fd, send_with_fd};
pub use limits::{open_files_limit, set_core_dump, set_open_files_limit};
pub use privs::{drop_privileges, resolve_group, resolve_user};
