//! Conditions (spec §1.6) with SER 0.9 precedence `!` > `&&` > `||`.
//! `and`/`&` are `&&`, `or`/`|` are `||`, `not` is `!` (0.9 reading; 2.x
//! made `&`/`|` bitwise, which no condition in practice depends on).
//!
//! `af == inet` / `inet6` become `Rhs::Af(4)` / `Rhs::Af(6)` (the IP
//! version, not the platform's AF_* constant).

use std::net::IpAddr;

use super::ast::{CmpOp, Expr, Operand, Rhs};
use super::error::CfgError;
use super::lexer::{Punct, Tok, Token};
use super::parser::{proto_word, word_value, PResult, Parser};

fn operand_word(w: &str) -> Option<Operand> {
    Some(match w {
        "method" => Operand::Method,
        "uri" => Operand::Uri,
        "status" => Operand::Status,
        "from_uri" => Operand::FromUri,
        "to_uri" => Operand::ToUri,
        "src_ip" => Operand::SrcIp,
        "dst_ip" => Operand::DstIp,
        "src_port" => Operand::SrcPort,
        "dst_port" => Operand::DstPort,
        "proto" => Operand::Proto,
        "af" => Operand::Af,
        "snd_ip" => Operand::SndIp,
        "snd_port" => Operand::SndPort,
        "snd_proto" => Operand::SndProto,
        "snd_af" => Operand::SndAf,
        "to_ip" => Operand::ToIp,
        "to_port" => Operand::ToPort,
        _ => return None,
    })
}

fn cmp_op(t: &Tok) -> Option<CmpOp> {
    Some(match t {
        Tok::Punct(Punct::Eq) => CmpOp::Eq,
        Tok::Punct(Punct::Ne) => CmpOp::Ne,
        Tok::Punct(Punct::Match) => CmpOp::Match,
        Tok::Punct(Punct::Gt) => CmpOp::Gt,
        Tok::Punct(Punct::Lt) => CmpOp::Lt,
        Tok::Punct(Punct::Ge) => CmpOp::Ge,
        Tok::Punct(Punct::Le) => CmpOp::Le,
        _ => return None,
    })
}

impl Parser<'_> {
    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.and_expr()?;
        while self.eat_logical(Punct::OrOr, Punct::Or, "or")? {
            let rhs = self.and_expr()?;
            lhs = Expr::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        while self.eat_logical(Punct::AndAnd, Punct::And, "and")? {
            let rhs = self.unary()?;
            lhs = Expr::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn eat_logical(&mut self, double: Punct, single: Punct, word: &str) -> PResult<bool> {
        let hit = self.is_punct_at(0, double)?
            || self.is_punct_at(0, single)?
            || self.is_word_at(0, word)?;
        if hit {
            self.next()?;
        }
        Ok(hit)
    }

    fn unary(&mut self) -> PResult<Expr> {
        if self.is_punct_at(0, Punct::Not)? || self.is_word_at(0, "not")? {
            self.next()?;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> PResult<Expr> {
        let t = self.peek()?.clone();
        match &t.tok {
            Tok::Punct(Punct::LParen) => {
                self.next()?;
                let e = self.expr()?;
                self.expect_punct(Punct::RParen, "')' closing the parenthesised condition")?;
                Ok(e)
            }
            Tok::Punct(Punct::LBrace) => {
                self.next()?;
                Ok(Expr::Block(self.block_body(t.pos)?))
            }
            Tok::Int(_) | Tok::Punct(Punct::Minus) => match self.try_number()? {
                Some(n) => Ok(Expr::Int(n)),
                None => Err(self.unexpected(&t, "a condition")),
            },
            Tok::Var(v) => {
                self.next()?;
                let is_ret = v == "$?" || v == "$retcode";
                match cmp_op(&self.peek()?.tok) {
                    Some(_) if is_ret => self.comparison(Operand::RetCode, &t),
                    Some(_) => Err(CfgError::Unsupported {
                        file: self.file().to_string(),
                        pos: t.pos,
                        what: format!("comparison of '{v}'"),
                        expected: "a comparison on a message operand or $retcode".into(),
                    }),
                    None => Ok(Expr::Var(v.clone())),
                }
            }
            Tok::Ident(w) => self.word_condition(w, &t),
            _ => Err(self.unexpected(&t, "a condition")),
        }
    }

    /// A condition starting with a name: a comparison (`method == …`,
    /// `msg:len > …`, reversed `myself == uri`), a yes/no word, or a call.
    fn word_condition(&mut self, w: &str, t: &Token) -> PResult<Expr> {
        if w == "myself" && cmp_op(&self.peek_at(1)?.tok).is_some() {
            self.next()?;
            let op_tok = self.next()?;
            let op = cmp_op(&op_tok.tok).unwrap_or(CmpOp::Eq);
            let o = self.next()?;
            let lhs = match &o.tok {
                Tok::Ident(ow) => operand_word(ow),
                _ => None,
            };
            let Some(lhs) = lhs else {
                return Err(self.unexpected(
                    &o,
                    "a message operand (uri, from_uri, to_uri, src_ip …) after 'myself ==' ",
                ));
            };
            return Ok(Expr::Cmp {
                lhs,
                op,
                rhs: Rhs::Myself,
                pos: t.pos,
            });
        }
        let operand =
            if w == "msg" && self.is_punct_at(1, Punct::Colon)? && self.is_word_at(2, "len")? {
                self.next()?;
                self.next()?;
                self.next()?;
                Some(Operand::MsgLen)
            } else {
                operand_word(w)
            };
        if let Some(lhs) = operand {
            if lhs != Operand::MsgLen {
                self.next()?;
            }
            let shown = if lhs == Operand::MsgLen { "msg:len" } else { w };
            let op_tok = self.peek()?.clone();
            if cmp_op(&op_tok.tok).is_none() {
                return Err(
                    self.unexpected(&op_tok, format!("a comparison operator after '{shown}'"))
                );
            }
            return self.comparison(lhs, t);
        }
        if let Some(v) = word_value(w) {
            self.next()?;
            return Ok(Expr::Int(v));
        }
        Ok(Expr::Call(self.call()?))
    }

    /// Operator and right side of `lhs op rhs`; the cursor is on the operator.
    fn comparison(&mut self, lhs: Operand, first: &Token) -> PResult<Expr> {
        let op_tok = self.next()?;
        let op =
            cmp_op(&op_tok.tok).ok_or_else(|| self.unexpected(&op_tok, "a comparison operator"))?;
        let rhs = self.rhs(lhs, op_tok.tok.describe())?;
        Ok(Expr::Cmp {
            lhs,
            op,
            rhs,
            pos: first.pos,
        })
    }

    fn rhs(&mut self, lhs: Operand, op: String) -> PResult<Rhs> {
        if let Some(n) = self.try_number_no_words()? {
            return Ok(Rhs::Int(n));
        }
        let t = self.peek()?.clone();
        let proto_lhs = matches!(lhs, Operand::Proto | Operand::SndProto);
        let af_lhs = matches!(lhs, Operand::Af | Operand::SndAf);
        match &t.tok {
            Tok::Str(s) => {
                self.next()?;
                Ok(Rhs::Str(s.clone()))
            }
            Tok::Ip4(a) => {
                self.next()?;
                self.net((*a).into())
            }
            Tok::Ip6(a) => {
                self.next()?;
                self.net((*a).into())
            }
            Tok::Punct(Punct::Star) if proto_lhs => {
                self.next()?;
                Ok(Rhs::Proto(super::ast::Proto::Any))
            }
            Tok::Ident(w) => {
                if w == "myself" {
                    self.next()?;
                    return Ok(Rhs::Myself);
                }
                if w == "max_len" {
                    self.next()?;
                    return Ok(Rhs::MaxLen);
                }
                if proto_lhs {
                    if let Some(p) = proto_word(w) {
                        self.next()?;
                        return Ok(Rhs::Proto(p));
                    }
                }
                if af_lhs && (w == "inet" || w == "inet6") {
                    self.next()?;
                    return Ok(Rhs::Af(if w == "inet" { 4 } else { 6 }));
                }
                Ok(Rhs::Ident(self.glue(false)?.0))
            }
            _ => Err(self.unexpected(
                &t,
                format!("a string, number, name, address or 'myself' after {op}"),
            )),
        }
    }

    /// `N` or `-N` (not yes/no words: those are host names on a right side).
    fn try_number_no_words(&mut self) -> PResult<Option<i64>> {
        match self.peek()?.tok {
            Tok::Int(_) | Tok::Punct(Punct::Minus) => self.try_number(),
            _ => Ok(None),
        }
    }

    /// Optional `/bits` or `/mask` after an address; plain address = host prefix.
    fn net(&mut self, addr: IpAddr) -> PResult<Rhs> {
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        if !self.is_punct_at(0, Punct::Slash)? {
            return Ok(Rhs::Net { addr, prefix: max });
        }
        self.next()?;
        let m = self.next()?;
        let bad = |reason: &str| CfgError::BadIp {
            file: self.file().to_string(),
            pos: m.pos,
            text: format!("{addr}/{}", m.tok.describe()),
            reason: reason.to_string(),
        };
        let prefix = match m.tok {
            Tok::Int(n) => u8::try_from(n).ok().filter(|p| *p <= max),
            Tok::Ip4(mask) if addr.is_ipv4() => {
                let bits = u32::from(mask);
                // Contiguous: the ones form a prefix, so inverting gives 2^k - 1.
                (bits.leading_ones() + bits.trailing_zeros() == 32)
                    .then(|| bits.leading_ones() as u8)
            }
            _ => None,
        };
        match prefix {
            Some(prefix) => Ok(Rhs::Net { addr, prefix }),
            None => Err(bad(&format!(
                "expected a prefix length 0-{max} or a contiguous netmask after '/'"
            ))),
        }
    }
}
