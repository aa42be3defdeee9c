//! The byte encoding of one record (an AOR and its bindings) in shared
//! memory.
//!
//! A record is rewritten as a whole on every change: registrations are
//! rare next to lookups, and one immutable block per record means a reader
//! never sees half an update and shm needs no per-binding headers.
//! Numbers are LEB128 varints, so a typical binding costs its strings plus
//! about 20 bytes.
//!
//! Layout: `MAGIC`, key length, key bytes, binding count, then per binding
//! contact, Call-ID, User-Agent, received (each length + bytes), expires+1
//! (so `PERMANENT` wraps to a one-byte 0), last-modified, q+1 (so
//! [`Q_UNSPECIFIED`] is 0), CSeq, flags. Decoding is total: a damaged
//! block is an `Err`, never a panic.

use super::binding::{Binding, Q_UNSPECIFIED};

/// First byte of every block; a changed layout gets a new value.
const MAGIC: u8 = 0xB1;

/// Why a block could not be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record block has an unknown format byte {0:#04x}")]
    BadMagic(u8),
    #[error("record block ends inside a field")]
    Truncated,
    #[error("record block has a number out of range")]
    BadNumber,
    #[error("record block has {0} bytes after its last binding")]
    TrailingBytes(usize),
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// The block for `key` and `bindings`.
pub(super) fn encode(key: &[u8], bindings: &[Binding]) -> Vec<u8> {
    let strings: usize = bindings
        .iter()
        .map(|b| b.contact.len() + b.call_id.len() + b.user_agent.len() + b.received.len())
        .sum();
    let mut out = Vec::with_capacity(8 + key.len() + strings + 24 * bindings.len());
    out.push(MAGIC);
    put_bytes(&mut out, key);
    put_varint(&mut out, bindings.len() as u64);
    for b in bindings {
        put_bytes(&mut out, &b.contact);
        put_bytes(&mut out, &b.call_id);
        put_bytes(&mut out, &b.user_agent);
        put_bytes(&mut out, &b.received);
        put_varint(&mut out, b.expires_ms.wrapping_add(1));
        put_varint(&mut out, b.last_modified_ms);
        // q is -1 (unspecified) or 0..=1000 in well-formed bindings; a
        // caller's out-of-range value is clamped rather than corrupting.
        put_varint(&mut out, (b.q.clamp(Q_UNSPECIFIED, 1000) + 1) as u64);
        put_varint(&mut out, u64::from(b.cseq));
        put_varint(&mut out, u64::from(b.flags));
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or(CodecError::Truncated)?;
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(CodecError::BadNumber);
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::BadNumber)
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        u32::try_from(self.varint()?).map_err(|_| CodecError::BadNumber)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = usize::try_from(self.varint()?).map_err(|_| CodecError::Truncated)?;
        let end = self.pos.checked_add(len).ok_or(CodecError::Truncated)?;
        let b = self.buf.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(b)
    }
}

fn header(block: &[u8]) -> Result<(Reader<'_>, &[u8]), CodecError> {
    let magic = *block.first().ok_or(CodecError::Truncated)?;
    if magic != MAGIC {
        return Err(CodecError::BadMagic(magic));
    }
    let mut r = Reader { buf: block, pos: 1 };
    let key = r.bytes()?;
    Ok((r, key))
}

/// The key of a block, without decoding its bindings (hash-chain walks).
pub(super) fn key_of(block: &[u8]) -> Result<&[u8], CodecError> {
    header(block).map(|(_, k)| k)
}

/// The key and every binding of a block (expired ones included).
pub(super) fn decode(block: &[u8]) -> Result<(&[u8], Vec<Binding>), CodecError> {
    let (mut r, key) = header(block)?;
    let count = r.varint()?;
    // Each binding takes at least 9 bytes, so a count beyond that is damage
    // (and must not drive a huge allocation).
    if count > (block.len() / 9) as u64 {
        return Err(CodecError::BadNumber);
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let contact = r.bytes()?.to_vec();
        let call_id = r.bytes()?.to_vec();
        let user_agent = r.bytes()?.to_vec();
        let received = r.bytes()?.to_vec();
        let expires_ms = r.varint()?.wrapping_sub(1);
        let last_modified_ms = r.varint()?;
        let q = match r.varint()? {
            q @ 0..=1001 => q as i32 - 1,
            _ => return Err(CodecError::BadNumber),
        };
        let cseq = r.u32()?;
        let flags = r.u32()?;
        out.push(Binding {
            contact,
            expires_ms,
            q,
            call_id,
            cseq,
            flags,
            user_agent,
            received,
            last_modified_ms,
        });
    }
    match block.len() - r.pos {
        0 => Ok((key, out)),
        n => Err(CodecError::TrailingBytes(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::usrloc::binding::PERMANENT;

    pub(crate) fn binding(contact: &str, expires_ms: u64) -> Binding {
        Binding {
            contact: contact.as_bytes().to_vec(),
            expires_ms,
            q: 500,
            call_id: b"c1@h".to_vec(),
            cseq: 7,
            flags: 1,
            user_agent: b"phone/1.0".to_vec(),
            received: Vec::new(),
            last_modified_ms: 1234,
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let mut a = binding("sip:bob@1.2.3.4:5060", 99_000);
        a.received = b"sip:9.9.9.9:5070".to_vec();
        let mut p = binding("sip:bob@h", PERMANENT);
        p.q = Q_UNSPECIFIED;
        p.cseq = u32::MAX;
        p.flags = 128;
        let mut z = binding("", 0);
        z.q = 0;
        let v = vec![a, p, z];
        let block = encode(b"Bob@Example.com", &v);
        let (key, back) = decode(&block).unwrap();
        assert_eq!(key, b"Bob@Example.com");
        assert_eq!(key_of(&block).unwrap(), b"Bob@Example.com");
        assert_eq!(back, v);
        let empty = encode(b"k", &[]);
        assert_eq!(decode(&empty).unwrap().1, vec![]);
    }

    #[test]
    fn a_binding_costs_its_strings_plus_a_few_bytes() {
        let b = binding("sip:bob@1.2.3.4:5060", 1_000_000_000);
        let one = encode(b"bob", std::slice::from_ref(&b)).len();
        let two = encode(b"bob", &[b.clone(), b.clone()]).len();
        let strings = b.contact.len() + b.call_id.len() + b.user_agent.len();
        assert!(two - one <= strings + 20, "{} bytes", two - one);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let block = encode(b"bob", &[binding("sip:a@h", 5), binding("sip:b@h", 6)]);
        assert_eq!(decode(&[]), Err(CodecError::Truncated));
        assert_eq!(decode(&[0x00, 1, b'k', 0]), Err(CodecError::BadMagic(0)));
        // Every truncation fails cleanly.
        for n in 0..block.len() {
            assert!(decode(&block[..n]).is_err(), "prefix {n} accepted");
        }
        let mut long = block.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(CodecError::TrailingBytes(1)));
        // A count far beyond the block's size.
        assert_eq!(
            decode(&[MAGIC, 0, 0xff, 0xff, 0x03]),
            Err(CodecError::BadNumber)
        );
        // An endless varint.
        assert!(
            decode(&[MAGIC, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
                .is_err()
        );
        // Flipping any byte never panics.
        for i in 0..block.len() {
            let mut d = block.clone();
            d[i] ^= 0xa5;
            let _ = decode(&d);
        }
    }
}
