//! Request-URI rewriting (`sethost`, `setuser`, `prefix`, `strip` ...).
//!
//! As SER does, a rewrite rebuilds `sip:user[:pw]@host[:port][;params][?hdrs]`
//! from the parsed current URI with one part replaced; the scheme always
//! becomes `sip:` and the result is capped at 1024 bytes.

use crate::sip::{parse_uri, Span};

/// Longest URI a rewrite may produce (SER's MAX_URI_SIZE).
pub const MAX_URI: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriEdit {
    /// `seturi`: the whole URI.
    Set(Vec<u8>),
    /// `sethost`: host, port kept.
    Host(Vec<u8>),
    /// `sethostport("h[:p]")`: host and port.
    HostPort(Vec<u8>),
    /// `setport`.
    Port(Vec<u8>),
    /// `setuser`: user, password kept.
    User(Vec<u8>),
    /// `setuserpass("user[:pw]")`: the whole user-info.
    UserPass(Vec<u8>),
    /// `prefix`.
    Prefix(Vec<u8>),
    /// `strip(n)`: drop the first n characters of the user.
    Strip(usize),
    /// `strip_tail(n)`: drop the last n characters of the user.
    StripTail(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriEditError {
    #[error("current URI cannot be parsed")]
    Unparsable,
    #[error("rewritten URI longer than {MAX_URI} bytes")]
    TooLong,
    /// The parts put together do not read back as the URI meant (an `@`
    /// in the parameters once the user-info is gone): the R-URI is left
    /// as it was rather than changed into another one.
    #[error("rewritten URI would not parse as written")]
    Malformed,
}

fn part(s: &[u8], sp: Option<Span>) -> &[u8] {
    sp.map(|p| p.get(s)).unwrap_or(&[])
}

/// Apply one edit to `cur`, giving the new URI.
pub fn rewrite(cur: &[u8], edit: &UriEdit) -> Result<Vec<u8>, UriEditError> {
    if let UriEdit::Set(u) = edit {
        return bounded(u.clone());
    }
    let u = parse_uri(cur).map_err(|_| UriEditError::Unparsable)?;
    let mut user = part(cur, u.user).to_vec();
    let mut pass = u.password.map(|p| p.get(cur).to_vec());
    let mut host = u.host.get(cur).to_vec();
    let mut port = part(cur, u.port_span).to_vec();
    match edit {
        UriEdit::Set(_) => {}
        UriEdit::Host(h) => host = h.clone(),
        UriEdit::HostPort(hp) => {
            let (h, p) = split_host_port(hp);
            host = h.to_vec();
            port = p.to_vec();
        }
        UriEdit::Port(p) => port = p.clone(),
        UriEdit::User(n) => user = n.clone(),
        UriEdit::UserPass(up) => {
            match up.iter().position(|b| *b == b':') {
                Some(i) => {
                    user = up[..i].to_vec();
                    pass = Some(up[i + 1..].to_vec());
                }
                None => {
                    user = up.clone();
                    pass = None;
                }
            };
        }
        UriEdit::Prefix(p) => {
            let mut n = p.clone();
            n.extend_from_slice(&user);
            user = n;
        }
        UriEdit::Strip(n) => user = user.get(*n..).map(|s| s.to_vec()).unwrap_or_default(),
        UriEdit::StripTail(n) => {
            user.truncate(user.len().saturating_sub(*n));
            // A cut inside a `%XX` escape takes the whole escape: half of
            // one is not a URI (found by the uri fuzz target).
            let tail = user.len().saturating_sub(2);
            if let Some(i) = user[tail..].iter().rposition(|b| *b == b'%') {
                user.truncate(tail + i);
            }
        }
    }
    let mut out = Vec::with_capacity(cur.len() + 32);
    out.extend_from_slice(b"sip:");
    if !user.is_empty() {
        out.extend_from_slice(&user);
        if let Some(p) = &pass {
            out.push(b':');
            out.extend_from_slice(p);
        }
        out.push(b'@');
    }
    out.extend_from_slice(&host);
    if !port.is_empty() {
        out.push(b':');
        out.extend_from_slice(&port);
    }
    if !u.params.is_empty() {
        out.push(b';');
        out.extend_from_slice(u.params.get(cur));
    }
    if !u.headers.is_empty() {
        out.push(b'?');
        out.extend_from_slice(u.headers.get(cur));
    }
    // What is sent must be what was meant: the host read back is the host
    // written (found by the uri fuzz target).
    match parse_uri(&out) {
        Ok(back) if back.host.get(&out) == host.as_slice() => bounded(out),
        _ => Err(UriEditError::Malformed),
    }
}

fn bounded(u: Vec<u8>) -> Result<Vec<u8>, UriEditError> {
    if u.len() > MAX_URI {
        Err(UriEditError::TooLong)
    } else {
        Ok(u)
    }
}

/// `host[:port]`, with IPv6 references in brackets.
pub fn split_host_port(hp: &[u8]) -> (&[u8], &[u8]) {
    if hp.first() == Some(&b'[') {
        if let Some(end) = hp.iter().position(|b| *b == b']') {
            let rest = &hp[end + 1..];
            let port = rest.strip_prefix(b":").unwrap_or(&[]);
            return (&hp[..=end], port);
        }
        return (hp, &[]);
    }
    match hp.iter().rposition(|b| *b == b':') {
        Some(i) => (&hp[..i], &hp[i + 1..]),
        None => (hp, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(cur: &str, e: UriEdit) -> String {
        String::from_utf8(rewrite(cur.as_bytes(), &e).unwrap()).unwrap()
    }

    #[test]
    fn a_rewrite_that_would_read_back_differently_is_refused() {
        // strip() empties the user of a URI whose parameters hold an `@`:
        // without the user-info that `@` would start one.
        let u = b"sip:ab:pw@h.example;x=a@evil.example";
        assert_eq!(rewrite(u, &UriEdit::Strip(2)), Err(UriEditError::Malformed));
        assert_eq!(
            rewrite(u, &UriEdit::Strip(1)).unwrap(),
            b"sip:b:pw@h.example;x=a@evil.example".to_vec()
        );
    }

    #[test]
    fn rewrites_each_part() {
        let u = "sip:alice:pw@example.com:5070;transport=udp?subject=x";
        assert_eq!(
            rw(u, UriEdit::Host(b"h.net".to_vec())),
            "sip:alice:pw@h.net:5070;transport=udp?subject=x"
        );
        assert_eq!(
            rw(u, UriEdit::HostPort(b"1.2.3.4".to_vec())),
            "sip:alice:pw@1.2.3.4;transport=udp?subject=x"
        );
        assert_eq!(
            rw(u, UriEdit::HostPort(b"[::1]:7".to_vec())),
            "sip:alice:pw@[::1]:7;transport=udp?subject=x"
        );
        assert_eq!(
            rw(u, UriEdit::Port(b"9".to_vec())),
            "sip:alice:pw@example.com:9;transport=udp?subject=x"
        );
        assert_eq!(
            rw(u, UriEdit::User(b"bob".to_vec())),
            "sip:bob:pw@example.com:5070;transport=udp?subject=x"
        );
        assert_eq!(
            rw(u, UriEdit::UserPass(b"bob".to_vec())),
            "sip:bob@example.com:5070;transport=udp?subject=x"
        );
        assert_eq!(
            rw("sip:123@h", UriEdit::Prefix(b"00".to_vec())),
            "sip:00123@h"
        );
        assert_eq!(rw("sip:00123@h", UriEdit::Strip(2)), "sip:123@h");
        assert_eq!(rw("sip:123@h", UriEdit::Strip(9)), "sip:h");
        assert_eq!(rw("sip:12345@h", UriEdit::StripTail(2)), "sip:123@h");
        assert_eq!(
            rw("sips:x@h", UriEdit::User(b"voicemail".to_vec())),
            "sip:voicemail@h"
        );
    }

    #[test]
    fn strip_tail_never_splits_an_escape() {
        let cur = "sip:a%40b%2Cc@example.com";
        assert_eq!(rw(cur, UriEdit::StripTail(1)), "sip:a%40b%2C@example.com");
        assert_eq!(rw(cur, UriEdit::StripTail(2)), "sip:a%40b@example.com");
        assert_eq!(rw(cur, UriEdit::StripTail(3)), "sip:a%40b@example.com");
        assert_eq!(rw(cur, UriEdit::StripTail(5)), "sip:a%40@example.com");
        assert_eq!(rw(cur, UriEdit::StripTail(6)), "sip:a@example.com");
        assert_eq!(rw("sip:%41@h", UriEdit::StripTail(1)), "sip:h");
    }

    #[test]
    fn refuses_garbage_and_overlong() {
        assert_eq!(
            rewrite(b"not a uri", &UriEdit::Host(b"h".to_vec())),
            Err(UriEditError::Unparsable)
        );
        let long = vec![b'a'; 2000];
        assert_eq!(
            rewrite(b"sip:h", &UriEdit::User(long)),
            Err(UriEditError::TooLong)
        );
    }
}
