//! REGISTER scenarios parsed from raw bytes and run against a real
//! in-memory location table.

use std::net::SocketAddr;

use crate::modules::usrloc::{Binding, PERMANENT, Q_UNSPECIFIED};
use crate::route::ctx::{Branch, MAX_BRANCHES};
use crate::sip::Msg;

use super::store::mem_add;
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
