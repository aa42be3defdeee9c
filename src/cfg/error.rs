//! Config errors: syntax errors from the lexer/parser and the load-time
//! (semantic) errors the interpreter reports against the syntax tree.
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

    // ---- load-time errors raised by the interpreter against the tree ----
    /// A call names neither a core action nor a function of a loaded module.
    #[error("{file}:{pos}: unknown function '{name}', expected a core action or a function of a loaded module")]
    UnknownFunction {
        file: String,
        pos: Pos,
        name: String,
    },

    /// A function called with a number of arguments it does not take.
    #[error("{file}:{pos}: wrong number of arguments to '{name}': {found}, expected {expected}")]
    WrongArgCount {
        file: String,
        pos: Pos,
        name: String,
        expected: String,
        found: usize,
    },

    /// A function used in a route kind where it is not allowed.
    #[error("{file}:{pos}: '{name}' is not allowed in {route}, expected it only in {allowed}")]
    NotAllowedHere {
        file: String,
        pos: Pos,
        name: String,
        route: String,
        allowed: String,
    },

    /// A regular expression that does not compile.
    #[error("{file}:{pos}: bad regular expression \"{regex}\": {reason}, expected a POSIX extended regular expression")]
    BadRegex {
        file: String,
        pos: Pos,
        regex: String,
        reason: String,
    },

    /// `loadmodule` of a module that is not built in.
    #[error("{file}:{pos}: unknown module '{name}', expected one of: {supported}")]
    UnknownModule {
        file: String,
        pos: Pos,
        name: String,
        supported: String,
    },

    /// `modparam` naming a module that is not loaded (no regex match).
    #[error("{file}:{pos}: modparam for module '{module}' that is not loaded, expected a loadmodule before it")]
    ModuleNotLoaded {
        file: String,
        pos: Pos,
        module: String,
    },

    /// An unknown global parameter (`module` is `None`) or module parameter.
    #[error("{file}:{pos}: unknown parameter '{name}'{}, expected a known parameter name", module.as_ref().map(|m| format!(" of module '{m}'")).unwrap_or_default())]
    UnknownParam {
        file: String,
        pos: Pos,
        module: Option<String>,
        name: String,
    },

    /// A value of the wrong type or out of range for a parameter or argument.
    #[error("{file}:{pos}: bad value {found} for {what}, expected {expected}")]
    BadValue {
        file: String,
        pos: Pos,
        what: String,
        found: String,
        expected: String,
    },

    /// `route(N)` / `t_on_failure("N")` naming a block that is not defined.
    #[error("{file}:{pos}: route {route} is not defined, expected a {kind} block with that name")]
    UndefinedRoute {
        file: String,
        pos: Pos,
        route: String,
        kind: String,
    },

    /// The same route block defined twice where that is not allowed.
    #[error("{file}:{pos}: {kind}[{route}] defined twice, expected each block once")]
    DuplicateRoute {
        file: String,
        pos: Pos,
        route: String,
        kind: String,
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
            | CfgError::Unsupported { file, .. }
            | CfgError::UnknownFunction { file, .. }
            | CfgError::WrongArgCount { file, .. }
            | CfgError::NotAllowedHere { file, .. }
            | CfgError::BadRegex { file, .. }
            | CfgError::UnknownModule { file, .. }
            | CfgError::ModuleNotLoaded { file, .. }
            | CfgError::UnknownParam { file, .. }
            | CfgError::BadValue { file, .. }
            | CfgError::UndefinedRoute { file, .. }
            | CfgError::DuplicateRoute { file, .. } => file,
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
            | CfgError::Unsupported { pos, .. }
            | CfgError::UnknownFunction { pos, .. }
            | CfgError::WrongArgCount { pos, .. }
            | CfgError::NotAllowedHere { pos, .. }
            | CfgError::BadRegex { pos, .. }
            | CfgError::UnknownModule { pos, .. }
            | CfgError::ModuleNotLoaded { pos, .. }
            | CfgError::UnknownParam { pos, .. }
            | CfgError::BadValue { pos, .. }
            | CfgError::UndefinedRoute { pos, .. }
            | CfgError::DuplicateRoute { pos, .. } => Some(*pos),
        }
    }
}
