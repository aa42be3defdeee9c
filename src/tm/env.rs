//! tm's process environment: what every tm process needs and sets up once
//! before the fork (runtime, shared region, parameters, the To-tag
//! prefix), the clock, and sending to a peer from its recorded socket.
//! The bottom of tm's runtime: the driver, relaying, replies and the UAC
//! all stand on it.

use std::sync::OnceLock;

use shm::Region;

use crate::route::Runtime;
use crate::tm::cell::Peer;
use crate::tm::fsm::TimerCfg;
use crate::tm::params::TmParams;

/// Set up once before the fork.
pub struct Env {
    pub rt: &'static Runtime,
    pub region: &'static Region,
    pub params: TmParams,
    /// Prefix of the To-tags of replies tm builds.
    pub tag: String,
}

static ENV: OnceLock<Env> = OnceLock::new();

/// The environment, once [`init`] ran.
pub fn env() -> Option<&'static Env> {
    ENV.get()
}

/// tm's timer values (defaults before [`init`]).
pub fn cfg() -> TimerCfg {
    env().map(|e| e.params.timers).unwrap_or_default()
}

/// tm's clock: monotonic milliseconds, the same in every process.
pub fn now() -> u64 {
    shm::monotonic_ms()
}

/// Send `bytes` to `peer` from the socket recorded with it.
pub fn send_peer(env: &Env, peer: &Peer, bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let addr = peer.addr();
    let sock = env
        .rt
        .sockets
        .all()
        .get(usize::from(peer.sock))
        .or_else(|| env.rt.sockets.udp_for(&addr));
    match sock {
        // Over TCP/TLS: the connection to (or from) that address.
        Some(s) => match s.send(bytes, addr, Some(addr)) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("tm: send to {addr} failed: {e}");
                false
            }
        },
        None => false,
    }
}

/// Set up once before the fork; false if it already was.
pub fn init(rt: &'static Runtime, region: &'static Region, params: TmParams) -> bool {
    let first = rt
        .sockets
        .all()
        .first()
        .map(|s| s.listen.addr.to_string())
        .unwrap_or_default();
    let tag = crate::util::hash::hex128(&[b"SER-TM/tags", first.as_bytes()]);
    // The debug>=4 message trace names the transaction of our branch ids.
    crate::logging::trace::set_transaction_finder(crate::tm::branch::top_via_transaction);
    ENV.set(Env {
        rt,
        region,
        params,
        tag,
    })
    .is_ok()
}
