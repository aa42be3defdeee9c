//! What tm reports about itself and how it behaves when shared memory
//! runs out: the `waiting` figure of `tm stats` / `t_stats`, and `503` +
//! `Retry-After` (never a 500) when no transaction fits in shm.

mod common;

use common::ctlkit::{self, fifo_of, serctl, text};
use common::sip::reply_to;
use common::tmkit::*;
use common::*;
use std::time::{Duration, Instant};

/// Polls the SIGUSR1 figures until `ok` holds (or `limit` passes).
fn stats_until(ser: &Ser, limit: Duration, ok: impl Fn(&TmStats) -> bool) -> TmStats {
    let deadline = Instant::now() + limit;
    loop {
        let s = tm_stats(ser);
        if ok(&s) || Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A MESSAGE relayed and answered 200 leaves its transaction in the wait
/// phase for `wt_timer`: both the SIGUSR1 line and `t_stats` count it as
/// waiting, and the count returns to 0 once the cell is freed.
#[test]
fn transaction_in_wait_phase_is_counted_as_waiting() {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let routes = format!(
        "modparam(\"tm\", \"wt_timer\", 5)\nroute {{\n    t_relay_to_udp(\"127.0.0.1\", \"{}\");\n}}\n",
        callee.port()
    );
    let ser = ctlkit::start(TestDir::new(), port, &routes);
    let msg = Request::new(
        "MESSAGE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    )
    .body(b"hello");
    caller.send_to_port(&msg.build(), port);
    let (fwd, from) = callee
        .recv_timeout(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("MESSAGE not relayed:\n{}", ser.log()));
    callee.send(&reply_to(&fwd, 200, "OK", Some("b1")), from);
    let (rep, _) = caller
        .recv_final(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no final reply:\n{}", ser.log()));
    assert_eq!(status_of(&rep), Some(200));

    let s = tm_stats(&ser);
    assert_eq!(
        (s.current, s.waiting),
        (1, 1),
        "one transaction, in its wait phase: {s:?}\n{}",
        ser.log()
    );
    let st = text(&serctl(&["-f", fifo_of(&ser).to_str().unwrap()], &["stats"]).stdout);
    assert!(st.contains("(1 waiting)"), "t_stats: {st}");

    let s = stats_until(&ser, Duration::from_secs(15), |s| s.current == 0);
    assert_eq!((s.current, s.waiting), (0, 0), "after wt_timer: {s:?}");
}
