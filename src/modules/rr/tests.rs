//! loose_route / record_route / is_direction over raw SIP bytes: each
//! plan is applied to the buffer and the result parsed again.

use super::direction::{direction, Direction};
use super::loose::{plan_loose_route, RoutePlan, RouteStatus, RrError};
use super::record::{rr_insert_at, rr_line, RrStyle};
use crate::sip::{parse_contacts, HdrKind, Lumps, Msg};

/// We are `proxy.example` and `10.0.0.1`, port 5060.
fn me(host: &[u8], port: Option<u16>) -> bool {
    (host.eq_ignore_ascii_case(b"proxy.example") || host == b"10.0.0.1")
        && port.unwrap_or(5060) == 5060
}

/// A BYE (To tag present) or, with `initial`, an INVITE without To tag.
fn req(ruri: &str, initial: bool, route_lines: &[&str]) -> Msg {
    let mut s = format!(
        "{} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK77\r\n",
        if initial { "INVITE" } else { "BYE" }
    );
    for r in route_lines {
        s.push_str(&format!("Route: {r}\r\n"));
    }
    let to_tag = if initial { "" } else { ";tag=callee" };
    s.push_str(&format!(
        "From: <sip:alice@a.example>;tag=caller\r\nTo: <sip:bob@b.example>{to_tag}\r\n\
         Call-ID: c@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    ));
    Msg::parse(s.into_bytes()).unwrap()
}

fn plan(m: &Msg) -> RoutePlan {
    let ruri = m.ruri().to_vec();
    plan_loose_route(m, &ruri, true, me).unwrap().unwrap()
}

/// Applies the plan as forwarding would (lumps + R-URI rewrite), parses
/// the result and returns it with its Route values in order.
fn apply(m: &Msg, p: &RoutePlan) -> (Msg, Vec<String>) {
    let mut lumps = Lumps::default();
    p.edit(m, &mut lumps);
    if let Some(u) = &p.new_ruri {
        lumps.replace(m.ruri_span(), u);
    }
    let mut out = Vec::new();
    lumps.apply(m.buf(), &mut out).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(!text.contains(",,") && !text.contains(", \r\n"), "{text}");
    let m2 = Msg::parse(out).unwrap();
    let mut routes = Vec::new();
    for h in m2.headers_of(HdrKind::Route) {
        let v = m2.value(h);
        assert!(!v.is_empty(), "empty Route line in {text}");
        for c in parse_contacts(m2.buf(), h.value).unwrap() {
            routes.push(String::from_utf8(c.addr.uri.get(m2.buf()).to_vec()).unwrap());
        }
    }
    (m2, routes)
}

fn s(v: &Option<Vec<u8>>) -> Option<&str> {
    v.as_deref().map(|b| std::str::from_utf8(b).unwrap())
}

#[test]
fn no_route_is_not_routed() {
    let m = req("sip:bob@192.0.2.9", false, &[]);
    assert_eq!(plan_loose_route(&m, m.ruri(), true, me).unwrap(), None);
}

#[test]
fn only_our_route_in_dialog() {
    let m = req(
        "sip:bob@192.0.2.9",
        false,
        &["<sip:10.0.0.1;ftag=caller;lr>"],
    );
    let p = plan(&m);
    assert_eq!(p.status, RouteStatus::Routed);
    assert_eq!((s(&p.dst_uri), s(&p.new_ruri)), (None, None));
    let (m2, routes) = apply(&m, &p);
    assert!(routes.is_empty());
    assert_eq!(m2.ruri(), b"sip:bob@192.0.2.9");
    assert_eq!(m2.headers().len(), m.headers().len() - 1);
}

#[test]
fn preloaded_only_ours_is_removed_and_not_routed() {
    // the R-URI names our domain: an initial request, not a strict hop
    let m = req("sip:bob@proxy.example", true, &["<sip:proxy.example;lr>"]);
    let p = plan(&m);
    assert_eq!(p.status, RouteStatus::Preloaded);
    assert_eq!(p.status.code(), -1);
    assert_eq!(s(&p.new_ruri), None);
    let (m2, routes) = apply(&m, &p);
    assert!(routes.is_empty());
    assert_eq!(m2.ruri(), b"sip:bob@proxy.example");
}

#[test]
fn preloaded_foreign_route_is_next_hop() {
    let m = req("sip:bob@b.example", true, &["<sip:outbound.example;lr>"]);
    let p = plan(&m);
    assert_eq!(p.status, RouteStatus::Routed);
    assert_eq!(s(&p.dst_uri), Some("sip:outbound.example;lr"));
    assert_eq!(apply(&m, &p).1, ["sip:outbound.example;lr"]);
}

#[test]
fn ours_then_loose_on_separate_lines() {
    let m = req(
        "sip:bob@192.0.2.9",
        false,
        &[
            "<sip:10.0.0.1;lr>",
            "<sip:p2.example;lr>",
            "<sip:p3.example;lr>",
        ],
    );
    let p = plan(&m);
    assert_eq!(s(&p.dst_uri), Some("sip:p2.example;lr"));
    assert_eq!(s(&p.new_ruri), None);
    let (_, routes) = apply(&m, &p);
    assert_eq!(routes, ["sip:p2.example;lr", "sip:p3.example;lr"]);
}

#[test]
fn ours_first_of_comma_list() {
    let m = req(
        "sip:bob@192.0.2.9",
        false,
        &["\"Me, really\" <sip:PROXY.Example:5060;LR=on>;x=1 ,  <sip:p2.example;lr>, sip:p3.example;lr"],
    );
    let p = plan(&m);
    assert_eq!(s(&p.dst_uri), Some("sip:p2.example;lr"));
    let (m2, routes) = apply(&m, &p);
    assert_eq!(routes, ["sip:p2.example;lr", "sip:p3.example"]);
    let h = m2.header(HdrKind::Route).unwrap();
    assert_eq!(m2.value(h), b"<sip:p2.example;lr>, sip:p3.example;lr");
}

#[test]
fn our_route_not_on_top_is_left_alone() {
    let m = req(
        "sip:bob@192.0.2.9",
        false,
        &[
            "<sip:p1.example;lr>, <sip:10.0.0.1;lr>",
            "<sip:proxy.example;lr>",
        ],
    );
    let p = plan(&m);
    assert!(p.removed.iter().all(|r| !r));
    assert_eq!(s(&p.dst_uri), Some("sip:p1.example;lr"));
    assert_eq!(apply(&m, &p).1.len(), 3);
}

#[test]
fn other_port_is_not_us() {
    let m = req("sip:bob@192.0.2.9", false, &["<sip:proxy.example:5070;lr>"]);
    let p = plan(&m);
    assert!(p.removed.iter().all(|r| !r));
    assert_eq!(s(&p.dst_uri), Some("sip:proxy.example:5070;lr"));
}

#[test]
fn strict_next_hop_swaps_ruri() {
    // §16.6 step 6: the strict router gets its URI as R-URI and the old
    // R-URI travels as the last Route
    let m = req(
        "sip:bob@192.0.2.9;transport=udp",
        false,
        &[
            "<sip:10.0.0.1;lr>, <sip:strict.example>",
            "<sip:p3.example;lr>",
        ],
    );
    let p = plan(&m);
    assert_eq!(s(&p.new_ruri), Some("sip:strict.example"));
    assert_eq!(s(&p.dst_uri), None);
    let (m2, routes) = apply(&m, &p);
    assert_eq!(m2.ruri(), b"sip:strict.example");
    assert_eq!(
        routes,
        ["sip:p3.example;lr", "sip:bob@192.0.2.9;transport=udp"]
    );
}

#[test]
fn strict_previous_hop_takes_last_route() {
    // §16.4: R-URI is our RR URI, the real target is the last Route
    let m = req(
        "sip:10.0.0.1;ftag=caller",
        false,
        &[
            "<sip:p2.example;lr>",
            "<sip:p3.example;lr>, <sip:bob@192.0.2.9>",
        ],
    );
    let p = plan(&m);
    assert_eq!(s(&p.new_ruri), Some("sip:bob@192.0.2.9"));
    assert_eq!(s(&p.dst_uri), Some("sip:p2.example;lr"));
    let (m2, routes) = apply(&m, &p);
    assert_eq!(m2.ruri(), b"sip:bob@192.0.2.9");
    assert_eq!(routes, ["sip:p2.example;lr", "sip:p3.example;lr"]);
}

#[test]
fn strict_previous_hop_then_our_route_on_top() {
    let m = req(
        "sip:proxy.example",
        false,
        &["<sip:proxy.example;lr>, <sip:p2.example;lr>, <sip:bob@192.0.2.9>"],
    );
    let p = plan(&m);
    assert_eq!(s(&p.new_ruri), Some("sip:bob@192.0.2.9"));
    assert_eq!(s(&p.dst_uri), Some("sip:p2.example;lr"));
    let (m2, routes) = apply(&m, &p);
    assert_eq!(routes, ["sip:p2.example;lr"]);
    assert_eq!(
        m2.value(m2.header(HdrKind::Route).unwrap()),
        b"<sip:p2.example;lr>"
    );
}

#[test]
fn strict_previous_and_next_hop() {
    // behaves as a strict router: top Route to R-URI, last Route kept
    let m = req(
        "sip:10.0.0.1",
        false,
        &["<sip:strict.example>", "<sip:bob@192.0.2.9>"],
    );
    let p = plan(&m);
    assert_eq!(s(&p.new_ruri), Some("sip:strict.example"));
    assert_eq!(p.append, None);
    let (m2, routes) = apply(&m, &p);
    assert_eq!(m2.ruri(), b"sip:strict.example");
    assert_eq!(routes, ["sip:bob@192.0.2.9"]);
}

#[test]
fn strict_previous_hop_single_route() {
    let m = req("sip:10.0.0.1", false, &["<sip:bob@192.0.2.9>"]);
    let p = plan(&m);
    assert_eq!(p.status, RouteStatus::Routed);
    assert_eq!(s(&p.new_ruri), Some("sip:bob@192.0.2.9"));
    let (m2, routes) = apply(&m, &p);
    assert!(routes.is_empty());
    assert_eq!(m2.ruri(), b"sip:bob@192.0.2.9");
}

#[test]
fn double_rr_pair_removed() {
    let routes = ["<sip:10.0.0.1;r2=on;lr>, <sip:10.0.0.2;r2=on;lr>, <sip:p3.example;lr>"];
    let m = req("sip:bob@192.0.2.9", false, &routes);
    let p = plan(&m);
    assert_eq!(s(&p.dst_uri), Some("sip:p3.example;lr"));
    assert_eq!(apply(&m, &p).1, ["sip:p3.example;lr"]);
    // with enable_double_rr off only our own entry goes
    let p = plan_loose_route(&m, m.ruri(), false, me).unwrap().unwrap();
    assert_eq!(s(&p.dst_uri), Some("sip:10.0.0.2;r2=on;lr"));
    assert_eq!(
        apply(&m, &p).1,
        ["sip:10.0.0.2;r2=on;lr", "sip:p3.example;lr"]
    );
}

#[test]
fn last_of_list_removed_keeps_comma_free() {
    let m = req(
        "sip:10.0.0.1",
        false,
        &["<sip:a.example;lr> , <sip:bob@192.0.2.9>;x=y"],
    );
    let p = plan(&m);
    let (m2, routes) = apply(&m, &p);
    assert_eq!(routes, ["sip:a.example;lr"]);
    assert_eq!(
        m2.value(m2.header(HdrKind::Route).unwrap()),
        b"<sip:a.example;lr>"
    );
}

#[test]
fn malformed_input_is_an_error() {
    let m = req("sip:bob@192.0.2.9", false, &["<sip:10.0.0.1;lr"]);
    assert!(matches!(
        plan_loose_route(&m, m.ruri(), true, me),
        Err(RrError::Route(_))
    ));
    let m = req("sip:bob@192.0.2.9", false, &["<sip:10.0.0.1;lr>"]);
    assert_eq!(
        plan_loose_route(&m, b"not a uri", true, me),
        Err(RrError::Ruri)
    );
    let raw = b"BYE sip:b@h SIP/2.0\r\nRoute: <sip:10.0.0.1;lr>\r\nCall-ID: x\r\n\r\n";
    let m = Msg::parse(raw.to_vec()).unwrap();
    assert!(matches!(
        plan_loose_route(&m, m.ruri(), true, me),
        Err(RrError::To(_))
    ));
}

#[test]
fn record_route_line_is_first_header_and_parses() {
    let m = req("sip:bob@b.example", true, &[]);
    let mut lumps = Lumps::default();
    let line = rr_line(b"[2001:db8::1]:5060", Some(b"caller"), RrStyle::default());
    lumps.insert(rr_insert_at(&m), &line);
    let mut out = Vec::new();
    lumps.apply(m.buf(), &mut out).unwrap();
    let m2 = Msg::parse(out).unwrap();
    let h = m2.headers().first().unwrap();
    assert_eq!(h.kind, HdrKind::RecordRoute);
    let c = parse_contacts(m2.buf(), h.value).unwrap();
    assert_eq!(
        c[0].addr.uri.get(m2.buf()),
        b"sip:[2001:db8::1]:5060;ftag=caller;lr"
    );
}

#[test]
fn direction_from_ftag() {
    let route = ["<sip:10.0.0.1;ftag=caller;lr>"];
    let m = req("sip:bob@192.0.2.9", false, &route);
    assert_eq!(direction(&m, me), Some(Direction::Downstream));
    let raw = "BYE sip:alice@192.0.2.5 SIP/2.0\r\nRoute: <sip:10.0.0.1;ftag=caller;lr>\r\n\
               From: <sip:bob@b.example>;tag=callee\r\nTo: <sip:alice@a.example>;tag=caller\r\n\
               Call-ID: c@x\r\nCSeq: 3 BYE\r\n\r\n";
    let m = Msg::parse(raw.as_bytes().to_vec()).unwrap();
    assert_eq!(direction(&m, me), Some(Direction::Upstream));
    // strict previous hop: our entry is the R-URI
    let m = req("sip:10.0.0.1;ftag=caller", false, &["<sip:bob@192.0.2.9>"]);
    assert_eq!(direction(&m, me), Some(Direction::Downstream));
    // no ftag of ours
    let m = req(
        "sip:bob@192.0.2.9",
        false,
        &["<sip:other.example;ftag=caller;lr>"],
    );
    assert_eq!(direction(&m, me), None);
    assert_eq!(Direction::parse(" UPSTREAM"), Some(Direction::Upstream));
    assert_eq!(Direction::parse("sideways"), None);
}
