//! The edit list applied to the original bytes when forwarding (SER's
//! "lumps"): nothing is re-serialised that was not touched.

use super::error::LumpError;
use super::span::Span;

#[derive(Clone, Copy, Debug)]
struct Edit {
    at: u32,
    del: u32,
    seq: u32,
    /// Range of the inserted bytes in `Lumps::data`.
    ins_start: u32,
    ins_len: u32,
}

/// Names one insertion so that a copy of the list can change what it
/// inserts (`Lumps::rewrite`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LumpId(u32);

/// Insertions, deletions and replacements against one original buffer.
#[doc(alias = "lump")]
#[derive(Clone, Debug, Default)]
pub struct Lumps {
    edits: Vec<Edit>,
    data: Vec<u8>,
}

impl Lumps {
    fn push(&mut self, at: usize, del: usize, bytes: &[u8]) {
        let seq = self.edits.len() as u32;
        let ins_start = self.data.len() as u32;
        self.data.extend_from_slice(bytes);
        self.edits.push(Edit {
            at: u32::try_from(at).unwrap_or(u32::MAX),
            del: u32::try_from(del).unwrap_or(u32::MAX),
            seq,
            ins_start,
            ins_len: bytes.len() as u32,
        });
    }

    /// Inserts before the original byte at `at` (`at == len` appends).
    /// Several inserts at one offset come out in the order they were added,
    /// and before a deletion/replacement starting there.
    pub fn insert(&mut self, at: usize, bytes: &[u8]) {
        self.push(at, 0, bytes);
    }

    /// [`Self::insert`], returning the insertion's name.
    pub fn insert_named(&mut self, at: usize, bytes: &[u8]) -> LumpId {
        let id = LumpId(self.edits.len() as u32);
        self.push(at, 0, bytes);
        id
    }

    /// Make insertion `id` insert `bytes` instead (same place, same
    /// order); false if there is no such insertion (the list was cleared).
    pub fn rewrite(&mut self, id: LumpId, bytes: &[u8]) -> bool {
        let ins_start = self.data.len() as u32;
        match self.edits.get_mut(id.0 as usize) {
            Some(e) if e.del == 0 => {
                e.ins_start = ins_start;
                e.ins_len = bytes.len() as u32;
                self.data.extend_from_slice(bytes);
                true
            }
            _ => false,
        }
    }

    /// Replaces the original bytes of `span`.
    pub fn replace(&mut self, span: Span, bytes: &[u8]) {
        self.push(span.start as usize, span.len as usize, bytes);
    }

    /// Removes the original bytes of `span`.
    pub fn delete(&mut self, span: Span) {
        self.push(span.start as usize, span.len as usize, &[]);
    }

    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    pub fn clear(&mut self) {
        self.edits.clear();
        self.data.clear();
    }

    /// Appends `buf` with the edits applied to `out`. Overlapping
    /// deletions/replacements, or an insert strictly inside a deleted
    /// range, are an error (and `out` is then left partially written).
    pub fn apply(&self, buf: &[u8], out: &mut Vec<u8>) -> Result<(), LumpError> {
        let mut order: Vec<&Edit> = self.edits.iter().collect();
        // by offset; pure inserts before the deletion at the same offset
        order.sort_unstable_by_key(|e| (e.at, e.del > 0, e.seq));
        out.reserve(buf.len() + self.data.len());
        let mut cursor = 0usize;
        for e in order {
            let at = e.at as usize;
            let end = at
                .checked_add(e.del as usize)
                .ok_or(LumpError::OutOfRange)?;
            if end > buf.len() {
                return Err(LumpError::OutOfRange);
            }
            if at < cursor {
                return Err(LumpError::Overlap);
            }
            out.extend_from_slice(buf.get(cursor..at).ok_or(LumpError::OutOfRange)?);
            let ins = self
                .data
                .get(e.ins_start as usize..e.ins_start as usize + e.ins_len as usize)
                .ok_or(LumpError::OutOfRange)?;
            out.extend_from_slice(ins);
            cursor = end;
        }
        out.extend_from_slice(buf.get(cursor..).unwrap_or(&[]));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(l: &Lumps, b: &[u8]) -> Result<Vec<u8>, LumpError> {
        let mut out = Vec::new();
        l.apply(b, &mut out).map(|_| out)
    }

    #[test]
    fn a_copy_rewrites_a_named_insertion_in_place() {
        let b = b"0123456789";
        let mut l = Lumps::default();
        l.insert(3, b"a");
        let id = l.insert_named(3, b"b");
        l.insert(3, b"c");
        let mut copy = l.clone();
        assert!(copy.rewrite(id, b"BB"));
        assert_eq!(run(&copy, b).unwrap(), b"012aBBc3456789");
        assert_eq!(run(&l, b).unwrap(), b"012abc3456789");
        l.clear();
        assert!(!l.rewrite(id, b"x"));
    }

    #[test]
    fn edits() {
        let b = b"0123456789";
        let mut l = Lumps::default();
        assert!(l.is_empty());
        assert_eq!(run(&l, b).unwrap(), b);
        l.insert(3, b"a");
        l.replace(Span::new(3, 2), b"R");
        l.insert(3, b"b");
        l.delete(Span::new(7, 1));
        l.insert(10, b"END");
        l.insert(0, b"<");
        l.insert(5, b"|");
        assert_eq!(run(&l, b).unwrap(), b"<012abR|5689END");
        l.clear();
        assert!(l.is_empty());
        assert_eq!(run(&l, b).unwrap(), b);
    }

    #[test]
    fn errors() {
        let b = b"0123456789";
        let mut l = Lumps::default();
        l.delete(Span::new(2, 4));
        l.replace(Span::new(5, 2), b"x");
        assert_eq!(run(&l, b), Err(LumpError::Overlap));
        let mut l = Lumps::default();
        l.delete(Span::new(2, 4));
        l.insert(3, b"x");
        assert_eq!(run(&l, b), Err(LumpError::Overlap));
        let mut l = Lumps::default();
        l.delete(Span::new(2, 2));
        l.delete(Span::new(2, 2));
        assert_eq!(run(&l, b), Err(LumpError::Overlap));
        let mut l = Lumps::default();
        l.delete(Span::new(8, 3));
        assert_eq!(run(&l, b), Err(LumpError::OutOfRange));
        let mut l = Lumps::default();
        l.insert(11, b"x");
        assert_eq!(run(&l, b), Err(LumpError::OutOfRange));
        let mut l = Lumps::default();
        l.replace(
            Span {
                start: u32::MAX,
                len: u32::MAX,
            },
            b"x",
        );
        assert_eq!(run(&l, b), Err(LumpError::OutOfRange));
        // adjacent deletions and an insert at a deletion's end are fine
        let mut l = Lumps::default();
        l.delete(Span::new(2, 2));
        l.delete(Span::new(4, 2));
        l.insert(6, b"x");
        assert_eq!(run(&l, b).unwrap(), b"01x6789");
    }
}
