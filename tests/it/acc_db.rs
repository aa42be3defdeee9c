//! acc to SQL (SER 0.9's `db_flag`, `db_missed_flag`, `acc_db_request`)
//! through the real binary: sipp calls through ser, rows are read back
//! from SQLite, MariaDB and PostgreSQL; a database that is down loses
//! the rows, never the calls.

use crate::common::db::{DbKind, DbServer};
use crate::common::server::{check_config, Ser};
use crate::common::sipp::Sipp;
use crate::common::tmkit::tm_cfg;
use crate::common::{free_udp_port, serial, tests_path, TestDir};
use ser::db::{schema, Db, Row, Stmt, Value};
use std::time::{Duration, Instant};

fn driver(url: &str) -> &'static str {
    match url.split(':').next() {
        Some("mysql") => "mysql",
        Some("postgres") => "postgres",
        _ => "db_sqlite",
    }
}

/// INVITEs to `service` go to `uas`, others to `busy`; INVITEs carry both
/// db flags, BYEs are written by `acc_db_request`.
fn acc_db_cfg(port: u16, url: &str, uas: u16, busy: u16) -> String {
    tm_cfg(
        port,
        2,
        &format!(
            r#"loadmodule "/usr/local/lib/ser/modules/{driver}.so"
loadmodule "/usr/local/lib/ser/modules/acc.so"
modparam("acc", "db_url", "{url}")
modparam("acc", "db_flag", 1)
modparam("acc", "db_missed_flag", 2)"#,
            driver = driver(url)
        ),
        &format!(
            r#"route {{
    if (method == "INVITE") {{ setflag(1); setflag(2); }};
    if (method == "BYE") {{ acc_db_request("bye seen", "acc"); }};
    if (uri =~ "^sip:service@") {{
        if (!t_relay_to_udp("127.0.0.1", "{uas}")) {{ sl_reply_error(); }};
    }} else {{
        if (!t_relay_to_udp("127.0.0.1", "{busy}")) {{ sl_reply_error(); }};
    }};
}}"#
        ),
    )
}

const COLS: [&str; 10] = [
    "sip_method",
    "sip_status",
    "sip_from",
    "sip_to",
    "sip_callid",
    "from_uri",
    "to_uri",
    "username",
    "domain",
    "time",
];

/// The rows of `table` for `method`, waiting up to 5 s for `n` of them.
fn rows(url: &str, table: &str, method: &str, n: usize) -> Vec<Row> {
    let q = Stmt::select(table, &COLS)
        .where_eq(&["sip_method"])
        .build()
        .unwrap();
    let mut db = Db::from_url(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = db.query(&q, &[Value::Str(method.into())]).expect("select");
        if r.len() >= n || Instant::now() >= deadline {
            db.close();
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn col<'a>(r: &'a Row, name: &str) -> &'a str {
    let i = COLS.iter().position(|c| *c == name).unwrap();
    r.str(i).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn answered_call(port: u16, dir: &TestDir) {
    Sipp::builtin("uac")
        .to(port)
        .calls(1)
        .timeout(Duration::from_secs(10))
        .run(dir)
        .assert_all_ok(1);
}

fn busy_call(port: u16, dir: &TestDir) {
    Sipp::scenario(&tests_path("scenarios/uac_expect_486.xml"))
        .to(port)
        .calls(1)
        .arg("-s")
        .arg("busy")
        .timeout(Duration::from_secs(10))
        .run(dir)
        .assert_all_ok(1);
}

/// An answered call gives one `acc` row for the INVITE (and the BYE's
/// from `acc_db_request`, same Call-ID); a busy callee one `missed_calls`
/// row; then, with the database stopped by `stop`, both calls still
/// complete and ser keeps running.
fn acc_rows_on(url: &str, stop: impl FnOnce()) {
    let mut db = Db::from_url(url).expect("url");
    schema::create(&mut db).expect("schema");
    db.close();
    let dir = TestDir::new();
    let uas = Sipp::builtin("uas").timeout(Duration::from_secs(30));
    let busy =
        Sipp::scenario(&tests_path("scenarios/uas_486.xml")).timeout(Duration::from_secs(30));
    let port = free_udp_port();
    let mut ser = Ser::start(&acc_db_cfg(port, url, uas.port(), busy.port()));
    let callee = uas.spawn(&dir);
    let busy_callee = busy.spawn(&dir);

    answered_call(port, &dir);
    let inv = rows(url, "acc", "INVITE", 1);
    assert_eq!(inv.len(), 1, "{url}: {inv:?}\n{}", ser.log());
    let r = &inv[0];
    assert_eq!(col(r, "sip_status"), "200");
    assert!(col(r, "sip_from").contains("sip:sipp@"), "{r:?}");
    assert!(col(r, "sip_to").contains("sip:service@"), "{r:?}");
    assert!(col(r, "to_uri").starts_with("sip:service@"), "{r:?}");
    assert!(col(r, "from_uri").starts_with("sip:sipp@"), "{r:?}");
    assert_eq!(col(r, "username"), "sipp");
    assert!(r.time(COLS.len() - 1).is_ok(), "{r:?}");
    let callid = col(r, "sip_callid").to_string();
    assert!(!callid.is_empty() && callid != "n/a");
    let bye = rows(url, "acc", "BYE", 1);
    assert_eq!(bye.len(), 1, "{url}: {bye:?}\n{}", ser.log());
    assert_eq!(col(&bye[0], "sip_status"), "bye seen");
    assert_eq!(col(&bye[0], "sip_callid"), callid);
    assert!(rows(url, "missed_calls", "INVITE", 0).is_empty());

    busy_call(port, &dir);
    let missed = rows(url, "missed_calls", "INVITE", 1);
    assert_eq!(missed.len(), 1, "{url}: {missed:?}\n{}", ser.log());
    let m = &missed[0];
    assert_eq!(col(m, "sip_status"), "486 Busy Here");
    // missed_calls names the callee: the request URI's user.
    assert_eq!(col(m, "username"), "busy");
    assert!(col(m, "sip_from").contains("sip:caller@"), "{m:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rows(url, "missed_calls", "INVITE", 0).len(), 1);
    assert_eq!(
        rows(url, "acc", "INVITE", 0).len(),
        1,
        "486 is not answered"
    );

    stop();
    let t0 = Instant::now();
    answered_call(port, &dir);
    busy_call(port, &dir);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "calls held by the database: {:?}",
        t0.elapsed()
    );
    assert!(ser.is_running(), "{}", ser.log());
    assert!(ser.log().contains("row lost"), "{}", ser.log());
    callee.stop();
    busy_callee.stop();
}

#[test]
fn acc_db_rows_on_sqlite() {
    let _g = serial();
    let dir = TestDir::new();
    let path = dir.join("ser.db");
    let url = format!("sqlite://{}", path.display());
    // SQLite has no server to stop: its tables go instead, so every
    // insert fails as it would on a broken database.
    acc_rows_on(&url, || {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE acc; DROP TABLE missed_calls;")
            .unwrap();
    });
}

#[test]
fn acc_db_rows_on_mariadb_and_postgres() {
    let _g = serial();
    for kind in [DbKind::Mariadb, DbKind::Postgres] {
        let dir = TestDir::new();
        let mut server = DbServer::start(kind, dir.path());
        let url = server.url();
        acc_rows_on(&url, || server.stop());
    }
}

#[test]
fn acc_db_bad_settings_are_refused_at_load() {
    let _g = serial();
    let dir = TestDir::new();
    for (bad, needle) in [
        (r#"modparam("acc", "db_url", "nosuch://x")"#, "db_url"),
        (
            r#"modparam("acc", "db_table_acc", "acc; drop table x")"#,
            "db_table_acc",
        ),
        (
            r#"modparam("acc", "acc_sip_to_column", "to-col")"#,
            "acc_sip_to_column",
        ),
        (r#"modparam("acc", "radius_flag", 1)"#, "radius_flag"),
    ] {
        let cfg = format!(
            "loadmodule \"/usr/local/lib/ser/modules/sl.so\"\n\
loadmodule \"/usr/local/lib/ser/modules/acc.so\"\n{bad}\nroute {{ sl_send_reply(\"200\", \"ok\"); }}\n"
        );
        let file = dir.write("ser.cfg", cfg.as_bytes());
        let r = check_config(&file);
        assert_ne!(r.code(), Some(0), "{bad}: {r:?}");
        assert!(
            r.stderr.contains(needle) && r.stderr.contains("ser.cfg:3"),
            "{bad}: {}",
            r.stderr
        );
    }
    let cfg = "loadmodule \"/usr/local/lib/ser/modules/sl.so\"\n\
loadmodule \"/usr/local/lib/ser/modules/acc.so\"\n\
route { acc_db_request(\"x\", \"acc x\"); }\n";
    let file = dir.write("ser.cfg", cfg.as_bytes());
    let r = check_config(&file);
    assert_ne!(r.code(), Some(0), "{r:?}");
    assert!(
        r.stderr.contains("acc_db_request") && r.stderr.contains("ser.cfg:3"),
        "{}",
        r.stderr
    );
}
