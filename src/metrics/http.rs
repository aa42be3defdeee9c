//! Just enough HTTP/1.0 and 1.1 for a scraper: the request head is read
//! whole (bounded), only its request line matters, and every answer
//! closes the connection. Sans-io: bytes in, a decision and bytes out.

/// Most bytes a request head may take; past it the answer is 431.
pub const MAX_HEAD: usize = 8192;

/// The one path served.
pub const METRICS_PATH: &str = "/metrics";

/// What a complete (or hopeless) request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `GET /metrics` (`head_only` for `HEAD`), from an HTTP/1.`minor` client.
    Metrics { head_only: bool, minor: u8 },
    /// Another path.
    NotFound { minor: u8 },
    /// `/metrics` with a method other than GET or HEAD.
    MethodNotAllowed { minor: u8 },
    /// Not an HTTP/1.x request line.
    Bad,
    /// No end of head within [`MAX_HEAD`] bytes.
    TooLarge,
}

/// `None` while the head is still incomplete (no blank line yet, and
/// under [`MAX_HEAD`]).
pub fn parse(buf: &[u8]) -> Option<Ask> {
    let end = find_head_end(buf);
    if end.is_none() {
        return (buf.len() >= MAX_HEAD).then_some(Ask::TooLarge);
    }
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    let Ok(line) = std::str::from_utf8(line) else {
        return Some(Ask::Bad);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(Ask::Bad);
    };
    let minor = match version {
        "HTTP/1.0" => 0,
        "HTTP/1.1" => 1,
        _ => return Some(Ask::Bad),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Some(Ask::Bad);
    }
    // A query string does not change what is served.
    let path = target.split('?').next().unwrap_or(target);
    if path != METRICS_PATH {
        return Some(Ask::NotFound { minor });
    }
    Some(match method {
        "GET" => Ask::Metrics {
            head_only: false,
            minor,
        },
        "HEAD" => Ask::Metrics {
            head_only: true,
            minor,
        },
        _ => Ask::MethodNotAllowed { minor },
    })
}

/// Where the head ends: the first empty line (CRLF CRLF, or bare LFs).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The whole response to `ask`; `body` is the exposition (used for
/// `Metrics` only).
pub fn respond(ask: Ask, content_type: &str, body: &str) -> Vec<u8> {
    let (minor, status, ctype, extra, body, head_only) = match ask {
        Ask::Metrics { head_only, minor } => (minor, "200 OK", content_type, "", body, head_only),
        Ask::NotFound { minor } => (
            minor,
            "404 Not Found",
            "text/plain",
            "",
            "not found: only /metrics is served\n",
            false,
        ),
        Ask::MethodNotAllowed { minor } => (
            minor,
            "405 Method Not Allowed",
            "text/plain",
            "Allow: GET, HEAD\r\n",
            "method not allowed\n",
            false,
        ),
        Ask::Bad => (
            1,
            "400 Bad Request",
            "text/plain",
            "",
            "bad request\n",
            false,
        ),
        Ask::TooLarge => (
            1,
            "431 Request Header Fields Too Large",
            "text/plain",
            "",
            "request head too large\n",
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.{minor} {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_is_recognised_in_both_versions_and_with_bare_lfs() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
            Some(Ask::Metrics {
                head_only: false,
                minor: 1
            })
        );
        assert_eq!(
            parse(b"HEAD /metrics?x=1 HTTP/1.0\n\n"),
            Some(Ask::Metrics {
                head_only: true,
                minor: 0
            })
        );
    }

    #[test]
    fn an_incomplete_head_waits_until_the_cap() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(parse(&big), Some(Ask::TooLarge));
    }

    #[test]
    fn other_paths_methods_and_junk_get_their_answers() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Some(Ask::NotFound { minor: 1 })
        );
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            Some(Ask::MethodNotAllowed { minor: 1 })
        );
        for junk in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(parse(junk), Some(Ask::Bad), "{junk:?}");
        }
    }

    #[test]
    fn responses_carry_length_type_and_close() {
        let ok = String::from_utf8(respond(
            Ask::Metrics {
                head_only: false,
                minor: 1,
            },
            "text/plain; version=0.0.4",
            "a 1\n",
        ))
        .unwrap();
        assert_eq!(
            ok,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        let head = respond(
            Ask::Metrics {
                head_only: true,
                minor: 0,
            },
            "t",
            "a 1\n",
        );
        assert!(head.starts_with(b"HTTP/1.0 200 OK\r\n") && head.ends_with(b"\r\n\r\n"));
        let nf = String::from_utf8(respond(Ask::NotFound { minor: 0 }, "t", "a 1\n")).unwrap();
        assert!(nf.starts_with("HTTP/1.0 404 Not Found\r\n") && !nf.contains("a 1"));
        let na = String::from_utf8(respond(Ask::MethodNotAllowed { minor: 1 }, "t", "")).unwrap();
        assert!(na.starts_with("HTTP/1.1 405 ") && na.contains("\r\nAllow: GET, HEAD\r\n"));
    }
}
