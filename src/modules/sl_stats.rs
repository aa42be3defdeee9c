//! sl's reply counters and the `sl_stats` management command (SER 0.9's
//! sl module): how many stateless replies went out, by status — those of
//! `sl_send_reply`/`sl_reply_error` and the modules using them (registrar),
//! and the worker's own answers to broken or refused requests (400, 420,
//! 505, the overload 503), which go out through the same sender.
//!
//! The counters live in shared memory, allocated in `mod_init` before the
//! fork, so the replies of every worker count and the FIFO or unix socket
//! process, which sends none, reads the sum.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use shm::{Region, ShmError};

use crate::ctl::{CmdCtx, CtlCmd, Outcome, ParamError, Params, Reply};

/// The codes SER's sl counts one by one; the rest of each class is
/// counted as `Nxx`, and codes outside 200..=699 (1xx, which sl never
/// sends from a script, included) as `xxx`.
const SINGLE: [u16; 13] = [
    200, 202, 300, 301, 302, 400, 401, 403, 404, 407, 408, 483, 500,
];
/// Slots after the single codes: 2xx, 3xx, 4xx, 5xx, 6xx, xxx.
const CLASS_BASE: usize = SINGLE.len();
const SLOTS: usize = CLASS_BASE + 6;

shm::shm_struct! {
    /// One counter per slot (see [`slot_of`]).
    #[derive(Debug, Default)]
    pub struct SlStats {
        pub sent: [AtomicU64; SLOTS],
    }
}

static STATS: OnceLock<&'static SlStats> = OnceLock::new();

/// Allocate the counters. Once, before the fork.
pub fn init(region: &'static Region) -> Result<(), ShmError> {
    if STATS.get().is_some() {
        return Ok(());
    }
    let off = region.alloc(SlStats::default())?;
    let _ = STATS.set(region.get(off));
    Ok(())
}

/// Where a reply with status `code` is counted.
fn slot_of(code: u16) -> usize {
    if let Some(i) = SINGLE.iter().position(|c| *c == code) {
        return i;
    }
    match code {
        200..=699 => CLASS_BASE + usize::from(code / 100 - 2),
        _ => CLASS_BASE + 5,
    }
}

/// A stateless reply with status `code` was sent.
pub fn note_sent(code: u16) {
    if let Some(s) = STATS.get() {
        s.sent[slot_of(code)].fetch_add(1, Ordering::Relaxed);
    }
}

/// The counters now (all zero before [`init`]).
pub fn snapshot() -> [u64; SLOTS] {
    let mut out = [0u64; SLOTS];
    if let Some(s) = STATS.get() {
        for (o, a) in out.iter_mut().zip(s.sent.iter()) {
            *o = a.load(Ordering::Relaxed);
        }
    }
    out
}

/// The counters summed by class: `2xx`..`6xx`, then `other` (codes
/// outside 200..=699), for the metrics endpoint; `None` when sl is not
/// loaded.
pub fn by_class() -> Option<[(&'static str, u64); 6]> {
    STATS.get()?;
    Some(classes_of(&snapshot()))
}

fn classes_of(n: &[u64; SLOTS]) -> [(&'static str, u64); 6] {
    let mut out = [
        ("2xx", 0),
        ("3xx", 0),
        ("4xx", 0),
        ("5xx", 0),
        ("6xx", 0),
        ("other", 0),
    ];
    for (i, v) in n.iter().enumerate() {
        let class = match SINGLE.get(i) {
            Some(code) => usize::from(code / 100 - 2),
            None => i - CLASS_BASE,
        };
        if let Some(o) = out.get_mut(class) {
            o.1 += v;
        }
    }
    out
}

/// The body of `sl_stats`, one line per class as SER 0.9 wrote it.
fn lines(n: &[u64; SLOTS]) -> Vec<String> {
    let one = |code: u16| n[slot_of(code)];
    let class = |c: usize| n[CLASS_BASE + c];
    vec![
        format!("200: {} 202: {} 2xx: {}", one(200), one(202), class(0)),
        format!(
            "300: {} 301: {} 302: {} 3xx: {}",
            one(300),
            one(301),
            one(302),
            class(1)
        ),
        format!(
            "400: {} 401: {} 403: {} 404: {} 407: {} 408: {} 483: {} 4xx: {}",
            one(400),
            one(401),
            one(403),
            one(404),
            one(407),
            one(408),
            one(483),
            class(2)
        ),
        format!("500: {} 5xx: {}", one(500), class(3)),
        format!("6xx: {}", class(4)),
        format!("xxx: {}", class(5)),
    ]
}

fn sl_stats(_: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, ParamError> {
    Ok(Reply::ok(lines(&snapshot())).into())
}

pub static COMMANDS: &[CtlCmd] = &[CtlCmd {
    name: "sl_stats",
    handler: sl_stats,
}];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_land_in_their_own_slot_or_their_class() {
        for (code, slot) in [(200, 0), (202, 1), (404, 8), (483, 11), (500, 12)] {
            assert_eq!(slot_of(code), slot, "{code}");
        }
        assert_eq!(slot_of(201), CLASS_BASE);
        assert_eq!(slot_of(305), CLASS_BASE + 1);
        assert_eq!(slot_of(486), CLASS_BASE + 2);
        assert_eq!(slot_of(503), CLASS_BASE + 3);
        assert_eq!(slot_of(603), CLASS_BASE + 4);
        assert_eq!(slot_of(180), CLASS_BASE + 5);
        assert_eq!(slot_of(700), CLASS_BASE + 5);
        assert_eq!(slot_of(0), CLASS_BASE + 5);
    }

    #[test]
    fn classes_sum_the_single_codes_and_the_rest() {
        let mut n = [0u64; SLOTS];
        for (code, times) in [(200, 2), (202, 1), (299, 4), (404, 3), (486, 1), (100, 5)] {
            for _ in 0..times {
                n[slot_of(code)] += 1;
            }
        }
        assert_eq!(
            classes_of(&n),
            [
                ("2xx", 7),
                ("3xx", 0),
                ("4xx", 4),
                ("5xx", 0),
                ("6xx", 0),
                ("other", 5)
            ]
        );
    }

    #[test]
    fn the_body_names_every_slot_once() {
        let mut n = [0u64; SLOTS];
        for (i, v) in n.iter_mut().enumerate() {
            *v = 100 + i as u64;
        }
        let text = lines(&n).join("\n");
        for v in n {
            assert_eq!(text.matches(&format!(" {v}")).count(), 1, "{v} in\n{text}");
        }
        assert_eq!(
            lines(&n)[0],
            format!("200: 100 202: 101 2xx: {}", 100 + CLASS_BASE)
        );
        assert_eq!(lines(&[0; SLOTS])[5], "xxx: 0");
    }
}
