//! `serctl` end to end: the real binary against fake servers that speak
//! the SER 0.9 management framing. Each fake server is a thread in this
//! test process (the binary itself stays single-threaded); it records what
//! it received so the tests can check the exact request bytes.
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

fn unique(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!("/tmp/serctl_test_{}_{n}_{tag}", std::process::id()))
}

fn serctl(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_serctl"));
    c.args(args)
        .env_remove("SER_UNIXSOCK")
        .env_remove("SER_FIFO");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap_or_else(|e| panic!("running serctl: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What a fake unix-socket server saw of one request.
struct UnixSeen {
    request: Vec<u8>,
    peer: PathBuf,
    peer_mode: u32,
}

/// Binds `path` and answers one request per entry of `replies`; `None`
/// receives but stays silent (for timeouts).
fn fake_unix(path: &Path, replies: Vec<Option<&'static [u8]>>) -> JoinHandle<Vec<UnixSeen>> {
    let _ = std::fs::remove_file(path);
    let sock = UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    thread::spawn(move || {
        let mut seen = Vec::new();
        for reply in replies {
            let mut buf = vec![0u8; 65536];
            let Ok((n, addr)) = sock.recv_from(&mut buf) else {
                break;
            };
            buf.truncate(n);
            let peer = addr
                .as_pathname()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let peer_mode = std::fs::metadata(&peer)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if let Some(r) = reply {
                sock.send_to(r, &peer)
                    .unwrap_or_else(|e| panic!("reply: {e}"));
            }
            seen.push(UnixSeen {
                request: buf,
                peer,
                peer_mode,
            });
        }
        seen
    })
}

/// What a fake FIFO server saw of one request.
struct FifoSeen {
    request: Vec<u8>,
    reply_name: String,
}

/// Creates the FIFO at `path`, opens it for reading (as ser keeps it open)
/// and answers one request per entry of `replies` into `/tmp/<reply name>`.
fn fake_fifo(path: &Path, replies: Vec<Option<&'static [u8]>>) -> JoinHandle<Vec<FifoSeen>> {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRWXU)
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    let mut fifo = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open: {e}"));
    let path = path.to_path_buf();
    thread::spawn(move || {
        let mut seen = Vec::new();
        let mut pending = Vec::new();
        for reply in replies {
            // One request ends at its empty line.
            let deadline = Instant::now() + Duration::from_secs(10);
            let end = loop {
                if let Some(i) = pending.windows(2).position(|w| w == b"\n\n") {
                    break i + 2;
                }
                let mut chunk = [0u8; 4096];
                match fifo.read(&mut chunk) {
                    Ok(n) if n > 0 => pending.extend_from_slice(&chunk[..n]),
                    _ if Instant::now() > deadline => return seen,
                    _ => thread::sleep(Duration::from_millis(2)),
                }
            };
            let request: Vec<u8> = pending.drain(..end).collect();
            let first = text(&request).lines().next().unwrap_or("").to_owned();
            let reply_name = first.rsplit(':').next().unwrap_or("").to_owned();
            if let Some(r) = reply {
                let mut out = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(Path::new("/tmp").join(&reply_name))
                    .unwrap_or_else(|e| panic!("open reply fifo {reply_name}: {e}"));
                out.write_all(r)
                    .unwrap_or_else(|e| panic!("write reply: {e}"));
            }
            seen.push(FifoSeen {
                request,
                reply_name,
            });
        }
        drop(fifo);
        let _ = std::fs::remove_file(&path);
        seen
    })
}

fn join<T>(h: JoinHandle<T>) -> T {
    h.join().unwrap_or_else(|_| panic!("fake server panicked"))
}

#[test]
fn unixsock_ps_prints_a_table_and_cleans_up() {
    let path = unique("ps.sock");
    let server = fake_unix(
        &path,
        vec![Some(b"200 OK\n1\t4711\tattendant\n2\t4712\ttimer\n")],
    );
    let out = serctl(&["-s", path.to_str().unwrap_or_default(), "ps"], &[]);
    let seen = join(server);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request, b":ps:\n\n");
    assert_eq!(seen[0].peer_mode, 0o600, "client socket mode");
    assert!(
        !seen[0].peer.exists(),
        "client socket {} left behind",
        seen[0].peer.display()
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("PID") && stdout.contains("4711  attendant"),
        "{stdout}"
    );
    assert!(stdout.contains("4712  timer"), "{stdout}");
}

#[test]
fn unixsock_error_reply_exits_1_with_status_on_stderr() {
    let path = unique("err.sock");
    let server = fake_unix(&path, vec![Some(b"500 Command frob not found\n")]);
    let out = serctl(&["fifo", "frob", "a b"], &[("SER_UNIXSOCK", &path)]);
    let seen = join(server);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(seen[0].request, b":frob:\na b\n\n");
    assert!(
        text(&out.stderr).contains("500 Command frob not found"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

/// An error reply ends its line on stderr even when the server sent no
/// final LF (SER's own server omits it on some replies).
#[test]
fn error_replies_end_with_a_newline() {
    let path = unique("nolf.sock");
    let server = fake_unix(
        &path,
        vec![Some(b"404 Username x in table location not found")],
    );
    let out = serctl(&["ul", "rm", "x"], &[("SER_UNIXSOCK", &path)]);
    join(server);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "404 Username x in table location not found\n"
    );
}

#[test]
fn unixsock_without_server_exits_2() {
    let missing = unique("missing.sock");
    let out = serctl(&["-s", missing.to_str().unwrap_or_default(), "uptime"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("not running") && err.contains(missing.to_str().unwrap_or_default()),
        "{err}"
    );

    // A socket file whose server died: connection refused.
    let stale = unique("stale.sock");
    drop(UnixDatagram::bind(&stale).unwrap_or_else(|e| panic!("{e}")));
    let out = serctl(&["-s", stale.to_str().unwrap_or_default(), "uptime"], &[]);
    let _ = std::fs::remove_file(&stale);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not running"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unixsock_silent_server_times_out_with_exit_2() {
    let path = unique("silent.sock");
    let server = fake_unix(&path, vec![None]);
    let out = serctl(
        &[
            "-t",
            "0.3",
            "-s",
            path.to_str().unwrap_or_default(),
            "version",
        ],
        &[],
    );
    let seen = join(server);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no reply"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !seen[0].peer.exists(),
        "client socket left behind after timeout"
    );
}

#[test]
fn unixsock_garbage_reply_exits_2() {
    let path = unique("garbage.sock");
    let server = fake_unix(&path, vec![Some(b"hello there\n")]);
    let out = serctl(&["-s", path.to_str().unwrap_or_default(), "version"], &[]);
    join(server);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("malformed status line"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn fifo_ul_add_sends_ser_parameters_and_removes_reply_fifo() {
    let path = unique("fifo");
    let server = fake_fifo(&path, vec![Some(b"200 Added to table\n")]);
    let out = serctl(
        &[
            "-f",
            path.to_str().unwrap_or_default(),
            "ul",
            "add",
            "alice@example.com",
            "sip:alice@10.0.0.1",
        ],
        &[],
    );
    let seen = join(server);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let name = &seen[0].reply_name;
    assert!(
        name.starts_with("serctl_reply_") && !name.contains(['.', '/', '\\']),
        "{name}"
    );
    let expected = format!(
        ":ul_add:{name}\nlocation\nalice@example.com\nsip:alice@10.0.0.1\n3600\n1.00\n0\n0\n\n"
    );
    assert_eq!(text(&seen[0].request), expected);
    assert!(
        !Path::new("/tmp").join(name).exists(),
        "reply FIFO left behind"
    );
    assert_eq!(text(&out.stdout), "Added to table\n");
}

#[test]
fn fifo_raw_command_prints_reply_verbatim() {
    let path = unique("fifo");
    let server = fake_fifo(&path, vec![Some(b"200 ok\nline one\n\nline three\n")]);
    let out = serctl(&["fifo", "which"], &[("SER_FIFO", &path)]);
    let seen = join(server);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&seen[0].request),
        format!(":which:{}\n\n", seen[0].reply_name)
    );
    assert_eq!(text(&out.stdout), "200 ok\nline one\n\nline three\n");
}

#[test]
fn fifo_error_reply_exits_1() {
    let path = unique("fifo");
    let server = fake_fifo(&path, vec![Some(b"500 command 'frob' not available\n")]);
    let out = serctl(
        &["-f", path.to_str().unwrap_or_default(), "fifo", "frob"],
        &[],
    );
    join(server);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("500 command 'frob' not available"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn fifo_without_reader_or_file_exits_2() {
    let path = unique("fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU)
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    let out = serctl(&["-f", path.to_str().unwrap_or_default(), "ps"], &[]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    let want = format!("ser is not running (no reader on {})", path.display());
    assert!(text(&out.stderr).contains(&want), "{}", text(&out.stderr));

    let out = serctl(&["-f", path.to_str().unwrap_or_default(), "ps"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no such FIFO"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn fifo_silent_server_times_out_and_removes_reply_fifo() {
    let path = unique("fifo");
    let server = fake_fifo(&path, vec![None]);
    let started = Instant::now();
    let out = serctl(
        &[
            "-t",
            "0.3",
            "-f",
            path.to_str().unwrap_or_default(),
            "uptime",
        ],
        &[],
    );
    let seen = join(server);
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        text(&out.stderr).contains("no reply"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !Path::new("/tmp").join(&seen[0].reply_name).exists(),
        "reply FIFO left behind"
    );
}

#[test]
fn fifo_refuses_long_and_multiline_params_as_usage_errors() {
    // A FIFO with a reader, so only the request itself can be refused.
    let path = unique("fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU)
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap_or_else(|e| panic!("open: {e}"));
    let long = "x".repeat(5000);
    let out = serctl(
        &[
            "-f",
            path.to_str().unwrap_or_default(),
            "fifo",
            "echo",
            &long,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("too long"),
        "{}",
        text(&out.stderr)
    );
    let out = serctl(
        &[
            "-f",
            path.to_str().unwrap_or_default(),
            "fifo",
            "echo",
            "a\nb",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("line break"),
        "{}",
        text(&out.stderr)
    );
    drop(reader);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn moni_refreshes_n_times_over_fifo() {
    let path = unique("fifo");
    let stats: &[u8] = b"200 ok\nCurrent: 0 (0 waiting) Total: 7 (0 local)\n";
    let up: &[u8] = b"200 ok\nNow: x\nUp Since: y\nUp time: 42 [sec]\n";
    let server = fake_fifo(&path, vec![Some(stats), Some(up), Some(stats), Some(up)]);
    let out = serctl(
        &["-f", path.to_str().unwrap_or_default(), "-n", "2", "moni"],
        &[],
    );
    let seen = join(server);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let cmds: Vec<String> = seen
        .iter()
        .map(|s| text(&s.request).split(':').nth(1).unwrap_or("").to_owned())
        .collect();
    assert_eq!(cmds, ["t_stats", "uptime", "t_stats", "uptime"]);
    let stdout = text(&out.stdout);
    // stdout is a pipe here: no clear-screen codes in the data (they are
    // for terminals only), the two reports one after the other.
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    assert_eq!(stdout.matches("[ser monitor,").count(), 2, "{stdout:?}");
    assert_eq!(stdout.matches("Up time: 42 [sec]").count(), 2);
    assert!(stdout.contains("Total: 7"));
}

/// On a terminal (a pty from `script`) moni still clears the screen.
#[test]
fn moni_clears_the_screen_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to give serctl a terminal");
        return;
    }
    let path = unique("fifo");
    let stats: &[u8] = b"200 ok\nCurrent: 0 (0 waiting) Total: 7 (0 local)\n";
    let up: &[u8] = b"200 ok\nUp time: 42 [sec]\n";
    let server = fake_fifo(&path, vec![Some(stats), Some(up)]);
    let line = format!(
        "'{}' -f '{}' -n 1 moni",
        env!("CARGO_BIN_EXE_serctl"),
        path.display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("SER_UNIXSOCK")
        .env_remove("SER_FIFO")
        .output()
        .unwrap_or_else(|e| panic!("running script: {e}"));
    join(server);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout:?} {}",
        text(&out.stderr)
    );
    assert_eq!(stdout.matches("\x1b[H\x1b[2J").count(), 1, "{stdout:?}");
    assert!(stdout.contains("Up time: 42 [sec]"), "{stdout:?}");
}

#[test]
fn usage_error_exits_64() {
    let out = serctl(&["ul", "frob"], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("usage: serctl"));
}

/// `serctl db init | add | passwd | rm | alias` on SQLite, MariaDB and
/// PostgreSQL: the real binary, rows checked through `ser::db`.
mod users {
    use std::process::{Command, Output};
    use std::time::{Duration, Instant};

    use ser::db::{Db, Stmt, Value};
    use ser::modules::auth::digest::hex_md5;

    use super::text;
    use crate::common::db::{DbKind, DbServer};
    use crate::common::{serial, TestDir};

    const DOMAIN: &str = "example.com";

    /// serctl with `SER_DB_URL` set and `SIP_DOMAIN` set or not.
    fn serctl(url: &str, domain: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_serctl"));
        c.args(args)
            .env("SER_DB_URL", url)
            .env_remove("SIP_DOMAIN")
            .env_remove("SER_UNIXSOCK")
            .env_remove("SER_FIFO");
        if let Some(d) = domain {
            c.env("SIP_DOMAIN", d);
        }
        c.output().unwrap_or_else(|e| panic!("running serctl: {e}"))
    }

    /// Runs serctl in `DOMAIN` and checks its exit status.
    fn ok(url: &str, args: &[&str], want: i32) -> String {
        let out = serctl(url, Some(DOMAIN), args);
        assert_eq!(
            out.status.code(),
            Some(want),
            "serctl {args:?}: stdout {} stderr {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        if want == 0 {
            text(&out.stdout)
        } else {
            text(&out.stderr)
        }
    }

    /// (password, ha1, ha1b, email) of each subscriber named `user`.
    fn subscriber(db: &mut Db, user: &str) -> Vec<(String, String, String, String)> {
        let sel = Stmt::select("subscriber", &["password", "ha1", "ha1b", "email_address"])
            .where_eq(&["username", "domain"])
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        db.query(&sel, &[Value::from(user), Value::from(DOMAIN)])
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|r| {
                let s = |i| {
                    r.str(i)
                        .map(str::to_owned)
                        .unwrap_or_else(|e| panic!("{e}"))
                };
                (s(0), s(1), s(2), s(3))
            })
            .collect()
    }

    fn count(db: &mut Db, table: &str) -> usize {
        let sel = Stmt::select(table, &["username"])
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        db.query(&sel, &[]).unwrap_or_else(|e| panic!("{e}")).len()
    }

    fn ha1(user: &str, pw: &str) -> String {
        hex_md5(&[format!("{user}:{DOMAIN}:{pw}").as_bytes()])
    }

    fn ha1b(user: &str, pw: &str) -> String {
        hex_md5(&[format!("{user}@{DOMAIN}:{DOMAIN}:{pw}").as_bytes()])
    }

    fn users_on(url: &str) {
        ok(url, &["db", "init"], 0);
        // Twice is harmless, as `schema::create` promises.
        ok(url, &["db", "init"], 0);
        let mut db = Db::from_url(url).unwrap_or_else(|e| panic!("{e}"));

        ok(url, &["add", "alice", "secret", "alice@example.com"], 0);
        let want = (
            "secret".to_owned(),
            ha1("alice", "secret"),
            ha1b("alice", "secret"),
            "alice@example.com".to_owned(),
        );
        assert_eq!(subscriber(&mut db, "alice"), vec![want.clone()]);
        let err = ok(url, &["add", "alice", "other", "x@y"], 1);
        assert!(err.contains("user exists"), "{err}");
        assert_eq!(subscriber(&mut db, "alice"), vec![want.clone()]);

        ok(url, &["passwd", "alice", "n3w"], 0);
        let after = subscriber(&mut db, "alice");
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].0, "n3w");
        assert_eq!(after[0].1, ha1("alice", "n3w"));
        assert_eq!(after[0].2, ha1b("alice", "n3w"));
        let err = ok(url, &["passwd", "mallory", "x"], 1);
        assert!(err.contains("no such user"), "{err}");

        // Injection-looking names are stored as typed, match only
        // themselves, and change nothing else.
        let evil = "' OR '1'='1";
        ok(url, &["add", evil, "pw", "e@x"], 0);
        assert_eq!(subscriber(&mut db, evil)[0].1, ha1(evil, "pw"));
        for name in [
            "x' OR 'a'='a",
            "alice' --",
            "alice'; DELETE FROM subscriber; --",
        ] {
            ok(url, &["passwd", name, "pwned"], 1);
            ok(url, &["rm", name], 1);
        }
        assert_eq!(subscriber(&mut db, "alice")[0].1, ha1("alice", "n3w"));
        assert_eq!(count(&mut db, "subscriber"), 2);
        ok(url, &["rm", evil], 0);
        assert_eq!(subscriber(&mut db, "alice").len(), 1);

        ok(url, &["rm", "alice"], 0);
        assert!(subscriber(&mut db, "alice").is_empty());
        let err = ok(url, &["rm", "alice"], 1);
        assert!(err.contains("no such user"), "{err}");

        // Aliases: usrloc-shaped rows in `aliases`.
        ok(url, &["alias", "add", "bob", "sip:alice@example.com"], 0);
        ok(url, &["alias", "add", "bob", "sip:alice@10.0.0.1"], 0);
        ok(url, &["alias", "add", "carol", "sip:carol@h"], 0);
        ok(url, &["alias", "add", "carol", "sip:carol@h"], 1);
        let sel = Stmt::select("aliases", &["expires", "q", "callid", "cseq"])
            .where_eq(&["username", "contact"])
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let row = db
            .query_one(&sel, &["carol".into(), "sip:carol@h".into()])
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no alias row"));
        assert_eq!(row.time(0).ok(), Some(ser::db::time::forever_secs()));
        assert_eq!(row.float(1).ok(), Some(1.0));
        assert_eq!(row.str(2).ok(), Some("Default-Call-ID"));
        assert_eq!(row.int(3).ok(), Some(42));
        assert_eq!(
            ok(url, &["alias", "show"], 0),
            "bob@example.com\tsip:alice@10.0.0.1\n\
             bob@example.com\tsip:alice@example.com\n\
             carol@example.com\tsip:carol@h\n"
        );
        assert_eq!(
            ok(url, &["alias", "show", "carol"], 0),
            "carol@example.com\tsip:carol@h\n"
        );
        ok(url, &["alias", "show", evil], 1);
        ok(url, &["alias", "rm", evil], 1);
        ok(url, &["alias", "rm", "bob"], 0);
        ok(url, &["alias", "show", "bob"], 1);
        ok(url, &["alias", "rm", "bob"], 1);
        assert_eq!(count(&mut db, "aliases"), 1);

        // SIP_DOMAIN is required, and nothing is done without it.
        for args in [
            &["add", "dave", "pw", "d@x"][..],
            &["passwd", "dave", "pw"],
            &["rm", "carol"],
            &["alias", "show"],
            &["alias", "rm", "carol"],
        ] {
            let out = serctl(url, None, args);
            assert_eq!(out.status.code(), Some(64), "{args:?}");
            assert!(text(&out.stderr).contains("SIP_DOMAIN"), "{args:?}");
        }
        assert_eq!(count(&mut db, "aliases"), 1);
        assert_eq!(count(&mut db, "subscriber"), 0);
    }

    #[test]
    fn serctl_users_on_sqlite() {
        let dir = TestDir::new();
        let url = format!("sqlite://{}", dir.join("ser.db").display());
        users_on(&url);
        // -d wins over SER_DB_URL.
        let other = format!("sqlite://{}", dir.join("other.db").display());
        let out = serctl(
            "sqlite:///nonexistent/dir/x.db",
            Some(DOMAIN),
            &["-d", &other, "db", "init"],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(dir.join("other.db").exists());
    }

    #[test]
    fn serctl_users_on_mariadb_and_postgres() {
        let _g = serial();
        for kind in [DbKind::Mariadb, DbKind::Postgres] {
            let dir = TestDir::new();
            let server = DbServer::start(kind, dir.path());
            users_on(&server.url());
        }
    }

    #[test]
    fn serctl_users_database_down_or_bad_url() {
        // Nothing listens on port 1: refused at once, exit 2.
        for url in [
            "mysql://ser:heslo@127.0.0.1:1/ser",
            "postgres://ser:heslo@127.0.0.1:1/ser",
        ] {
            let t = Instant::now();
            let out = serctl(url, Some(DOMAIN), &["add", "alice", "pw", "a@x"]);
            assert_eq!(out.status.code(), Some(2), "{url}");
            let err = text(&out.stderr);
            assert!(
                err.contains("cannot connect") && !err.contains("heslo"),
                "{err}"
            );
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{url}: {:?}",
                t.elapsed()
            );
        }
        let out = serctl("nosuch://x", Some(DOMAIN), &["db", "init"]);
        assert_eq!(out.status.code(), Some(64));
    }

    #[test]
    fn serctl_usage_lists_user_commands() {
        let out = serctl("sqlite:///x", None, &["-h"]);
        let usage = text(&out.stdout);
        for c in [
            "db init",
            "add <user>",
            "passwd <user>",
            "rm <user>",
            "alias show",
            "alias add",
            "alias rm",
            "SIP_DOMAIN",
            "-d <url>",
        ] {
            assert!(usage.contains(c), "{c} missing from {usage}");
        }
        let out = serctl("sqlite:///x", Some(DOMAIN), &["add", "alice"]);
        assert_eq!(out.status.code(), Some(64));
    }
}
