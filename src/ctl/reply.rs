//! A management reply: `<code> <text>` then body lines, as SER writes it.

use super::request::Dialect;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
    pub body: Vec<String>,
}

impl Reply {
    /// `200 ok` (the FIFO's spelling; the unix socket says `200 OK`).
    pub fn ok(body: Vec<String>) -> Reply {
        Reply {
            code: 200,
            text: "ok".into(),
            body,
        }
    }

    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            text: text.into(),
            body: Vec::new(),
        }
    }

    pub fn with_body(mut self, body: Vec<String>) -> Reply {
        self.body = body;
        self
    }

    /// The bytes sent: status line and body lines, each LF-terminated.
    pub fn render(&self, dialect: Dialect) -> Vec<u8> {
        let text = if dialect == Dialect::Unix && self.text == "ok" {
            "OK"
        } else {
            self.text.as_str()
        };
        let mut out = format!("{} {}\n", self.code, text).into_bytes();
        for l in &self.body {
            out.extend_from_slice(l.as_bytes());
            if !l.ends_with('\n') {
                out.push(b'\n');
            }
        }
        out
    }
}

/// What a command handler produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answer now.
    Reply(Reply),
    /// The command answers later by itself (a UAC transaction reports its
    /// final status to the request's reply target when it completes).
    Later,
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Outcome {
        Outcome::Reply(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_ser() {
        let r = Reply::ok(vec!["a".into(), "b\n".into()]);
        assert_eq!(r.render(Dialect::Fifo), b"200 ok\na\nb\n");
        assert_eq!(r.render(Dialect::Unix), b"200 OK\na\nb\n");
        assert_eq!(
            Reply::new(500, "command 'x' not available").render(Dialect::Fifo),
            b"500 command 'x' not available\n"
        );
    }
}
