//! Management interfaces: SER's FIFO (`fifo=`) and unix datagram socket
//! (`unix_sock=`) servers, the command table they share, and reply
//! delivery. Commands are text: a head line `:command:reply`, parameter
//! lines, an empty line; replies are `<code> <text>` and body lines.
//!
//! The same table is served as JSON-RPC 2.0 by [`jsonrpc`] (a second
//! framing: request objects, parameters as lines, JSON results).
//!
//! Modules export their commands through `Module::ctl_commands`; a
//! command that answers later (a UAC transaction) keeps its
//! [`ReplyTarget`] and delivers from whichever process completes it.

pub mod blacklist_cmds;
pub mod core_cmds;
pub mod fifo;
pub mod jsonrpc;
pub mod outbox;
pub mod registry;
pub mod reply;
pub mod request;
pub mod target;
pub mod unixsock;

use std::sync::OnceLock;
use std::time::SystemTime;

pub use registry::{CmdCtx, CtlCmd, Handler, Registry, Served};
pub use reply::{Outcome, Reply};
pub use request::{Dialect, ParamError, Params};
pub use target::{Patience, ReplyTarget};

/// Process-wide facts the commands report, fixed before the fork.
#[derive(Debug, Clone)]
pub struct Settings {
    pub started: SystemTime,
    pub argv: Vec<String>,
    /// Mode of report files we create (`fifo_mode`).
    pub file_mode: u32,
    /// Directory of relative reply names (`fifo_dir`, default `/tmp/`).
    pub reply_dir: std::path::PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            started: SystemTime::now(),
            argv: std::env::args().collect(),
            file_mode: 0o660,
            reply_dir: "/tmp/".into(),
        }
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Fix the settings (once, in the supervisor, before forking).
pub fn configure(s: Settings) {
    let _ = SETTINGS.set(s);
}

pub fn settings() -> &'static Settings {
    SETTINGS.get_or_init(Settings::default)
}

/// Deliver a later report (a UAC transaction's end) to `target`, from
/// whichever process it completes in (a worker or the timer): never
/// waits, neither for a FIFO reader nor for room in a unix client's
/// queue.
pub fn deliver_later(target: &ReplyTarget, reply: &Reply, dialect: Dialect) {
    let s = settings();
    if let Err(e) = target.deliver(&reply.render(dialect), s.file_mode, Patience::NONE) {
        crate::warn_limited!("ctl: report not delivered: {e}");
    }
}
