//! SER 0.9's `uri` and `pike` modules. uri: `has_totag`, `uri_param`,
//! `add_uri_param`, `tel2sip` and `is_user` as a script sees them, and
//! their route types checked at load. pike: a flood from one address is
//! refused once over `reqs_density_per_unit` while a second source
//! address (127.0.0.2) is still served — the counts are in shm, shared by
//! both workers.

use crate::common::server::{check_config, Ser};
use crate::common::{free_udp_port, header_value, serial, status_of, Request, TestDir, UdpPeer};
use std::time::{Duration, Instant};

fn cfg(port: u16, modules: &[&str], params: &str, route: &str) -> String {
    let loads: String = modules
        .iter()
        .map(|m| format!("loadmodule \"/usr/local/lib/ser/modules/{m}.so\"\n"))
        .collect();
    format!(
        "debug=2\nlog_stderror=yes\nlisten=udp:127.0.0.1:{port}\nchildren=2\nfifo=\"\"\n\
         loadmodule \"/usr/local/lib/ser/modules/sl.so\"\n{loads}{params}\n\
         route {{\n{route}\n}}\n"
    )
}

/// Sends `req` from `peer` and returns the final reply.
fn ask(peer: &UdpPeer, port: u16, req: &Request) -> Vec<u8> {
    peer.send_to_port(&req.build(), port);
    peer.recv_final(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no reply to {} {}", req.method, req.uri))
        .0
}

fn code(peer: &UdpPeer, port: u16, req: &Request) -> u16 {
    status_of(&ask(peer, port, req)).unwrap_or(0)
}

const URI_ROUTE: &str = r#"    if (method == "OPTIONS") {
        if (has_totag()) { sl_send_reply("201", "to-tag"); } else { sl_send_reply("202", "no to-tag"); };
        break;
    };
    if (method == "MESSAGE") {
        if (uri_param("transport", "udp")) { sl_send_reply("203", "udp"); break; };
        if (uri_param("lr")) { sl_send_reply("204", "lr"); break; };
        sl_send_reply("205", "neither");
        break;
    };
    if (method == "INFO") {
        if (is_user("alice")) { sl_send_reply("206", "alice"); break; };
        tel2sip();
        add_uri_param("x=1");
        sl_send_reply("302", "Moved");
        break;
    };
    sl_send_reply("500", "unexpected");"#;

#[test]
fn uri_checks_and_rewrites_the_request_uri() {
    let _g = serial();
    let port = free_udp_port();
    let ser = Ser::start(&cfg(port, &["uri"], "", URI_ROUTE));
    let ua = UdpPeer::bind();
    let target = format!("sip:bob@127.0.0.1:{port}");

    let mut opt = Request::new("OPTIONS", &target, ua.port());
    assert_eq!(code(&ua, port, &opt), 202);
    opt.to = "<sip:bob@127.0.0.1>;tag=abc".into();
    assert_eq!(code(&ua, port, &opt), 201);

    for (uri, want) in [
        (format!("{target};transport=udp"), 203),
        (format!("{target};lr;transport=tcp"), 204),
        (format!("{target};transport=tcp"), 205),
        // `lr=on` has a value: not "lr without value".
        (format!("{target};lr=on"), 205),
    ] {
        let m = Request::new("MESSAGE", &uri, ua.port());
        assert_eq!(code(&ua, port, &m), want, "{uri}");
    }

    // No credentials: is_user is false; a tel: R-URI becomes sip: in the
    // From host with user=phone, and add_uri_param appends to it.
    let mut info = Request::new("INFO", "tel:+4930123", ua.port());
    info.from = "<sip:alice@example.com>;tag=f1".into();
    let r = ask(&ua, port, &info);
    assert_eq!(status_of(&r), Some(302), "{}", String::from_utf8_lossy(&r));
    let contact = header_value(&r, "Contact").expect("a Contact in the 302");
    assert!(
        contact.contains("sip:+4930123@example.com;user=phone;x=1"),
        "{contact}"
    );
    // A sip: R-URI is left as it is by tel2sip.
    let info = Request::new("INFO", &format!("{target};lr"), ua.port());
    let r = ask(&ua, port, &info);
    let contact = header_value(&r, "Contact")
        .unwrap_or_else(|| panic!("no Contact in {}", String::from_utf8_lossy(&r)));
    assert!(contact.contains(&format!("{target};lr;x=1")), "{contact}");
    drop(ser);
}

#[test]
fn uri_and_pike_functions_load_only_in_request_routes() {
    let dir = TestDir::new();
    let port = free_udp_port();
    for f in [
        "is_user(\"a\")",
        "has_totag()",
        "uri_param(\"lr\")",
        "add_uri_param(\"a=b\")",
        "tel2sip()",
        "pike_check_req()",
    ] {
        let text = format!(
            "{}failure_route[1] {{\n    {f};\n}}\n",
            cfg(
                port,
                &["tm", "uri", "pike"],
                "",
                "    t_on_failure(\"1\");\n    t_relay();"
            )
        );
        let r = check_config(&dir.write("ser.cfg", text.as_bytes()));
        assert_ne!(r.code(), Some(0), "{f} accepted in a failure route");
        assert!(r.stderr.contains("ser.cfg:"), "{f}: {}", r.stderr);
    }
    // Arity and parameters SER did not have are refused.
    for (params, route) in [
        ("", "    uri_param(\"a\", \"b\", \"c\");"),
        ("", "    is_user();"),
        (
            "modparam(\"pike\", \"pike_log_level\", 1)",
            "    pike_check_req();",
        ),
        (
            "modparam(\"pike\", \"reqs_density_per_unit\", 0)",
            "    pike_check_req();",
        ),
    ] {
        let text = cfg(port, &["uri", "pike"], params, route);
        let r = check_config(&dir.write("bad.cfg", text.as_bytes()));
        assert_ne!(r.code(), Some(0), "{params} {route} accepted");
    }
    let ok = cfg(
        port,
        &["uri", "pike"],
        "modparam(\"pike\", \"sampling_time_unit\", 2)\n\
         modparam(\"pike\", \"reqs_density_per_unit\", 30)\n\
         modparam(\"pike\", \"remove_latency\", 120)",
        "    if (!pike_check_req()) { drop; };\n    uri_param(\"a\", \"b\");",
    );
    let r = check_config(&dir.write("ok.cfg", ok.as_bytes()));
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
}

const DENSITY: usize = 10;

/// A flood from 127.0.0.1 is refused with the script's 503 once over the
/// density (SER: after between x and 3x requests of a new address), and
/// stays refused while it goes on; 127.0.0.2 is served meanwhile. The
/// flood is a bounded number of requests, each waiting for its answer.
#[test]
fn pike_refuses_a_flood_from_one_address_and_serves_others() {
    let _g = serial();
    let port = free_udp_port();
    let ser = Ser::start(&cfg(
        port,
        &["pike"],
        &format!(
            "modparam(\"pike\", \"sampling_time_unit\", 10)\n\
             modparam(\"pike\", \"reqs_density_per_unit\", {DENSITY})\n\
             modparam(\"pike\", \"remove_latency\", 60)"
        ),
        r#"    if (!pike_check_req()) {
        sl_send_reply("503", "Flood");
        break;
    };
    sl_send_reply("200", "OK");"#,
    ));
    let started = Instant::now();
    let flooder = UdpPeer::bind();
    let target = format!("sip:bob@127.0.0.1:{port}");
    let mut first_refused = None;
    for i in 1..=4 * DENSITY {
        let c = code(
            &flooder,
            port,
            &Request::new("OPTIONS", &target, flooder.port()),
        );
        match (c, first_refused) {
            (200, None) => {}
            (503, None) => first_refused = Some(i),
            (503, Some(_)) => {}
            _ => panic!("request {i}: {c} (first refusal at {first_refused:?})"),
        }
    }
    let n = first_refused.expect("the flood was never refused");
    assert!(
        (DENSITY..=3 * DENSITY).contains(&n),
        "first refusal after {n} requests"
    );
    // Another source address is still served, a few times over.
    let other = UdpPeer::bind_ip([127, 0, 0, 2]);
    for _ in 0..5 {
        let c = code(
            &other,
            port,
            &Request::new("OPTIONS", &target, other.port()).via_host("127.0.0.2"),
        );
        assert_eq!(c, 200, "127.0.0.2 refused");
    }
    // And the flooder is still refused.
    assert_eq!(
        code(
            &flooder,
            port,
            &Request::new("OPTIONS", &target, flooder.port())
        ),
        503
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(ser);
}
