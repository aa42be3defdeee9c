//! What tm reports about itself and how it behaves when shared memory
//! runs out: the `waiting` figure of `tm stats` / `t_stats`, and `503` +
//! `Retry-After` (never a 500) when no transaction fits in shm.

use crate::common::ctlkit::{self, fifo_of, serctl, text};
use crate::common::sip::{header_value, reply_to};
use crate::common::tmkit::*;
use crate::common::*;
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

/// Most calls a test may make before shm must be full (`-m 3` leaves
/// about 1 MB beside the transaction table; each held call keeps two
/// copies of a 16 KB INVITE).
const MAX_HELD: usize = 150;

/// A server with 3 MB of shm is filled with INVITEs whose callee answers
/// only 100: the next call is refused `503` with `Retry-After` (the
/// overload answer, not `500`). Once the held calls end (486, ACKed), shm
/// use is back where it was before the first call.
#[test]
fn shm_full_gives_503_with_retry_after_and_the_memory_comes_back() {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let routes = format!(
        "route {{\n    if (!t_relay_to_udp(\"127.0.0.1\", \"{}\")) {{\n        sl_reply_error();\n    }}\n}}\n",
        callee.port()
    );
    let ser = Ser::start_with_args(&tm_cfg(port, 2, "", &routes), &["-m", "3"]);
    let idle = tm_stats(&ser).shm_used;
    let body = vec![b'x'; 16 * 1024];
    let mut sent: Vec<Request> = Vec::new();
    let mut held: Vec<Heard> = Vec::new();
    let mut refused = None;
    for _ in 0..MAX_HELD {
        let inv = Request::new(
            "INVITE",
            &format!("sip:bob@127.0.0.1:{port}"),
            caller.port(),
        )
        .header("Content-Type", "text/plain")
        .body(&body);
        caller.send_to_port(&inv.build(), port);
        sent.push(inv);
        let heard = pump(&[&caller, &callee], Duration::from_secs(3), |h| {
            if h.who == 1 && method_of(&h.msg).as_deref() == Some("INVITE") {
                callee.send(&reply_to(&h.msg, 100, "Trying", None), h.from);
                return true;
            }
            h.who == 0 && status_of(&h.msg).is_some_and(|c| c >= 200)
        });
        let last = heard
            .last()
            .cloned()
            .unwrap_or_else(|| panic!("call {} got nowhere:\n{}", sent.len(), ser.log()));
        if last.who == 1 {
            held.push(last);
        } else if status_of(&last.msg).is_some_and(|c| c >= 200) {
            refused = Some(last.msg);
            break;
        }
    }
    let refused = refused
        .unwrap_or_else(|| panic!("{} calls held and none refused:\n{}", held.len(), ser.log()));
    assert!(!held.is_empty(), "the very first call was refused");
    // The first refusal usually comes from tm (the INVITE fitted, its
    // branch did not); the next call finds no room for a transaction at
    // all and the script's sl_reply_error() answers. Both are overload.
    let inv = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    )
    .header("Content-Type", "text/plain")
    .body(&body);
    caller.send_to_port(&inv.build(), port);
    sent.push(inv);
    let (again, _) = caller
        .recv_final(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no answer to a call on a full server:\n{}", ser.log()));
    for r in [&refused, &again] {
        let text = String::from_utf8_lossy(r);
        assert_eq!(status_of(r), Some(503), "shm full: {text}\n{}", ser.log());
        assert!(
            header_value(r, "Retry-After").is_some(),
            "503 without Retry-After: {text}"
        );
    }

    // End every call: the callee answers 486, the caller ACKs each final
    // (the refused call's too, in case tm answered it statefully).
    for h in &held {
        callee.send(&reply_to(&h.msg, 486, "Busy Here", Some("b")), h.from);
    }
    let ack = |reply: &[u8]| {
        let call_id = header_value(reply, "Call-ID").unwrap_or_default();
        if let Some(inv) = sent.iter().find(|r| r.call_id == call_id) {
            caller.send_to_port(&ack_for(inv, reply).build(), port);
        }
    };
    ack(&refused);
    ack(&again);
    let mut finals = 0;
    let _ = pump(&[&caller, &callee], Duration::from_secs(5), |h| {
        if h.who == 0 && status_of(&h.msg).is_some_and(|c| c >= 300) {
            ack(&h.msg);
            finals += 1;
        }
        finals >= held.len()
    });
    assert_eq!(finals, held.len(), "finals for held calls:\n{}", ser.log());
    let s = stats_until(&ser, Duration::from_secs(20), |s| {
        s.current == 0 && s.shm_used == idle
    });
    assert_eq!(
        (s.current, s.shm_used),
        (0, idle),
        "transactions or shm left after the calls ended: {s:?}"
    );
}

/// Sends INVITEs with `body_len`-byte bodies until one is refused (or
/// `max` were held); the callee answers 100 to each held one. Returns how
/// many were held.
fn hold_until_refused(
    caller: &UdpPeer,
    callee: &UdpPeer,
    port: u16,
    body_len: usize,
    max: usize,
    ser: &Ser,
) -> usize {
    let body = vec![b'x'; body_len];
    for held in 0..max {
        let inv = Request::new(
            "INVITE",
            &format!("sip:bob@127.0.0.1:{port}"),
            caller.port(),
        )
        .header("Content-Type", "text/plain")
        .body(&body);
        caller.send_to_port(&inv.build(), port);
        let heard = pump(&[caller, callee], Duration::from_secs(3), |h| {
            if h.who == 1 && method_of(&h.msg).as_deref() == Some("INVITE") {
                callee.send(&reply_to(&h.msg, 100, "Trying", None), h.from);
                return true;
            }
            h.who == 0 && status_of(&h.msg).is_some_and(|c| c >= 200)
        });
        match heard.last() {
            Some(h) if h.who == 1 => {}
            Some(_) => return held,
            None => panic!("a {body_len}-byte call got nowhere:\n{}", ser.log()),
        }
    }
    max
}

/// A server with 3 MB of shm holding `big`, an INVITE whose From header
/// is 12 KB (the callee answered 100), then filled with held calls in ever
/// smaller pieces until even a body-less INVITE is refused: well under
/// 12 KB stay free, so nothing that echoes `big`'s From fits any more.
struct FullServer {
    ser: Ser,
    caller: UdpPeer,
    callee: UdpPeer,
    port: u16,
    big: Request,
    /// When the callee answered `big` with 100.
    held_at: Instant,
}

fn big_call_on_full_server(modparams: &str) -> FullServer {
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let routes = format!(
        "route {{\n    if (!t_relay_to_udp(\"127.0.0.1\", \"{}\")) {{\n        sl_reply_error();\n    }}\n}}\n",
        callee.port()
    );
    let ser = Ser::start_with_args(&tm_cfg(port, 2, modparams, &routes), &["-m", "3"]);
    let mut big = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    );
    big.from = format!("\"{}\" {}", "n".repeat(12 * 1024), big.from);
    caller.send_to_port(&big.build(), port);
    let (fwd, from) = callee
        .recv_matching(Duration::from_secs(3), |m| {
            method_of(m).as_deref() == Some("INVITE")
        })
        .unwrap_or_else(|| panic!("big INVITE not relayed:\n{}", ser.log()));
    callee.send(&reply_to(&fwd, 100, "Trying", None), from);
    let held_at = Instant::now();
    for len in [16384, 8192, 4096, 2048, 1024, 512, 0] {
        hold_until_refused(&caller, &callee, port, len, 200, &ser);
    }
    FullServer {
        ser,
        caller,
        callee,
        port,
        big,
        held_at,
    }
}

/// With shm full to the last few KB, the FR timer of a held call whose
/// From header is 12 KB fires: neither its CANCEL nor its 408 (both echo
/// that header) fit in shm. Both must still be retransmitted — the 408
/// until the caller ACKs, the CANCEL until the callee answers it — not
/// sent once (and the 408 not replaced by the 100 kept before it).
#[test]
fn local_cancel_and_408_are_retransmitted_when_shm_cannot_keep_them() {
    let _g = serial();
    let params = "modparam(\"tm\", \"fr_inv_timer\", 6)\nmodparam(\"tm\", \"noisy_ctimer\", 1)\n";
    let full = big_call_on_full_server(params);
    let (ser, caller, callee, big) = (&full.ser, &full.caller, &full.callee, &full.big);
    assert!(
        full.held_at.elapsed() < Duration::from_secs(5),
        "filling took too long for the FR timer: {:?}",
        full.held_at.elapsed()
    );

    // The big call's FR timer fires about 6 s after its 100.
    let big_call = |m: &[u8]| header_value(m, "Call-ID").as_deref() == Some(big.call_id.as_str());
    let mut finals = Vec::new();
    let mut cancels = Vec::new();
    let _ = pump(&[caller, callee], Duration::from_secs(12), |h| {
        if !big_call(&h.msg) {
            return false;
        }
        if h.who == 0 && status_of(&h.msg).is_some() {
            finals.push((h.at, status_of(&h.msg)));
        }
        if h.who == 1 && method_of(&h.msg).as_deref() == Some("CANCEL") {
            cancels.push(h.at);
        }
        finals.iter().filter(|f| f.1 == Some(408)).count() >= 3 && cancels.len() >= 3
    });
    let text = format!(
        "finals to the caller: {:?}\nCANCELs to the callee: {}\nser log:\n{}",
        finals.iter().map(|f| f.1).collect::<Vec<_>>(),
        cancels.len(),
        ser.log()
    );
    assert!(
        ser.log().contains("out of shared memory storing a CANCEL"),
        "the CANCEL fitted in shm after all: the test proves nothing\n{text}"
    );
    let first_408 = finals
        .iter()
        .position(|f| f.1 == Some(408))
        .unwrap_or_else(|| panic!("no 408:\n{text}"));
    assert!(
        finals[first_408..].iter().all(|f| f.1 == Some(408)),
        "after the 408 the caller got something else:\n{text}"
    );
    assert!(
        finals.len() - first_408 >= 3,
        "408 not retransmitted:\n{text}"
    );
    assert!(cancels.len() >= 3, "CANCEL not retransmitted:\n{text}");
}

/// With shm full, the caller CANCELs the held call whose From is 12 KB:
/// the CANCEL cannot get a transaction of its own, yet it must still end
/// the call (ending calls is what frees shm): 200 to the caller, CANCEL
/// to the callee — not 503.
#[test]
fn cancel_still_ends_a_call_when_shm_has_no_room_for_its_transaction() {
    let _g = serial();
    let full = big_call_on_full_server("");
    let (ser, caller, callee) = (&full.ser, &full.caller, &full.callee);
    caller.drain();
    callee.drain();
    caller.send_to_port(&cancel_for(&full.big).build(), full.port);
    let big_call =
        |m: &[u8]| header_value(m, "Call-ID").as_deref() == Some(full.big.call_id.as_str());
    let mut cancel_answer = None;
    let mut cancelled = false;
    let _ = pump(&[caller, callee], Duration::from_secs(5), |h| {
        if big_call(&h.msg) {
            if h.who == 0 && is_reply_for(&h.msg, "CANCEL") {
                cancel_answer = status_of(&h.msg);
            }
            if h.who == 1 && method_of(&h.msg).as_deref() == Some("CANCEL") {
                cancelled = true;
            }
        }
        cancel_answer.is_some() && cancelled
    });
    let text = ser.log();
    assert_eq!(cancel_answer, Some(200), "answer to the CANCEL:\n{text}");
    assert!(cancelled, "the callee got no CANCEL:\n{text}");
}
