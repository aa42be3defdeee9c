//! Management after dropping privileges: ser started by root with
//! `-u nobody -g nogroup` is still managed by serctl, run as root and run
//! as nobody, over the FIFO and over the unix socket. Needs root (CI runs
//! as root); skipped with a printed reason otherwise.

use crate::common::ctlkit::ctl_cfg;
use crate::common::ctlkit::{fifo_of, sock_of, text};
use crate::common::{free_udp_port, serial, Ser, TestDir};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The uid and gid of `nobody` / `nogroup` on this system.
fn nobody() -> (u32, u32) {
    let u = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody");
    let g = nix::unistd::Group::from_name("nogroup")
        .ok()
        .flatten()
        .expect("group nogroup");
    (u.uid.as_raw(), g.gid.as_raw())
}

/// serctl, as root or (through setpriv) as nobody:nogroup with no
/// supplementary groups, bounded by its own `-t 5`.
fn serctl_as(as_nobody: bool, transport: &[&str], args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_serctl");
    let mut c = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    c.args(transport)
        .args(["-t", "5"])
        .args(args)
        .env_remove("SER_UNIXSOCK")
        .env_remove("SER_FIFO")
        .stdin(Stdio::null())
        .output()
        .expect("run serctl")
}

fn start_as_nobody() -> Ser {
    let dir = TestDir::new();
    let port = free_udp_port();
    let cfg = ctl_cfg(port, dir.path(), "route { drop; }");
    let fifo = dir.join("ser_fifo");
    let sock = dir.join("ser_sock");
    let ser = Ser::start_in(dir, &cfg, &["-u", "nobody", "-g", "nogroup"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(fifo.exists() && sock.exists()) {
        assert!(Instant::now() < deadline, "no FIFO/socket:\n{}", ser.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    ser
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).expect("stat");
    (m.uid(), m.gid())
}

#[test]
fn serctl_as_root_and_as_nobody_manages_a_ser_running_as_nobody() {
    if !is_root() {
        eprintln!("skipped: needs root to start ser with -u nobody -g nogroup");
        return;
    }
    let _g = serial();
    let ser = start_as_nobody();
    let fifo = fifo_of(&ser).display().to_string();
    let sock = sock_of(&ser).display().to_string();
    // By default the control files belong to the user ser runs as.
    assert_eq!(owner(Path::new(&fifo)), nobody(), "{}", ser.log());
    assert_eq!(owner(Path::new(&sock)), nobody(), "{}", ser.log());
    for as_nobody in [false, true] {
        for transport in [["-f", fifo.as_str()], ["-s", sock.as_str()]] {
            let out = serctl_as(as_nobody, &transport, &["ps"]);
            assert!(
                out.status.success() && text(&out.stdout).contains("timer"),
                "serctl {transport:?} ps as {}: {}{}\n{}",
                if as_nobody { "nobody" } else { "root" },
                text(&out.stdout),
                text(&out.stderr),
                ser.log()
            );
        }
    }
    assert!(!ser.log().contains("running as root"), "{}", ser.log());
    // serctl removed its reply endpoints.
    let left: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains(&format!("serctl_reply_{}", std::process::id()))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn running_as_root_without_u_is_warned_about_once() {
    if !is_root() {
        eprintln!("skipped: the warning is only given to root");
        return;
    }
    let _g = serial();
    let dir = TestDir::new();
    let port = free_udp_port();
    let cfg = ctl_cfg(port, dir.path(), "route { drop; }");
    let ser = Ser::start_in(dir, &cfg, &[]);
    std::thread::sleep(Duration::from_millis(200));
    let n = ser
        .log()
        .lines()
        .filter(|l| l.contains("running as root"))
        .count();
    assert_eq!(n, 1, "{}", ser.log());
}
