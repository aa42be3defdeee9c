//! tm and the destination blacklist (`net::blacklist`, SER 2.1's
//! `use_dst_blacklist`): which methods look it up before a branch goes
//! out (`blst_methods_lookup`), and what adds a next hop to it — a 503
//! (`blst_503`, for Retry-After clamped to `blst_503_min_timeout` ..
//! `blst_503_max_timeout`, or `blst_503_def_timeout` without one), an
//! unanswered branch of a method in `blst_methods_add`, a send failure
//! (those two for `dst_blacklist_expire`).
//!
//! With `use_dst_blacklist=no` there is no table and every function here
//! does nothing.

use std::net::SocketAddr;

use crate::net::blacklist::{self, Added, Dest};
use crate::sip::{Method, Msg};
use crate::tm::env::{now, Env};
use crate::tm::params::BlstParams;

/// SER 2.1's method bits (tm docs, `blst_methods_add`): INVITE=1,
/// CANCEL=2, ACK=4, BYE=8, INFO=16, REGISTER=32, SUBSCRIBE=64,
/// NOTIFY=128, OTHER=256. The docs print NOTIFY as 126, a typo: the bits
/// are powers of two (126 would be CANCEL..SUBSCRIBE together).
pub fn method_bit(m: Method) -> u32 {
    match m {
        Method::Invite => 1,
        Method::Cancel => 2,
        Method::Ack => 4,
        Method::Bye => 8,
        Method::Info => 16,
        Method::Register => 32,
        Method::Subscribe => 64,
        Method::Notify => 128,
        Method::Options
        | Method::Message
        | Method::Prack
        | Method::Update
        | Method::Refer
        | Method::Publish
        | Method::Other => 256,
    }
}

/// The bit of a cell's method (stored as `Method as u32`).
pub fn cell_method_bit(code: u32) -> u32 {
    Method::ALL
        .iter()
        .find(|m| **m as u32 == code)
        .map_or(256, |m| method_bit(*m))
}

/// Seconds a 503 blacklists its source for; `None`: not at all.
pub fn timeout_of_503(p: &BlstParams, retry_after: Option<u32>) -> Option<u32> {
    if !p.on_503 {
        return None;
    }
    let s = match retry_after {
        Some(ra) => ra.max(p.min_503_s).min(p.max_503_s),
        None => p.def_503_s,
    };
    (s > 0).then_some(s)
}

/// The delta-seconds of a Retry-After value (`120 (lunch) ;duration=60`).
pub fn retry_after_secs(v: &[u8]) -> Option<u32> {
    let v = v.trim_ascii_start();
    let end = v
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(v.len());
    let digits = std::str::from_utf8(v.get(..end)?).ok()?;
    if digits.is_empty() {
        return None;
    }
    // Longer than u32 seconds is "a very long time": the maximum clamps it.
    Some(
        digits
            .parse::<u64>()
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX)),
    )
}

fn add(dest: Dest, secs: u64, why: &str) {
    let Some(t) = blacklist::table() else { return };
    if let Added::Evicted(old) = t.add(dest, secs.saturating_mul(1000), now()) {
        crate::warn_limited!(
            "dst blacklist full: {} {} gave way to {} {}",
            old.proto,
            old.addr,
            dest.proto,
            dest.addr
        );
    }
    crate::log_limited!(
        log::Level::Info,
        "dst blacklist: {} {} added for {secs} s ({why})",
        dest.proto,
        dest.addr
    );
}

/// Whether a branch of a transaction whose method is `cell_method` (as
/// the cell keeps it) must not go to `addr` now.
pub fn blocks(env: &Env, cell_method: u32, addr: SocketAddr) -> bool {
    let Some(t) = blacklist::table() else {
        return false;
    };
    env.params.blst.methods_lookup & cell_method_bit(cell_method) != 0
        && t.lookup(Dest::udp(addr), now()).is_some()
}

/// A 503 arrived from `src` on one of our branches.
pub fn on_503(env: &Env, reply: &Msg, src: SocketAddr) {
    if blacklist::table().is_none() {
        return;
    }
    let ra = reply
        .find_header(b"Retry-After")
        .and_then(|h| retry_after_secs(reply.value(h)));
    if let Some(s) = timeout_of_503(&env.params.blst, ra) {
        add(Dest::udp(src), u64::from(s), "503");
    }
}

/// FR expired on a branch to `dst` that heard nothing (`Unanswered`).
pub fn on_unanswered(env: &Env, cell_method: u32, dst: SocketAddr) {
    let Some(t) = blacklist::table() else { return };
    if env.params.blst.methods_add & cell_method_bit(cell_method) != 0 {
        add(Dest::udp(dst), t.default_ms / 1000, "no reply");
    }
}

/// Sending a branch to `dst` failed.
pub fn on_send_failure(dst: SocketAddr) {
    let Some(t) = blacklist::table() else { return };
    add(Dest::udp(dst), t.default_ms / 1000, "send failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_of_a_503() {
        let mut p = BlstParams::default();
        // blst_503 off (SER's default): never.
        assert_eq!(timeout_of_503(&p, Some(30)), None);
        p.on_503 = true;
        // No Retry-After and blst_503_def_timeout 0: RFC behaviour, none.
        assert_eq!(timeout_of_503(&p, None), None);
        p.def_503_s = 20;
        assert_eq!(timeout_of_503(&p, None), Some(20));
        // Retry-After within [min, max] as given, else clamped.
        p.min_503_s = 5;
        p.max_503_s = 60;
        assert_eq!(timeout_of_503(&p, Some(30)), Some(30));
        assert_eq!(timeout_of_503(&p, Some(1)), Some(5));
        assert_eq!(timeout_of_503(&p, Some(3600)), Some(60));
        // Retry-After: 0 with no minimum: not blacklisted.
        p.min_503_s = 0;
        assert_eq!(timeout_of_503(&p, Some(0)), None);
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(retry_after_secs(b" 120 (lunch) ;duration=60"), Some(120));
        assert_eq!(retry_after_secs(b"3"), Some(3));
        assert_eq!(retry_after_secs(b"99999999999999999999"), Some(u32::MAX));
        assert_eq!(retry_after_secs(b"soon"), None);
        assert_eq!(retry_after_secs(b""), None);
    }

    #[test]
    fn method_bits_are_ser_2_1s() {
        assert_eq!(method_bit(Method::Notify), 128);
        assert_eq!(method_bit(Method::Message), 256);
        assert_eq!(cell_method_bit(Method::Invite as u32), 1);
        assert_eq!(cell_method_bit(Method::Bye as u32), 8);
        assert_eq!(cell_method_bit(999), 256);
        // The default lookup set is every method but BYE.
        let d = BlstParams::default().methods_lookup;
        assert_eq!(d & method_bit(Method::Bye), 0);
        for m in [Method::Invite, Method::Cancel, Method::Ack, Method::Other] {
            assert_ne!(d & method_bit(m), 0);
        }
    }
}
