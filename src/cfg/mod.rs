//! The ser.cfg language: lexer, parser and syntax tree.
//!
//! [`parse_str`] / [`parse_file`] turn a script into an [`ast::Script`] or
//! the first [`CfgError`], which prints as `<file>:<line>:<col>: …,
//! expected …`. Load-time errors (unknown function, bad regex …) are
//! `route::LoadError`, printed in the same `file:line:col:` form.
pub mod ast;
mod error;
mod expr;
pub mod lexer;
mod parser;
mod stmt;

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod lexer_tests;
#[cfg(test)]
mod parser_tests;

pub use error::CfgError;

/// Parses a whole script; `file` is only used in error messages.
pub fn parse_str(src: &str, file: &str) -> Result<ast::Script, CfgError> {
    parser::Parser::new(src, file).script()
}

/// Reads and parses a config file. The path as given names the file in
/// errors; invalid UTF-8 is replaced (U+FFFD), not refused.
pub fn parse_file(path: &std::path::Path) -> Result<ast::Script, CfgError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CfgError::Io {
        file: file.clone(),
        source,
    })?;
    // Old configs carry Latin-1 comments; don't refuse them for that.
    let src = String::from_utf8_lossy(&bytes);
    parse_str(&src, &file)
}
