//! Processes: ranks, the table of forked children, and the supervisor that
//! forks them, reaps them and shuts the server down.
mod error;
mod rank;
pub mod shared;
mod supervisor;
mod table;

pub use error::ProcError;
pub use rank::Rank;
pub use supervisor::{hold_supervised_signals, Supervisor, SUPERVISED_SIGNALS};
pub use table::{describe_exit, ChildInfo, ChildTable};
