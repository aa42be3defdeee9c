//! Statements (spec §1.5): `cmd ;`, `if cond stm [else stm]`, `{ … }`,
//! stray `;`, and the 2.x assignment `$avp = expr;`.
//!
//! 0.9 lets an `if`/`else` body be a bare command without `;`
//! (`if false log("a") else log("b");`); 2.x wants `cmd;` there
//! (`if (x) log("a"); else log("b");`). Both are accepted: a bare command
//! in body position takes an optional `;`.

use super::ast::{AssignOp, Call, Literal, Pos, Stmt};
use super::lexer::{Punct, Tok};
use super::parser::{word_value, PResult, Parser};

impl Parser<'_> {
    /// Statements up to the `}` matching the `{` at `open` (already consumed).
    pub(crate) fn block_body(&mut self, open: Pos) -> PResult<Vec<Stmt>> {
        let mut out = Vec::new();
        loop {
            let t = self.peek()?.clone();
            match &t.tok {
                Tok::Punct(Punct::RBrace) => {
                    self.next()?;
                    return Ok(out);
                }
                Tok::Eof => {
                    return Err(self.unexpected(
                        &t,
                        format!("a statement or '}}' closing the block opened at {open}"),
                    ))
                }
                _ => {
                    if let Some(s) = self.action()? {
                        out.push(s);
                    }
                }
            }
        }
    }

    /// One entry of a statement list; `None` for a null statement `;`.
    fn action(&mut self) -> PResult<Option<Stmt>> {
        let t = self.peek()?.clone();
        match &t.tok {
            Tok::Punct(Punct::Semi) => {
                self.next()?;
                Ok(None)
            }
            Tok::Punct(Punct::LBrace) => {
                self.next()?;
                Ok(Some(Stmt::Block(self.block_body(t.pos)?)))
            }
            Tok::Ident(w) if w == "if" => self.if_stmt().map(Some),
            Tok::Ident(w) if w == "else" => {
                Err(self.unexpected(&t, "a statement ('else' without a matching 'if')"))
            }
            Tok::Var(_) if self.is_assign_at(1)? => {
                let s = self.assign()?;
                self.expect_punct(Punct::Semi, "';' after the assignment")?;
                Ok(Some(s))
            }
            Tok::Ident(_) => {
                let call = self.call()?;
                let what = format!(
                    "';' after '{}{}'",
                    call.name,
                    if call.parens { "(...)" } else { "" }
                );
                self.expect_punct(Punct::Semi, &what)?;
                Ok(Some(Stmt::Call(call)))
            }
            _ => Err(self.unexpected(&t, "a statement")),
        }
    }

    fn is_assign_at(&mut self, n: usize) -> PResult<bool> {
        Ok(self.is_punct_at(n, Punct::Assign)? || self.is_punct_at(n, Punct::PlusAssign)?)
    }

    /// Body of an `if` or `else`: a block, another `if`, or one command.
    fn body(&mut self, after: &str) -> PResult<Vec<Stmt>> {
        let t = self.peek()?.clone();
        let stmts = match &t.tok {
            Tok::Punct(Punct::LBrace) => {
                self.next()?;
                self.block_body(t.pos)?
            }
            Tok::Ident(w) if w == "if" => vec![self.if_stmt()?],
            Tok::Ident(w) if w == "else" => {
                return Err(self.unexpected(&t, format!("a statement or '{{' block {after}")))
            }
            Tok::Var(_) if self.is_assign_at(1)? => {
                let s = self.assign()?;
                self.skip_semi()?;
                vec![s]
            }
            Tok::Ident(_) => {
                let c = self.call()?;
                self.skip_semi()?;
                vec![Stmt::Call(c)]
            }
            _ => return Err(self.unexpected(&t, format!("a statement or '{{' block {after}"))),
        };
        Ok(stmts)
    }

    fn skip_semi(&mut self) -> PResult<()> {
        if self.is_punct_at(0, Punct::Semi)? {
            self.next()?;
        }
        Ok(())
    }

    fn if_stmt(&mut self) -> PResult<Stmt> {
        let kw = self.next()?;
        let t = self.peek()?.clone();
        // `if {` / `if ;` / `if )`: the condition is missing. (A `{}` block
        // is still accepted as a condition inside parentheses.)
        if matches!(
            &t.tok,
            Tok::Punct(Punct::LBrace | Punct::Semi | Punct::RParen | Punct::RBrace) | Tok::Eof
        ) {
            return Err(self.unexpected(&t, "a condition after 'if'"));
        }
        let cond = self.expr()?;
        let then = self.body("after the if condition")?;
        // 2.x style `if (c) { … }; else …` — the `;` before `else` is tolerated.
        if self.is_punct_at(0, Punct::Semi)? && self.is_word_at(1, "else")? {
            self.next()?;
        }
        let otherwise = if self.is_word_at(0, "else")? {
            self.next()?;
            Some(self.body("after 'else'")?)
        } else {
            None
        };
        Ok(Stmt::If {
            cond,
            then,
            otherwise,
            pos: kw.pos,
        })
    }

    fn assign(&mut self) -> PResult<Stmt> {
        let target = self.next()?;
        let op_tok = self.next()?;
        let op = if op_tok.tok == Tok::Punct(Punct::PlusAssign) {
            AssignOp::Append
        } else {
            AssignOp::Set
        };
        let name = match target.tok {
            Tok::Var(v) => v,
            _ => return Err(self.unexpected(&target, "a $variable to assign to")),
        };
        if let Tok::Str(_) = self.peek()?.tok {
            let t = self.peek()?.clone();
            return Err(super::error::CfgError::Unsupported {
                file: self.file().to_string(),
                pos: t.pos,
                what: "string value in an assignment".into(),
                expected: "a number, $variable, @select, function call or (expression)".into(),
            });
        }
        let value = self.expr()?;
        Ok(Stmt::Assign {
            target: name,
            op,
            value,
            pos: target.pos,
        })
    }

    /// `name`, `name()`, `name(arg, …)`; `return`/`exit` take an optional
    /// bare value (`return 1`, `exit $?`).
    pub(crate) fn call(&mut self) -> PResult<Call> {
        let t = self.next()?;
        let Tok::Ident(name) = t.tok.clone() else {
            return Err(self.unexpected(&t, "a function or action name"));
        };
        let mut args = Vec::new();
        let parens = self.is_punct_at(0, Punct::LParen)?;
        if parens {
            self.next()?;
            if self.is_punct_at(0, Punct::RParen)? {
                self.next()?;
            } else {
                loop {
                    args.push(self.arg(&name)?);
                    let sep = self.next()?;
                    match sep.tok {
                        Tok::Punct(Punct::Comma) => {}
                        Tok::Punct(Punct::RParen) => break,
                        _ => {
                            return Err(self.unexpected(
                                &sep,
                                format!("',' or ')' in the arguments of '{name}'"),
                            ))
                        }
                    }
                }
            }
        } else if name == "return" || name == "exit" {
            if let Some(n) = self.try_number()? {
                args.push(Literal::Int(n));
            } else if let Tok::Var(v) = &self.peek()?.tok {
                args.push(Literal::Ident(v.clone()));
                self.next()?;
            }
        }
        Ok(Call {
            name,
            args,
            parens,
            pos: t.pos,
        })
    }

    /// One call argument: string, number (`-N` in 2.x, yes/no words),
    /// address, name, or glued word such as `uri:host` / `udp:1.2.3.4:5060`.
    fn arg(&mut self, fname: &str) -> PResult<Literal> {
        let t = self.peek()?.clone();
        match &t.tok {
            Tok::Str(s) => {
                self.next()?;
                Ok(Literal::Str(s.clone()))
            }
            Tok::Punct(Punct::Minus) if matches!(self.peek_at(1)?.tok, Tok::Int(_)) => {
                self.next()?;
                match self.next()?.tok {
                    Tok::Int(n) => Ok(Literal::Int(-n)),
                    _ => Err(self.unexpected(&t, "a number after '-'")),
                }
            }
            Tok::Var(v) => {
                self.next()?;
                Ok(Literal::Ident(v.clone()))
            }
            Tok::Punct(Punct::Star) => {
                self.next()?;
                Ok(Literal::Ident("*".into()))
            }
            Tok::Ident(_) | Tok::Int(_) | Tok::Ip4(_) | Tok::Ip6(_) => {
                let (text, first, count) = self.glue(true)?;
                Ok(match first.tok {
                    _ if count > 1 => Literal::Ident(text),
                    Tok::Int(n) => Literal::Int(n),
                    Tok::Ip4(a) => Literal::Ip(a.into()),
                    Tok::Ip6(a) => Literal::Ip(a.into()),
                    Tok::Ident(w) => match word_value(&w) {
                        Some(v) => Literal::Int(v),
                        None => Literal::Ident(w),
                    },
                    _ => Literal::Ident(text),
                })
            }
            _ => Err(self.unexpected(
                &t,
                format!("an argument of '{fname}' (string, number, name or address)"),
            )),
        }
    }
}
