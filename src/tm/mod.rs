//! tm — stateful SIP transactions (SER's transaction module).
//!
//! `fsm` is the sans-io machine; around it: cells in shared memory
//! (`cell`), matching (`key`), the table (`store`), the driver that carries
//! out the machine's actions (`driver`), relaying from the script
//! (`relay`), local replies (`reply`), the script functions (`funcs`) and
//! callbacks for other modules (`callbacks`).
pub mod callbacks;
pub mod cell;
#[cfg(test)]
mod doc_examples;
pub mod driver;
pub mod fsm;
pub mod funcs;
pub mod key;
pub mod params;
pub mod relay;
pub mod reply;
pub mod store;
pub mod twrite;
pub mod uac;
#[cfg(test)]
mod uac_tests;
