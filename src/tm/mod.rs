//! tm — stateful SIP transactions (SER's transaction module).
//!
//! `fsm` is the sans-io machine; around it: cells in shared memory, the
//! hash table and matching, the driver that carries out the machine's
//! actions, the script functions, callbacks and the UAC.
pub mod fsm;
