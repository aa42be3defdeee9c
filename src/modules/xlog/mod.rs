//! xlog — `xlog(level, format)` and `xdbg(format)`: a log line built from
//! the message being processed (SER 0.9's `modules/xlog`).
//!
//! The format is parsed once, at fixup, into [`format::Part`]s; an unknown
//! specifier refuses the config with its file:line. The line goes out like
//! the script's own `log()`: verbatim (the format carries its `\n`), only
//! when `level` ≤ `debug`, to stderr or syslog at that priority. `xdbg` is
//! `xlog("L_DBG", …)`. Both return 1, or −1 when the line does not fit
//! `buf_size` (4096 bytes, as in 0.9; nothing is logged then, as in 0.9).
//!
//! Not rate-limited, by choice: an xlog line is the script author's own
//! per-message trace, already gated by `debug=`; a limiter would drop
//! lines of exactly the calls someone is tracing. What a peer controls is
//! the content, and that is escaped (no forged lines, no terminal control
//! bytes) and bounded by `buf_size`. The one message a peer can trigger
//! at will beyond that — a line too long — is logged through
//! [`crate::log_limited!`].

pub mod format;

use crate::cfg::ast::Literal;
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;

use format::Part;

/// SER 0.9 exported both for request, failure and onreply routes.
const R: RouteMask = RouteMask::REQ_FAIL_ONREPLY;

static FUNCS: &[FnDef] = &[FnDef::new("xlog", 2, 2, R), FnDef::new("xdbg", 1, 1, R)];

/// SER's `L_DBG`.
const L_DBG: i32 = 4;

pub struct Xlog {
    buf_size: usize,
}

impl Default for Xlog {
    fn default() -> Self {
        Xlog { buf_size: 4096 }
    }
}

/// The `debug` level of `L_ALERT` … `L_DBG` (case-insensitive).
pub fn parse_level(s: &str) -> Option<i32> {
    const LEVELS: [(&str, i32); 7] = [
        ("L_ALERT", -3),
        ("L_CRIT", -2),
        ("L_ERR", -1),
        ("L_WARN", 1),
        ("L_NOTICE", 2),
        ("L_INFO", 3),
        ("L_DBG", L_DBG),
    ];
    let s = s.trim();
    LEVELS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, l)| *l)
}

fn parse_format(func: &'static str, index: usize, fmt: &str) -> Result<Vec<Part>, FixupError> {
    format::parse(fmt).map_err(|e| FixupError::BadArg {
        func,
        index,
        expected: "an xlog format",
        found: e.to_string(),
    })
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Renders and logs one line; the script's return value.
fn emit(level: i32, parts: &[Part], limit: usize, ctx: &MsgCtx<'_>) -> i32 {
    if !crate::logging::enabled(level) {
        return 1;
    }
    match format::render(parts, ctx, now_secs(), limit) {
        Ok(line) => {
            crate::logging::script_log(level, &String::from_utf8_lossy(&line));
            1
        }
        Err(o) => {
            crate::log_limited!(
                log::Level::Error,
                "xlog: line longer than buf_size ({} bytes), not logged",
                o.limit
            );
            -1
        }
    }
}

impl Module for Xlog {
    fn name(&self) -> &'static str {
        "xlog"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        match (param, value) {
            ("buf_size", Literal::Int(n)) if (64..=1 << 20).contains(n) => {
                self.buf_size = *n as usize;
                Ok(())
            }
            ("buf_size", _) => Err(ParamError::BadType {
                module: "xlog",
                param: param.into(),
                expected: "an integer 64..1048576",
            }),
            _ => Err(super::no_params("xlog", param)),
        }
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let limit = self.buf_size;
        let (level, parts) = if f.name == "xdbg" {
            (L_DBG, parse_format(f.name, 1, &arg_str(f.name, args, 0)?)?)
        } else {
            let lv = arg_str(f.name, args, 0)?;
            let level = parse_level(&lv).ok_or_else(|| FixupError::BadArg {
                func: f.name,
                index: 1,
                expected: "L_ALERT, L_CRIT, L_ERR, L_WARN, L_NOTICE, L_INFO or L_DBG",
                found: format!("{lv:?}"),
            })?;
            (level, parse_format(f.name, 2, &arg_str(f.name, args, 1)?)?)
        };
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            emit(level, &parts, limit, ctx)
        }))
    }
}

#[cfg(test)]
mod tests;
