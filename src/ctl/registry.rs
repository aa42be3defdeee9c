//! The command table shared by the FIFO and unix socket servers: the core
//! commands plus those modules export, and how one request is served.

use super::reply::{Outcome, Reply};
use super::request::{Dialect, Head, LineSource, ParamError, Params};
use super::target::ReplyTarget;

/// What a handler may know about the request beyond its parameters.
pub struct CmdCtx<'a> {
    pub dialect: Dialect,
    /// Where a later report goes; `None` when the client wants no reply.
    pub target: Option<&'a ReplyTarget>,
    pub registry: &'a Registry,
}

/// A handler reads its parameters and answers. A parameter it could not
/// read is an `Err`, answered `400` by the dispatcher.
pub type Handler = fn(&mut Params<'_>, &CmdCtx<'_>) -> Result<Outcome, ParamError>;

#[derive(Clone, Copy)]
pub struct CtlCmd {
    pub name: &'static str,
    pub handler: Handler,
}

impl std::fmt::Debug for CtlCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ctl command {}", self.name)
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    cmds: Vec<CtlCmd>,
}

/// The result of serving one request.
#[derive(Debug, PartialEq, Eq)]
pub struct Served {
    /// What to send back now (`None`: nothing now).
    pub reply: Option<Reply>,
    /// A request head that cut this one short, to be served next.
    pub requeue: Option<String>,
}

impl Registry {
    /// The core commands.
    pub fn with_core() -> Registry {
        let mut r = Registry::default();
        r.add(super::core_cmds::COMMANDS);
        r.add(super::blacklist_cmds::COMMANDS);
        r
    }

    /// Add commands; a later one with the same name replaces the earlier.
    pub fn add(&mut self, cmds: &[CtlCmd]) {
        for c in cmds {
            self.cmds.retain(|x| x.name != c.name);
            self.cmds.push(*c);
        }
    }

    pub fn find(&self, name: &str) -> Option<&CtlCmd> {
        self.cmds.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Names, last registered first (as SER's `which` lists them).
    pub fn names(&self) -> Vec<&'static str> {
        self.cmds.iter().rev().map(|c| c.name).collect()
    }

    /// Run the command named in `head`, reading its parameters from `src`.
    pub fn serve(
        &self,
        head: &Head,
        src: &mut dyn LineSource,
        dialect: Dialect,
        target: Option<&ReplyTarget>,
    ) -> Served {
        let Some(cmd) = self.find(&head.command) else {
            let r = match dialect {
                Dialect::Fifo => {
                    Reply::new(500, format!("command '{}' not available", head.command))
                }
                Dialect::Unix => Reply::new(500, format!("Command {} not found", head.command)),
            };
            return Served {
                reply: Some(r),
                requeue: None,
            };
        };
        let ctx = CmdCtx {
            dialect,
            target,
            registry: self,
        };
        let mut params = Params::new(src, dialect);
        match (cmd.handler)(&mut params, &ctx) {
            Ok(Outcome::Reply(r)) => Served {
                reply: Some(r),
                requeue: None,
            },
            Ok(Outcome::Later) => Served {
                reply: None,
                requeue: None,
            },
            Err(ParamError::Interrupted(next)) => {
                crate::warn_limited!(
                    "ctl: request '{}' abandoned half-written; serving the next one",
                    head.command
                );
                Served {
                    reply: Some(Reply::new(
                        400,
                        format!("{}: request incomplete", head.command),
                    )),
                    requeue: Some(next),
                }
            }
            Err(e) => Served {
                reply: Some(Reply::new(400, format!("{}: {e}", head.command))),
                requeue: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::request::TextLines;

    fn echo(p: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, ParamError> {
        Ok(Reply::ok(vec![p.line("text")?]).into())
    }

    fn head(c: &str) -> Head {
        Head {
            command: c.into(),
            reply: "r".into(),
        }
    }

    #[test]
    fn dispatch_unknown_and_bad_params() {
        let mut r = Registry::default();
        r.add(&[CtlCmd {
            name: "echo",
            handler: echo,
        }]);
        let s = r.serve(
            &head("echo"),
            &mut TextLines::new("hi\n"),
            Dialect::Fifo,
            None,
        );
        assert_eq!(s.reply, Some(Reply::ok(vec!["hi".into()])));
        let s = r.serve(&head("nope"), &mut TextLines::new(""), Dialect::Fifo, None);
        assert_eq!(
            s.reply,
            Some(Reply::new(500, "command 'nope' not available"))
        );
        let s = r.serve(&head("nope"), &mut TextLines::new(""), Dialect::Unix, None);
        assert_eq!(s.reply, Some(Reply::new(500, "Command nope not found")));
        let s = r.serve(&head("echo"), &mut TextLines::new(""), Dialect::Fifo, None);
        assert_eq!(s.reply.map(|r| r.code), Some(400));
    }

    #[test]
    fn later_registration_wins_and_is_listed_first() {
        let mut r = Registry::with_core();
        r.add(&[CtlCmd {
            name: "print",
            handler: echo,
        }]);
        assert_eq!(r.names().first(), Some(&"print"));
        assert_eq!(r.names().iter().filter(|n| **n == "print").count(), 1);
    }
}
