//! Tokeniser for `ser.cfg` (spec §1.1).
//!
//! The lexer is pulled one token at a time by the parser, so the first
//! error in file order — lexical or syntactic — is the one reported.
//! Keywords are not recognised here: SER's words (`route`, `if`, `yes`,
//! `udp` …) are only special in some positions, so the parser decides
//! from an [`Tok::Ident`]'s text.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ast::Pos;
use super::error::CfgError;

/// Operators and punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Punct {
    Assign,
    Eq,
    Ne,
    Match,
    Gt,
    Lt,
    Ge,
    Le,
    Not,
    Plus,
    Minus,
    PlusAssign,
    AndAnd,
    And,
    OrOr,
    Or,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Semi,
    Colon,
    Dot,
    Slash,
    Star,
}

impl Punct {
    pub fn text(self) -> &'static str {
        match self {
            Punct::Assign => "=",
            Punct::Eq => "==",
            Punct::Ne => "!=",
            Punct::Match => "=~",
            Punct::Gt => ">",
            Punct::Lt => "<",
            Punct::Ge => ">=",
            Punct::Le => "<=",
            Punct::Not => "!",
            Punct::Plus => "+",
            Punct::Minus => "-",
            Punct::PlusAssign => "+=",
            Punct::AndAnd => "&&",
            Punct::And => "&",
            Punct::OrOr => "||",
            Punct::Or => "|",
            Punct::LParen => "(",
            Punct::RParen => ")",
            Punct::LBrace => "{",
            Punct::RBrace => "}",
            Punct::LBracket => "[",
            Punct::RBracket => "]",
            Punct::Comma => ",",
            Punct::Semi => ";",
            Punct::Colon => ":",
            Punct::Dot => ".",
            Punct::Slash => "/",
            Punct::Star => "*",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    Ident(String),
    Int(i64),
    /// `"..."` after escape processing, or `'...'` verbatim.
    Str(String),
    Ip4(Ipv4Addr),
    /// With or without `[ ]` in the source.
    Ip6(Ipv6Addr),
    /// 2.x `$avp`, `$f.name[1]`, `$?`, `%avp`, `@select.path` — text as written.
    Var(String),
    Punct(Punct),
    Eof,
}

impl Tok {
    /// How the token is named in "found …" messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Int(n) => format!("number {n}"),
            Tok::Str(s) => format!("string \"{}\"", s.escape_default()),
            Tok::Ip4(a) => format!("address {a}"),
            Tok::Ip6(a) => format!("address {a}"),
            Tok::Var(v) => format!("'{v}'"),
            Tok::Punct(p) => format!("'{}'", p.text()),
            Tok::Eof => "end of file".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
    /// Byte span in the source; adjacency of spans lets the parser glue
    /// `uri:host` or `my-host.example.com` back together.
    pub start: usize,
    pub end: usize,
}

pub struct Lexer<'a> {
    src: &'a str,
    file: &'a str,
    /// Byte offset of the next unread character.
    at: usize,
    line: u32,
    col: u32,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, file: &'a str) -> Self {
        Lexer {
            src,
            file,
            at: 0,
            line: 1,
            col: 1,
        }
    }

    pub fn source(&self) -> &'a str {
        self.src
    }

    fn peek_char(&self) -> Option<char> {
        self.src.get(self.at..).and_then(|s| s.chars().next())
    }

    fn peek_nth(&self, n: usize) -> Option<char> {
        self.src.get(self.at..).and_then(|s| s.chars().nth(n))
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn err_unexpected(&self, pos: Pos, found: String, expected: &str) -> CfgError {
        CfgError::Unexpected {
            file: self.file.to_string(),
            pos,
            found,
            expected: expected.to_string(),
        }
    }

    /// Skips separators and comments (nested `/* */` included).
    fn skip_trivia(&mut self) -> Result<(), CfgError> {
        loop {
            match (self.peek_char(), self.peek_nth(1)) {
                (Some(' ' | '\t' | '\r' | '\n' | '\u{8}'), _) => {
                    self.bump();
                }
                // Backslash-newline is a line continuation: swallowed.
                (Some('\\'), Some('\n')) => {
                    self.bump();
                    self.bump();
                }
                (Some('#'), _) => {
                    while let Some(c) = self.peek_char() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => self.skip_block_comment()?,
                _ => return Ok(()),
            }
        }
    }

    fn skip_block_comment(&mut self) -> Result<(), CfgError> {
        let start = self.pos();
        self.bump();
        self.bump();
        let mut depth = 1u32;
        loop {
            match (self.peek_char(), self.peek_nth(1)) {
                (None, _) => {
                    return Err(CfgError::UnterminatedComment {
                        file: self.file.to_string(),
                        pos: start,
                    })
                }
                (Some('/'), Some('*')) => {
                    self.bump();
                    self.bump();
                    depth += 1;
                }
                (Some('*'), Some('/')) => {
                    self.bump();
                    self.bump();
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {
                    self.bump();
                }
            }
        }
    }

    pub fn next_token(&mut self) -> Result<Token, CfgError> {
        self.skip_trivia()?;
        let pos = self.pos();
        let start = self.at;
        let tok = self.lex_one(pos)?;
        Ok(Token {
            tok,
            pos,
            start,
            end: self.at,
        })
    }

    fn lex_one(&mut self, pos: Pos) -> Result<Tok, CfgError> {
        let Some(c) = self.peek_char() else {
            return Ok(Tok::Eof);
        };
        if let Some(tok) = self.try_ipv6() {
            return Ok(tok);
        }
        if c.is_ascii_digit() {
            return self.lex_number(pos);
        }
        if c.is_ascii_alphabetic() || c == '_' {
            return Ok(Tok::Ident(
                self.take_while(|c| c.is_ascii_alphanumeric() || c == '_')
                    .to_string(),
            ));
        }
        match c {
            '"' => return self.lex_string(pos),
            '\'' => return self.lex_raw_string(pos),
            '$' | '%' | '@' => return self.lex_var(pos),
            _ => {}
        }
        let two = (c, self.peek_nth(1));
        let (p, len) = match two {
            ('=', Some('=')) => (Punct::Eq, 2),
            ('=', Some('~')) => (Punct::Match, 2),
            ('!', Some('=')) => (Punct::Ne, 2),
            ('>', Some('=')) => (Punct::Ge, 2),
            ('<', Some('=')) => (Punct::Le, 2),
            ('+', Some('=')) => (Punct::PlusAssign, 2),
            ('&', Some('&')) => (Punct::AndAnd, 2),
            ('|', Some('|')) => (Punct::OrOr, 2),
            ('=', _) => (Punct::Assign, 1),
            ('>', _) => (Punct::Gt, 1),
            ('<', _) => (Punct::Lt, 1),
            ('!', _) => (Punct::Not, 1),
            ('+', _) => (Punct::Plus, 1),
            ('-', _) => (Punct::Minus, 1),
            ('&', _) => (Punct::And, 1),
            ('|', _) => (Punct::Or, 1),
            ('(', _) => (Punct::LParen, 1),
            (')', _) => (Punct::RParen, 1),
            ('{', _) => (Punct::LBrace, 1),
            ('}', _) => (Punct::RBrace, 1),
            ('[', _) => (Punct::LBracket, 1),
            (']', _) => (Punct::RBracket, 1),
            (',', _) => (Punct::Comma, 1),
            (';', _) => (Punct::Semi, 1),
            (':', _) => (Punct::Colon, 1),
            ('.', _) => (Punct::Dot, 1),
            ('/', _) => (Punct::Slash, 1),
            ('*', _) => (Punct::Star, 1),
            _ => {
                return Err(self.err_unexpected(
                    pos,
                    format!("character '{}'", c.escape_default()),
                    "a name, number, string, operator or punctuation",
                ))
            }
        };
        for _ in 0..len {
            self.bump();
        }
        Ok(Tok::Punct(p))
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.at;
        while let Some(c) = self.peek_char() {
            if !f(c) {
                break;
            }
            self.bump();
        }
        self.src.get(start..self.at).unwrap_or("")
    }

    /// IPv6 is its own token (optionally in `[ ]`): a run of hex digits,
    /// `:` and `.` holding at least two colons that parses as an address.
    /// Anything else (`uri:host`, `udp:1.2.3.4:5060`) falls through.
    fn try_ipv6(&mut self) -> Option<Tok> {
        let rest = self.src.get(self.at..)?;
        let bracketed = rest.starts_with('[');
        let body_start = usize::from(bracketed);
        let body = rest.get(body_start..)?;
        let len = body
            .find(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'))
            .unwrap_or(body.len());
        let text = body.get(..len)?;
        if text.matches(':').count() < 2 {
            return None;
        }
        let addr: Ipv6Addr = text.parse().ok()?;
        let total = if bracketed {
            if !body.get(len..)?.starts_with(']') {
                return None;
            }
            len + 2
        } else {
            // A following identifier character means this was not an address.
            if body
                .get(len..)?
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            {
                return None;
            }
            len
        };
        // All consumed characters are ASCII, so one bump per byte.
        for _ in 0..total {
            self.bump();
        }
        Some(Tok::Ip6(addr))
    }

    fn lex_number(&mut self, pos: Pos) -> Result<Tok, CfgError> {
        let rest = self.src.get(self.at..).unwrap_or("");
        if rest.starts_with("0x") || rest.starts_with("0X") {
            self.bump();
            self.bump();
            let digits = self.take_while(|c| c.is_ascii_hexdigit());
            return i64::from_str_radix(digits, 16).map(Tok::Int).map_err(|_| {
                self.bad_number(pos, format!("0x{digits}"), "hexadecimal digits after 0x")
            });
        }
        let digits = self.take_while(|c| c.is_ascii_digit());
        // Dotted quad: `1.2.3.4` is one token in SER's grammar.
        if self.peek_char() == Some('.') && self.peek_nth(1).is_some_and(|c| c.is_ascii_digit()) {
            return self.lex_ipv4(pos, digits);
        }
        // 2.x binary literal `[01]+b`.
        if self.peek_char() == Some('b')
            && !self
                .peek_nth(1)
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && digits.bytes().all(|b| b == b'0' || b == b'1')
        {
            self.bump();
            return i64::from_str_radix(digits, 2).map(Tok::Int).map_err(|_| {
                self.bad_number(
                    pos,
                    format!("{digits}b"),
                    "a binary number that fits 63 bits",
                )
            });
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return i64::from_str_radix(&digits[1..], 8)
                .map(Tok::Int)
                .map_err(|_| {
                    self.bad_number(
                        pos,
                        digits.to_string(),
                        "octal digits 0-7 after a leading 0",
                    )
                });
        }
        digits
            .parse::<i64>()
            .map(Tok::Int)
            .map_err(|_| self.bad_number(pos, digits.to_string(), "a number that fits 63 bits"))
    }

    fn bad_number(&self, pos: Pos, text: String, expected: &str) -> CfgError {
        CfgError::BadNumber {
            file: self.file.to_string(),
            pos,
            text,
            expected: expected.to_string(),
        }
    }

    fn lex_ipv4(&mut self, pos: Pos, first: &'a str) -> Result<Tok, CfgError> {
        let mut parts: Vec<(&str, Pos)> = vec![(first, pos)];
        while self.peek_char() == Some('.') && self.peek_nth(1).is_some_and(|c| c.is_ascii_digit())
        {
            self.bump();
            let p = self.pos();
            parts.push((self.take_while(|c| c.is_ascii_digit()), p));
        }
        let file = self.file.to_string();
        let text = parts.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(".");
        if parts.len() != 4 {
            return Err(CfgError::BadIp {
                file,
                pos,
                text,
                reason: "expected four numbers joined by '.'".into(),
            });
        }
        let mut octets = [0u8; 4];
        for (slot, (s, p)) in octets.iter_mut().zip(&parts) {
            *slot = s.parse::<u8>().map_err(|_| CfgError::BadIp {
                file: file.clone(),
                pos: *p,
                text: text.clone(),
                reason: format!("octet {s} out of range, expected 0-255"),
            })?;
        }
        Ok(Tok::Ip4(Ipv4Addr::from(octets)))
    }

    fn lex_string(&mut self, pos: Pos) -> Result<Tok, CfgError> {
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(CfgError::UnterminatedString {
                    file: self.file.to_string(),
                    pos,
                    quote: '"',
                });
            };
            match c {
                '"' => return Ok(Tok::Str(out)),
                '\\' => self.lex_escape(&mut out),
                c => out.push(c),
            }
        }
    }

    /// After a backslash inside `"..."`. Unknown escapes and `\1` stay
    /// literal (backslash kept) so regex and subst back-references work.
    fn lex_escape(&mut self, out: &mut String) {
        match self.peek_char() {
            Some('n') => self.escape_to(out, '\n'),
            Some('r') => self.escape_to(out, '\r'),
            Some('a') => self.escape_to(out, '\u{7}'),
            Some('t') => self.escape_to(out, '\t'),
            Some('"') => self.escape_to(out, '"'),
            Some('\\') => self.escape_to(out, '\\'),
            Some('\n') => {
                self.bump();
            }
            Some('x') if self.peek_nth(1).is_some_and(|c| c.is_ascii_hexdigit()) => {
                self.bump();
                let mut v = 0u32;
                for _ in 0..2 {
                    match self.peek_char().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                out.push(byte_char(v));
            }
            Some('0'..='7') if self.peek_nth(1).is_some_and(|c| ('0'..='7').contains(&c)) => {
                let mut v = 0u32;
                for _ in 0..3 {
                    match self
                        .peek_char()
                        .filter(|c| ('0'..='7').contains(c))
                        .and_then(|c| c.to_digit(8))
                    {
                        Some(d) => {
                            v = v * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                out.push(byte_char(v));
            }
            _ => out.push('\\'),
        }
    }

    fn escape_to(&mut self, out: &mut String, c: char) {
        self.bump();
        out.push(c);
    }

    fn lex_raw_string(&mut self, pos: Pos) -> Result<Tok, CfgError> {
        self.bump();
        let start = self.at;
        loop {
            match self.bump() {
                None => {
                    return Err(CfgError::UnterminatedString {
                        file: self.file.to_string(),
                        pos,
                        quote: '\'',
                    })
                }
                Some('\'') => {
                    let body = self.src.get(start..self.at - 1).unwrap_or("");
                    return Ok(Tok::Str(body.to_string()));
                }
                Some(_) => {}
            }
        }
    }

    fn lex_var(&mut self, pos: Pos) -> Result<Tok, CfgError> {
        let start = self.at;
        let sigil = self.bump();
        if sigil == Some('$') && self.peek_char() == Some('?') {
            self.bump();
            return Ok(Tok::Var("$?".into()));
        }
        let name_start = self.at;
        loop {
            self.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            // Index `[n]` / `[-1]` / `[*]` belongs to the name.
            if self.peek_char() == Some('[') {
                self.bump();
                self.take_while(|c| c.is_ascii_digit() || c == '-' || c == '*');
                if self.peek_char() != Some(']') {
                    let found = self
                        .peek_char()
                        .map_or("end of file".into(), |c| format!("'{c}'"));
                    return Err(self.err_unexpected(self.pos(), found, "']' closing the index"));
                }
                self.bump();
                continue;
            }
            break;
        }
        if self.at == name_start {
            let found = self
                .peek_char()
                .map_or("end of file".into(), |c| format!("'{c}'"));
            return Err(self.err_unexpected(pos, found, "a variable name after the sigil"));
        }
        Ok(Tok::Var(
            self.src.get(start..self.at).unwrap_or("").to_string(),
        ))
    }
}

/// SER strings are bytes; a `\xHH`/octal escape above 0x7f is kept as the
/// Latin-1 character of that value (the only lossless choice in a `String`).
fn byte_char(v: u32) -> char {
    char::from((v & 0xff) as u8)
}
