//! Recursive-descent parser for `ser.cfg`: the token cursor and the top
//! level (global parameters, `loadmodule`, `modparam`, route blocks).
//! Statements live in `stmt.rs`, conditions in `expr.rs`.
//!
//! The grammar accepted is the union of SER 0.8, 0.9 and 2.x (spec §1);
//! the first error stops parsing.

use std::collections::VecDeque;

use super::ast::{
    GlobalValue, Item, Literal, Pos, Proto, RouteBlock, RouteKind, RouteName, Script, SocketSpec,
};
use super::error::CfgError;
use super::lexer::{Lexer, Punct, Tok, Token};

pub(crate) type PResult<T> = Result<T, CfgError>;

pub(crate) struct Parser<'a> {
    lex: Lexer<'a>,
    file: &'a str,
    /// Lookahead; the lexer is pulled lazily so a later lexical error never
    /// hides an earlier syntax error.
    buf: VecDeque<Token>,
}

/// Words that stand for 1 / 0 wherever a number is allowed.
pub(crate) fn word_value(w: &str) -> Option<i64> {
    match w {
        "yes" | "true" | "on" | "enable" => Some(1),
        "no" | "false" | "off" | "disable" => Some(0),
        _ => None,
    }
}

pub(crate) fn proto_word(w: &str) -> Option<Proto> {
    match w.to_ascii_lowercase().as_str() {
        "udp" => Some(Proto::Udp),
        "tcp" => Some(Proto::Tcp),
        "tls" => Some(Proto::Tls),
        _ => None,
    }
}

/// Top-level words that start a new item; they end a `listen=` list.
const TOP_KEYWORDS: &[&str] = &[
    "loadmodule",
    "loadpath",
    "modparam",
    "route",
    "failure_route",
    "reply_route",
    "onreply_route",
    "branch_route",
    "onsend_route",
    "flags",
    "bool",
    "avpflags",
];

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str, file: &'a str) -> Self {
        Parser {
            lex: Lexer::new(src, file),
            file,
            buf: VecDeque::new(),
        }
    }

    // ---------------------------------------------------------------- cursor

    pub(crate) fn peek_at(&mut self, n: usize) -> PResult<&Token> {
        while self.buf.len() <= n {
            let t = self.lex.next_token()?;
            self.buf.push_back(t);
        }
        // The loop above guarantees `n < len`.
        self.buf.get(n).ok_or_else(|| CfgError::Unexpected {
            file: self.file.to_string(),
            pos: Pos::default(),
            found: "end of input".into(),
            expected: "more tokens".into(),
        })
    }

    pub(crate) fn peek(&mut self) -> PResult<&Token> {
        self.peek_at(0)
    }

    pub(crate) fn next(&mut self) -> PResult<Token> {
        self.peek_at(0)?;
        self.buf.pop_front().ok_or_else(|| CfgError::Unexpected {
            file: self.file.to_string(),
            pos: Pos::default(),
            found: "end of input".into(),
            expected: "more tokens".into(),
        })
    }

    pub(crate) fn is_punct_at(&mut self, n: usize, p: Punct) -> PResult<bool> {
        Ok(self.peek_at(n)?.tok == Tok::Punct(p))
    }

    pub(crate) fn is_word_at(&mut self, n: usize, w: &str) -> PResult<bool> {
        Ok(matches!(&self.peek_at(n)?.tok, Tok::Ident(s) if s == w))
    }

    pub(crate) fn unexpected(&self, t: &Token, expected: impl Into<String>) -> CfgError {
        CfgError::Unexpected {
            file: self.file.to_string(),
            pos: t.pos,
            found: t.tok.describe(),
            expected: expected.into(),
        }
    }

    pub(crate) fn file(&self) -> &'a str {
        self.file
    }

    pub(crate) fn expect_punct(&mut self, p: Punct, expected: &str) -> PResult<Token> {
        let t = self.next()?;
        if t.tok == Tok::Punct(p) {
            Ok(t)
        } else {
            Err(self.unexpected(&t, expected))
        }
    }

    pub(crate) fn expect_string(&mut self, expected: &str) -> PResult<String> {
        let t = self.next()?;
        match t.tok {
            Tok::Str(s) => Ok(s),
            _ => Err(self.unexpected(&t, expected)),
        }
    }

    /// A maximal run of tokens written without space between them, starting
    /// at the cursor: glues `uri:host`, `my-host.example.com`,
    /// `udp:10.0.0.1:5060` back into one word. Returns the source text, the
    /// first token and how many tokens were glued.
    pub(crate) fn glue(&mut self, allow_colon: bool) -> PResult<(String, Token, usize)> {
        let first = self.next()?;
        let (start, mut end) = (first.start, first.end);
        let mut count = 1;
        loop {
            let t = self.peek()?;
            let fits = match &t.tok {
                Tok::Ident(_) | Tok::Int(_) | Tok::Ip4(_) | Tok::Ip6(_) => true,
                Tok::Punct(Punct::Dot | Punct::Minus) => true,
                Tok::Punct(Punct::Colon) => allow_colon,
                _ => false,
            };
            if !fits || t.start != end {
                break;
            }
            end = t.end;
            self.next()?;
            count += 1;
        }
        let text = self.lex.source().get(start..end).unwrap_or("").to_string();
        Ok((text, first, count))
    }

    /// A number where one is allowed: `N`, 2.x `-N`, or a yes/no word.
    pub(crate) fn try_number(&mut self) -> PResult<Option<i64>> {
        let t = self.peek()?.clone();
        match &t.tok {
            Tok::Int(n) => {
                self.next()?;
                Ok(Some(*n))
            }
            Tok::Ident(w) => match word_value(w) {
                Some(v) => {
                    self.next()?;
                    Ok(Some(v))
                }
                None => Ok(None),
            },
            Tok::Punct(Punct::Minus) if matches!(self.peek_at(1)?.tok, Tok::Int(_)) => {
                self.next()?;
                match self.next()?.tok {
                    Tok::Int(n) => Ok(Some(-n)),
                    _ => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    // ------------------------------------------------------------- top level

    pub(crate) fn script(&mut self) -> PResult<Script> {
        let mut items = Vec::new();
        loop {
            let t = self.peek()?.clone();
            match &t.tok {
                Tok::Eof => return Ok(Script { items }),
                // Stray `;` between items is tolerated (null statement).
                Tok::Punct(Punct::Semi) => {
                    self.next()?;
                }
                Tok::Ident(w) => {
                    if let Some(item) = self.top_item(w, &t)? {
                        items.push(item);
                    }
                }
                _ => {
                    return Err(self.unexpected(
                        &t,
                        "a global parameter, loadmodule, modparam or route block",
                    ))
                }
            }
        }
    }

    fn top_item(&mut self, w: &str, t: &Token) -> PResult<Option<Item>> {
        let after_is_assign = self.is_punct_at(1, Punct::Assign)?;
        match w {
            "loadmodule" | "loadpath" if !after_is_assign => {
                self.next()?;
                let path = self.expect_string(&format!("a quoted path after '{w}'"))?;
                Ok(Some(if w == "loadmodule" {
                    Item::LoadModule { path, pos: t.pos }
                } else {
                    Item::LoadPath { path, pos: t.pos }
                }))
            }
            "modparam" if !after_is_assign => self.modparam(t.pos).map(Some),
            "route" | "failure_route" | "reply_route" | "onreply_route" | "branch_route"
            | "onsend_route"
                if !after_is_assign =>
            {
                self.route_block(w, t.pos).map(|b| Some(Item::Route(b)))
            }
            "flags" | "bool" | "avpflags" if !after_is_assign => {
                self.skip_flag_decls()?;
                Ok(None)
            }
            _ => {
                self.next()?;
                if !after_is_assign {
                    let bad = self.next()?;
                    return Err(
                        self.unexpected(&bad, format!("'=' after global parameter name '{w}'"))
                    );
                }
                self.next()?;
                let value = self.global_value(w)?;
                Ok(Some(Item::Global {
                    name: w.to_string(),
                    value,
                    pos: t.pos,
                }))
            }
        }
    }

    fn modparam(&mut self, pos: Pos) -> PResult<Item> {
        self.next()?;
        self.expect_punct(Punct::LParen, "'(' after modparam")?;
        let module =
            self.expect_string("the module name (a quoted string) as first modparam argument")?;
        self.expect_punct(
            Punct::Comma,
            "',' and the parameter name (modparam takes 3 arguments)",
        )?;
        let param =
            self.expect_string("the parameter name (a quoted string) as second modparam argument")?;
        self.expect_punct(
            Punct::Comma,
            "',' and the parameter value (modparam takes 3 arguments)",
        )?;
        let value = match self.try_number()? {
            Some(n) => Literal::Int(n),
            None => {
                let t = self.next()?;
                match t.tok {
                    Tok::Str(s) => Literal::Str(s),
                    _ => return Err(self.unexpected(&t, "a string or number as modparam value")),
                }
            }
        };
        self.expect_punct(Punct::RParen, "')' closing modparam (it takes 3 arguments)")?;
        Ok(Item::ModParam {
            module,
            param,
            value,
            pos,
        })
    }

    /// 2.x `flags NAME[:bit], ...` / `avpflags NAME, ...`: accepted and not
    /// recorded — the syntax tree has no item for them (see the report).
    fn skip_flag_decls(&mut self) -> PResult<()> {
        let kw = self.next()?;
        let what = format!(
            "a flag name after '{}'",
            kw.tok.describe().trim_matches('\'')
        );
        loop {
            let t = self.next()?;
            if !matches!(t.tok, Tok::Ident(_)) {
                return Err(self.unexpected(&t, what));
            }
            if self.is_punct_at(0, Punct::Colon)? {
                self.next()?;
                let n = self.next()?;
                if !matches!(n.tok, Tok::Int(0..=31)) {
                    return Err(self.unexpected(&n, "a flag bit number 0-31 after ':'"));
                }
            }
            if !self.is_punct_at(0, Punct::Comma)? {
                return Ok(());
            }
            self.next()?;
        }
    }

    fn global_value(&mut self, name: &str) -> PResult<GlobalValue> {
        if name == "listen" || name == "alias" {
            return self.socket_list().map(GlobalValue::Sockets);
        }
        if let Some(n) = self.try_number()? {
            return Ok(GlobalValue::Int(n));
        }
        let t = self.peek()?.clone();
        match &t.tok {
            Tok::Str(s) => {
                self.next()?;
                Ok(GlobalValue::Str(s.clone()))
            }
            Tok::Ident(_) | Tok::Ip4(_) | Tok::Ip6(_) => Ok(GlobalValue::Ident(self.glue(true)?.0)),
            _ => Err(self.unexpected(
                &t,
                format!("a number, yes/no, string or name as value of '{name}'"),
            )),
        }
    }

    // --------------------------------------------------------------- sockets

    fn socket_list(&mut self) -> PResult<Vec<SocketSpec>> {
        let mut out = vec![self.socket_spec()?];
        while self.socket_continues()? {
            out.push(self.socket_spec()?);
        }
        Ok(out)
    }

    /// Whether the next token starts another whitespace-separated entry of
    /// a `listen=` list rather than the next top-level item.
    fn socket_continues(&mut self) -> PResult<bool> {
        let t = self.peek()?.clone();
        Ok(match &t.tok {
            Tok::Str(_) | Tok::Ip4(_) | Tok::Ip6(_) | Tok::Punct(Punct::Star) => true,
            Tok::Ident(w) => {
                !TOP_KEYWORDS.contains(&w.as_str()) && !self.is_punct_at(1, Punct::Assign)?
            }
            _ => false,
        })
    }

    /// `[proto:]addr[:port]`, proto `udp|tcp|tls|*`, port a number or `*`.
    pub(crate) fn socket_spec(&mut self) -> PResult<SocketSpec> {
        let t = self.peek()?.clone();
        let proto_tok = match &t.tok {
            Tok::Ident(w) => proto_word(w),
            Tok::Punct(Punct::Star) => Some(Proto::Any),
            _ => None,
        };
        let mut proto = None;
        if let Some(p) = proto_tok {
            let colon_follows = self.is_punct_at(1, Punct::Colon)?;
            let then_port = matches!(self.peek_at(2)?.tok, Tok::Int(_));
            if colon_follows && !then_port {
                self.next()?;
                self.next()?;
                proto = Some(p);
            }
        }
        let t = self.peek()?.clone();
        let host = match &t.tok {
            Tok::Str(s) => {
                self.next()?;
                s.clone()
            }
            Tok::Ip4(a) => {
                self.next()?;
                a.to_string()
            }
            Tok::Ip6(a) => {
                self.next()?;
                a.to_string()
            }
            Tok::Punct(Punct::Star) => {
                self.next()?;
                "*".to_string()
            }
            Tok::Ident(_) => self.glue(false)?.0,
            _ => {
                return Err(self.unexpected(
                    &t,
                    "an address, host or interface name ([proto:]addr[:port])",
                ))
            }
        };
        let mut port = None;
        if self.is_punct_at(0, Punct::Colon)? {
            self.next()?;
            let p = self.next()?;
            port = Some(match p.tok {
                Tok::Int(n) => u16::try_from(n).map_err(|_| CfgError::BadPort {
                    file: self.file.to_string(),
                    pos: p.pos,
                    value: n,
                })?,
                Tok::Punct(Punct::Star) => 0,
                _ => return Err(self.unexpected(&p, "a port number or '*' after ':'")),
            });
        }
        Ok(SocketSpec { proto, host, port })
    }

    // ---------------------------------------------------------- route blocks

    fn route_block(&mut self, word: &str, pos: Pos) -> PResult<RouteBlock> {
        self.next()?;
        let (mut kind, legacy_name) = match word {
            "failure_route" => (RouteKind::Failure, false),
            "reply_route" => (RouteKind::Failure, true),
            "onreply_route" => (RouteKind::OnReply, false),
            "branch_route" => (RouteKind::Branch, false),
            "onsend_route" => (RouteKind::OnSend, false),
            _ => (RouteKind::Request, false),
        };
        let name = if self.is_punct_at(0, Punct::LBracket)? {
            self.next()?;
            let name = self.route_name(word)?;
            self.expect_punct(Punct::RBracket, &format!("']' closing the {word} index"))?;
            name
        } else {
            // 2.x: `onreply_route {}` without index is the core reply route.
            if kind == RouteKind::OnReply {
                kind = RouteKind::CoreReply;
            }
            RouteName::Num(0)
        };
        let open = self.expect_punct(Punct::LBrace, &format!("'{{' opening the {word} block"))?;
        let body = self.block_body(open.pos)?;
        Ok(RouteBlock {
            kind,
            name,
            legacy_name,
            body,
            pos,
        })
    }

    fn route_name(&mut self, word: &str) -> PResult<RouteName> {
        let t = self.next()?;
        let expected = format!("a route number or name inside {word}[ ]");
        match &t.tok {
            Tok::Int(n) => u32::try_from(*n)
                .map(RouteName::Num)
                .map_err(|_| self.unexpected(&t, expected)),
            Tok::Ident(s) => Ok(RouteName::Name(s.clone())),
            // `route["1"]` is the same block as `route[1]`.
            Tok::Str(s) => match s.parse::<u32>() {
                Ok(n) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                    Ok(RouteName::Num(n))
                }
                _ if s.is_empty() => Err(self.unexpected(&t, expected)),
                _ => Ok(RouteName::Name(s.clone())),
            },
            _ => Err(self.unexpected(&t, expected)),
        }
    }
}
