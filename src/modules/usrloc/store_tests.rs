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

/// The usrloc kill points, in the order of their updates.
const KILL_POINTS: [&str; 7] = [
    "usrloc.insert.prepared",
    "usrloc.insert.published",
    "usrloc.unlink.prepared",
    "usrloc.unlink.published",
    "usrloc.unlink.counted",
    "usrloc.rewrite.prepared",
    "usrloc.rewrite.published",
];

/// Set in the forked child only (the hook is installed there, after the
/// fork, so no thread of the test harness ever parks).
static PARK_AT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PARKED: std::sync::OnceLock<&'static AtomicU32> = std::sync::OnceLock::new();

fn park_hook(name: &'static str) {
    if KILL_POINTS.get(PARK_AT.load(Relaxed)) != Some(&name) {
        return;
    }
    if let Some(f) = PARKED.get() {
        f.store(1, Release);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Forks a child that runs `work` with the hook armed for kill point
/// `point`, waits until it parks there (a bucket lock held), SIGKILLs and
/// reaps it. False if it never parked.
fn kill_at(r: &'static Region, point: usize, work: impl FnOnce()) -> bool {
    let flag = r.alloc(AtomicU32::new(0)).expect("flag");
    let f: &'static AtomicU32 = r.get(flag);
    match fork_child().expect("fork") {
        ForkResult::Child => {
            PARK_AT.store(point, Relaxed);
            let _ = PARKED.set(f);
            shm::killpoint::install(park_hook);
            work();
            // Past the end: the kill point was never reached.
            std::process::exit(3);
        }
        ForkResult::Parent { child } => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while f.load(std::sync::atomic::Ordering::Acquire) == 0
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let parked = f.load(std::sync::atomic::Ordering::Acquire) == 1;
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(child, None);
            r.free(flag);
            parked
        }
    }
}

/// A process killed at every step of an insert, a removal and a rewrite,
/// with the record first, in the middle and last of its chain: the next
/// locker takes the lock over and repairs the bucket, which then holds
/// exactly the state before or after the update (as the kill point says),
/// keeps working, and the shm it leaks is bounded.
#[test]
fn a_process_killed_at_every_step_of_an_update_leaves_a_repairable_bucket() {
    for (point, name) in KILL_POINTS.iter().enumerate() {
        for victim in ["a", "b", "c"] {
            let r = region(1);
            let names = vec!["location".to_string()];
            // One bucket: every record shares the chain c → b → a.
            let s = Store::new(r, &names, 0, false).expect("store");
            let used0 = r.stats().used;
            for aor in ["a", "b", "c"] {
                s.update(0, aor.as_bytes(), 0, |v| v.push(b("sip:old", PERMANENT)))
                    .unwrap();
            }
            let parked = kill_at(r, point, || {
                let _ = if name.starts_with("usrloc.insert") {
                    s.update(0, b"new", 0, |v| v.push(b("sip:new", PERMANENT)))
                } else if name.starts_with("usrloc.unlink") {
                    s.update(0, victim.as_bytes(), 0, |v| v.clear())
                } else {
                    s.update(0, victim.as_bytes(), 0, |v| v.push(b("sip:new", PERMANENT)))
                };
            });
            assert!(parked, "{name}: the child never reached the kill point");
            let done = !name.ends_with(".prepared");
            let mut want: Vec<(String, Vec<String>)> = ["a", "b", "c"]
                .iter()
                .map(|k| (k.to_string(), vec!["sip:old".to_string()]))
                .collect();
            if done {
                if name.starts_with("usrloc.insert") {
                    want.push(("new".into(), vec!["sip:new".into()]));
                } else if name.starts_with("usrloc.unlink") {
                    want.retain(|(k, _)| k != victim);
                } else if let Some((_, v)) = want.iter_mut().find(|(k, _)| k == victim) {
                    v.push("sip:new".into());
                }
            }
            let mut got: Vec<(String, Vec<String>)> = s
                .records(0, 0)
                .unwrap()
                .iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), contacts(v)))
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{name}, victim {victim}");
            assert_eq!(
                s.chain_lengths(0),
                vec![(want.len() as u32, want.len() as u32)]
            );
            // Still usable; empty again, only the dead process's unpublished
            // or unfreed record and block stay allocated.
            for (k, _) in &want {
                s.update(0, k.as_bytes(), 0, |v| v.push(b("sip:more", PERMANENT)))
                    .unwrap();
                assert!(s.lookup(0, k.as_bytes(), 0).unwrap().is_some());
                s.update(0, k.as_bytes(), 0, |v| v.clear()).unwrap();
            }
            assert_eq!(s.chain_lengths(0), vec![(0, 0)], "{name}");
            assert!(r.heap_is_consistent(), "{name}");
            let leaked = r.stats().used - used0;
            assert!(
                leaked <= 256,
                "{name}, victim {victim}: {leaked} bytes leaked"
            );
            if name.starts_with("usrloc.insert") {
                break;
            }
        }
    }
}
