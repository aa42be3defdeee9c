//! Core actions of the SER 0.9 script language (ser-compat-spec §1.7).

use std::net::SocketAddr;

use crate::cfg::ast::Literal;
use crate::fwd::resolve;
use crate::net::Proto;
use crate::route::ctx::{Branch, MsgCtx, ScriptError, MAX_BRANCHES};
use crate::route::export::{
    arg_int, arg_int_range, arg_str, BoxedFn, FixupEnv, FixupError, FnDef, RouteMask as M,
};
use crate::route::forward::{forward_request, uri_destination};
use crate::route::globals::MAX_LEN;
use crate::route::uri_ops::{rewrite, UriEdit};

const R: M = M::REQ_FAIL_BRANCH;

static CORE: &[FnDef] = &[
    FnDef::new("forward", 1, 2, R),
    FnDef::new("forward_udp", 1, 2, R),
    FnDef::new("forward_tcp", 1, 2, R),
    FnDef::new("forward_tls", 1, 2, R),
    FnDef::new("send", 1, 2, R),
    FnDef::new("send_tcp", 1, 2, R),
    FnDef::new("log", 1, 2, M::ANY),
    FnDef::new("setflag", 1, 1, M::ANY),
    FnDef::new("resetflag", 1, 1, M::ANY),
    FnDef::new("isflagset", 1, 1, M::ANY),
    FnDef::new("seturi", 1, 1, R),
    FnDef::new("rewriteuri", 1, 1, R),
    FnDef::new("sethost", 1, 1, R),
    FnDef::new("rewritehost", 1, 1, R),
    FnDef::new("seth", 1, 1, R),
    FnDef::new("sethostport", 1, 1, R),
    FnDef::new("rewritehostport", 1, 1, R),
    FnDef::new("sethp", 1, 1, R),
    FnDef::new("setport", 1, 1, R),
    FnDef::new("rewriteport", 1, 1, R),
    FnDef::new("setp", 1, 1, R),
    FnDef::new("setuser", 1, 1, R),
    // Spelling of the tm docs' append_branch example (pre-0.8 names).
    FnDef::new("set_user", 1, 1, R),
    FnDef::new("rewriteuser", 1, 1, R),
    FnDef::new("setu", 1, 1, R),
    FnDef::new("setuserpass", 1, 1, R),
    FnDef::new("rewriteuserpass", 1, 1, R),
    FnDef::new("setup", 1, 1, R),
    FnDef::new("prefix", 1, 1, R),
    FnDef::new("strip", 1, 1, R),
    FnDef::new("strip_tail", 1, 1, R),
    FnDef::new("revert_uri", 0, 0, R),
    FnDef::new("append_branch", 0, 2, M::REQ_FAIL),
    FnDef::new("t_fork", 0, 0, M::REQ_FAIL),
    FnDef::new("force_rport", 0, 0, M::REQ_FAIL),
    FnDef::new("add_rport", 0, 0, M::REQ_FAIL),
    FnDef::new("force_tcp_alias", 0, 1, M::REQ_FAIL),
    FnDef::new("add_tcp_alias", 0, 1, M::REQ_FAIL),
    FnDef::new("set_advertised_address", 1, 1, M::ANY),
    FnDef::new("set_advertised_port", 1, 1, M::ANY),
    FnDef::new("force_send_socket", 1, 1, R),
    FnDef::new("error", 2, 2, M::ANY),
    FnDef::new("exec", 1, 1, M::ANY),
    FnDef::new("len_gt", 1, 1, M::ANY),
];

pub fn find(name: &str) -> Option<FnDef> {
    CORE.iter().find(|d| d.name == name).copied()
}

/// Longest a core `exec("cmd")` may run (the exec module's default
/// `time_to_kill`), so a command that hangs cannot hold a worker for good.
const CORE_EXEC_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Where `forward` sends: fixed at load, or read from the URI per message.
enum Dest {
    Fixed(SocketAddr),
    Uri { port: Option<u16> },
}

fn parse_dest(def: &FnDef, args: &[Literal]) -> Result<Dest, FixupError> {
    let first = arg_str(def.name, args, 0)?;
    let port = match args.get(1) {
        None => None,
        Some(Literal::Ident(s)) if s == "uri:port" => None,
        Some(_) => Some(arg_int_range(def.name, args, 1, 0, 65535, "a port number")? as u16),
    };
    if first == "uri:host" {
        return Ok(Dest::Uri { port });
    }
    // Fixed hosts are resolved once, at start-up, as in SER.
    let addr = resolve(first.as_bytes(), port.filter(|p| *p != 0).unwrap_or(5060)).ok_or(
        FixupError::Resolve {
            host: first.clone(),
            reason: "no address found".into(),
        },
    )?;
    Ok(Dest::Fixed(addr))
}

fn forward_fn(dest: Dest, forced: Option<Proto>) -> BoxedFn {
    Box::new(move |ctx: &mut MsgCtx<'_>| {
        let (addr, proto) = match &dest {
            Dest::Fixed(a) => (*a, Proto::Udp),
            Dest::Uri { port } => match uri_destination(ctx, *port) {
                Ok(d) => d,
                Err(e) => return ctx.fail(e),
            },
        };
        forward_request(ctx, addr, forced.unwrap_or(proto))
    })
}

fn send_fn(dest: Dest) -> BoxedFn {
    Box::new(move |ctx: &mut MsgCtx<'_>| {
        let addr = match &dest {
            Dest::Fixed(a) => *a,
            Dest::Uri { port } => match uri_destination(ctx, *port) {
                Ok((a, _)) => a,
                Err(e) => return ctx.fail(e),
            },
        };
        let Some(sock) = ctx.rt.sockets.udp_for(&addr) else {
            return ctx.fail(ScriptError::Send);
        };
        match sock.send(ctx.msg.buf(), addr, None) {
            Ok(()) => 1,
            Err(_) => ctx.fail(ScriptError::Send),
        }
    })
}

fn uri_fn(edit: UriEdit) -> BoxedFn {
    Box::new(
        move |ctx: &mut MsgCtx<'_>| match rewrite(ctx.ruri(), &edit) {
            Ok(u) => {
                ctx.new_uri = Some(u);
                1
            }
            Err(e) => {
                log::error!("URI rewrite failed: {e}");
                ctx.fail(ScriptError::Uri)
            }
        },
    )
}

fn flag_arg(def: &FnDef, args: &[Literal]) -> Result<u32, FixupError> {
    Ok(arg_int_range(def.name, args, 0, 0, 31, "a flag number 0..31")? as u32)
}

/// q-value "0.5" → 500.
fn parse_q(s: &str) -> Option<u16> {
    let v: f64 = s.trim().parse().ok()?;
    if !(0.0..=1.0).contains(&v) {
        return None;
    }
    Some((v * 1000.0).round() as u16)
}

pub fn fixup(def: &FnDef, args: &[Literal], _env: &FixupEnv<'_>) -> Result<BoxedFn, FixupError> {
    let s = |i| arg_str(def.name, args, i).map(String::into_bytes);
    Ok(match def.name {
        "forward" | "forward_udp" => forward_fn(
            parse_dest(def, args)?,
            (def.name == "forward_udp").then_some(Proto::Udp),
        ),
        "forward_tcp" => forward_fn(parse_dest(def, args)?, Some(Proto::Tcp)),
        "forward_tls" => forward_fn(parse_dest(def, args)?, Some(Proto::Tls)),
        "send" => send_fn(parse_dest(def, args)?),
        "send_tcp" => {
            return Err(FixupError::Unavailable {
                func: "send_tcp",
                reason: "TCP transport is not built yet",
            })
        }
        "log" => {
            let (level, text) = if args.len() == 2 {
                (
                    arg_int(def.name, args, 0, "a log level")? as i32,
                    arg_str(def.name, args, 1)?,
                )
            } else {
                (4, arg_str(def.name, args, 0)?)
            };
            Box::new(move |_: &mut MsgCtx<'_>| {
                crate::logging::script_log(level, &text);
                1
            })
        }
        "setflag" => {
            let n = flag_arg(def, args)?;
            Box::new(move |ctx: &mut MsgCtx<'_>| {
                ctx.flags |= 1 << n;
                1
            })
        }
        "resetflag" => {
            let n = flag_arg(def, args)?;
            Box::new(move |ctx: &mut MsgCtx<'_>| {
                ctx.flags &= !(1 << n);
                1
            })
        }
        "isflagset" => {
            let n = flag_arg(def, args)?;
            Box::new(move |ctx: &mut MsgCtx<'_>| if ctx.flag_set(n) { 1 } else { -1 })
        }
        "seturi" | "rewriteuri" => uri_fn(UriEdit::Set(s(0)?)),
        "sethost" | "rewritehost" | "seth" => uri_fn(UriEdit::Host(s(0)?)),
        "sethostport" | "rewritehostport" | "sethp" => uri_fn(UriEdit::HostPort(s(0)?)),
        "setport" | "rewriteport" | "setp" => {
            arg_int_range(def.name, args, 0, 0, 65535, "a port number")?;
            uri_fn(UriEdit::Port(s(0)?))
        }
        "setuser" | "rewriteuser" | "setu" | "set_user" => uri_fn(UriEdit::User(s(0)?)),
        "setuserpass" | "rewriteuserpass" | "setup" => uri_fn(UriEdit::UserPass(s(0)?)),
        "prefix" => uri_fn(UriEdit::Prefix(s(0)?)),
        "strip" => uri_fn(UriEdit::Strip(
            arg_int_range(def.name, args, 0, 0, 1024, "a count")? as usize,
        )),
        "strip_tail" => uri_fn(UriEdit::StripTail(arg_int_range(
            def.name, args, 0, 0, 1024, "a count",
        )? as usize)),
        "revert_uri" => Box::new(|ctx: &mut MsgCtx<'_>| {
            ctx.new_uri = None;
            1
        }),
        "append_branch" | "t_fork" => {
            let uri = if args.is_empty() { None } else { Some(s(0)?) };
            let q = match args.get(1) {
                None => None,
                Some(_) => Some(parse_q(&arg_str(def.name, args, 1)?).ok_or(
                    FixupError::BadArg {
                        func: "append_branch",
                        index: 2,
                        expected: "a q value 0..1",
                        found: arg_str(def.name, args, 1)?,
                    },
                )?),
            };
            Box::new(move |ctx: &mut MsgCtx<'_>| {
                if ctx.dset.len() + 1 >= MAX_BRANCHES {
                    return ctx.fail(ScriptError::Branches);
                }
                let (u, dst) = match &uri {
                    Some(u) => (u.clone(), None),
                    None => (ctx.ruri().to_vec(), ctx.dst_uri.clone()),
                };
                ctx.dset.push(Branch {
                    uri: u,
                    q,
                    dst_uri: dst,
                });
                1
            })
        }
        "force_rport" | "add_rport" => Box::new(|ctx: &mut MsgCtx<'_>| {
            ctx.force_rport = true;
            1
        }),
        // Aliasing a TCP connection has no meaning for UDP, the only
        // transport served so far.
        "force_tcp_alias" | "add_tcp_alias" => Box::new(|_: &mut MsgCtx<'_>| 1),
        "set_advertised_address" => {
            let a = arg_str(def.name, args, 0)?;
            Box::new(move |ctx: &mut MsgCtx<'_>| {
                ctx.adv_addr = Some(a.clone());
                1
            })
        }
        "set_advertised_port" => {
            let p = arg_int_range(def.name, args, 0, 1, 65535, "a port number")? as u16;
            Box::new(move |ctx: &mut MsgCtx<'_>| {
                ctx.adv_port = Some(p);
                1
            })
        }
        "force_send_socket" => {
            let spec = arg_str(def.name, args, 0)?;
            let (host, port) =
                crate::route::uri_ops::split_host_port(spec.trim_start_matches("udp:").as_bytes());
            let host = String::from_utf8_lossy(host).into_owned();
            let port: Option<u16> = std::str::from_utf8(port).ok().and_then(|p| p.parse().ok());
            Box::new(move |ctx: &mut MsgCtx<'_>| {
                let found = ctx.rt.sockets.all().iter().position(|s| {
                    (s.listen.name == host
                        || s.listen.addr.ip().to_string() == host.trim_matches(['[', ']']))
                        && port.is_none_or(|p| p == s.listen.addr.port())
                });
                match found {
                    Some(i) => {
                        ctx.send_sock = Some(i);
                        1
                    }
                    None => {
                        log::error!("force_send_socket: {host} is not one of our sockets");
                        -1
                    }
                }
            })
        }
        "error" => {
            let (c, r) = (arg_str(def.name, args, 0)?, arg_str(def.name, args, 1)?);
            Box::new(move |_: &mut MsgCtx<'_>| {
                log::warn!(
                    "error(\"{c}\", \"{r}\") called: not implemented in SER either, ignored"
                );
                1
            })
        }
        "exec" => {
            let cmd = arg_str(def.name, args, 0)?;
            Box::new(move |_: &mut MsgCtx<'_>| {
                // A worker waits for the command, but never longer than
                // CORE_EXEC_LIMIT: a hung command is killed (with its
                // process group) and reaped.
                let job = crate::os::command::Job {
                    script: &cmd,
                    name: "exec",
                    args: &[],
                    env: &[],
                    stdin: None,
                    capture: false,
                    limit: CORE_EXEC_LIMIT,
                };
                match crate::os::command::run(&job) {
                    Ok(f) if !f.success() => {
                        crate::warn_limited!("exec({cmd:?}): {}", f.status_text())
                    }
                    Ok(_) => {}
                    Err(e) => crate::warn_limited!("exec({cmd:?}): {e}"),
                }
                1
            })
        }
        "len_gt" => {
            let n = match args.first() {
                Some(Literal::Ident(s)) if s == "max_len" => MAX_LEN,
                _ => arg_int(def.name, args, 0, "a length or max_len")?,
            };
            Box::new(move |ctx: &mut MsgCtx<'_>| {
                if ctx.msg.buf().len() as i64 >= n {
                    1
                } else {
                    -1
                }
            })
        }
        _ => {
            return Err(FixupError::Unavailable {
                func: def.name,
                reason: "unknown core function",
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("x"), None);
    }

    #[test]
    fn every_core_name_has_a_fixup() {
        let names = std::collections::HashMap::new();
        let env = FixupEnv {
            core: &crate::route::globals::CoreCfg::default(),
            routes: &names,
            cfg_file: "ser.cfg",
        };
        for d in CORE {
            let args: Vec<Literal> = match d.name {
                "forward" | "forward_udp" | "forward_tcp" | "forward_tls" | "send" => {
                    vec![Literal::Str("127.0.0.1".into()), Literal::Int(5060)]
                }
                "log"
                | "seturi"
                | "rewriteuri"
                | "sethost"
                | "rewritehost"
                | "seth"
                | "sethostport"
                | "rewritehostport"
                | "sethp"
                | "setuser"
                | "rewriteuser"
                | "setu"
                | "setuserpass"
                | "rewriteuserpass"
                | "setup"
                | "prefix"
                | "exec"
                | "set_advertised_address"
                | "set_user"
                | "force_send_socket" => vec![Literal::Str("x".into())],
                "error" => vec![Literal::Str("x".into()), Literal::Str("y".into())],
                "revert_uri" | "append_branch" | "t_fork" | "force_rport" | "add_rport"
                | "force_tcp_alias" | "add_tcp_alias" => vec![],
                _ => vec![Literal::Str("5".into())],
            };
            let r = fixup(d, &args, &env);
            if d.name == "send_tcp" {
                assert!(r.is_err());
            } else {
                assert!(r.is_ok(), "{} failed: {:?}", d.name, r.err());
            }
        }
    }
}
