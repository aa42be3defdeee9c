//! REGISTER scenarios parsed from raw bytes and run against a real
//! in-memory location table.

use std::net::SocketAddr;

use crate::modules::usrloc::{Binding, PERMANENT, Q_UNSPECIFIED};
use crate::route::ctx::{Branch, MAX_BRANCHES};
use crate::sip::Msg;

use super::mem_location::mem_add;
use super::*;

const T0: u64 = 1_000_000;

fn register(call_id: &str, cseq: u32, extra: &str) -> Msg {
    let s = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK{cseq}x\r\n\
         From: <sip:alice@example.com>;tag=f1\r\n\
         To: <sip:Alice@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         User-Agent: phone/1.0\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    );
    Msg::parse(s.into_bytes()).expect("test REGISTER parses")
}

fn origin(nat: bool) -> Origin {
    Origin {
        src: "10.0.0.5:5060".parse::<SocketAddr>().expect("addr"),
        nat,
        received_avp: None,
        contact_fix: None,
    }
}

fn table() -> MemLocation {
    let loc = MemLocation::new();
    loc.register_domain("location");
    loc.register_domain("aliases");
    loc
}

fn save_at(
    loc: &MemLocation,
    cfg: &RegCfg,
    msg: &Msg,
    now: u64,
) -> (RegReply, Result<SaveOutcome, RegError>) {
    handle_register(msg, &origin(false), loc, "location", cfg, now)
}

/// (contact, seconds left, q) of the live bindings, sorted by contact.
fn contacts_of(loc: &MemLocation, aor: &[u8], now: u64) -> Vec<(String, u32, i32)> {
    let v = loc.get("location", aor, now).expect("get");
    let mut out: Vec<(String, u32, i32)> = v
        .iter()
        .map(|b| {
            (
                String::from_utf8_lossy(&b.contact).into_owned(),
                b.expires_in_s(now),
                b.q,
            )
        })
        .collect();
    out.sort();
    out
}

fn c(u: &str, e: u32, q: i32) -> (String, u32, i32) {
    (u.to_string(), e, q)
}

fn hdrs(r: &RegReply) -> String {
    String::from_utf8_lossy(&r.headers).into_owned()
}

const U: i32 = Q_UNSPECIFIED;

#[test]
fn expires_precedence_param_header_default() {
    let loc = table();
    let cfg = RegCfg::default();
    let m = register(
        "c1",
        1,
        "Expires: 300\r\nContact: <sip:a@10.0.0.5>;expires=120, <sip:b@10.0.0.5>\r\n",
    );
    let (r, res) = save_at(&loc, &cfg, &m, T0);
    assert!(res.is_ok());
    assert_eq!(r.code, 200);
    let m = register("c2", 1, "Contact: <sip:c@10.0.0.5>\r\n");
    save_at(&loc, &cfg, &m, T0).1.expect("saved");
    // The To user was "Alice": the table folds case (case_sensitive=0).
    assert_eq!(
        contacts_of(&loc, b"alice", T0),
        [
            c("sip:a@10.0.0.5", 120, U),
            c("sip:b@10.0.0.5", 300, U),
            c("sip:c@10.0.0.5", 3600, U)
        ]
    );
}

#[test]
fn min_and_max_expires() {
    let loc = table();
    let cfg = RegCfg {
        max_expires: 1800,
        ..RegCfg::default()
    };
    let m = register(
        "c1",
        1,
        "Contact: <sip:a@h>;expires=5, <sip:b@h>;expires=99999\r\n",
    );
    save_at(&loc, &cfg, &m, T0).1.expect("saved");
    assert_eq!(
        contacts_of(&loc, b"alice", T0),
        [c("sip:a@h", 60, U), c("sip:b@h", 1800, U)]
    );
}

#[test]
fn expires_zero_removes_one_binding() {
    let loc = table();
    let cfg = RegCfg::default();
    let m = register("c1", 1, "Contact: <sip:a@h>, <sip:b@h>\r\n");
    save_at(&loc, &cfg, &m, T0).1.expect("saved");
    let m = register("c1", 2, "Contact: <sip:a@h>;expires=0\r\n");
    let (r, res) = save_at(&loc, &cfg, &m, T0 + 1000);
    assert!(res.is_ok());
    assert_eq!(
        contacts_of(&loc, b"alice", T0 + 1000),
        [c("sip:b@h", 3599, U)]
    );
    assert_eq!(hdrs(&r), "Contact: <sip:b@h>;expires=3599\r\n");
}

#[test]
fn star_rules() {
    let loc = table();
    let cfg = RegCfg::default();
    let m = register("c1", 1, "Contact: <sip:a@h>, <sip:b@h>\r\n");
    save_at(&loc, &cfg, &m, T0).1.expect("saved");

    let m = register("c1", 2, "Contact: *\r\n");
    let (r, res) = save_at(&loc, &cfg, &m, T0);
    assert_eq!(res, Err(RegError::StarExpires));
    assert_eq!((r.code, r.reason), (400, "Bad Request"));
    assert!(hdrs(&r).starts_with("P-Registrar-Error: "));

    let m = register("c1", 2, "Expires: 0\r\nContact: *, <sip:a@h>\r\n");
    assert_eq!(save_at(&loc, &cfg, &m, T0).1, Err(RegError::StarNotAlone));
    let m = register(
        "c1",
        2,
        "Expires: 0\r\nContact: *\r\nContact: <sip:a@h>\r\n",
    );
    assert_eq!(save_at(&loc, &cfg, &m, T0).1, Err(RegError::StarNotAlone));
    let m = register("c1", 2, "Expires: 60\r\nContact: *\r\n");
    assert_eq!(save_at(&loc, &cfg, &m, T0).1, Err(RegError::StarExpires));
    assert_eq!(
        contacts_of(&loc, b"alice", T0).len(),
        2,
        "refusals change nothing"
    );

    let m = register("c9", 1, "Expires: 0\r\nContact: *\r\n");
    let (r, res) = save_at(&loc, &cfg, &m, T0);
    assert!(res.is_ok());
    assert_eq!(r.code, 200);
    assert_eq!(hdrs(&r), "");
    assert!(contacts_of(&loc, b"alice", T0).is_empty());
}

#[test]
fn cseq_must_grow_within_a_call_id() {
    let loc = table();
    let cfg = RegCfg::default();
    let m = register("c1", 5, "Contact: <sip:a@h>;expires=100\r\n");
    save_at(&loc, &cfg, &m, T0).1.expect("saved");
    // Out of order and retransmission: nothing changes, still 200 (SER).
    for cseq in [4, 5] {
        let m = register(
            "c1",
            cseq,
            "Contact: <sip:a@h>;expires=900, <sip:new@h>\r\n",
        );
        let (r, res) = save_at(&loc, &cfg, &m, T0);
        assert!(res.as_ref().is_ok_and(|o| o.stale), "cseq {cseq}");
        assert_eq!(r.code, 200);
        assert_eq!(contacts_of(&loc, b"alice", T0), [c("sip:a@h", 100, U)]);
    }
    let m = register("c1", 6, "Contact: <sip:a@h>;expires=900\r\n");
    assert!(save_at(&loc, &cfg, &m, T0).1.is_ok_and(|o| !o.stale));
    assert_eq!(contacts_of(&loc, b"alice", T0), [c("sip:a@h", 900, U)]);
    // Another Call-ID (a rebooted phone) may use any CSeq.
    let m = register("c2", 1, "Contact: <sip:a@h>;expires=300\r\n");
    assert!(save_at(&loc, &cfg, &m, T0).1.is_ok_and(|o| !o.stale));
    assert_eq!(contacts_of(&loc, b"alice", T0), [c("sip:a@h", 300, U)]);
}

#[test]
fn q_values_and_default_q() {
    let loc = table();
    let cfg = RegCfg {
        default_q: 200,
        ..RegCfg::default()
    };
    let m = register(
        "c1",
        1,
        "Contact: <sip:a@h>;q=0.5, <sip:b@h>;q=1, <sip:c@h>\r\n",
    );
    save_at(&loc, &cfg, &m, T0).1.expect("saved");
    assert_eq!(
        contacts_of(&loc, b"alice", T0),
        [
            c("sip:a@h", 3600, 500),
            c("sip:b@h", 3600, 1000),
            c("sip:c@h", 3600, 200)
        ]
    );
    for bad in ["q=1.5", "q=2", "q=0.1234", "q=x"] {
        let m = register("c1", 2, &format!("Contact: <sip:a@h>;{bad}\r\n"));
        let (r, res) = save_at(&loc, &cfg, &m, T0);
        assert_eq!(res, Err(RegError::BadContact), "{bad}");
        assert_eq!(r.code, 400);
    }
}

#[test]
fn bad_headers_are_400() {
    let loc = table();
    let cfg = RegCfg::default();
    let m = register("c1", 1, "Expires: soon\r\nContact: <sip:a@h>\r\n");
    assert_eq!(save_at(&loc, &cfg, &m, T0).1, Err(RegError::BadExpires));
    let m = register("c1", 1, "Contact: <sip:a@h\r\n");
    assert_eq!(save_at(&loc, &cfg, &m, T0).1, Err(RegError::BadContact));
    let m = Msg::parse(
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKx\r\n\
          From: <sip:a@example.com>;tag=1\r\nTo: <sip:example.com>\r\nCall-ID: x\r\n\
          CSeq: 1 REGISTER\r\nContact: <sip:a@h>\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    )
    .expect("parses");
    let (r, res) = save_at(&loc, &cfg, &m, T0);
    assert_eq!(res, Err(RegError::NoUser));
    assert_eq!(r.code, 400);
}

#[test]
fn unknown_table_is_500() {
    let loc = MemLocation::new();
    let m = register("c1", 1, "Contact: <sip:a@h>\r\n");
    let (r, res) = handle_register(&m, &origin(false), &loc, "location", &RegCfg::default(), T0);
    assert_eq!(res, Err(RegError::Store));
    assert_eq!((r.code, r.reason), (500, "Server Internal Error"));
}

#[test]
fn max_contacts_is_503_with_retry_after() {
    let loc = table();
    let cfg = RegCfg {
        max_contacts: 2,
        retry_after: 30,
        ..RegCfg::default()
    };
    let m = register("c1", 1, "Contact: <sip:a@h>, <sip:b@h>\r\n");
    save_at(&loc, &cfg, &m, T0).1.expect("saved");
    let m = register("c1", 2, "Contact: <sip:c@h>\r\n");
    let (r, res) = save_at(&loc, &cfg, &m, T0);
    assert_eq!(res, Err(RegError::TooMany));
    assert_eq!((r.code, r.reason), (503, "Service Unavailable"));
    assert!(hdrs(&r).contains("Retry-After: 30\r\n"));
    assert_eq!(contacts_of(&loc, b"alice", T0).len(), 2);
    // Refreshing within the limit is fine; replacing one too.
    let m = register("c1", 3, "Contact: <sip:a@h>;expires=0, <sip:c@h>\r\n");
    assert!(save_at(&loc, &cfg, &m, T0).1.is_ok());
}

#[test]
fn query_register_lists_bindings_without_change() {
    let loc = table();
    let cfg = RegCfg::default();
    let m = register(
        "c1",
        1,
        "Contact: <sip:a@h>;q=0.5;expires=100, <sip:b@h:5070;transport=tcp>;q=1\r\n",
    );
    save_at(&loc, &cfg, &m, T0).1.expect("saved");
    let q = register("other", 1, "");
    let (r, res) = save_at(&loc, &cfg, &q, T0 + 40_000);
    assert!(res.is_ok());
    assert_eq!(r.code, 200);
    assert_eq!(
        hdrs(&r),
        "Contact: <sip:b@h:5070;transport=tcp>;q=1;expires=3560, <sip:a@h>;q=0.5;expires=60\r\n"
    );
    assert_eq!(contacts_of(&loc, b"alice", T0).len(), 2);
    // Expired bindings are neither listed nor kept.
    let (r, _) = save_at(&loc, &cfg, &q, T0 + 100_000);
    assert_eq!(
        hdrs(&r),
        "Contact: <sip:b@h:5070;transport=tcp>;q=1;expires=3500\r\n"
    );
}

#[test]
fn user_agent_and_nat_received_are_stored() {
    let loc = table();
    let cfg = RegCfg::default();
    let m = register(
        "c1",
        1,
        "Contact: <sip:a@192.168.1.9:5062>, <sip:b@10.0.0.5>\r\n",
    );
    let (_, res) = handle_register(&m, &origin(true), &loc, "location", &cfg, T0);
    res.expect("saved");
    let mut v = loc.get("location", b"alice", T0).expect("get");
    v.sort_by(|x, y| x.contact.cmp(&y.contact));
    assert_eq!(v[0].user_agent, b"phone/1.0");
    assert_eq!(v[0].received, b"sip:10.0.0.5:5060");
    assert_eq!(v[0].flags & FL_NAT, FL_NAT);
    // Its Contact already is where the request came from.
    assert_eq!(v[1].received, b"");
    // Without nat_flag nothing is recorded.
    let m = register("c1", 2, "Contact: <sip:a@192.168.1.9:5062>\r\n");
    save_at(&loc, &cfg, &m, T0).1.expect("saved");
    let v = loc.get("location", b"alice", T0).expect("get");
    let a = v
        .iter()
        .find(|b| b.contact == b"sip:a@192.168.1.9:5062")
        .expect("a");
    assert_eq!((a.received.as_slice(), a.flags & FL_NAT), (&b""[..], 0));
}

fn binding(uri: &str, q: i32, t: u64, received: &str) -> Binding {
    Binding {
        contact: uri.as_bytes().to_vec(),
        expires_ms: T0 + 3_600_000,
        q,
        call_id: b"x".to_vec(),
        cseq: 1,
        flags: 0,
        user_agent: Vec::new(),
        received: received.as_bytes().to_vec(),
        last_modified_ms: t,
    }
}

struct Out {
    new_uri: Option<Vec<u8>>,
    dst_uri: Option<Vec<u8>>,
    dset: Vec<Branch>,
    flags: u32,
}

impl Out {
    fn new() -> Self {
        Out {
            new_uri: None,
            dst_uri: None,
            dset: Vec::new(),
            flags: 0,
        }
    }
    fn dest(&mut self) -> Dest<'_> {
        Dest {
            new_uri: &mut self.new_uri,
            dst_uri: &mut self.dst_uri,
            dset: &mut self.dset,
            flags: &mut self.flags,
        }
    }
}

#[test]
fn lookup_orders_by_q_then_recency_and_appends_branches() {
    let loc = table();
    mem_add(&loc, "location", b"bob", binding("sip:low@h", 100, 9, ""));
    mem_add(&loc, "location", b"bob", binding("sip:old@h", 1000, 1, ""));
    mem_add(
        &loc,
        "location",
        b"bob",
        binding("sip:new@h", 1000, 5, "sip:1.2.3.4:7000"),
    );
    mem_add(&loc, "location", b"bob", binding("sip:unspec@h", U, 7, ""));
    let cfg = RegCfg::default();
    let mut o = Out::new();
    let rc = lookup_into(&loc, "location", b"sip:bob@example.com", &cfg, T0, o.dest());
    assert_eq!(rc, 1);
    assert_eq!(o.new_uri.as_deref(), Some(&b"sip:new@h"[..]));
    assert_eq!(o.dst_uri.as_deref(), Some(&b"sip:1.2.3.4:7000"[..]));
    let got: Vec<(&[u8], Option<u16>)> = o.dset.iter().map(|b| (b.uri.as_slice(), b.q)).collect();
    assert_eq!(
        got,
        [
            (&b"sip:old@h"[..], Some(1000)),
            (b"sip:unspec@h", None),
            (b"sip:low@h", Some(100))
        ]
    );

    let cfg = RegCfg {
        append_branches: false,
        ..RegCfg::default()
    };
    let mut o = Out::new();
    assert_eq!(
        lookup_into(&loc, "location", b"sip:bob@x", &cfg, T0, o.dest()),
        1
    );
    assert!(o.dset.is_empty());

    let cfg = RegCfg {
        desc_time_order: true,
        ..RegCfg::default()
    };
    let mut o = Out::new();
    lookup_into(&loc, "location", b"sip:bob@x", &cfg, T0, o.dest());
    assert_eq!(o.new_uri.as_deref(), Some(&b"sip:low@h"[..]));
    assert_eq!(o.dst_uri, None);
}

#[test]
fn lookup_caps_the_destination_set() {
    let loc = table();
    for i in 0..20u64 {
        mem_add(
            &loc,
            "location",
            b"bob",
            binding(&format!("sip:{i}@h"), U, i, ""),
        );
    }
    let mut o = Out::new();
    o.dset.push(Branch {
        uri: b"sip:pre@h".to_vec(),
        q: None,
        dst_uri: None,
    });
    let rc = lookup_into(
        &loc,
        "location",
        b"sip:bob@x",
        &RegCfg::default(),
        T0,
        o.dest(),
    );
    assert_eq!(rc, 1);
    assert_eq!(o.dset.len() + 1, MAX_BRANCHES);
    assert_eq!(o.new_uri.as_deref(), Some(&b"sip:19@h"[..]));
}

#[test]
fn lookup_not_found_expired_and_bad_uri() {
    let loc = table();
    let mut gone = binding("sip:gone@h", U, 0, "");
    gone.expires_ms = T0;
    mem_add(&loc, "location", b"carol", gone);
    let cfg = RegCfg::default();
    let mut o = Out::new();
    assert_eq!(
        lookup_into(&loc, "location", b"sip:carol@x", &cfg, T0, o.dest()),
        -3
    );
    assert_eq!(
        lookup_into(&loc, "location", b"sip:nobody@x", &cfg, T0, o.dest()),
        -3
    );
    assert_eq!(
        lookup_into(&loc, "location", b"sip:x", &cfg, T0, o.dest()),
        -1
    );
    assert_eq!(
        lookup_into(&loc, "nosuch", b"sip:bob@x", &cfg, T0, o.dest()),
        -2
    );
    assert_eq!((o.new_uri, o.dset.len()), (None, 0));
    assert_eq!(
        is_registered(&loc, "location", b"sip:carol@x", &cfg, T0),
        -1
    );
}

#[test]
fn aliases_rewrite_to_their_target() {
    let loc = table();
    // FIFO `ul_add aliases 4711 sip:alice@example.com ... permanent`
    let mut a = binding("sip:alice@example.com", U, 0, "");
    a.expires_ms = PERMANENT;
    mem_add(&loc, "aliases", b"4711", a);
    let cfg = RegCfg::default();
    let mut o = Out::new();
    assert_eq!(
        lookup_into(&loc, "aliases", b"sip:4711@example.com", &cfg, T0, o.dest()),
        1
    );
    assert_eq!(o.new_uri.as_deref(), Some(&b"sip:alice@example.com"[..]));
    assert_eq!(
        is_registered(&loc, "aliases", b"sip:4711@example.com", &cfg, T0),
        1
    );
    assert_eq!(
        is_registered(&loc, "location", b"sip:4711@example.com", &cfg, T0),
        -1
    );
}

#[test]
fn save_then_lookup_round_trip_with_use_domain() {
    let loc = table();
    loc.set_use_domain(true);
    let cfg = RegCfg::default();
    let m = register("c1", 1, "Contact: <sip:a@10.0.0.5>\r\n");
    handle_register(&m, &origin(true), &loc, "location", &cfg, T0)
        .1
        .expect("saved");
    let mut o = Out::new();
    assert_eq!(
        lookup_into(&loc, "location", b"sip:alice@other.org", &cfg, T0, o.dest()),
        -3
    );
    let rc = lookup_into(
        &loc,
        "location",
        b"sip:ALICE@example.com",
        &cfg,
        T0,
        o.dest(),
    );
    assert_eq!(rc, 1);
    assert_eq!(o.new_uri.as_deref(), Some(&b"sip:a@10.0.0.5"[..]));
    // Registered from behind NAT: lookup raises nat_flag (4) again.
    assert_eq!(o.flags, 1 << 4);
    assert_eq!(o.dst_uri, None, "contact was the source address");
}
