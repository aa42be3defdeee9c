//! Non-cryptographic hashes for tags and branch ids.
//!
//! SER derives its stateless To-tags from MD5; nothing requires MD5 itself,
//! only that a tag be stable for this server and unlikely to collide, so a
//! 128-bit FNV-1a pair does the job without a crypto dependency.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over several byte strings, with a separator so that
/// `["ab","c"]` and `["a","bc"]` differ.
pub fn fnv64(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET ^ seed;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        h ^= 0xff;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// 32 lowercase hex digits.
pub fn hex128(parts: &[&[u8]]) -> String {
    format!(
        "{:016x}{:016x}",
        fnv64(0, parts),
        fnv64(0x9e37_79b9_7f4a_7c15, parts)
    )
}

/// 16-bit digest, written as 4 hex digits (SER's CRC16 suffix plays this role).
pub fn hex16(parts: &[&[u8]]) -> String {
    let h = fnv64(0x5555, parts);
    format!("{:04x}", (h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48)) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_separated() {
        assert_eq!(hex128(&[b"a", b"b"]), hex128(&[b"a", b"b"]));
        assert_ne!(hex128(&[b"ab", b"c"]), hex128(&[b"a", b"bc"]));
        assert_eq!(hex128(&[b"x"]).len(), 32);
        assert_eq!(hex16(&[b"x"]).len(), 4);
    }
}
