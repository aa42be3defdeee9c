//! usrloc with a database (`db_mode` 1, 2, 3) through the real binary:
//! registrations survive a restart, two servers on one database call each
//! other's users, and a database that goes away costs neither a
//! write-through registration nor the server.

use crate::common::db::{DbKind, DbServer};
use crate::common::sip::{header_value, status_of, Request, UdpPeer};
use crate::common::{free_udp_port, serial, Ser, TestDir};
use ser::db::{schema, Db, Stmt, Value};
use std::time::{Duration, Instant};

fn driver(url: &str) -> &'static str {
    match url.split(':').next() {
        Some("mysql") => "mysql",
        Some("postgres") => "postgres",
        _ => "db_sqlite",
    }
}

/// A registrar that relays calls to whoever is registered.
fn cfg(port: u16, url: &str, mode: u8, interval: u32) -> String {
    format!(
        r#"
debug=3
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=2
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "{driver}.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", {mode})
modparam("usrloc", "db_url", "{url}")
modparam("usrloc", "timer_interval", {interval})
route {{
    if (method == "REGISTER") {{
        save("location");
        break;
    }};
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        break;
    }};
    if (!t_relay()) {{
        sl_reply_error();
    }};
}}
"#,
        driver = driver(url)
    )
}

fn init_db(url: &str) {
    let mut db = Db::from_url(url).expect("url");
    schema::create(&mut db).expect("schema");
    db.close();
}

/// REGISTERs `user` at `contact_port` for `expires` s through `port`;
/// the final status.
fn register(port: u16, user: &str, contact_port: u16, expires: u32) -> Option<u16> {
    let peer = UdpPeer::bind();
    let mut r = Request::new("REGISTER", &format!("sip:127.0.0.1:{port}"), peer.port());
    r.to = format!("<sip:{user}@127.0.0.1>");
    r.from = format!("<sip:{user}@127.0.0.1>;tag=r{}", peer.port());
    let r = r
        .header("Contact", &format!("<sip:{user}@127.0.0.1:{contact_port}>"))
        .header("Expires", &expires.to_string());
    peer.send_to_port(&r.build(), port);
    peer.recv_matching(Duration::from_secs(5), |m| {
        status_of(m).is_some_and(|c| c >= 200)
            && header_value(m, "Call-ID").as_deref() == Some(r.call_id.as_str())
    })
    .and_then(|(m, _)| status_of(&m))
}

/// An INVITE to `user` through `port`: `Ok(())` when `callee` gets it,
/// else the status the caller got.
fn call(port: u16, user: &str, callee: &UdpPeer) -> Result<(), Option<u16>> {
    let caller = UdpPeer::bind();
    let r = Request::new(
        "INVITE",
        &format!("sip:{user}@127.0.0.1:{port}"),
        caller.port(),
    );
    caller.send_to_port(&r.build(), port);
    let got = callee.recv_matching(Duration::from_secs(3), |m| {
        m.starts_with(b"INVITE ")
            && header_value(m, "Call-ID").as_deref() == Some(r.call_id.as_str())
    });
    if got.is_some() {
        return Ok(());
    }
    Err(caller
        .recv_matching(Duration::from_millis(500), |m| {
            status_of(m).is_some_and(|c| c >= 200)
        })
        .and_then(|(m, _)| status_of(&m)))
}

/// The contacts of `user` in the `location` table.
fn rows(url: &str, user: &str) -> Vec<String> {
    let q = Stmt::select("location", &["contact"])
        .where_eq(&["username"])
        .build()
        .unwrap();
    let mut db = Db::from_url(url).unwrap();
    let r = db.query(&q, &[Value::Str(user.into())]).expect("select");
    db.close();
    r.iter()
        .map(|row| row.str(0).unwrap().to_string())
        .collect()
}

/// Waits up to `limit` for `user` to have `n` rows.
fn wait_rows(url: &str, user: &str, n: usize, limit: Duration) -> Vec<String> {
    let end = Instant::now() + limit;
    loop {
        let r = rows(url, user);
        if r.len() == n || Instant::now() > end {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn registrations_survive_a_restart_with_write_through_and_write_back() {
    let _g = serial();
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("ser.db").display());
    init_db(&url);
    let callee = UdpPeer::bind();
    // A fresh port for each start: a SIGKILLed server's workers may hold
    // theirs a moment longer.
    let start = |mode: u8, interval: u32| {
        let port = free_udp_port();
        (Ser::start(&cfg(port, &url, mode, interval)), port)
    };

    // Write-through: in the table before the 200, so even SIGKILL of the
    // whole server loses nothing.
    let (ser, port) = start(1, 60);
    assert_eq!(
        register(port, "alice", callee.port(), 3600),
        Some(200),
        "{}",
        ser.log()
    );
    assert_eq!(rows(&url, "alice").len(), 1, "{}", ser.log());
    drop(ser); // SIGKILL to the process group
    let (ser, port) = start(1, 60);
    call(port, "alice", &callee).unwrap_or_else(|s| panic!("{s:?}\n{}", ser.log()));
    assert!(ser.log().contains("1 binding(s) loaded"), "{}", ser.log());
    drop(ser);

    // Write-back with a long interval: nothing written until shutdown,
    // which writes it.
    let (mut ser, port) = start(2, 60);
    assert_eq!(
        register(port, "bob", callee.port(), 3600),
        Some(200),
        "{}",
        ser.log()
    );
    assert!(rows(&url, "bob").is_empty());
    ser.stop();
    assert_eq!(rows(&url, "bob").len(), 1, "{}", ser.log());
    let (ser, port) = start(2, 60);
    call(port, "bob", &callee).unwrap_or_else(|s| panic!("{s:?}\n{}", ser.log()));
    call(port, "alice", &callee).unwrap_or_else(|s| panic!("{s:?}\n{}", ser.log()));
    drop(ser);

    // Write-back every second: a registration and its removal reach the
    // table without a shutdown.
    let (ser, port) = start(2, 1);
    assert_eq!(register(port, "carol", callee.port(), 3600), Some(200));
    assert_eq!(
        wait_rows(&url, "carol", 1, Duration::from_secs(5)).len(),
        1,
        "{}",
        ser.log()
    );
    assert_eq!(register(port, "carol", callee.port(), 0), Some(200));
    assert!(
        wait_rows(&url, "carol", 0, Duration::from_secs(5)).is_empty(),
        "{}",
        ser.log()
    );
    assert_eq!(call(port, "carol", &callee), Err(Some(404)));
}

/// Two servers on one database in mode 3: a user registered through A is
/// called through B, and unregistered through B is gone for A.
fn two_servers_share_registrations(url: &str) {
    init_db(url);
    let callee = UdpPeer::bind();
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let a = Ser::start(&cfg(pa, url, 3, 60));
    let b = Ser::start(&cfg(pb, url, 3, 60));
    let logs = || format!("A:\n{}\nB:\n{}", a.log(), b.log());
    assert_eq!(
        register(pa, "dave", callee.port(), 3600),
        Some(200),
        "{}",
        logs()
    );
    call(pb, "dave", &callee).unwrap_or_else(|s| panic!("{s:?}\n{}", logs()));
    assert_eq!(
        register(pb, "dave", callee.port(), 0),
        Some(200),
        "{}",
        logs()
    );
    assert_eq!(call(pa, "dave", &callee), Err(Some(404)), "{}", logs());
}

#[test]
fn db_only_servers_share_registrations_on_sqlite() {
    let _g = serial();
    let dir = TestDir::new();
    two_servers_share_registrations(&format!("sqlite://{}", dir.join("ser.db").display()));
}

#[test]
fn db_only_servers_share_registrations_on_mariadb_and_postgres() {
    let _g = serial();
    for kind in [DbKind::Mariadb, DbKind::Postgres] {
        let dir = TestDir::new();
        let server = DbServer::start(kind, dir.path());
        two_servers_share_registrations(&server.url());
    }
}

/// The database stops: database-only registrations get 500, write-through
/// ones still 200 (kept in memory, written once it is back), and both
/// servers keep running.
#[test]
fn a_database_that_goes_away_loses_no_write_through_registration() {
    let _g = serial();
    let dir = TestDir::new();
    let mut server = DbServer::start(DbKind::Mariadb, dir.path());
    let url = server.url();
    init_db(&url);
    let callee = UdpPeer::bind();
    let (p1, p3) = (free_udp_port(), free_udp_port());
    let mut through = Ser::start(&cfg(p1, &url, 1, 1));
    let mut only = Ser::start(&cfg(p3, &url, 3, 1));
    assert_eq!(
        register(p3, "erin", callee.port(), 3600),
        Some(200),
        "{}",
        only.log()
    );
    server.stop();
    let t0 = Instant::now();
    assert_eq!(
        register(p3, "erin", callee.port(), 3600),
        Some(500),
        "{}",
        only.log()
    );
    assert_eq!(
        register(p1, "frank", callee.port(), 3600),
        Some(200),
        "{}",
        through.log()
    );
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    call(p1, "frank", &callee).unwrap_or_else(|s| panic!("{s:?}\n{}", through.log()));
    server.restart();
    // Written by usrloc's process once the back-off lets it reconnect.
    assert_eq!(
        wait_rows(&url, "frank", 1, Duration::from_secs(20)).len(),
        1,
        "{}",
        through.log()
    );
    let end = Instant::now() + Duration::from_secs(15);
    while register(p3, "erin", callee.port(), 3600) != Some(200) {
        assert!(Instant::now() < end, "{}", only.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    call(p3, "erin", &callee).unwrap_or_else(|s| panic!("{s:?}\n{}", only.log()));
    assert!(through.is_running() && only.is_running());
}

#[test]
fn a_missing_table_or_bad_mode_is_refused_at_start() {
    let _g = serial();
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("empty.db").display());
    let port = free_udp_port();
    for mode in [1, 3] {
        let f = dir.write("ser.cfg", cfg(port, &url, mode, 60).as_bytes());
        let out = crate::common::server::run_bounded(
            std::process::Command::new(crate::common::ser_bin()).args([
                "-f",
                f.to_str().unwrap(),
                "-DD",
                "-E",
            ]),
            &dir,
            &format!("start{mode}"),
            Duration::from_secs(10),
        );
        assert_ne!(out.code(), Some(0), "{}", out.stderr);
        assert!(out.stderr.contains("serctl db init"), "{}", out.stderr);
    }
    let f = dir.write("bad.cfg", cfg(port, &url, 4, 60).as_bytes());
    let out = crate::common::server::check_config(&f);
    assert_ne!(out.code(), Some(0));
    assert!(out.stderr.contains("bad.cfg:"), "{}", out.stderr);
}

/// `serctl alias add` writes the `aliases` row and tells the running ser,
/// which resolves the alias at once (SER 0.9's serctl did it over the
/// FIFO); `alias rm` takes it back from both.
#[test]
fn serctl_alias_changes_reach_a_running_server() {
    let _g = serial();
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("ser.db").display());
    init_db(&url);
    let fifo = dir.join("fifo");
    let port = free_udp_port();
    let text = cfg(port, &url, 1, 60)
        .replace(
            "    if (!lookup(\"location\"))",
            "    lookup(\"aliases\");\n    if (!lookup(\"location\"))",
        )
        .replace(
            "children=2",
            &format!("children=2\nfifo=\"{}\"", fifo.display()),
        );
    let ser = Ser::start(&text);
    let callee = UdpPeer::bind();
    assert_eq!(
        register(port, "alice", callee.port(), 3600),
        Some(200),
        "{}",
        ser.log()
    );
    assert_eq!(call(port, "bob", &callee), Err(Some(404)));
    let serctl = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_serctl"))
            .args(args)
            .env("SER_DB_URL", &url)
            .env("SIP_DOMAIN", "127.0.0.1")
            .env("SER_FIFO", &fifo)
            .env_remove("SER_UNIXSOCK")
            .output()
            .expect("serctl");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}");
        err
    };
    let err = serctl(&["alias", "add", "bob", "sip:alice@127.0.0.1"]);
    assert!(err.is_empty(), "{err}");
    call(port, "bob", &callee).unwrap_or_else(|s| panic!("{s:?}\n{}", ser.log()));
    serctl(&["alias", "rm", "bob"]);
    assert_eq!(call(port, "bob", &callee), Err(Some(404)));
    drop(ser);
    // No server: the row alone, and a note that nobody was told.
    let err = serctl(&["alias", "add", "carol", "sip:alice@127.0.0.1"]);
    assert!(err.contains("no running ser"), "{err}");
}
