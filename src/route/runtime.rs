//! Everything a worker needs to process messages, built once before the
//! fork: core settings, listen sockets, compiled routes, modules.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::cfg::ast::{RouteKind, RouteName};
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
    /// Value of `Server:` on local replies (empty when disabled).
    pub server_hdr: Vec<u8>,
}

pub use crate::util::version::server_name;

impl Runtime {
    pub fn new(loaded: Loaded, sockets: SocketTable) -> Runtime {
        let Loaded {
            core,
            routes,
            modules,
        } = loaded;
        let first = sockets
            .all()
            .first()
            .map(|s| s.listen.addr.to_string())
            .unwrap_or_default();
        let sl_tag = crate::util::hash::hex128(&[b"SER-stateless", first.as_bytes()]);
        let server_hdr = if core.server_signature {
            server_name().into_bytes()
        } else {
            Vec::new()
        };
        Runtime {
            core,
            sockets,
            routes,
            modules,
            sl_tag,
            server_hdr,
        }
    }

    /// Is `host[:port]` one of our listen addresses or aliases? A missing
    /// port means 5060, as in SER.
    pub fn is_myself(&self, host: &[u8], port: Option<u16>) -> bool {
        match std::str::from_utf8(host) {
            Ok(h) => self.sockets.is_local(h, port.filter(|p| *p != 0)),
            Err(_) => false,
        }
    }

    pub fn is_my_ip(&self, ip: IpAddr) -> bool {
        self.sockets.all().iter().any(|s| s.listen.addr.ip() == ip)
    }
}
