//! Running SIPp (package sip-tester) as a bounded child process and reading
//! its verdict from the exit code and the statistics CSV.

use super::server::{run_bounded, wait_until};
use super::{free_udp_port, TestDir};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Extra wall-clock time granted beyond sipp's own `-timeout` before the
/// harness kills it (start-up, final statistics dump).
const GRACE: Duration = Duration::from_secs(10);

/// A sipp command line under construction.
#[derive(Clone, Debug)]
pub(crate) struct Sipp {
    name: String,
    scenario: Vec<String>,
    remote: Option<u16>,
    local_port: u16,
    extra: Vec<String>,
    timeout: Duration,
    /// `-t t1`: one TCP connection instead of UDP.
    tcp: bool,
}

/// The verdict of one sipp run.
#[derive(Debug, Clone)]
pub(crate) struct SippResult {
    /// None when the harness had to kill sipp.
    pub exit_code: Option<i32>,
    pub successful: u64,
    pub failed: u64,
    pub retransmissions: u64,
    /// Contents of `-error_file` (empty when sipp saw no error).
    pub error_log: String,
    pub stderr: String,
}

impl SippResult {
    /// Panics with sipp's own explanation unless `n` calls succeeded and
    /// none failed.
    pub(crate) fn assert_all_ok(&self, n: u64) {
        assert!(
            self.exit_code == Some(0) && self.successful == n && self.failed == 0,
            "sipp: expected {n} successful calls, got {self:#?}"
        );
    }
}

impl Sipp {
    fn new(name: &str, scenario: Vec<String>) -> Sipp {
        Sipp {
            name: name.to_string(),
            scenario,
            remote: None,
            local_port: free_udp_port(),
            extra: Vec::new(),
            timeout: Duration::from_secs(30),
            tcp: false,
        }
    }

    /// A built-in scenario (`uac`, `uas`, ...) via `-sn`.
    pub(crate) fn builtin(name: &str) -> Sipp {
        Sipp::new(name, vec!["-sn".into(), name.into()])
    }

    /// One of our scenario files via `-sf`.
    pub(crate) fn scenario(path: &Path) -> Sipp {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("scenario")
            .to_string();
        Sipp::new(&name, vec!["-sf".into(), path.display().to_string()])
    }

    /// Remote party: 127.0.0.1:port.
    pub(crate) fn to(mut self, port: u16) -> Sipp {
        self.remote = Some(port);
        self
    }

    pub(crate) fn local_port(mut self, port: u16) -> Sipp {
        self.local_port = port;
        self
    }

    pub(crate) fn port(&self) -> u16 {
        self.local_port
    }

    /// `-m n`: stop after n calls.
    pub(crate) fn calls(self, n: u64) -> Sipp {
        self.arg("-m").arg(&n.to_string())
    }

    /// `-r r` calls per second, with `-l` raised so it never caps the rate.
    pub(crate) fn rate(self, r: u32) -> Sipp {
        self.arg("-r").arg(&r.to_string()).arg("-l").arg("5000")
    }

    /// sipp's `-timeout` (the run fails when reached); the harness kills
    /// it 10 s later in any case.
    pub(crate) fn timeout(mut self, d: Duration) -> Sipp {
        self.timeout = d;
        self
    }

    /// `-key name value`: a `[name]` keyword for the scenario.
    pub(crate) fn key(self, k: &str, v: &str) -> Sipp {
        self.arg("-key").arg(k).arg(v)
    }

    /// `-set name value`: a scenario variable.
    pub(crate) fn set(self, k: &str, v: &str) -> Sipp {
        self.arg("-set").arg(k).arg(v)
    }

    /// Over TCP (`-t t1`, one connection for every call).
    pub(crate) fn tcp(mut self) -> Sipp {
        self.tcp = true;
        self.arg("-t").arg("t1")
    }

    /// Any other sipp argument.
    pub(crate) fn arg(mut self, a: &str) -> Sipp {
        self.extra.push(a.to_string());
        self
    }

    fn stat_file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-{}.csv", self.name, self.local_port))
    }

    fn error_file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-{}.errors", self.name, self.local_port))
    }

    fn command(&self, dir: &TestDir) -> Command {
        let mut cmd = Command::new("sipp");
        if let Some(p) = self.remote {
            cmd.arg(format!("127.0.0.1:{p}"));
        }
        cmd.args(&self.scenario)
            .args(["-i", "127.0.0.1", "-p", &self.local_port.to_string()])
            .args(["-timeout", &format!("{}s", self.timeout.as_secs().max(1))])
            .arg("-timeout_error")
            // Without a terminal sipp must not try to read keyboard commands.
            .arg("-nostdin")
            .arg("-trace_stat")
            .arg("-stf")
            .arg(self.stat_file(dir.path()))
            .arg("-trace_err")
            .arg("-error_file")
            .arg(self.error_file(dir.path()))
            .args(&self.extra)
            .current_dir(dir.path());
        cmd
    }

    /// Runs sipp in the foreground (of this test) until it exits.
    pub(crate) fn run(&self, dir: &TestDir) -> SippResult {
        let tag = format!("sipp-{}-{}", self.name, self.local_port);
        let fin = run_bounded(&mut self.command(dir), dir, &tag, self.timeout + GRACE);
        let mut r = self.result_at(dir.path());
        r.exit_code = fin.code();
        r.stderr = fin.stderr;
        r
    }

    /// Starts sipp in the background (typically a UAS) and returns once its
    /// port is bound.
    pub(crate) fn spawn(&self, dir: &TestDir) -> SippServer {
        let log = dir.join(&format!("sipp-{}-{}.stderr", self.name, self.local_port));
        let err = File::create(&log).expect("create sipp log");
        let child = self
            .command(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sipp: {e}"));
        let mut srv = SippServer {
            child: Some(child),
            sipp: self.clone(),
            dir_path: dir.path().to_path_buf(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let bound = |p| {
            if self.tcp {
                super::procfs::tcp_port_listening(p)
            } else {
                super::procfs::udp_port_bound(p)
            }
        };
        while !bound(self.local_port) {
            if let Some(c) = srv.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("sipp {} exited early ({st}): {}", self.name, srv.stderr());
                }
            }
            assert!(
                Instant::now() < deadline,
                "sipp {} did not bind its port",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        srv
    }
}

/// Value of column `name` in the last data row of a sipp statistics CSV
/// (`;`-separated, header in the first line).
pub(crate) fn stat_column(csv: &str, name: &str) -> Option<u64> {
    let lines: Vec<&str> = csv.lines().filter(|l| !l.trim().is_empty()).collect();
    let (header, rows) = lines.split_first()?;
    let idx = header.split(';').position(|h| h.trim() == name)?;
    let last = rows.last()?;
    last.split(';').nth(idx)?.trim().parse().ok()
}

/// A sipp running in the background.
pub(crate) struct SippServer {
    child: Option<Child>,
    sipp: Sipp,
    dir_path: PathBuf,
    log: PathBuf,
}

impl SippServer {
    pub(crate) fn port(&self) -> u16 {
        self.sipp.local_port
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn finish(&mut self, status: Option<std::process::ExitStatus>) -> SippResult {
        let mut r = self.sipp.result_at(&self.dir_path);
        r.exit_code = status.and_then(|s| s.code());
        r.stderr = self.stderr();
        r
    }

    /// Waits (bounded) for sipp to exit by itself, e.g. after `-m N` calls.
    pub(crate) fn wait(mut self, limit: Duration) -> SippResult {
        let mut child = self.child.take().expect("sipp child");
        let st = wait_until(&mut child, Instant::now() + limit);
        if st.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.finish(st)
    }

    /// Asks sipp to quit (SIGUSR1 = finish like the `q` key, writing the
    /// final statistics), killing it if it takes more than 5 s.
    pub(crate) fn stop(mut self) -> SippResult {
        let mut child = self.child.take().expect("sipp child");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGUSR1);
        let st = wait_until(&mut child, Instant::now() + Duration::from_secs(5));
        if st.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.finish(st)
    }
}

impl Sipp {
    /// Reads the statistics and error files this run wrote into `dir`.
    fn result_at(&self, dir: &Path) -> SippResult {
        let csv = std::fs::read_to_string(self.stat_file(dir)).unwrap_or_default();
        let col = |name: &str| stat_column(&csv, name).unwrap_or(0);
        SippResult {
            exit_code: None,
            successful: col("SuccessfulCall(C)"),
            failed: col("FailedCall(C)"),
            retransmissions: col("Retransmissions(C)"),
            error_log: std::fs::read_to_string(self.error_file(dir)).unwrap_or_default(),
            stderr: String::new(),
        }
    }
}

impl Drop for SippServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
