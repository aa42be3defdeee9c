//! `register_tmcb`: other modules hear about transaction events.
//!
//! Callbacks are plain function pointers registered before the fork (every
//! process is a fork of the same binary, so they are valid everywhere).
//! They run in whichever process handles the event — a worker or the
//! timer process.

use std::sync::Mutex;

use crate::tm::cell::Cell;

/// Transaction events (SER's TMCB_* types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CbEvent {
    /// A new transaction was created for a request (TMCB_REQUEST_IN).
    RequestIn,
    /// A reply arrived on a branch (TMCB_RESPONSE_IN).
    ResponseIn,
    /// An end-to-end ACK for a proxied 2xx passed (TMCB_E2EACK_IN).
    E2eAckIn,
    /// A branch request went out (TMCB_REQUEST_FWDED).
    RequestFwded,
    /// A reply was relayed upstream (TMCB_RESPONSE_FWDED).
    ResponseFwded,
    /// The failure route is about to run (TMCB_ON_FAILURE).
    OnFailure,
    /// A reply built here went upstream (TMCB_RESPONSE_OUT).
    ResponseOut,
    /// The transaction's final outcome is known (TMCB_LOCAL_COMPLETED for
    /// local transactions, completion for proxied ones).
    Completed,
}

impl CbEvent {
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// What a callback learns.
pub struct CbParams<'a> {
    pub event: CbEvent,
    pub cell: &'a Cell,
    /// Status of the reply concerned (0 for requests).
    pub code: u16,
    /// The message that caused the event when it is not the cell's own
    /// request: the end-to-end ACK for `E2eAckIn` (acc's `report_ack`
    /// logs it). `None` when the firing site does not pass it.
    pub msg: Option<&'a [u8]>,
}

pub type TmCallback = fn(&CbParams<'_>);

static CALLBACKS: Mutex<Vec<(u32, TmCallback)>> = Mutex::new(Vec::new());

/// Register `f` for the events in `mask` (OR of [`CbEvent::bit`]). Before
/// the fork, from a module's `mod_init`.
pub fn register_tmcb(mask: u32, f: TmCallback) {
    if let Ok(mut v) = CALLBACKS.lock() {
        v.push((mask, f));
    }
}

pub fn fire(event: CbEvent, cell: &Cell, code: u16) {
    fire_msg(event, cell, code, None);
}

/// [`fire`] with the message that caused the event (see [`CbParams::msg`]).
pub fn fire_msg(event: CbEvent, cell: &Cell, code: u16, msg: Option<&[u8]>) {
    let Ok(v) = CALLBACKS.lock() else { return };
    if v.is_empty() {
        return;
    }
    let p = CbParams {
        event,
        cell,
        code,
        msg,
    };
    for (mask, f) in v.iter() {
        if mask & event.bit() != 0 {
            f(&p);
        }
    }
}

// --- UAC completion reports ------------------------------------------------
//
// A transaction our own UAC started (`t_uac`) reports its final status to
// the function registered for its kind, in whichever process completed it.

/// What a completion report learns.
#[derive(Debug, Clone)]
pub struct UacOutcome<'a> {
    pub code: u16,
    /// The parameter given to `t_uac`.
    pub param: &'a [u8],
    /// The final reply as received (our Via removed); empty for local ones.
    pub reply: &'a [u8],
}

pub type UacReport = fn(&UacOutcome<'_>);

static REPORTS: Mutex<Vec<(u32, UacReport)>> = Mutex::new(Vec::new());

/// Register the report for `kind` (non-zero). Before the fork.
pub fn register_report(kind: u32, f: UacReport) {
    if let Ok(mut v) = REPORTS.lock() {
        v.push((kind, f));
    }
}

/// Call the report of `kind`, if any.
pub fn report(kind: u32, outcome: &UacOutcome<'_>) {
    let f = REPORTS
        .lock()
        .ok()
        .and_then(|v| v.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f));
    if let Some(f) = f {
        f(outcome);
    }
}
