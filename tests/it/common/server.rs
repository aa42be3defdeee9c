//! Launching the real `ser` binary for a test, watching it, and making sure
//! no process of it outlives the test.

use super::procfs;
use super::{ser_bin, TestDir};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to bind its sockets before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server gets to exit after SIGTERM (the spec promises 1 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// A running server. It is started in its own process group so that
/// dropping it can kill every worker even if the supervisor died first.
pub(crate) struct Ser {
    child: Option<Child>,
    pid: i32,
    dir: TestDir,
    log_path: PathBuf,
    pid_file: PathBuf,
    cfg_path: PathBuf,
    ports: Vec<u16>,
}

/// What a bounded command run produced.
#[derive(Debug)]
pub(crate) struct Finished {
    /// None when the command was killed for exceeding its time limit.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// Runs `cmd` to completion with stdout/stderr captured in files of `dir`
/// (pipes could fill up and deadlock a single-threaded waiter), killing it
/// if it runs longer than `limit`.
pub(crate) fn run_bounded(
    cmd: &mut Command,
    dir: &TestDir,
    tag: &str,
    limit: Duration,
) -> Finished {
    let out_p = dir.join(&format!("{tag}.stdout"));
    let err_p = dir.join(&format!("{tag}.stderr"));
    let out = File::create(&out_p).expect("create stdout file");
    let err = File::create(&err_p).expect("create stderr file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let status = wait_until(&mut child, Instant::now() + limit);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Finished {
        status,
        stdout: read(&out_p),
        stderr: read(&err_p),
    }
}

/// Polls `child` until it exits or `deadline` passes.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for child: {e}"),
        }
    }
}

/// `ser -c -f <file>`: the config check, bounded to 10 s.
pub(crate) fn check_config(file: &Path) -> Finished {
    let dir = TestDir::new();
    run_bounded(
        Command::new(ser_bin()).arg("-c").arg("-f").arg(file),
        &dir,
        "check",
        Duration::from_secs(10),
    )
}

/// UDP ports a config listens on: `listen=` entries (with or without
/// `udp:` and port) and `port=`; 5060 if neither names one.
pub(crate) fn udp_ports_in(cfg: &str) -> Vec<u16> {
    let mut default_port = 5060u16;
    let mut listens: Vec<Option<u16>> = Vec::new();
    for line in cfg.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((key, val)) = line.split_once('=') else {
            continue;
        };
        let val = val.trim().trim_end_matches(';');
        match key.trim() {
            "port" => default_port = val.parse().unwrap_or(default_port),
            "listen" => {
                for item in val.split_whitespace() {
                    let item = item.trim_matches('"');
                    if item.starts_with("tcp:") || item.starts_with("tls:") {
                        continue;
                    }
                    let item = item.trim_start_matches("udp:");
                    listens.push(item.rsplit_once(':').and_then(|(_, p)| p.parse().ok()));
                }
            }
            _ => {}
        }
    }
    if listens.is_empty() {
        return vec![default_port];
    }
    listens
        .into_iter()
        .map(|p| p.unwrap_or(default_port))
        .collect()
}

/// TCP ports a config listens on with explicit `tcp:` entries.
pub(crate) fn tcp_ports_in(cfg: &str) -> Vec<u16> {
    cfg.lines()
        .filter_map(|l| l.trim().strip_prefix("listen="))
        .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|item| {
            let item = item.trim_matches('"');
            item.strip_prefix("tcp:")
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
        })
        .collect()
}

impl Ser {
    /// Starts `ser -f <cfg> -D -E -P <dir>/ser.pid` and waits until every
    /// UDP port the config names is bound. Panics (with the server log)
    /// if the server exits first or does not bind within 10 s.
    pub(crate) fn start(cfg: &str) -> Ser {
        Ser::start_with_args(cfg, &[])
    }

    /// Like [`Ser::start`] with extra command-line arguments appended.
    pub(crate) fn start_with_args(cfg: &str, extra: &[&str]) -> Ser {
        Ser::start_in(TestDir::new(), cfg, extra)
    }

    /// Like [`Ser::start_with_args`] in a directory the caller made first,
    /// so the config can name paths inside it (`fifo="<dir>/ser_fifo"`).
    pub(crate) fn start_in(dir: TestDir, cfg: &str, extra: &[&str]) -> Ser {
        let cfg_path = dir.write("ser.cfg", cfg.as_bytes());
        let pid_file = dir.join("ser.pid");
        let mut args: Vec<String> = vec![
            "-f".into(),
            cfg_path.display().to_string(),
            "-DD".into(),
            "-E".into(),
            "-P".into(),
            pid_file.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut ser = Ser::launch(
            dir,
            &ser_bin(),
            &args,
            udp_ports_in(cfg),
            cfg_path,
            pid_file,
        );
        // The TCP listeners open after the first UDP socket: wait for them
        // too, or a test's first connect may be refused.
        let deadline = Instant::now() + START_TIMEOUT;
        for p in tcp_ports_in(cfg) {
            while !procfs::tcp_port_listening(p) {
                assert!(ser.is_running(), "server exited; log:\n{}", ser.log());
                assert!(
                    Instant::now() < deadline,
                    "server did not listen on TCP {p}; log:\n{}",
                    ser.log()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        ser
    }

    /// Starts any program as if it were the server; the harness's own tests
    /// use this with a stand-in to check the launcher before ser exists.
    pub(crate) fn launch(
        dir: TestDir,
        program: &Path,
        args: &[String],
        ports: Vec<u16>,
        cfg_path: PathBuf,
        pid_file: PathBuf,
    ) -> Ser {
        use std::os::unix::process::CommandExt;
        let log_path = dir.join("ser.log");
        let log = File::create(&log_path).expect("create server log");
        let log2 = log.try_clone().expect("dup server log");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let pid = child.id() as i32;
        let mut ser = Ser {
            child: Some(child),
            pid,
            dir,
            log_path,
            pid_file,
            cfg_path,
            ports,
        };
        ser.wait_bound();
        ser
    }

    fn wait_bound(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!("server exited early ({st}); log:\n{}", self.log());
                }
            }
            if self.ports.iter().all(|&p| procfs::udp_port_bound(p)) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "server did not bind UDP {:?} within {START_TIMEOUT:?}; log:\n{}",
                    self.ports,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// First UDP port of the config.
    pub(crate) fn port(&self) -> u16 {
        self.ports.first().copied().unwrap_or(5060)
    }

    pub(crate) fn dir(&self) -> &TestDir {
        &self.dir
    }

    pub(crate) fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    pub(crate) fn cfg_path(&self) -> &Path {
        &self.cfg_path
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub(crate) fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Waits up to `d` for the pid file to appear; true if it did.
    pub(crate) fn wait_pid_file(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        while !self.pid_file.exists() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Live processes whose parent is the server (workers, timer, ...).
    pub(crate) fn child_pids(&self) -> Vec<i32> {
        procfs::child_pids(self.pid)
    }

    /// Whether the supervisor is still running (not exited, not a zombie).
    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, then wait up to 3 s for the supervisor to exit. Panics
    /// with the log if it does not (after killing the whole group).
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("server already stopped");
        };
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        match wait_until(&mut child, Instant::now() + STOP_TIMEOUT) {
            Some(st) => st,
            None => {
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                let _ = child.wait();
                panic!(
                    "server ignored SIGTERM for {STOP_TIMEOUT:?}; log:\n{}",
                    self.log()
                );
            }
        }
    }
}

impl Drop for Ser {
    fn drop(&mut self) {
        // Workers that outlived a crashed or stopped supervisor are still in
        // its process group; kill the group, then anything that escaped it.
        let strays = procfs::descendant_pids(self.pid);
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        for p in strays {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
