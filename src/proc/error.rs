//! Errors of the process layer.
use std::path::PathBuf;

use crate::os::OsError;

/// Why the supervisor could not start or spawn.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// A system call of the OS layer failed (fork, signal mask, ...).
    #[error(transparent)]
    Os(#[from] OsError),
    /// The pid or pgid file could not be written.
    #[error("cannot write {path}: {source}")]
    PidFile {
        path: PathBuf,
        source: std::io::Error,
    },
}
