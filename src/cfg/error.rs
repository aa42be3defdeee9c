//! Config syntax errors from the lexer/parser. Load-time (semantic) errors
//! — unknown function, bad regex … — are `route::LoadError`, printed the
//! same way.
//!
//! Every variant but [`CfgError::Io`] carries the file name and the 1-based
//! line:column of the offending token, and prints as
//! `<file>:<line>:<col>: <what was wrong>, expected <what>` so all config
//! errors look the same to the operator.

use super::ast::Pos;

#[derive(Debug, thiserror::Error)]
pub enum CfgError {
    /// The config file could not be read.
    #[error("{file}: cannot read config file: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },

    /// A token that does not fit the grammar at this point.
    #[error("{file}:{pos}: unexpected {found}, expected {expected}")]
    Unexpected {
        file: String,
        pos: Pos,
        found: String,
        expected: String,
    },

    /// End of file inside a `"..."` or `'...'` string; `pos` is the opening quote.
    #[error(
        "{file}:{pos}: unterminated string (end of file inside it), expected a closing {quote}"
    )]
    UnterminatedString { file: String, pos: Pos, quote: char },

    /// End of file inside a `/* */` comment; `pos` is the outermost `/*`.
    #[error("{file}:{pos}: unterminated comment (end of file inside it), expected '*/'")]
    UnterminatedComment { file: String, pos: Pos },

    /// A malformed number (`0x` without digits, `09`, overflow).
    #[error("{file}:{pos}: bad number '{text}', expected {expected}")]
    BadNumber {
        file: String,
        pos: Pos,
        text: String,
        expected: String,
    },

    /// A malformed IP address or netmask; `reason` already says what was expected.
    #[error("{file}:{pos}: bad IP address '{text}', {reason}")]
    BadIp {
        file: String,
        pos: Pos,
        text: String,
        reason: String,
    },

    /// A port outside 0..=65535.
    #[error("{file}:{pos}: bad port {value}, expected 0-65535 or '*'")]
    BadPort { file: String, pos: Pos, value: i64 },

    /// A construct that parses in some SER generation but that this
    /// implementation's syntax tree cannot carry (e.g. 2.x string assignment).
    #[error("{file}:{pos}: unsupported {what}, expected {expected}")]
    Unsupported {
        file: String,
        pos: Pos,
        what: String,
        expected: String,
    },
}

impl CfgError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            CfgError::Io { file, .. }
            | CfgError::Unexpected { file, .. }
            | CfgError::UnterminatedString { file, .. }
            | CfgError::UnterminatedComment { file, .. }
            | CfgError::BadNumber { file, .. }
            | CfgError::BadIp { file, .. }
            | CfgError::BadPort { file, .. }
            | CfgError::Unsupported { file, .. } => file,
        }
    }

    /// Line:column of the offending token (`None` for I/O errors).
    pub fn pos(&self) -> Option<Pos> {
        match self {
            CfgError::Io { .. } => None,
            CfgError::Unexpected { pos, .. }
            | CfgError::UnterminatedString { pos, .. }
            | CfgError::UnterminatedComment { pos, .. }
            | CfgError::BadNumber { pos, .. }
            | CfgError::BadIp { pos, .. }
            | CfgError::BadPort { pos, .. }
            | CfgError::Unsupported { pos, .. } => Some(*pos),
        }
    }
}
