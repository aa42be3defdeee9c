//! Supervisor tests. Forking from the multi-threaded test harness is not
//! safe, so the real-process tests re-run this test binary with only
//! `reexec_entry` selected and an environment switch; that process forks
//! once so that the supervisor itself is a single-threaded process, exactly
//! like `ser`'s.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::*;

const ENV_MODE: &str = "SER_SUPERVISOR_TEST_MODE";
const ENV_DIR: &str = "SER_SUPERVISOR_TEST_DIR";

#[test]
fn deadline_arithmetic() {
    let now = Instant::now();
    let d = now + Duration::from_millis(300);
    assert_eq!(remaining(d, now), Some(Duration::from_millis(300)));
    assert_eq!(remaining(d, d), None);
    assert_eq!(remaining(now, d), None);
}

#[test]
fn supervised_set_has_the_four_signals() {
    let set = supervised_set();
    for s in SUPERVISED_SIGNALS {
        assert!(set.contains(s));
    }
    assert!(!set.contains(Signal::SIGPIPE));
}

/// Runs inside the re-executed test binary only (ignored in a normal
/// run, so it is not counted as a passing test; `Run::start` selects it
/// with `--ignored --exact`).
#[test]
#[ignore = "re-exec entry point, run by the supervisor tests in a child process"]
fn reexec_entry() {
    let (Ok(mode), Ok(dir)) = (std::env::var(ENV_MODE), std::env::var(ENV_DIR)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    match os::fork_child() {
        Ok(ForkResult::Child) => std::process::exit(supervisor_main(&mode, &dir)),
        Ok(ForkResult::Parent { child }) => {
            let text = match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => format!("{code}"),
                other => format!("{other:?}"),
            };
            std::fs::write(dir.join("status"), text).expect("write status");
        }
        Err(e) => panic!("fork: {e}"),
    }
}

/// The supervisor process of the re-exec tests. Returns its exit code;
/// setup failures are 90+ so the outer test can tell them apart.
fn supervisor_main(mode: &str, dir: &Path) -> i32 {
    let _ = crate::logging::init(4, true, "LOG_DAEMON", "ser-test");
    // A group of its own, so the outer test can signal the whole group
    // (as a terminal's Ctrl-C does) without hitting the test harness.
    if mode == "group" && nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).is_err() {
        return 94;
    }
    let Ok(mut sup) = Supervisor::new(Some(dir.join("ser.pid")), Some(dir.join("ser.pgid"))) else {
        return 90;
    };
    for i in 0..3u16 {
        let desc = format!("receiver child={i} sock= 127.0.0.1:5060");
        // Each incarnation writes its pid where the outer test finds it.
        let pid_file = dir.join(format!("worker{i}"));
        let body = move || {
            let tmp = pid_file.with_extension("tmp");
            let _ = std::fs::write(&tmp, getpid().to_string());
            let _ = std::fs::rename(&tmp, &pid_file);
            sleeper()
        };
        if sup
            .spawn(Rank::Udp { sock: 0, idx: i }, desc, body)
            .is_err()
        {
            return 91;
        }
    }
    let extra = match mode {
        "fail" => sup.spawn(Rank::Timer, "timer".into(), || {
            std::thread::sleep(Duration::from_millis(200));
            3
        }),
        "stubborn" => sup.spawn(Rank::Fifo, "fifo server".into(), || {
            if signals::ignore(Signal::SIGTERM).is_err() {
                return 4;
            }
            sleeper()
        }),
        _ => Ok(Pid::from_raw(0)),
    };
    if extra.is_err() {
        return 92;
    }
    let pids: String = sup
        .children()
        .iter()
        .map(|c| format!("{}\n", c.pid))
        .collect();
    // Written then renamed, so the outer test never reads half a list.
    let tmp = dir.join("children.tmp");
    if std::fs::write(&tmp, pids).is_err() || std::fs::rename(&tmp, dir.join("children")).is_err() {
        return 93;
    }
    sup.run()
}

fn sleeper() -> i32 {
    std::thread::sleep(Duration::from_secs(30));
    0
}

struct Run {
    dir: PathBuf,
    proc: std::process::Child,
}

impl Run {
    fn start(mode: &str) -> Run {
        let dir = std::env::temp_dir().join(format!("ser-sup-{}-{mode}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let proc = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "proc::supervisor::tests::reexec_entry",
                "--test-threads=1",
            ])
            .env(ENV_MODE, mode)
            .env(ENV_DIR, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Run { dir, proc }
    }

    fn wait_file(&self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(s) = std::fs::read_to_string(self.dir.join(name)) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{name} never appeared in {}", self.dir.display());
    }

    fn children(&self) -> Vec<Pid> {
        self.wait_file("children")
            .lines()
            .map(|l| Pid::from_raw(l.parse().unwrap()))
            .collect()
    }

    /// Waits for the re-executed harness and returns the supervisor's exit
    /// status text and everything it logged.
    fn finish(mut self) -> (String, String) {
        let status = self.wait_file("status");
        let mut stderr = String::new();
        self.proc
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(self.proc.wait().unwrap().success());
        assert!(!self.dir.join("ser.pid").exists(), "pid file left behind");
        assert!(!self.dir.join("ser.pgid").exists(), "pgid file left behind");
        let _ = std::fs::remove_dir_all(&self.dir);
        (status, stderr)
    }
}

fn alive(pid: Pid) -> bool {
    kill(pid, None).is_ok()
}

fn wait_gone(pids: &[Pid], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn sigterm_stops_every_child_and_removes_pid_file() {
    let run = Run::start("term");
    let kids = run.children();
    assert_eq!(kids.len(), 3);
    assert!(kids.iter().all(|p| alive(*p)));
    let sup: i32 = run.wait_file("ser.pid").trim().parse().unwrap();
    assert!(run.wait_file("ser.pgid").trim().parse::<i32>().is_ok());
    kill(Pid::from_raw(sup), Signal::SIGTERM).unwrap();
    assert!(
        wait_gone(&kids, Duration::from_secs(1)),
        "children outlived SIGTERM by 1 s"
    );
    let (status, log) = run.finish();
    assert_eq!(status, "0", "log:\n{log}");
    assert!(log.contains("termination signal"), "log:\n{log}");
}

#[test]
fn child_ignoring_sigterm_is_killed_after_grace() {
    let run = Run::start("stubborn");
    let kids = run.children();
    assert_eq!(kids.len(), 4);
    let sup: i32 = run.wait_file("ser.pid").trim().parse().unwrap();
    // Give the stubborn child time to install SIG_IGN before we signal.
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    kill(Pid::from_raw(sup), Signal::SIGTERM).unwrap();
    assert!(wait_gone(&kids, Duration::from_secs(10)));
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "SIGKILL came before the grace period"
    );
    let (status, log) = run.finish();
    assert_eq!(status, "0", "log:\n{log}");
    assert!(log.contains("ignored SIGTERM"), "log:\n{log}");
}

#[test]
fn child_dying_again_and_again_stops_the_server() {
    let run = Run::start("fail");
    let kids = run.children();
    assert_eq!(kids.len(), 4);
    let failing = kids[3];
    let (status, log) = run.finish();
    assert_eq!(status, "1", "log:\n{log}");
    assert!(kids.iter().all(|p| !alive(*p)));
    let line = log
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!(
            "child process {failing} (timer) exited with status 3"
        )),
        "log:\n{log}"
    );
    // Respawned each time, until the fifth death within the window.
    assert_eq!(
        log.matches("(timer) exited with status 3").count(),
        CRASH_LIMIT,
        "log:\n{log}"
    );
    assert!(
        log.contains("timer (timer) died 5 times within 10 s; stopping the server"),
        "log:\n{log}"
    );
}

/// The pid the current incarnation of worker `i` wrote, once it differs
/// from `not`.
fn worker_pid(run: &Run, i: u16, not: Option<Pid>) -> Pid {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(run.dir.join(format!("worker{i}"))) {
            if let Ok(p) = s.trim().parse() {
                let p = Pid::from_raw(p);
                if Some(p) != not {
                    return p;
                }
            }
        }
        assert!(Instant::now() < deadline, "worker {i} never (re)started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn killed_child_is_respawned_in_its_rank() {
    let run = Run::start("term");
    let kids = run.children();
    assert_eq!(kids.len(), 3);
    let first = worker_pid(&run, 1, None);
    assert_eq!(first, kids[1]);
    kill(first, Signal::SIGKILL).unwrap();
    let t0 = Instant::now();
    let second = worker_pid(&run, 1, Some(first));
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "respawn took {:?}",
        t0.elapsed()
    );
    assert!(alive(second));
    // The others were left alone.
    assert!(alive(kids[0]) && alive(kids[2]));
    let sup: i32 = run.wait_file("ser.pid").trim().parse().unwrap();
    kill(Pid::from_raw(sup), Signal::SIGTERM).unwrap();
    assert!(wait_gone(
        &[kids[0], second, kids[2]],
        Duration::from_secs(2)
    ));
    let (status, log) = run.finish();
    assert_eq!(status, "0", "log:\n{log}");
    assert!(
        log.contains(&format!(
            "child process {first} (receiver child=1 sock= 127.0.0.1:5060) killed by signal 9"
        )),
        "log:\n{log}"
    );
    assert!(
        log.contains(&format!("respawned as pid {second}")),
        "log:\n{log}"
    );
}

#[test]
fn ctrl_c_to_the_process_group_is_a_clean_shutdown() {
    let run = Run::start("group");
    let kids = run.children();
    let sup: i32 = run.wait_file("ser.pid").trim().parse().unwrap();
    let pgid: i32 = run.wait_file("ser.pgid").trim().parse().unwrap();
    assert_eq!(pgid, sup);
    nix::sys::signal::killpg(Pid::from_raw(pgid), Signal::SIGINT).unwrap();
    assert!(wait_gone(&kids, Duration::from_secs(1)));
    let (status, log) = run.finish();
    assert_eq!(status, "0", "log:\n{log}");
    assert!(!log.contains("ERROR"), "log:\n{log}");
}
