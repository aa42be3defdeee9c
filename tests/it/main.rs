//! The black-box tests: one test binary (one compile of the shared
//! harness in `common/`), one module per suite. Each suite starts the real
//! `ser` on loopback ports of its own; suites that load the machine or
//! measure time hold `common::serial()`, which now spans every suite.
//!
//! Run one suite with `cargo test --release --test it tm::` (module path
//! as the filter), one test with its name.

mod common;

mod acc_avp;
mod acc_db;
mod auth;
mod classic;
mod ctl_fifo;
mod ctl_hostile;
mod ctl_privs;
mod ctl_twrite;
mod db;
mod dns;
mod exec;
mod foundation;
mod harness;
mod heartbeat;
mod hostile;
mod install;
mod jsonrpc;
mod logging;
mod metrics;
mod nathelper;
mod overload;
mod permissions;
mod registrar_limits;
mod respawn;
mod serctl;
mod sl_stats;
mod startup;
mod tcp;
mod tls;
mod tm;
mod tm_aggregate;
mod tm_blacklist;
mod tm_branch;
mod tm_cancel;
mod tm_checks;
mod tm_known_issues;
mod tm_routes;
mod tm_select;
mod tm_stats;
mod uri_pike;
mod usrloc_db;
mod xlog;
