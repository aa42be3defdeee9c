//! tm — stateful SIP transactions (SER's transaction module).
//!
//! `fsm` is the sans-io machine; around it: cells in shared memory
//! (`cell`), matching (`key`), our signed branch ids (`branch`), the
//! table (`store`), the driver that carries out the machine's actions
//! (`driver`), relaying from the script (`relay`), local replies
//! (`reply`), challenge aggregation (`challenge`), the script functions (`funcs`) and callbacks for other
//! modules (`callbacks`), the UAC (`uac`), the FIFO / unix socket
//! commands (`ctl_cmds`), hand-off to applications (`twrite`), the
//! INVITE's headers copied into local CANCELs and ACKs (`ac_hdrs`) and the
//! destination blacklist's feeding and consulting (`blst`).
pub mod ac_hdrs;
pub mod blst;
pub mod branch;
pub mod callbacks;
pub mod cell;
pub mod challenge;
#[cfg(test)]
mod challenge_tests;
pub mod ctl_cmds;
pub mod dialog;
#[cfg(test)]
mod doc_examples;
pub mod driver;
pub mod env;
pub mod failure;
pub mod fsm;
pub mod funcs;
pub mod hop;
pub mod key;
pub mod oom;
pub mod params;
pub mod relay;
pub mod reply;
pub mod stats;
pub mod store;
pub mod twrite;
pub mod uac;
#[cfg(test)]
mod uac_tests;
pub mod write_fns;
