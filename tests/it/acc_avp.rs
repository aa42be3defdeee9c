//! acc and avpops through tm: accounting lines for answered and missed
//! calls, and AVPs that travel with the transaction — `fr_timer_avp`
//! shortens the FR timer, the failure route still sees what the request
//! route wrote.

use crate::common::ctlkit::text;
use crate::common::server::Ser;
use crate::common::sip::{first_line, header_value, Request, UdpPeer};
use crate::common::sipp::Sipp;
use crate::common::tmkit::tm_cfg;
use crate::common::{free_udp_port, serial, tests_path, TestDir};
use std::time::{Duration, Instant};

fn acc_cfg(port: u16, uas: u16) -> String {
    tm_cfg(
        port,
        2,
        r#"loadmodule "/usr/local/lib/ser/modules/acc.so"
modparam("acc", "log_flag", 1)
modparam("acc", "log_missed_flag", 2)"#,
        &format!(
            r#"route {{
    if (method == "INVITE") {{ setflag(1); setflag(2); }};
    if (method == "BYE") {{ setflag(1); acc_log_request("bye seen"); }};
    if (!t_relay_to_udp("127.0.0.1", "{uas}")) {{ sl_reply_error(); }};
}}"#
        ),
    )
}

/// Log lines containing every one of `parts`.
fn lines_with(log: &str, parts: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_string)
        .collect()
}

fn wait_for_lines(ser: &Ser, parts: &[&str], n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = lines_with(&ser.log(), parts);
        if found.len() >= n || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn acc_logs_an_answered_call_and_a_missed_one() {
    let _g = serial();
    let dir = TestDir::new();

    // Answered: sipp's own uac/uas through the proxy.
    let uas = Sipp::builtin("uas").timeout(Duration::from_secs(20));
    let port = free_udp_port();
    let ser = Ser::start(&acc_cfg(port, uas.port()));
    let callee = uas.spawn(&dir);
    Sipp::builtin("uac")
        .to(port)
        .calls(1)
        .timeout(Duration::from_secs(15))
        .run(&dir)
        .assert_all_ok(1);
    callee.stop();
    let answered = wait_for_lines(
        &ser,
        &["ACC: transaction answered:", "method=INVITE", "code=200"],
        1,
    );
    assert_eq!(answered.len(), 1, "{}", ser.log());
    let line = &answered[0];
    for field in ["i-uri=sip:service@", "o-uri=", "call_id=", "from="] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    assert_eq!(
        wait_for_lines(&ser, &["ACC: transaction answered:", "method=BYE"], 1).len(),
        1,
        "{}",
        ser.log()
    );
    assert_eq!(
        lines_with(
            &ser.log(),
            &["ACC: request accounted:", "method=BYE", "bye seen"]
        )
        .len(),
        1,
        "{}",
        ser.log()
    );
    assert!(lines_with(&ser.log(), &["ACC: call missed"]).is_empty());
    drop(ser);

    // Missed: the callee is busy; reported once, as missed, not answered.
    let busy =
        Sipp::scenario(&tests_path("scenarios/uas_486.xml")).timeout(Duration::from_secs(20));
    let port = free_udp_port();
    let ser = Ser::start(&acc_cfg(port, busy.port()));
    let callee = busy.spawn(&dir);
    Sipp::scenario(&tests_path("scenarios/uac_expect_486.xml"))
        .to(port)
        .calls(1)
        .timeout(Duration::from_secs(15))
        .run(&dir)
        .assert_all_ok(1);
    callee.stop();
    let missed = wait_for_lines(&ser, &["ACC: call missed:", "method=INVITE", "486"], 1);
    assert_eq!(missed.len(), 1, "{}", ser.log());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lines_with(&ser.log(), &["ACC: call missed:"]).len(),
        1,
        "{}",
        ser.log()
    );
    assert!(
        lines_with(&ser.log(), &["ACC: transaction answered:"]).is_empty(),
        "{}",
        ser.log()
    );
}

#[test]
fn fr_timer_avp_and_avps_in_the_failure_route() {
    let _g = serial();
    let silent = UdpPeer::bind();
    let port = free_udp_port();
    let cfg = tm_cfg(
        port,
        2,
        r#"loadmodule "/usr/local/lib/ser/modules/avpops.so"
modparam("tm", "fr_timer", 10)"#,
        &format!(
            r#"route {{
    if (uri =~ "^sip:fast@") {{
        avp_write("i:2", "callee_fr_timer");
        avp_write("$from/username", "s:caller");
        avp_pushto("$X-Caller", "s:caller");
        t_on_failure("1");
    }};
    t_relay_to_udp("127.0.0.1", "{silent}");
}}
failure_route[1] {{
    if (avp_check("callee_fr_timer", "eq/i:2")) {{
        t_reply("408", "Timeout, AVP kept");
    }};
}}"#,
            silent = silent.port()
        ),
    );
    let ser = Ser::start(&cfg);
    let caller = UdpPeer::bind();

    let fast = Request::new(
        "INVITE",
        &format!("sip:fast@127.0.0.1:{port}"),
        caller.port(),
    );
    let t0 = Instant::now();
    caller.send_to_port(&fast.build(), port);
    let (inv, _) = silent
        .recv_timeout(Duration::from_secs(3))
        .expect("relayed INVITE");
    assert_eq!(
        header_value(&inv, "X-Caller").as_deref(),
        Some("alice"),
        "{}",
        text(&inv)
    );
    let (r, _) = caller
        .recv_final(Duration::from_secs(6))
        .unwrap_or_else(|| panic!("no final reply:\n{}", ser.log()));
    let took = t0.elapsed();
    assert_eq!(
        first_line(&r),
        "SIP/2.0 408 Timeout, AVP kept",
        "{}",
        text(&r)
    );
    assert!(
        took >= Duration::from_millis(1500) && took <= Duration::from_millis(4500),
        "callee_fr_timer=2 s, fr_timer=10 s: the 408 came after {took:?}"
    );

    // Without the AVP the configured 10 s apply: nothing final in 4 s.
    let slow = Request::new(
        "INVITE",
        &format!("sip:slow@127.0.0.1:{port}"),
        caller.port(),
    );
    caller.send_to_port(&slow.build(), port);
    // (The first 408 is retransmitted meanwhile: it was never ACKed.)
    let slow_id = slow.call_id.clone();
    assert!(
        caller
            .recv_matching(Duration::from_secs(4), |m| {
                crate::common::sip::status_of(m).is_some_and(|c| c >= 200)
                    && header_value(m, "Call-ID").as_deref() == Some(slow_id.as_str())
            })
            .is_none(),
        "a final reply before fr_timer without the AVP"
    );
    drop(ser);
}
