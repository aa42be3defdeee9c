//! Byte-level helpers shared by the header parsers (RFC 3261 §25.1).
//! All take explicit bounds and never index past them.

/// RFC 3261 `token` characters: alphanum and `-.!%*_+` `` ` `` `'~`.
#[inline]
pub(super) fn is_token(c: u8) -> bool {
    TOKEN[c as usize]
}

/// Lookup table for `is_token` (the header-name scan is the hot loop).
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    t
};

/// Linear white space, folding line ends included (values may be folded).
pub(super) fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Byte at `i`, or 0 past the end (0 is never a meaningful SIP character).
#[inline]
pub(super) fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// First index at or after `i` (below `end`) that is not LWS.
pub(super) fn skip_lws(b: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && is_lws(at(b, i)) {
        i += 1;
    }
    i
}

/// First index at or after `i` (below `end`) that is not a token char.
pub(super) fn skip_token(b: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && is_token(at(b, i)) {
        i += 1;
    }
    i
}

/// `start..end` with LWS trimmed from both sides.
pub(super) fn trim(b: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    start = skip_lws(b, start, end);
    while end > start && is_lws(at(b, end - 1)) {
        end -= 1;
    }
    (start, end)
}

/// Given `i` at an opening `"`, the index just past the closing quote;
/// `None` when unterminated. Backslash escapes one character (§25.1).
pub(super) fn skip_quoted(b: &[u8], i: usize, end: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < end {
        match at(b, j) {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    None
}

/// Index of the next comma at the top level of a header value (outside
/// quoted strings and `<...>`), or `end`. `None` on an unterminated quote
/// or angle bracket.
pub(super) fn find_comma(b: &[u8], mut i: usize, end: usize) -> Option<usize> {
    while i < end {
        match at(b, i) {
            b',' => return Some(i),
            b'"' => i = skip_quoted(b, i, end)?,
            b'<' => {
                let rel = memchr::memchr(b'>', b.get(i..end)?)?;
                i += rel + 1;
            }
            _ => i += 1,
        }
    }
    Some(end)
}

/// Parses `1*DIGIT` that fits in a `u32`; `None` for empty, non-digits or
/// overflow.
pub(super) fn parse_u32(s: &[u8]) -> Option<u32> {
    // leading zeros are legal (`0068`) and must not count toward the length
    let nz = s
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(s.len().saturating_sub(1));
    let s = s.get(nz..).unwrap_or(&[]);
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    u32::try_from(v).ok()
}

/// Parses a port number (`1*DIGIT` in 0..=65535).
pub(super) fn parse_u16(s: &[u8]) -> Option<u16> {
    parse_u32(s).and_then(|v| u16::try_from(v).ok())
}

/// One `;name[=value]` parameter found by `next_param`; indices absolute.
#[derive(Clone, Copy, Debug)]
pub(super) struct Param {
    /// Index of the `;` that introduces the parameter.
    pub semi: usize,
    pub name: (usize, usize),
    pub value: Option<(usize, usize)>,
    /// Index just past the parameter (past trailing LWS).
    pub end: usize,
}

/// Parses one generic parameter starting at a `;` at index `i` (RFC 3261
/// `generic-param`: token, host, or quoted-string values, LWS around `;`
/// and `=`). `None` when malformed (empty name, bad value, unterminated
/// quote).
pub(super) fn next_param(b: &[u8], i: usize, end: usize) -> Option<Param> {
    if at(b, i) != b';' {
        return None;
    }
    let ns = skip_lws(b, i + 1, end);
    let ne = skip_token(b, ns, end);
    if ne == ns {
        return None;
    }
    let mut j = skip_lws(b, ne, end);
    let mut value = None;
    if j < end && at(b, j) == b'=' {
        let vs = skip_lws(b, j + 1, end);
        let ve = match at(b, vs) {
            b'"' if vs < end => skip_quoted(b, vs, end)?,
            b'[' if vs < end => {
                let rel = memchr::memchr(b']', b.get(vs..end)?)?;
                vs + rel + 1
            }
            _ => {
                // token, or host (token chars plus ':' for IPv6 without [])
                let mut k = vs;
                while k < end && (is_token(at(b, k)) || at(b, k) == b':') {
                    k += 1;
                }
                k
            }
        };
        if ve == vs {
            return None;
        }
        value = Some((vs, ve));
        j = skip_lws(b, ve, end);
    }
    Some(Param {
        semi: i,
        name: (ns, ne),
        value,
        end: j,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let b = b"  a\r\n b ";
        assert_eq!(trim(b, 0, b.len()), (2, 7));
        assert_eq!(skip_quoted(b"\"a\\\"b\" x", 0, 8), Some(6));
        assert_eq!(skip_quoted(b"\"abc", 0, 4), None);
        assert_eq!(skip_quoted(b"\"abc\\", 0, 5), None);
        let v = b"\"a,b\" <sip:x,y>;p=1 , z";
        assert_eq!(find_comma(v, 0, v.len()), Some(20));
        assert_eq!(find_comma(b"<sip:a", 0, 6), None);
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"000000000000042"), Some(42));
        assert_eq!(parse_u32(b"0000"), Some(0));
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u16(b"65536"), None);
        let p = b";  tag = abc ;x";
        let r = next_param(p, 0, p.len()).unwrap();
        assert_eq!(&p[r.name.0..r.name.1], b"tag");
        let (vs, ve) = r.value.unwrap();
        assert_eq!(&p[vs..ve], b"abc");
        assert_eq!(r.end, 13);
        assert!(next_param(b";;", 0, 2).is_none());
        assert!(next_param(b";a=", 0, 3).is_none());
        assert!(next_param(b";a=\"x", 0, 5).is_none());
    }
}
