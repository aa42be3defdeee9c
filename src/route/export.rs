//! What a script can call: function definitions, the runtime trait of a
//! fixed-up call, the module trait, and where each function may be used.
//!
//! SER resolves every function and "fixes up" its arguments (numbers,
//! regexes, resolved hosts) when the config loads; a bad argument is a
//! config error, never a runtime one. Here a fixup turns the literal
//! arguments into a boxed [`ScriptFn`] that holds the prepared values.

use std::fmt;

use crate::cfg::ast::{Literal, RouteKind};
use crate::route::ctx::MsgCtx;

/// A set of route kinds a function may be called from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMask(u8);

impl RouteMask {
    pub const REQUEST: RouteMask = RouteMask(1);
    pub const FAILURE: RouteMask = RouteMask(2);
    pub const ONREPLY: RouteMask = RouteMask(4);
    pub const BRANCH: RouteMask = RouteMask(8);
    pub const ONSEND: RouteMask = RouteMask(16);
    pub const CORE_REPLY: RouteMask = RouteMask(32);
    pub const ANY: RouteMask = RouteMask(63);
    /// Request-processing blocks: the usual scope of a module function.
    pub const REQ_FAIL: RouteMask = RouteMask(1 | 2);
    pub const REQ_FAIL_BRANCH: RouteMask = RouteMask(1 | 2 | 8);
    pub const REQ_FAIL_ONREPLY: RouteMask = RouteMask(1 | 2 | 4);

    pub const fn or(self, other: RouteMask) -> RouteMask {
        RouteMask(self.0 | other.0)
    }

    pub fn of(kind: RouteKind) -> RouteMask {
        match kind {
            RouteKind::Request => Self::REQUEST,
            RouteKind::Failure => Self::FAILURE,
            RouteKind::OnReply => Self::ONREPLY,
            RouteKind::Branch => Self::BRANCH,
            RouteKind::OnSend => Self::ONSEND,
            RouteKind::CoreReply => Self::CORE_REPLY,
        }
    }

    pub fn allows(self, kind: RouteKind) -> bool {
        self.0 & Self::of(kind).0 != 0
    }
}

/// A script-callable function as a module (or the core) declares it.
#[derive(Debug, Clone, Copy)]
pub struct FnDef {
    pub name: &'static str,
    pub min_args: u8,
    pub max_args: u8,
    pub kinds: RouteMask,
}

impl FnDef {
    pub const fn new(name: &'static str, min_args: u8, max_args: u8, kinds: RouteMask) -> FnDef {
        FnDef {
            name,
            min_args,
            max_args,
            kinds,
        }
    }

    pub fn arity_text(&self) -> String {
        if self.min_args == self.max_args {
            self.min_args.to_string()
        } else {
            format!("{} to {}", self.min_args, self.max_args)
        }
    }
}

/// A call after fixup: runs against one message.
///
/// Return values follow SER: >0 success/true, <0 failure/false, 0 stops
/// the script (like `drop`).
pub trait ScriptFn: Send + Sync {
    fn call(&self, ctx: &mut MsgCtx<'_>) -> i32;
}

impl<F: Fn(&mut MsgCtx<'_>) -> i32 + Send + Sync> ScriptFn for F {
    fn call(&self, ctx: &mut MsgCtx<'_>) -> i32 {
        self(ctx)
    }
}

pub type BoxedFn = Box<dyn ScriptFn>;

/// Why a function's arguments were refused at load time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixupError {
    #[error("argument {index} of {func}: expected {expected}, found {found}")]
    BadArg {
        func: &'static str,
        index: usize,
        expected: &'static str,
        found: String,
    },
    #[error("bad regular expression {regex:?}: {reason}")]
    BadRegex { regex: String, reason: String },
    #[error("cannot resolve {host:?}: {reason}")]
    Resolve { host: String, reason: String },
    /// A file the function reads at load (permissions' rule files) is
    /// unreadable or malformed; `reason` names the file and line.
    #[error("{func}: {reason}")]
    BadFile { func: &'static str, reason: String },
    #[error("{func} is not available: {reason}")]
    Unavailable {
        func: &'static str,
        reason: &'static str,
    },
}

/// Why a `modparam` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("module {module} has no parameter {param:?}")]
    Unknown { module: &'static str, param: String },
    #[error("parameter {param:?} of {module} expects {expected}")]
    BadType {
        module: &'static str,
        param: String,
        expected: &'static str,
    },
    #[error("parameter {param:?} of {module}: {reason}")]
    BadValue {
        module: &'static str,
        param: String,
        reason: String,
    },
}

/// What fixups may consult: the core settings already parsed, and the
/// route blocks by name (`t_on_failure("1")` resolves to a table index).
pub struct FixupEnv<'a> {
    pub core: &'a crate::route::globals::CoreCfg,
    pub routes: &'a std::collections::HashMap<(RouteKind, crate::cfg::ast::RouteName), usize>,
    /// The config file being loaded: SER reads files a module names
    /// relative to its directory (permissions' `.allow`/`.deny`).
    pub cfg_file: &'a str,
}

impl FixupEnv<'_> {
    /// `name` as SER's `get_pathname` resolves it: absolute stays, else
    /// relative to the config file's directory.
    pub fn cfg_relative(&self, name: &str) -> std::path::PathBuf {
        let p = std::path::Path::new(name);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match std::path::Path::new(self.cfg_file).parent() {
            Some(d) => d.join(p),
            None => p.to_path_buf(),
        }
    }

    /// Index of route `name` of `kind`, written as a number or name.
    pub fn route_index(&self, kind: RouteKind, name: &str) -> Option<usize> {
        let key = match name.trim().parse::<u32>() {
            Ok(n) => crate::cfg::ast::RouteName::Num(n),
            Err(_) => crate::cfg::ast::RouteName::Name(name.trim().to_string()),
        };
        self.routes.get(&(kind, key)).copied()
    }
}

/// A built-in SER module.
pub trait Module: Send + Sync {
    fn name(&self) -> &'static str;
    fn functions(&self) -> &'static [FnDef];
    /// A `modparam`. The default refuses every name: a module takes only
    /// the parameters it honours (nothing accepted and ignored).
    fn set_param(&mut self, param: &str, _value: &Literal) -> Result<(), ParamError> {
        Err(ParamError::Unknown {
            module: self.name(),
            param: param.to_string(),
        })
    }
    fn fixup(&self, f: &FnDef, args: &[Literal], env: &FixupEnv<'_>)
        -> Result<BoxedFn, FixupError>;
    /// Runs before the request route; `Some(ret)` consumes the message
    /// (sl uses this to absorb ACKs to its own replies).
    fn pre_script(&self, _ctx: &mut MsgCtx<'_>) -> Option<i32> {
        None
    }
    /// Runs after the request route finished (tm releases what the
    /// script left behind).
    fn post_script(&self, _ctx: &mut MsgCtx<'_>) {}
    /// Management commands (FIFO / unix socket) this module answers.
    fn ctl_commands(&self) -> &'static [crate::ctl::CtlCmd] {
        &[]
    }
    /// Settings a module contributes to the core, once all parameters are
    /// set (2.x moved the control sockets into modules).
    fn configure_core(&self, _core: &mut crate::route::globals::CoreCfg) {}
    /// SER's mod_init: once, in the supervisor, after the runtime exists
    /// and shared memory is mapped, before any fork.
    fn mod_init(
        &self,
        _rt: &'static crate::route::Runtime,
        _region: &'static shm::Region,
    ) -> Result<(), ModInitError> {
        Ok(())
    }
    /// Processes of the module's own, forked after the core's (SER 2.x
    /// modules forked theirs from `child_init(PROC_MAIN)`).
    fn procs(&self) -> Vec<ModProc> {
        Vec::new()
    }
    /// SER's mod_destroy: once, in the supervisor, after every child has
    /// stopped. Must not wait on a shm lock a dead child may hold.
    fn destroy(&self) {}
}

/// A module's own process: how `ps` names it, and its body, whose return
/// value is the exit code.
#[derive(Debug, Clone, Copy)]
pub struct ModProc {
    pub desc: &'static str,
    pub body: fn() -> i32,
}

/// A module could not set itself up.
#[derive(Debug, thiserror::Error)]
#[error("module {module}: {reason}")]
pub struct ModInitError {
    pub module: &'static str,
    pub reason: String,
}

impl fmt::Debug for dyn Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "module {}", self.name())
    }
}

// ----- argument helpers shared by fixups -----

pub fn arg_str(func: &'static str, args: &[Literal], index: usize) -> Result<String, FixupError> {
    match args.get(index) {
        Some(Literal::Str(s)) | Some(Literal::Ident(s)) => Ok(s.clone()),
        Some(Literal::Int(n)) => Ok(n.to_string()),
        Some(Literal::Ip(ip)) => Ok(ip.to_string()),
        None => Err(FixupError::BadArg {
            func,
            index: index + 1,
            expected: "a string",
            found: "nothing".into(),
        }),
    }
}

/// A number given as an int or as a quoted string (0.9 passes "10").
pub fn arg_int(
    func: &'static str,
    args: &[Literal],
    index: usize,
    expected: &'static str,
) -> Result<i64, FixupError> {
    let bad = |found: String| FixupError::BadArg {
        func,
        index: index + 1,
        expected,
        found,
    };
    match args.get(index) {
        Some(Literal::Int(n)) => Ok(*n),
        Some(Literal::Str(s)) | Some(Literal::Ident(s)) => {
            s.trim().parse::<i64>().map_err(|_| bad(format!("{s:?}")))
        }
        Some(Literal::Ip(ip)) => Err(bad(ip.to_string())),
        None => Err(bad("nothing".into())),
    }
}

pub fn arg_int_range(
    func: &'static str,
    args: &[Literal],
    index: usize,
    lo: i64,
    hi: i64,
    expected: &'static str,
) -> Result<i64, FixupError> {
    let n = arg_int(func, args, index, expected)?;
    if n < lo || n > hi {
        return Err(FixupError::BadArg {
            func,
            index: index + 1,
            expected,
            found: n.to_string(),
        });
    }
    Ok(n)
}

// ----- parameter helpers shared by modules -----

/// An integer `modparam`, as SER's INT_PARAM takes it: a bare number.
pub fn param_int(module: &'static str, param: &str, v: &Literal) -> Result<i64, ParamError> {
    match v {
        Literal::Int(n) => Ok(*n),
        _ => Err(not_an_integer(module, param)),
    }
}

/// An integer `modparam` that may also be written quoted (`"1"`), as the
/// rr and acc documentation examples write them.
pub fn param_int_or_quoted(
    module: &'static str,
    param: &str,
    v: &Literal,
) -> Result<i64, ParamError> {
    match v {
        Literal::Int(n) => Ok(*n),
        Literal::Str(s) | Literal::Ident(s) => {
            s.trim().parse().map_err(|_| not_an_integer(module, param))
        }
        Literal::Ip(_) => Err(not_an_integer(module, param)),
    }
}

fn not_an_integer(module: &'static str, param: &str) -> ParamError {
    ParamError::BadType {
        module,
        param: param.to_string(),
        expected: "an integer",
    }
}

/// POSIX-extended, case-insensitive regex as SER compiles them.
pub fn compile_regex(re: &str) -> Result<regex::bytes::Regex, FixupError> {
    regex::bytes::RegexBuilder::new(re)
        .case_insensitive(true)
        .build()
        .map_err(|e| FixupError::BadRegex {
            regex: re.to_string(),
            reason: first_line(&e.to_string()),
        })
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}
