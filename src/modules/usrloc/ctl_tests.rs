//! Every command's reply text, on the process-wide store.

use std::sync::Once;

use super::*;
use crate::ctl::request::{Head, TextLines};
use crate::ctl::{Dialect, Registry};

/// The global store, made once for all tests of this binary, with the
/// `location` table. Tests use distinct AORs.
fn setup() -> Registry {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        super::super::register_domain("location");
        let region = Box::leak(Box::new(shm::Region::new(8 << 20).expect("region")));
        let setup = super::super::Setup {
            interval_s: 60,
            mode: super::super::DbMode::Memory,
            url: crate::db::DbUrl::parse("sqlite:///unused").expect("url"),
            columns: Default::default(),
        };
        super::super::init(region, setup).expect("usrloc init");
    });
    let mut r = Registry::default();
    r.add(COMMANDS);
    r
}

fn run(r: &Registry, cmd: &str, params: &str) -> Reply {
    let head = Head {
        command: cmd.into(),
        reply: "r".into(),
    };
    r.serve(&head, &mut TextLines::new(params), Dialect::Fifo, None)
        .reply
        .expect("a reply")
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.render(Dialect::Fifo)).into_owned()
}

#[test]
fn add_show_rm_contact_and_rm() {
    let r = setup();
    let add = run(
        &r,
        "ul_add",
        "location\nalice@example.com\nsip:alice@1.2.3.4:5060\n3600\n0.5\n0\n0\n",
    );
    assert_eq!(
        text(&add),
        "200 Added to table\n('alice','sip:alice@1.2.3.4:5060') to 'location'\n"
    );
    // A second contact, permanent by expires 0, from an 0.8 client (no flags).
    let add = run(&r, "ul_add", "location\nalice\nsip:alice@h2\n0\n1.00\n0\n");
    assert_eq!(add.code, 200);
    let show = run(&r, "ul_show_contact", "location\nalice@anything\n");
    assert_eq!(show.code, 200);
    assert_eq!(show.text, "OK");
    assert_eq!(show.body.len(), 2);
    let first = &show.body[0];
    assert!(
        first == "<sip:alice@1.2.3.4:5060>;q=0.5;expires=3600"
            || first == "<sip:alice@1.2.3.4:5060>;q=0.5;expires=3599",
        "{first}"
    );
    assert_eq!(show.body[1], "<sip:alice@h2>;q=1;expires=permanent");
    // Re-adding the same contact updates it in place.
    let add = run(
        &r,
        "ul_add",
        "location\nalice\nsip:alice@h2\n60\n0.1\n0\n0\n",
    );
    assert_eq!(add.code, 200);
    let show = run(&r, "ul_show_contact", "location\nalice\n");
    assert_eq!(show.body.len(), 2);
    assert!(
        show.body[1].starts_with("<sip:alice@h2>;q=0.1;expires=6"),
        "{:?}",
        show.body
    );

    let rm = run(&r, "ul_rm_contact", "location\nalice\nsip:nobody@h\n");
    assert_eq!(
        text(&rm),
        "404 Contact sip:nobody@h in table location not found\n"
    );
    let rm = run(&r, "ul_rm_contact", "location\nalice\nsip:alice@h2\n");
    assert_eq!(
        text(&rm),
        "200 Contact (alice, sip:alice@h2) deleted from table location\n"
    );
    let rm = run(&r, "ul_rm_contact", "location\nnobody\nsip:x@h\n");
    assert_eq!(
        text(&rm),
        "404 Username nobody in table location not found\n"
    );

    let rm = run(&r, "ul_rm", "location\nalice@example.com\n");
    assert_eq!(text(&rm), "200 user (location, alice) deleted\n");
    let rm = run(&r, "ul_rm", "location\nalice@example.com\n");
    assert_eq!(
        text(&rm),
        "404 Username alice in table location not found\n"
    );
    let show = run(&r, "ul_show_contact", "location\nalice\n");
    assert_eq!(
        text(&show),
        "404 Username alice in table location not found\n"
    );
}

#[test]
fn errors_name_what_was_expected() {
    let r = setup();
    let e = run(&r, "ul_show_contact", "nosuch\nbob\n");
    assert_eq!(text(&e), "400 table (nosuch) not found\n");
    let e = run(&r, "ul_rm", "nosuch\nbob\n");
    assert_eq!(text(&e), "400 table (nosuch) not found\n");
    let e = run(&r, "ul_rm_contact", "nosuch\nbob\nsip:x\n");
    assert_eq!(text(&e), "400 table (nosuch) not found\n");
    let e = run(&r, "ul_add", "nosuch\nbob\nsip:x\n60\n1\n0\n0\n");
    assert_eq!(
        e.text,
        "Table 'nosuch' not found in memory, use save(\"nosuch\") or lookup(\"nosuch\") in the configuration script first"
    );
    let e = run(&r, "ul_add", "location\nbob\nsip:x\nsoon\n1\n0\n0\n");
    assert_eq!(e.code, 400);
    assert!(
        e.text
            .starts_with("Invalid expires format: expected a non-negative integer"),
        "{}",
        e.text
    );
    for bad in ["2", "high", "-0.5", ""] {
        let e = run(
            &r,
            "ul_add",
            &format!("location\nbob\nsip:x\n60\n{bad}\n0\n0\n"),
        );
        assert_eq!(e.code, 400, "{bad}");
    }
    let e = run(&r, "ul_add", "location\nbob\nsip:x\n60\nx\n0\n0\n");
    assert!(
        e.text
            .starts_with("Invalid q format: expected a number from 0 to 1"),
        "{}",
        e.text
    );
    let e = run(&r, "ul_add", "location\nbob\nsip:x\n60\n1\nr\n0\n");
    assert!(e.text.starts_with("Invalid replicate format"), "{}", e.text);
    let e = run(&r, "ul_add", "location\nbob\nsip:x\n60\n1\n0\nf\n");
    assert!(e.text.starts_with("Invalid flags format"), "{}", e.text);
    let e = run(&r, "ul_add", "location\nbob\n");
    assert_eq!(text(&e), "400 ul_add: contact expected\n");
    let e = run(&r, "ul_rm", "");
    assert_eq!(text(&e), "400 ul_rm: table name expected\n");
    let e = run(&r, "ul_show_contact", "location\n");
    assert_eq!(text(&e), "400 ul_show_contact: AOR expected\n");
    // Nothing was stored by the failed adds.
    let show = run(&r, "ul_show_contact", "location\nbob\n");
    assert_eq!(show.code, 404);
}

#[test]
fn all_expired_record_says_no_contacts() {
    let r = setup();
    super::super::update("location", b"expired-user", 0, |v| {
        v.push(Binding {
            contact: b"sip:e@h".to_vec(),
            expires_ms: 1,
            q: -1,
            call_id: Vec::new(),
            cseq: 1,
            flags: 0,
            user_agent: Vec::new(),
            received: Vec::new(),
            last_modified_ms: 0,
        })
    })
    .unwrap();
    let show = run(&r, "ul_show_contact", "location\nexpired-user\n");
    assert_eq!(text(&show), "404 No registered contacts found\n");
    assert_eq!(text(&run(&r, "ul_flush", "")), "200 ul_flush completed\n");
    let show = run(&r, "ul_show_contact", "location\nexpired-user\n");
    assert_eq!(show.code, 404);
    assert!(
        show.text.starts_with("Username expired-user"),
        "{}",
        show.text
    );
}

#[test]
fn stats_and_dump() {
    let r = setup();
    assert_eq!(
        run(&r, "ul_add", "location\ndumpme\nsip:d@h\n0\n0.25\n0\n128\n").code,
        200
    );
    let s = run(&r, "ul_stats", "");
    assert_eq!(s.code, 200);
    assert_eq!(s.body[0], "Domain Registered Expired");
    assert_eq!(s.body.len(), 2);
    assert!(s.body[1].starts_with("'location' "), "{:?}", s.body);
    let dump = run(&r, "ul_dump", "");
    assert_eq!(dump.text, "ok");
    assert!(
        dump.body[0].starts_with("Domain 'location': "),
        "{:?}",
        dump.body
    );
    let at = dump
        .body
        .iter()
        .position(|l| l == "  AOR 'dumpme'")
        .expect("AOR listed");
    assert_eq!(
        dump.body.get(at + 1).map(String::as_str),
        Some("    <sip:d@h>;q=0.25;expires=permanent;flags=0x80;cseq=1;callid=ser-ctl-ul_add")
    );
    let brief = run(&r, "ul_dump", "brief\n");
    assert!(brief.body.iter().any(|l| l == "  AOR 'dumpme'"));
    assert!(!brief.body.iter().any(|l| l.contains("sip:d@h")));
}
