//! AVPs as bytes, so they can live with a transaction in shared memory
//! (tm stores the request's AVPs at relay time and gives them back to the
//! failure and onreply routes, as SER keeps them in the cell).
//!
//! Layout, repeated per AVP: one tag byte (bit 0: string name, bit 1:
//! string value), the name (u32 id, or u16 length + bytes), the value
//! (i64, or u32 length + bytes). Little-endian throughout. A damaged block
//! is an error, never a panic: the bytes come from shared memory another
//! process wrote.

use crate::route::ctx::{AvpName, AvpValue};

const STR_NAME: u8 = 1;
const STR_VALUE: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AvpDecodeError {
    #[error("AVP block cut short at byte {0}")]
    Truncated(usize),
    #[error("unknown AVP tag {tag:#x} at byte {at}")]
    BadTag { tag: u8, at: usize },
}

/// Encode `avps` in order (oldest first, as `MsgCtx::avps`). Names longer
/// than 64 KiB are cut; SER limits them far below that.
pub fn encode(avps: &[(AvpName, AvpValue)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(avps.len() * 24);
    for (name, value) in avps {
        let mut tag = 0;
        if matches!(name, AvpName::Str(_)) {
            tag |= STR_NAME;
        }
        if matches!(value, AvpValue::Str(_)) {
            tag |= STR_VALUE;
        }
        out.push(tag);
        match name {
            AvpName::Int(id) => out.extend_from_slice(&id.to_le_bytes()),
            AvpName::Str(s) => {
                let s = &s[..s.len().min(usize::from(u16::MAX))];
                out.extend_from_slice(&(s.len() as u16).to_le_bytes());
                out.extend_from_slice(s);
            }
        }
        match value {
            AvpValue::Int(n) => out.extend_from_slice(&n.to_le_bytes()),
            AvpValue::Str(s) => {
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&s[..len as usize]);
            }
        }
    }
    out
}

/// The inverse of [`encode`].
pub fn decode(mut bytes: &[u8]) -> Result<Vec<(AvpName, AvpValue)>, AvpDecodeError> {
    let total = bytes.len();
    let mut out = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        let at = total - bytes.len();
        if tag & !(STR_NAME | STR_VALUE) != 0 {
            return Err(AvpDecodeError::BadTag { tag, at });
        }
        bytes = rest;
        let mut cur = Cursor {
            bytes: &mut bytes,
            total,
        };
        let name = if tag & STR_NAME != 0 {
            let len = u16::from_le_bytes(cur.take_array()?);
            AvpName::Str(cur.take(usize::from(len))?.to_vec())
        } else {
            AvpName::Int(u32::from_le_bytes(cur.take_array()?))
        };
        let value = if tag & STR_VALUE != 0 {
            let len = u32::from_le_bytes(cur.take_array()?);
            AvpValue::Str(cur.take(len as usize)?.to_vec())
        } else {
            AvpValue::Int(i64::from_le_bytes(cur.take_array()?))
        };
        out.push((name, value));
    }
    Ok(out)
}

struct Cursor<'a, 'b> {
    bytes: &'a mut &'b [u8],
    total: usize,
}

impl<'b> Cursor<'_, 'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], AvpDecodeError> {
        if self.bytes.len() < n {
            return Err(AvpDecodeError::Truncated(self.total - self.bytes.len()));
        }
        let (head, rest) = self.bytes.split_at(n);
        *self.bytes = rest;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], AvpDecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(AvpName, AvpValue)> {
        vec![
            (AvpName::Str(b"callee_fr_timer".to_vec()), AvpValue::Int(2)),
            (AvpName::Int(7), AvpValue::Str(b"sip:bob@h".to_vec())),
            (AvpName::Int(u32::MAX), AvpValue::Int(-5)),
            (AvpName::Str(Vec::new()), AvpValue::Str(Vec::new())),
        ]
    }

    #[test]
    fn round_trip_keeps_order_and_types() {
        let avps = sample();
        assert_eq!(decode(&encode(&avps)).unwrap(), avps);
        assert_eq!(decode(&[]).unwrap(), vec![]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode(&sample());
        for cut in 1..bytes.len() {
            // A cut exactly at an AVP boundary is a shorter valid list.
            if let Ok(v) = decode(&bytes[..cut]) {
                assert!(v.len() < sample().len());
            }
        }
        assert_eq!(decode(&bytes[..3]), Err(AvpDecodeError::Truncated(3)));
        assert!(matches!(
            decode(&[0x80]),
            Err(AvpDecodeError::BadTag { tag: 0x80, at: 0 })
        ));
    }
}
