//! The figures, read from shared memory at scrape time: tm, sl, usrloc,
//! the shm allocator, and every receiving process's counters in the
//! process table. Nothing here reads another process's private memory.

use crate::metrics::text::{Family, Kind, Sample, Value};

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// Every family, in a fixed order; families of parts not running (tm or
/// sl not loaded, usrloc without a table) are left out.
pub fn families() -> Vec<Family> {
    let mut out = Vec::with_capacity(24);
    let mut info = Family::new(
        "ser_build_info",
        Kind::Gauge,
        "Always 1; the version label says which ser answers.",
    );
    info.samples.push(Sample::labelled(
        vec![("version", crate::util::version::version_tag())],
        Value::Int(1),
    ));
    out.push(info);
    tm(&mut out);
    sl(&mut out);
    usrloc(&mut out);
    shm_figures(&mut out);
    receivers(&mut out);
    out.push(Family::single(
        "ser_process_restarts_total",
        Kind::Counter,
        "Processes started again after they died.",
        Value::Int(crate::proc::shared::restarts()),
    ));
    out
}

fn tm(out: &mut Vec<Family>) {
    if crate::tm::stats::stats().is_none() {
        return;
    }
    let s = crate::tm::stats::snapshot();
    let one = |name, kind, help, v| Family::single(name, kind, help, Value::Int(v));
    out.push(one(
        "ser_tm_transactions_created_total",
        Kind::Counter,
        "Transactions created.",
        s.created,
    ));
    out.push(one(
        "ser_tm_transactions_freed_total",
        Kind::Counter,
        "Transactions freed.",
        s.freed,
    ));
    out.push(one(
        "ser_tm_transactions_current",
        Kind::Gauge,
        "Transactions in memory now (created - freed).",
        s.current(),
    ));
    out.push(one(
        "ser_tm_transactions_waiting",
        Kind::Gauge,
        "Transactions in their wait phase now.",
        s.waiting,
    ));
    out.push(one(
        "ser_tm_uac_transactions_total",
        Kind::Counter,
        "Transactions started by ser itself (t_uac).",
        s.local,
    ));
    out.push(one(
        "ser_tm_local_replies_total",
        Kind::Counter,
        "Final replies tm made itself rather than relayed.",
        s.replied_locally,
    ));
    out.push(by_class(
        "ser_tm_replies_total",
        "Replies tm sent upstream (relayed or its own, provisional included), \
         by class; retransmissions not counted.",
        &s.sent,
    ));
    out.push(by_class(
        "ser_tm_final_replies_total",
        "Transactions completed by the final reply sent upstream, by class.",
        &s.completed,
    ));
}

/// A counter labelled `class="1xx"`..`"6xx"` from tm's 7-slot arrays.
fn by_class(name: &'static str, help: &'static str, n: &[u64; 7]) -> Family {
    let mut f = Family::new(name, Kind::Counter, help);
    for (class, v) in CLASSES.iter().zip(n.iter().skip(1)) {
        f.samples.push(Sample::labelled(
            vec![("class", (*class).to_string())],
            Value::Int(*v),
        ));
    }
    f
}

fn sl(out: &mut Vec<Family>) {
    let Some(classes) = crate::modules::sl_stats::by_class() else {
        return;
    };
    let mut f = Family::new(
        "ser_sl_replies_total",
        Kind::Counter,
        "Stateless replies sent (sl_send_reply, sl_reply_error, the worker's own \
         answers), by class; other = codes outside 200..699.",
    );
    for (class, v) in classes {
        f.samples.push(Sample::labelled(
            vec![("class", class.to_string())],
            Value::Int(v),
        ));
    }
    out.push(f);
}

fn usrloc(out: &mut Vec<Family>) {
    let Some(tables) = crate::modules::usrloc::table_figures() else {
        return;
    };
    let mut aors = Family::new(
        "ser_usrloc_aors",
        Kind::Gauge,
        "Addresses of record holding bindings, by usrloc table.",
    );
    let mut bindings = Family::new(
        "ser_usrloc_bindings",
        Kind::Gauge,
        "Bindings (contacts) stored, by usrloc table; expired ones count until swept.",
    );
    for t in tables {
        aors.samples.push(Sample::labelled(
            vec![("table", t.table.clone())],
            Value::Int(t.aors),
        ));
        bindings.samples.push(Sample::labelled(
            vec![("table", t.table)],
            Value::Int(t.bindings),
        ));
    }
    out.push(aors);
    out.push(bindings);
}

fn shm_figures(out: &mut Vec<Family>) {
    let Some(region) = shm::try_global() else {
        return;
    };
    let s = region.stats();
    let one = |name, kind, help, v| Family::single(name, kind, help, Value::Int(v));
    out.push(one(
        "ser_shm_total_bytes",
        Kind::Gauge,
        "Bytes of shared memory the allocator manages.",
        s.total,
    ));
    out.push(one(
        "ser_shm_used_bytes",
        Kind::Gauge,
        "Bytes of shared memory in use (block headers included).",
        s.used,
    ));
    out.push(one(
        "ser_shm_free_bytes",
        Kind::Gauge,
        "Bytes of shared memory free.",
        s.free,
    ));
    out.push(one(
        "ser_shm_max_used_bytes",
        Kind::Gauge,
        "Most bytes of shared memory in use at once since start.",
        s.peak_used,
    ));
    out.push(one(
        "ser_shm_alloc_failures_total",
        Kind::Counter,
        "Shared memory allocations refused for lack of room.",
        s.failures,
    ));
}

/// Per receiving process (UDP workers, TCP readers): messages, queueing
/// delay, admission-control refusals.
fn receivers(out: &mut Vec<Family>) {
    let mut received = Family::new(
        "ser_received_messages_total",
        Kind::Counter,
        "SIP messages a receiving process took from its socket (UDP) or from the TCP main process.",
    );
    let mut delay = Family::new(
        "ser_queue_delay_seconds",
        Kind::Summary,
        "Time UDP messages waited in the socket: the kernel's arrival stamp \
         (SO_TIMESTAMPNS) to the read that starts processing. TCP readers have no stamp.",
    );
    let mut refused = Family::new(
        "ser_admission_refused_total",
        Kind::Counter,
        "New requests refused with 503 by admission control (queueing delay over 80 ms).",
    );
    for r in crate::proc::shared::receivers() {
        let labels = || vec![("process", r.slot.to_string()), ("desc", r.desc.clone())];
        received
            .samples
            .push(Sample::labelled(labels(), Value::Int(r.received)));
        delay.samples.push(Sample {
            suffix: "_sum",
            labels: labels(),
            value: Value::Float(r.queued_ns as f64 / 1e9),
        });
        delay.samples.push(Sample {
            suffix: "_count",
            labels: labels(),
            value: Value::Int(r.queued_n),
        });
        refused
            .samples
            .push(Sample::labelled(labels(), Value::Int(r.refused)));
    }
    out.extend([received, delay, refused]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without shm (a unit test process) the families that exist still
    /// follow the naming rules: counters end in `_total`, nothing else
    /// does, every name is ser_-prefixed and valid.
    #[test]
    fn names_follow_the_conventions() {
        for f in families() {
            let valid = f
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            assert!(valid && f.name.starts_with("ser_"), "{}", f.name);
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
        }
        let by_class = by_class("x_total", "h", &[9, 1, 2, 3, 4, 5, 6]);
        let got: Vec<(String, Value)> = by_class
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.value))
            .collect();
        assert_eq!(got[0], ("1xx".to_string(), Value::Int(1)));
        assert_eq!(got[5], ("6xx".to_string(), Value::Int(6)));
        assert_eq!(got.len(), 6);
    }
}
