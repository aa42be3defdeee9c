//! The config target: the ser.cfg lexer and parser, then the loader
//! (globals, modules and their parameters, every route compiled with its
//! functions fixed up) with a fixed set of modules.
//!
//! Loading must not leave the process: host names are resolved at load
//! (`forward("host")`, `src_ip == host`), and the system resolver may wait
//! seconds for an answer, so names in those places are replaced by an
//! address before loading. `permissions` is left out of the set: it reads
//! its rule files at load.

use crate::cfg::ast::{Expr, Item, Literal, Operand, Rhs, Script, Stmt};
use crate::route::globals::CoreCfg;
use crate::route::{load, ModuleCatalog};

/// Modules whose load step reads no file and opens no socket.
const MODULES: &[&str] = &[
    "sl",
    "tm",
    "maxfwd",
    "textops",
    "xlog",
    "print",
    "rr",
    "uri",
    "avpops",
    "registrar",
    "usrloc",
    "nathelper",
    "pike",
    "acc",
    "auth",
    "exec",
];

fn create(name: &str) -> Option<Box<dyn crate::route::export::Module>> {
    MODULES
        .contains(&name)
        .then(|| crate::modules::create(name))
        .flatten()
}

const CATALOG: ModuleCatalog = ModuleCatalog {
    create,
    names: MODULES,
};

/// Fuzz target body: parse, and load what parses. Errors are answers;
/// only a panic is a finding.
pub fn script(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    let Ok(mut ast) = crate::cfg::parse_str(&src, "fuzz.cfg") else {
        return;
    };
    without_names(&mut ast);
    if let Err(e) = load(&ast, "fuzz.cfg", CoreCfg::default(), CATALOG) {
        // the message names its place, as `ser -c` prints it
        assert!(e.to_string().starts_with("fuzz.cfg:"), "{e}");
    }
}

/// Is `s` something the loader would send to the resolver?
fn is_name(s: &str) -> bool {
    let s = s.trim_matches(|c| c == '[' || c == ']');
    s.parse::<std::net::IpAddr>().is_err() && s != "uri:host"
}

fn without_names(s: &mut Script) {
    for item in &mut s.items {
        if let Item::Route(b) = item {
            stmts(&mut b.body);
        }
    }
}

fn stmts(list: &mut [Stmt]) {
    for s in list {
        match s {
            Stmt::Call(c) => call(c),
            Stmt::If {
                cond,
                then,
                otherwise,
                ..
            } => {
                expr(cond);
                stmts(then);
                if let Some(o) = otherwise {
                    stmts(o);
                }
            }
            Stmt::Block(b) => stmts(b),
            Stmt::Assign { value, .. } => expr(value),
        }
    }
}

fn call(c: &mut crate::cfg::ast::Call) {
    if c.name.starts_with("forward") || c.name == "send" {
        if let Some(Literal::Str(h) | Literal::Ident(h)) = c.args.first_mut() {
            if is_name(h) {
                *h = "127.0.0.1".into();
            }
        }
    }
}

fn expr(e: &mut Expr) {
    match e {
        Expr::Not(x) => expr(x),
        Expr::And(a, b) | Expr::Or(a, b) => {
            expr(a);
            expr(b);
        }
        Expr::Cmp { lhs, rhs, .. } => {
            if matches!(lhs, Operand::SrcIp | Operand::DstIp) {
                if let Rhs::Str(h) | Rhs::Ident(h) = rhs {
                    if is_name(h) {
                        *h = "127.0.0.1".into();
                    }
                }
            }
        }
        Expr::Call(c) => call(c),
        Expr::Block(b) => stmts(b),
        Expr::Int(_) | Expr::Var(_) => {}
    }
}
