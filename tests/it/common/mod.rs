//! Shared harness for the black-box tests: each `tests/*.rs` binary does
//! `mod common;` and gets the server launcher, the sipp runner, a tiny SIP
//! UDP peer and per-test resources (ports, temp dirs, the serial lock).
//!
//! Not every binary uses every helper, hence the crate-wide dead_code allow.
#![allow(dead_code)]

pub(crate) mod ctlkit;
pub(crate) mod db;
pub(crate) mod malformed;
pub(crate) mod netns;
pub(crate) mod procfs;
pub(crate) mod server;
pub(crate) mod sip;
pub(crate) mod sipp;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

// Convenience re-exports; each test binary uses a different subset.
#[allow(unused_imports)]
pub(crate) use server::Ser;
#[allow(unused_imports)]
pub(crate) use sip::{body_of, header_value, header_values, status_of, Request, UdpPeer};
#[allow(unused_imports)]
pub(crate) use sipp::{Sipp, SippResult, SippServer};

/// Ports already handed out by this test process: the kernel may give the
/// same ephemeral port twice once we drop the probe socket, and two tests
/// of one binary running on different threads must never share a port.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a harness lock must not cascade
    // into every later test failing with PoisonError.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A loopback UDP port that was free a moment ago and that no other test of
/// this process has been given. Binding port 0 lets the kernel choose from
/// the ephemeral range, where no fixed service lives.
pub(crate) fn free_udp_port() -> u16 {
    for _ in 0..1000 {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = sock.local_addr().expect("local_addr").port();
        drop(sock);
        // The same TCP port must be free too: ser listens on both, and
        // sipp over TCP binds it; ports of closed test connections linger
        // in TIME_WAIT (std's TcpListener sets SO_REUSEADDR, which
        // would hide them: bind a bare socket).
        let tcp_free = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .and_then(|s| {
                let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
                s.bind(&addr.into())
            })
            .is_ok();
        if !tcp_free {
            continue;
        }
        if lock(handed_out()).insert(port) {
            return port;
        }
    }
    panic!("no free UDP port after 1000 attempts");
}

/// Guard for tests that load the machine (sipp runs, long loops): the box
/// has two cores and timing-sensitive runs must not overlap inside one test
/// binary. Hold the returned guard for the whole test.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    lock(&SERIAL)
}

/// A private directory for one test: `$TMPDIR/ser-test-<pid>-<n>`. Removed
/// on drop unless the test is panicking, so a failure leaves the server log
/// and the sipp traces behind for inspection.
pub(crate) struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub(crate) fn new() -> TestDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ser-test-{}-{}", std::process::id(), n));
        // A stale directory can only come from an earlier process with our
        // pid; its contents are worthless to us.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test dir");
        TestDir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` inside the directory and returns the path.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, contents).expect("write test file");
        p
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Path of a file under `tests/` in the source tree.
pub(crate) fn tests_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(rel)
}

/// The server binary cargo built for this test run, unless `SER_TEST_BIN`
/// names another program (used to check the tests against a stand-in).
pub(crate) fn ser_bin() -> PathBuf {
    std::env::var_os("SER_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ser")))
}

/// `sipsak -vv -H 127.0.0.1 -s sip:x@127.0.0.1:<port>`: one OPTIONS, bounded
/// to 15 s. Exit status 0 means a 2xx came back; stdout holds the reply
/// after `message received:`. (sipsak 0.9.8 mangles a 5-digit port inside
/// the R-URI it writes, but sends to the right port.)
pub(crate) fn sipsak_options(port: u16, dir: &TestDir) -> server::Finished {
    server::run_bounded(
        std::process::Command::new("sipsak")
            .args(["-vv", "-H", "127.0.0.1", "-s"])
            .arg(format!("sip:x@127.0.0.1:{port}")),
        dir,
        &format!("sipsak-{port}"),
        std::time::Duration::from_secs(15),
    )
}

/// The reply sipsak printed (from `message received:` to the blank line).
pub(crate) fn sipsak_reply(stdout: &str) -> Option<String> {
    let start = stdout.find("message received:")? + "message received:".len();
    let rest = stdout[start..].trim_start();
    let end = rest.find("\n\n").unwrap_or(rest.len());
    Some(rest[..end].replace('\n', "\r\n") + "\r\n\r\n")
}

// Stateful (tm) test helpers, used by tests/tm.rs.
pub(crate) mod tmkit;
