//! Loading a parsed script: global parameters, modules and their
//! parameters, then every route block compiled into [`Action`]s with its
//! functions resolved and their arguments fixed up. Any problem is a
//! [`LoadError`] naming file:line:col, so `ser -c` catches it.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};

use crate::cfg::ast::{
    CmpOp, Expr, Item, Literal, Operand, Pos, Rhs, RouteBlock, RouteKind, RouteName, Script, Stmt,
};
use crate::route::core_fns;
use crate::route::export::{compile_regex, FixupEnv, FixupError, Module, ParamError, RouteMask};
use crate::route::expr::{Cond, IpOperand, NumOperand, StrOperand};
use crate::route::globals::{CoreCfg, GlobalError, MAX_LEN};
use crate::route::interp::Action;
use crate::route::runtime::{Loaded, Routes};

/// A config problem found while loading, with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub pos: Pos,
    pub kind: LoadErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadErrorKind {
    #[error("{0}")]
    Global(#[from] GlobalError),
    #[error("unknown module {name:?}; supported modules: {supported}")]
    UnknownModule { name: String, supported: String },
    #[error("{0}")]
    Param(#[from] ParamError),
    #[error("modparam: no loaded module matches {0:?} (loadmodule must come first)")]
    NoModuleMatches(String),
    #[error("modparam: bad module regex {0:?}")]
    BadModuleRegex(String),
    #[error("unknown function {0:?} (is its module loaded?)")]
    UnknownFunction(String),
    #[error("{name} takes {expected} argument(s), found {found}")]
    ArgCount {
        name: String,
        expected: String,
        found: usize,
    },
    #[error("{name} cannot be used in {kind}")]
    NotAllowedHere { name: String, kind: &'static str },
    #[error("{0}")]
    Fixup(#[from] FixupError),
    #[error("route index {0} out of range (0..{1})")]
    RouteIndex(u32, u32),
    #[error("{0} is defined twice")]
    DuplicateRoute(String),
    #[error("unknown route {0:?}")]
    UnknownRoute(String),
    #[error("cannot compare {operand} with {rhs}")]
    BadComparison { operand: &'static str, rhs: String },
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.pos.line, self.pos.col, self.kind
        )
    }
}

impl std::error::Error for LoadError {}

/// Highest route index SER 0.9 allows (`route[0..19]`); 2.x allows more,
/// so the bound here is generous.
const MAX_ROUTE_INDEX: u32 = 1024;

fn kind_name(k: RouteKind) -> &'static str {
    match k {
        RouteKind::Request => "request_route",
        RouteKind::Failure => "failure_route",
        RouteKind::OnReply => "onreply_route",
        RouteKind::Branch => "branch_route",
        RouteKind::CoreReply => "onreply_route (core)",
        RouteKind::OnSend => "onsend_route",
    }
}

/// The modules `loadmodule` can find. The route layer knows modules only
/// through the `Module` trait; the catalog of real ones is handed in from
/// above (`modules::CATALOG`), which keeps this layer below them.
#[derive(Debug, Clone, Copy)]
pub struct ModuleCatalog {
    /// A fresh instance of the module `name` (`"tm"` for `tm.so`).
    pub create: fn(&str) -> Option<Box<dyn Module>>,
    /// Every name `create` knows, for the refusal message.
    pub names: &'static [&'static str],
}

struct Loader<'a> {
    file: &'a str,
    catalog: ModuleCatalog,
    core: CoreCfg,
    modules: Vec<Box<dyn Module>>,
    names: HashMap<(RouteKind, RouteName), usize>,
}

/// Load a parsed script. `core` arrives with the command-line settings
/// already applied; config values override them, as in SER.
pub fn load(
    script: &Script,
    file: &str,
    core: CoreCfg,
    catalog: ModuleCatalog,
) -> Result<Loaded, LoadError> {
    let mut l = Loader {
        file,
        catalog,
        core,
        modules: Vec::new(),
        names: HashMap::new(),
    };
    let mut blocks: Vec<&RouteBlock> = Vec::new();
    for item in &script.items {
        match item {
            Item::Global { name, value, pos } => {
                l.core.set(name, value).map_err(|e| l.err(*pos, e.into()))?
            }
            Item::LoadModule { path, pos } => l.load_module(path, *pos)?,
            Item::LoadPath { .. } => {}
            Item::ModParam {
                module,
                param,
                value,
                pos,
            } => l.modparam(module, param, value, *pos)?,
            Item::Route(b) => blocks.push(b),
        }
    }
    for m in &l.modules {
        m.configure_core(&mut l.core);
    }
    let mut routes = l.index_routes(&blocks)?;
    for b in &blocks {
        let actions = l.compile_block(b)?;
        let idx = l.names[&(b.kind, b.name.clone())];
        match b.kind {
            RouteKind::CoreReply => routes.core_reply = Some(actions),
            RouteKind::OnSend => routes.onsend = Some(actions),
            k => {
                let table = match k {
                    RouteKind::Request => &mut routes.request,
                    RouteKind::Failure => &mut routes.failure,
                    RouteKind::OnReply => &mut routes.onreply,
                    _ => &mut routes.branch,
                };
                // 0.9 concatenates blocks given twice under one number.
                table[idx].extend(actions);
            }
        }
    }
    routes.names = l.names;
    Ok(Loaded {
        core: l.core,
        routes,
        modules: l.modules,
    })
}

impl<'a> Loader<'a> {
    fn err(&self, pos: Pos, kind: LoadErrorKind) -> LoadError {
        LoadError {
            file: self.file.to_string(),
            pos,
            kind,
        }
    }

    fn load_module(&mut self, path: &str, pos: Pos) -> Result<(), LoadError> {
        let base = path.rsplit('/').next().unwrap_or(path);
        let name = base.strip_suffix(".so").unwrap_or(base);
        if self.modules.iter().any(|m| m.name() == name) {
            return Ok(());
        }
        match (self.catalog.create)(name) {
            Some(m) => {
                self.modules.push(m);
                Ok(())
            }
            None => Err(self.err(
                pos,
                LoadErrorKind::UnknownModule {
                    name: name.to_string(),
                    supported: self.catalog.names.join(", "),
                },
            )),
        }
    }

    fn modparam(
        &mut self,
        module: &str,
        param: &str,
        value: &Literal,
        pos: Pos,
    ) -> Result<(), LoadError> {
        let re = regex::RegexBuilder::new(&format!("^(?:{module})$"))
            .case_insensitive(true)
            .build()
            .map_err(|_| self.err(pos, LoadErrorKind::BadModuleRegex(module.to_string())))?;
        let mut hit = false;
        for i in 0..self.modules.len() {
            if re.is_match(self.modules[i].name()) {
                hit = true;
                let r = self.modules[i].set_param(param, value);
                r.map_err(|e| self.err(pos, e.into()))?;
            }
        }
        if !hit {
            return Err(self.err(pos, LoadErrorKind::NoModuleMatches(module.to_string())));
        }
        Ok(())
    }

    /// Give every block its table index: numbers keep their value, names
    /// follow the highest number.
    fn index_routes(&mut self, blocks: &[&RouteBlock]) -> Result<Routes, LoadError> {
        let mut routes = Routes::default();
        for kind in [
            RouteKind::Request,
            RouteKind::Failure,
            RouteKind::OnReply,
            RouteKind::Branch,
        ] {
            let mut max = if kind == RouteKind::Request {
                Some(0usize)
            } else {
                None
            };
            for b in blocks.iter().filter(|b| b.kind == kind) {
                if let RouteName::Num(n) = b.name {
                    if n >= MAX_ROUTE_INDEX {
                        return Err(self.err(b.pos, LoadErrorKind::RouteIndex(n, MAX_ROUTE_INDEX)));
                    }
                    max = Some(max.map_or(n as usize, |m: usize| m.max(n as usize)));
                    self.names.insert((kind, b.name.clone()), n as usize);
                }
            }
            let mut next = max.map_or(0, |m| m + 1);
            for b in blocks.iter().filter(|b| b.kind == kind) {
                if let RouteName::Name(_) = b.name {
                    let key = (kind, b.name.clone());
                    if self.names.contains_key(&key) {
                        return Err(self.err(
                            b.pos,
                            LoadErrorKind::DuplicateRoute(format!("{:?}", b.name)),
                        ));
                    }
                    self.names.insert(key, next);
                    next += 1;
                }
            }
            let table = match kind {
                RouteKind::Request => &mut routes.request,
                RouteKind::Failure => &mut routes.failure,
                RouteKind::OnReply => &mut routes.onreply,
                _ => &mut routes.branch,
            };
            table.resize_with(next, Vec::new);
        }
        for b in blocks
            .iter()
            .filter(|b| matches!(b.kind, RouteKind::CoreReply | RouteKind::OnSend))
        {
            self.names.insert((b.kind, b.name.clone()), 0);
        }
        Ok(routes)
    }

    fn compile_block(&self, b: &RouteBlock) -> Result<Vec<Action>, LoadError> {
        // A numbered request route may be called from failure or branch
        // routes too, so only the main route is held to request-only use.
        let mask = match (b.kind, &b.name) {
            (RouteKind::Request, RouteName::Num(0)) => RouteMask::REQUEST,
            (RouteKind::Request, _) => RouteMask::ANY,
            (k, _) => RouteMask::of(k),
        };
        let cx = BlockCx { kind: b.kind, mask };
        self.stmts(&b.body, &cx)
    }

    fn stmts(&self, list: &[Stmt], cx: &BlockCx) -> Result<Vec<Action>, LoadError> {
        list.iter().map(|s| self.stmt(s, cx)).collect()
    }

    fn stmt(&self, s: &Stmt, cx: &BlockCx) -> Result<Action, LoadError> {
        match s {
            Stmt::Call(c) => self.call(c, cx),
            Stmt::If {
                cond,
                then,
                otherwise,
                ..
            } => Ok(Action::If {
                cond: self.cond(cond, cx)?,
                then: self.stmts(then, cx)?,
                otherwise: match otherwise {
                    Some(o) => self.stmts(o, cx)?,
                    None => Vec::new(),
                },
            }),
            Stmt::Block(list) => Ok(Action::Block(self.stmts(list, cx)?)),
            Stmt::Assign { pos, .. } => {
                Err(self.err(*pos, LoadErrorKind::Unsupported("AVP assignment")))
            }
        }
    }

    fn call(&self, c: &crate::cfg::ast::Call, cx: &BlockCx) -> Result<Action, LoadError> {
        let int_arg = |default: i32| -> i32 {
            match c.args.first() {
                Some(Literal::Int(n)) => *n as i32,
                Some(Literal::Str(s)) => s.parse().unwrap_or(default),
                _ => default,
            }
        };
        match c.name.as_str() {
            "drop" | "break" if c.args.is_empty() => return Ok(Action::Break),
            "exit" if c.args.len() <= 1 => return Ok(Action::Exit),
            "return" if c.args.len() <= 1 => return Ok(Action::Return(int_arg(1))),
            "route" if c.args.len() == 1 => return self.route_call(c),
            _ => {}
        }
        let env = FixupEnv {
            core: &self.core,
            routes: &self.names,
            cfg_file: self.file,
        };
        let (def, owner) = match core_fns::find(&c.name) {
            Some(d) => (d, None),
            None => {
                let found = self.modules.iter().find_map(|m| {
                    m.functions()
                        .iter()
                        .find(|f| f.name == c.name)
                        .map(|f| (*f, Some(m)))
                });
                found.ok_or_else(|| {
                    self.err(c.pos, LoadErrorKind::UnknownFunction(c.name.clone()))
                })?
            }
        };
        let n = c.args.len();
        if n < def.min_args as usize || n > def.max_args as usize {
            return Err(self.err(
                c.pos,
                LoadErrorKind::ArgCount {
                    name: c.name.clone(),
                    expected: def.arity_text(),
                    found: n,
                },
            ));
        }
        if !mask_overlaps(def.kinds, cx.mask) {
            return Err(self.err(
                c.pos,
                LoadErrorKind::NotAllowedHere {
                    name: c.name.clone(),
                    kind: kind_name(cx.kind),
                },
            ));
        }
        let f = match owner {
            None => core_fns::fixup(&def, &c.args, &env),
            Some(m) => m.fixup(&def, &c.args, &env),
        };
        f.map(Action::Call).map_err(|e| self.err(c.pos, e.into()))
    }

    fn route_call(&self, c: &crate::cfg::ast::Call) -> Result<Action, LoadError> {
        let name = match &c.args[0] {
            Literal::Int(n) if *n >= 0 => RouteName::Num(*n as u32),
            Literal::Str(s) | Literal::Ident(s) => match s.parse::<u32>() {
                Ok(n) => RouteName::Num(n),
                Err(_) => RouteName::Name(s.clone()),
            },
            other => return Err(self.err(c.pos, LoadErrorKind::UnknownRoute(format!("{other:?}")))),
        };
        match self.names.get(&(RouteKind::Request, name.clone())) {
            Some(idx) => Ok(Action::Route(*idx)),
            // SER 0.9 routes are a fixed array: calling an empty one is a no-op.
            None => match name {
                RouteName::Num(n) if n < MAX_ROUTE_INDEX => {
                    log::warn!("{}:{}: route({n}) calls an empty route", self.file, c.pos);
                    Ok(Action::Route(usize::MAX))
                }
                other => Err(self.err(c.pos, LoadErrorKind::UnknownRoute(format!("{other:?}")))),
            },
        }
    }

    fn cond(&self, e: &Expr, cx: &BlockCx) -> Result<Cond, LoadError> {
        Ok(match e {
            Expr::Not(a) => Cond::Not(Box::new(self.cond(a, cx)?)),
            Expr::And(a, b) => Cond::And(Box::new(self.cond(a, cx)?), Box::new(self.cond(b, cx)?)),
            Expr::Or(a, b) => Cond::Or(Box::new(self.cond(a, cx)?), Box::new(self.cond(b, cx)?)),
            Expr::Int(n) => Cond::Const(if *n != 0 { 1 } else { -1 }),
            Expr::Call(c) => match self.call(c, cx)? {
                Action::Call(f) => Cond::Call(f),
                other => Cond::Block(vec![other]),
            },
            Expr::Block(list) => Cond::Block(self.stmts(list, cx)?),
            Expr::Var(_) => {
                return Err(self.err(
                    Pos::default(),
                    LoadErrorKind::Unsupported("variables in conditions"),
                ))
            }
            Expr::Cmp { lhs, op, rhs, pos } => self.cmp(*lhs, *op, rhs, *pos, cx)?,
        })
    }

    fn cmp(
        &self,
        lhs: Operand,
        op: CmpOp,
        rhs: &Rhs,
        pos: Pos,
        cx: &BlockCx,
    ) -> Result<Cond, LoadError> {
        let bad = |operand: &'static str| {
            self.err(
                pos,
                LoadErrorKind::BadComparison {
                    operand,
                    rhs: rhs_text(rhs),
                },
            )
        };
        let negate = op == CmpOp::Ne;
        let str_test = |what: StrOperand, operand: &'static str| -> Result<Cond, LoadError> {
            let text = match rhs {
                Rhs::Str(s) | Rhs::Ident(s) => s.clone(),
                Rhs::Int(n) => n.to_string(),
                Rhs::Net { addr, .. } => addr.to_string(),
                _ => return Err(bad(operand)),
            };
            match op {
                CmpOp::Eq | CmpOp::Ne => Ok(Cond::StrEq {
                    what,
                    val: text.into_bytes(),
                    negate,
                }),
                CmpOp::Match => {
                    let re = compile_regex(&text).map_err(|e| self.err(pos, e.into()))?;
                    Ok(Cond::StrRe {
                        what,
                        re,
                        negate: false,
                    })
                }
                _ => Err(bad(operand)),
            }
        };
        let num = |what: NumOperand, operand: &'static str| -> Result<Cond, LoadError> {
            let val = match rhs {
                Rhs::Int(n) => *n,
                Rhs::MaxLen => MAX_LEN,
                Rhs::Str(s) | Rhs::Ident(s) => s.parse().map_err(|_| bad(operand))?,
                _ => return Err(bad(operand)),
            };
            if op == CmpOp::Match {
                return Err(bad(operand));
            }
            Ok(Cond::Num { what, op, val })
        };
        match lhs {
            Operand::Method => str_test(StrOperand::Method, "method"),
            Operand::Uri | Operand::FromUri | Operand::ToUri => {
                let (what, name) = match lhs {
                    Operand::Uri if cx.kind == RouteKind::OnReply => (StrOperand::Status, "uri"),
                    Operand::Uri => (StrOperand::Uri, "uri"),
                    Operand::FromUri => (StrOperand::FromUri, "from_uri"),
                    _ => (StrOperand::ToUri, "to_uri"),
                };
                match rhs {
                    Rhs::Myself if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                        Ok(Cond::UriMyself { what, negate })
                    }
                    _ => str_test(what, name),
                }
            }
            Operand::Status => match rhs {
                Rhs::Int(_) if op != CmpOp::Match => num(NumOperand::Status, "status"),
                _ => str_test(StrOperand::Status, "status"),
            },
            Operand::SrcIp | Operand::DstIp => {
                let (what, swhat, name) = if lhs == Operand::SrcIp {
                    (IpOperand::Src, StrOperand::SrcIp, "src_ip")
                } else {
                    (IpOperand::Dst, StrOperand::DstIp, "dst_ip")
                };
                match (rhs, op) {
                    (Rhs::Myself, CmpOp::Eq | CmpOp::Ne) => Ok(Cond::IpMyself { what, negate }),
                    (Rhs::Net { addr, prefix }, CmpOp::Eq | CmpOp::Ne) => Ok(Cond::IpIn {
                        what,
                        nets: vec![(*addr, *prefix)],
                        negate,
                    }),
                    (Rhs::Str(s) | Rhs::Ident(s), CmpOp::Eq | CmpOp::Ne) => {
                        let nets = resolve_host(s).map_err(|e| self.err(pos, e.into()))?;
                        Ok(Cond::IpIn { what, nets, negate })
                    }
                    (_, CmpOp::Match) => str_test(swhat, name),
                    _ => Err(bad(name)),
                }
            }
            Operand::SrcPort => num(NumOperand::SrcPort, "src_port"),
            Operand::DstPort => num(NumOperand::DstPort, "dst_port"),
            Operand::MsgLen => num(NumOperand::MsgLen, "msg:len"),
            Operand::RetCode => num(NumOperand::RetCode, "$retcode"),
            Operand::Proto => match rhs {
                Rhs::Proto(p) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                    Ok(Cond::Proto { proto: *p, negate })
                }
                _ => Err(bad("proto")),
            },
            Operand::Af => match rhs {
                Rhs::Af(a) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                    Ok(Cond::Af { af: *a, negate })
                }
                Rhs::Int(a) if matches!(op, CmpOp::Eq | CmpOp::Ne) => Ok(Cond::Af {
                    af: *a as u8,
                    negate,
                }),
                _ => Err(bad("af")),
            },
            Operand::SndIp
            | Operand::SndPort
            | Operand::SndProto
            | Operand::SndAf
            | Operand::ToIp
            | Operand::ToPort => {
                Err(self.err(pos, LoadErrorKind::Unsupported("onsend_route operands")))
            }
        }
    }
}

struct BlockCx {
    kind: RouteKind,
    mask: RouteMask,
}

fn mask_overlaps(a: RouteMask, b: RouteMask) -> bool {
    [
        RouteKind::Request,
        RouteKind::Failure,
        RouteKind::OnReply,
        RouteKind::Branch,
        RouteKind::OnSend,
        RouteKind::CoreReply,
    ]
    .iter()
    .any(|k| a.allows(*k) && b.allows(*k))
}

fn rhs_text(r: &Rhs) -> String {
    match r {
        Rhs::Str(s) => format!("{s:?}"),
        Rhs::Int(n) => n.to_string(),
        Rhs::Ident(s) => s.clone(),
        Rhs::Myself => "myself".into(),
        Rhs::MaxLen => "max_len".into(),
        Rhs::Net { addr, prefix } => format!("{addr}/{prefix}"),
        Rhs::Proto(p) => format!("{p:?}").to_lowercase(),
        Rhs::Af(a) => format!("af {a}"),
    }
}

/// An IP text is taken as is; a name is resolved once, at load.
fn resolve_host(s: &str) -> Result<Vec<(IpAddr, u8)>, FixupError> {
    if let Ok(ip) = s.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        return Ok(vec![(ip, if ip.is_ipv4() { 32 } else { 128 })]);
    }
    let addrs = (s, 0u16)
        .to_socket_addrs()
        .map_err(|e| FixupError::Resolve {
            host: s.to_string(),
            reason: e.to_string(),
        })?;
    Ok(addrs
        .map(|a| (a.ip(), if a.is_ipv4() { 32 } else { 128 }))
        .collect())
}
