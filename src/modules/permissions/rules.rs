//! SER's permission rule files (`permissions.allow`, `.deny`): one rule a
//! line, `LEFT : RIGHT`, each side `ALL` or a comma-separated list of
//! quoted regular expressions, optionally followed by `EXCEPT` and
//! another list. A side matches a string when one of its expressions
//! does and none of its exceptions does. `#` starts a comment.
//! Expressions are POSIX extended, case-insensitive, as SER compiled them.

use std::path::{Path, PathBuf};

use regex::Regex;

/// One side of a rule.
#[derive(Debug, Clone)]
pub struct Side {
    /// `None` = `ALL`.
    pub any_of: Option<Vec<Regex>>,
    pub except: Vec<Regex>,
}

impl Side {
    pub fn matches(&self, s: &str) -> bool {
        let hit = match &self.any_of {
            None => true,
            Some(list) => list.iter().any(|r| r.is_match(s)),
        };
        hit && !self.except.iter().any(|r| r.is_match(s))
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub left: Side,
    pub right: Side,
}

/// The rules of one file, in file order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Does some rule match `(left, right)`?
    pub fn matches(&self, left: &str, right: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.left.matches(left) && r.right.matches(right))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Why a rule file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {reason}")]
    Syntax {
        file: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Reads a rule file. A missing file is an empty rule set, as in SER
/// (which logged it); anything unreadable or malformed is an error.
pub(crate) fn load(file: &Path) -> Result<Option<RuleSet>, RuleError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RuleError::Read {
                file: file.to_path_buf(),
                source: e,
            })
        }
    };
    parse(&text)
        .map(Some)
        .map_err(|(line, reason)| RuleError::Syntax {
            file: file.to_path_buf(),
            line,
            reason,
        })
}

/// Parses rule text; an error names the 1-based line.
pub(crate) fn parse(text: &str) -> Result<RuleSet, (usize, String)> {
    let mut rules = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.trim().is_empty() {
            continue;
        }
        let toks = tokens(line).map_err(|e| (i + 1, e))?;
        rules.push(rule(&toks).map_err(|e| (i + 1, e))?);
    }
    Ok(RuleSet { rules })
}

/// Drops a `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Expr(String),
    All,
    Except,
    Comma,
    Colon,
}

fn tokens(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = line.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        match c {
            ' ' | '\t' | '\r' => {}
            ',' => out.push(Tok::Comma),
            ':' => out.push(Tok::Colon),
            '"' => {
                let mut s = String::new();
                let mut closed = false;
                while let Some((_, c)) = it.next() {
                    match c {
                        '\\' => {
                            // \" is a quote; other escapes are the regex's.
                            match it.next() {
                                Some((_, '"')) => s.push('"'),
                                Some((_, o)) => {
                                    s.push('\\');
                                    s.push(o);
                                }
                                None => s.push('\\'),
                            }
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        o => s.push(o),
                    }
                }
                if !closed {
                    return Err("unterminated quoted expression".into());
                }
                out.push(Tok::Expr(s));
            }
            c if c.is_ascii_alphabetic() => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = it.peek() {
                    if !d.is_ascii_alphanumeric() {
                        break;
                    }
                    end = j + d.len_utf8();
                    it.next();
                }
                match &line[i..end] {
                    w if w.eq_ignore_ascii_case("ALL") => out.push(Tok::All),
                    w if w.eq_ignore_ascii_case("EXCEPT") => out.push(Tok::Except),
                    w => {
                        return Err(format!(
                            "unexpected word {w:?} (ALL, EXCEPT or a quoted expression expected)"
                        ))
                    }
                }
            }
            o => return Err(format!("unexpected character {o:?}")),
        }
    }
    Ok(out)
}

fn rule(toks: &[Tok]) -> Result<Rule, String> {
    let colon = toks
        .iter()
        .position(|t| *t == Tok::Colon)
        .ok_or("no ':' between the two sides of the rule")?;
    let (l, r) = (&toks[..colon], &toks[colon + 1..]);
    if r.contains(&Tok::Colon) {
        return Err("more than one ':' in the rule".into());
    }
    Ok(Rule {
        left: side(l).map_err(|e| format!("left side: {e}"))?,
        right: side(r).map_err(|e| format!("right side: {e}"))?,
    })
}

fn side(toks: &[Tok]) -> Result<Side, String> {
    let (main, except) = match toks.iter().position(|t| *t == Tok::Except) {
        Some(p) => (&toks[..p], Some(&toks[p + 1..])),
        None => (toks, None),
    };
    let any_of = match main {
        [Tok::All] => None,
        [] => return Err("empty (ALL or an expression expected)".into()),
        list => Some(exprs(list)?),
    };
    let except = match except {
        None => Vec::new(),
        Some([]) => return Err("nothing after EXCEPT".into()),
        Some(list) => exprs(list)?,
    };
    Ok(Side { any_of, except })
}

/// `"re" , "re" , …`
fn exprs(toks: &[Tok]) -> Result<Vec<Regex>, String> {
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match (i % 2, t) {
            (0, Tok::Expr(s)) => out.push(
                regex::RegexBuilder::new(s)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| {
                        let why = e.to_string();
                        let why = why.lines().last().unwrap_or("").trim().to_string();
                        format!("bad regular expression {s:?}: {why}")
                    })?,
            ),
            (1, Tok::Comma) => {}
            (_, Tok::All) => return Err("ALL cannot be part of a list".into()),
            _ => return Err("expressions must be quoted and separated by ','".into()),
        }
    }
    if toks.last() == Some(&Tok::Comma) {
        return Err("list ends with ','".into());
    }
    Ok(out)
}
