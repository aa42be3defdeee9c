//! Stateless forwarding, the script's `forward()`: requests to a next hop
//! with our Via on top, and replies back along their Via path (RFC 3261
//! §16.11, §18.2.2). The message work shared with tm (Via edits,
//! destinations, socket choice) is in `crate::fwd`.
//!
//! Everything is an edit of the received bytes (lumps): the new Via goes
//! in front of the first Via line, `received`/`rport` are appended to the
//! sender's Via, the R-URI is replaced when the script rewrote it.

use std::net::SocketAddr;

use crate::fwd::{
    destination_of, edit_via1, pick_socket, reply_destination, reply_transport, send_to,
    without_top_via, DestError, ReplyRouteError, SendError,
};
use crate::net::{ListenSocket, Proto};
use crate::route::ctx::{MsgCtx, ScriptError};
use crate::route::runtime::Runtime;
use crate::sip::{push_via, HdrKind, Msg};
use crate::util::hash::fnv64;

impl From<DestError> for ScriptError {
    fn from(e: DestError) -> ScriptError {
        match e {
            DestError::BadUri => ScriptError::Uri,
            DestError::Unresolvable => ScriptError::Resolve,
        }
    }
}

/// Branch id for a statelessly forwarded request: a function of what
/// identifies the transaction, so retransmissions, the CANCEL and the ACK
/// of a negative reply get the same branch (§16.11).
fn stateless_branch(ctx: &MsgCtx<'_>, dst: SocketAddr) -> Vec<u8> {
    let msg = ctx.msg;
    let buf = msg.buf();
    let dst_s = dst.to_string();
    let h = match msg.via1() {
        Ok(v)
            if v.branch
                .map(|b| b.get(buf).starts_with(b"z9hG4bK"))
                .unwrap_or(false) =>
        {
            fnv64(
                1,
                &[
                    v.branch.map(|b| b.get(buf)).unwrap_or(&[]),
                    v.host.get(buf),
                    ctx.ruri(),
                    dst_s.as_bytes(),
                ],
            )
        }
        _ => {
            let call_id = msg.call_id().unwrap_or(&[]);
            let cseq = msg.cseq().map(|c| c.num).unwrap_or(0).to_be_bytes();
            let ftag = msg
                .from()
                .ok()
                .and_then(|f| f.tag)
                .map(|t| t.get(buf))
                .unwrap_or(&[]);
            let via = msg.via1().map(|v| v.span.get(buf)).unwrap_or(&[]);
            fnv64(
                2,
                &[call_id, &cseq, ftag, via, ctx.ruri(), dst_s.as_bytes()],
            )
        }
    };
    format!("z9hG4bKsl{h:016x}").into_bytes()
}

/// The address we put in Via: advertised or the socket's own.
pub fn via_host_port(ctx: &MsgCtx<'_>, sock: &ListenSocket) -> (String, u16) {
    let host = ctx
        .adv_addr
        .clone()
        .or_else(|| ctx.rt.core.advertised_address.clone())
        .unwrap_or_else(|| sock.host_text());
    let port = ctx
        .adv_port
        .or(ctx.rt.core.advertised_port)
        .unwrap_or(sock.listen.addr.port());
    (host, port)
}

/// The `host:port[;transport=x]` naming a socket in a URI. UDP is the SIP
/// default and gets no transport parameter; IPv6 hosts come bracketed.
pub fn transport_target(host: &str, port: u16, proto: Proto) -> String {
    match proto {
        Proto::Udp => format!("{host}:{port}"),
        Proto::Tcp | Proto::Tls => format!("{host}:{port};transport={proto}"),
    }
}

/// [`transport_target`] for `sock` as this request advertises it.
pub fn socket_target(ctx: &MsgCtx<'_>, sock: &ListenSocket) -> String {
    let (host, port) = via_host_port(ctx, sock);
    transport_target(&host, port, sock.proto())
}

/// rr's entry for the receiving socket becomes two (the sending socket's
/// first) when the request leaves from another socket, so in-dialog
/// requests from either side come in on the socket facing that side.
pub fn double_record_route(ctx: &MsgCtx<'_>, out: &ListenSocket, lumps: &mut crate::sip::Lumps) {
    let Some(rr) = &ctx.socket_rr else {
        return;
    };
    if out.index == ctx.rcv.index {
        return;
    }
    let lines = rr.lines(&socket_target(ctx, ctx.rcv), Some(&socket_target(ctx, out)));
    lumps.rewrite(rr.lump, &lines);
}

/// In a failure route, over the request as the request route left it:
/// rr's Record-Route for the receiving socket (the topmost one, as rr
/// puts it) becomes editable again, so [`double_record_route`] doubles
/// it for a branch that leaves from another socket, as it did for the
/// first branches. Anything else on top (another proxy's entry, a
/// preset one) is left alone.
pub fn adopt_record_route(ctx: &mut MsgCtx<'_>) {
    let msg = ctx.msg;
    let Some(h) = msg.header(HdrKind::RecordRoute) else {
        return;
    };
    let value = h.value.get(msg.buf());
    let target = socket_target(ctx, ctx.rcv);
    let Some(params) = value
        .strip_prefix(b"<sip:")
        .and_then(|v| v.strip_prefix(target.as_bytes()))
        .and_then(|v| v.strip_suffix(b">"))
    else {
        return;
    };
    // Only URI parameters may follow our target (not another host that
    // merely starts with it).
    if !(params.is_empty() || params.starts_with(b";")) {
        return;
    }
    let params = params.to_vec();
    let at = h.line.start as usize;
    ctx.lumps.delete(h.line);
    let lump = ctx.lumps.insert_named(
        at,
        &crate::route::ctx::record_route_line(target.as_bytes(), &params),
    );
    ctx.socket_rr = Some(crate::route::ctx::SocketRr { lump, params });
}

/// Forward the current request statelessly to `dst` over `proto`.
pub fn forward_request(ctx: &mut MsgCtx<'_>, dst: SocketAddr, proto: Proto) -> i32 {
    let rt = ctx.rt;
    let Some(sock) = pick_socket(&rt.sockets, ctx.send_sock, proto, &dst) else {
        crate::warn_limited!("forward: {}", SendError::TransportNotServed(proto));
        return ctx.fail(ScriptError::Send);
    };
    let msg = ctx.msg;
    let Ok(via1) = msg.via1() else {
        return ctx.fail(ScriptError::BadRequest);
    };
    let Some(first_via) = msg.header(HdrKind::Via) else {
        return ctx.fail(ScriptError::BadRequest);
    };
    let mut lumps = ctx.lumps.clone();
    edit_via1(msg, via1, ctx.src, ctx.marks_rport(), &mut lumps);
    double_record_route(ctx, sock, &mut lumps);
    let (host, port) = via_host_port(ctx, sock);
    let branch = stateless_branch(ctx, dst);
    let mut via = Vec::with_capacity(96);
    push_via(&mut via, sock.proto().via_name(), &host, port, &branch, b"");
    lumps.insert(first_via.line.start as usize, &via);
    if let Some(u) = &ctx.new_uri {
        lumps.replace(msg.ruri_span(), u);
    }
    let mut out = Vec::with_capacity(msg.buf().len() + 256);
    if lumps.apply(msg.buf(), &mut out).is_err() {
        log::error!("forward: conflicting edits of the message");
        return ctx.fail(ScriptError::Server);
    }
    match send_to(sock, proto, &out, dst) {
        Ok(()) => 1,
        Err(e) => {
            log::error!("forward: send to {dst} failed: {e}");
            ctx.fail(ScriptError::Send)
        }
    }
}

/// Next hop of the current request from its dst-URI or R-URI: host,
/// port (5060, or 5061 for sips) and transport.
pub fn uri_destination(
    ctx: &MsgCtx<'_>,
    port_override: Option<u16>,
) -> Result<(SocketAddr, Proto), ScriptError> {
    Ok(destination_of(
        ctx.dst_uri.as_deref().unwrap_or_else(|| ctx.ruri()),
        port_override,
    )?)
}

/// Route a reply back by its Via: strip our Via, send to the second one's
/// `received`/`rport` address or its sent-by.
pub fn forward_reply(rt: &Runtime, msg: &Msg) -> Result<(), ReplyRouteError> {
    let v1 = msg.via1().map_err(|_| ReplyRouteError::NoVia2)?;
    if rt.core.check_via && !rt.is_myself(v1.host.get(msg.buf()), v1.port) {
        return Err(ReplyRouteError::NotOurVia);
    }
    let dst = reply_destination(msg)?;
    let proto = reply_transport(msg);
    let sock = rt
        .sockets
        .for_dest(proto, &dst)
        .ok_or(ReplyRouteError::NoSocket)?;
    let mut out = Vec::with_capacity(msg.buf().len());
    without_top_via(msg, &mut out)?;
    send_to(sock, proto, &out, dst).map_err(|_| ReplyRouteError::Send)
}
