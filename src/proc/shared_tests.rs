//! The heartbeat check over a table of our own (the global one belongs
//! to the server): lanes, arming, stall and resumption.

use super::*;

fn table_in(region: &'static Region) -> &'static SharedProcs {
    let off = region.alloc_zeroed::<SharedProcs>().expect("table");
    region.get(off)
}

fn region() -> &'static Region {
    Box::leak(Box::new(Region::new(1 << 20).expect("region")))
}

/// Slot `i` of `t` holds a live process `pid` named `desc`.
fn occupy(t: &SharedProcs, i: usize, pid: i32, desc: &str) {
    let s = &t.slots[i];
    for (d, b) in s.desc.iter().zip(desc.bytes()) {
        d.store(b, Ordering::Relaxed);
    }
    s.len.store(desc.len() as u8, Ordering::Relaxed);
    s.pid.store(pid, Ordering::Release);
    t.used.fetch_max(i as u32 + 1, Ordering::AcqRel);
}

fn stamp(t: &SharedProcs, i: usize, lane: usize, ms: u64) {
    t.slots[i].beat[lane].store(ms, Ordering::Relaxed);
}

#[test]
fn a_silent_process_is_reported_once_and_again_when_it_resumes() {
    let t = table_in(region());
    occupy(t, 1, 101, "tcp receiver child=0");
    stamp(t, 1, 0, 10_000);
    assert_eq!(check_table(t, 12_999, 3000), vec![]);
    let stalled = Stall::Stalled {
        pid: 101,
        desc: "tcp receiver child=0".into(),
        ms: 3000,
    };
    assert_eq!(check_table(t, 13_000, 3000), vec![stalled]);
    // Reported once, not at every tick.
    assert_eq!(check_table(t, 20_000, 3000), vec![]);
    stamp(t, 1, 0, 20_500);
    assert_eq!(
        check_table(t, 21_000, 3000),
        vec![Stall::Resumed {
            pid: 101,
            desc: "tcp receiver child=0".into()
        }]
    );
    assert_eq!(check_table(t, 21_000, 3000), vec![]);
}

#[test]
fn a_slot_without_a_beat_or_a_pid_is_not_watched() {
    let t = table_in(region());
    // The attendant: a pid, never a beat.
    occupy(t, 0, 100, "attendant");
    // A dead process's slot keeps its description, not its pid.
    occupy(t, 1, 101, "fifo server");
    stamp(t, 1, 0, 1);
    t.slots[1].pid.store(0, Ordering::Release);
    assert_eq!(check_table(t, 1_000_000, 3000), vec![]);
}

#[test]
fn the_oldest_beating_lane_counts() {
    let t = table_in(region());
    occupy(t, 2, 102, "dns resolver");
    for lane in 0..BEAT_LANES {
        stamp(t, 2, lane, 10_000);
    }
    // One thread stuck while the others beat: the process is stalled.
    stamp(t, 2, 0, 14_000);
    stamp(t, 2, 1, 14_000);
    stamp(t, 2, 3, 14_000);
    assert!(matches!(
        check_table(t, 14_000, 3000).as_slice(),
        [Stall::Stalled {
            pid: 102,
            ms: 4000,
            ..
        }]
    ));
    // A lane whose thread ended is no longer counted.
    stamp(t, 2, 2, 0);
    assert!(matches!(
        check_table(t, 14_000, 3000).as_slice(),
        [Stall::Resumed { pid: 102, .. }]
    ));
}

#[test]
fn a_wait_is_cut_at_the_next_beat() {
    assert_eq!(beat_wait(None), BEAT_EVERY);
    assert_eq!(beat_wait(Some(Duration::from_secs(60))), BEAT_EVERY);
    let short = Duration::from_millis(20);
    assert_eq!(beat_wait(Some(short)), short);
    assert_eq!(beat_wait(Some(Duration::ZERO)), Duration::ZERO);
}
