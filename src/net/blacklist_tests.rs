//! The blacklist's table logic on a plain vector, and the shm layer on a
//! small region.

use super::blacklist::*;
use super::Proto;
use std::net::SocketAddr;

fn d(s: &str) -> Dest {
    Dest::udp(s.parse::<SocketAddr>().expect("address"))
}

fn slots(n: usize) -> VecSlots {
    VecSlots::new(n)
}

#[test]
fn an_entry_counts_until_it_expires() {
    let mut t = slots(4);
    assert_eq!(insert(&mut t, d("10.0.0.1:5060"), 3000, 1000), Added::New);
    assert_eq!(lookup(&t, d("10.0.0.1:5060"), 2999), Some(3000));
    assert_eq!(lookup(&t, d("10.0.0.1:5060"), 3000), None);
    // Same address, other port or transport: another destination.
    assert_eq!(lookup(&t, d("10.0.0.1:5061"), 1500), None);
    let tcp = Dest {
        proto: Proto::Tcp,
        addr: "10.0.0.1:5060".parse().unwrap(),
    };
    assert_eq!(lookup(&t, tcp, 1500), None);
}

#[test]
fn adding_again_keeps_the_later_expiry() {
    let mut t = slots(4);
    insert(&mut t, d("10.0.0.1:5060"), 5000, 0);
    assert_eq!(
        insert(&mut t, d("10.0.0.1:5060"), 3000, 100),
        Added::Extended
    );
    assert_eq!(lookup(&t, d("10.0.0.1:5060"), 4000), Some(5000));
    insert(&mut t, d("10.0.0.1:5060"), 9000, 200);
    assert_eq!(lookup(&t, d("10.0.0.1:5060"), 4000), Some(9000));
    assert_eq!(live(&t, 0).len(), 1);
}

#[test]
fn expired_slots_are_reused_before_anything_is_evicted() {
    let mut t = slots(2);
    insert(&mut t, d("10.0.0.1:1"), 100, 0);
    insert(&mut t, d("10.0.0.2:1"), 1000, 0);
    // At 500 the first has expired: its slot takes the newcomer.
    assert_eq!(insert(&mut t, d("10.0.0.3:1"), 2000, 500), Added::New);
    assert_eq!(lookup(&t, d("10.0.0.2:1"), 500), Some(1000));
    assert_eq!(lookup(&t, d("10.0.0.3:1"), 500), Some(2000));
}

#[test]
fn a_full_table_replaces_the_entry_expiring_soonest() {
    let mut t = slots(3);
    insert(&mut t, d("10.0.0.1:1"), 3000, 0);
    insert(&mut t, d("10.0.0.2:1"), 1000, 0);
    insert(&mut t, d("10.0.0.3:1"), 2000, 0);
    assert_eq!(
        insert(&mut t, d("10.0.0.4:1"), 500, 10),
        Added::Evicted(d("10.0.0.2:1"))
    );
    assert_eq!(lookup(&t, d("10.0.0.2:1"), 10), None);
    assert_eq!(lookup(&t, d("10.0.0.4:1"), 10), Some(500));
}

#[test]
fn many_distinct_sources_never_grow_it_past_its_capacity() {
    let mut t = slots(16);
    for i in 0..10_000u32 {
        let a = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 5060));
        insert(&mut t, Dest::udp(a), 60_000 + u64::from(i), u64::from(i));
    }
    assert_eq!((t.v.len(), t.used), (16, 16));
    let l = live(&t, 10_000);
    assert_eq!(l.len(), 16);
    // What stayed are the latest (they expire last).
    assert!(l.iter().all(|e| e.expires >= 60_000 + 9_984), "{l:?}");
}

#[test]
fn remove_one_or_all_and_view_lists_live_ones_soonest_first() {
    let mut t = slots(8);
    insert(&mut t, d("10.0.0.1:5060"), 3000, 0);
    insert(&mut t, d("10.0.0.2:5060"), 2000, 0);
    insert(&mut t, d("10.0.0.2:5070"), 1000, 0);
    insert(&mut t, d("10.0.0.9:5060"), 10, 0);
    let l = live(&t, 100);
    assert_eq!(
        l.iter().map(|e| e.dest).collect::<Vec<_>>(),
        vec![d("10.0.0.2:5070"), d("10.0.0.2:5060"), d("10.0.0.1:5060")]
    );
    let ip2: std::net::IpAddr = "10.0.0.2".parse().unwrap();
    // The expired one is reclaimed on the way but not counted.
    assert_eq!(remove(&mut t, 100, |x| x.addr.ip() == ip2), 2);
    assert_eq!(live(&t, 100).len(), 1);
    assert_eq!(t.v.iter().flatten().count(), 1);
    assert_eq!(remove(&mut t, 100, |_| true), 1);
    assert!(live(&t, 0).is_empty());
    // Emptied, the table is scanned no further than its first slot again.
    assert_eq!(t.used, 0);
}

#[test]
fn only_slots_below_the_high_water_mark_are_scanned() {
    let mut t = slots(1000);
    insert(&mut t, d("10.0.0.1:1"), 100, 0);
    insert(&mut t, d("10.0.0.2:1"), 5000, 0);
    assert_eq!(t.used, 2);
    // An expired slot below the mark is reused before the mark grows.
    insert(&mut t, d("10.0.0.3:1"), 5000, 200);
    assert_eq!(t.used, 2);
    // Removing the top entry lowers the mark past free slots.
    remove(&mut t, 300, |x| {
        *x == d("10.0.0.3:1") || *x == d("10.0.0.2:1")
    });
    assert_eq!(t.used, 0);
}

#[test]
fn a_table_without_slots_does_not_panic() {
    let mut t = slots(0);
    assert_eq!(insert(&mut t, d("10.0.0.1:1"), 10, 0), Added::New);
    assert_eq!(lookup(&t, d("10.0.0.1:1"), 0), None);
}

#[test]
fn capacity_follows_dst_blacklist_mem() {
    assert_eq!(ENTRY_BYTES, 32);
    assert_eq!(capacity_for(250), 8000);
    assert_eq!(capacity_for(0), 1);
}

#[test]
fn the_shm_table_keeps_v4_v6_and_proto_apart() {
    let region: &'static shm::Region =
        Box::leak(Box::new(shm::Region::new(1 << 20).expect("region")));
    init(
        region,
        Settings {
            expire_s: 60,
            mem_kb: 1,
        },
    )
    .expect("init");
    let t = table().expect("table");
    assert_eq!(t.capacity(), 32);
    assert_eq!(t.default_ms, 60_000);
    let v4 = d("127.0.0.1:5060");
    let v6 = d("[::1]:5060");
    let tls = Dest {
        proto: Proto::Tls,
        addr: "127.0.0.1:5060".parse().unwrap(),
    };
    t.add(v4, 1000, 0);
    t.add(v6, 2000, 0);
    assert_eq!(t.lookup(v4, 10), Some(1000));
    assert_eq!(t.lookup(v6, 10), Some(2000));
    assert_eq!(t.lookup(tls, 10), None);
    let l = t.live(10);
    assert_eq!(l.iter().map(|e| e.dest).collect::<Vec<_>>(), vec![v4, v6]);
    for i in 0..100u8 {
        t.add(d(&format!("10.0.1.{i}:5060")), 5000, 10);
    }
    assert_eq!(t.live(10).len(), 32);
    assert_eq!(t.remove(10, |_| true), 32);
    assert_eq!(t.lookup(v6, 10), None);
}
