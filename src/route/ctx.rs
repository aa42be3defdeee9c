//! The per-message state a script works on: the request, its rewritten
//! R-URI, the destination set, flags, pending edits.

use std::net::SocketAddr;

use crate::cfg::ast::RouteKind;
use crate::net::ListenSocket;
use crate::route::runtime::Runtime;
use crate::sip::{Lumps, Msg};

pub use crate::sip::MAX_BRANCHES;

/// One entry of the destination set (`append_branch`, `lookup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub uri: Vec<u8>,
    /// q-value × 1000, when given.
    pub q: Option<u16>,
    /// Next hop overriding the URI (a `dst_uri`), when known.
    pub dst_uri: Option<Vec<u8>>,
}

/// The internal error of the last failing action, which `sl_reply_error`
/// (and tm's error replies) turn into a status code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScriptError {
    #[default]
    None,
    /// −477: sending to the next hop failed.
    Send,
    /// −478: the destination could not be resolved.
    Resolve,
    /// −479: the URI could not be processed.
    Uri,
    /// −400: malformed request.
    BadRequest,
    /// −9: Via/From/To/Call-ID/CSeq incomplete.
    Tuple,
    /// −13: bad To header.
    BadTo,
    /// −12: more than MAX_BRANCHES.
    Branches,
    /// −11: external logic (exec) failed.
    Exec,
    /// −2: shared memory is full. Answered as overload (503 with
    /// `Retry-After`): the caller may try again once calls have ended.
    OutOfMemory,
    /// −1 and anything else.
    Server,
}

/// The `Retry-After` of every overload answer (admission control and a
/// full shared memory), ready to send: the refusal path must stay cheap
/// when it runs most. Seconds: long enough for a burst to pass.
pub const RETRY_AFTER: &[u8] = b"Retry-After: 5\r\n";

impl ScriptError {
    /// SER's internal code (negative), as returned by the failing action.
    pub fn code(self) -> i32 {
        match self {
            ScriptError::None => -1,
            ScriptError::Send => -477,
            ScriptError::Resolve => -478,
            ScriptError::Uri => -479,
            ScriptError::BadRequest => -400,
            ScriptError::Tuple => -9,
            ScriptError::BadTo => -13,
            ScriptError::Branches => -12,
            ScriptError::Exec => -11,
            ScriptError::OutOfMemory => -2,
            ScriptError::Server => -1,
        }
    }

    /// Status code and reason text of the error reply (without the
    /// `(<code>/<tag>)` suffix the caller adds).
    pub fn reply(self) -> (u16, &'static str) {
        match self {
            ScriptError::Send => (477, "Unfortunately error on sending to next hop occurred"),
            ScriptError::Resolve => (478, "Unresolvable destination"),
            ScriptError::Uri => (479, "Regretfully, we were not able to process the URI"),
            ScriptError::BadRequest => (400, "Bad Request"),
            ScriptError::Tuple => (400, "Transaction tuple incomplete"),
            ScriptError::BadTo => (400, "Bad To"),
            ScriptError::Branches => (500, "Forking capacity exceeded"),
            ScriptError::Exec => (500, "Error in external logic"),
            ScriptError::OutOfMemory => (503, "Service Unavailable"),
            ScriptError::None | ScriptError::Server => {
                (500, "I'm terribly sorry, server error occurred")
            }
        }
    }

    /// Header lines the error reply carries besides the usual ones.
    pub fn reply_headers(self) -> &'static [u8] {
        match self {
            ScriptError::OutOfMemory => RETRY_AFTER,
            _ => b"",
        }
    }

    /// The reason phrase SER sends: `<text> (<abs code>/<tag>)`.
    pub fn reason_with_tag(self, tag: &str) -> String {
        let (_, text) = self.reply();
        format!("{} ({}/{})", text, self.code().unsigned_abs(), tag)
    }
}

/// An AVP name: SER's `i:N` or `s:name` (a bare name is a string name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvpName {
    Int(u32),
    Str(Vec<u8>),
}

impl AvpName {
    /// Parse `i:12`, `s:name` or `name`.
    pub fn parse(spec: &str) -> AvpName {
        let spec = spec.trim();
        if let Some(n) = spec.strip_prefix("i:").and_then(|n| n.parse().ok()) {
            return AvpName::Int(n);
        }
        AvpName::Str(spec.strip_prefix("s:").unwrap_or(spec).as_bytes().to_vec())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvpValue {
    Int(i64),
    Str(Vec<u8>),
}

impl AvpValue {
    /// The value as a number (a string holding digits counts).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            AvpValue::Int(n) => Some(*n),
            AvpValue::Str(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
        }
    }
}

/// tm's per-message state. Plain data: the route layer carries it, tm
/// gives it meaning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TmCtx {
    /// Offset of the current transaction's cell (0 = none).
    pub cell: u32,
    /// True when this message processing owns a reference to `cell`
    /// (released after the script).
    pub owns_ref: bool,
    /// Routes armed before the transaction exists (index + 1, 0 = none).
    pub on_failure: u16,
    pub on_reply: u16,
    pub on_branch: u16,
    /// Running inside a failure route of `cell`.
    pub in_failure: bool,
    /// Branches added / a reply sent during this processing.
    pub branches_added: u8,
    pub replied: bool,
    /// The status `t_check_status` tests in a failure route.
    pub reply_code: u16,
    /// The branch whose failure the failure route handles (the picked one).
    pub picked: u8,
    /// `t_set_fr`/`t_set_retr` before the transaction has branches.
    pub timers: TmTimers,
    /// `t_set_auto_inv_100`: None = the module parameter decides.
    pub auto_inv_100: Option<bool>,
    /// `t_save_lumps` kept the edits so far for failure-route branches:
    /// the first relay must not replace them with later ones.
    pub lumps_saved: bool,
}

/// Timer values (ms) the script asked for; 0 = leave as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TmTimers {
    pub fr: u32,
    pub fr_inv: u32,
    pub t1: u32,
    pub t2: u32,
    /// Maximum lifetimes of an INVITE / other transaction.
    pub life_inv: u32,
    pub life_noninv: u32,
}

/// A Record-Route entry for our receiving socket (rr's `record_route`),
/// kept so the request can carry two when it leaves from another socket:
/// SER's `enable_double_rr`, needed when the transport changes, so that
/// each side's in-dialog requests reach us on the socket facing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRr {
    /// The inserted line.
    pub lump: crate::sip::LumpId,
    /// What follows the target in the URI (`;ftag=…;lr`).
    pub params: Vec<u8>,
}

/// One complete header line: `Record-Route: <sip:TARGET PARAMS>` + CRLF,
/// `target` what follows `sip:`, `params` the URI parameters after it.
pub fn record_route_line(target: &[u8], params: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + target.len() + params.len());
    out.extend_from_slice(b"Record-Route: <sip:");
    out.extend_from_slice(target);
    out.extend_from_slice(params);
    out.extend_from_slice(b">\r\n");
    out
}

impl SocketRr {
    /// The one line for `target`, or the two (outbound first, both
    /// marked `r2` so `loose_route` takes them as a pair) when the request
    /// leaves from `out` rather than the receiving socket `rcv`.
    pub fn lines(&self, rcv: &str, out: Option<&str>) -> Vec<u8> {
        let one = |t: &str, r2: bool| {
            let mut target = t.as_bytes().to_vec();
            if r2 {
                target.extend_from_slice(b";r2=on");
            }
            record_route_line(&target, &self.params)
        };
        match out {
            Some(o) if o != rcv => {
                let mut l = one(o, true);
                l.extend(one(rcv, true));
                l
            }
            _ => one(rcv, false),
        }
    }
}

/// What rr already did to this request: its functions must act once per
/// request however often a script calls them (a second Record-Route
/// would be a duplicate, a second Route removal a conflicting edit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RrState {
    pub recorded: bool,
    /// The answer of the first `loose_route()`, repeated by later calls.
    pub loose_route: Option<i32>,
}

/// What auth learned about the request, for the functions after it: a
/// stale nonce (the challenge says `stale=true`) and the credentials
/// that authorized it (`consume_credentials` removes them).
#[derive(Debug, Clone, Default)]
pub struct AuthState {
    pub stale: bool,
    pub used: Option<crate::sip::Span>,
    /// `consume_credentials()` removed them (once).
    pub consumed: bool,
    /// The authorized subscriber's Remote-Party-ID (auth_db's
    /// `rpid_column`), for `append_rpid_hf` and `is_rpid_user_e164`.
    pub rpid: Option<String>,
}

/// What nathelper changed that later functions must see: SER 0.9 pointed
/// the parsed Contact at the rewritten text, so `save()` stored it, and
/// kept one Content-Length for all body edits.
#[derive(Debug, Default)]
pub struct NatEdits {
    /// The first Contact's URI (its span in the message) and the text
    /// `fix_nated_contact` put in its place.
    pub contact: Option<(crate::sip::Span, Vec<u8>)>,
    /// The lump holding the new Content-Length value, and how many bytes
    /// the body grew by (negative: shrank) so far.
    pub clen: Option<(crate::sip::LumpId, i64)>,
}

pub struct MsgCtx<'a> {
    pub rt: &'a Runtime,
    pub msg: &'a Msg,
    /// Where the message came from.
    pub src: SocketAddr,
    /// The socket it arrived on.
    pub rcv: &'a ListenSocket,
    /// Which kind of route is running (decides e.g. what `status` means).
    pub kind: RouteKind,
    /// Rewritten Request-URI; `None` = the original.
    pub new_uri: Option<Vec<u8>>,
    /// Next hop overriding the R-URI (set by `lookup` for NATed contacts).
    pub dst_uri: Option<Vec<u8>>,
    pub dset: Vec<Branch>,
    /// Message flags 0..31 (`setflag`).
    pub flags: u32,
    /// Edits to apply when the request is forwarded.
    pub lumps: Lumps,
    /// Header lines to add to replies this server builds (`append_to_reply`).
    pub reply_hdrs: Vec<u8>,
    /// Act as if the top Via carried `rport` (`force_rport`).
    pub force_rport: bool,
    pub last_error: ScriptError,
    /// Outgoing socket chosen by `force_send_socket`, index into the table.
    pub send_sock: Option<usize>,
    /// Per-message overrides of the address/port we advertise in Via
    /// (`set_advertised_address`, `set_advertised_port`).
    pub adv_addr: Option<String>,
    pub adv_port: Option<u16>,
    /// Nesting of `route(N)` calls, to stop runaway recursion.
    pub depth: u32,
    pub tm: TmCtx,
    /// Attribute-value pairs of this request (avpops writes them; tm
    /// reads `fr_timer_avp`/`fr_inv_timer_avp`). Newest last.
    pub avps: Vec<(AvpName, AvpValue)>,
    pub rr: RrState,
    pub auth: AuthState,
    /// rr's Record-Route naming the receiving socket, to be doubled when
    /// the request leaves from another socket (a transport change).
    pub socket_rr: Option<SocketRr>,
    /// This process's number for the message (SER's `msg->id`, xlog's
    /// `%mi`): counts the messages a process has run a script for.
    pub msg_no: u64,
    pub nat: NatEdits,
}

/// Source of [`MsgCtx::msg_no`]: per process, as SER's counter was (each
/// child counts from where the supervisor left it at the fork).
static MSG_NO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl<'a> MsgCtx<'a> {
    /// Whether our edit of the sender's Via adds `received`/`rport` as
    /// `force_rport()` does: asked by the script, or always for a request
    /// that came over TCP/TLS, so that its replies, routed by that Via,
    /// find the connection by its remote address (SER's TCP aliasing).
    pub fn marks_rport(&self) -> bool {
        self.force_rport || self.rcv.proto().is_stream()
    }

    pub fn new(
        rt: &'a Runtime,
        msg: &'a Msg,
        src: SocketAddr,
        rcv: &'a ListenSocket,
        kind: RouteKind,
    ) -> Self {
        MsgCtx {
            rt,
            msg,
            src,
            rcv,
            kind,
            new_uri: None,
            dst_uri: None,
            dset: Vec::new(),
            flags: 0,
            lumps: Lumps::default(),
            reply_hdrs: Vec::new(),
            force_rport: false,
            last_error: ScriptError::None,
            send_sock: None,
            adv_addr: None,
            adv_port: None,
            depth: 0,
            tm: TmCtx::default(),
            avps: Vec::new(),
            rr: RrState::default(),
            auth: AuthState::default(),
            socket_rr: None,
            msg_no: MSG_NO.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            nat: NatEdits::default(),
        }
    }

    /// The current Request-URI: rewritten or original.
    pub fn ruri(&self) -> &[u8] {
        match &self.new_uri {
            Some(u) => u,
            None => self.msg.ruri(),
        }
    }

    /// Record an action's failure for `sl_reply_error` and return its code.
    pub fn fail(&mut self, e: ScriptError) -> i32 {
        self.last_error = e;
        e.code()
    }

    /// `Contact:` line of a 3xx built here (sl and tm alike): the rewritten
    /// R-URI, then the destination set with q-values. Empty when both are.
    pub fn redirect_contacts(&self) -> Vec<u8> {
        let mut items: Vec<String> = Vec::new();
        if let Some(u) = &self.new_uri {
            items.push(format!("<{}>", String::from_utf8_lossy(u)));
        }
        for b in &self.dset {
            let u = String::from_utf8_lossy(&b.uri);
            items.push(match b.q {
                Some(q) => format!("<{u}>;q={}.{:03}", q / 1000, q % 1000),
                None => format!("<{u}>"),
            });
        }
        if items.is_empty() {
            return Vec::new();
        }
        format!("Contact: {}\r\n", items.join(", ")).into_bytes()
    }

    /// The newest value of AVP `name`.
    pub fn avp(&self, name: &AvpName) -> Option<&AvpValue> {
        self.avps
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    pub fn flag_set(&self, n: u32) -> bool {
        n < 32 && self.flags & (1 << n) != 0
    }
}
