//! Carrying out a parsed command line: ask ser, print, choose the exit
//! status. Output goes to the writers given, so tests can read it.
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::cli::{self, Command, Invocation};
use super::format;
use super::proto::Reply;
use super::transport::{Transport, TransportError};
use super::users;

/// The reply code was 2xx.
pub const EXIT_OK: i32 = 0;
/// ser answered with a non-2xx code.
pub const EXIT_SERVER_ERROR: i32 = 1;
/// ser could not be reached, timed out, or answered garbage.
pub const EXIT_UNREACHABLE: i32 = 2;
/// The command line was wrong (sysexits' EX_USAGE), including parameters
/// that cannot be sent (a line break in one, a request too long).
pub const EXIT_USAGE: i32 = 64;

/// `moni` clears the screen before each refresh, as SER's serctl did —
/// on a terminal only.
pub const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// Where standard output goes. Escape codes are for terminals: in a pipe
/// or a file they are junk in the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutKind {
    Terminal,
    Stream,
}

/// What the environment says: the transport when `-s`/`-f`/`-j` are
/// absent, the database and the domain of the user commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvPaths {
    /// `$SER_JSONRPC`: a JSON-RPC socket path or loopback `host:port`.
    pub jsonrpc: Option<String>,
    /// `$SER_UNIXSOCK`
    pub unixsock: Option<PathBuf>,
    /// `$SER_FIFO`
    pub fifo: Option<PathBuf>,
    /// `$SER_DB_URL`, when `-d` is absent.
    pub db_url: Option<String>,
    /// `$SIP_DOMAIN`: the domain of `add`, `passwd`, `rm`, `alias`.
    pub sip_domain: Option<String>,
}

impl EnvPaths {
    /// The transport the environment names (see [`Transport::from_env`]).
    pub fn transport(&self) -> Transport {
        Transport::from_env(
            self.jsonrpc.clone(),
            self.unixsock.clone(),
            self.fifo.clone(),
        )
    }

    /// Reads `SER_JSONRPC`, `SER_UNIXSOCK` and `SER_FIFO` from the
    /// process environment.
    pub fn from_process() -> Self {
        EnvPaths {
            jsonrpc: std::env::var("SER_JSONRPC").ok(),
            unixsock: std::env::var_os("SER_UNIXSOCK").map(PathBuf::from),
            fifo: std::env::var_os("SER_FIFO").map(PathBuf::from),
            db_url: std::env::var("SER_DB_URL").ok().filter(|s| !s.is_empty()),
            sip_domain: std::env::var("SIP_DOMAIN").ok().filter(|s| !s.is_empty()),
        }
    }
}

/// The whole program: `args` without the program name; returns the exit
/// status. Write errors on `out`/`err` (a closed pipe) are ignored: there
/// is nowhere left to report them.
pub fn run(
    args: &[String],
    env: &EnvPaths,
    out: &mut dyn Write,
    kind: OutKind,
    err: &mut dyn Write,
) -> i32 {
    let inv = match cli::parse_args(args) {
        Ok(inv) => inv,
        Err(e) => {
            let _ = write!(err, "serctl: {e}\n\n{}", cli::USAGE);
            return EXIT_USAGE;
        }
    };
    if inv.command == Command::Help {
        let _ = out.write_all(cli::USAGE.as_bytes());
        return EXIT_OK;
    }
    if inv.command.is_db() {
        let status = users::run(&inv, env, out, err);
        let _ = out.flush();
        return status;
    }
    let transport = inv.transport.clone().unwrap_or_else(|| env.transport());
    let status = match execute(&inv, &transport, out, kind) {
        Ok(None) => EXIT_OK,
        Ok(Some(reply)) => {
            let _ = write!(err, "{}", format::verbatim(&reply));
            EXIT_SERVER_ERROR
        }
        // The operator asked for something that cannot be framed or sent
        // in one piece: a usage problem, not ser's.
        Err(e @ (TransportError::Build(_) | TransportError::TooLong { .. })) => {
            let _ = writeln!(err, "serctl: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            let _ = writeln!(err, "serctl: {e}");
            EXIT_UNREACHABLE
        }
    };
    let _ = out.flush();
    status
}

/// The management command and parameter lines one of our commands sends.
/// `moni` sends two (see [`execute`]) and `help` none.
pub fn request_for(command: &Command) -> Option<(String, Vec<String>)> {
    let simple = |c: &str| Some((c.to_owned(), Vec::new()));
    let loc = |rest: &[&str]| {
        let mut v = vec!["location".to_owned()];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    match command {
        Command::Ps => simple("ps"),
        Command::Uptime => simple("uptime"),
        Command::Version => simple("version"),
        Command::Stats | Command::Moni => simple("t_stats"),
        Command::Raw { cmd, params } => Some((cmd.clone(), params.clone())),
        Command::UlShow(None) => simple("ul_dump"),
        Command::UlShow(Some(aor)) => Some(("ul_show_contact".into(), loc(&[aor]))),
        Command::UlRm(aor) => Some(("ul_rm".into(), loc(&[aor]))),
        // SER 0.9's ul_add: table, AOR, contact, expires, q, replicate, flags.
        Command::UlAdd {
            aor,
            contact,
            expires,
            q,
        } => Some(("ul_add".into(), loc(&[aor, contact, expires, q, "0", "0"]))),
        Command::Help
        | Command::DbInit
        | Command::Add { .. }
        | Command::Passwd { .. }
        | Command::Rm(_)
        | Command::AliasShow(_)
        | Command::AliasAdd { .. }
        | Command::AliasRm(_) => None,
    }
}

/// Runs the command; `Ok(Some(reply))` is a non-2xx answer for the caller
/// to report.
fn execute(
    inv: &Invocation,
    t: &Transport,
    out: &mut dyn Write,
    kind: OutKind,
) -> Result<Option<Reply>, TransportError> {
    let Some((cmd, params)) = request_for(&inv.command) else {
        return Ok(None);
    };
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    if inv.command == Command::Moni {
        return moni(inv, t, out, kind);
    }
    let reply = t.exchange(&cmd, &params, inv.timeout)?;
    if !reply.is_success() {
        return Ok(Some(reply));
    }
    let text = match inv.command {
        Command::Ps => format::ps_table(&reply.body),
        Command::Raw { .. } => format::verbatim(&reply),
        _ => format::body_or_status(&reply),
    };
    let _ = out.write_all(text.as_bytes());
    Ok(None)
}

/// `t_stats` and `uptime` on a cleared screen (on a terminal; one report
/// after another in a pipe), once a second, `-n` times or until
/// interrupted (SIGINT's default action ends us; nothing to undo but the
/// reply file, which each exchange removes before returning).
fn moni(
    inv: &Invocation,
    t: &Transport,
    out: &mut dyn Write,
    kind: OutKind,
) -> Result<Option<Reply>, TransportError> {
    let mut round: u32 = 0;
    loop {
        let stats = t.exchange("t_stats", &[], inv.timeout)?;
        if !stats.is_success() {
            return Ok(Some(stats));
        }
        let uptime = t.exchange("uptime", &[], inv.timeout)?;
        if !uptime.is_success() {
            return Ok(Some(uptime));
        }
        round = round.saturating_add(1);
        let screen = format!(
            "{}[ser monitor, {t}, refresh #{round}]\n\nTransaction statistics\n{}\nUptime\n{}",
            if kind == OutKind::Terminal {
                CLEAR_SCREEN
            } else {
                ""
            },
            format::body_or_status(&stats),
            format::body_or_status(&uptime),
        );
        let _ = out.write_all(screen.as_bytes());
        let _ = out.flush();
        if inv.count.is_some_and(|n| round >= n) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(c: Command) -> (String, Vec<String>) {
        request_for(&c).unwrap_or_else(|| panic!("no request"))
    }

    #[test]
    fn commands_map_to_ser_fifo_commands() {
        assert_eq!(req(Command::Ps), ("ps".into(), vec![]));
        assert_eq!(req(Command::Stats).0, "t_stats");
        assert_eq!(req(Command::Moni).0, "t_stats");
        assert_eq!(req(Command::UlShow(None)), ("ul_dump".into(), vec![]));
        assert_eq!(
            req(Command::UlShow(Some("a@b".into()))),
            (
                "ul_show_contact".into(),
                vec!["location".into(), "a@b".into()]
            )
        );
        assert_eq!(
            req(Command::UlRm("a@b".into())),
            ("ul_rm".into(), vec!["location".into(), "a@b".into()])
        );
        let (c, p) = req(Command::UlAdd {
            aor: "a@b".into(),
            contact: "sip:a@h".into(),
            expires: "3600".into(),
            q: "1.00".into(),
        });
        assert_eq!(c, "ul_add");
        assert_eq!(p, ["location", "a@b", "sip:a@h", "3600", "1.00", "0", "0"]);
        assert_eq!(request_for(&Command::Help), None);
    }

    fn run_words(words: &[&str], env: &EnvPaths) -> (i32, String, String) {
        let args: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, env, &mut out, OutKind::Stream, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn usage_error_exits_64_with_usage_on_stderr() {
        let (code, out, err) = run_words(&["bogus"], &EnvPaths::default());
        assert_eq!(code, EXIT_USAGE);
        assert!(out.is_empty());
        assert!(
            err.contains("unknown command \"bogus\"") && err.contains("usage: serctl"),
            "{err}"
        );
    }

    #[test]
    fn help_goes_to_stdout() {
        let (code, out, _) = run_words(&["-h"], &EnvPaths::default());
        assert_eq!(code, EXIT_OK);
        assert!(out.starts_with("usage: serctl"));
    }

    #[test]
    fn missing_server_exits_2_naming_the_path() {
        let env = EnvPaths {
            unixsock: None,
            fifo: Some("/nonexistent/serctl_test_fifo".into()),
            ..EnvPaths::default()
        };
        let (code, _, err) = run_words(&["ps"], &env);
        assert_eq!(code, EXIT_UNREACHABLE);
        assert!(err.contains("/nonexistent/serctl_test_fifo"), "{err}");
        let (code, _, err) = run_words(&["-s", "/nonexistent/serctl_test_sock", "ps"], &env);
        assert_eq!(code, EXIT_UNREACHABLE);
        assert!(
            err.contains("not running") && err.contains("/nonexistent/serctl_test_sock"),
            "{err}"
        );
    }
}
