//! Real database servers for the tests: MariaDB and PostgreSQL from
//! Debian's packages (`scripts/ensure-test-deps` installs them), each on
//! a private data directory under a test directory and a free loopback
//! port, with SER's conventional account (`ser` / `heslo`, database
//! `ser`). Started by the test, stopped when the [`DbServer`] drops — and
//! by a watchdog shell if the test process dies first, so no server
//! outlives its test run.
//!
//! As root the servers run as `nobody` (PostgreSQL refuses root; MariaDB
//! would want `--user`): `setpriv` switches before exec, so the child we
//! hold is the server itself.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbKind {
    Mariadb,
    Postgres,
}

/// SER's read-write account, as `ser_mysql.sh` made it.
pub(crate) const USER: &str = "ser";
pub(crate) const PASSWORD: &str = "heslo";
pub(crate) const DATABASE: &str = "ser";

/// How long a server may take to start or stop.
const STARTUP: Duration = Duration::from_secs(60);

/// A running database server of the test's own.
pub(crate) struct DbServer {
    kind: DbKind,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    watchdog: Option<Child>,
    frozen: bool,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `cmd` as `nobody` when we are root (setpriv execs in place), else as is.
fn unprivileged(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--reset-env",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A directory the server user owns.
fn server_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).expect("create server dir");
    if is_root() {
        nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(65534)),
            Some(nix::unistd::Gid::from_raw(65534)),
        )
        .expect("chown server dir to nobody");
    }
    path.to_path_buf()
}

fn find_program(candidates: &[&str]) -> PathBuf {
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "none of {candidates:?} exists: run scripts/ensure-test-deps \
         (installs mariadb-server and postgresql)"
    );
}

fn pg_bin(name: &str) -> PathBuf {
    // Debian: /usr/lib/postgresql/<major>/bin; take the newest major.
    let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    majors.sort_unstable();
    let candidates: Vec<String> = majors
        .iter()
        .rev()
        .map(|m| format!("/usr/lib/postgresql/{m}/bin/{name}"))
        .collect();
    let refs: Vec<&str> = candidates.iter().map(String::as_str).collect();
    find_program(&refs)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl DbServer {
    /// Initialises a data directory under `dir` and starts `kind` on a
    /// free loopback port, with SER's `ser`/`heslo` account and database.
    pub(crate) fn start(kind: DbKind, dir: &Path) -> DbServer {
        if is_root() {
            // The server user must reach its directory inside ours.
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)
                .expect("test dir")
                .permissions()
                .mode();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o711))
                .expect("open the test dir to the server user");
        }
        let dir = server_dir(&dir.join(match kind {
            DbKind::Mariadb => "mariadb",
            DbKind::Postgres => "postgres",
        }));
        let port = super::free_udp_port();
        let mut s = DbServer {
            kind,
            dir,
            port,
            child: None,
            watchdog: None,
            frozen: false,
        };
        s.init();
        s.spawn();
        s.bootstrap();
        s.start_watchdog();
        s
    }

    /// The `db_url` of SER's account on this server.
    pub(crate) fn url(&self) -> String {
        self.url_for(DATABASE)
    }

    /// The `db_url` of SER's account and another database.
    pub(crate) fn url_for(&self, database: &str) -> String {
        let scheme = match self.kind {
            DbKind::Mariadb => "mysql",
            DbKind::Postgres => "postgres",
        };
        format!(
            "{scheme}://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    pub(crate) fn kind(&self) -> DbKind {
        self.kind
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn socket(&self) -> PathBuf {
        match self.kind {
            DbKind::Mariadb => self.dir.join("mysqld.sock"),
            DbKind::Postgres => self.dir.join(format!(".s.PGSQL.{}", self.port)),
        }
    }

    fn pid_file(&self) -> PathBuf {
        match self.kind {
            DbKind::Mariadb => self.dir.join("mysqld.pid"),
            DbKind::Postgres => self.data().join("postmaster.pid"),
        }
    }

    fn init(&self) {
        match self.kind {
            DbKind::Mariadb => run(
                unprivileged(&find_program(&[
                    "/usr/bin/mariadb-install-db",
                    "/usr/bin/mysql_install_db",
                ]))
                .arg("--no-defaults")
                .arg(format!("--datadir={}", self.data().display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"]),
                "mariadb-install-db",
            ),
            DbKind::Postgres => {
                // The superuser is SER's account: no psql needed to add it.
                let pwfile = self.dir.join("pwfile");
                std::fs::write(&pwfile, PASSWORD).expect("write pwfile");
                run(
                    unprivileged(&pg_bin("initdb"))
                        .arg("-D")
                        .arg(self.data())
                        .args(["-U", USER, "--pwfile"])
                        .arg(&pwfile)
                        .args([
                            "--auth-local=trust",
                            "--auth-host=scram-sha-256",
                            "--no-sync",
                            "-E",
                            "UTF8",
                            "--locale=C",
                        ]),
                    "initdb",
                );
            }
        }
    }

    /// Starts the server process on the existing data directory and waits
    /// until it accepts connections.
    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("server log");
        let mut cmd = match self.kind {
            DbKind::Mariadb => {
                let mut c =
                    unprivileged(&find_program(&["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]));
                c.arg("--no-defaults")
                    .arg(format!("--datadir={}", self.data().display()))
                    .arg(format!("--socket={}", self.socket().display()))
                    .arg(format!("--pid-file={}", self.pid_file().display()))
                    .arg(format!("--port={}", self.port))
                    .args([
                        "--bind-address=127.0.0.1",
                        "--skip-name-resolve",
                        "--skip-log-bin",
                        "--innodb-buffer-pool-size=16M",
                        "--innodb-log-file-size=8M",
                        "--innodb-flush-log-at-trx-commit=2",
                        "--skip-innodb-doublewrite",
                        "--max-connections=50",
                    ]);
                c
            }
            DbKind::Postgres => {
                let mut c = unprivileged(&pg_bin("postgres"));
                c.arg("-D")
                    .arg(self.data())
                    .args(["-p", &self.port.to_string(), "-k"])
                    .arg(&self.dir)
                    .args([
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "shared_buffers=16MB",
                        "-c",
                        "max_connections=50",
                    ]);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn database server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "{:?} exited at start ({status}):\n{}",
                        self.kind,
                        self.log()
                    );
                }
            }
            let tcp = TcpStream::connect_timeout(
                &([127, 0, 0, 1], self.port).into(),
                Duration::from_millis(200),
            )
            .is_ok();
            if tcp && self.socket().exists() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} not ready after {STARTUP:?}:\n{}",
                self.kind,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SER's database and account (PostgreSQL: the account is initdb's).
    fn bootstrap(&self) {
        match self.kind {
            DbKind::Mariadb => run(
                Command::new("mariadb")
                    .arg("--no-defaults")
                    .arg(format!("--socket={}", self.socket().display()))
                    .args(["-uroot", "-e"])
                    .arg(format!(
                        "CREATE DATABASE {DATABASE}; \
                         CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
                         GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{USER}'@'%';"
                    )),
                "mariadb bootstrap",
            ),
            DbKind::Postgres => run(
                Command::new(pg_bin("createdb"))
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                    .arg(DATABASE)
                    .env("PGPASSWORD", PASSWORD),
                "createdb",
            ),
        }
    }

    /// Runs SQL as MariaDB's root over the server's socket (to lay out a
    /// database as an old installation left it).
    pub(crate) fn admin_sql(&self, sql: &str) {
        assert_eq!(self.kind, DbKind::Mariadb, "admin_sql is MariaDB's");
        run(
            Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-uroot", "-e", sql]),
            "mariadb admin sql",
        );
    }

    /// A shell that stops the server if this test process goes away
    /// without dropping us (killed, aborted).
    fn start_watchdog(&mut self) {
        let sig = match self.kind {
            DbKind::Mariadb => "TERM",
            DbKind::Postgres => "INT",
        };
        let script = format!(
            "while kill -0 {test} 2>/dev/null; do sleep 1; done; \
             pid=$(head -n 1 '{pidfile}' 2>/dev/null) || exit 0; \
             [ -n \"$pid\" ] || exit 0; \
             kill -CONT $pid $(cat /proc/$pid/task/*/children 2>/dev/null) 2>/dev/null; \
             kill -{sig} $pid 2>/dev/null",
            test = std::process::id(),
            pidfile = self.pid_file().display(),
        );
        self.watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The server process and, for PostgreSQL, its backends.
    fn pids(&self) -> Vec<Pid> {
        let Some(main) = self.child.as_ref().map(|c| c.id() as i32) else {
            return Vec::new();
        };
        let mut pids = vec![Pid::from_raw(main)];
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{main}/task")) {
            for task in rd.flatten() {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                pids.extend(
                    children
                        .split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .map(Pid::from_raw),
                );
            }
        }
        pids
    }

    /// Stops every server process (SIGSTOP): connections stay open but
    /// nothing answers — a hung database.
    pub(crate) fn freeze(&mut self) {
        let pids = self.pids();
        for p in &pids {
            let _ = kill(*p, Signal::SIGSTOP);
        }
        self.frozen = true;
        // kill() returns before the threads have stopped; a query sent
        // meanwhile could still be answered.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pids.iter().all(|p| all_stopped(*p)) {
            assert!(
                Instant::now() < deadline,
                "{:?} did not stop: {:?}",
                self.kind,
                pids.iter()
                    .filter(|p| !all_stopped(**p))
                    .map(|p| (
                        p.as_raw(),
                        std::fs::read_to_string(format!("/proc/{p}/stat"))
                    ))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Lets a frozen server run again.
    pub(crate) fn thaw(&mut self) {
        for p in self.pids() {
            let _ = kill(p, Signal::SIGCONT);
        }
        self.frozen = false;
    }

    /// Shuts the server down cleanly (it closes its clients' connections)
    /// and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        if self.frozen {
            self.thaw();
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        let sig = match self.kind {
            DbKind::Mariadb => Signal::SIGTERM,
            // Fast shutdown: disconnect clients, do not wait for them.
            DbKind::Postgres => Signal::SIGINT,
        };
        let _ = kill(Pid::from_raw(child.id() as i32), sig);
        let deadline = Instant::now() + STARTUP;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Starts the stopped server again on the same data and port.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

/// Is every thread of `pid` stopped (state `T` in /proc)?
fn all_stopped(pid: Pid) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true; // gone
    };
    tasks.flatten().all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // The state follows the parenthesised command name. A backend
        // that ended just before the SIGSTOP stays a zombie (its stopped
        // parent cannot reap it): it answers nobody either.
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        matches!(state, Some(Some('T' | 't' | 'Z' | 'X')) | None)
    })
}

impl Drop for DbServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
