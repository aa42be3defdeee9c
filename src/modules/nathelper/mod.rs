//! nathelper — helping phones behind NAT, as SER 0.9's module did:
//! `nat_uac_test`, `fix_nated_contact`, `fix_nated_sdp`, `add_rcv_param`,
//! `fix_nated_register`, and keep-alive pings to registered contacts
//! (`natping_interval`) from a process of the module's own.
//!
//! Message edits are lumps. Two of them must be seen by what runs later:
//! the rewritten Contact (SER pointed the parsed contact at the new text,
//! so `save()` stores it) and the Content-Length after SDP edits; both
//! live in `MsgCtx::nat`.
//!
//! RTP proxying (`force_rtp_proxy`, `unforce_rtp_proxy`) needs an
//! rtpproxy daemon; ser does not speak its control protocol, so a config
//! calling them is refused at load rather than run without media relay.

mod edits;
mod natping;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::OnceLock;

use crate::cfg::ast::Literal;
use crate::route::ctx::{AvpName, AvpValue};
use crate::route::export::{
    arg_int, arg_str, BoxedFn, FixupEnv, FixupError, FnDef, ModInitError, ModProc, Module,
    ParamError, RouteMask,
};
use crate::route::MsgCtx;
use crate::sip::{parse_contacts, HdrKind, Span};

pub use edits::{contact_to_source, is_1918, media_addrs, sdp_1918};

const NAME: &str = "nathelper";

// Route masks of SER's cmd_export_t (2.x added branch routes).
const RQ_RP_BR: RouteMask = RouteMask::REQUEST
    .or(RouteMask::ONREPLY)
    .or(RouteMask::BRANCH);
const ALL: RouteMask = RQ_RP_BR.or(RouteMask::FAILURE);

static FUNCS: &[FnDef] = &[
    FnDef::new("fix_nated_contact", 0, 0, RQ_RP_BR),
    FnDef::new("fix_nated_sdp", 1, 2, ALL),
    FnDef::new("nat_uac_test", 1, 1, ALL),
    FnDef::new("add_rcv_param", 0, 0, RouteMask::REQUEST),
    FnDef::new("fix_nated_register", 0, 0, RouteMask::REQUEST),
    FnDef::new("force_rtp_proxy", 0, 2, ALL),
    FnDef::new("unforce_rtp_proxy", 0, 0, ALL),
];

/// `nat_uac_test` bits (SER's NAT_UAC_TEST_*).
pub mod test_bits {
    /// The Contact names an RFC 1918 address.
    pub const C_1918: u32 = 0x01;
    /// The top Via's sent-by differs from the source (or has `received`).
    pub const RCVD: u32 = 0x02;
    /// The top Via names an RFC 1918 address.
    pub const V_1918: u32 = 0x04;
    /// The SDP's `c=` names an RFC 1918 address.
    pub const S_1918: u32 = 0x08;
    /// The source port differs from the top Via's.
    pub const RPORT: u32 = 0x10;
    /// The source port differs from the Contact's (later SER).
    pub const C_PORT: u32 = 0x20;
}

/// `fix_nated_sdp` bits.
const ADD_ADIRECTION: u32 = 0x01;
const FIX_MEDIP: u32 = 0x02;
const ADD_ANORTPPROXY: u32 = 0x04;

/// Keep-alive settings, read by the ping process.
#[derive(Debug, Clone, Default)]
pub struct PingCfg {
    /// Seconds between rounds; 0 = no pings.
    pub interval_s: u32,
    /// Only bindings with the NAT flag (else every UDP binding).
    pub nated_only: bool,
    /// With a `sipping_from`, a SIP request (`sipping_method`, OPTIONS)
    /// instead of four zero bytes.
    pub sip_from: Option<String>,
    pub sip_method: String,
}

static PING: OnceLock<(PingCfg, &'static crate::route::Runtime)> = OnceLock::new();

pub struct NatHelper {
    ping: PingCfg,
    received_avp: u32,
}

impl Default for NatHelper {
    fn default() -> Self {
        NatHelper {
            ping: PingCfg {
                sip_method: "OPTIONS".into(),
                ..PingCfg::default()
            },
            received_avp: 42,
        }
    }
}

fn int(param: &str, v: &Literal) -> Result<i64, ParamError> {
    crate::route::export::param_int_or_quoted(NAME, param, v)
}

fn bad(param: &str, reason: String) -> ParamError {
    ParamError::BadValue {
        module: NAME,
        param: param.into(),
        reason,
    }
}

impl Module for NatHelper {
    fn name(&self) -> &'static str {
        NAME
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        match param {
            "natping_interval" => match int(param, value)? {
                n @ 0..=86_400 => self.ping.interval_s = n as u32,
                n => return Err(bad(param, format!("{n} s is not within 0..86400"))),
            },
            "ping_nated_only" => self.ping.nated_only = int(param, value)? != 0,
            "sipping_from" => {
                let s = super::str_param(NAME, param, value)?;
                self.ping.sip_from = Some(s);
            }
            "sipping_method" | "natping_method" => {
                let s = super::str_param(NAME, param, value)?;
                if s.eq_ignore_ascii_case("null") {
                    self.ping.sip_from = None;
                } else {
                    if !s.bytes().all(|c| c.is_ascii_alphabetic()) {
                        return Err(bad(param, format!("{s:?} is not a method name")));
                    }
                    self.ping.sip_method = s.to_ascii_uppercase();
                    // 2.x's natping_method alone asks for SIP pings.
                    if param == "natping_method" && self.ping.sip_from.is_none() {
                        self.ping.sip_from = Some("sip:registrar".into());
                    }
                }
            }
            "received_avp" => match int(param, value)? {
                n @ 1..=0xffff => self.received_avp = n as u32,
                n => return Err(bad(param, format!("{n} is not an AVP number"))),
            },
            // Settings of the RTP proxy link. ser has none: the functions
            // that would use them are refused at load, so setting them
            // (the usual `rtpproxy_disable=1` included) changes nothing.
            "rtpproxy_disable" | "rtpproxy_retr" | "rtpproxy_tout" | "rtpproxy_disable_tout" => {
                int(param, value)?;
            }
            "rtpproxy_sock" => {
                super::str_param(NAME, param, value)?;
            }
            _ => return Err(super::no_params(NAME, param)),
        }
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        Ok(match f.name {
            "nat_uac_test" => {
                let tests = arg_int(f.name, args, 0, "a number (test bits)")?;
                let tests = u32::try_from(tests).map_err(|_| FixupError::BadArg {
                    func: f.name,
                    index: 1,
                    expected: "a number (test bits)",
                    found: tests.to_string(),
                })?;
                Box::new(move |ctx: &mut MsgCtx<'_>| if nat_uac_test(ctx, tests) { 1 } else { -1 })
            }
            "fix_nated_contact" => Box::new(fix_nated_contact),
            "fix_nated_sdp" => {
                let level = arg_int(f.name, args, 0, "a number (flags)")?;
                let level = u32::try_from(level).unwrap_or(0);
                let ip = match args.get(1) {
                    Some(_) => {
                        let s = arg_str(f.name, args, 1)?;
                        let ip = s
                            .parse::<std::net::IpAddr>()
                            .map_err(|_| FixupError::BadArg {
                                func: f.name,
                                index: 2,
                                expected: "an IP address",
                                found: s.clone(),
                            })?;
                        Some(ip)
                    }
                    None => None,
                };
                Box::new(move |ctx: &mut MsgCtx<'_>| fix_nated_sdp(ctx, level, ip))
            }
            "add_rcv_param" => Box::new(add_rcv_param),
            "fix_nated_register" => {
                let name = AvpName::Int(self.received_avp);
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let uri = rcv_uri(ctx).into_bytes();
                    ctx.avps.push((name.clone(), AvpValue::Str(uri)));
                    1
                })
            }
            _ => {
                return Err(FixupError::Unavailable {
                    func: f.name,
                    reason: "RTP proxying needs an rtpproxy daemon and ser does not speak \
                             its control protocol (no rtpproxy is installed to build it \
                             against); remove the call, or relay media another way",
                })
            }
        })
    }

    fn mod_init(
        &self,
        rt: &'static crate::route::Runtime,
        _region: &'static shm::Region,
    ) -> Result<(), ModInitError> {
        if self.ping.interval_s == 0 {
            return Ok(());
        }
        if !rt.modules.iter().any(|m| m.name() == "usrloc") {
            return Err(ModInitError {
                module: NAME,
                reason: "natping_interval needs the usrloc module (load it first)".into(),
            });
        }
        PING.set((self.ping.clone(), rt)).map_err(|_| ModInitError {
            module: NAME,
            reason: "initialised twice".into(),
        })
    }

    fn procs(&self) -> Vec<ModProc> {
        if self.ping.interval_s == 0 {
            return Vec::new();
        }
        vec![ModProc {
            desc: "nathelper keep-alive pinger",
            body: natping::process,
        }]
    }
}

/// The first contact of the first Contact header: its URI span.
fn first_contact(ctx: &MsgCtx<'_>) -> Option<Span> {
    let h = ctx.msg.header(HdrKind::Contact)?;
    let c = parse_contacts(ctx.msg.buf(), h.value).ok()?;
    c.first().filter(|c| !c.star).map(|c| c.addr.uri)
}

/// The first Contact's URI as it stands now (after `fix_nated_contact`).
fn contact_uri(ctx: &MsgCtx<'_>) -> Option<Vec<u8>> {
    if let Some((_, fixed)) = &ctx.nat.contact {
        return Some(fixed.clone());
    }
    first_contact(ctx).map(|s| s.get(ctx.msg.buf()).to_vec())
}

/// SER's `nat_uac_test`: true if any of the requested tests holds.
pub fn nat_uac_test(ctx: &MsgCtx<'_>, tests: u32) -> bool {
    use test_bits::*;
    let msg = ctx.msg;
    let buf = msg.buf();
    let via = msg.via1().ok();
    let via_port = via.map(|v| v.port.unwrap_or(5060));
    if tests & RPORT != 0 && via_port.is_some_and(|p| p != ctx.src.port()) {
        return true;
    }
    if tests & RCVD != 0 {
        if let Some(v) = via {
            let sent_by = edits::host_ip(v.host.get(buf));
            if v.received.is_some() || sent_by != Some(ctx.src.ip()) {
                return true;
            }
        }
    }
    let contact = contact_uri(ctx);
    if tests & C_1918 != 0
        && contact
            .as_deref()
            .and_then(edits::uri_host)
            .is_some_and(is_1918)
    {
        return true;
    }
    if tests & S_1918 != 0 && sdp_1918(msg.body()) {
        return true;
    }
    if tests & V_1918 != 0 && via.is_some_and(|v| is_1918(v.host.get(buf))) {
        return true;
    }
    if tests & C_PORT != 0
        && contact
            .as_deref()
            .and_then(edits::uri_port)
            .is_some_and(|p| p != ctx.src.port())
    {
        return true;
    }
    false
}

/// SER's `fix_nated_contact`: the first Contact URI's host:port become
/// the packet's source.
fn fix_nated_contact(ctx: &mut MsgCtx<'_>) -> i32 {
    if ctx.nat.contact.is_some() {
        crate::warn_limited!("nathelper: fix_nated_contact called twice, check your config");
        return -1;
    }
    let Some(span) = first_contact(ctx) else {
        return -1;
    };
    let Some(fixed) = contact_to_source(span.get(ctx.msg.buf()), ctx.src) else {
        return -1;
    };
    ctx.lumps.replace(span, &fixed);
    ctx.nat.contact = Some((span, fixed));
    1
}

/// `sip:ip:port[;transport=TCP]` of the packet's source (SER's
/// `create_rcv_uri`).
fn rcv_uri(ctx: &MsgCtx<'_>) -> String {
    let base = format!("sip:{}", edits::hostport(ctx.src));
    match ctx.rcv.proto() {
        crate::net::Proto::Udp => base,
        crate::net::Proto::Tcp => base + ";transport=TCP",
        crate::net::Proto::Tls => base + ";transport=TLS",
    }
}

/// SER's `add_rcv_param`: `;received="<source URI>"` on every contact, for
/// a registrar further on.
fn add_rcv_param(ctx: &mut MsgCtx<'_>) -> i32 {
    let param = format!(";received=\"{}\"", rcv_uri(ctx));
    let buf = ctx.msg.buf();
    let mut ends = Vec::new();
    for h in ctx.msg.headers_of(HdrKind::Contact) {
        let Ok(list) = parse_contacts(buf, h.value) else {
            return -1;
        };
        for c in list.iter().filter(|c| !c.star) {
            ends.push(contact_end(buf, c));
        }
    }
    if ends.is_empty() {
        return -1;
    }
    for at in ends {
        ctx.lumps.insert(at, param.as_bytes());
    }
    1
}

/// Where one contact of a list ends: after its parameters, else after its
/// URI and the `>` closing it.
fn contact_end(buf: &[u8], c: &crate::sip::Contact) -> usize {
    if !c.addr.params.is_empty() {
        return c.addr.params.end();
    }
    let end = c.addr.uri.end();
    if buf.get(end) == Some(&b'>') {
        end + 1
    } else {
        end
    }
}

/// SER's `fix_nated_sdp(flags[, ip])`: 1 adds `a=direction:active`, 2
/// puts the source address (or `ip`) in every `c=` line, 4 adds
/// `a=nortpproxy:yes`. Content-Length follows.
fn fix_nated_sdp(ctx: &mut MsgCtx<'_>, level: u32, ip: Option<std::net::IpAddr>) -> i32 {
    let body_span = ctx.msg.body_span();
    let body = ctx.msg.body();
    if body.is_empty() {
        return -1;
    }
    let base = body_span.start as usize;
    let mut grew: i64 = 0;
    if level & FIX_MEDIP != 0 {
        let new = edits::host_text(ip.unwrap_or(ctx.src.ip()));
        let new = new
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addrs = media_addrs(body);
        if addrs.is_empty() {
            crate::warn_limited!("nathelper: fix_nated_sdp: no c= line in the SDP");
        }
        for m in addrs.iter().filter(|m| m.ip4) {
            // SER leaves the hold address alone.
            if m.span.get(body) == b"0.0.0.0" {
                continue;
            }
            ctx.lumps.replace(m.span.offset(base), new.as_bytes());
            grew += new.len() as i64 - i64::from(m.span.len);
        }
    }
    let mut tail = Vec::new();
    for (bit, line) in [
        (ADD_ADIRECTION, "a=direction:active"),
        (ADD_ANORTPPROXY, "a=nortpproxy:yes"),
    ] {
        if level & bit != 0 {
            let last = if tail.is_empty() { body } else { &tail[..] };
            let add = edits::sdp_line(last, line);
            tail.extend_from_slice(&add);
        }
    }
    if !tail.is_empty() {
        ctx.lumps.insert(body_span.end(), &tail);
        grew += tail.len() as i64;
    }
    if grew != 0 {
        set_content_length(ctx, grew);
    }
    1
}

/// Account `grew` more body bytes in the Content-Length (one lump,
/// rewritten on later calls).
fn set_content_length(ctx: &mut MsgCtx<'_>, grew: i64) {
    let Some(h) = ctx.msg.header(HdrKind::ContentLength) else {
        // UDP without Content-Length: the datagram's end is the body's.
        return;
    };
    let total = ctx.nat.clen.map_or(0, |(_, g)| g) + grew;
    let text = (ctx.msg.body().len() as i64 + total).max(0).to_string();
    let id = match ctx.nat.clen {
        Some((id, _)) => {
            ctx.lumps.rewrite(id, text.as_bytes());
            id
        }
        None => {
            let v = h.value;
            ctx.lumps.delete(v);
            ctx.lumps.insert_named(v.start as usize, text.as_bytes())
        }
    };
    ctx.nat.clen = Some((id, total));
}

/// The keep-alive target of a binding: its `received` if set, else its
/// Contact; only numeric hosts over UDP. `None` for the rest.
pub fn ping_target(contact: &[u8], received: &[u8]) -> Option<SocketAddr> {
    let uri = if received.is_empty() {
        contact
    } else {
        received
    };
    let u = crate::sip::parse_uri(uri).ok()?;
    if let Some(t) = u.transport {
        if !t.get(uri).eq_ignore_ascii_case(b"udp") {
            return None;
        }
    }
    if u.scheme == crate::sip::Scheme::Sips {
        return None;
    }
    let ip = edits::host_ip(u.host.get(uri))?;
    Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
}
