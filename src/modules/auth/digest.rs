//! RFC 2617 digest, sans-io: the credentials of an `Authorization` or
//! `Proxy-Authorization` header value, and the response they must carry
//! for a given HA1. No I/O, no clock, no secret: `nonce` checks that.
use md5::{Digest, Md5};

/// `qop` of a credential: none (RFC 2069 style) or `auth`. `auth-int` is
/// refused when parsing: we never offer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    None,
    Auth,
}

/// The parameters of one `Digest` credential, borrowed from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub nonce: &'a str,
    pub uri: &'a str,
    pub response: &'a str,
    pub qop: Qop,
    /// With `qop=auth`: the client nonce and the nonce count (8 hex).
    pub cnonce: &'a str,
    pub nc: &'a str,
    pub opaque: Option<&'a str>,
}

/// Why a credential is unusable (SER answers these 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not a Digest credential")]
    NotDigest,
    #[error("malformed credential parameters")]
    Syntax,
    #[error("credential without {0}")]
    Missing(&'static str),
    #[error("unsupported algorithm")]
    Algorithm,
    #[error("unsupported qop")]
    Qop,
    #[error("nonce count is not 8 hex digits")]
    Nc,
}

/// Longest value taken for any parameter: a credential is a few hundred
/// bytes; anything longer is an attack on our buffers or the database.
const MAX_VALUE: usize = 512;

/// Parses `Digest username="…", realm="…", …`. Unknown parameters are
/// skipped (RFC 2617 3.2.2: "auth-param"); each known one at most once.
pub fn parse(value: &str) -> Result<Credentials<'_>, DigestError> {
    let v = value.trim_start();
    let scheme_end = v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len());
    if !v[..scheme_end].eq_ignore_ascii_case("digest") {
        return Err(DigestError::NotDigest);
    }
    let mut rest = &v[scheme_end..];
    let mut c = Credentials {
        username: "",
        realm: "",
        nonce: "",
        uri: "",
        response: "",
        qop: Qop::None,
        cnonce: "",
        nc: "",
        opaque: None,
    };
    let (mut seen_user, mut seen_realm, mut seen_nonce, mut seen_uri, mut seen_resp) =
        (false, false, false, false, false);
    let mut qop_text = None;
    loop {
        rest = rest.trim_start_matches(|ch: char| ch.is_ascii_whitespace() || ch == ',');
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=').ok_or(DigestError::Syntax)?;
        let name = rest[..eq].trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DigestError::Syntax);
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            // A quoted string; `\` escapes one character. Values with an
            // escape are refused rather than unescaped: no client sends
            // them in these parameters, and a borrowed value stays exact.
            let end = q.find('"').ok_or(DigestError::Syntax)?;
            value = &q[..end];
            if value.contains('\\') {
                return Err(DigestError::Syntax);
            }
            rest = &q[end + 1..];
        } else {
            let end = rest
                .find(|ch: char| ch == ',' || ch.is_ascii_whitespace())
                .unwrap_or(rest.len());
            value = &rest[..end];
            rest = &rest[end..];
        }
        if value.len() > MAX_VALUE || value.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(DigestError::Syntax);
        }
        let once = |seen: &mut bool| -> Result<(), DigestError> {
            if std::mem::replace(seen, true) {
                Err(DigestError::Syntax)
            } else {
                Ok(())
            }
        };
        match name.to_ascii_lowercase().as_str() {
            "username" => {
                once(&mut seen_user)?;
                c.username = value;
            }
            "realm" => {
                once(&mut seen_realm)?;
                c.realm = value;
            }
            "nonce" => {
                once(&mut seen_nonce)?;
                c.nonce = value;
            }
            "uri" => {
                once(&mut seen_uri)?;
                c.uri = value;
            }
            "response" => {
                once(&mut seen_resp)?;
                c.response = value;
            }
            "algorithm" if !value.eq_ignore_ascii_case("md5") => {
                return Err(DigestError::Algorithm);
            }
            "qop" => qop_text = Some(value),
            "cnonce" => c.cnonce = value,
            "nc" => c.nc = value,
            "opaque" => c.opaque = Some(value),
            _ => {}
        }
    }
    for (seen, what) in [
        (seen_user, "username"),
        (seen_realm, "realm"),
        (seen_nonce, "nonce"),
        (seen_uri, "uri"),
        (seen_resp, "response"),
    ] {
        if !seen {
            return Err(DigestError::Missing(what));
        }
    }
    match qop_text {
        None => {}
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            c.qop = Qop::Auth;
            if c.cnonce.is_empty() {
                return Err(DigestError::Missing("cnonce"));
            }
            if c.nc.len() != 8 || !c.nc.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DigestError::Nc);
            }
        }
        Some(_) => return Err(DigestError::Qop),
    }
    Ok(c)
}

impl Credentials<'_> {
    /// The nonce count, with `qop=auth`.
    pub fn nc_value(&self) -> Option<u32> {
        (self.qop == Qop::Auth)
            .then(|| u32::from_str_radix(self.nc, 16).ok())
            .flatten()
    }

    /// The response they must carry for `ha1` and the request's method.
    pub fn expected_response(&self, ha1: &str, method: &str) -> String {
        let ha2 = hex_md5(&[method.as_bytes(), b":", self.uri.as_bytes()]);
        match self.qop {
            Qop::None => hex_md5(&[
                ha1.as_bytes(),
                b":",
                self.nonce.as_bytes(),
                b":",
                ha2.as_bytes(),
            ]),
            Qop::Auth => hex_md5(&[
                ha1.as_bytes(),
                b":",
                self.nonce.as_bytes(),
                b":",
                self.nc.as_bytes(),
                b":",
                self.cnonce.as_bytes(),
                b":auth:",
                ha2.as_bytes(),
            ]),
        }
    }

    /// Whether the response is right for `ha1` (compared in constant
    /// time, case-insensitively: some clients send upper-case hex).
    pub fn verify(&self, ha1: &str, method: &str) -> bool {
        let want = self.expected_response(ha1, method);
        let got = self.response.to_ascii_lowercase();
        ct_eq(want.as_bytes(), got.as_bytes())
    }
}

/// Equal bytes, in time that does not depend on where they differ (so a
/// response or a MAC cannot be found byte by byte by timing).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HA1 = MD5(username:realm:password), lower-case hex.
pub fn ha1(username: &str, realm: &str, password: &str) -> String {
    hex_md5(&[
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ])
}

/// Lower-case hex MD5 of the concatenated parts.
pub fn hex_md5(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    let d = h.finalize();
    let mut s = String::with_capacity(32);
    for b in d {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 3.5's example, with qop=auth.
    const RFC: &str = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    #[test]
    fn the_rfc_example_verifies() {
        let c = parse(RFC).unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.qop, Qop::Auth);
        assert_eq!(c.nc_value(), Some(1));
        let ha1 = ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert!(c.verify(&ha1, "GET"));
        assert!(!c.verify(&ha1, "POST"));
        assert!(!c.verify(&super::ha1("Mufasa", "testrealm@host.com", "x"), "GET"));
    }

    #[test]
    fn without_qop_the_2069_form_is_used() {
        let ha1 = ha1("bob", "example.com", "secret");
        let ha2 = hex_md5(&[b"REGISTER:sip:example.com"]);
        let resp = hex_md5(&[ha1.as_bytes(), b":n1:", ha2.as_bytes()]);
        let v = format!(
            "Digest username=\"bob\",realm=\"example.com\",nonce=\"n1\",uri=\"sip:example.com\",\
             response=\"{}\",algorithm=MD5",
            resp.to_uppercase()
        );
        let c = parse(&v).unwrap();
        assert_eq!((c.qop, c.nc_value()), (Qop::None, None));
        assert!(c.verify(&ha1, "REGISTER"));
    }

    #[test]
    fn broken_credentials_are_refused_not_guessed() {
        for (v, e) in [
            ("Basic dXNlcjpwYXNz", DigestError::NotDigest),
            ("Digest username=\"a\"", DigestError::Missing("realm")),
            ("Digest username=\"a\",realm=\"r\",nonce=\"n\",uri=\"u\"", DigestError::Missing("response")),
            ("Digest username=\"a,realm=\"r\"", DigestError::Syntax),
            ("Digest username=\"a\",username=\"b\",realm=\"r\",nonce=\"n\",uri=\"u\",response=\"x\"", DigestError::Syntax),
            ("Digest username=\"a\",realm=\"r\",nonce=\"n\",uri=\"u\",response=\"x\",algorithm=SHA-256", DigestError::Algorithm),
            ("Digest username=\"a\",realm=\"r\",nonce=\"n\",uri=\"u\",response=\"x\",qop=auth-int,cnonce=\"c\",nc=00000001", DigestError::Qop),
            ("Digest username=\"a\",realm=\"r\",nonce=\"n\",uri=\"u\",response=\"x\",qop=auth,nc=00000001", DigestError::Missing("cnonce")),
            ("Digest username=\"a\",realm=\"r\",nonce=\"n\",uri=\"u\",response=\"x\",qop=auth,cnonce=\"c\",nc=1", DigestError::Nc),
            ("Digest username=\"a\\\"b\",realm=\"r\",nonce=\"n\",uri=\"u\",response=\"x\"", DigestError::Syntax),
            ("Digest username=\"a\x01\",realm=\"r\",nonce=\"n\",uri=\"u\",response=\"x\"", DigestError::Syntax),
            ("Digest =x", DigestError::Syntax),
        ] {
            assert_eq!(parse(v), Err(e), "{v}");
        }
        let long = format!(
            "Digest username=\"{}\",realm=\"r\",nonce=\"n\",uri=\"u\",response=\"x\"",
            "a".repeat(MAX_VALUE + 1)
        );
        assert_eq!(parse(&long), Err(DigestError::Syntax));
    }

    #[test]
    fn any_input_parses_or_fails_without_panic() {
        let mut rng = shm::TestRng::new(7);
        let alphabet = b"Digest usernamrlcoqp=\",\\ \t\x00abc1=";
        for _ in 0..20_000 {
            let n = rng.index(80);
            let s: String = (0..n)
                .map(|_| char::from(alphabet[rng.index(alphabet.len())]))
                .collect();
            let _ = parse(&s);
            let _ = parse(&format!("Digest {s}"));
        }
    }
}
