//! Nonces we issue and the checks on a nonce a client returns.
//!
//! A nonce is 48 hex digits: when it expires (unix seconds), its number,
//! and an HMAC-SHA256 (truncated to 128 bits) of both under the server's
//! secret. So a nonce we did not make is refused (no guessing, no
//! database of issued nonces), an old one is told apart as stale (the
//! client just needs a fresh one: `stale=true`), and with `qop=auth` its
//! number names a slot in shared memory holding the highest nonce count
//! seen: a count that does not grow is a replay, refused in every worker.
//! A slot reused by a newer nonce makes the old one stale.
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use ring::hmac;
use shm::{Region, ShmError};

/// Nonce-count slots: with the default 300 s expiry a slot is reused
/// only after 65536 challenges in that time (218 per second).
pub const NC_SLOTS: usize = 1 << 16;

const MAC_LEN: usize = 16;
/// Hex digits of a nonce.
pub const NONCE_LEN: usize = 2 * (8 + MAC_LEN);

/// What a returned nonce is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Ours and in time.
    Fresh { expires: u32, nid: u32 },
    /// Ours, but expired (or its count slot went to a newer nonce).
    Stale,
    /// Not one of ours: forged, mangled, or from before a restart with
    /// another secret.
    Foreign,
}

/// The server's nonce key.
pub struct Nonces {
    key: hmac::Key,
}

impl Nonces {
    /// `secret`: the `secret` parameter; random (per start) when absent.
    pub fn new(secret: Option<&str>) -> std::io::Result<Nonces> {
        let key = match secret {
            Some(s) => hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes()),
            None => {
                let mut k = [0u8; 32];
                crate::os::random::fill(&mut k)?;
                hmac::Key::new(hmac::HMAC_SHA256, &k)
            }
        };
        Ok(Nonces { key })
    }

    fn mac(&self, head: &[u8; 8]) -> [u8; MAC_LEN] {
        let tag = hmac::sign(&self.key, head);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        out
    }

    /// A nonce expiring at `expires` with number `nid`.
    pub fn make(&self, expires: u32, nid: u32) -> String {
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&expires.to_be_bytes());
        head[4..].copy_from_slice(&nid.to_be_bytes());
        let mut s = String::with_capacity(NONCE_LEN);
        for b in head.iter().chain(self.mac(&head).iter()) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// What `nonce` is at `now` (unix seconds).
    pub fn check(&self, nonce: &str, now: u32) -> Check {
        let Some(raw) = unhex::<{ NONCE_LEN / 2 }>(nonce) else {
            return Check::Foreign;
        };
        let mut head = [0u8; 8];
        head.copy_from_slice(&raw[..8]);
        if !super::digest::ct_eq(&self.mac(&head), &raw[8..]) {
            return Check::Foreign;
        }
        let expires = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let nid = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if now > expires {
            Check::Stale
        } else {
            Check::Fresh { expires, nid }
        }
    }
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The nonce-count slots and the nonce numbering, in shared memory.
#[derive(Debug)]
pub struct NcTable {
    next: &'static AtomicU32,
    /// Per slot: the expiry of the nonce that owns it (high half) and the
    /// highest count accepted (low half).
    slots: &'static [AtomicU64],
}

/// Why a nonce count is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcError {
    /// Not higher than one already accepted.
    Replay,
    /// The slot belongs to a newer nonce now.
    Reused,
}

impl NcTable {
    /// A table over `next` and `slots` (shm in the server, leaked
    /// memory in tests).
    pub fn new(next: &'static AtomicU32, slots: &'static [AtomicU64]) -> Option<NcTable> {
        (!slots.is_empty()).then_some(NcTable { next, slots })
    }

    fn slot(&self, nid: u32) -> &AtomicU64 {
        &self.slots[nid as usize % self.slots.len()]
    }

    /// Numbers a new nonce expiring at `expires`, its slot reset.
    pub fn issue(&self, expires: u32) -> u32 {
        let nid = self.next.fetch_add(1, Ordering::Relaxed);
        self.slot(nid)
            .store(u64::from(expires) << 32, Ordering::Relaxed);
        nid
    }

    /// Accepts count `nc` of nonce (`expires`, `nid`) if it is higher than
    /// every count accepted before.
    pub fn accept(&self, expires: u32, nid: u32, nc: u32) -> Result<(), NcError> {
        let slot = self.slot(nid);
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            if (cur >> 32) as u32 != expires {
                return Err(NcError::Reused);
            }
            if nc <= cur as u32 {
                return Err(NcError::Replay);
            }
            let new = (u64::from(expires) << 32) | u64::from(nc);
            match slot.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }
}

shm::shm_struct! {
    struct NextNid {
        next: AtomicU32,
    }
}

static TABLE: OnceLock<NcTable> = OnceLock::new();

/// Allocates the shared table. Once, before the fork.
pub fn init(region: &'static Region) -> Result<(), ShmError> {
    if TABLE.get().is_some() {
        return Ok(());
    }
    let next = region.alloc(NextNid {
        next: AtomicU32::new(0),
    })?;
    let slots = region.alloc_slice_zeroed::<AtomicU64>(NC_SLOTS)?;
    if let Some(t) = NcTable::new(&region.get(next).next, region.slice(slots)) {
        let _ = TABLE.set(t);
    }
    Ok(())
}

/// The shared table, once `init` ran.
pub fn table() -> Option<&'static NcTable> {
    TABLE.get()
}

/// A process-local table for tests.
#[cfg(test)]
pub fn test_table(n: usize) -> NcTable {
    let next = Box::leak(Box::new(AtomicU32::new(0)));
    let v: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    NcTable::new(next, Box::leak(v.into_boxed_slice())).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_nonces_check_and_others_do_not() {
        let n = Nonces::new(Some("s3cret")).unwrap();
        let x = n.make(1000, 7);
        assert_eq!(x.len(), NONCE_LEN);
        assert_eq!(
            n.check(&x, 999),
            Check::Fresh {
                expires: 1000,
                nid: 7
            }
        );
        assert_eq!(
            n.check(&x, 1000),
            Check::Fresh {
                expires: 1000,
                nid: 7
            }
        );
        assert_eq!(n.check(&x, 1001), Check::Stale);
        // Another secret, one changed digit, a longer expiry: foreign.
        assert_eq!(
            Nonces::new(Some("other")).unwrap().check(&x, 999),
            Check::Foreign
        );
        let mut b = x.clone().into_bytes();
        b[3] = if b[3] == b'0' { b'1' } else { b'0' };
        assert_eq!(n.check(std::str::from_utf8(&b).unwrap(), 0), Check::Foreign);
        for bad in ["", "zz", &x[1..], &format!("{x}0"), &"g".repeat(NONCE_LEN)] {
            assert_eq!(n.check(bad, 0), Check::Foreign, "{bad}");
        }
        // Random secrets differ per start.
        let r = Nonces::new(None).unwrap();
        assert_eq!(
            Nonces::new(None).unwrap().check(&r.make(5, 5), 0),
            Check::Foreign
        );
    }

    #[test]
    fn counts_must_grow_and_a_reused_slot_ends_the_old_nonce() {
        let t = test_table(4);
        let a = t.issue(100);
        assert_eq!(t.accept(100, a, 1), Ok(()));
        assert_eq!(t.accept(100, a, 1), Err(NcError::Replay));
        assert_eq!(t.accept(100, a, 3), Ok(()));
        assert_eq!(t.accept(100, a, 2), Err(NcError::Replay));
        // Four more nonces: the slot of `a` goes to the last.
        for _ in 0..4 {
            t.issue(200);
        }
        assert_eq!(t.accept(100, a, 9), Err(NcError::Reused));
    }
}
