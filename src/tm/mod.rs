//! tm — stateful SIP transactions (SER's transaction module).
//!
//! `fsm` is the sans-io machine; around it: cells in shared memory
//! (`cell`), matching (`key`), the table (`store`), the driver that carries
//! out the machine's actions (`driver`), relaying (`relay`), local replies
//! (`reply`), the script functions (`funcs`), callbacks and the UAC.
pub mod cell;
pub mod fsm;
pub mod key;
pub mod params;
pub mod store;
