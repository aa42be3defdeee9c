//! A network namespace of a test's own (docs/testing.md): only loopback,
//! its own /etc/resolv.conf, so a test can be the nameserver on
//! 127.0.0.1:53 and nothing inside can reach another machine. The test
//! binary runs one test again inside it.

use super::{serial, server, TestDir};
use std::time::Duration;

/// Set in the copy of this test binary that runs inside the namespace.
pub(crate) const IN_NETNS: &str = "SER_TEST_IN_NETNS";

/// Deletes the namespace, its /etc/netns files and whatever still runs
/// inside (only processes this test started can be there).
pub(crate) struct Netns {
    name: String,
}

impl Netns {
    fn ip(args: &[&str]) -> std::process::Output {
        std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("run ip")
    }

    pub(crate) fn create(name: &str, resolv_conf: &str) -> Netns {
        let out = Netns::ip(&["netns", "add", name]);
        assert!(out.status.success(), "ip netns add: {out:?}");
        let ns = Netns { name: name.into() };
        let etc = format!("/etc/netns/{name}");
        std::fs::create_dir_all(&etc).expect("mkdir /etc/netns/<ns>");
        std::fs::write(format!("{etc}/resolv.conf"), resolv_conf).expect("write resolv.conf");
        let out = Netns::ip(&["netns", "exec", name, "ip", "link", "set", "lo", "up"]);
        assert!(out.status.success(), "lo up: {out:?}");
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let pids = Netns::ip(&["netns", "pids", &self.name]);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = Netns::ip(&["netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

/// Runs the test `name` of module `module` (its `module_path!()`) of this
/// binary inside a fresh namespace with only loopback and `resolv_conf`
/// as its /etc/resolv.conf; the copy inside sees [`IN_NETNS`] set. Skips
/// (printing why) without root or `ip`.
pub(crate) fn run_test_in_netns(module: &str, name: &str, resolv_conf: &str) {
    if !nix::unistd::Uid::effective().is_root() {
        println!("SKIPPED {name}: needs root for a network namespace");
        return;
    }
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        println!("SKIPPED {name}: no `ip` command");
        return;
    }
    let _g = serial();
    let ns = Netns::create(&format!("sertest{}", std::process::id()), resolv_conf);
    let dir = TestDir::new();
    let exe = std::env::current_exe().expect("current_exe");
    // libtest names a test by its path below the crate: `hostile::name`.
    let name = match module.split_once("::") {
        Some((_, module)) => format!("{module}::{name}"),
        None => name.to_string(),
    };
    let r = server::run_bounded(
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(exe)
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env(IN_NETNS, "1"),
        &dir,
        "in-netns",
        Duration::from_secs(120),
    );
    assert!(
        r.code() == Some(0) && r.stdout.contains("1 passed"),
        "inside the namespace ({:?}):\nstdout:\n{}\nstderr:\n{}",
        r.status,
        r.stdout,
        r.stderr
    );
}
