//! SER's command line, parsed getopt-style: short options only, flags may be
//! combined (`-dddD`), an option's argument is either attached (`-n4`) or the
//! next word (`-n 4`), `--` ends the options. Options are processed in
//! order, so `-V`/`-h` act as soon as they are met (like SER, which prints
//! and exits from inside its getopt loop).
use std::path::PathBuf;

/// Where SER looks for its configuration when `-f` is not given.
pub const DEFAULT_CFG_FILE: &str = "/usr/local/etc/ser/ser.cfg";

/// The options given on the command line. `None` means "not given": the
/// config file or the built-in default decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliOpts {
    /// `-f`: configuration file.
    pub cfg_file: PathBuf,
    /// `-c`: check the configuration and exit.
    pub check_only: bool,
    /// `-l`: listen specs, raw `[proto:]addr[:port]`, in order.
    pub listen: Vec<String>,
    /// `-n`: UDP children per socket.
    pub children: Option<u32>,
    /// `-N`: TCP children.
    pub tcp_children: Option<u32>,
    /// `-T`: disable TCP.
    pub disable_tcp: bool,
    /// `-r`: forward DNS check for `received=`.
    pub dns: bool,
    /// `-R`: reverse DNS check for `received=`.
    pub rev_dns: bool,
    /// `-v`: check_via.
    pub check_via: bool,
    /// `-d` count: added to `debug`.
    pub debug_incr: u32,
    /// `-D` count: 1 = no daemon and one receiving process per socket,
    /// 2 or more = the usual workers, in the foreground.
    pub no_fork: u32,
    /// `-E`: log to stderr.
    pub log_stderr: bool,
    /// `-b`: maximum UDP receive buffer.
    pub rcvbuf_max: Option<u32>,
    /// `-m`: shared memory size in MiB.
    pub shm_mb: Option<u32>,
    /// `-w`: working directory.
    pub workdir: Option<PathBuf>,
    /// `-t`: chroot directory.
    pub chroot: Option<PathBuf>,
    /// `-u`: user to run as.
    pub user: Option<String>,
    /// `-g`: group to run as.
    pub group: Option<String>,
    /// `-P`: pid file.
    pub pid_file: Option<PathBuf>,
    /// `-G`: process-group id file.
    pub pgid_file: Option<PathBuf>,
    /// `-i`: FIFO path.
    pub fifo: Option<String>,
    /// `-x`: unix datagram control socket path.
    pub unix_sock: Option<String>,
    /// `-s`: statistics file, appended to on SIGUSR1.
    pub stats_file: Option<String>,
    /// `-L`: modules directory (accepted; modules are built in).
    pub modules_dir: Option<PathBuf>,
}

impl Default for CliOpts {
    fn default() -> Self {
        CliOpts {
            cfg_file: PathBuf::from(DEFAULT_CFG_FILE),
            check_only: false,
            listen: Vec::new(),
            children: None,
            tcp_children: None,
            disable_tcp: false,
            dns: false,
            rev_dns: false,
            check_via: false,
            debug_incr: 0,
            no_fork: 0,
            log_stderr: false,
            rcvbuf_max: None,
            shm_mb: None,
            workdir: None,
            chroot: None,
            user: None,
            group: None,
            pid_file: None,
            pgid_file: None,
            fifo: None,
            unix_sock: None,
            stats_file: None,
            modules_dir: None,
        }
    }
}

/// What the command line asks for.
// Built once per process start; boxing the options would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliAction {
    /// Start (or, with `-c`, check) the server.
    Run(CliOpts),
    /// `-V`: print `version_text()` and exit 0.
    Version,
    /// `-h`: print `usage()` and exit 0.
    Help,
}

/// A command line SER would refuse (the caller prints it with `usage()` and
/// exits non-zero).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// An option letter SER does not know (this includes `-p`).
    #[error("unknown option `-{0}'")]
    UnknownOption(char),
    /// An option that takes an argument was last on the line.
    #[error("option `-{0}' requires an argument")]
    MissingArgument(char),
    /// A numeric option got something that is not a non-negative integer.
    #[error("bad number <{value}> for option `-{opt}'")]
    BadNumber { opt: char, value: String },
    /// A word that is not an option (SER takes no positional arguments).
    #[error("unexpected argument \"{0}\"")]
    UnexpectedArgument(String),
}

/// Option letters that take an argument.
const WITH_ARG: &str = "fmblnNwtugPGixsL";

fn number(opt: char, value: &str) -> Result<u32, CliError> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| CliError::BadNumber {
            opt,
            value: value.to_owned(),
        })
}

/// Stores one option that takes an argument.
fn apply_arg(o: &mut CliOpts, opt: char, val: String) -> Result<(), CliError> {
    match opt {
        'f' => o.cfg_file = PathBuf::from(val),
        'm' => o.shm_mb = Some(number(opt, &val)?),
        'b' => o.rcvbuf_max = Some(number(opt, &val)?),
        'l' => o.listen.push(val),
        'n' => o.children = Some(number(opt, &val)?),
        'N' => o.tcp_children = Some(number(opt, &val)?),
        'w' => o.workdir = Some(PathBuf::from(val)),
        't' => o.chroot = Some(PathBuf::from(val)),
        'u' => o.user = Some(val),
        'g' => o.group = Some(val),
        'P' => o.pid_file = Some(PathBuf::from(val)),
        'G' => o.pgid_file = Some(PathBuf::from(val)),
        'i' => o.fifo = Some(val),
        'x' => o.unix_sock = Some(val),
        's' => o.stats_file = Some(val),
        'L' => o.modules_dir = Some(PathBuf::from(val)),
        other => return Err(CliError::UnknownOption(other)),
    }
    Ok(())
}

/// Parses the arguments (without argv[0]).
pub fn parse(args: &[String]) -> Result<CliAction, CliError> {
    let mut o = CliOpts::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            if let Some(extra) = words.next() {
                return Err(CliError::UnexpectedArgument(extra.clone()));
            }
            break;
        }
        let Some(flags) = word.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(CliError::UnexpectedArgument(word.clone()));
        };
        for (pos, c) in flags.char_indices() {
            if WITH_ARG.contains(c) {
                let rest = &flags[pos + c.len_utf8()..];
                let val = if rest.is_empty() {
                    words.next().cloned().ok_or(CliError::MissingArgument(c))?
                } else {
                    rest.to_owned()
                };
                apply_arg(&mut o, c, val)?;
                break;
            }
            match c {
                'c' => o.check_only = true,
                'T' => o.disable_tcp = true,
                'r' => o.dns = true,
                'R' => o.rev_dns = true,
                'v' => o.check_via = true,
                'd' => o.debug_incr = o.debug_incr.saturating_add(1),
                'D' => o.no_fork = o.no_fork.saturating_add(1),
                'E' => o.log_stderr = true,
                'V' => return Ok(CliAction::Version),
                'h' => return Ok(CliAction::Help),
                other => return Err(CliError::UnknownOption(other)),
            }
        }
    }
    Ok(CliAction::Run(o))
}

/// The `-V` text: name, version, architecture/OS and the build flags line.
pub fn version_text() -> String {
    format!(
        "version: ser {} ({}/{})\nflags: {}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        "USE_IPV6, USE_TCP, SHM_MMAP, FAST_LOCK-FUTEX, NO_THREADS, RUST"
    )
}

/// The `-h` text (our own wording; the option letters are SER's).
pub fn usage() -> String {
    format!(
        "Usage: ser [options]\n\
Options:\n\
  -f file     configuration file (default {DEFAULT_CFG_FILE})\n\
  -c          only check the configuration, print the sockets, then exit\n\
  -l address  listen address, [proto:]addr[:port] with proto udp|tcp|tls and\n\
              addr an IP, a host name or an interface name (repeatable)\n\
  -n N        UDP worker processes per listen socket (default 8)\n\
  -N N        TCP worker processes (default: same as -n)\n\
  -T          do not use TCP\n\
  -r          check Via hosts with DNS before adding received=\n\
  -R          as -r, with reverse DNS\n\
  -v          check the first Via of replies before forwarding them\n\
  -d          more verbose logging (repeat to raise further)\n\
  -D          do not fork into the background, and receive SIP in one process\n\
              per listen socket (as fork=no; the timer and control servers\n\
              still run in their own processes)\n\
  -DD         fork the workers as usual, but stay in the foreground\n\
  -E          log to stderr instead of syslog\n\
  -V          print version and build flags\n\
  -h          print this text\n\
  -b bytes    upper bound for the UDP receive buffer probe\n\
  -m MiB      shared memory size\n\
  -w dir      working directory (default /)\n\
  -t dir      chroot directory\n\
  -u user     run as this user\n\
  -g group    run as this group\n\
  -P file     write the process id to file\n\
  -G file     write the process group id to file\n\
  -i path     FIFO control interface path\n\
  -x path     unix datagram control socket path\n\
  -s file     statistics file: each SIGUSR1 appends the tm, memory and\n\
              process figures to it\n\
  -L dir      modules directory (modules are built in; accepted and ignored)\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<CliOpts, CliError> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&v)? {
            CliAction::Run(o) => Ok(o),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn no_arguments_gives_defaults() {
        let o = run(&[]).unwrap();
        assert_eq!(o, CliOpts::default());
        assert_eq!(o.cfg_file, PathBuf::from("/usr/local/etc/ser/ser.cfg"));
    }

    #[test]
    fn every_flag_and_argument() {
        let o = run(&[
            "-f",
            "/etc/ser.cfg",
            "-c",
            "-l",
            "udp:127.0.0.1:5070",
            "-l",
            "eth0",
            "-n",
            "4",
            "-N",
            "2",
            "-T",
            "-r",
            "-R",
            "-v",
            "-d",
            "-D",
            "-E",
            "-b",
            "131072",
            "-m",
            "64",
            "-w",
            "/var/run",
            "-t",
            "/jail",
            "-u",
            "ser",
            "-g",
            "sergrp",
            "-P",
            "/run/ser.pid",
            "-G",
            "/run/ser.pgid",
            "-i",
            "/tmp/ser_fifo",
            "-x",
            "/tmp/ser_sock",
            "-s",
            "/tmp/stats",
            "-L",
            "/usr/lib/ser/modules",
        ])
        .unwrap();
        assert_eq!(o.cfg_file, PathBuf::from("/etc/ser.cfg"));
        assert!(o.check_only && o.disable_tcp && o.dns && o.rev_dns && o.check_via && o.log_stderr);
        assert_eq!(
            o.listen,
            vec!["udp:127.0.0.1:5070".to_string(), "eth0".to_string()]
        );
        assert_eq!((o.children, o.tcp_children), (Some(4), Some(2)));
        assert_eq!((o.debug_incr, o.no_fork), (1, 1));
        assert_eq!((o.rcvbuf_max, o.shm_mb), (Some(131072), Some(64)));
        assert_eq!(o.workdir, Some(PathBuf::from("/var/run")));
        assert_eq!(o.chroot, Some(PathBuf::from("/jail")));
        assert_eq!(
            (o.user.as_deref(), o.group.as_deref()),
            (Some("ser"), Some("sergrp"))
        );
        assert_eq!(o.pid_file, Some(PathBuf::from("/run/ser.pid")));
        assert_eq!(o.pgid_file, Some(PathBuf::from("/run/ser.pgid")));
        assert_eq!(o.fifo.as_deref(), Some("/tmp/ser_fifo"));
        assert_eq!(o.unix_sock.as_deref(), Some("/tmp/ser_sock"));
        assert_eq!(o.stats_file.as_deref(), Some("/tmp/stats"));
        assert_eq!(o.modules_dir, Some(PathBuf::from("/usr/lib/ser/modules")));
    }

    #[test]
    fn combined_flags_and_attached_arguments() {
        let o = run(&["-dddD", "-n4", "-El127.0.0.1", "-DE", "-cf/x.cfg"]).unwrap();
        assert_eq!(o.debug_incr, 3);
        assert_eq!(o.no_fork, 2);
        assert_eq!(o.children, Some(4));
        assert!(o.log_stderr && o.check_only);
        assert_eq!(o.listen, vec!["127.0.0.1".to_string()]);
        assert_eq!(o.cfg_file, PathBuf::from("/x.cfg"));
    }

    #[test]
    fn argument_may_look_like_an_option() {
        // getopt takes the next word verbatim, even if it starts with '-'.
        let o = run(&["-u", "-d"]).unwrap();
        assert_eq!(o.user.as_deref(), Some("-d"));
        assert_eq!(o.debug_incr, 0);
    }

    #[test]
    fn version_and_help() {
        let v = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["-V"]), Ok(CliAction::Version));
        assert_eq!(v(&["-dh"]), Ok(CliAction::Help));
        assert_eq!(v(&["-Z", "-V"]), Err(CliError::UnknownOption('Z')));
        assert!(version_text().starts_with("version: ser 0.1.0 ("));
        assert!(usage().contains("-l address"));
        assert!(usage().contains("-L dir"));
    }

    #[test]
    fn errors() {
        assert_eq!(run(&["-p", "5060"]), Err(CliError::UnknownOption('p')));
        assert_eq!(run(&["-Z"]), Err(CliError::UnknownOption('Z')));
        assert_eq!(run(&["-dZ"]), Err(CliError::UnknownOption('Z')));
        assert_eq!(run(&["-n"]), Err(CliError::MissingArgument('n')));
        assert_eq!(run(&["-d", "-l"]), Err(CliError::MissingArgument('l')));
        assert_eq!(
            run(&["-n", "four"]),
            Err(CliError::BadNumber {
                opt: 'n',
                value: "four".into()
            })
        );
        assert!(matches!(
            run(&["-m", "-1"]),
            Err(CliError::BadNumber { opt: 'm', .. })
        ));
        assert_eq!(
            run(&["extra"]),
            Err(CliError::UnexpectedArgument("extra".into()))
        );
        assert_eq!(run(&["-"]), Err(CliError::UnexpectedArgument("-".into())));
        assert!(run(&["-d", "--"]).is_ok());
        assert!(CliError::UnknownOption('p').to_string().contains("-p"));
    }
}
