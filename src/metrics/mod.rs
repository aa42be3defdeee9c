//! The Prometheus endpoint (`metrics_listen=`): its own small process
//! answering `GET /metrics` with figures read from shared memory.
//!
//! `text` renders the exposition format, `http` parses a request head and
//! builds the answer (both sans-io), `collect` reads the figures, `serve`
//! is the process loop.
pub mod collect;
pub mod http;
mod serve;
pub mod text;

pub use serve::{serve, READ_BUDGET, WRITE_BUDGET};
