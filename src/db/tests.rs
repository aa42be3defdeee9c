//! The handle against SQLite on a temporary file: schema, bound values,
//! statement cache, typed errors, back-off. The server backends run the
//! same checks in `tests/it/db.rs`.

use std::time::Duration;

use super::*;

use super::scratch::TempDir;

fn ser_db(dir: &TempDir) -> Db {
    let mut db = Db::new(dir.url());
    schema::create(&mut db).unwrap();
    db
}

fn subscriber_stmts() -> (Stmt, Stmt, Stmt, Stmt) {
    let ins = Stmt::insert(
        "subscriber",
        &[
            "username",
            "domain",
            "password",
            "ha1",
            "datetime_created",
            "phplib_id",
        ],
    )
    .unwrap();
    let sel = Stmt::select(
        "subscriber",
        &["password", "ha1", "datetime_created", "flag"],
    )
    .where_eq(&["username", "domain"])
    .build()
    .unwrap();
    let upd = Stmt::update("subscriber", &["password"])
        .where_eq(&["username", "domain"])
        .build()
        .unwrap();
    let del = Stmt::delete("subscriber")
        .where_eq(&["username", "domain"])
        .build()
        .unwrap();
    (ins, sel, upd, del)
}

#[test]
fn subscriber_rows_go_in_and_out_with_bound_values() {
    let dir = TempDir::new();
    let mut db = ser_db(&dir);
    let (ins, sel, upd, del) = subscriber_stmts();
    let created = 1_117_315_935; // 2005-05-28, whole seconds
    let n = db
        .exec(
            &ins,
            &[
                "alice".into(),
                "example.com".into(),
                "secret".into(),
                "0123456789abcdef".into(),
                Value::Time(created),
                "id-alice".into(),
            ],
        )
        .unwrap();
    assert_eq!(n, 1);
    let key = [Value::from("alice"), Value::from("example.com")];
    let row = db.query_one(&sel, &key).unwrap().unwrap();
    assert_eq!(row.str(0).unwrap(), "secret");
    assert_eq!(row.str(1).unwrap(), "0123456789abcdef");
    assert_eq!(row.time(2).unwrap(), created);
    assert_eq!(row.str(3).unwrap(), "o", "SER's default flag");
    assert_eq!(
        db.exec(&upd, &["new".into(), key[0].clone(), key[1].clone()])
            .unwrap(),
        1
    );
    // An update that changes nothing still counts the row it matched.
    assert_eq!(
        db.exec(&upd, &["new".into(), key[0].clone(), key[1].clone()])
            .unwrap(),
        1
    );
    assert_eq!(
        db.query_one(&sel, &key).unwrap().unwrap().str(0).unwrap(),
        "new"
    );
    assert_eq!(db.exec(&del, &key).unwrap(), 1);
    assert_eq!(db.query(&sel, &key).unwrap(), vec![]);
}

#[test]
fn an_injection_string_is_only_a_value() {
    let dir = TempDir::new();
    let mut db = ser_db(&dir);
    let (ins, sel, upd, del) = subscriber_stmts();
    for user in ["alice", "bob"] {
        let vals = [
            user.into(),
            "d".into(),
            "pw".into(),
            "h".into(),
            Value::Time(0),
            user.into(),
        ];
        db.exec(&ins, &vals).unwrap();
    }
    let evil = Value::from("' OR '1'='1");
    let evil_key = [evil.clone(), Value::from("d")];
    assert!(db.query(&sel, &evil_key).unwrap().is_empty());
    assert_eq!(
        db.exec(&upd, &["x".into(), evil.clone(), "d".into()])
            .unwrap(),
        0
    );
    assert_eq!(db.exec(&del, &evil_key).unwrap(), 0);
    let evil2 = Value::from("x'; DROP TABLE subscriber; --");
    assert!(db
        .query(&sel, &[evil2.clone(), "d".into()])
        .unwrap()
        .is_empty());
    // Stored as is, and found only by itself.
    let vals = [
        evil.clone(),
        "d".into(),
        "pw".into(),
        "h".into(),
        Value::Time(0),
        evil.clone(),
    ];
    db.exec(&ins, &vals).unwrap();
    assert_eq!(db.query(&sel, &evil_key).unwrap().len(), 1);
    let all = Stmt::select("subscriber", &["username"]).build().unwrap();
    assert_eq!(
        db.query(&all, &[]).unwrap().len(),
        3,
        "nothing dropped or changed"
    );
}

#[test]
fn statements_are_prepared_once_per_connection() {
    let dir = TempDir::new();
    let mut db = ser_db(&dir);
    let (ins, sel, _, _) = subscriber_stmts();
    let before = db.stats().prepares;
    for i in 0..50 {
        let user = format!("u{i}");
        let vals = [
            user.as_str().into(),
            "d".into(),
            "p".into(),
            "h".into(),
            Value::Time(i),
            user.as_str().into(),
        ];
        db.exec(&ins, &vals).unwrap();
        assert_eq!(db.query(&sel, &[user.into(), "d".into()]).unwrap().len(), 1);
    }
    assert_eq!(db.stats().prepares - before, 2);
    assert_eq!(db.stats().connects, 1);
}

#[test]
fn wrong_value_counts_and_duplicates_are_typed() {
    let dir = TempDir::new();
    let mut db = ser_db(&dir);
    let (ins, sel, _, _) = subscriber_stmts();
    assert_eq!(
        db.query(&sel, &["only one".into()]),
        Err(DbError::Params {
            expected: 2,
            given: 1
        })
    );
    let vals = [
        "a".into(),
        "d".into(),
        "p".into(),
        "h".into(),
        Value::Time(0),
        "a".into(),
    ];
    db.exec(&ins, &vals).unwrap();
    assert!(matches!(
        db.exec(&ins, &vals),
        Err(DbError::Duplicate { .. })
    ));
    let bad = Stmt::select("no_such_table", &["x"]).build().unwrap();
    let e = db.query(&bad, &[]).unwrap_err();
    assert!(matches!(e, DbError::Refused { .. }), "{e:?}");
    assert!(!e.is_unavailable());
    // The connection survived all of that.
    assert_eq!(db.stats().connects, 1);
}

#[test]
fn times_round_trip_and_sers_forever_reads_back() {
    let dir = TempDir::new();
    let mut db = ser_db(&dir);
    let ins = Stmt::insert("location", &["username", "contact", "expires"]).unwrap();
    let sel = Stmt::select(
        "location",
        &["expires", "q", "cseq", "callid", "last_modified"],
    )
    .where_eq(&["username"])
    .build()
    .unwrap();
    let t = 1_700_000_123;
    db.exec(&ins, &["a".into(), "sip:a@h".into(), Value::Time(t)])
        .unwrap();
    let row = db.query_one(&sel, &["a".into()]).unwrap().unwrap();
    assert_eq!(row.time(0).unwrap(), t);
    assert_eq!(row.float(1).unwrap(), 1.0);
    assert_eq!(row.int(2).unwrap(), 42);
    assert_eq!(row.str(3).unwrap(), "Default-Call-ID");
    let stamped = row.time(4).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (stamped - now).abs() < 5,
        "last_modified {stamped} vs now {now}"
    );
    // A binding written without an expiry gets SER's "forever".
    let ins2 = Stmt::insert("aliases", &["username", "contact"]).unwrap();
    db.exec(&ins2, &["b".into(), "sip:b@h".into()]).unwrap();
    let sel2 = Stmt::select("aliases", &["expires"]).build().unwrap();
    let row = db.query_one(&sel2, &[]).unwrap().unwrap();
    assert_eq!(row.time(0).unwrap(), time::forever_secs());
}

#[test]
fn schema_is_versioned_and_creating_it_twice_is_harmless() {
    let dir = TempDir::new();
    let mut db = ser_db(&dir);
    schema::create(&mut db).unwrap();
    for t in &schema::TABLES[1..] {
        schema::check_version(&mut db, t.name, t.version).unwrap();
    }
    assert_eq!(schema::version(&mut db, "location").unwrap(), Some(6));
    assert_eq!(
        schema::check_version(&mut db, "subscriber", 6),
        Err(DbError::Version {
            table: "subscriber".into(),
            expected: 6,
            found: Some(5)
        })
    );
    assert!(matches!(
        schema::check_version(&mut db, "pending", 4),
        Err(DbError::Version { found: None, .. })
    ));
    let rows = Stmt::select("version", &["table_name"]).build().unwrap();
    assert_eq!(
        db.query(&rows, &[]).unwrap().len(),
        schema::TABLES.len() - 1
    );
    // Every SER table takes a row through the generic statements.
    schema::create_table(&mut db, &schema::LOCATION, "location_2").unwrap();
    assert_eq!(schema::version(&mut db, "location_2").unwrap(), Some(6));
}

#[test]
fn upsert_inserts_then_updates() {
    let dir = TempDir::new();
    let mut db = ser_db(&dir);
    let up = Stmt::upsert("location", &["username", "domain", "contact"], &["cseq"]).unwrap();
    let sel = Stmt::select("location", &["cseq"]).build().unwrap();
    let key: [Value; 3] = ["a".into(), "".into(), "sip:a@h".into()];
    db.exec(
        &up,
        &[key[0].clone(), key[1].clone(), key[2].clone(), 1.into()],
    )
    .unwrap();
    db.exec(
        &up,
        &[key[0].clone(), key[1].clone(), key[2].clone(), 2.into()],
    )
    .unwrap();
    let rows = db.query(&sel, &[]).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].int(0).unwrap(), 2);
}

#[test]
fn an_unreachable_database_fails_at_once_and_backs_off() {
    let dir = TempDir::new();
    let url = DbUrl::parse(&format!("sqlite://{}/missing/dir/ser.db", dir.0.display())).unwrap();
    let opts = DbOptions {
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_millis(400),
        ..DbOptions::default()
    };
    let mut db = Db::with_options(url, opts);
    let sel = Stmt::select("subscriber", &["ha1"]).build().unwrap();
    let e = db.query(&sel, &[]).unwrap_err();
    assert!(matches!(e, DbError::Connect { .. }), "{e:?}");
    assert!(e.is_unavailable());
    // Within the back-off no attempt is made.
    match db.query(&sel, &[]) {
        Err(DbError::Unavailable {
            retry_in, cause, ..
        }) => {
            assert!(retry_in <= Duration::from_millis(200), "{retry_in:?}");
            assert!(cause.contains("cannot connect"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
    std::thread::sleep(Duration::from_millis(250));
    assert!(matches!(db.query(&sel, &[]), Err(DbError::Connect { .. })));
    // The delay doubled.
    match db.query(&sel, &[]) {
        Err(DbError::Unavailable { retry_in, .. }) => {
            assert!(retry_in > Duration::from_millis(200), "{retry_in:?}")
        }
        other => panic!("{other:?}"),
    }
    // Once the database is there, the next attempt after the delay works.
    std::fs::create_dir_all(dir.0.join("missing/dir")).unwrap();
    std::thread::sleep(Duration::from_millis(450));
    schema::create(&mut db).unwrap();
    assert!(db.query(&sel, &[]).unwrap().is_empty());
    assert!(db.stats().unavailable >= 4);
}

#[test]
fn a_url_names_its_backend() {
    let db = Db::from_url("postgres://ser:heslo@127.0.0.1:1/ser").unwrap();
    assert_eq!(db.backend(), Backend::Postgres);
    assert!(!db.is_connected());
    assert!(!format!("{db:?}").contains("heslo"));
    assert!(matches!(
        Db::from_url("oracle://x/y"),
        Err(DbError::Url(UrlError::UnknownScheme(_)))
    ));
}
