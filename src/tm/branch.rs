//! Our Via branch ids: `z9hG4bK<hash>.<label>.<mac>.<branch>`, all hex.
//!
//! `hash` and `label` lead a reply to its cell with one bucket lookup;
//! `branch` names the fork. `mac` is a keyed SipHash of the three under a
//! secret drawn from the kernel once per start, before the fork, so every
//! process shares it. Without it, ids were a 16-bit hash and a counter
//! starting from a constant: 65 536 blind spoofed replies reached every
//! ringing call (RFC 3261 8.1.1.7 asks for branches "sufficiently random"
//! that this cannot happen). A reply whose MAC does not verify matches no
//! transaction. The bucket labels start from secret-derived values too, so
//! ids differ from one start to the next.

use std::sync::OnceLock;

use crate::tm::key::COOKIE;
use crate::util::siphash::{siphash24, SipKey};

/// Width of the hash part: the table has 2^16 buckets.
/// SER's table size: 2^16 buckets; the hash in a branch id is below it.
pub const TABLE_BITS: u32 = 16;

const HASH_LIMIT: u32 = 1 << TABLE_BITS;

/// The MAC is always written as 16 hex digits.
const MAC_DIGITS: usize = 16;

static SECRET: OnceLock<SipKey> = OnceLock::new();

/// The transaction and fork a branch id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchId {
    pub hash: u32,
    pub label: u32,
    pub branch: u8,
}

/// Draw this start's secret. Call once, before the fork.
pub fn init() -> std::io::Result<()> {
    let mut b = [0u8; 16];
    crate::os::random::fill(&mut b)?;
    // A second call (tests setting up twice) keeps the first secret: ids
    // already handed out must stay valid.
    let _ = SECRET.set(SipKey::from_bytes(b));
    Ok(())
}

/// The secret; drawn on first use when `init` was not called (unit tests,
/// which never fork). std's RandomState is seeded from the kernel as well
/// and serves if getrandom is unavailable.
fn secret() -> &'static SipKey {
    SECRET.get_or_init(|| {
        let mut b = [0u8; 16];
        if crate::os::random::fill(&mut b).is_err() {
            use std::hash::{BuildHasher, Hasher};
            for (i, half) in b.chunks_mut(8).enumerate() {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(i);
                half.copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        SipKey::from_bytes(b)
    })
}

fn mac(key: &SipKey, hash: u32, label: u32, branch: u8) -> u64 {
    let mut m = [0u8; 9];
    m[..4].copy_from_slice(&hash.to_le_bytes());
    m[4..8].copy_from_slice(&label.to_le_bytes());
    m[8] = branch;
    siphash24(key, &m)
}

/// Where bucket `bucket`'s label counter starts in this run.
pub fn label_seed(bucket: u32) -> u32 {
    let mut m = [0u8; 9];
    m[..5].copy_from_slice(b"label");
    m[5..].copy_from_slice(&bucket.to_le_bytes());
    siphash24(secret(), &m) as u32
}

fn hex<T>(s: &[u8], parse: fn(&str, u32) -> Result<T, std::num::ParseIntError>) -> Option<T> {
    // from_str_radix would take a leading '+'; a branch id never has one.
    if s.is_empty() || !s.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    parse(std::str::from_utf8(s).ok()?, 16).ok()
}

impl BranchId {
    pub fn encode(&self) -> String {
        self.encode_with(secret())
    }

    /// The id in `b` if we wrote it in this run (its MAC verifies).
    pub fn decode(b: &[u8]) -> Option<BranchId> {
        BranchId::decode_with(b, secret())
    }

    fn encode_with(&self, key: &SipKey) -> String {
        let m = mac(key, self.hash, self.label, self.branch);
        format!(
            "z9hG4bK{:x}.{:x}.{m:016x}.{:x}",
            self.hash, self.label, self.branch
        )
    }

    fn decode_with(b: &[u8], key: &SipKey) -> Option<BranchId> {
        let rest = b.strip_prefix(COOKIE)?;
        let mut it = rest.split(|&c| c == b'.');
        let hash = hex(it.next()?, u32::from_str_radix)?;
        let label = hex(it.next()?, u32::from_str_radix)?;
        let mac_text = it.next()?;
        let branch = hex(it.next()?, u8::from_str_radix)?;
        if it.next().is_some()
            || mac_text.len() != MAC_DIGITS
            || hash >= HASH_LIMIT
            || usize::from(branch) >= crate::tm::fsm::MAX_BRANCHES
        {
            return None;
        }
        let got = hex(mac_text, u64::from_str_radix)?;
        (got == mac(key, hash, label, branch)).then_some(BranchId {
            hash,
            label,
            branch,
        })
    }
}

/// The transaction a raw message's top Via names when its branch is one
/// of ours (`(hash, label)`): what the `debug>=4` message trace shows
/// (`logging::trace`). Read from the bytes, not a parsed message, because
/// the trace sees every message, parsable or not.
pub fn top_via_transaction(raw: &[u8]) -> Option<(u32, u32)> {
    BranchId::decode(top_via_branch(raw)?).map(|id| (id.hash, id.label))
}

/// The `branch` parameter of the first Via of the first Via header line
/// (a folded Via is not followed: we never write one).
fn top_via_branch(raw: &[u8]) -> Option<&[u8]> {
    for line in raw.split(|&c| c == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = name.trim_ascii();
        if !(name.eq_ignore_ascii_case(b"via") || name.eq_ignore_ascii_case(b"v")) {
            continue;
        }
        let first = value.get(1..)?.split(|&c| c == b',').next()?;
        return first.split(|&c| c == b';').skip(1).find_map(|p| {
            let p = p.trim_ascii();
            let (k, v) = p.split_at(p.iter().position(|&c| c == b'=')?);
            k.trim_ascii()
                .eq_ignore_ascii_case(b"branch")
                .then(|| v.get(1..).unwrap_or_default().trim_ascii())
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: [u8; 16] = *b"0123456789abcdef";

    fn key() -> SipKey {
        SipKey::from_bytes(K)
    }

    #[test]
    fn round_trip() {
        let id = BranchId {
            hash: 0xbeef,
            label: 0x1234_5678,
            branch: 3,
        };
        let s = id.encode_with(&key());
        assert!(s.starts_with("z9hG4bKbeef.12345678."), "{s}");
        assert!(s.ends_with(".3"), "the fork index comes last: {s}");
        assert_eq!(s.len(), "z9hG4bKbeef.12345678..3".len() + 16);
        assert_eq!(BranchId::decode_with(s.as_bytes(), &key()), Some(id));
        // Upper-case hex (a peer may change case) still verifies.
        let upper = format!("z9hG4bK{}", s[7..].to_ascii_uppercase());
        assert_eq!(BranchId::decode_with(upper.as_bytes(), &key()), Some(id));
        // The process-wide secret round-trips too.
        assert_eq!(BranchId::decode(id.encode().as_bytes()), Some(id));
    }

    #[test]
    fn forged_or_foreign_ids_are_refused() {
        let id = BranchId {
            hash: 0x1a2b,
            label: 7,
            branch: 0,
        };
        let s = id.encode_with(&key());
        // Another run's secret.
        let other = SipKey::from_bytes(*b"fedcba9876543210");
        assert_eq!(BranchId::decode_with(s.as_bytes(), &other), None);
        let mac = &s[s.len() - 18..s.len() - 2];
        // One MAC digit changed.
        let mut forged = s.clone().into_bytes();
        let at = forged.len() - 3;
        forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
        assert_eq!(BranchId::decode_with(&forged, &key()), None);
        // The MAC of one transaction fits neither the next label nor
        // another fork of it.
        let next = format!("z9hG4bK1a2b.8.{mac}.0");
        assert_eq!(BranchId::decode_with(next.as_bytes(), &key()), None);
        let fork = format!("z9hG4bK1a2b.7.{mac}.1");
        assert_eq!(BranchId::decode_with(fork.as_bytes(), &key()), None);
        assert_eq!(
            BranchId::decode_with(format!("z9hG4bK1a2b.7.{mac}.0").as_bytes(), &key()),
            Some(id)
        );
        // The old unsigned format, and odd shapes.
        for bad in [
            &b"z9hG4bK1a2b.7.0"[..],
            b"z9hG4bK1a2b.7..0",
            b"z9hG4bK10000.1.0000000000000000.0",
            b"z9hG4bK1a2b.7.0000000000000000.c",
            b"z9hG4bK+1a2b.7.0000000000000000.0",
            b"z9hG4bK1a2b.7.000000000000000.0",
            b"z9hG4bKsl1234",
            b"abc",
        ] {
            assert_eq!(BranchId::decode_with(bad, &key()), None, "{bad:?}");
        }
    }

    #[test]
    fn label_seeds_spread() {
        assert_ne!(label_seed(0), label_seed(1));
    }

    #[test]
    fn the_trace_reads_our_top_via_only() {
        let id = BranchId {
            hash: 0x2a,
            label: 99,
            branch: 1,
        };
        let ours = id.encode();
        let reply = format!(
            "SIP/2.0 200 OK\r\nFrom: <sip:a@b>\r\nv: SIP/2.0/UDP 127.0.0.1:5060;rport;BRANCH = {ours}, SIP/2.0/UDP x;branch=z9hG4bKother\r\nVia: SIP/2.0/UDP y;branch=z9hG4bKy\r\n\r\n"
        );
        assert_eq!(top_via_transaction(reply.as_bytes()), Some((0x2a, 99)));
        // Ours second: the top one decides.
        let second = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKx\r\nVia: SIP/2.0/UDP y;branch={ours}\r\n\r\n"
        );
        assert_eq!(top_via_transaction(second.as_bytes()), None);
        // No Via before the body, or no headers at all.
        let in_body = format!("OPTIONS sip:x SIP/2.0\r\n\r\nVia: a;branch={ours}\r\n");
        assert_eq!(top_via_transaction(in_body.as_bytes()), None);
        assert_eq!(top_via_transaction(b"garbage"), None);
        assert_eq!(top_via_transaction(b"X\nVia: a;branch\n"), None);
    }
}
