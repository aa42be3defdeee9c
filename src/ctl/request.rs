//! The text of one management request: the head line `:command:reply` and
//! the parameter lines that follow, read through a [`LineSource`] so that
//! the FIFO (a byte stream) and the unix socket (one datagram) share the
//! command handlers.

/// Which interface a request came from; a few framing rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SER 0.9's FIFO: header sets end at an empty line or `.`.
    Fifo,
    /// SER 0.9's unix socket: header sets end only at `.`.
    Unix,
}

/// `:command:reply-name`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Lower-cased: commands are case-insensitive.
    pub command: String,
    /// Empty when the client wants no reply.
    pub reply: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("first line malformed: it must start with ':'")]
    NoColon,
    #[error("first line malformed: the command name is empty")]
    EmptyCommand,
    #[error("first line malformed: no ':' after the command name")]
    NoSecondColon,
    #[error("reply name {0:?} may not contain '.', '/' or '\\'")]
    BadReplyName(String),
}

/// Parse the first line of a request. The unix socket ignores what
/// follows the second colon (replies go to the sender's address).
pub fn parse_head(line: &str, dialect: Dialect) -> Result<Head, HeadError> {
    let rest = line.strip_prefix(':').ok_or(HeadError::NoColon)?;
    let (cmd, reply) = match rest.split_once(':') {
        Some(parts) => parts,
        None if dialect == Dialect::Unix && !rest.is_empty() => (rest, ""),
        None => return Err(HeadError::NoSecondColon),
    };
    if cmd.is_empty() {
        return Err(HeadError::EmptyCommand);
    }
    let reply = match dialect {
        Dialect::Unix => "",
        Dialect::Fifo => reply.trim(),
    };
    if reply.contains(['.', '/', '\\']) {
        return Err(HeadError::BadReplyName(reply.to_string()));
    }
    Ok(Head {
        command: cmd.trim().to_ascii_lowercase(),
        reply: reply.to_string(),
    })
}

/// Does `line` look like the head of a request for a known command? Used
/// to notice that a stalled request was overtaken by the next one.
pub fn looks_like_head(line: &str, known: impl Fn(&str) -> bool) -> bool {
    matches!(parse_head(line, Dialect::Fifo), Ok(h) if known(&h.command))
}

/// Why a parameter could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("{0} missing")]
    Missing(&'static str),
    #[error("request incomplete: no more input while reading {0}")]
    Stalled(&'static str),
    /// The next request's head arrived in the middle of this one (kept so
    /// that it is served next).
    #[error("request interrupted by the next request")]
    Interrupted(String),
    #[error("{what}: {why}")]
    Bad { what: &'static str, why: String },
}

/// What a reader can report instead of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoLine {
    /// The input ended (end of a datagram).
    End,
    /// Nothing more arrived in time.
    Stalled,
    /// A known command's head arrived after a pause: the current request
    /// is taken to be abandoned by its writer.
    Overtaken(String),
}

/// Where parameter lines come from. Lines come without their LF, with
/// trailing CR, spaces and tabs removed.
pub trait LineSource {
    fn next_line(&mut self) -> Result<String, NoLine>;
}

/// Lines of a complete text (a unix socket datagram).
#[derive(Debug)]
pub struct TextLines {
    lines: std::vec::IntoIter<String>,
}

impl TextLines {
    pub fn new(text: &str) -> TextLines {
        let v: Vec<String> = text.lines().map(|l| trim_line(l).to_string()).collect();
        TextLines {
            lines: v.into_iter(),
        }
    }
}

impl LineSource for TextLines {
    fn next_line(&mut self) -> Result<String, NoLine> {
        self.lines.next().ok_or(NoLine::End)
    }
}

/// SER trims trailing CR, spaces and tabs from every line.
pub fn trim_line(l: &str) -> &str {
    l.trim_end_matches(['\r', ' ', '\t', '\n'])
}

/// A request's parameters, read on demand by its handler.
pub struct Params<'a> {
    src: &'a mut dyn LineSource,
    pub dialect: Dialect,
}

impl<'a> Params<'a> {
    pub fn new(src: &'a mut dyn LineSource, dialect: Dialect) -> Params<'a> {
        Params { src, dialect }
    }

    fn raw(&mut self, what: &'static str) -> Result<String, ParamError> {
        self.src.next_line().map_err(|e| match e {
            NoLine::End => ParamError::Missing(what),
            NoLine::Stalled => ParamError::Stalled(what),
            NoLine::Overtaken(l) => ParamError::Interrupted(l),
        })
    }

    /// One mandatory parameter line (may be empty).
    pub fn line(&mut self, what: &'static str) -> Result<String, ParamError> {
        self.raw(what)
    }

    /// One mandatory parameter line that must not be empty.
    pub fn nonempty(&mut self, what: &'static str) -> Result<String, ParamError> {
        let l = self.raw(what)?;
        if l.is_empty() {
            return Err(ParamError::Missing(what));
        }
        Ok(l)
    }

    /// One optional line: `None` at the end of the request or when empty.
    pub fn optional(&mut self) -> Option<String> {
        match self.src.next_line() {
            Ok(l) if !l.is_empty() => Some(l),
            _ => None,
        }
    }

    /// Header lines up to the end of the set: a `.` line, or on the FIFO
    /// also an empty line. Returned without their terminator.
    pub fn header_set(&mut self, what: &'static str) -> Result<Vec<String>, ParamError> {
        let mut out = Vec::new();
        loop {
            let l = self.raw(what)?;
            if l == "." || (l.is_empty() && self.dialect == Dialect::Fifo) {
                return Ok(out);
            }
            if !l.is_empty() {
                out.push(l);
            }
        }
    }

    /// Body lines up to a `.` line, joined with CRLF (empty lines kept).
    pub fn body(&mut self, what: &'static str) -> Result<String, ParamError> {
        let mut out = String::new();
        loop {
            let l = self.raw(what)?;
            if l == "." {
                return Ok(out);
            }
            out.push_str(&l);
            out.push_str("\r\n");
        }
    }

    /// Every remaining line up to the end of the request (an empty line on
    /// the FIFO, the end of the datagram on the unix socket).
    pub fn rest(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(l) = self.src.next_line() {
            if l.is_empty() && self.dialect == Dialect::Fifo {
                break;
            }
            out.push(l);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = parse_head(":T_UAC_FROM:hh", Dialect::Fifo).unwrap();
        assert_eq!(h.command, "t_uac_from");
        assert_eq!(h.reply, "hh");
        assert_eq!(parse_head(":ps:", Dialect::Fifo).unwrap().reply, "");
        assert_eq!(parse_head("ps", Dialect::Fifo), Err(HeadError::NoColon));
        assert_eq!(
            parse_head("::x", Dialect::Fifo),
            Err(HeadError::EmptyCommand)
        );
        assert_eq!(
            parse_head(":ps", Dialect::Fifo),
            Err(HeadError::NoSecondColon)
        );
        assert!(matches!(
            parse_head(":ps:../etc/passwd", Dialect::Fifo),
            Err(HeadError::BadReplyName(_))
        ));
        // The unix socket ignores the reply part entirely.
        let h = parse_head(":ps:../x", Dialect::Unix).unwrap();
        assert_eq!((h.command.as_str(), h.reply.as_str()), ("ps", ""));
        assert_eq!(parse_head(":ps", Dialect::Unix).unwrap().command, "ps");
        assert!(looks_like_head(":t_stats:r", |c| c == "t_stats"));
        assert!(!looks_like_head(":nosuch:r", |c| c == "t_stats"));
    }

    #[test]
    fn header_sets_and_bodies() {
        let text = "MESSAGE\nsip:a@b\nfoo: bar \r\nx: y\n\nline 1\n\nline 3\n.\n\n";
        let mut src = TextLines::new(text);
        let mut p = Params::new(&mut src, Dialect::Fifo);
        assert_eq!(p.line("method").unwrap(), "MESSAGE");
        assert_eq!(p.nonempty("uri").unwrap(), "sip:a@b");
        assert_eq!(p.header_set("headers").unwrap(), vec!["foo: bar", "x: y"]);
        assert_eq!(p.body("body").unwrap(), "line 1\r\n\r\nline 3\r\n");
        assert_eq!(p.optional(), None);
        assert_eq!(p.line("more"), Err(ParamError::Missing("more")));
    }

    #[test]
    fn unix_header_sets_end_only_at_dot() {
        let mut src = TextLines::new("a: 1\n\nb: 2\n.\n");
        let mut p = Params::new(&mut src, Dialect::Unix);
        assert_eq!(p.header_set("headers").unwrap(), vec!["a: 1", "b: 2"]);
    }

    #[test]
    fn rest_stops_at_the_empty_line_on_the_fifo() {
        let mut src = TextLines::new("a\nb\n\nc\n");
        let mut p = Params::new(&mut src, Dialect::Fifo);
        assert_eq!(p.rest(), vec!["a", "b"]);
    }
}
