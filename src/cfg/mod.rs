//! The ser.cfg language: lexer, parser and syntax tree.
pub mod ast;
