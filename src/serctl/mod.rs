//! `serctl`: the operator's tool for a running ser, speaking SER 0.9's
//! management protocol over the FIFO or the unix datagram socket, or the
//! same commands over JSON-RPC ([`jsonrpc`]).
//!
//! Layers: [`proto`] frames requests and parses replies (pure);
//! [`unixsock`] and [`fifo`] move bytes ([`access`]: who may answer); [`transport`] picks one and ties
//! them together; [`cli`] parses the command line; [`format`] renders
//! replies; [`run`] is the program; [`users`] manages subscribers and aliases in
//! SER's database. `src/bin/serctl.rs` only calls
//! [`main_entry`].
pub mod access;
pub mod cli;
pub mod fifo;
pub mod format;
pub mod jsonrpc;
pub mod proto;
pub mod run;
pub mod transport;
pub mod unixsock;
pub mod users;

pub use proto::{build_request, parse_reply, BuildError, Reply, ReplyError};
pub use run::{run, EnvPaths, OutKind, EXIT_OK, EXIT_SERVER_ERROR, EXIT_UNREACHABLE, EXIT_USAGE};
pub use transport::{Transport, TransportError};

/// The program with the process's arguments, environment and streams;
/// returns the exit status.
pub fn main_entry() -> i32 {
    // Lossy: a non-UTF-8 argument must not panic before we can say so.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let kind = if std::io::IsTerminal::is_terminal(&stdout) {
        OutKind::Terminal
    } else {
        OutKind::Stream
    };
    run(
        &args,
        &EnvPaths::from_process(),
        &mut stdout.lock(),
        kind,
        &mut stderr.lock(),
    )
}
