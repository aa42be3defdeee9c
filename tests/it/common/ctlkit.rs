//! Helpers for the management-interface tests: a config with a FIFO and a
//! unix socket inside the test directory, shell writers, report files in
//! /tmp, and `serctl`.

use super::server::Ser;
use super::TestDir;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A config on 127.0.0.1:`port` with `fifo` and `unix_sock` in `dir`, sl
/// and tm loaded, FR timer 2 s, then `extra` (modparams and routes).
pub(crate) fn ctl_cfg(port: u16, dir: &Path, extra: &str) -> String {
    format!(
        r#"
debug=3
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=2
fifo="{fifo}"
unix_sock="{sock}"
loadmodule "sl.so"
loadmodule "tm.so"
modparam("tm", "fr_timer", 2)
modparam("tm", "wt_timer", 1)
{extra}
"#,
        fifo = dir.join("ser_fifo").display(),
        sock = dir.join("ser_sock").display(),
    )
}

/// Start ser on a ctl config and wait for its FIFO and socket.
pub(crate) fn start(dir: TestDir, port: u16, extra: &str) -> Ser {
    let cfg = ctl_cfg(port, dir.path(), extra);
    let fifo = dir.join("ser_fifo");
    let sock = dir.join("ser_sock");
    let ser = Ser::start_in(dir, &cfg, &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(fifo.exists() && sock.exists()) {
        assert!(Instant::now() < deadline, "no FIFO/socket:\n{}", ser.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The FIFO exists before the servers are forked; give them a moment.
    std::thread::sleep(Duration::from_millis(200));
    ser
}

pub(crate) fn fifo_of(ser: &Ser) -> PathBuf {
    ser.dir().join("ser_fifo")
}

pub(crate) fn sock_of(ser: &Ser) -> PathBuf {
    ser.dir().join("ser_sock")
}

/// A reply name for /tmp (no '.', unique per test run) and its path.
pub(crate) struct Report {
    pub name: String,
    pub path: PathBuf,
}

impl Report {
    pub(crate) fn new(tag: &str) -> Report {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sertest_{}_{}_{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = PathBuf::from("/tmp").join(&name);
        let _ = std::fs::remove_file(&path);
        Report { name, path }
    }

    /// The report's text once it holds a complete first line.
    pub(crate) fn wait(&self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(t) = std::fs::read_to_string(&self.path) {
                if t.contains('\n') {
                    // Let a writer finish the rest of a multi-line reply.
                    std::thread::sleep(Duration::from_millis(50));
                    return std::fs::read_to_string(&self.path).ok();
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `sh -c 'cat <file> > <fifo>'`, the way the tm docs feed the FIFO.
pub(crate) fn shell_cat(file: &Path, fifo: &Path) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("cat '{}' > '{}'", file.display(), fifo.display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("run sh")
}

/// Wait (bounded) for a shell writer.
pub(crate) fn wait_child(mut c: Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = c.try_wait() {
            return st.success();
        }
        if Instant::now() >= deadline {
            let _ = c.kill();
            let _ = c.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run `serctl` with a transport option and arguments (bounded by its own
/// `-t 5`).
pub(crate) fn serctl(transport: &[&str], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_serctl"))
        .args(transport)
        .args(["-t", "5"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run serctl")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `(pid, description)` of each process, from `ps` over the unix socket
/// (which keeps answering while the FIFO server is being killed).
pub(crate) fn ps(ser: &Ser) -> Vec<(i32, String)> {
    ps_at(&sock_of(ser))
}

/// `ps` over the unix socket at `sock` (usable from a thread that has no
/// `Ser`).
pub(crate) fn ps_at(sock: &Path) -> Vec<(i32, String)> {
    let sock = sock.display().to_string();
    let out = serctl(&["-s", &sock], &["ps"]);
    text(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut t = l.split_whitespace();
            let _idx = t.next()?;
            let pid = t.next()?.parse().ok()?;
            Some((pid, t.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}
