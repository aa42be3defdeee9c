//! The transaction state machine of a stateful proxy, sans-io.
//!
//! One [`Tx`] is the whole state of a SER transaction ("cell"): the server
//! side (the request we received, RFC 3261 §17.2) and up to
//! [`MAX_BRANCHES`] client branches (§17.1), plus reply selection (§16.7).
//! It never sends, never reads a clock and never touches shared memory: the
//! driver (`tm::driver`) locks the cell, calls one `on_*` method with the
//! current time, then carries out the [`Action`]s pushed into the buffer,
//! and finally re-arms the cell's single timer at [`Tx::next_deadline`].
//!
//! `Tx` is plain data (declared with `shm_struct!` so the driver can keep it
//! inside the shared cell, under the cell's reply lock); the zero value is
//! an unused slot.
//!
//! Timing: all times are absolute milliseconds (`now`), all durations come
//! from [`TimerCfg`].

mod client;
#[doc(hidden)]
pub mod explore;
mod select;
mod server;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_cancel;
#[cfg(test)]
mod sim_failover;
#[cfg(test)]
mod sim_fork;
#[cfg(test)]
mod sim_lifetime;
#[cfg(test)]
mod sim_quarantine;
#[cfg(test)]
mod sim_random;
#[cfg(test)]
mod sim_unanswered;
mod timers;

pub use select::{best_final, class_rank};

pub use crate::sip::MAX_BRANCHES;

/// Timer settings in milliseconds (converted from SER's params by the tm
/// module: 0.9 seconds or 2.x ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerCfg {
    /// Request (and CANCEL, and UAS final) retransmission intervals: the
    /// first three steps, then `t2` forever. 2.x default 500/1000/2000
    /// (T1 doubling), 0.9 `retr_timer1p1..p3`.
    pub retr: [u32; 3],
    /// T2: the cap of the retransmission interval (default 4000).
    pub t2: u32,
    /// `fr_timer`: final response timeout of a branch (default 30000).
    pub fr: u32,
    /// `fr_inv_timer`: INVITE branch timeout after a provisional (120000).
    pub fr_inv: u32,
    /// `wt_timer`: how long a completed transaction absorbs retransmissions (5000).
    pub wt: u32,
    /// `delete_timer`: retry interval for freeing a still-referenced cell (200).
    pub delete: u32,
    /// `noisy_ctimer`: an FR expiry on an INVITE that got a provisional
    /// answers 408 upstream even when nothing else needs it.
    pub noisy_ctimer: bool,
    /// `restart_fr_on_each_reply`: every INVITE provisional restarts FR_INV.
    pub restart_fr_on_each_reply: bool,
    /// `cancel_b_method`: how a branch with no reply yet is cancelled.
    pub cancel_b_method: UnrepliedCancel,
    /// `max_inv_lifetime` / `max_noninv_lifetime` (later 2.x releases):
    /// the longest an INVITE / other transaction waits for its final
    /// reply, counted from its first branch, whatever its FR timers say;
    /// 0 = no limit (SER 0.9 and 2.1 had none, so none by default).
    pub max_inv_lifetime: u32,
    pub max_noninv_lifetime: u32,
}

/// SER 2.1's `cancel_b_method`: what cancelling a branch that has had no
/// reply (nothing >= 100) does. RFC 3261 §9.1 forbids a CANCEL before a
/// provisional, and the callee may be unreachable, so there is a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnrepliedCancel {
    /// 0: stop its retransmissions and end it at once with a 487 made
    /// here; nothing is sent (a 2xx may still arrive later and is relayed).
    #[default]
    Fake487 = 0,
    /// 1: keep retransmitting; the CANCEL goes out on its first
    /// provisional (RFC 3261 §9.1). Its FR expiry then ends it.
    OnProvisional = 1,
    /// 2: send (and retransmit) the CANCEL at once, stop the request's
    /// retransmissions; the callee's 487 or the FR expiry ends it.
    Immediate = 2,
}

impl UnrepliedCancel {
    /// The method for `cancel_b_method`'s integer value.
    pub fn from_int(n: i64) -> Option<UnrepliedCancel> {
        match n {
            0 => Some(UnrepliedCancel::Fake487),
            1 => Some(UnrepliedCancel::OnProvisional),
            2 => Some(UnrepliedCancel::Immediate),
            _ => None,
        }
    }
}

impl Default for TimerCfg {
    fn default() -> Self {
        TimerCfg {
            retr: [500, 1000, 2000],
            t2: 4000,
            fr: 30_000,
            fr_inv: 120_000,
            wt: 5000,
            delete: 200,
            noisy_ctimer: false,
            restart_fr_on_each_reply: true,
            cancel_b_method: UnrepliedCancel::Fake487,
            max_inv_lifetime: 0,
            max_noninv_lifetime: 0,
        }
    }
}

/// Per-transaction timer overrides (`fr_timer_avp`, `t_set_fr`,
/// `t_set_retr`), in milliseconds; 0 = the config's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxTimers {
    pub fr: u32,
    pub fr_inv: u32,
    /// T1: the first retransmission interval, doubling up to T2.
    pub t1: u32,
    pub t2: u32,
    /// The transaction's maximum lifetime (`t_set_max_lifetime`).
    pub life: u32,
}

/// Where the transaction stands, seen from upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Slot unused (zeroed memory).
    Unused = 0,
    /// No final reply sent upstream yet.
    Proceeding = 1,
    /// A negative final (INVITE) or locally generated 2xx was sent upstream
    /// and is being retransmitted until the ACK (UDP) — RFC 17.2.1 Completed.
    Completed = 2,
    /// Final sent and settled; absorbing retransmissions until `wt` passes.
    Wait = 3,
    /// Done: the driver may unlink and free the cell.
    Terminated = 4,
}

/// State of one client branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BranchPhase {
    Unused = 0,
    /// Request sent, nothing received (RFC Calling / Trying).
    Calling = 1,
    /// A provisional received.
    Proceeding = 2,
    /// A final reply received (or a local 408 on FR expiry).
    Final = 3,
}

/// Bits of [`Tx::flags`].
pub mod flags {
    /// The request is an INVITE.
    pub const INVITE: u32 = 1 << 0;
    /// Started by our own UAC (`t_uac`): no upstream; finals go to callbacks.
    pub const LOCAL: u32 = 1 << 1;
    /// Upstream is reliable (TCP): no retransmission of our replies.
    pub const UAS_RELIABLE: u32 = 1 << 2;
    /// A failure route (or ON_FAILURE callback) is armed.
    pub const FAILURE_ROUTE: u32 = 1 << 3;
    /// The caller CANCELed.
    pub const CANCELED: u32 = 1 << 4;
    /// FR expiry must answer 408 even if it could be silent (AVP timer set).
    pub const NOISY_FORCED: u32 = 1 << 5;
    /// `t_replicate`: replies are not relayed upstream, no error replies.
    pub const NO_RELAY: u32 = 1 << 6;
    /// The failure route is running; no new pick until `after_failure`.
    pub const IN_FAILURE: u32 = 1 << 7;
    /// rr's Record-Route in the kept request is doubled when a branch
    /// leaves from another socket (`enable_double_rr`): failure-route
    /// branches redo it.
    pub const SOCKET_RR: u32 = 1 << 8;
    /// A branch is failing over to its next DNS address
    /// ([`super::Action::Failover`]); no pick until `failover_done`.
    pub const FAILOVER: u32 = 1 << 9;
}

/// Bits of [`Branch::flags`].
pub mod bflags {
    /// Sent over a reliable transport: no request retransmission.
    pub const RELIABLE: u8 = 1 << 0;
    /// A CANCEL was sent on this branch and is being retransmitted.
    pub const CANCEL_SENT: u8 = 1 << 1;
    /// CANCEL wanted but no provisional yet: send it when one arrives (RFC 3261 §9.1).
    pub const CANCEL_PENDING: u8 = 1 << 2;
    /// The CANCEL got a reply (or timed out): stop retransmitting it.
    pub const CANCEL_DONE: u8 = 1 << 3;
    /// No request was sent (t_write_req's waiting branch): no retransmission.
    pub const BLIND: u8 = 1 << 4;
    /// The final on this branch was generated locally (FR 408): the
    /// branch timed out (`t_branch_timeout`).
    pub const LOCAL_FINAL: u8 = 1 << 5;
    /// At least one reply arrived on this branch.
    pub const REPLIED: u8 = 1 << 6;
    /// A reply arrived before the latest one received on this branch (so a
    /// failure route can tell "replied in the past" from "the reply that
    /// failed it", `t_branch_replied`).
    pub const PAST_REPLY: u8 = 1 << 7;
}

shm::shm_struct! {
    /// One client branch.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Branch {
        /// [`BranchPhase`] as u8.
        pub phase: u8,
        /// [`bflags`].
        pub flags: u8,
        /// Highest status received so far (0 = none); the final's code once final.
        pub status: u16,
        /// Current request retransmission step (index into the schedule).
        pub retr_step: u8,
        pub cancel_step: u8,
        /// Its reply was dropped by `t_drop_replies`: not picked while a
        /// branch that was not dropped has a final.
        pub dropped: u8,
        /// 1: the next hop was a name with more addresses than the one
        /// this branch went to (`use_dns_failover`): a 503 or a timeout
        /// here tries the next address before the pick.
        pub more: u8,
        /// Next request retransmission, 0 = none.
        pub retr_at: u64,
        /// FR expiry of the branch, 0 = none.
        pub fr_at: u64,
        /// Next CANCEL retransmission, 0 = none.
        pub cancel_retr_at: u64,
        /// When the CANCEL gives up, 0 = none.
        pub cancel_fr_at: u64,
    }
}

shm::shm_struct! {
    /// The whole state of one transaction.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Tx {
        /// [`Phase`] as u8.
        pub phase: u8,
        /// Number of branches created so far.
        pub nbranches: u8,
        /// Branch whose reply was sent upstream as the final (or picked for
        /// the failure route); 0xff = none / local reply.
        pub picked: u8,
        pub uas_retr_step: u8,
        /// [`flags`].
        pub flags: u32,
        /// Status of the last reply sent upstream (0 = none yet).
        pub uas_status: u16,
        /// First branch of the forking round in progress, and of the one
        /// a running failure route handles (`t_drop_replies("l")`).
        pub round_start: u8,
        pub failed_round: u8,
        pub _pad: [u8; 4],
        /// Next retransmission of our final reply upstream, 0 = none.
        pub uas_retr_at: u64,
        /// When retransmitting our final gives up (timer H), 0 = none.
        pub uas_giveup_at: u64,
        /// When the wait phase ends, 0 = not waiting.
        pub wait_until: u64,
        /// Per-transaction FR overrides (0 = the config's).
        pub fr_override: u32,
        pub fr_inv_override: u32,
        /// Per-transaction T1/T2 overrides (`t_set_retr`, 0 = the config's).
        pub t1_override: u32,
        pub t2_override: u32,
        /// Per-transaction maximum lifetime (`t_set_max_lifetime`, 0 = the
        /// config's).
        pub life_override: u32,
        pub _pad2: [u8; 4],
        /// When the first branch was added: the start of the maximum
        /// lifetime (meaningless while there is no branch).
        pub born: u64,
        pub branches: [Branch; MAX_BRANCHES],
    }
}

/// What the driver must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send branch `b`'s request buffer again.
    RetransmitRequest(u8),
    /// Build (first time) and send a CANCEL on branch `b`.
    SendCancel(u8),
    /// Send branch `b`'s CANCEL again.
    RetransmitCancel(u8),
    /// Build and send the hop-by-hop ACK for branch `b`'s negative final
    /// (every time one arrives, retransmissions included).
    SendAck(u8),
    /// Keep the reply just received on branch `b` as that branch's final
    /// (it may be picked later).
    StoreReply(u8),
    /// Branch `b` ended here: store a locally generated reply `code` as
    /// its final (408 on FR expiry, 487 when it was cancelled).
    StoreLocalReply { branch: u8, code: u16 },
    /// Branch `b`'s FR timer expired and nothing at all came back on it,
    /// not even a 100: its next hop may be down (SER 2.1 blacklists it,
    /// `blst_methods_add`). Comes before the branch's local 408.
    Unanswered(u8),
    /// Run the armed `onreply_route` for the reply just received on `b`.
    RunOnReply(u8),
    /// Relay the reply just received on branch `b` upstream now
    /// (provisionals and 2xx).
    RelayReceived(u8),
    /// Relay branch `b`'s stored final upstream (the picked best final);
    /// `as_code` is the status to send when it differs (503 → 500).
    RelayStored { branch: u8, as_code: u16 },
    /// All branches are final, none 2xx, and a failure route is armed: run
    /// it with `picked` as the reply `t_check_status` sees. The driver
    /// reports back with [`Tx::after_failure`].
    RunFailure { picked: u8 },
    /// Every branch is final and the picked one, branch `b`, ended in a
    /// 503 or a timeout with more DNS addresses left (`use_dns_failover`):
    /// send its request to the next address as a new branch. The driver
    /// reports back with [`Tx::failover_done`] when it could not.
    Failover(u8),
    /// Send our last reply upstream again (retransmitted request, or UAS
    /// retransmission timer).
    ResendUasReply,
    /// A final reply went upstream (or a local UAC transaction got its
    /// final): run completion callbacks (acc, FIFO reports).
    Completed { code: u16 },
    /// The transaction is over: unlink and free when unreferenced.
    Terminate,
}

/// Bounded action buffer (no allocation): the most any single event can
/// produce is a few actions per branch.
#[derive(Debug, Default)]
pub struct Actions {
    buf: Vec<Action>,
}

impl Actions {
    pub fn new() -> Self {
        Actions {
            buf: Vec::with_capacity(4 * MAX_BRANCHES),
        }
    }
    pub fn push(&mut self, a: Action) {
        self.buf.push(a);
    }
    pub fn as_slice(&self) -> &[Action] {
        &self.buf
    }
    pub fn clear(&mut self) {
        self.buf.clear();
    }
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.buf.drain(..)
    }
}

/// Why a branch could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("more than {MAX_BRANCHES} branches")]
    TooManyBranches,
    #[error("a final reply was already sent upstream")]
    AlreadyFinal,
}

/// What kind of request a lookup found the transaction for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetransmissionVerdict {
    /// Resend our last reply (the action is pushed).
    Resent,
    /// Nothing sent upstream yet: absorb silently.
    Absorbed,
}

// Method signatures (bodies live in server.rs / client.rs / select.rs):
//
// impl Tx {
//     /// A new transaction for a request received now.
//     pub fn new(invite: bool, local: bool, uas_reliable: bool) -> Tx;
//     pub fn phase(&self) -> Phase;
//     pub fn is_invite(&self) -> bool;
//     /// Add a client branch whose request is being sent now; arms its
//     /// retransmission (unless reliable/blind) and FR timer.
//     pub fn add_branch(&mut self, now: u64, cfg: &TimerCfg, reliable: bool, blind: bool) -> Result<u8, TxError>;
//     /// A reply with status `code` arrived on branch `b`.
//     pub fn on_reply(&mut self, b: u8, code: u16, now: u64, cfg: &TimerCfg, out: &mut Actions);
//     /// A reply to our CANCEL on branch `b` arrived.
//     pub fn on_cancel_reply(&mut self, b: u8, now: u64);
//     /// Timers: everything due at `now`.
//     pub fn on_timer(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions);
//     /// We are sending reply `code` upstream ourselves (t_reply, 100 Trying,
//     /// error replies, the failure route's t_reply).
//     pub fn on_local_reply(&mut self, code: u16, now: u64, cfg: &TimerCfg, out: &mut Actions);
//     /// The request was retransmitted by upstream.
//     pub fn on_request_retransmission(&self, out: &mut Actions) -> RetransmissionVerdict;
//     /// A hop-by-hop ACK for our negative final (or local 2xx) arrived.
//     pub fn on_ack(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions);
//     /// Upstream CANCELed: which branches to cancel (pushes SendCancel).
//     /// Returns how many CANCELs go out now.
//     pub fn on_cancel(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions) -> usize;
//     /// The failure route finished: `added` branches were added (serial
//     /// fork: keep waiting) or `replied` (t_reply: done), else relay the pick.
//     pub fn after_failure(&mut self, added: bool, replied: bool, now: u64, cfg: &TimerCfg, out: &mut Actions);
//     /// Release (t_release) / nothing forwarded or replied: go to wait.
//     pub fn release(&mut self, now: u64, cfg: &TimerCfg, out: &mut Actions);
//     /// The earliest pending deadline, if any.
//     pub fn next_deadline(&self) -> Option<u64>;
// }
