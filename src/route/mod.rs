//! The script engine: compiled routes, the per-message context, core
//! actions, stateless forwarding.
//!
//! `compile::load` turns a parsed [`crate::cfg::ast::Script`] into
//! [`runtime::Loaded`]; with the opened sockets that becomes the
//! [`runtime::Runtime`] every worker runs messages through.

pub mod avp_codec;
pub mod compile;
pub mod core_fns;
pub mod ctx;
pub mod export;
pub mod expr;
pub mod forward;
pub mod globals;
pub mod interp;
pub mod runtime;
pub mod uri_ops;

pub use compile::{load, LoadError, LoadErrorKind, ModuleCatalog};
pub use ctx::{Branch, MsgCtx, ScriptError};
pub use runtime::{Loaded, Routes, Runtime};
