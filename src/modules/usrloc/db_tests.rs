//! usrloc's rows on a real SQLite file (the statements are the same on
//! every backend; `tests/it/usrloc_db.rs` runs them on MariaDB and
//! PostgreSQL through the binary).

use super::*;
use crate::db::scratch::TempDir;
use crate::db::{schema, Db};

fn db() -> (TempDir, Db) {
    let dir = TempDir::new();
    let mut db = Db::new(dir.url());
    schema::create_table(&mut db, &schema::VERSION, "version").expect("version");
    schema::create_table(&mut db, &schema::LOCATION, "location").expect("location");
    (dir, db)
}

const CLOCK: Clock = Clock {
    mono_ms: 50_000,
    wall_s: 1_800_000_000,
};

fn b(contact: &str, expires_ms: u64) -> Binding {
    Binding {
        contact: contact.as_bytes().to_vec(),
        expires_ms,
        q: 500,
        call_id: b"cid@h".to_vec(),
        cseq: 7,
        flags: 1,
        user_agent: b"phone/1.0".to_vec(),
        received: Vec::new(),
        last_modified_ms: 40_000,
    }
}

fn contacts(v: &[Binding]) -> Vec<String> {
    let mut c: Vec<String> = v
        .iter()
        .map(|x| String::from_utf8_lossy(&x.contact).into_owned())
        .collect();
    c.sort();
    c
}

#[test]
fn clock_maps_both_ways_rounding_expiry_up() {
    assert_eq!(CLOCK.wall_of(50_000), 1_800_000_000);
    assert_eq!(CLOCK.wall_of(53_600_000 + 50_000), 1_800_000_000 + 53_600);
    assert_eq!(CLOCK.wall_of(50_001), 1_800_000_001);
    assert_eq!(CLOCK.wall_of(49_999), 1_800_000_000);
    assert_eq!(CLOCK.mono_of(1_800_000_060), 110_000);
    // Before the monotonic clock began: long expired, not a wrap.
    assert_eq!(CLOCK.mono_of(1_700_000_000), 0);
}

#[test]
fn a_binding_reads_back_as_written() {
    let (_d, mut db) = db();
    let t = DomainDb::new("location", &Columns::default(), false).unwrap();
    let mut x = b("sip:alice@10.0.0.1:5060", 3_650_000);
    x.received = b"sip:192.0.2.1:7000".to_vec();
    let p = b("sip:alice@perm", PERMANENT);
    let mut u = b("sip:alice@unspecified-q", 3_650_000);
    u.q = Q_UNSPECIFIED;
    let n = t
        .apply(&mut db, b"alice", &[], &[x.clone(), p.clone(), u], &CLOCK)
        .unwrap();
    assert_eq!(n, 3);
    let got = t.bindings(&mut db, b"alice", &CLOCK).unwrap();
    assert_eq!(got.len(), 3);
    let gx = got.iter().find(|g| g.contact == x.contact).unwrap();
    assert_eq!(gx.expires_ms, x.expires_ms);
    assert_eq!((gx.q, gx.cseq, gx.flags), (500, 7, 1));
    assert_eq!(gx.call_id, x.call_id);
    assert_eq!(gx.user_agent, x.user_agent);
    assert_eq!(gx.received, x.received);
    assert_eq!(gx.last_modified_ms, 40_000);
    let gp = got.iter().find(|g| g.contact == p.contact).unwrap();
    assert!(gp.is_permanent());
    // SER's table has no unspecified q.
    let gu = got
        .iter()
        .find(|g| g.contact == b"sip:alice@unspecified-q")
        .unwrap();
    assert_eq!(gu.q, 1000);
    assert!(t.bindings(&mut db, b"bob", &CLOCK).unwrap().is_empty());
}

#[test]
fn apply_writes_only_what_changed_and_reconcile_catches_up() {
    let (_d, mut db) = db();
    let t = DomainDb::new("location", &Columns::default(), false).unwrap();
    let (a, c) = (b("sip:a@h", 100_000), b("sip:c@h", 100_000));
    t.apply(&mut db, b"bob", &[], &[a.clone(), c.clone()], &CLOCK)
        .unwrap();
    // A refresh of `a` and `c` unchanged: one statement.
    let mut a2 = a.clone();
    a2.expires_ms = 200_000;
    a2.cseq = 8;
    let n = t
        .apply(
            &mut db,
            b"bob",
            &[a.clone(), c.clone()],
            &[a2.clone(), c.clone()],
            &CLOCK,
        )
        .unwrap();
    assert_eq!(n, 1);
    // `c` removed: a delete.
    let n = t
        .apply(
            &mut db,
            b"bob",
            &[a2.clone(), c.clone()],
            &[a2.clone()],
            &CLOCK,
        )
        .unwrap();
    assert_eq!(n, 1);
    let got = t.bindings(&mut db, b"bob", &CLOCK).unwrap();
    assert_eq!(contacts(&got), ["sip:a@h"]);
    assert_eq!(got[0].cseq, 8);
    // Memory says {d}: reconcile deletes a and adds d, whatever the table
    // held.
    let d = b("sip:d@h", 100_000);
    t.reconcile(&mut db, b"bob", &[d], &CLOCK).unwrap();
    assert_eq!(
        contacts(&t.bindings(&mut db, b"bob", &CLOCK).unwrap()),
        ["sip:d@h"]
    );
    t.reconcile(&mut db, b"bob", &[], &CLOCK).unwrap();
    assert!(t.bindings(&mut db, b"bob", &CLOCK).unwrap().is_empty());
}

#[test]
fn use_domain_splits_the_aor_and_all_lists_every_aor() {
    let (_d, mut db) = db();
    let with = DomainDb::new("location", &Columns::default(), true).unwrap();
    with.apply(
        &mut db,
        b"al@one.test",
        &[],
        &[b("sip:x@h", 90_000)],
        &CLOCK,
    )
    .unwrap();
    with.apply(
        &mut db,
        b"al@two.test",
        &[],
        &[b("sip:y@h", 90_000)],
        &CLOCK,
    )
    .unwrap();
    assert_eq!(
        contacts(&with.bindings(&mut db, b"al@two.test", &CLOCK).unwrap()),
        ["sip:y@h"]
    );
    let mut all = with.all(&mut db, &CLOCK).unwrap();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let aors: Vec<&[u8]> = all.iter().map(|(a, _)| a.as_slice()).collect();
    assert_eq!(aors, [&b"al@one.test"[..], b"al@two.test"]);
    // Without use_domain the user alone is the AOR.
    let without = DomainDb::new("location", &Columns::default(), false).unwrap();
    assert_eq!(without.bindings(&mut db, b"al", &CLOCK).unwrap().len(), 2);
}

#[test]
fn expired_rows_go_permanent_ones_stay() {
    let (_d, mut db) = db();
    let t = DomainDb::new("location", &Columns::default(), false).unwrap();
    let v = [
        b("sip:old@h", 10_000),
        b("sip:new@h", 90_000),
        b("sip:perm@h", PERMANENT),
    ];
    t.apply(&mut db, b"carol", &[], &v, &CLOCK).unwrap();
    assert_eq!(t.delete_expired(&mut db, &CLOCK).unwrap(), 1);
    assert_eq!(
        contacts(&t.bindings(&mut db, b"carol", &CLOCK).unwrap()),
        ["sip:new@h", "sip:perm@h"]
    );
}

#[test]
fn column_names_come_from_the_parameters() {
    let (_d, mut db) = db();
    let mut cols = Columns::default();
    assert!(cols.set("contact_column", "nonexistent".into()));
    assert!(!cols.set("method_column", "method".into()));
    let t = DomainDb::new("location", &cols, false).unwrap();
    // The statement names the configured column, which the table lacks.
    assert!(t.bindings(&mut db, b"x", &CLOCK).is_err());
    assert!(DomainDb::new("location; DROP", &Columns::default(), false).is_err());
}

#[test]
fn long_user_agents_are_cut_to_the_column() {
    let (_d, mut db) = db();
    let t = DomainDb::new("location", &Columns::default(), false).unwrap();
    let mut x = b("sip:ua@h", 90_000);
    x.user_agent = "é".repeat(40).into_bytes();
    t.apply(&mut db, b"ua", &[], &[x], &CLOCK).unwrap();
    let got = t.bindings(&mut db, b"ua", &CLOCK).unwrap();
    assert!(got[0].user_agent.len() <= 50);
    assert!(std::str::from_utf8(&got[0].user_agent).is_ok());
}
