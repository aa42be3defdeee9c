//! Everything a worker needs to process messages, built once before the
//! fork: core settings, listen sockets, compiled routes, modules.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::cfg::ast::{RouteKind, RouteName, SocketSpec};
use crate::net::SocketTable;
use crate::route::export::Module;
use crate::route::globals::CoreCfg;
use crate::route::interp::Action;

/// Compiled route blocks, indexed by their resolved number.
#[derive(Default)]
pub struct Routes {
    pub request: Vec<Vec<Action>>,
    pub failure: Vec<Vec<Action>>,
    pub onreply: Vec<Vec<Action>>,
    pub branch: Vec<Vec<Action>>,
    pub core_reply: Option<Vec<Action>>,
    pub onsend: Option<Vec<Action>>,
    /// `(kind, name)` → index, for `route(name)` and `t_on_failure("name")`.
    pub names: HashMap<(RouteKind, RouteName), usize>,
}

impl Routes {
    pub fn table(&self, kind: RouteKind) -> &[Vec<Action>] {
        match kind {
            RouteKind::Request => &self.request,
            RouteKind::Failure => &self.failure,
            RouteKind::OnReply => &self.onreply,
            RouteKind::Branch => &self.branch,
            RouteKind::CoreReply | RouteKind::OnSend => &[],
        }
    }

    pub fn main(&self) -> &[Action] {
        self.request.first().map(|v| v.as_slice()).unwrap_or(&[])
    }
}

/// The result of loading a config: what `ser -c` checks.
pub struct Loaded {
    pub core: CoreCfg,
    pub routes: Routes,
    pub modules: Vec<Box<dyn Module>>,
}

pub struct Runtime {
    pub core: CoreCfg,
    pub sockets: SocketTable,
    pub routes: Routes,
    pub modules: Vec<Box<dyn Module>>,
    /// Prefix of the To-tags of replies this server builds statelessly.
    pub sl_tag: String,
    /// `Server: ...\r\n` line for local replies (empty when disabled).
    pub server_hdr: Vec<u8>,
}

/// `Sip EXpress router (<version> (<arch>/<os>))`, as SER identifies itself.
pub fn server_name() -> String {
    format!(
        "Sip EXpress router ({} ({}/{}))",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

fn strip_brackets(h: &[u8]) -> &[u8] {
    match (h.first(), h.last()) {
        (Some(b'['), Some(b']')) if h.len() >= 2 => &h[1..h.len() - 1],
        _ => h,
    }
}

fn host_eq(a: &[u8], b: &str) -> bool {
    strip_brackets(a).eq_ignore_ascii_case(strip_brackets(b.as_bytes()))
}

impl Runtime {
    pub fn new(loaded: Loaded, sockets: SocketTable) -> Runtime {
        let Loaded { core, routes, modules } = loaded;
        let first = sockets.all().first().map(|s| s.listen.addr.to_string()).unwrap_or_default();
        let sl_tag = crate::util::hash::hex128(&[b"SER-stateless", first.as_bytes()]);
        let server_hdr =
            if core.server_signature { format!("Server: {}\r\n", server_name()).into_bytes() } else { Vec::new() };
        Runtime { core, sockets, routes, modules, sl_tag, server_hdr }
    }

    /// Is `host[:port]` one of our listen addresses or aliases? A missing
    /// port means 5060, as in SER.
    pub fn is_myself(&self, host: &[u8], port: Option<u16>) -> bool {
        let port = port.filter(|p| *p != 0).unwrap_or(5060);
        let by_socket = self.sockets.all().iter().any(|s| {
            s.listen.addr.port() == port
                && (host_eq(host, &s.listen.name) || host_eq(host, &s.listen.addr.ip().to_string()))
        });
        by_socket || self.core.alias.iter().any(|a| alias_matches(a, host, port))
    }

    pub fn is_my_ip(&self, ip: IpAddr) -> bool {
        self.sockets.all().iter().any(|s| s.listen.addr.ip() == ip)
    }
}

fn alias_matches(a: &SocketSpec, host: &[u8], port: u16) -> bool {
    host_eq(host, &a.host) && matches!(a.port, None | Some(0)) || (a.port == Some(port) && host_eq(host, &a.host))
}
