//! The database layer (`ser::db`) against real servers: SQLite in a temp
//! file, MariaDB and PostgreSQL started by the test on private data
//! directories and loopback ports (`common::db`). For each backend: SER's
//! schema, a subscriber row in and out with bound values, an injection
//! string that matches nothing and breaks nothing, statements prepared
//! once, a connection opened afresh in a forked child (no thread there),
//! and — for the servers — a hung database and a stopped one giving typed
//! errors within the time bound, then working again.

use std::time::{Duration, Instant};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;
use ser::db::{schema, time, Db, DbError, DbOptions, Stmt, Value};

use crate::common::db::{DbKind, DbServer};
use crate::common::TestDir;

/// What a call may take at most while the database is hung: the
/// statement timeout plus dropping the connection, with slack for a
/// loaded machine.
fn hung_bound() -> Duration {
    DbOptions::default().io_timeout + Duration::from_millis(1500)
}

struct Subscriber {
    ins: Stmt,
    sel: Stmt,
    upd: Stmt,
    del: Stmt,
    all: Stmt,
}

impl Subscriber {
    fn new() -> Subscriber {
        let key = ["username", "domain"];
        Subscriber {
            ins: Stmt::insert(
                "subscriber",
                &[
                    "phplib_id",
                    "username",
                    "domain",
                    "password",
                    "email_address",
                    "ha1",
                    "ha1b",
                    "datetime_created",
                ],
            )
            .unwrap(),
            sel: Stmt::select(
                "subscriber",
                &[
                    "password",
                    "ha1",
                    "ha1b",
                    "datetime_created",
                    "flag",
                    "rpid",
                ],
            )
            .where_eq(&key)
            .build()
            .unwrap(),
            upd: Stmt::update("subscriber", &["password", "ha1"])
                .where_eq(&key)
                .build()
                .unwrap(),
            del: Stmt::delete("subscriber").where_eq(&key).build().unwrap(),
            all: Stmt::select("subscriber", &["username"]).build().unwrap(),
        }
    }

    fn add(&self, db: &mut Db, user: &str, created: i64) -> Result<u64, DbError> {
        db.exec(
            &self.ins,
            &[
                format!("id-{user}").into(),
                user.into(),
                "example.com".into(),
                "secret".into(),
                format!("{user}@example.com").into(),
                "ha1-of-secret".into(),
                "ha1b-of-secret".into(),
                Value::Time(created),
            ],
        )
    }
}

fn key(user: &str) -> [Value; 2] {
    [user.into(), "example.com".into()]
}

/// Schema, insert/select/update/delete with bound values, SQL injection,
/// the statement cache, typed errors. Leaves `alice` and `bob` in.
fn serves_ser_tables(db: &mut Db) {
    schema::create(db).unwrap();
    schema::create(db).expect("creating the schema again is harmless");
    for t in &schema::TABLES[1..] {
        schema::check_version(db, t.name, t.version).unwrap();
    }
    let s = Subscriber::new();
    let created = 1_117_315_935;
    assert_eq!(s.add(db, "alice", created).unwrap(), 1);
    assert_eq!(s.add(db, "bob", created + 1).unwrap(), 1);
    assert!(matches!(
        s.add(db, "alice", created),
        Err(DbError::Duplicate { .. })
    ));

    let row = db.query_one(&s.sel, &key("alice")).unwrap().unwrap();
    assert_eq!(row.str(0).unwrap(), "secret");
    assert_eq!(row.str(1).unwrap(), "ha1-of-secret");
    assert_eq!(row.str(2).unwrap(), "ha1b-of-secret");
    assert_eq!(row.time(3).unwrap(), created);
    assert_eq!(row.str(4).unwrap(), "o");
    assert_eq!(row.opt_str(5).unwrap(), None);

    let upd = |db: &mut Db, pw: &str, user: &str| {
        let [u, d] = key(user);
        db.exec(&s.upd, &[pw.into(), format!("ha1-of-{pw}").into(), u, d])
    };
    assert_eq!(upd(db, "new", "alice").unwrap(), 1);
    assert_eq!(upd(db, "new", "alice").unwrap(), 1, "matched, not changed");
    let row = db.query_one(&s.sel, &key("alice")).unwrap().unwrap();
    assert_eq!(row.str(0).unwrap(), "new");

    // SQL injection through a bound value: matches nothing, changes
    // nothing, and is stored verbatim when inserted.
    let evil = "' OR '1'='1";
    assert!(db.query(&s.sel, &key(evil)).unwrap().is_empty());
    let [eu, ed] = key(evil);
    let evil_or = [eu.clone(), "x' OR '1'='1".into()];
    assert!(db.query(&s.sel, &evil_or).unwrap().is_empty());
    assert_eq!(upd(db, "pwned", evil).unwrap(), 0);
    assert_eq!(db.exec(&s.del, &[eu.clone(), ed.clone()]).unwrap(), 0);
    let drop_it = "x'; DROP TABLE subscriber; --";
    assert!(db.query(&s.sel, &key(drop_it)).unwrap().is_empty());
    assert_eq!(db.query(&s.all, &[]).unwrap().len(), 2);
    assert_eq!(s.add(db, evil, created).unwrap(), 1);
    assert_eq!(
        db.query(&s.sel, &[eu.clone(), ed.clone()]).unwrap().len(),
        1
    );
    assert_eq!(db.exec(&s.del, &[eu, ed]).unwrap(), 1);
    let names: Vec<String> = db
        .query(&s.all, &[])
        .unwrap()
        .iter()
        .map(|r| r.str(0).unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"alice".into()) && names.contains(&"bob".into()));

    // Prepared once per connection, however often it runs.
    let before = db.stats();
    for _ in 0..20 {
        assert_eq!(db.query(&s.sel, &key("bob")).unwrap().len(), 1);
    }
    assert_eq!(db.stats().prepares, before.prepares);
    assert_eq!(db.stats().connects, before.connects);

    // Delete, and the row is gone.
    s.add(db, "carol", created).unwrap();
    assert_eq!(db.exec(&s.del, &key("carol")).unwrap(), 1);
    assert!(db.query(&s.sel, &key("carol")).unwrap().is_empty());

    // usrloc's columns: SER's defaults, times, upsert.
    let up = Stmt::upsert(
        "location",
        &["username", "domain", "contact"],
        &["expires", "q", "cseq"],
    )
    .unwrap();
    let loc = Stmt::select(
        "location",
        &["expires", "q", "cseq", "callid", "user_agent"],
    )
    .where_eq(&["username"])
    .build()
    .unwrap();
    let k = ["alice".into(), "".into(), "sip:alice@192.0.2.1".into()];
    for cseq in [1, 2] {
        let mut v = k.to_vec();
        v.extend([
            Value::Time(1_700_000_000 + cseq),
            Value::Float(0.5),
            cseq.into(),
        ]);
        db.exec(&up, &v).unwrap();
    }
    let rows = db.query(&loc, &["alice".into()]).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].time(0).unwrap(), 1_700_000_002);
    assert_eq!(rows[0].float(1).unwrap(), 0.5);
    assert_eq!(rows[0].int(2).unwrap(), 2);
    assert_eq!(rows[0].str(3).unwrap(), "Default-Call-ID");
    let ins = Stmt::insert("aliases", &["username", "contact"]).unwrap();
    db.exec(&ins, &["a1".into(), "sip:alice@example.com".into()])
        .unwrap();
    let exp = Stmt::select("aliases", &["expires"]).build().unwrap();
    let row = db.query_one(&exp, &[]).unwrap().unwrap();
    assert_eq!(row.time(0).unwrap(), time::forever_secs());

    // acc's columns, including `time` and `timestamp`.
    let acc = Stmt::insert(
        "acc",
        &["sip_method", "sip_status", "sip_callid", "username", "time"],
    )
    .unwrap();
    db.exec(
        &acc,
        &[
            "INVITE".into(),
            "200".into(),
            "c1@h".into(),
            "alice".into(),
            Value::Time(1_700_000_000),
        ],
    )
    .unwrap();
    let acc_sel = Stmt::select("acc", &["time", "timestamp", "caller_UUID"])
        .where_eq(&["sip_callid"])
        .build()
        .unwrap();
    let row = db.query_one(&acc_sel, &["c1@h".into()]).unwrap().unwrap();
    assert_eq!(row.time(0).unwrap(), 1_700_000_000);
    assert!(row.time(1).unwrap() > 1_700_000_000);
    assert_eq!(row.str(2).unwrap(), "");

    // What the server refuses is typed, and the connection stays.
    let connects = db.stats().connects;
    let bad = Stmt::select("subscriber", &["no_such_column"])
        .build()
        .unwrap();
    let e = db.query(&bad, &[]).unwrap_err();
    assert!(matches!(e, DbError::Refused { .. }), "{e:?}");
    assert!(!e.is_unavailable());
    assert_eq!(
        db.query(&s.sel, &[Value::from("x")]),
        Err(DbError::Params {
            expected: 2,
            given: 1
        })
    );
    db.query(&s.sel, &key("bob")).unwrap();
    assert_eq!(db.stats().connects, connects);
}

/// A handle used here, then in a forked child: the child opens its own
/// connection (no thread appears), and the parent's is left intact.
fn works_in_a_forked_child(db: &mut Db) {
    let s = Subscriber::new();
    assert_eq!(db.query(&s.sel, &key("bob")).unwrap().len(), 1);
    assert!(db.is_connected());
    let connects = db.stats().connects;
    // SAFETY: the child touches only the database handle and its own
    // allocations (glibc's fork leaves malloc usable in the child), writes
    // nothing to the test harness's output, and leaves with _exit, so no
    // state shared with the parent's other threads is used or torn down.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        ForkResult::Child => {
            let code = (|| -> i32 {
                if db.is_connected() {
                    return 10; // the parent's connection counted as ours
                }
                match db.query(&s.sel, &key("bob")) {
                    Ok(rows) if rows.len() == 1 => {}
                    _ => return 11,
                }
                if !db.is_connected() || db.stats().connects != connects + 1 {
                    return 12; // not one fresh connection
                }
                let threads = std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count);
                if threads != 1 {
                    return 13; // a runtime or client started a thread
                }
                0
            })();
            // SAFETY: ends the child at once, running no destructor.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).expect("waitpid");
            assert_eq!(
                status,
                WaitStatus::Exited(child, 0),
                "child: 10 inherited connection used, 11 query failed, \
                 12 no fresh connection, 13 extra thread"
            );
            // The child said nothing on our connection: it still works
            // without reconnecting.
            assert_eq!(db.query(&s.sel, &key("bob")).unwrap().len(), 1);
            assert_eq!(db.stats().connects, connects);
        }
    }
}

/// Retries `f` until it succeeds (the back-off passes), at most `limit`.
fn until_ok(db: &mut Db, limit: Duration) -> Duration {
    let s = Subscriber::new();
    let t = Instant::now();
    loop {
        match db.query(&s.sel, &key("bob")) {
            Ok(rows) => {
                assert_eq!(rows.len(), 1);
                return t.elapsed();
            }
            Err(e) => {
                assert!(e.is_unavailable(), "{e:?}");
                assert!(t.elapsed() < limit, "still failing after {limit:?}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A hung server and a stopped one: typed errors within the bound, then
/// the same handle works again once the server is back.
fn survives_an_outage(srv: &mut DbServer, db: &mut Db) {
    let s = Subscriber::new();
    assert_eq!(db.query(&s.sel, &key("bob")).unwrap().len(), 1);
    let connects = db.stats().connects;

    // Hung: connections stay open, nothing answers.
    srv.freeze();
    let t = Instant::now();
    let e = db.query(&s.sel, &key("bob")).unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, DbError::Timeout { .. }), "{e:?}");
    assert!(took < hung_bound(), "{took:?}");
    // Backing off: the next calls fail at once, without waiting.
    let t = Instant::now();
    let e = s.add(db, "dave", 0).unwrap_err();
    assert!(matches!(e, DbError::Unavailable { .. }), "{e:?}");
    // (Far below the 2 s a call to the hung server took; loose enough
    // for a loaded machine.)
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    srv.thaw();
    let back = until_ok(db, Duration::from_secs(15));
    eprintln!(
        "{:?}: hung call failed after {took:?}, answered again {back:?} after the thaw",
        srv.kind()
    );
    assert!(db.stats().connects > connects);

    // Stopped: the server closes our connection and refuses new ones.
    srv.stop();
    let t = Instant::now();
    let e = db.query(&s.sel, &key("bob")).unwrap_err();
    let took = t.elapsed();
    assert!(e.is_unavailable(), "{e:?}");
    assert!(took < hung_bound(), "{took:?}");
    let e = s.add(db, "dave", 0).unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    let connects = db.stats().connects;
    srv.restart();
    let waited = until_ok(db, Duration::from_secs(15));
    eprintln!(
        "{:?}: stopped: {e} after {took:?}; answered again {waited:?} after the restart",
        srv.kind()
    );
    assert!(db.stats().connects > connects);
    // Writes work again too; the data survived the restart.
    assert_eq!(s.add(db, "dave", 0).unwrap(), 1);
    assert_eq!(db.query(&s.all, &[]).unwrap().len(), 3, "after {waited:?}");
}

#[test]
fn sqlite_serves_ser_tables_and_forked_children() {
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("ser.db").display());
    let mut db = Db::from_url(&url).unwrap();
    serves_ser_tables(&mut db);
    works_in_a_forked_child(&mut db);
    local_time_like_ser(&mut db);
}

/// Datetimes are stored as the local civil time, as SER 0.9 did: in a
/// child with TZ=Europe/Prague, SER's "forever" (21:32:15 local, summer
/// time) is an instant two hours before the same clock time in UTC, and
/// its stored text is the local clock time.
fn local_time_like_ser(db: &mut Db) {
    if !std::path::Path::new("/usr/share/zoneinfo/Europe/Prague").exists() {
        eprintln!("no tzdata: local-time check skipped");
        return;
    }
    let set = Stmt::update("subscriber", &["greeting"])
        .where_eq(&["username", "domain"])
        .build()
        .unwrap();
    let get = Stmt::select("subscriber", &["greeting"])
        .where_eq(&["username", "domain"])
        .build()
        .unwrap();
    // SAFETY: as in works_in_a_forked_child; the child changes its own
    // environment only, single-threaded as it is.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        ForkResult::Child => {
            std::env::set_var("TZ", "Europe/Prague");
            // SAFETY: re-reads TZ; no other thread exists in the child.
            unsafe { tzset() };
            let code = (|| -> i32 {
                let forever = time::forever_secs();
                if forever != 1_590_701_535 - 7200 {
                    return 20;
                }
                let [u, d] = key("bob");
                if db
                    .exec(&set, &[Value::Time(forever), u.clone(), d.clone()])
                    .ok()
                    != Some(1)
                {
                    return 21;
                }
                match db.query_one(&get, &[u, d]) {
                    Ok(Some(row)) if row.str(0).ok() == Some("2020-05-28 21:32:15") => 0,
                    _ => 22,
                }
            })();
            // SAFETY: ends the child at once, running no destructor.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).expect("waitpid");
            assert_eq!(
                status,
                WaitStatus::Exited(child, 0),
                "20 wrong instant, 21 update failed, 22 wrong stored text"
            );
        }
    }
}

extern "C" {
    /// C library: re-read TZ (not bound by the libc crate on this target).
    fn tzset();
}

fn server_backend(kind: DbKind) {
    // A server start loads the machine and the outage checks time calls.
    let _serial = crate::common::serial();
    let dir = TestDir::new();
    let t = Instant::now();
    let mut srv = DbServer::start(kind, dir.path());
    eprintln!("{kind:?} started in {:?}", t.elapsed());
    let mut db = Db::from_url(&srv.url()).unwrap();
    serves_ser_tables(&mut db);
    works_in_a_forked_child(&mut db);
    survives_an_outage(&mut srv, &mut db);
    if kind == DbKind::Mariadb {
        reads_a_ser_09_database(&srv);
    }
}

#[test]
fn mariadb_serves_ser_tables_and_survives_an_outage() {
    server_backend(DbKind::Mariadb);
}

#[test]
fn postgres_serves_ser_tables_and_survives_an_outage() {
    server_backend(DbKind::Postgres);
}

/// A database laid out as SER 0.9's `ser_mysql.sh` left it (MyISAM, zero
/// dates, its admin row, an alias with the "forever" default), read and
/// written through the layer without any change to it. `timestamp(14)`
/// appears as MySQL 4.1 and later show it (the first timestamp column set
/// on insert and update); today's servers refuse the old spelling.
fn reads_a_ser_09_database(srv: &DbServer) {
    srv.admin_sql(
        "CREATE DATABASE ser09; GRANT ALL PRIVILEGES ON ser09.* TO 'ser'@'%'; USE ser09; \
         SET SESSION sql_mode = ''; \
         CREATE TABLE version (table_name varchar(64) NOT NULL, \
           table_version smallint(5) DEFAULT '0' NOT NULL) ENGINE=MyISAM; \
         INSERT INTO version VALUES ('subscriber', '5'); \
         INSERT INTO version VALUES ('aliases', '6'); \
         CREATE TABLE subscriber ( \
           phplib_id varchar(32) NOT NULL default '', username varchar(64) NOT NULL default '', \
           domain varchar(128) NOT NULL default '', password varchar(25) NOT NULL default '', \
           first_name varchar(25) NOT NULL default '', last_name varchar(45) NOT NULL default '', \
           phone varchar(15) NOT NULL default '', email_address varchar(50) NOT NULL default '', \
           datetime_created datetime NOT NULL default '0000-00-00 00:00:00', \
           datetime_modified datetime NOT NULL default '0000-00-00 00:00:00', \
           confirmation varchar(64) NOT NULL default '', flag char(1) NOT NULL default 'o', \
           sendnotification varchar(50) NOT NULL default '', greeting varchar(50) NOT NULL default '', \
           ha1 varchar(128) NOT NULL default '', ha1b varchar(128) NOT NULL default '', \
           allow_find char(1) NOT NULL default '0', timezone varchar(128) default NULL, \
           rpid varchar(128) default NULL, domn int(10) default NULL, uuid varchar(64) default NULL, \
           UNIQUE KEY phplib_id (phplib_id), PRIMARY KEY (username, domain), KEY user_2 (username) \
         ) ENGINE=MyISAM; \
         INSERT INTO subscriber (username, password, first_name, last_name, phone, \
           email_address, datetime_created, datetime_modified, confirmation, flag, \
           sendnotification, greeting, ha1, domain, ha1b, phplib_id) VALUES ('admin', 'heslo', \
           'Initial', 'Admin', '123', 'root@localhost', '2002-09-04 19:37:45', \
           '0000-00-00 00:00:00', '57DaSIPuCm52UNe54LF545750cfdL48OMZfroM53', 'o', '', '', \
           '4f2a3f5e0c1a8b9d7e6f5a4b3c2d1e0f', 'iptel.org', 'b1e2d3c4b5a6f7e8d9c0b1a2f3e4d5c6', \
           '65e397cda0aa8e3202ea22cbd350e4e9'); \
         CREATE TABLE aliases ( \
           username varchar(64) NOT NULL default '', domain varchar(128) NOT NULL default '', \
           contact varchar(255) NOT NULL default '', received varchar(255) default NULL, \
           expires datetime NOT NULL default '2020-05-28 21:32:15', \
           q float(10,2) NOT NULL default '1.0', \
           callid varchar(255) NOT NULL default 'Default-Call-ID', \
           cseq int(11) NOT NULL default '42', \
           last_modified timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP \
             ON UPDATE CURRENT_TIMESTAMP, \
           replicate int(10) unsigned NOT NULL default '0', \
           state tinyint(1) unsigned NOT NULL default '0', flags int(11) NOT NULL default '0', \
           user_agent varchar(50) NOT NULL default '', \
           PRIMARY KEY(username, domain, contact), INDEX aliases_contact (contact) \
         ) ENGINE=MyISAM; \
         INSERT INTO aliases (username, domain, contact) \
           VALUES ('4711', 'iptel.org', 'sip:admin@iptel.org');",
    );
    let url = srv.url_for("ser09");
    let mut db = Db::from_url(&url).unwrap();
    schema::check_version(&mut db, "subscriber", schema::SUBSCRIBER.version).unwrap();
    schema::check_version(&mut db, "aliases", schema::ALIASES.version).unwrap();
    let sel = Stmt::select(
        "subscriber",
        &[
            "ha1",
            "ha1b",
            "password",
            "datetime_created",
            "datetime_modified",
            "rpid",
        ],
    )
    .where_eq(&["username", "domain"])
    .build()
    .unwrap();
    let row = db
        .query_one(&sel, &["admin".into(), "iptel.org".into()])
        .unwrap()
        .expect("SER's admin row");
    assert_eq!(row.str(0).unwrap(), "4f2a3f5e0c1a8b9d7e6f5a4b3c2d1e0f");
    assert_eq!(row.str(1).unwrap(), "b1e2d3c4b5a6f7e8d9c0b1a2f3e4d5c6");
    assert_eq!(row.str(2).unwrap(), "heslo");
    let created = ser::os::time::local_secs(&ser::os::time::CivilTime {
        year: 2002,
        month: 9,
        day: 4,
        hour: 19,
        minute: 37,
        second: 45,
    })
    .unwrap();
    assert_eq!(row.time(3).unwrap(), created);
    assert_eq!(
        row.opt_time(4).unwrap(),
        None,
        "MySQL's zero date reads as NULL"
    );
    assert_eq!(row.opt_str(5).unwrap(), None);
    let alias = Stmt::select("aliases", &["username", "expires", "q", "cseq", "callid"])
        .where_eq(&["contact"])
        .build()
        .unwrap();
    let row = db
        .query_one(&alias, &["sip:admin@iptel.org".into()])
        .unwrap()
        .unwrap();
    assert_eq!(row.str(0).unwrap(), "4711");
    assert_eq!(row.time(1).unwrap(), time::forever_secs());
    assert_eq!(row.float(2).unwrap(), 1.0);
    assert_eq!(row.int(3).unwrap(), 42);
    assert_eq!(row.str(4).unwrap(), "Default-Call-ID");
    // Written through the layer, read back by the same 0.9 columns.
    let up = Stmt::upsert(
        "aliases",
        &["username", "domain", "contact"],
        &["expires", "cseq"],
    )
    .unwrap();
    db.exec(
        &up,
        &[
            "4711".into(),
            "iptel.org".into(),
            "sip:admin@iptel.org".into(),
            Value::Time(1_700_000_000),
            43.into(),
        ],
    )
    .unwrap();
    let row = db
        .query_one(&alias, &["sip:admin@iptel.org".into()])
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.time(1).unwrap(), row.int(3).unwrap()),
        (1_700_000_000, 43)
    );
}
