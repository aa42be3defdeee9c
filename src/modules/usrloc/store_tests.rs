//! Tests of the shm tables, on a real shared region.

use nix::sys::wait::{waitpid, WaitStatus};

use super::*;
use crate::modules::usrloc::binding::PERMANENT;
use crate::os::{fork_child, ForkResult};

fn region(mb: usize) -> &'static Region {
    Box::leak(Box::new(Region::new(mb << 20).expect("region")))
}

fn store(bits: u32, case_sensitive: bool) -> Store {
    let names = vec!["location".to_string(), "aliases".to_string()];
    Store::new(region(8), &names, bits, case_sensitive).expect("store")
}

fn b(contact: &str, expires_ms: u64) -> Binding {
    Binding {
        contact: contact.as_bytes().to_vec(),
        expires_ms,
        q: 1000,
        call_id: b"cid".to_vec(),
        cseq: 1,
        flags: 0,
        user_agent: Vec::new(),
        received: Vec::new(),
        last_modified_ms: 0,
    }
}

fn contacts(v: &[Binding]) -> Vec<String> {
    v.iter()
        .map(|x| String::from_utf8_lossy(&x.contact).into_owned())
        .collect()
}

#[test]
fn update_get_expiry_and_empty_record_removal() {
    let s = store(TABLE_BITS, false);
    let d = s.domain("location").unwrap();
    assert!(matches!(s.domain("nope"), Err(UlError::UnknownDomain(_))));
    let used0 = s.region.stats().used;
    assert_eq!(s.lookup(d, b"bob", 0).unwrap(), None);
    let n = s
        .update(d, b"bob", 1000, |v| {
            assert!(v.is_empty());
            v.push(b("sip:bob@a", 5000));
            v.push(b("sip:bob@b", 9000));
            v.push(b("sip:bob@p", PERMANENT));
            v.len()
        })
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(s.stats(d), (1, 0));
    // Reads filter by expiry without writing.
    let live = s.lookup(d, b"bob", 6000).unwrap().unwrap();
    assert_eq!(contacts(&live), ["sip:bob@b", "sip:bob@p"]);
    assert_eq!(s.lookup(d, b"bob", 1000).unwrap().unwrap().len(), 3);
    // An update sees only live bindings and drops the expired for good.
    s.update(d, b"bob", 6000, |v| assert_eq!(v.len(), 2))
        .unwrap();
    assert_eq!(s.lookup(d, b"bob", 1000).unwrap().unwrap().len(), 2);
    assert_eq!(s.stats(d), (1, 1));
    // The other domain is separate.
    let a = s.domain("aliases").unwrap();
    assert_eq!(s.lookup(a, b"bob", 0).unwrap(), None);
    // Emptying removes the record and gives its memory back.
    s.update(d, b"bob", 6000, |v| v.clear()).unwrap();
    assert_eq!(s.lookup(d, b"bob", 6000).unwrap(), None);
    assert_eq!(s.stats(d).0, 0);
    assert_eq!(s.region.stats().used, used0);
    // An update that adds nothing creates nothing.
    s.update(d, b"carol", 0, |_| ()).unwrap();
    assert_eq!(s.lookup(d, b"carol", 0).unwrap(), None);
    assert_eq!(s.region.stats().used, used0);
}

#[test]
fn case_insensitive_by_default_and_sensitive_on_request() {
    let s = store(TABLE_BITS, false);
    s.update(0, b"Bob@Example.COM", 0, |v| v.push(b("sip:x", PERMANENT)))
        .unwrap();
    assert_eq!(
        s.lookup(0, b"bob@example.com", 0).unwrap().unwrap().len(),
        1
    );
    s.update(0, b"BOB@example.com", 0, |v| v.push(b("sip:y", PERMANENT)))
        .unwrap();
    let recs = s.records(0, 0).unwrap();
    assert_eq!(recs.len(), 1, "one record for both spellings");
    assert_eq!(recs[0].0, b"Bob@Example.COM", "first spelling kept");

    let s = store(TABLE_BITS, true);
    s.update(0, b"Bob", 0, |v| v.push(b("sip:x", PERMANENT)))
        .unwrap();
    assert_eq!(s.lookup(0, b"bob", 0).unwrap(), None);
    assert!(s.lookup(0, b"Bob", 0).unwrap().is_some());
}

#[test]
fn chains_survive_removal_in_the_middle() {
    // Two buckets: many records per chain.
    let s = store(1, false);
    for i in 0..20 {
        let aor = format!("u{i}");
        s.update(0, aor.as_bytes(), 0, |v| v.push(b(&aor, PERMANENT)))
            .unwrap();
    }
    for i in (0..20).step_by(3) {
        s.update(0, format!("u{i}").as_bytes(), 0, |v| v.clear())
            .unwrap();
    }
    for i in 0..20 {
        let got = s.lookup(0, format!("u{i}").as_bytes(), 0).unwrap();
        assert_eq!(got.is_some(), i % 3 != 0, "u{i}");
    }
    assert_eq!(s.stats(0).0, 13);
    assert_eq!(s.records(0, 0).unwrap().len(), 13);
}

#[test]
fn sweep_drops_expired_bindings_and_empty_records() {
    let s = store(1, false);
    let used0 = s.region.stats().used;
    for i in 0..100u64 {
        let aor = format!("u{i}");
        s.update(0, aor.as_bytes(), 0, |v| {
            v.push(b("sip:short", 1000 + i));
            if i % 2 == 0 {
                v.push(b("sip:long", 1_000_000));
            }
        })
        .unwrap();
    }
    s.update(1, b"perm", 0, |v| v.push(b("sip:p", PERMANENT)))
        .unwrap();
    assert_eq!(s.sweep(500), 0);
    assert_eq!(s.sweep(5000), 100);
    assert_eq!(s.stats(0), (50, 100));
    let recs = s.records(0, 5000).unwrap();
    assert_eq!(recs.len(), 50);
    assert!(recs.iter().all(|(_, v)| contacts(v) == ["sip:long"]));
    assert_eq!(s.sweep(2_000_000), 50);
    assert_eq!(s.stats(0).0, 0);
    assert_eq!(s.stats(1).0, 1, "permanent bindings stay");
    s.update(1, b"perm", 0, |v| v.clear()).unwrap();
    assert_eq!(s.region.stats().used, used0);
    assert!(s.region.heap_is_consistent());
}

#[test]
fn concurrent_updates_from_two_processes() {
    let s = store(TABLE_BITS, false);
    let mut children = Vec::new();
    for p in 0..2 {
        match fork_child().expect("fork") {
            ForkResult::Child => {
                let mut ok = true;
                for i in 0..200 {
                    let c = format!("sip:p{p}-{i}@h");
                    ok &= s
                        .update(0, b"shared", 1, |v| v.push(b(&c, PERMANENT)))
                        .is_ok();
                }
                std::process::exit(if ok { 0 } else { 1 });
            }
            ForkResult::Parent { child } => children.push(child),
        }
    }
    for c in children {
        assert!(matches!(waitpid(c, None), Ok(WaitStatus::Exited(_, 0))));
    }
    let v = s.lookup(0, b"shared", 1).unwrap().unwrap();
    assert_eq!(v.len(), 400);
    let mut names = contacts(&v);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 400);
}

#[test]
fn out_of_memory_is_an_error_and_keeps_the_record() {
    let names = vec!["location".to_string()];
    let r = region(1);
    let s = Store::new(r, &names, 4, false).unwrap();
    s.update(0, b"bob", 0, |v| v.push(b("sip:first", PERMANENT)))
        .unwrap();
    let huge = "x".repeat(2 << 20);
    let e = s.update(0, b"bob", 0, |v| v.push(b(&huge, PERMANENT)));
    assert!(matches!(e, Err(UlError::OutOfMemory(_))), "{e:?}");
    assert_eq!(
        contacts(&s.lookup(0, b"bob", 0).unwrap().unwrap()),
        ["sip:first"]
    );
}

fn tracked() -> Store {
    let names = vec!["location".to_string()];
    Store::with_tracking(region(8), &names, 4, false, true).expect("store")
}

fn settle_all(s: &Store, now: u64) -> Vec<Dirty> {
    let mut out = Vec::new();
    let mut bucket = 0;
    while let Some(v) = s.claim_dirty(0, bucket, now) {
        out.extend(v);
        bucket += 1;
    }
    out
}

#[test]
fn tracked_changes_are_dirty_until_settled() {
    let s = tracked();
    let ((), c) = s
        .update_tracked(0, b"bob", 0, true, |v| v.push(b("sip:a", 10_000)))
        .unwrap();
    let c = c.expect("a change");
    assert!(c.claimed && c.was_synced && c.before.is_empty());
    assert_eq!(contacts(&c.after), ["sip:a"]);
    // Claimed by us: the flusher leaves it alone.
    assert!(settle_all(&s, 0).is_empty());
    assert!(!s.settle(0, b"bob", c.gen, true).unwrap());
    assert!(settle_all(&s, 0).is_empty(), "clean after the write");
    // No change, no generation.
    let ((), none) = s.update_tracked(0, b"bob", 0, true, |_| ()).unwrap();
    assert!(none.is_none());
    // A failed write leaves it dirty, for the flusher.
    let ((), c) = s
        .update_tracked(0, b"bob", 0, true, |v| v[0].cseq = 2)
        .unwrap();
    let c = c.unwrap();
    assert!(s.settle(0, b"bob", c.gen, false).unwrap());
    let d = settle_all(&s, 0);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].live[0].cseq, 2);
    // A change while the flusher writes: its settle keeps it dirty.
    s.update_tracked(0, b"bob", 0, false, |v| v[0].cseq = 3)
        .unwrap();
    assert!(s.settle(0, b"bob", d[0].gen, true).unwrap());
    let d = settle_all(&s, 0);
    assert_eq!(d[0].live[0].cseq, 3);
    assert!(!s.settle(0, b"bob", d[0].gen, true).unwrap());
}

#[test]
fn a_removed_record_stays_a_tombstone_until_written() {
    let s = tracked();
    let ((), c) = s
        .update_tracked(0, b"bob", 0, false, |v| v.push(b("sip:a", 10_000)))
        .unwrap();
    s.settle(0, b"bob", c.unwrap().gen, true).unwrap();
    assert_eq!(s.stats(0), (1, 0));
    let ((), c) = s.update_tracked(0, b"bob", 0, true, Vec::clear).unwrap();
    let c = c.unwrap();
    assert!(c.after.is_empty() && c.before.len() == 1);
    // Gone for readers and for ul_stats, still there for the database.
    assert_eq!(s.lookup(0, b"bob", 0).unwrap(), None);
    assert!(s.records(0, 0).unwrap().is_empty());
    assert_eq!(s.stats(0), (0, 0));
    assert!(s.settle(0, b"bob", c.gen, false).unwrap());
    let d = settle_all(&s, 0);
    assert_eq!(d.len(), 1);
    assert!(d[0].live.is_empty());
    assert!(!s.settle(0, b"bob", d[0].gen, true).unwrap());
    // Written: the tombstone went.
    assert!(s.claim(0, b"bob", 0).unwrap().is_none());
    let used = s.region.stats().used;
    s.update(0, b"x", 0, |v| v.push(b("sip:x", 10_000)))
        .unwrap();
    assert!(s.region.stats().used > used);
}

#[test]
fn expiry_makes_a_tracked_record_dirty_and_loaded_ones_start_clean() {
    let s = tracked();
    s.load(0, b"bob", 0, vec![b("sip:a", 5_000), b("sip:b", 50_000)])
        .unwrap();
    s.load(0, b"carol", 0, vec![b("sip:c", 5_000)]).unwrap();
    assert!(settle_all(&s, 0).is_empty(), "loaded records are clean");
    assert_eq!(s.sweep(6_000), 2);
    let mut d = settle_all(&s, 6_000);
    d.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(d.len(), 2);
    assert_eq!(contacts(&d[0].live), ["sip:b"]);
    assert!(d[1].live.is_empty(), "carol is a tombstone");
    for x in &d {
        s.settle(0, &x.key, x.gen, true).unwrap();
    }
    assert!(s.claim(0, b"carol", 6_000).unwrap().is_none());
    assert_eq!(s.stats(0).0, 1);
}

#[test]
fn a_dead_writers_claim_is_taken_over() {
    let s = tracked();
    s.update_tracked(0, b"bob", 0, false, |v| v.push(b("sip:a", 10_000)))
        .unwrap();
    match fork_child().expect("fork") {
        ForkResult::Child => {
            // Claims and dies without settling.
            let n = settle_all(&s, 0).len();
            std::process::exit(if n == 1 { 0 } else { 1 });
        }
        ForkResult::Parent { child } => {
            assert!(matches!(waitpid(child, None), Ok(WaitStatus::Exited(_, 0))));
        }
    }
    let d = settle_all(&s, 0);
    assert_eq!(d.len(), 1, "the dead child's claim is void");
    assert!(!s.settle(0, b"bob", d[0].gen, true).unwrap());
}

/// The binding count (the metrics figure) follows adds, expiry on update,
/// the sweep and removal, in an untracked and a tracked table.
#[test]
fn the_binding_count_follows_every_change() {
    for tracked in [false, true] {
        let names = vec!["location".to_string()];
        let s = Store::with_tracking(region(8), &names, TABLE_BITS, false, tracked).expect("store");
        let d = 0;
        assert_eq!(s.bindings(d), 0);
        s.update(d, b"bob", 1000, |v| {
            v.push(b("sip:bob@a", 5000));
            v.push(b("sip:bob@b", 9000));
            v.push(b("sip:bob@p", PERMANENT));
        })
        .unwrap();
        s.update(d, b"alice", 1000, |v| v.push(b("sip:alice@a", 5000)))
            .unwrap();
        assert_eq!(s.bindings(d), 4, "tracked={tracked}");
        // An update drops bob's expired binding; alice's expired one is
        // still stored until the sweep.
        s.update(d, b"bob", 6000, |_| ()).unwrap();
        assert_eq!(s.bindings(d), 3, "tracked={tracked}");
        // The sweep drops alice's; then bob's timed one.
        s.sweep(6000);
        assert_eq!(s.bindings(d), 2, "tracked={tracked}");
        s.sweep(10_000);
        assert_eq!(s.bindings(d), 1, "tracked={tracked}");
        s.update(d, b"bob", 10_000, |v| v.clear()).unwrap();
        assert_eq!(s.bindings(d), 0, "tracked={tracked}");
    }
}
