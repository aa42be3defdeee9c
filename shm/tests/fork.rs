//! Multi-process tests of the shared region: real `fork`, real contention.
//!
//! `harness = false`: libtest runs tests on threads, and forking a threaded
//! process is unsafe. Each scenario forks children that work on one region
//! and report through their exit status; the parent checks the shared
//! result. Prints `N passed, M failed` and exits non-zero on any failure.

use std::sync::atomic::{AtomicU32, Ordering};

use shm::TestRng as Rng;
use shm::{
    monotonic_ms, shm_container, Linked, ListLink, Region, ShmHashTable, ShmLocked, ShmMutex,
    ShmOff, ShmSafe, ShmSlice, ShmTimerWheel, TimerLink,
};

const CHILDREN: usize = 4;

type Outcome = Result<(), String>;

/// Runs `work(i)` in `n` forked children; Ok if every child exits 0.
fn in_children(n: usize, work: impl Fn(usize) -> bool) -> Outcome {
    let mut pids = Vec::new();
    for i in 0..n {
        // SAFETY: this process is single-threaded (harness = false), so the
        // child may run arbitrary code after fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err("fork failed".into());
        }
        if pid == 0 {
            // SAFETY: a watchdog so a deadlocked child dies instead of
            // hanging the test; alarm is not inherited across fork.
            unsafe { libc::alarm(20) };
            let ok =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(i))).unwrap_or(false);
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        pids.push(pid);
    }
    let mut bad = Vec::new();
    for pid in pids {
        let mut status = 0;
        // SAFETY: waiting for our own child; `status` is a valid out-param.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            bad.push(format!("child {pid} status {status:#x}"));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join(", "))
    }
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// (a) A plain, non-atomic counter behind one ShmMutex.
fn mutex_counter(r: &Region) -> Outcome {
    const N: u64 = 100_000;
    let c = r.alloc(ShmLocked::new(0u64)).map_err(|e| e.to_string())?;
    in_children(CHILDREN, |_| {
        let l = r.get(c);
        for _ in 0..N {
            let mut g = l.lock();
            // read-modify-write in two steps to widen any race window
            let v = *g;
            *g = v + 1;
        }
        true
    })?;
    let l = r.get(c);
    let total = *l.lock();
    check(total == N * CHILDREN as u64, || format!("counter {total}"))?;
    check(
        !l.mutex().is_locked() && l.mutex().owner_pid().is_none(),
        || "lock left held".into(),
    )?;
    r.free(c);
    Ok(())
}

/// (b) Concurrent alloc/free; blocks carry owner patterns that must survive.
fn alloc_free(r: &Region) -> Outcome {
    let before = r.stats();
    in_children(CHILDREN, |i| {
        let mut rng = Rng::new(0x9E37_79B9 + i as u64 * 7919);
        let mut live: Vec<(ShmSlice<u8>, u8)> = Vec::new();
        let mut ok = true;
        for step in 0..20_000u32 {
            if live.len() < 64 && rng.below(2) == 0 {
                let len = 1 + rng.below(3000) as usize;
                let Ok(o) = r.alloc_bytes(len) else { continue };
                let s = ShmSlice::<u8>::from_raw_parts(o, len as u32);
                let tag = ((i as u32 * 61 + step) % 251) as u8;
                // SAFETY: a block we just allocated, unknown to others.
                unsafe { r.slice_mut(s) }.fill(tag);
                live.push((s, tag));
            } else if let Some((s, tag)) = live.pop() {
                ok &= r.slice(s).iter().all(|&b| b == tag);
                r.free_slice(s);
            }
        }
        for (s, tag) in live {
            ok &= r.slice(s).iter().all(|&b| b == tag);
            r.free_slice(s);
        }
        ok
    })?;
    let after = r.stats();
    check(after.used == before.used, || {
        format!("used {} != baseline {}", after.used, before.used)
    })?;
    check(
        after.allocs - before.allocs == after.frees - before.frees,
        || "allocs != frees".into(),
    )?;
    check(after.bad_frees == 0, || "bad frees".into())?;
    check(r.heap_is_consistent(), || "heap inconsistent".into())
}

#[repr(C)]
struct Timed {
    link: TimerLink,
    fired: AtomicU32,
    cancelled: AtomicU32,
}
// SAFETY: a timer link and atomics.
unsafe impl ShmSafe for Timed {}

/// (c) Timers armed, re-armed and disarmed by several processes while they
/// all compete to expire: every live timer fires exactly once.
fn timers(r: &Region) -> Outcome {
    const PER: usize = 2000;
    let w = ShmTimerWheel::create(r, 8, monotonic_ms()).map_err(|e| e.to_string())?;
    let ents = r
        .alloc_slice_zeroed::<Timed>(PER * CHILDREN)
        .map_err(|e| e.to_string())?;
    in_children(CHILDREN, |i| {
        let wheel = r.get(w);
        let mut rng = Rng::new(12345 + i as u64);
        let fire = |o: ShmOff<TimerLink>| {
            if let Some(t) = shm_container!(o, Timed, link) {
                r.get(t).fired.fetch_add(1, Ordering::Relaxed);
            }
        };
        for k in 0..PER {
            let Some(t) = ents.at(i * PER + k) else {
                return false;
            };
            let link = shm::shm_field!(t, Timed, link);
            let now = monotonic_ms();
            // some deadlines are already past when armed
            let d = (now + rng.below(300)).saturating_sub(20);
            wheel.arm(r, link, d);
            match k % 8 {
                0 => wheel.arm(r, link, now + rng.below(300)),
                1 if wheel.disarm(r, link) => r.get(t).cancelled.store(1, Ordering::Relaxed),
                _ => {}
            }
            if k % 16 == 0 {
                wheel.expire(r, monotonic_ms(), fire);
            }
        }
        let end = monotonic_ms() + 3000;
        while wheel.armed() > 0 && monotonic_ms() < end {
            wheel.expire(r, monotonic_ms(), fire);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    })?;
    let wheel = r.get(w);
    wheel.expire(r, monotonic_ms() + 1000, |_| {});
    check(wheel.armed() == 0, || {
        format!("{} timers still armed", wheel.armed())
    })?;
    let mut wrong = 0;
    let mut cancelled = 0;
    for t in r.slice(ents) {
        let c = t.cancelled.load(Ordering::Relaxed);
        cancelled += c;
        if t.fired.load(Ordering::Relaxed) != 1 - c {
            wrong += 1;
        }
    }
    check(wrong == 0, || {
        format!("{wrong} timers fired a wrong number of times")
    })?;
    check(cancelled > 0, || {
        "no disarm won a race (test lost its teeth)".into()
    })?;
    r.free_slice(ents);
    Ok(())
}

#[repr(C)]
struct Ent {
    link: ListLink<Ent>,
    key: u32,
}
// SAFETY: a link and a u32.
unsafe impl ShmSafe for Ent {}
impl Linked for Ent {
    fn link(&self) -> &ListLink<Self> {
        &self.link
    }
}

fn hash(k: u32) -> u32 {
    k.wrapping_mul(0x9E37_79B1).rotate_left(13)
}

/// (d) Hash table insert/remove from several processes, exact counts.
fn hash_table(r: &Region) -> Outcome {
    const PER: u32 = 3000;
    let tab = ShmHashTable::<Ent>::create(r, 6).map_err(|e| e.to_string())?;
    in_children(CHILDREN, |i| {
        let t = r.get(tab);
        let mut mine = Vec::new();
        for k in 0..PER {
            let key = (i as u32) << 16 | k;
            let Ok(o) = r.alloc(Ent {
                link: ListLink::new(),
                key,
            }) else {
                return false;
            };
            let Some(mut g) = t.lock_bucket(r, t.bucket_of(hash(key))) else {
                return false;
            };
            let _label = g.next_label();
            if !g.insert(o) {
                return false;
            }
            drop(g);
            mine.push(key);
        }
        for key in mine.into_iter().filter(|k| k % 2 == 0) {
            let Some(mut g) = t.lock_bucket(r, t.bucket_of(hash(key))) else {
                return false;
            };
            let Some(o) = g.find(|e| e.key == key) else {
                return false;
            };
            if !g.remove(o) {
                return false;
            }
            drop(g);
            r.free(o);
        }
        true
    })?;
    let t = r.get(tab);
    let (mut cur, mut tot, mut walked) = (0u64, 0u64, 0u64);
    let mut keys = Vec::new();
    for b in 0..t.len() {
        let (c, total) = t.counters(r, b);
        cur += u64::from(c);
        tot += total;
        let Some(g) = t.lock_bucket(r, b) else {
            return Err("bucket".into());
        };
        for (_, e) in g.iter() {
            walked += 1;
            keys.push(e.key);
            check(t.bucket_of(hash(e.key)) == b, || {
                "entry in wrong bucket".into()
            })?;
        }
    }
    let want = u64::from(PER) * CHILDREN as u64;
    check(cur == want / 2 && walked == cur, || {
        format!("current {cur}, walked {walked}")
    })?;
    check(tot == want, || format!("total {tot}"))?;
    keys.sort_unstable();
    keys.dedup();
    check(
        keys.len() as u64 == want / 2 && keys.iter().all(|k| k % 2 == 1),
        || "wrong survivors".into(),
    )
}

/// (e) A child dies holding a lock: the parent can tell.
fn dead_owner(r: &Region) -> Outcome {
    let m = r.alloc(ShmMutex::new()).map_err(|e| e.to_string())?;
    in_children(1, |_| {
        std::mem::forget(r.get(m).lock());
        true
    })?;
    let mx = r.get(m);
    check(mx.is_locked() && mx.is_held_by_dead_process(), || {
        format!("{mx:?} not seen as dead-held")
    })?;
    // SAFETY: the owner is gone, and the mutex protects nothing.
    unsafe { mx.force_unlock() };
    check(mx.try_lock().is_some(), || "not recoverable".into())
}

/// (f) A waiter in one process sleeps in the kernel and is woken by an
/// unlock in another: the non-private futex path, not just spinning.
fn futex_wakeup(r: &Region) -> Outcome {
    let m = r.alloc(ShmLocked::new(0u64)).map_err(|e| e.to_string())?;
    in_children(2, |i| {
        let l = r.get(m);
        if i == 0 {
            let mut g = l.lock();
            *g = 1;
            std::thread::sleep(std::time::Duration::from_millis(150));
            *g = 2;
            true
        } else {
            std::thread::sleep(std::time::Duration::from_millis(30));
            let t0 = monotonic_ms();
            let g = l.lock();
            // we must have waited for the holder and see its final write
            *g == 2 && monotonic_ms() - t0 >= 50
        }
    })?;
    check(!r.get(m).mutex().is_locked(), || "left locked".into())
}

fn main() {
    let r = match Region::new(32 << 20) {
        Ok(r) => r,
        Err(e) => {
            println!("cannot map region: {e}");
            std::process::exit(2);
        }
    };
    type Scenario = fn(&Region) -> Outcome;
    let scenarios: [(&str, Scenario); 6] = [
        ("mutex_counter", mutex_counter),
        ("alloc_free", alloc_free),
        ("timers", timers),
        ("hash_table", hash_table),
        ("dead_owner", dead_owner),
        ("futex_wakeup", futex_wakeup),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in scenarios {
        let t0 = std::time::Instant::now();
        match f(&r) {
            Ok(()) => {
                passed += 1;
                println!("ok     {name} ({} ms)", t0.elapsed().as_millis());
            }
            Err(e) => {
                failed += 1;
                println!("FAILED {name}: {e}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
