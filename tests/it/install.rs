//! `make install-files` / `make uninstall` (issue 19) into a temporary
//! DESTDIR with a PREFIX: the tree (stripped binaries, man pages that
//! groff formats without a warning, the systemd unit with this layout's
//! paths, ser.cfg), the installed `ser -c` on the installed config, an
//! edited ser.cfg surviving a second install and the uninstall, and
//! `systemd-analyze verify` on the unit where that command exists.
//!
//! The tests install the binaries cargo built for this run through
//! `SER=`/`SERCTL=`, so make never runs cargo (which would wait for the
//! build directory lock this test run holds).

use crate::common::server::{run_bounded, Finished};
use crate::common::TestDir;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PREFIX: &str = "/opt/ser-test";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `make -C <repo> <target> SER=… SERCTL=… <vars>`, bounded to 60 s.
fn make(dir: &TestDir, target: &str, vars: &[String]) -> Finished {
    let f = run_bounded(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(repo())
            .arg(target)
            .arg(format!("SER={}", env!("CARGO_BIN_EXE_ser")))
            .arg(format!("SERCTL={}", env!("CARGO_BIN_EXE_serctl")))
            .args(vars),
        dir,
        &format!("make-{target}"),
        Duration::from_secs(60),
    );
    assert_eq!(
        f.code(),
        Some(0),
        "make {target} {vars:?} failed:\n{}\n{}",
        f.stdout,
        f.stderr
    );
    f
}

/// `DESTDIR=<dir>/dest PREFIX=/opt/ser-test`, and the installed root.
fn staged(dir: &TestDir) -> (Vec<String>, PathBuf) {
    let dest = dir.join("dest");
    let vars = vec![
        format!("DESTDIR={}", dest.display()),
        format!("PREFIX={PREFIX}"),
    ];
    let root = dest.join(PREFIX.trim_start_matches('/'));
    (vars, root)
}

/// The names of an ELF64 little-endian file's sections, read from its
/// section header table (no tool needed).
fn elf_sections(path: &Path) -> Vec<String> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        b.starts_with(b"\x7fELF\x02\x01"),
        "{}: not ELF64 LSB",
        path.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let hdr = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(hdr(shstrndx) + 0x18);
    (0..shnum)
        .map(|i| {
            let name = strtab + u32_at(hdr(i));
            let end = b[name..].iter().position(|&c| c == 0).unwrap() + name;
            String::from_utf8_lossy(&b[name..end]).into_owned()
        })
        .collect()
}

fn has_debug_info(sections: &[String]) -> bool {
    sections
        .iter()
        .any(|s| s == ".symtab" || s == ".debug_info" || s == ".debug_line")
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// groff's man macros with every warning on: no output on stderr.
fn check_man_page(dir: &TestDir, page: &Path) {
    if !on_path("groff") {
        println!("groff not installed: {} not formatted", page.display());
        return;
    }
    let f = run_bounded(
        Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page),
        dir,
        "groff",
        Duration::from_secs(20),
    );
    assert_eq!(f.code(), Some(0), "groff {}: {}", page.display(), f.stderr);
    assert!(
        f.stderr.trim().is_empty(),
        "groff warns about {}:\n{}",
        page.display(),
        f.stderr
    );
}

#[test]
fn install_tree_check_reinstall_and_uninstall() {
    let dir = TestDir::new();
    let (vars, root) = staged(&dir);
    make(&dir, "install-files", &vars);

    // Binaries: executable, without symbols or debug info (the ones cargo
    // built have them, so the check can tell).
    assert!(has_debug_info(&elf_sections(Path::new(env!(
        "CARGO_BIN_EXE_ser"
    )))));
    for bin in ["ser", "serctl"] {
        let p = root.join("sbin").join(bin);
        let mode = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{bin} mode {mode:o}");
        let s = elf_sections(&p);
        assert!(!s.is_empty(), "{bin}: no sections read");
        assert!(!has_debug_info(&s), "{bin} not stripped: {s:?}");
    }

    // Man pages, well-formed.
    for page in ["man8/ser.8", "man8/serctl.8", "man5/ser.cfg.5"] {
        let p = root.join("share/man").join(page);
        assert!(p.is_file(), "{} missing", p.display());
        check_man_page(&dir, &p);
    }

    // The unit, with this layout's paths filled in.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/ser.service")).unwrap();
    for line in [
        format!("ExecStart={PREFIX}/sbin/ser -f {PREFIX}/etc/ser/ser.cfg -DD -E"),
        format!("ExecStartPre={PREFIX}/sbin/ser -c -f {PREFIX}/etc/ser/ser.cfg"),
        "Type=simple".into(),
        "Restart=on-failure".into(),
        "User=ser".into(),
        "Group=ser".into(),
        "RuntimeDirectory=ser".into(),
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line:?} in\n{unit}");
    }
    assert!(!unit.contains('@'), "placeholder left in\n{unit}");

    // ser.cfg is the example, and the installed ser accepts it.
    let cfg = root.join("etc/ser/ser.cfg");
    let example = std::fs::read(repo().join("ser.cfg.example")).unwrap();
    assert_eq!(std::fs::read(&cfg).unwrap(), example);
    let check = run_bounded(
        Command::new(root.join("sbin/ser"))
            .arg("-c")
            .arg("-f")
            .arg(&cfg),
        &dir,
        "ser-c",
        Duration::from_secs(20),
    );
    assert_eq!(check.code(), Some(0), "{}\n{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("config file ok"), "{}", check.stdout);
    let help = run_bounded(
        Command::new(root.join("sbin/serctl")).arg("help"),
        &dir,
        "serctl-help",
        Duration::from_secs(20),
    );
    assert_eq!(help.code(), Some(0), "{}", help.stderr);
    assert!(help.stdout.contains("usage: serctl"), "{}", help.stdout);

    // A second install keeps an edited ser.cfg.
    let mut edited = example.clone();
    edited.extend_from_slice(b"\n# edited by the operator\n");
    std::fs::write(&cfg, &edited).unwrap();
    std::fs::remove_file(root.join("sbin/serctl")).unwrap();
    make(&dir, "install-files", &vars);
    assert_eq!(std::fs::read(&cfg).unwrap(), edited);
    assert!(root.join("sbin/serctl").is_file(), "serctl not reinstalled");

    // Uninstall: everything installed goes, the edited config stays.
    make(&dir, "uninstall", &vars);
    for gone in [
        "sbin/ser",
        "sbin/serctl",
        "share/man/man8/ser.8",
        "share/man/man8/serctl.8",
        "share/man/man5/ser.cfg.5",
        "lib/systemd/system/ser.service",
    ] {
        assert!(!root.join(gone).exists(), "{gone} left after uninstall");
    }
    assert_eq!(std::fs::read(&cfg).unwrap(), edited);
}

#[test]
fn uninstall_removes_an_unedited_config() {
    let dir = TestDir::new();
    let (vars, root) = staged(&dir);
    make(&dir, "install-files", &vars);
    assert!(root.join("etc/ser/ser.cfg").is_file());
    make(&dir, "uninstall", &vars);
    assert!(!root.join("etc/ser").exists(), "etc/ser left");
    assert!(!root.join("sbin/ser").exists());
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    if !on_path("systemd-analyze") {
        println!("systemd-analyze not installed: the unit is not verified");
        return;
    }
    // Installed for real under a prefix in the test directory (no
    // DESTDIR), so the unit's ExecStart names an existing ser, and the
    // man pages it documents are found through MANPATH.
    let dir = TestDir::new();
    let prefix = dir.join("p");
    make(
        &dir,
        "install-files",
        &[format!("PREFIX={}", prefix.display())],
    );
    let unit = prefix.join("lib/systemd/system/ser.service");
    let f = run_bounded(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .env("MANPATH", prefix.join("share/man"))
            .env("SYSTEMD_LOG_LEVEL", "notice"),
        &dir,
        "verify",
        Duration::from_secs(60),
    );
    assert_eq!(f.code(), Some(0), "{}\n{}", f.stdout, f.stderr);
    let complaints: Vec<&str> = f
        .stderr
        .lines()
        .chain(f.stdout.lines())
        .filter(|l| l.contains("ser.service"))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze:\n{}", f.stderr);
}
