//! exec — external commands from the script (SER 0.9's exec module).
//!
//! - `exec_dset("cmd")`: runs `cmd` with the current Request-URI as its
//!   argument; the lines it prints are the new targets: the first
//!   rewrites the R-URI, the others are appended as branches (so
//!   `t_relay` forks). True when it printed at least one URI and exited 0.
//! - `exec_msg("cmd")`: runs `cmd` with the request on its stdin; true
//!   iff it exited 0. Its output is discarded.
//! - `exec_avp("cmd"[, "avp1,avp2"])` (OpenSER/SER 2.x): each printed
//!   line becomes an AVP, named from the list or `i:1`, `i:2` … after it.
//!
//! Parameters: `setvars` (1) exports the request as `SIP_*` variables
//! ([`env`]); `time_to_kill` (seconds) bounds each command's run.
//!
//! Deliberate deviations from SER 0.9, each closing a hazard:
//! - SER appended the R-URI to the command line in single quotes, so a
//!   URI with a `'` in it ran whatever followed as shell code. Here the
//!   script is `cmd "$1"` and the URI is `$1`, an argv entry the shell
//!   never parses. The command text itself comes only from ser.cfg.
//! - SER set the variables in its own environment; here only the
//!   command's process gets them.
//! - `time_to_kill 0` meant "wait forever" (a hung script blocked the
//!   worker for good); here it means the default, [`DEFAULT_LIMIT`].
//!   The command runs in its own process group, and the whole group is
//!   killed and reaped at the limit ([`run`]).
//! - Output is bounded ([`crate::os::command::MAX_OUTPUT`]); more kills the command.
//! - `exec_dset` changes the destination set only when the command
//!   succeeded and every line is a URI that fits (SER applied lines as it
//!   read them, then returned false on a bad exit or a full set).

pub mod env;

use std::time::Duration;

use crate::cfg::ast::Literal;
use crate::route::ctx::{AvpName, AvpValue, Branch, ScriptError, MAX_BRANCHES};
use crate::route::export::{
    arg_str, param_int, BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask,
};
use crate::route::uri_ops::MAX_URI;
use crate::route::MsgCtx;
use crate::sip::parse_uri;

use crate::os::command::{self as run, Finished, Job};

/// The limit when `time_to_kill` is 0 (SER's default, "never"): a
/// worker must not be lost to a command that never ends.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(60);

/// Longest `time_to_kill` accepted (seconds).
const MAX_TIME_TO_KILL: i64 = 3600;

pub struct Exec {
    setvars: bool,
    /// `time_to_kill` in seconds; 0 = [`DEFAULT_LIMIT`].
    time_to_kill: u32,
}

impl Default for Exec {
    fn default() -> Self {
        Exec {
            setvars: true,
            time_to_kill: 0,
        }
    }
}

impl Exec {
    fn limit(&self) -> Duration {
        match self.time_to_kill {
            0 => DEFAULT_LIMIT,
            s => Duration::from_secs(u64::from(s)),
        }
    }
}

static FUNCS: &[FnDef] = &[
    FnDef::new("exec_dset", 1, 1, RouteMask::REQ_FAIL),
    FnDef::new("exec_msg", 1, 1, RouteMask::REQ_FAIL),
    FnDef::new("exec_avp", 1, 2, RouteMask::REQ_FAIL),
];

/// What a fixed-up call needs at run time.
#[derive(Debug, Clone)]
struct Cmd {
    func: &'static str,
    text: String,
    setvars: bool,
    limit: Duration,
}

impl Cmd {
    /// Run with `args` as `$1`…, `stdin` fed; the output when the command
    /// ended by itself, whatever its status (logged here when it failed).
    fn run(
        &self,
        ctx: &MsgCtx<'_>,
        script: &str,
        args: &[&[u8]],
        stdin: Option<&[u8]>,
    ) -> Option<Finished> {
        let vars = if self.setvars {
            env::sip_vars(ctx)
        } else {
            Vec::new()
        };
        let job = Job {
            script,
            name: self.func,
            args,
            env: &vars,
            stdin,
            capture: stdin.is_none(),
            limit: self.limit,
        };
        match run::run(&job) {
            Ok(f) => {
                if !f.success() {
                    log::info!("{}({:?}): {}", self.func, self.text, f.status_text());
                }
                Some(f)
            }
            Err(e) => {
                log::error!("{}({:?}): {e}", self.func, self.text);
                None
            }
        }
    }
}

/// SER's reading of the output: one value per line, trailing CR, LF,
/// tab and space trimmed, empty lines skipped.
pub fn output_lines(out: &[u8]) -> Vec<&[u8]> {
    out.split(|b| *b == b'\n')
        .map(|l| {
            let end = l
                .iter()
                .rposition(|c| !matches!(c, b'\r' | b'\t' | b' '))
                .map_or(0, |i| i + 1);
            &l[..end]
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// Why a command's output cannot become the destination set.
#[derive(Debug, PartialEq, Eq)]
pub enum DsetError {
    Empty,
    BadUri(String),
    TooMany(usize),
}

/// The new R-URI and the branches to append, checked against the set
/// `existing` branches already fill.
pub fn dset_from(out: &[u8], existing: usize) -> Result<(Vec<u8>, Vec<Vec<u8>>), DsetError> {
    let lines = output_lines(out);
    let Some((first, rest)) = lines.split_first() else {
        return Err(DsetError::Empty);
    };
    if let Some(bad) = lines
        .iter()
        .find(|l| l.len() > MAX_URI || parse_uri(l).is_err())
    {
        return Err(DsetError::BadUri(
            String::from_utf8_lossy(&bad[..bad.len().min(80)]).into_owned(),
        ));
    }
    // As append_branch: the R-URI plus the branches fit MAX_BRANCHES.
    if existing + rest.len() + 1 > MAX_BRANCHES {
        return Err(DsetError::TooMany(lines.len()));
    }
    Ok((first.to_vec(), rest.iter().map(|l| l.to_vec()).collect()))
}

fn exec_dset(cmd: Cmd) -> BoxedFn {
    let script = format!("{} \"$1\"", cmd.text);
    Box::new(move |ctx: &mut MsgCtx<'_>| {
        let ruri = ctx.ruri().to_vec();
        let Some(f) = cmd.run(ctx, &script, &[&ruri], None) else {
            return ctx.fail(ScriptError::Exec);
        };
        if !f.success() {
            return ctx.fail(ScriptError::Exec);
        }
        match dset_from(&f.stdout, ctx.dset.len()) {
            Ok((uri, branches)) => {
                ctx.new_uri = Some(uri);
                ctx.dset.extend(branches.into_iter().map(|uri| Branch {
                    uri,
                    q: None,
                    dst_uri: None,
                }));
                1
            }
            Err(DsetError::TooMany(n)) => {
                log::error!(
                    "exec_dset({:?}): {n} URIs do not fit the branch set",
                    cmd.text
                );
                ctx.fail(ScriptError::Branches)
            }
            Err(e) => {
                log::error!("exec_dset({:?}): no usable URI set: {e:?}", cmd.text);
                ctx.fail(ScriptError::Exec)
            }
        }
    })
}

fn exec_msg(cmd: Cmd) -> BoxedFn {
    Box::new(move |ctx: &mut MsgCtx<'_>| {
        let msg = ctx.msg.buf();
        match cmd.run(ctx, &cmd.text, &[], Some(msg)) {
            Some(f) if f.success() => 1,
            _ => ctx.fail(ScriptError::Exec),
        }
    })
}

/// `avp1,$avp(s:x),i:3` → names; `$avp(…)` and a leading `$` are
/// accepted as OpenSER wrote them.
fn avp_names(list: &str) -> Vec<AvpName> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = s
                .strip_prefix("$avp(")
                .and_then(|r| r.strip_suffix(')'))
                .or_else(|| s.strip_prefix('$'))
                .unwrap_or(s);
            AvpName::parse(s)
        })
        .collect()
}

fn exec_avp(cmd: Cmd, names: Vec<AvpName>) -> BoxedFn {
    Box::new(move |ctx: &mut MsgCtx<'_>| {
        let Some(f) = cmd.run(ctx, &cmd.text, &[], None) else {
            return ctx.fail(ScriptError::Exec);
        };
        for (i, line) in output_lines(&f.stdout).into_iter().enumerate() {
            let name = names
                .get(i)
                .cloned()
                .unwrap_or(AvpName::Int(u32::try_from(i + 1).unwrap_or(u32::MAX)));
            ctx.avps.push((name, AvpValue::Str(line.to_vec())));
        }
        if f.success() {
            1
        } else {
            ctx.fail(ScriptError::Exec)
        }
    })
}

impl Module for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        match param {
            "setvars" => self.setvars = super::flag_param("exec", param, value)?,
            "time_to_kill" => {
                let n = param_int("exec", param, value)?;
                if !(0..=MAX_TIME_TO_KILL).contains(&n) {
                    return Err(ParamError::BadValue {
                        module: "exec",
                        param: param.into(),
                        reason: format!("{n} is not 0..{MAX_TIME_TO_KILL} seconds"),
                    });
                }
                self.time_to_kill = n as u32;
            }
            _ => return Err(super::no_params("exec", param)),
        }
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let text = arg_str(f.name, args, 0)?;
        if text.trim().is_empty() {
            return Err(FixupError::BadArg {
                func: f.name,
                index: 1,
                expected: "a command",
                found: "an empty string".into(),
            });
        }
        let cmd = Cmd {
            func: f.name,
            text,
            setvars: self.setvars,
            limit: self.limit(),
        };
        Ok(match f.name {
            "exec_dset" => exec_dset(cmd),
            "exec_msg" => exec_msg(cmd),
            _ => {
                let names = match args.get(1) {
                    Some(_) => avp_names(&arg_str(f.name, args, 1)?),
                    None => Vec::new(),
                };
                exec_avp(cmd, names)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_ser_reads_them() {
        assert_eq!(
            output_lines(b"sip:a@h \r\n\n\t\nsip:b@h\t\nsip:c@h"),
            vec![&b"sip:a@h"[..], b"sip:b@h", b"sip:c@h"]
        );
        assert!(output_lines(b"\n \r\n").is_empty());
    }

    #[test]
    fn dset_from_output() {
        let (ruri, br) = dset_from(b"sip:a@h\nsip:b@h:5070\n", 0).unwrap();
        assert_eq!(ruri, b"sip:a@h");
        assert_eq!(br, vec![b"sip:b@h:5070".to_vec()]);
        assert_eq!(dset_from(b"\n\n", 0), Err(DsetError::Empty));
        assert!(matches!(
            dset_from(b"sip:a@h\nnot a uri\n", 0),
            Err(DsetError::BadUri(_))
        ));
        let many: String = (0..MAX_BRANCHES).map(|i| format!("sip:u{i}@h\n")).collect();
        assert!(dset_from(many.as_bytes(), 0).is_ok());
        assert_eq!(
            dset_from(many.as_bytes(), 1),
            Err(DsetError::TooMany(MAX_BRANCHES))
        );
        let long = format!("sip:{}@h", "a".repeat(MAX_URI));
        assert!(matches!(
            dset_from(long.as_bytes(), 0),
            Err(DsetError::BadUri(_))
        ));
    }

    #[test]
    fn avp_name_lists() {
        assert_eq!(
            avp_names("$avp(s:test), i:3 ,plain"),
            vec![
                AvpName::Str(b"test".to_vec()),
                AvpName::Int(3),
                AvpName::Str(b"plain".to_vec())
            ]
        );
    }

    #[test]
    fn parameters() {
        let mut m = Exec::default();
        assert_eq!(m.limit(), DEFAULT_LIMIT);
        m.set_param("time_to_kill", &Literal::Int(2)).unwrap();
        assert_eq!(m.limit(), Duration::from_secs(2));
        assert!(m.set_param("time_to_kill", &Literal::Int(-1)).is_err());
        m.set_param("setvars", &Literal::Int(0)).unwrap();
        assert!(!m.setvars);
        assert!(m.set_param("nosuch", &Literal::Int(0)).is_err());
    }
}
