//! The "Known Issues" of SER 0.8/0.9's tm documentation that are
//! behaviour on the wire, checked against ser (ARCHITECTURE.md, tm, has
//! the whole list). Here: the CANCEL and the hop-by-hop ACK ser makes for
//! a branch carry the Route set of the INVITE that branch sent — not the
//! caller's, which still names ser itself (SER 0.9 copied the received
//! Route headers and so ignored Routes deleted by loose_route).

use crate::common::sip::{reply_to, via_list};
use crate::common::tmkit::*;
use crate::common::*;
use std::time::Duration;

/// A preloaded Route set: ser first, then the callee. `loose_route`
/// removes ser's entry, so the INVITE the callee gets names only itself.
const ROUTES: &[(&str, &str)] = &[("Route", "<sip:127.0.0.1:{ser};lr>, <sip:127.0.0.1:{c0};lr>")];

fn routed_call(callee: Callee, cancel_after_ring: bool) -> ForkCall {
    let _g = serial();
    let cfg = |port, _ports: &[u16]| {
        tm_cfg(
            port,
            2,
            "loadmodule \"/usr/local/lib/ser/modules/rr.so\"",
            "route {\n    loose_route();\n    t_relay();\n}\n",
        )
    };
    fork_call_with(cfg, &[callee], cancel_after_ring, ROUTES)
}

/// The Route values of the first request of method `m` the callee got.
fn callee_routes(c: &ForkCall, m: &str) -> Vec<String> {
    let h = c
        .heard
        .iter()
        .find(|h| h.who == 1 && method_of(&h.msg).as_deref() == Some(m))
        .unwrap_or_else(|| panic!("the callee got no {m}:\n{}", c.text));
    header_values(&h.msg, "Route")
}

fn callee_port_route(c: &ForkCall) -> Vec<String> {
    let inv = callee_routes(c, "INVITE");
    assert_eq!(inv.len(), 1, "INVITE routes {inv:?}:\n{}", c.text);
    assert!(
        !inv[0].contains(&format!(":{};", c.ser.port())) && inv[0].contains(";lr"),
        "ser's own Route was not removed from the INVITE: {inv:?}"
    );
    inv
}

#[test]
fn a_cancel_carries_the_route_set_of_the_invite_the_branch_sent() {
    let c = routed_call(Callee::Rings, true);
    let inv = callee_port_route(&c);
    assert_eq!(callee_routes(&c, "CANCEL"), inv, "{}", c.text);
    assert_eq!(c.finals, [487], "{}", c.text);
}

#[test]
fn the_ack_of_a_486_carries_the_route_set_of_the_invite() {
    let c = routed_call(Callee::Answers(486), false);
    let inv = callee_port_route(&c);
    assert_eq!(callee_routes(&c, "ACK"), inv, "{}", c.text);
    assert_eq!(c.finals, [486], "{}", c.text);
}

/// "t_replicate should be done more cleanly": ser replicates as SER does,
/// as a proxied request — its own Via on top of the sender's, the rest as
/// the script left it — and keeps the replica's replies to itself (the
/// sender is answered by whatever else the script does, e.g. `save`).
#[test]
fn t_replicate_sends_a_proxied_copy_and_keeps_its_replies() {
    let _g = serial();
    let replica = UdpPeer::bind();
    let caller = UdpPeer::bind();
    let port = free_udp_port();
    let ser = Ser::start(&tm_cfg(
        port,
        2,
        "",
        &format!(
            "route {{\n    t_replicate(\"127.0.0.1\", \"{}\");\n}}\n",
            replica.port()
        ),
    ));
    let req = Request::new(
        "MESSAGE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.port(),
    );
    caller.send_to_port(&req.build(), port);
    let (copy, from) = replica
        .recv_matching(Duration::from_secs(3), |m| method_of(m).is_some())
        .unwrap_or_else(|| panic!("the replica got nothing; log:\n{}", ser.log()));
    let vias = via_list(&copy);
    assert_eq!(vias.len(), 2, "{}", String::from_utf8_lossy(&copy));
    assert!(vias[0].contains(&format!("127.0.0.1:{port}")), "{vias:?}");
    assert!(vias[1].contains(&format!(":{}", caller.port())), "{vias:?}");
    replica.send(&reply_to(&copy, 200, "OK", Some("r")), from);
    let got = caller.recv_matching(Duration::from_millis(800), |m| status_of(m).is_some());
    assert!(
        got.is_none(),
        "the replica's reply reached the sender: {:?}",
        got.map(|(m, _)| String::from_utf8_lossy(&m).into_owned())
    );
}
