//! SER 2.x's `fifo` and `unixsock` modules: in 0.9 the control interfaces
//! were core settings (`fifo=`, `unix_sock=`); 2.x configures them as
//! module parameters. Both spellings end in the same core settings, and
//! one pair of servers (`crate::ctl`) serves them.

use crate::cfg::ast::Literal;
use crate::route::export::{BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError};
use crate::route::globals::CoreCfg;

fn text(module: &'static str, param: &str, v: &Literal) -> Result<String, ParamError> {
    match v {
        Literal::Str(s) | Literal::Ident(s) => Ok(s.clone()),
        Literal::Int(n) => Ok(n.to_string()),
        Literal::Ip(ip) => Ok(ip.to_string()),
    }
    .and_then(|s| {
        if s.is_empty() {
            Err(ParamError::BadValue {
                module,
                param: param.into(),
                reason: "empty".into(),
            })
        } else {
            Ok(s)
        }
    })
}

fn number(
    module: &'static str,
    param: &str,
    v: &Literal,
    lo: i64,
    hi: i64,
) -> Result<i64, ParamError> {
    let n = match v {
        Literal::Int(n) => Some(*n),
        Literal::Str(s) | Literal::Ident(s) => {
            let s = s.trim();
            // Modes are written in octal ("0660").
            if s.len() > 1 && s.starts_with('0') {
                i64::from_str_radix(&s[1..], 8).ok()
            } else {
                s.parse().ok()
            }
        }
        Literal::Ip(_) => None,
    };
    match n {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(ParamError::BadType {
            module,
            param: param.into(),
            expected: "a number in range",
        }),
    }
}

fn no_functions(f: &FnDef) -> FixupError {
    FixupError::Unavailable {
        func: f.name,
        reason: "this module exports no functions",
    }
}

/// 2.x `unixsock`: `socket`, `children`, `send_timeout` (ms),
/// `socket_mode`, `socket_user`, `socket_group`.
#[derive(Debug, Default)]
pub struct UnixSock {
    socket: Option<String>,
    children: Option<u32>,
    send_timeout_ms: Option<u32>,
    mode: Option<u32>,
    user: Option<String>,
    group: Option<String>,
}

impl Module for UnixSock {
    fn name(&self) -> &'static str {
        "unixsock"
    }
    fn functions(&self) -> &'static [FnDef] {
        &[]
    }
    fn set_param(&mut self, param: &str, v: &Literal) -> Result<(), ParamError> {
        const M: &str = "unixsock";
        match param {
            "socket" => self.socket = Some(text(M, param, v)?),
            "children" => self.children = Some(number(M, param, v, 1, 64)? as u32),
            "send_timeout" => self.send_timeout_ms = Some(number(M, param, v, 0, 600_000)? as u32),
            "socket_mode" => self.mode = Some(number(M, param, v, 0, 0o7777)? as u32),
            "socket_user" => self.user = Some(text(M, param, v)?),
            "socket_group" => self.group = Some(text(M, param, v)?),
            _ => return Err(super::no_params(M, param)),
        }
        Ok(())
    }
    fn fixup(&self, f: &FnDef, _: &[Literal], _: &FixupEnv<'_>) -> Result<BoxedFn, FixupError> {
        Err(no_functions(f))
    }
    fn configure_core(&self, core: &mut CoreCfg) {
        if let Some(s) = &self.socket {
            core.unix_sock = Some(s.clone());
        }
        if let Some(n) = self.children {
            core.unix_sock_children = n;
        }
        if let Some(t) = self.send_timeout_ms {
            core.unix_tx_timeout_ms = t;
        }
        if let Some(m) = self.mode {
            core.unix_sock_mode = Some(m);
        }
        core.unix_sock_user = self.user.clone().or(core.unix_sock_user.take());
        core.unix_sock_group = self.group.clone().or(core.unix_sock_group.take());
    }
}

/// 2.x `fifo`: `fifo_file`, `fifo_dir`, `user`, `group`, `mode`; the
/// reply retry settings are accepted (SER's 4 × 80 ms is kept).
#[derive(Debug, Default)]
pub struct Fifo {
    file: Option<String>,
    dir: Option<String>,
    mode: Option<u32>,
    user: Option<String>,
    group: Option<String>,
}

impl Module for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }
    fn functions(&self) -> &'static [FnDef] {
        &[]
    }
    fn set_param(&mut self, param: &str, v: &Literal) -> Result<(), ParamError> {
        const M: &str = "fifo";
        match param {
            "fifo_file" => self.file = Some(text(M, param, v)?),
            "fifo_dir" => self.dir = Some(text(M, param, v)?),
            "mode" | "fifo_mode" => self.mode = Some(number(M, param, v, 0, 0o7777)? as u32),
            "user" | "fifo_user" => self.user = Some(text(M, param, v)?),
            "group" | "fifo_group" => self.group = Some(text(M, param, v)?),
            "reply_retries" => {
                number(M, param, v, 0, 1000)?;
            }
            "reply_wait" => {
                number(M, param, v, 0, 10_000_000)?;
            }
            _ => return Err(super::no_params(M, param)),
        }
        Ok(())
    }
    fn fixup(&self, f: &FnDef, _: &[Literal], _: &FixupEnv<'_>) -> Result<BoxedFn, FixupError> {
        Err(no_functions(f))
    }
    fn configure_core(&self, core: &mut CoreCfg) {
        if let Some(f) = &self.file {
            core.fifo = Some(f.clone());
        }
        if let Some(d) = &self.dir {
            core.fifo_dir = d.clone();
        }
        if let Some(m) = self.mode {
            core.fifo_mode = m;
        }
        if self.user.is_some() {
            core.fifo_user = self.user.clone();
        }
        if self.group.is_some() {
            core.fifo_group = self.group.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unixsock_params_reach_the_core() {
        let mut m = UnixSock::default();
        m.set_param("socket", &Literal::Str("/tmp/s".into()))
            .unwrap();
        m.set_param("children", &Literal::Int(2)).unwrap();
        m.set_param("socket_mode", &Literal::Str("0600".into()))
            .unwrap();
        assert!(m.set_param("nope", &Literal::Int(1)).is_err());
        assert!(m.set_param("children", &Literal::Int(0)).is_err());
        let mut c = CoreCfg::default();
        m.configure_core(&mut c);
        assert_eq!(c.unix_sock.as_deref(), Some("/tmp/s"));
        assert_eq!((c.unix_sock_children, c.unix_sock_mode), (2, Some(0o600)));
    }

    #[test]
    fn fifo_params_reach_the_core() {
        let mut m = Fifo::default();
        m.set_param("fifo_file", &Literal::Str("/tmp/f".into()))
            .unwrap();
        m.set_param("reply_retries", &Literal::Int(4)).unwrap();
        let mut c = CoreCfg::default();
        m.configure_core(&mut c);
        assert_eq!(c.fifo.as_deref(), Some("/tmp/f"));
    }
}
