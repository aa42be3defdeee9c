//! Next hops by name: a branch goes to the first address RFC 3263 gave
//! for its URI and keeps the others for DNS failover (SER 2.x's
//! `use_dns_failover`: a 503 or a timeout tries the next address as a new
//! branch before any failure route or reply); and a branch whose name
//! the DNS cache does not hold waits, blind, while the resolver process
//! (`net::dns::queue`) looks it up — the worker that relayed it goes on
//! at once, and the answer sends (or fails) the branch from there.
//!
//! Every branch of one transaction leaves from the socket its Via was
//! built for, so the addresses kept are those that socket reaches (same
//! transport and address family).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use shm::{Region, ShmOff};

use crate::net::dns::{queue, DnsError, Target, Targets};
use crate::net::Proto;
use crate::sip::MAX_BRANCHES;
use crate::tm::callbacks::{self, CbEvent};
use crate::tm::cell::{replace_bytes, Cell, CellRef, CellState};
use crate::tm::driver::{execute, finish, rearm, Deferred};
use crate::tm::env::{env, now, Env};
use crate::tm::fsm::{bflags, flags, Actions, BranchPhase};
use crate::tm::store::branch_id;

/// The status a branch ends with when its next hop does not resolve
/// (SER's "Unresolvable destination").
pub const UNRESOLVABLE: u16 = 478;

// ----- the addresses kept per branch, in `CellState::hops` -----

/// One kept address: family, address, port, transport.
const TARGET_LEN: usize = 20;

fn proto_code(p: Proto) -> u8 {
    match p {
        Proto::Udp => 1,
        Proto::Tcp => 2,
        Proto::Tls => 3,
    }
}

fn put_target(out: &mut Vec<u8>, t: &Target) {
    let mut ip = [0u8; 16];
    let fam = match t.addr.ip() {
        IpAddr::V4(a) => {
            ip[..4].copy_from_slice(&a.octets());
            4
        }
        IpAddr::V6(a) => {
            ip = a.octets();
            6
        }
    };
    out.push(fam);
    out.extend_from_slice(&ip);
    out.extend_from_slice(&t.addr.port().to_be_bytes());
    out.push(proto_code(t.proto));
}

fn get_target(b: &[u8]) -> Option<Target> {
    let b = b.get(..TARGET_LEN)?;
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[1..17]);
    let addr = match b[0] {
        4 => IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
        6 => IpAddr::V6(Ipv6Addr::from(ip)),
        _ => return None,
    };
    let port = u16::from_be_bytes([b[17], b[18]]);
    let proto = match b[19] {
        1 => Proto::Udp,
        2 => Proto::Tcp,
        3 => Proto::Tls,
        _ => return None,
    };
    Some(Target {
        addr: SocketAddr::new(addr, port),
        proto,
    })
}

/// The kept lists: `[branch][count][count × target]…`. Anything that does
/// not decode ends the walk (the bytes are ours, but shm is not trusted
/// blindly).
fn decode_all(b: &[u8]) -> Vec<(u8, Targets)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(&br), Some(&n)) = (b.get(at), b.get(at + 1)) {
        at += 2;
        let mut v = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            match b.get(at..).and_then(get_target) {
                Some(t) => v.push(t),
                None => return out,
            }
            at += TARGET_LEN;
        }
        out.push((br, v));
    }
    out
}

fn encode_all(lists: &[(u8, Targets)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (b, v) in lists.iter().filter(|(_, v)| !v.is_empty()) {
        let n = v.len().min(usize::from(u8::MAX));
        out.push(*b);
        out.push(n as u8);
        for t in &v[..n] {
            put_target(&mut out, t);
        }
    }
    out
}

/// Keep `rest` as branch `b`'s addresses to fail over to (none: forget).
fn keep(region: &Region, st: &mut CellState, b: u8, rest: &[Target]) {
    let mut all = decode_all(region.slice(st.hops));
    all.retain(|(x, _)| *x != b);
    if !rest.is_empty() {
        all.push((b, rest.to_vec()));
    }
    let bytes = encode_all(&all);
    let kept = replace_bytes(region, &mut st.hops, &bytes).is_ok();
    if !kept {
        crate::tm::oom::complain("keeping DNS failover addresses");
    }
    if let Some(br) = st.tx.branches.get_mut(usize::from(b)) {
        br.more = u8::from(kept && !rest.is_empty());
    }
}

/// Take branch `b`'s kept addresses away.
fn take(region: &Region, st: &mut CellState, b: u8) -> Targets {
    let mut all = decode_all(region.slice(st.hops));
    let Some(i) = all.iter().position(|(x, _)| *x == b) else {
        return Vec::new();
    };
    let (_, v) = all.remove(i);
    if replace_bytes(region, &mut st.hops, &encode_all(&all)).is_err() {
        crate::tm::oom::complain("keeping DNS failover addresses");
    }
    v
}

// ----- sending a branch to its addresses -----

/// Can a request built for `sock` go to `t` from it?
fn reachable_from(sock: &crate::net::ListenSocket, t: &Target) -> bool {
    sock.proto() == t.proto && sock.listen.addr.is_ipv4() == t.addr.is_ipv4()
}

/// Send branch `b` (added, its request stored, its socket in
/// `st.br[b].dst.sock`) to the first of `targets` its socket reaches,
/// keeping the rest for failover when `use_dns_failover` is on. A send
/// that fails (or a blacklisted address) ends the branch as a local 503,
/// as SER's faked reply; `false` then. No address reachable: 478.
pub(crate) fn launch(
    env: &'static Env,
    cell: &Cell,
    st: &mut CellState,
    b: u8,
    targets: &[Target],
    def: &mut Deferred,
) -> bool {
    let i = usize::from(b);
    let sock_idx = usize::from(st.br[i].dst.sock);
    let Some(sock) = env.rt.sockets.all().get(sock_idx) else {
        return false;
    };
    let mut usable = targets.iter().filter(|t| reachable_from(sock, t));
    let Some(first) = usable.next().copied() else {
        fail(env, cell, st, b, UNRESOLVABLE, def);
        return false;
    };
    if crate::net::dns::settings().failover {
        let rest: Targets = usable.copied().collect();
        keep(env.region, st, b, &rest);
    }
    st.br[i].dst = crate::tm::cell::Peer::new(first.addr, sock_idx);
    st.tx.branch_sent(b, now(), &env.params.timers);
    let bytes = env.region.slice(st.br[i].request);
    let outcome = if crate::tm::blst::blocks(env, cell.method, first.addr) {
        log::debug!("tm: branch {b} not sent: {} is blacklisted", first.addr);
        Err(())
    } else {
        sock.send(bytes, first.addr, None).map_err(|e| {
            log::warn!("tm: sending branch {b} to {} failed: {e}", first.addr);
            crate::tm::blst::on_send_failure(first.addr);
        })
    };
    if outcome.is_err() {
        // Counts as a local 503 on that branch, as SER's faked reply.
        let mut acts = Actions::new();
        st.tx.on_reply(b, 503, now(), &env.params.timers, &mut acts);
        execute(env, cell, st, &mut acts, None, def);
        return false;
    }
    callbacks::fire(CbEvent::RequestFwded, cell, 0);
    true
}

/// End branch `b` here with `code`.
fn fail(env: &'static Env, cell: &Cell, st: &mut CellState, b: u8, code: u16, def: &mut Deferred) {
    let mut acts = Actions::new();
    st.tx
        .branch_failed(b, code, now(), &env.params.timers, &mut acts);
    execute(env, cell, st, &mut acts, None, def);
}

// ----- branches waiting for the resolver process -----

/// The job's payload: the cell (a reference handed over) and the branch.
fn payload(off: u32, b: u8) -> [u8; 5] {
    let o = off.to_be_bytes();
    [o[0], o[1], o[2], o[3], b]
}

/// Hand branch `b` of `cref`, added blind with its request stored, to
/// the resolver process. The queue full or gone: the branch ends as a
/// local 503 at once.
pub fn wait_for(env: &'static Env, cref: &CellRef, b: u8, q: &queue::Query) {
    let held = CellRef::acquire(env.region, cref.off());
    let off = held.into_raw();
    match queue::submit(q, &payload(off.get(), b)) {
        Ok(()) => {}
        Err(e) => {
            drop(CellRef::adopt(env.region, off));
            crate::warn_limited!("tm: cannot look up {}: {e}", q.host);
            let mut def = Deferred::default();
            {
                let mut st = cref.cell().lock();
                fail(env, cref.cell(), &mut st, b, 503, &mut def);
                rearm(cref, &st);
            }
            finish(env, cref, def);
        }
    }
}

/// The resolver process's continuation (installed before the fork): the
/// answer for a waiting branch sends it, or ends it (478 when the name
/// did not resolve, 487 when the caller CANCELed meanwhile).
pub fn resolved(payload: &[u8], result: Result<Targets, DnsError>) {
    let Some(env) = env() else { return };
    let (Some(o), Some(&b)) = (payload.get(..4), payload.get(4)) else {
        return;
    };
    let Some(off) = ShmOff::<Cell>::from_u32(u32::from_be_bytes([o[0], o[1], o[2], o[3]])) else {
        return;
    };
    let cref = CellRef::adopt(env.region, off);
    let cell = cref.cell();
    let mut def = Deferred::default();
    {
        let mut st = cell.lock();
        let waiting =
            st.tx.live_branches().get(usize::from(b)).is_some_and(|br| {
                br.phase() == BranchPhase::Calling && br.flags & bflags::BLIND != 0
            });
        if waiting {
            if st.tx.has(flags::CANCELED) {
                fail(env, cell, &mut st, b, 487, &mut def);
            } else {
                match result {
                    Ok(t) => {
                        launch(env, cell, &mut st, b, &t, &mut def);
                    }
                    Err(_) => fail(env, cell, &mut st, b, UNRESOLVABLE, &mut def),
                }
            }
        }
        rearm(&cref, &st);
    }
    finish(env, &cref, def);
}

// ----- failover -----

/// The failover runner (`driver::set_failover_runner`): branch `b`
/// failed with a 503 or timed out; its request goes to the next kept
/// address as a new branch (the same request, its Via's branch id that
/// of the new branch).
pub fn failover(env: &'static Env, cref: &CellRef, b: u8) -> Deferred {
    let cell = cref.cell();
    let mut def = Deferred::default();
    let mut st = cell.lock();
    let targets = take(env.region, &mut st, b);
    if !targets.is_empty() && !st.tx.has(flags::CANCELED) {
        add_failover_branch(env, cell, &mut st, b, &targets, &mut def);
    }
    let mut acts = Actions::new();
    st.tx.failover_done(now(), &env.params.timers, &mut acts);
    execute(env, cell, &mut st, &mut acts, None, &mut def);
    rearm(cref, &st);
    def
}

/// Add the failover branch; `false` when it could not be added.
fn add_failover_branch(
    env: &'static Env,
    cell: &Cell,
    st: &mut CellState,
    b: u8,
    targets: &[Target],
    def: &mut Deferred,
) -> bool {
    let n = st.tx.nbranches;
    if usize::from(n) >= MAX_BRANCHES {
        log::info!("tm: no DNS failover after branch {b}: {MAX_BRANCHES} branches already");
        return false;
    }
    let label = cell.label.load(std::sync::atomic::Ordering::Relaxed);
    let (old, new) = (
        branch_id(cell.hash, label, b),
        branch_id(cell.hash, label, n),
    );
    let Some(bytes) = with_branch_id(env.region.slice(st.br[usize::from(b)].request), &old, &new)
    else {
        log::error!("tm: branch {b}'s request has lost its branch id; no failover");
        return false;
    };
    if replace_bytes(env.region, &mut st.br[usize::from(n)].request, &bytes).is_err() {
        crate::tm::oom::complain("for a failover branch");
        return false;
    }
    let reliable = targets[0].proto.is_stream();
    if st
        .tx
        .add_branch(now(), &env.params.timers, reliable, false)
        .is_err()
    {
        return false;
    }
    st.br[usize::from(n)].dst = st.br[usize::from(b)].dst;
    log::debug!("tm: branch {b} failed over to branch {n}");
    launch(env, cell, st, n, targets, def);
    true
}

/// `req` with its first `old` (our Via's branch id) replaced by `new`.
fn with_branch_id(req: &[u8], old: &str, new: &str) -> Option<Vec<u8>> {
    let at = req.windows(old.len()).position(|w| w == old.as_bytes())?;
    let mut out = Vec::with_capacity(req.len() + new.len());
    out.extend_from_slice(&req[..at]);
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&req[at + old.len()..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(a: &str, p: Proto) -> Target {
        Target {
            addr: a.parse().unwrap(),
            proto: p,
        }
    }

    #[test]
    fn kept_addresses_round_trip_per_branch() {
        let a = vec![
            t("127.0.0.1:5070", Proto::Udp),
            t("[2001:db8::1]:5061", Proto::Tls),
        ];
        let b = vec![t("192.0.2.9:5060", Proto::Tcp)];
        let bytes = encode_all(&[(0, a.clone()), (3, b.clone()), (4, Vec::new())]);
        assert_eq!(bytes.len(), 2 + 2 * TARGET_LEN + 2 + TARGET_LEN);
        assert_eq!(decode_all(&bytes), vec![(0, a), (3, b)]);
        // A cut record ends the walk where it stops making sense.
        assert_eq!(decode_all(&bytes[..2 + TARGET_LEN]).len(), 0);
        assert!(decode_all(&[]).is_empty());
    }

    #[test]
    fn the_failover_copy_carries_its_own_branch_id() {
        let req = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKab.0\r\n\r\n";
        let out = with_branch_id(req, "z9hG4bKab.0", "z9hG4bKab.10").unwrap();
        assert_eq!(
            out,
            b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKab.10\r\n\r\n"
        );
        assert!(with_branch_id(req, "z9hG4bKzz", "x").is_none());
    }
}
