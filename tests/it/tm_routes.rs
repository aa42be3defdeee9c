//! tm functions and the route types they live in: where `ser -c` accepts
//! each one (SER 0.9/2.x export masks), relaying with an explicit next hop
//! from a failure route, and re-arming the failure route from an onreply
//! route (SER's 183 example).

use crate::common::server::check_config;
use crate::common::sip::reply_to;
use crate::common::tmkit::*;
use crate::common::*;
use std::time::{Duration, Instant};

const CALLER: usize = 0;

/// An INVITE from `caller` whose R-URI names 127.0.0.1:`ruri_port`.
fn invite(caller: &UdpPeer, ruri_port: u16) -> Request {
    Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{ruri_port}"),
        caller.port(),
    )
    .header(
        "Contact",
        &format!("<sip:alice@127.0.0.1:{}>", caller.port()),
    )
}

fn codes_for(heard: &[Heard], who: usize) -> Vec<u16> {
    heard
        .iter()
        .filter(|h| h.who == who && is_reply_for(&h.msg, "INVITE"))
        .filter_map(|h| status_of(&h.msg))
        .collect()
}

fn invites_to(heard: &[Heard], who: usize) -> Vec<&Heard> {
    heard
        .iter()
        .filter(|h| h.who == who && method_of(&h.msg).as_deref() == Some("INVITE"))
        .collect()
}

// --- where each function may be called ----------------------------------

const REQ: u8 = 1;
const FAIL: u8 = 2;
const ONREPLY: u8 = 4;
const BRANCH: u8 = 8;

/// The block kinds a tm function can be written in, as the config names
/// them, with the bit used in `ALLOWED`.
const BLOCKS: &[(u8, &str)] = &[
    (REQ, "route"),
    (FAIL, "failure_route[1]"),
    (ONREPLY, "onreply_route[1]"),
    (BRANCH, "branch_route[1]"),
];

/// Each tm function with valid arguments and the route types SER's tm
/// module exports it for (the masks of 0.9's and 2.x's `cmds[]`; the 0.8
/// names `t_relay_to` and `t_on_negative` as their 0.9 twins).
const ALLOWED: &[(&str, u8)] = &[
    ("t_relay()", REQ | FAIL),
    ("t_relay(\"127.0.0.1\", \"5060\")", REQ | FAIL),
    ("t_relay_to(\"127.0.0.1\", \"5060\")", REQ | FAIL),
    ("t_relay_to_udp(\"127.0.0.1\", \"5060\")", REQ | FAIL),
    ("t_relay_to_tcp(\"127.0.0.1\", \"5060\")", REQ | FAIL),
    ("t_relay_to_tls(\"127.0.0.1\", \"5061\")", REQ | FAIL),
    ("t_replicate(\"127.0.0.1\", \"5060\")", REQ),
    ("t_replicate_udp(\"127.0.0.1\", \"5060\")", REQ),
    ("t_replicate_tcp(\"127.0.0.1\", \"5060\")", REQ),
    ("t_replicate_tls(\"127.0.0.1\", \"5061\")", REQ),
    ("t_forward_nonack(\"127.0.0.1\", \"5060\")", REQ),
    ("t_forward_nonack_uri()", REQ),
    ("t_forward_nonack_udp(\"127.0.0.1\", \"5060\")", REQ),
    ("t_forward_nonack_tcp(\"127.0.0.1\", \"5060\")", REQ),
    ("t_forward_nonack_tls(\"127.0.0.1\", \"5061\")", REQ),
    ("t_replicate_to(\"udp\", \"127.0.0.1:5060\")", REQ),
    ("t_forward_nonack_to(\"tcp\", \"127.0.0.1\")", REQ),
    ("t_relay_to_avp(\"$proto\", \"$dst\")", REQ),
    ("t_on_failure(\"1\")", REQ | FAIL | ONREPLY),
    ("t_on_negative(\"1\")", REQ | FAIL | ONREPLY),
    ("t_on_reply(\"1\")", REQ | FAIL | ONREPLY),
    ("t_check_status(\"2[0-9][0-9]\")", REQ | FAIL | ONREPLY),
    // SER 2.1: branch routes and per-transaction timers.
    ("t_on_branch(\"1\")", REQ | FAIL),
    ("t_set_fr(10000)", REQ | FAIL | ONREPLY | BRANCH),
    ("t_set_fr(50000, 2000)", REQ | FAIL | ONREPLY | BRANCH),
    ("t_reset_fr()", REQ | FAIL | ONREPLY | BRANCH),
    ("t_set_retr(500, 2000)", REQ | FAIL | ONREPLY | BRANCH),
    ("t_reset_retr()", REQ | FAIL | ONREPLY | BRANCH),
    (
        "t_set_max_lifetime(10000, 2000)",
        REQ | FAIL | ONREPLY | BRANCH,
    ),
    ("t_reset_max_lifetime()", REQ | FAIL | ONREPLY | BRANCH),
    ("t_set_auto_inv_100(0)", REQ),
    ("t_save_lumps()", REQ),
    ("t_any_replied()", REQ | FAIL | ONREPLY | BRANCH),
    // SER 2.1's checks: about the failed branch, or any branch.
    ("t_branch_timeout()", FAIL),
    ("t_branch_replied()", FAIL),
    ("t_drop_replies()", FAIL),
    ("t_drop_replies(\"l\")", FAIL),
    ("t_any_timeout()", REQ | FAIL | ONREPLY | BRANCH),
    ("t_grep_status(\"486\")", REQ | FAIL | ONREPLY | BRANCH),
    ("t_is_canceled()", REQ | FAIL | ONREPLY | BRANCH),
    ("t_newtran()", REQ),
    ("t_reply(\"404\", \"Not Here\")", REQ | FAIL | ONREPLY),
    ("t_lookup_request()", REQ),
    ("t_relay_cancel()", REQ),
    ("t_lookup_cancel()", REQ),
    ("t_lookup_cancel(\"1\")", REQ),
    ("t_retransmit_reply()", REQ),
    ("t_release()", REQ),
    (
        "t_write_req(\"/tmp/ser-test-none.fifo\", \"app\")",
        REQ | FAIL,
    ),
    (
        "t_write_unix(\"/tmp/ser-test-none.sock\", \"app\")",
        REQ | FAIL,
    ),
];

/// A config whose block `target` holds `calls` (one per line, the first on
/// the returned line number); every other block is empty. Empty
/// `failure_route[1]`/`onreply_route[1]` still exist for `t_on_*("1")`.
fn mask_cfg(target: &str, calls: &[&str]) -> (String, u32) {
    let mut text = String::from(
        "listen=udp:127.0.0.1:5060\n\
         loadmodule \"/usr/local/lib/ser/modules/sl.so\"\n\
         loadmodule \"/usr/local/lib/ser/modules/tm.so\"\n",
    );
    let mut first = 0;
    for (_, block) in BLOCKS {
        text.push_str(&format!("{block} {{\n"));
        if *block == target {
            first = text.lines().count() as u32 + 1;
            for c in calls {
                text.push_str(&format!("    {c};\n"));
            }
        }
        text.push_str("}\n");
    }
    (text, first)
}

#[test]
fn ser_c_accepts_each_tm_function_where_ser_allows_it() {
    let dir = TestDir::new();
    let mut problems = Vec::new();
    for (bit, block) in BLOCKS {
        let calls: Vec<&str> = ALLOWED
            .iter()
            .filter(|(_, m)| m & bit != 0)
            .map(|(c, _)| *c)
            .collect();
        let (cfg, _) = mask_cfg(block, &calls);
        let name = format!("allowed_{bit}.cfg");
        let f = check_config(&dir.write(&name, cfg.as_bytes()));
        if f.code() != Some(0) {
            problems.push(format!(
                "{block}: refused ({:?}):\n{}\n{cfg}",
                f.status, f.stderr
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn ser_c_refuses_each_tm_function_where_ser_does_not_allow_it_naming_the_line() {
    let dir = TestDir::new();
    let mut problems = Vec::new();
    let mut n = 0;
    for (call, mask) in ALLOWED {
        for (bit, block) in BLOCKS.iter().filter(|(b, _)| mask & b == 0) {
            n += 1;
            let (cfg, line) = mask_cfg(block, &[call]);
            let name = format!("refused_{n}.cfg");
            let f = check_config(&dir.write(&name, cfg.as_bytes()));
            let fname = call.split('(').next().unwrap_or_default();
            let want = format!("{name}:{line}:");
            if f.code() == Some(0) || f.status.is_none() {
                problems.push(format!(
                    "{call} in {block} (bit {bit}): accepted ({:?})",
                    f.status
                ));
            } else if !f.stderr.contains(&want) || !f.stderr.contains(fname) {
                problems.push(format!(
                    "{call} in {block}: stderr lacks '{want}' or '{fname}':\n{}",
                    f.stderr
                ));
            }
        }
    }
    assert!(n > 40, "the table refuses in only {n} places");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// --- relaying to an explicit next hop ------------------------------------

/// Caller → proxy; the R-URI names `decoy`. The request route relays with
/// `relay("127.0.0.1", c1)`; c1 answers 486; the failure route appends a
/// branch (R-URI still the decoy's) and relays it with `relay(.., c2)`;
/// c2 answers 200. The decoy must hear nothing: both next hops were given.
fn explicit_next_hop_case(relay: &str) {
    let _g = serial();
    let (caller, c1, c2, decoy) = (
        UdpPeer::bind(),
        UdpPeer::bind(),
        UdpPeer::bind(),
        UdpPeer::bind(),
    );
    let port = free_udp_port();
    let routes = format!(
        r#"route {{
    t_on_failure("1");
    {relay}("127.0.0.1", "{c1}");
}}
failure_route[1] {{
    revert_uri();
    setuser("voicemail");
    append_branch();
    {relay}("127.0.0.1", "{c2}");
}}
"#,
        c1 = c1.port(),
        c2 = c2.port()
    );
    let ser = Ser::start(&tm_cfg(port, 2, "", &routes));
    caller.send_to_port(&invite(&caller, decoy.port()).build(), port);
    let t0 = Instant::now();
    let heard = pump(&[&caller, &c1, &c2, &decoy], Duration::from_secs(3), |h| {
        match (h.who, method_of(&h.msg).as_deref()) {
            (1, Some("INVITE")) => c1.send(&reply_to(&h.msg, 486, "Busy Here", Some("c1")), h.from),
            (2, Some("INVITE")) => c2.send(&reply_to(&h.msg, 200, "OK", Some("c2")), h.from),
            _ => {}
        }
        // Done once the caller has its 200 (a branch sent to the decoy
        // instead of c2 would leave the caller waiting, so the pump runs on).
        h.who == CALLER && status_of(&h.msg) == Some(200)
    });
    let text = format!(
        "{relay}:\n{}\nser log:\n{}",
        describe(&heard, t0),
        ser.log()
    );
    assert!(
        heard.iter().all(|h| h.who != 3),
        "the R-URI's host got a request:\n{text}"
    );
    assert_eq!(invites_to(&heard, 1).len(), 1, "c1 INVITEs:\n{text}");
    let to_c2 = invites_to(&heard, 2);
    assert_eq!(to_c2.len(), 1, "c2 INVITEs:\n{text}");
    let ruri = ruri_of(&to_c2[0].msg).unwrap_or_default();
    assert_eq!(
        ruri,
        format!("sip:voicemail@127.0.0.1:{}", decoy.port()),
        "{text}"
    );
    assert!(codes_for(&heard, CALLER).contains(&200), "{text}");
}

#[test]
fn t_relay_to_udp_with_address_goes_there_from_request_and_failure_route() {
    explicit_next_hop_case("t_relay_to_udp");
}

#[test]
fn t_relay_to_with_address_goes_there_from_request_and_failure_route() {
    explicit_next_hop_case("t_relay_to");
}

#[test]
fn t_relay_with_address_goes_there_from_request_and_failure_route() {
    explicit_next_hop_case("t_relay");
}

/// SER 2.x's next hops as `(proto, "host:port")`: `route` (with `{c1}`
/// for the callee's port) sends the INVITE to c1 alone, never to the
/// R-URI's host; c1 answers 486, which reaches the caller unless the
/// function only replicates.
fn proto_host_port_case(route: &str, relayed: bool) {
    let _g = serial();
    let (caller, c1, decoy) = (UdpPeer::bind(), UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let routes = format!(
        "route {{\n{}\n}}\n",
        route.replace("{c1}", &c1.port().to_string())
    );
    let modparams = "loadmodule \"/usr/local/lib/ser/modules/avpops.so\"";
    let ser = Ser::start(&tm_cfg(port, 1, modparams, &routes));
    caller.send_to_port(&invite(&caller, decoy.port()).build(), port);
    let t0 = Instant::now();
    let heard = pump(&[&caller, &c1, &decoy], Duration::from_millis(1500), |h| {
        if h.who == 1 && method_of(&h.msg).as_deref() == Some("INVITE") {
            c1.send(&reply_to(&h.msg, 486, "Busy Here", Some("c1")), h.from);
        }
        h.who == CALLER && status_of(&h.msg) == Some(486)
    });
    let text = format!(
        "{route}:\n{}\nser log:\n{}",
        describe(&heard, t0),
        ser.log()
    );
    assert!(
        heard.iter().all(|h| h.who != 2),
        "the R-URI's host got a request:\n{text}"
    );
    assert_eq!(invites_to(&heard, 1).len(), 1, "c1 INVITEs:\n{text}");
    assert_eq!(codes_for(&heard, CALLER).contains(&486), relayed, "{text}");
}

#[test]
fn t_relay_to_avp_takes_protocol_and_address_from_avps() {
    proto_host_port_case(
        "    avp_write(\"s:udp\", \"s:proto\");\n    \
         avp_write(\"s:127.0.0.1:{c1}\", \"s:dst\");\n    \
         t_relay_to_avp(\"$proto\", \"$dst\");",
        true,
    );
}

#[test]
fn t_forward_nonack_to_and_t_replicate_to_take_protocol_and_host_port() {
    proto_host_port_case(
        "    t_newtran();\n    t_forward_nonack_to(\"udp\", \"127.0.0.1:{c1}\");",
        true,
    );
    proto_host_port_case("    t_replicate_to(\"UDP\", \"127.0.0.1:{c1}\");", false);
}

/// The protocol is checked at load.
#[test]
fn an_unknown_protocol_is_refused_at_load() {
    let dir = TestDir::new();
    let cfg = "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
               route {\n    t_replicate_to(\"sctp\", \"127.0.0.1:5060\");\n}\n";
    let f = check_config(&dir.write("p.cfg", cfg.as_bytes()));
    assert_ne!(f.code(), Some(0), "{}", f.stderr);
    assert!(
        f.stderr.contains("p.cfg:4:") && f.stderr.contains("udp, tcp or tls"),
        "{}",
        f.stderr
    );
}

// --- re-arming the failure route from an onreply route ------------------

/// SER's example: no failure route is armed when the call is relayed; the
/// onreply route arms `failure_route[2]` when a 183 comes by. The callee
/// then answers 486, and failure route 2 answers the caller with 599.
#[test]
fn failure_route_armed_in_onreply_route_after_183_runs_on_486() {
    let _g = serial();
    let (caller, callee) = (UdpPeer::bind(), UdpPeer::bind());
    let port = free_udp_port();
    let routes = r#"route {
    t_on_reply("1");
    t_relay();
}
onreply_route[1] {
    if (t_check_status("183")) {
        t_on_failure("2");
    }
}
failure_route[2] {
    t_reply("599", "Rearmed From Onreply");
}
"#;
    let ser = Ser::start(&tm_cfg(port, 2, "", routes));
    caller.send_to_port(&invite(&caller, callee.port()).build(), port);
    let t0 = Instant::now();
    let heard = pump(&[&caller, &callee], Duration::from_secs(3), |h| {
        if h.who == 1 && method_of(&h.msg).as_deref() == Some("INVITE") {
            callee.send(
                &reply_to(&h.msg, 183, "Session Progress", Some("c1")),
                h.from,
            );
            // A pause so the 183 is handled (and the route armed) first.
            std::thread::sleep(Duration::from_millis(100));
            callee.send(&reply_to(&h.msg, 486, "Busy Here", Some("c1")), h.from);
        }
        h.who == CALLER && status_of(&h.msg).is_some_and(|c| c >= 200)
    });
    let text = format!("{}\nser log:\n{}", describe(&heard, t0), ser.log());
    let codes = codes_for(&heard, CALLER);
    assert!(codes.contains(&183), "183 not relayed:\n{text}");
    assert!(codes.contains(&599), "failure route 2 did not run:\n{text}");
    assert!(!codes.contains(&486), "486 leaked to the caller:\n{text}");
}
