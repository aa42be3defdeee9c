//! The text framing of SER 0.9's management interfaces (FIFO and unix
//! datagram socket share it): building a request, parsing a reply. Pure
//! functions: no I/O, so every rule here is unit-tested on plain bytes.

/// A request could not be framed; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The command name was empty.
    #[error("empty command name")]
    EmptyCommand,
    /// The command name holds a character that would break the first line
    /// (`:`, whitespace or a control character).
    #[error("command name {0:?} contains ':' , whitespace or a control character")]
    BadCommand(String),
    /// The reply name holds `.`, `/`, `\`, `:` or a control character: the
    /// server refuses those (they could escape its reply directory).
    #[error("reply name {0:?} contains '.', '/', '\\', ':' or a control character")]
    BadReplyName(String),
    /// A parameter contains a line break: it would be read as two lines.
    #[error("parameter {index} contains a line break")]
    NewlineInParam {
        /// Position of the parameter, from 0.
        index: usize,
    },
}

/// The bytes received are not a management-interface reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Nothing was received.
    #[error("empty reply")]
    Empty,
    /// The first line is not `<3-digit code> <text>`.
    #[error("malformed status line {0:?}")]
    BadStatusLine(String),
}

/// A parsed reply: the status line split in code and text, then the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit status code (100..=699).
    pub code: u16,
    /// The text after the code (may be empty).
    pub text: String,
    /// The body lines, without their line ends.
    pub body: Vec<String>,
}

impl Reply {
    /// A 2xx code means the command succeeded.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The status line as the server sent it (`200 ok`).
    pub fn status_line(&self) -> String {
        if self.text.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {}", self.code, self.text)
        }
    }
}

/// Frames `:<cmd>:<reply_name>`, one line per parameter, then the empty line
/// that SER's FIFO server consumes after every command (without it the next
/// request's first line would be swallowed).
pub fn build_request(cmd: &str, reply_name: &str, params: &[&str]) -> Result<Vec<u8>, BuildError> {
    if cmd.is_empty() {
        return Err(BuildError::EmptyCommand);
    }
    if cmd
        .chars()
        .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(BuildError::BadCommand(cmd.to_owned()));
    }
    if reply_name
        .chars()
        .any(|c| matches!(c, '.' | '/' | '\\' | ':') || c.is_whitespace() || c.is_control())
    {
        return Err(BuildError::BadReplyName(reply_name.to_owned()));
    }
    // A CR would be trimmed by the server at the end of a line and kept in
    // the middle; neither is what the operator typed, so refuse it too.
    if let Some(index) = params.iter().position(|p| p.contains(['\n', '\r'])) {
        return Err(BuildError::NewlineInParam { index });
    }
    let len = 4 + cmd.len() + reply_name.len() + params.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(b':');
    out.extend_from_slice(cmd.as_bytes());
    out.push(b':');
    out.extend_from_slice(reply_name.as_bytes());
    out.push(b'\n');
    for p in params {
        out.extend_from_slice(p.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    Ok(out)
}

/// Splits a reply into status code, text and body lines. Line ends may be
/// LF or CRLF; a missing final LF (SER's `kill` reply has none) is fine.
/// Bytes that are not UTF-8 are replaced rather than refused: the operator
/// still wants to see the rest of the output.
pub fn parse_reply(raw: &[u8]) -> Result<Reply, ReplyError> {
    if raw.is_empty() {
        return Err(ReplyError::Empty);
    }
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or(ReplyError::Empty)?;
    let (code, rest) = parse_status_line(first)?;
    let mut body: Vec<String> = lines.map(str::to_owned).collect();
    // The LF that ends the last line leaves one empty piece behind.
    if text.ends_with('\n') {
        body.pop();
    }
    Ok(Reply {
        code,
        text: rest.to_owned(),
        body,
    })
}

fn parse_status_line(line: &str) -> Result<(u16, &str), ReplyError> {
    let bad = || ReplyError::BadStatusLine(line.to_owned());
    let digits = line.get(..3).ok_or_else(bad)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let code: u16 = digits.parse().map_err(|_| bad())?;
    if !(100..=699).contains(&code) {
        return Err(bad());
    }
    let rest = line.get(3..).ok_or_else(bad)?;
    let text = match rest.strip_prefix(' ') {
        Some(t) => t,
        None if rest.is_empty() => rest,
        // "2000 ok" or "200ok": not a status line.
        None => return Err(bad()),
    };
    Ok((code, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_header_params_and_terminating_empty_line() {
        let r = build_request(
            "ul_rm",
            "serctl_reply_1_0",
            &["location", "alice@example.com"],
        );
        assert_eq!(
            r.as_deref(),
            Ok(&b":ul_rm:serctl_reply_1_0\nlocation\nalice@example.com\n\n"[..])
        );
    }

    #[test]
    fn request_without_reply_name_or_params() {
        assert_eq!(
            build_request("ps", "", &[]).as_deref(),
            Ok(&b":ps:\n\n"[..])
        );
    }

    #[test]
    fn empty_param_is_an_empty_line() {
        assert_eq!(
            build_request("x", "r", &["", "a"]).as_deref(),
            Ok(&b":x:r\n\na\n\n"[..])
        );
    }

    #[test]
    fn newline_in_param_is_refused_with_its_index() {
        assert_eq!(
            build_request("x", "r", &["ok", "a\nb"]),
            Err(BuildError::NewlineInParam { index: 1 })
        );
        assert_eq!(
            build_request("x", "r", &["a\r"]),
            Err(BuildError::NewlineInParam { index: 0 })
        );
    }

    #[test]
    fn bad_command_and_reply_names_are_refused() {
        assert_eq!(build_request("", "r", &[]), Err(BuildError::EmptyCommand));
        assert!(matches!(
            build_request("a:b", "r", &[]),
            Err(BuildError::BadCommand(_))
        ));
        assert!(matches!(
            build_request("a b", "r", &[]),
            Err(BuildError::BadCommand(_))
        ));
        for name in ["../etc", "a.b", "a/b", "a\\b", "a\nb"] {
            assert!(
                matches!(
                    build_request("ps", name, &[]),
                    Err(BuildError::BadReplyName(_))
                ),
                "{name:?} accepted"
            );
        }
    }

    #[test]
    fn reply_with_body() {
        let r = parse_reply(b"200 ok\n1\t100\tattendant\n2\t101\ttimer\n");
        assert_eq!(
            r,
            Ok(Reply {
                code: 200,
                text: "ok".into(),
                body: vec!["1\t100\tattendant".into(), "2\t101\ttimer".into()],
            })
        );
    }

    #[test]
    fn reply_without_final_lf_and_with_crlf() {
        let r = parse_reply(b"200 killing now...").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.code, r.text.as_str(), r.body.len()),
            (200, "killing now...", 0)
        );
        let r = parse_reply(b"200 OK\r\nUp since x\r\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.text, "OK");
        assert_eq!(r.body, vec!["Up since x".to_string()]);
    }

    #[test]
    fn error_reply_is_parsed_not_refused() {
        let r = parse_reply(b"500 command 'x' not available\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.code, 500);
        assert!(!r.is_success());
        assert_eq!(r.status_line(), "500 command 'x' not available");
    }

    #[test]
    fn empty_lines_inside_body_are_kept() {
        let r = parse_reply(b"200 ok\na\n\nb\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.body,
            vec!["a".to_string(), String::new(), "b".to_string()]
        );
    }

    #[test]
    fn bare_code_has_empty_text() {
        let r = parse_reply(b"200\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.code, r.text.as_str()), (200, ""));
        assert_eq!(r.status_line(), "200");
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse_reply(b""), Err(ReplyError::Empty));
        for bad in [
            &b"hello\n"[..],
            b"20\n",
            b"2000 ok\n",
            b"200ok\n",
            b"099 x\n",
            b"700 x\n",
            b"\n",
            b"+200 x",
        ] {
            assert!(
                matches!(parse_reply(bad), Err(ReplyError::BadStatusLine(_))),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn non_utf8_is_replaced_not_refused() {
        let r = parse_reply(b"200 ok\n\xff\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.body.len(), 1);
    }
}
