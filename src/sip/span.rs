//! Positions into a message buffer.
//!
//! A parsed message records where things are rather than copying them, so
//! the buffer can be cloned into shared memory as one block and re-parsed
//! in another process with identical results.

/// A byte range `start .. start + len` inside some buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    /// The empty span at offset 0.
    pub const EMPTY: Span = Span { start: 0, len: 0 };

    /// Builds a span; values beyond `u32` saturate (messages are far smaller,
    /// and `get` then yields an empty slice instead of wrong bytes).
    pub fn new(start: usize, len: usize) -> Span {
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(0),
        }
    }

    /// Span covering `start .. end` (empty when `end < start`).
    pub fn from_to(start: usize, end: usize) -> Span {
        Span::new(start, end.saturating_sub(start))
    }

    /// Offset one past the last byte.
    pub fn end(&self) -> usize {
        (self.start as usize).saturating_add(self.len as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of this span; empty if the span does not fit in `buf`.
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end()).unwrap_or(&[])
    }

    /// This span moved by `base` (turns a span relative to a sub-slice into
    /// one absolute in the enclosing buffer).
    pub fn offset(&self, base: usize) -> Span {
        Span::new(self.start as usize + base, self.len as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_never_panics() {
        let b = b"hello";
        assert_eq!(Span::new(1, 3).get(b), b"ell");
        assert_eq!(Span::new(4, 3).get(b), b"");
        assert_eq!(Span::new(9, 0).get(b), b"");
        assert_eq!(
            Span {
                start: u32::MAX,
                len: u32::MAX
            }
            .get(b),
            b""
        );
        assert_eq!(Span::EMPTY.get(b), b"");
        assert!(Span::EMPTY.is_empty());
        assert_eq!(Span::new(2, 3).end(), 5);
        assert_eq!(Span::from_to(5, 2), Span::new(5, 0));
        assert_eq!(Span::new(1, 2).offset(10), Span::new(11, 2));
    }
}
