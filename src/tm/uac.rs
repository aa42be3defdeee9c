//! tm's UAC: start a transaction from nothing (`t_uac`), as the FIFO's
//! `t_uac_from` and modules do. The transaction is LOCAL: nothing is
//! relayed upstream; its retransmissions and FR timeout run like any
//! branch, and when its final reply is known the report registered for
//! its kind is called with the status and the caller's parameter (a FIFO
//! reply file name, say) — in whichever process completed it.

use crate::fwd::destination_of;
use crate::sip::{push_via, Msg};
use crate::tm::cell::{replace_bytes, store_bytes, CellRef, Peer};
use crate::tm::driver::{self, finish, rearm, Deferred};
use crate::tm::env::{env, now};
use crate::tm::key::MatchOpts;
use crate::tm::store::{self, branch_id, Created};
use crate::util::hash::hex128;

/// A request to send.
#[derive(Debug, Clone, Default)]
pub struct UacRequest<'a> {
    pub method: &'a str,
    pub ruri: &'a str,
    /// `From` value; a tag is added when it has none.
    pub from: &'a str,
    pub to: &'a str,
    /// Next hop URI; the R-URI when absent.
    pub next_hop: Option<&'a str>,
    /// Extra header lines, each CRLF-terminated.
    pub headers: &'a str,
    pub body: &'a [u8],
    pub call_id: Option<&'a str>,
    pub cseq: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UacError {
    #[error("tm is not loaded")]
    NoTm,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("next hop unresolvable or not UDP")]
    Destination,
    #[error("no socket to send from")]
    NoSocket,
    #[error("out of shared memory")]
    NoMemory,
    #[error("sending failed")]
    Send,
}

/// The id of the started transaction (what `t_reply`-style commands use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UacStarted {
    pub hash: u32,
    pub label: u32,
}

fn render(r: &UacRequest<'_>, via: &[u8], call_id: &str, from_tag: &str, cseq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + r.body.len() + r.headers.len());
    out.extend_from_slice(format!("{} {} SIP/2.0\r\n", r.method, r.ruri).as_bytes());
    out.extend_from_slice(via);
    let from = if r.from.contains(";tag=") {
        r.from.to_string()
    } else {
        format!("{};tag={from_tag}", r.from)
    };
    out.extend_from_slice(
        format!(
            "From: {from}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {}\r\nMax-Forwards: 70\r\n",
            r.to, r.method
        )
        .as_bytes(),
    );
    out.extend_from_slice(r.headers.as_bytes());
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", r.body.len()).as_bytes());
    out.extend_from_slice(r.body);
    out
}

/// The socket a UAC request to `hop` (a URI) leaves from.
pub fn outgoing_socket(hop: &str) -> Option<&'static crate::net::ListenSocket> {
    let env = env()?;
    let (addr, proto) = destination_of(hop.as_bytes(), None).ok()?;
    env.rt.sockets.for_dest(proto, &addr)
}

/// Start a local transaction; `report_kind`/`param` say who hears its end.
pub fn t_uac(r: &UacRequest<'_>, report_kind: u32, param: &[u8]) -> Result<UacStarted, UacError> {
    let env = env().ok_or(UacError::NoTm)?;
    if r.method.is_empty()
        || r.method.eq_ignore_ascii_case("ACK")
        || r.method.eq_ignore_ascii_case("CANCEL")
    {
        return Err(UacError::BadRequest("method"));
    }
    let hop = r.next_hop.unwrap_or(r.ruri);
    let (addr, proto) = destination_of(hop.as_bytes(), None).map_err(|_| UacError::Destination)?;
    // Over TCP/TLS when the next hop says so and we serve that transport.
    let sock = env
        .rt
        .sockets
        .for_dest(proto, &addr)
        .ok_or(UacError::NoSocket)?;
    let sock_idx = env.rt.sockets.index_of(sock);
    // Unique per request even for many in the same millisecond: pid,
    // time and a per-process sequence number.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{}.{}.{seq}.{:?}", std::process::id(), now(), r.ruri);
    let call_id = r
        .call_id
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}@{}", &hex128(&[seed.as_bytes()])[..16], addr.ip()));
    let from_tag = hex128(&[b"from", seed.as_bytes()])[..12].to_string();
    let cseq = r.cseq.unwrap_or(10);
    let host = sock.host_text();
    let port = sock.listen.addr.port();
    // The clone carries a provisional Via; the branch id needs the cell's
    // label, so the bytes sent are rendered again below.
    let mut via = Vec::new();
    push_via(
        &mut via,
        proto.via_name(),
        &host,
        port,
        format!("z9hG4bKuac{}", &from_tag).as_bytes(),
        b"",
    );
    let clone = render(r, &via, &call_id, &from_tag, cseq);
    let msg = Msg::parse(clone).map_err(|_| UacError::BadRequest("does not parse"))?;
    msg.validate()
        .map_err(|_| UacError::BadRequest("does not validate"))?;
    let o = MatchOpts {
        ruri_matching: env.params.ruri_matching,
        via1_matching: env.params.via1_matching,
    };
    let cref: CellRef =
        match store::create(&msg, Peer::new(sock.listen.addr, sock_idx), true, false, o) {
            Ok(Created::New(c)) => c,
            Ok(Created::Existing(..)) => return Err(UacError::BadRequest("duplicate transaction")),
            Err(_) => return Err(UacError::NoMemory),
        };
    let cell = cref.cell();
    let label = cell.label.load(std::sync::atomic::Ordering::Relaxed);
    let mut via = Vec::new();
    push_via(
        &mut via,
        proto.via_name(),
        &host,
        port,
        branch_id(cell.hash, label, 0).as_bytes(),
        b"",
    );
    let bytes = render(r, &via, &call_id, &from_tag, cseq);
    let mut def = Deferred::default();
    let result = {
        let mut st = cell.lock();
        st.uac_cb = report_kind;
        let stored = store_bytes(env.region, param)
            .and_then(|p| {
                st.uac_param = p;
                replace_bytes(env.region, &mut st.br[0].request, &bytes)
            })
            .map_err(|_| UacError::NoMemory);
        let r = stored.and_then(|()| {
            st.br[0].dst = Peer::new(addr, sock_idx);
            st.tx
                .add_branch(now(), &env.params.timers, proto.is_stream(), false)
                .map_err(|_| UacError::BadRequest("branch"))?;
            sock.send(&bytes, addr, None).map_err(|_| UacError::Send)
        });
        if r.is_err() {
            // Nothing will ever answer: settle the transaction now.
            let mut acts = crate::tm::fsm::Actions::new();
            st.tx.release(now(), &env.params.timers, &mut acts);
            driver::execute(env, cell, &mut st, &mut acts, None, &mut def);
        }
        rearm(&cref, &st);
        r
    };
    finish(env, &cref, def);
    result.map(|()| UacStarted {
        hash: cell.hash,
        label,
    })
}
