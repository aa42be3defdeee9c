//! Multi-process tests of the shared region: real `fork`, real contention.
//!
//! `harness = false`: libtest runs tests on threads, and forking a threaded
//! process is unsafe. Each scenario forks children that work on one region
//! and report through their exit status; the parent checks the shared
//! result. Prints `N passed, M failed` and exits non-zero on any failure.

use std::os::unix::process::CommandExt;
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

/// Where the kill-point hook parks a child: an index into `KILL_POINTS`,
/// and the shared word it sets once parked (both set before the fork).
static PARK_AT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);
static PARKED: std::sync::atomic::AtomicPtr<AtomicU32> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

const KILL_POINTS: [&str; 15] = [
    "table.insert.prepared",
    "table.insert.published",
    "table.insert.counted",
    "table.remove.unmarked",
    "table.remove.unpublished",
    "table.remove.relinked",
    "wheel.arm.prepared",
    "wheel.arm.published",
    "wheel.unlink.idle",
    "wheel.unlink.unpublished",
    "alloc.alloc.unlisted",
    "alloc.alloc.split",
    "alloc.free.unlisted",
    "alloc.free.merged",
    // Passed by the test's own callback (`kill_in_expiry`), not the wheel.
    "expire.firing",
];

fn park_hook(name: &'static str) {
    if KILL_POINTS.get(PARK_AT.load(Ordering::Relaxed)) != Some(&name) {
        return;
    }
    let p = PARKED.load(Ordering::Relaxed);
    if !p.is_null() {
        // SAFETY: points into the shared region, alive for the test.
        unsafe { &*p }.store(1, Ordering::Release);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Forks a child running `work` with the hook armed for `point`, waits
/// until it parks there (lock held), SIGKILLs and reaps it.
fn kill_at(r: &Region, point: usize, work: impl FnOnce()) -> Outcome {
    let flag = r.alloc(AtomicU32::new(0)).map_err(|e| e.to_string())?;
    let f: &AtomicU32 = r.get(flag);
    PARK_AT.store(point, Ordering::Relaxed);
    PARKED.store(f as *const AtomicU32 as *mut AtomicU32, Ordering::Relaxed);
    shm::killpoint::install(park_hook);
    // SAFETY: single-threaded process (harness = false).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: watchdog, as in `in_children`.
        unsafe { libc::alarm(20) };
        work();
        // Reaching the end means the kill point was never passed.
        // SAFETY: leave without the parent's atexit handlers.
        unsafe { libc::_exit(3) };
    }
    shm::killpoint::clear();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while f.load(Ordering::Acquire) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let parked = f.load(Ordering::Acquire) == 1;
    // SAFETY: our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut status = 0;
    // SAFETY: reaping our own child; `status` is a valid out-param.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    r.free(flag);
    check(parked, || {
        format!("child never parked at {}", KILL_POINTS[point])
    })
}

/// (g) A process killed at every step of a bucket update, lock held:
/// the next locker is told the owner died, the repaired bucket passes its
/// invariant checks and keeps working.
fn kill_in_bucket_update(r: &Region) -> Outcome {
    let tab = ShmHashTable::<Ent>::create(r, 2).map_err(|e| e.to_string())?;
    let t = r.get(tab);
    let mut key = 0u32;
    let mut ent = |r: &Region| {
        key += 1;
        r.alloc(Ent {
            link: ListLink::new(),
            key,
        })
        .map_err(|e| e.to_string())
    };
    for (point, name) in KILL_POINTS.iter().enumerate() {
        if !name.starts_with("table.") {
            continue;
        }
        // Each bucket shape: empty, or three entries removing head, middle
        // and tail in turn.
        for shape in 0..3usize {
            let b = (point * 3 + shape) as u32 % t.len();
            let mut offs = Vec::new();
            {
                let mut g = t.lock_bucket(r, b).ok_or("no bucket")?;
                while let Some((o, _)) = g.iter().next() {
                    g.remove(o);
                }
                for _ in 0..3 {
                    let o = ent(r)?;
                    g.insert(o);
                    offs.push(o);
                }
            }
            let fresh = ent(r)?;
            let victim = offs[shape];
            let inserting = name.starts_with("table.insert");
            kill_at(r, point, || {
                if let Some(mut g) = t.lock_bucket(r, b) {
                    if inserting {
                        g.insert(fresh);
                    } else {
                        g.remove(victim);
                    }
                }
            })?;
            let mut g = t.lock_bucket(r, b).ok_or("no bucket")?;
            g.check()
                .map_err(|e| format!("{name}, shape {shape}: after repair: {e}"))?;
            // Still usable: both entries can be (re)inserted and removed.
            for o in [fresh, victim] {
                g.remove(o);
                check(g.insert(o), || format!("{name}: reinsert refused"))?;
                check(g.remove(o), || format!("{name}: remove refused"))?;
            }
            g.check().map_err(|e| format!("{name}: after reuse: {e}"))?;
        }
    }
    Ok(())
}

/// (i) The same for a timer-wheel slot: a child killed at every step of
/// arming (a timer joining a slot of two) and disarming (the first, the
/// middle and the last of three).
fn kill_in_wheel_update(r: &Region) -> Outcome {
    let w = ShmTimerWheel::create(r, 4, 0).map_err(|e| e.to_string())?;
    let wh = r.get(w);
    for (point, name) in KILL_POINTS.iter().enumerate() {
        if !name.starts_with("wheel.") {
            continue;
        }
        for shape in 0..3usize {
            // A fresh tick each round: the previous round's expiry moved
            // the wheel's cursor past the last one.
            const DEADLINE_BASE: u64 = 1_000_000;
            let deadline = DEADLINE_BASE + (point * 3 + shape) as u64 * 100;
            let links: Vec<ShmOff<TimerLink>> = (0..4)
                .map(|k| r.alloc(TimerLink::new(k)).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            for l in &links[..3] {
                wh.arm(r, *l, deadline);
            }
            let arming = name.starts_with("wheel.arm");
            let (fresh, victim) = (links[3], links[shape]);
            kill_at(r, point, || {
                if arming {
                    wh.arm(r, fresh, deadline);
                } else {
                    wh.disarm(r, victim);
                }
            })?;
            wh.check_slot(r, deadline)
                .map_err(|e| format!("{name}, shape {shape}: after repair: {e}"))?;
            // Still usable: every timer can be disarmed, re-armed, fired.
            for l in &links {
                wh.disarm(r, *l);
                wh.arm(r, *l, deadline);
            }
            wh.check_slot(r, deadline)
                .map_err(|e| format!("{name}: after reuse: {e}"))?;
            let fired = wh.expire(r, deadline, |_| {});
            check(fired == 4, || format!("{name}: {fired} of 4 fired"))?;
            for l in links {
                r.free(l);
            }
        }
    }
    Ok(())
}

/// (k) A timer process killed while it fires a batch: of five timers due
/// together it fired one, claimed the second (its callback took the
/// reference over) and died; the wheel lists the three it had detached
/// but not fired as the dead process's, and the next expirer, taking the
/// expiry lock over, fires those three — each timer fires exactly once.
fn kill_in_expiry(r: &Region) -> Outcome {
    let w = ShmTimerWheel::create(r, 4, 0).map_err(|e| e.to_string())?;
    let wh = r.get(w);
    let point = KILL_POINTS
        .iter()
        .position(|p| *p == "expire.firing")
        .ok_or("no expire.firing kill point")?;
    const DEADLINE: u64 = 5_000;
    let links: Vec<ShmOff<TimerLink>> = (0..5)
        .map(|k| r.alloc(TimerLink::new(k)).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let counts: Vec<ShmOff<AtomicU32>> = (0..6)
        .map(|_| r.alloc(AtomicU32::new(0)).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // counts[5]: the firing child's pid.
    let count = |o: ShmOff<TimerLink>| r.get(counts[r.get(o).kind() as usize]);
    for l in &links {
        wh.arm(r, *l, DEADLINE);
    }
    kill_at(r, point, || {
        r.get(counts[5])
            .store(std::process::id(), Ordering::Relaxed);
        let mut n = 0;
        wh.expire(r, DEADLINE, |o| {
            count(o).fetch_add(1, Ordering::Relaxed);
            n += 1;
            if n == 2 {
                wh.claim(o);
                shm::killpoint::hit("expire.firing");
            }
        });
    })?;
    let fired: Vec<u32> = (0..5)
        .map(|i| r.get(counts[i]).load(Ordering::Relaxed))
        .collect();
    check(fired.iter().sum::<u32>() == 2, || {
        format!("before the kill: {fired:?}")
    })?;
    let dead = r.get(counts[5]).load(Ordering::Relaxed);
    let listed = wh.in_flight_of(dead);
    check(listed.len() == 3, || format!("in flight: {listed:?}"))?;
    check(
        listed
            .iter()
            .all(|o| count(*o).load(Ordering::Relaxed) == 0),
        || "a fired timer listed in flight".into(),
    )?;
    check(wh.in_flight_of(dead + 1).is_empty(), || {
        "another pid's record".into()
    })?;
    let refired = wh.expire(r, DEADLINE, |o| {
        count(o).fetch_add(1, Ordering::Relaxed);
    });
    let fired: Vec<u32> = (0..5)
        .map(|i| r.get(counts[i]).load(Ordering::Relaxed))
        .collect();
    check(refired == 3 && fired.iter().all(|c| *c == 1), || {
        format!("after the takeover {refired} fired: {fired:?}")
    })?;
    check(wh.in_flight_of(std::process::id()).is_empty(), || {
        "record not cleared".into()
    })?;
    for l in links {
        r.free(l);
    }
    for c in counts {
        r.free(c);
    }
    Ok(())
}

/// (j) The same for the allocator: a child killed at every step of an
/// allocation (with a split) and of a free (merging with both
/// neighbours). The next allocator user rebuilds its state; the heap then
/// passes its full check (every byte in a used block or on a free list,
/// `used` their sum), and the block in flight is either allocated or free.
/// What the child allocates at the allocator's kill points.
const ALLOC_N: usize = 3000;

fn kill_in_allocator(r: &Region) -> Outcome {
    for (point, name) in KILL_POINTS.iter().enumerate() {
        if !name.starts_with("alloc.") {
            continue;
        }
        let block = |n: usize| r.alloc_bytes(n).map_err(|e| e.to_string());
        // Free neighbours on both sides of `mid`, a used block after.
        let (a, mid, c, end) = (block(200)?, block(200)?, block(200)?, block(200)?);
        r.free(a);
        r.free(c);
        let before = r.stats().used;
        let freeing = name.starts_with("alloc.free");
        kill_at(r, point, || {
            if freeing {
                r.free(mid);
            } else {
                // A size no block left over by earlier tests fits without a
                // split: it comes from the big tail, which is split.
                let _ = r.alloc_bytes(ALLOC_N);
            }
        })?;
        let after = r.stats().used;
        check(r.heap_is_consistent(), || {
            format!("{name}: heap inconsistent after repair")
        })?;
        if freeing {
            // Freed, or still ours (the free never happened).
            check(after <= before, || {
                format!("{name}: used {before} -> {after}")
            })?;
            if after == before {
                r.free(mid);
            }
        } else {
            // The allocation happened (a block lost with the child) or not.
            check(
                after >= before && after - before <= ALLOC_N as u64 + 32,
                || format!("{name}: used {before} -> {after}"),
            )?;
        }
        r.free(end);
        check(r.heap_is_consistent(), || format!("{name}: after reuse"))?;
    }
    Ok(())
}

/// (h) A child killed holding a lock: the next `lock()` takes it over
/// (no deadlock) and is told the owner died.
fn lock_takeover(r: &Region) -> Outcome {
    let m = r.alloc(ShmLocked::new(7u64)).map_err(|e| e.to_string())?;
    in_children(1, |_| {
        let mut g = r.get(m).lock();
        *g = 8;
        std::mem::forget(g);
        true
    })?;
    let t0 = std::time::Instant::now();
    let g = r.get(m).lock();
    check(g.owner_died() && *g == 8, || "takeover not reported".into())?;
    check(t0.elapsed() < std::time::Duration::from_secs(1), || {
        format!("takeover took {:?}", t0.elapsed())
    })?;
    drop(g);
    check(!r.get(m).lock().owner_died(), || "reported twice".into())
}

/// The pid the membership test below calls a stranger (0: none).
static STRANGER: AtomicU32 = AtomicU32::new(0);

fn not_the_stranger(pid: u32) -> Option<bool> {
    (pid == STRANGER.load(Ordering::Relaxed)).then_some(false)
}

/// (l) A lock whose owner's pid now belongs to a process that is not a
/// member of the server (here: the owner exec'd `sleep`, which is what a
/// reused pid looks like) is taken over once the membership test says so,
/// and only then.
fn reused_pid(r: &Region) -> Outcome {
    let m = r.alloc(ShmLocked::new(7u64)).map_err(|e| e.to_string())?;
    let mx = r.get(m);
    // SAFETY: single-threaded process (harness = false).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut g = mx.lock();
        *g = 8;
        std::mem::forget(g);
        let e = std::process::Command::new("sleep").arg("30").exec();
        eprintln!("exec sleep: {e}");
        // SAFETY: leave without the parent's atexit handlers.
        unsafe { libc::_exit(3) };
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let comm = format!("/proc/{pid}/comm");
    while std::fs::read_to_string(&comm).map_or(true, |c| c.trim() != "sleep")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let outcome = (|| {
        check(mx.mutex().owner_pid() == Some(pid as u32), || {
            format!("lock not held by the child: {:?}", mx.mutex())
        })?;
        check(
            mx.mutex()
                .try_lock_recovering(shm::LockLevel::Unordered)
                .is_none(),
            || "taken over while its owner's pid is alive and not known to be a stranger".into(),
        )?;
        STRANGER.store(pid as u32, Ordering::Relaxed);
        shm::set_membership(not_the_stranger);
        let t0 = std::time::Instant::now();
        // SAFETY: a watchdog: a lock() that never takes over kills the
        // test (SIGALRM) instead of hanging it.
        unsafe { libc::alarm(10) };
        let g = mx.lock();
        // SAFETY: cancels the watchdog.
        unsafe { libc::alarm(0) };
        check(g.owner_died() && *g == 8, || "takeover not reported".into())?;
        check(t0.elapsed() < std::time::Duration::from_secs(1), || {
            format!("takeover took {:?}", t0.elapsed())
        })
    })();
    STRANGER.store(0, Ordering::Relaxed);
    // SAFETY: our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut status = 0;
    // SAFETY: reaping our own child; `status` is a valid out-param.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    outcome
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
    let scenarios: [(&str, Scenario); 12] = [
        ("mutex_counter", mutex_counter),
        ("alloc_free", alloc_free),
        ("timers", timers),
        ("hash_table", hash_table),
        ("dead_owner", dead_owner),
        ("futex_wakeup", futex_wakeup),
        ("lock_takeover", lock_takeover),
        ("kill_in_bucket_update", kill_in_bucket_update),
        ("kill_in_wheel_update", kill_in_wheel_update),
        ("kill_in_expiry", kill_in_expiry),
        ("kill_in_allocator", kill_in_allocator),
        // Last: it installs a membership test for the rest of the run.
        ("reused_pid", reused_pid),
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
