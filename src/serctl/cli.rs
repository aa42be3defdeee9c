//! `serctl`'s command line, parsed by hand: a few short options, then a
//! command and its arguments. Options stop at the command, so the
//! arguments of `fifo` may begin with `-`.
use std::path::PathBuf;
use std::time::Duration;

use super::transport::{Transport, DEFAULT_TIMEOUT};

/// The usage text printed by `-h`, `help` and after a usage error.
pub const USAGE: &str = "\
usage: serctl [options] <command> [args]

options:
  -s <path>   talk to ser's unix datagram socket at <path>
  -f <path>   talk to ser's FIFO at <path>
  -j <where>  talk JSON-RPC to ser's jsonrpc_socket (a path) or
              jsonrpc_listen (a numeric host:port)
  -t <secs>   wait at most <secs> for a reply (default 5)
  -n <count>  moni: stop after <count> refreshes (default: until interrupted)
  -d <url>    database of the user commands (default $SER_DB_URL, else
              mysql://ser:heslo@localhost/ser); syntax of ser's db_url
  -h          this text
  Without -s/-f/-j: $SER_JSONRPC, $SER_UNIXSOCK, then $SER_FIFO, then
  /tmp/ser_sock if it is a socket, else /tmp/ser_fifo.

commands:
  ps                        ser's processes
  uptime                    when ser started and how long ago
  version                   ser's version
  stats                     transaction statistics (t_stats)
  moni                      t_stats and uptime, refreshed every second
  fifo <cmd> [args...]      any management command; one line per argument
  ul show [<aor>]           a user's contacts, or the whole location table
  ul rm <aor>               delete a user's contacts
  ul add <aor> <contact> [<expires> [<q>]]
                            add a contact (expires 3600, q 1.00)
  help                      this text

database commands (users of domain $SIP_DOMAIN, which add, passwd, rm and
alias need):
  db init                   create SER's tables
  add <user> <password> <email>
                            add a subscriber
  passwd <user> <password>  change a subscriber's password
  rm <user>                 delete a subscriber
  alias show [<alias>]      list the aliases, or one alias's URIs
  alias add <alias> <uri>   add a permanent alias
  alias rm <alias>          delete an alias

exit status: 0 success, 1 ser answered with an error (or the database
refused: user exists, no such user or alias), 2 ser or the database
unreachable or no valid reply, 64 usage error (or $SIP_DOMAIN unset)
";

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `ps`
    Ps,
    /// `uptime`
    Uptime,
    /// `version`
    Version,
    /// `stats` (`t_stats`)
    Stats,
    /// `moni`: `t_stats` and `uptime` every second.
    Moni,
    /// `fifo <cmd> [args...]`: a raw command, reply printed verbatim.
    Raw {
        /// The management command.
        cmd: String,
        /// One parameter line each.
        params: Vec<String>,
    },
    /// `ul show [<aor>]`: `ul_show_contact`, or `ul_dump` without an AOR.
    UlShow(Option<String>),
    /// `ul rm <aor>`
    UlRm(String),
    /// `ul add <aor> <contact> [expires] [q]`
    UlAdd {
        /// Address of record.
        aor: String,
        /// Contact URI.
        contact: String,
        /// Seconds, as typed (checked to be a number).
        expires: String,
        /// q-value, as typed (checked to be 0..=1).
        q: String,
    },
    /// `db init`: SER's tables.
    DbInit,
    /// `add <user> <password> <email>`
    Add {
        /// The subscriber's user name.
        user: String,
        /// Plain password.
        password: String,
        /// `email_address`.
        email: String,
    },
    /// `passwd <user> <password>`
    Passwd {
        /// The subscriber's user name.
        user: String,
        /// The new plain password.
        password: String,
    },
    /// `rm <user>`
    Rm(String),
    /// `alias show [<alias>]`
    AliasShow(Option<String>),
    /// `alias add <alias> <uri>`
    AliasAdd {
        /// The alias (a user name in `$SIP_DOMAIN`).
        alias: String,
        /// What it stands for.
        uri: String,
    },
    /// `alias rm <alias>`
    AliasRm(String),
    /// `help`, `-h`
    Help,
}

impl Command {
    /// Works on the database rather than talking to ser.
    pub fn is_db(&self) -> bool {
        matches!(
            self,
            Command::DbInit
                | Command::Add { .. }
                | Command::Passwd { .. }
                | Command::Rm(_)
                | Command::AliasShow(_)
                | Command::AliasAdd { .. }
                | Command::AliasRm(_)
        )
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `-s`/`-f`/`-j`; `None`: decided from the environment.
    pub transport: Option<Transport>,
    /// `-t`
    pub timeout: Duration,
    /// `-n`: refreshes of `moni`; `None`: until interrupted.
    pub count: Option<u32>,
    /// `-d`: the database URL; `None`: from the environment.
    pub db_url: Option<String>,
    /// The command.
    pub command: Command,
}

/// The command line is wrong; `serctl` prints this and the usage, exit 64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// An option that needs an argument came last.
    #[error("option -{0} needs an argument")]
    MissingOptionArg(char),
    /// An option we do not know.
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    /// `-t` was not a positive number of seconds.
    #[error("bad timeout {0:?}: expected a positive number of seconds")]
    BadTimeout(String),
    /// `-n` was not a positive integer.
    #[error("bad count {0:?}: expected a positive integer")]
    BadCount(String),
    /// No command after the options.
    #[error("no command given")]
    NoCommand,
    /// A command we do not know.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// The command's arguments do not fit its synopsis.
    #[error("wrong arguments for '{0}'")]
    WrongArgs(&'static str),
    /// `ul add`'s expires is not a number of seconds.
    #[error("bad expires {0:?}: expected seconds")]
    BadExpires(String),
    /// `ul add`'s q is not a number between 0 and 1.
    #[error("bad q {0:?}: expected a number from 0 to 1")]
    BadQ(String),
}

/// Parses `args` (without the program name).
pub fn parse_args(args: &[String]) -> Result<Invocation, UsageError> {
    let mut inv = Invocation {
        transport: None,
        timeout: DEFAULT_TIMEOUT,
        count: None,
        db_url: None,
        command: Command::Help,
    };
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(opts) = arg.strip_prefix('-').filter(|o| !o.is_empty()) else {
            break;
        };
        let mut chars = opts.chars();
        let opt = chars.next().unwrap_or('-');
        if opt == 'h' && chars.as_str().is_empty() {
            return Ok(inv);
        }
        if !matches!(opt, 's' | 'f' | 'j' | 't' | 'n' | 'd') {
            return Err(UsageError::UnknownOption(arg.clone()));
        }
        // The argument is attached (`-t2`) or the next word (`-t 2`).
        let value = if chars.as_str().is_empty() {
            i += 1;
            args.get(i)
                .cloned()
                .ok_or(UsageError::MissingOptionArg(opt))?
        } else {
            chars.as_str().to_owned()
        };
        match opt {
            's' => inv.transport = Some(Transport::UnixSock(PathBuf::from(value))),
            'f' => inv.transport = Some(Transport::fifo(value)),
            'j' => {
                inv.transport = Some(Transport::JsonRpc(super::jsonrpc::Endpoint::parse(&value)))
            }
            't' => inv.timeout = parse_timeout(&value)?,
            'd' => inv.db_url = Some(value),
            _ => inv.count = Some(parse_count(&value)?),
        }
        i += 1;
    }
    let rest = args.get(i..).unwrap_or(&[]);
    inv.command = parse_command(rest)?;
    Ok(inv)
}

fn parse_timeout(s: &str) -> Result<Duration, UsageError> {
    let bad = || UsageError::BadTimeout(s.to_owned());
    let secs: f64 = s.parse().map_err(|_| bad())?;
    // NaN and infinity fail `is_finite`; zero would disable the timeout.
    if !secs.is_finite() || secs <= 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

fn parse_count(s: &str) -> Result<u32, UsageError> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(UsageError::BadCount(s.to_owned())),
    }
}

fn parse_command(words: &[String]) -> Result<Command, UsageError> {
    let Some((name, args)) = words.split_first() else {
        return Err(UsageError::NoCommand);
    };
    let no_args = |c: Command, n: &'static str| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(UsageError::WrongArgs(n))
        }
    };
    match name.as_str() {
        "ps" => no_args(Command::Ps, "ps"),
        "uptime" => no_args(Command::Uptime, "uptime"),
        "version" => no_args(Command::Version, "version"),
        "stats" => no_args(Command::Stats, "stats"),
        "moni" => no_args(Command::Moni, "moni"),
        "help" => Ok(Command::Help),
        "fifo" => match args.split_first() {
            Some((cmd, params)) => Ok(Command::Raw {
                cmd: cmd.clone(),
                params: params.to_vec(),
            }),
            None => Err(UsageError::WrongArgs("fifo")),
        },
        "ul" => parse_ul(args),
        "db" | "add" | "passwd" | "rm" | "alias" => parse_db(name, args),
        _ => Err(UsageError::UnknownCommand(name.clone())),
    }
}

fn parse_db(name: &str, args: &[String]) -> Result<Command, UsageError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let own = |s: &str| s.to_owned();
    match (name, words.as_slice()) {
        ("db", ["init"]) => Ok(Command::DbInit),
        ("db", _) => Err(UsageError::WrongArgs("db")),
        ("add", [user, password, email]) => Ok(Command::Add {
            user: own(user),
            password: own(password),
            email: own(email),
        }),
        ("add", _) => Err(UsageError::WrongArgs("add")),
        ("passwd", [user, password]) => Ok(Command::Passwd {
            user: own(user),
            password: own(password),
        }),
        ("passwd", _) => Err(UsageError::WrongArgs("passwd")),
        ("rm", [user]) => Ok(Command::Rm(own(user))),
        ("rm", _) => Err(UsageError::WrongArgs("rm")),
        ("alias", ["show"]) => Ok(Command::AliasShow(None)),
        ("alias", ["show", alias]) => Ok(Command::AliasShow(Some(own(alias)))),
        ("alias", ["add", alias, uri]) => Ok(Command::AliasAdd {
            alias: own(alias),
            uri: own(uri),
        }),
        ("alias", ["rm", alias]) => Ok(Command::AliasRm(own(alias))),
        _ => Err(UsageError::WrongArgs("alias")),
    }
}

fn parse_ul(args: &[String]) -> Result<Command, UsageError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["show"] => Ok(Command::UlShow(None)),
        ["show", aor] => Ok(Command::UlShow(Some((*aor).to_owned()))),
        ["rm", aor] => Ok(Command::UlRm((*aor).to_owned())),
        ["add", aor, contact, rest @ ..] if rest.len() <= 2 => {
            let expires = rest.first().copied().unwrap_or("3600");
            if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
                return Err(UsageError::BadExpires(expires.to_owned()));
            }
            let q = rest.get(1).copied().unwrap_or("1.00");
            match q.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => {}
                _ => return Err(UsageError::BadQ(q.to_owned())),
            }
            Ok(Command::UlAdd {
                aor: (*aor).to_owned(),
                contact: (*contact).to_owned(),
                expires: expires.to_owned(),
                q: q.to_owned(),
            })
        }
        _ => Err(UsageError::WrongArgs("ul")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Invocation, UsageError> {
        let v: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
        parse_args(&v)
    }

    fn cmd(words: &[&str]) -> Command {
        parse(words)
            .map(|i| i.command)
            .unwrap_or_else(|e| panic!("{words:?}: {e}"))
    }

    #[test]
    fn options_then_command() {
        let inv =
            parse(&["-s", "/x/sock", "-t", "0.5", "-n2", "moni"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inv.transport, Some(Transport::UnixSock("/x/sock".into())));
        assert_eq!(inv.timeout, Duration::from_millis(500));
        assert_eq!(inv.count, Some(2));
        assert_eq!(inv.command, Command::Moni);
        let inv = parse(&["-f/x/fifo", "ps"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inv.transport, Some(Transport::fifo("/x/fifo")));
        let inv = parse(&["-j", "127.0.0.1:5081", "ps"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            inv.transport.map(|t| t.to_string()),
            Some("JSON-RPC 127.0.0.1:5081".into())
        );
        assert_eq!(inv.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn help_forms() {
        assert_eq!(cmd(&["-h"]), Command::Help);
        assert_eq!(cmd(&["help"]), Command::Help);
        assert_eq!(cmd(&["-s", "/x", "-h", "ps"]), Command::Help);
    }

    #[test]
    fn raw_command_keeps_dashes_in_arguments() {
        assert_eq!(
            cmd(&["fifo", "t_uac_cancel", "-abc", "1"]),
            Command::Raw {
                cmd: "t_uac_cancel".into(),
                params: vec!["-abc".into(), "1".into()],
            }
        );
        assert_eq!(cmd(&["--", "ps"]), Command::Ps);
    }

    #[test]
    fn ul_forms_and_defaults() {
        assert_eq!(cmd(&["ul", "show"]), Command::UlShow(None));
        assert_eq!(
            cmd(&["ul", "show", "a@b"]),
            Command::UlShow(Some("a@b".into()))
        );
        assert_eq!(cmd(&["ul", "rm", "a@b"]), Command::UlRm("a@b".into()));
        assert_eq!(
            cmd(&["ul", "add", "a@b", "sip:a@1.2.3.4"]),
            Command::UlAdd {
                aor: "a@b".into(),
                contact: "sip:a@1.2.3.4".into(),
                expires: "3600".into(),
                q: "1.00".into(),
            }
        );
        assert_eq!(
            cmd(&["ul", "add", "a@b", "sip:a@h", "60", "0.5"]),
            Command::UlAdd {
                aor: "a@b".into(),
                contact: "sip:a@h".into(),
                expires: "60".into(),
                q: "0.5".into(),
            }
        );
    }

    #[test]
    fn db_commands() {
        assert_eq!(cmd(&["db", "init"]), Command::DbInit);
        assert_eq!(
            cmd(&["add", "alice", "pw", "a@x"]),
            Command::Add {
                user: "alice".into(),
                password: "pw".into(),
                email: "a@x".into(),
            }
        );
        assert_eq!(
            cmd(&["passwd", "alice", "-pw"]),
            Command::Passwd {
                user: "alice".into(),
                password: "-pw".into(),
            }
        );
        assert_eq!(cmd(&["rm", "alice"]), Command::Rm("alice".into()));
        assert_eq!(cmd(&["alias", "show"]), Command::AliasShow(None));
        assert_eq!(
            cmd(&["alias", "add", "al", "sip:a@h"]),
            Command::AliasAdd {
                alias: "al".into(),
                uri: "sip:a@h".into(),
            }
        );
        assert_eq!(cmd(&["alias", "rm", "al"]), Command::AliasRm("al".into()));
        let inv = parse(&["-d", "sqlite:///x.db", "db", "init"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inv.db_url.as_deref(), Some("sqlite:///x.db"));
        assert!(inv.command.is_db() && !Command::Ps.is_db());
        assert_eq!(parse(&["db"]), Err(UsageError::WrongArgs("db")));
        assert_eq!(parse(&["add", "a", "b"]), Err(UsageError::WrongArgs("add")));
        assert_eq!(
            parse(&["passwd", "a"]),
            Err(UsageError::WrongArgs("passwd"))
        );
        assert_eq!(parse(&["rm"]), Err(UsageError::WrongArgs("rm")));
        assert_eq!(
            parse(&["alias", "add", "a"]),
            Err(UsageError::WrongArgs("alias"))
        );
    }

    #[test]
    fn usage_errors() {
        assert_eq!(parse(&[]), Err(UsageError::NoCommand));
        assert_eq!(parse(&["-s"]), Err(UsageError::MissingOptionArg('s')));
        assert_eq!(
            parse(&["-x", "ps"]),
            Err(UsageError::UnknownOption("-x".into()))
        );
        assert_eq!(
            parse(&["-t", "0", "ps"]),
            Err(UsageError::BadTimeout("0".into()))
        );
        assert_eq!(
            parse(&["-t", "NaN", "ps"]),
            Err(UsageError::BadTimeout("NaN".into()))
        );
        assert_eq!(
            parse(&["-t", "-1", "ps"]),
            Err(UsageError::BadTimeout("-1".into()))
        );
        assert_eq!(
            parse(&["-n", "0", "moni"]),
            Err(UsageError::BadCount("0".into()))
        );
        assert_eq!(
            parse(&["frob"]),
            Err(UsageError::UnknownCommand("frob".into()))
        );
        assert_eq!(parse(&["ps", "x"]), Err(UsageError::WrongArgs("ps")));
        assert_eq!(parse(&["fifo"]), Err(UsageError::WrongArgs("fifo")));
        assert_eq!(parse(&["ul", "rm"]), Err(UsageError::WrongArgs("ul")));
        assert_eq!(parse(&["ul", "add", "a"]), Err(UsageError::WrongArgs("ul")));
        assert_eq!(
            parse(&["ul", "add", "a", "c", "1", "1", "x"]),
            Err(UsageError::WrongArgs("ul"))
        );
        assert_eq!(
            parse(&["ul", "add", "a", "c", "-5"]),
            Err(UsageError::BadExpires("-5".into()))
        );
        assert_eq!(
            parse(&["ul", "add", "a", "c", "5", "2"]),
            Err(UsageError::BadQ("2".into()))
        );
    }
}
