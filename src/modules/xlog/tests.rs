//! xlog's format parser and renderer, and its fixups through the real
//! config loader (file:line on a bad format, route types as 0.9).

use super::format::{escape_into, parse, render, FormatError, HdrIndex, Part, Spec, NULL};
use super::parse_level;
use crate::cfg::ast::RouteKind;
use crate::net::{ListenAddr, ListenSocket, Proto, SocketTable};
use crate::route::ctx::{AvpName, AvpValue};
use crate::route::globals::CoreCfg;
use crate::route::{MsgCtx, Runtime};
use crate::sip::Msg;

const INVITE: &str = "INVITE sip:bob@example.net;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-1\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=ft-1\r\n\
To: <sip:bob@example.net>\r\n\
Call-ID: cid-42@host\r\n\
CSeq: 17 INVITE\r\n\
Contact: <sip:alice@192.0.2.5:5060>\r\n\
User-Agent: phone/1.0\r\n\
X-Info: first\r\n\
X-Info: second\r\n\
X-Evil: a\\b\x1b[31m\r\n\
Content-Length: 0\r\n\r\n";

const REPLY: &str = "SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-1\r\n\
From: <sip:alice@example.com>;tag=ft-1\r\n\
To: <sip:bob@example.net>;tag=tt-9\r\n\
Call-ID: cid-42@host\r\n\
CSeq: 17 INVITE\r\n\
Content-Length: 0\r\n\r\n";

fn runtime(script: &str) -> Result<Runtime, crate::route::LoadError> {
    let ast = crate::cfg::parse_str(script, "xlog.cfg").unwrap();
    let loaded = crate::route::load(
        &ast,
        "xlog.cfg",
        CoreCfg::default(),
        crate::modules::CATALOG,
    )?;
    let udp = crate::net::open_udp("127.0.0.1:0".parse().unwrap(), 0, false).unwrap();
    let listen = ListenAddr {
        proto: Proto::Udp,
        addr: udp.local_addr().unwrap(),
        name: "127.0.0.1".into(),
    };
    let table = SocketTable::from_sockets(vec![ListenSocket::udp(listen, udp)]);
    Ok(Runtime::new(loaded, table))
}

fn load_error(script: &str) -> String {
    match runtime(script) {
        Ok(_) => panic!("loaded: {script}"),
        Err(e) => e.to_string(),
    }
}

fn minimal_rt() -> Runtime {
    runtime("route { drop; }").unwrap()
}

/// Renders `fmt` for `raw` as the request route would see it.
fn show_with(raw: &str, fmt: &str, setup: impl FnOnce(&mut MsgCtx<'_>)) -> String {
    let rt = minimal_rt();
    let msg = Msg::parse(raw.as_bytes().to_vec()).unwrap();
    let sock = rt.sockets.all().first().unwrap();
    let mut ctx = MsgCtx::new(
        &rt,
        &msg,
        "192.0.2.5:5062".parse().unwrap(),
        sock,
        RouteKind::Request,
    );
    setup(&mut ctx);
    let parts = parse(fmt).unwrap();
    String::from_utf8(render(&parts, &ctx, 1_700_000_000, 4096).unwrap()).unwrap()
}

fn show(raw: &str, fmt: &str) -> String {
    show_with(raw, fmt, |_| {})
}

#[test]
fn every_0_9_specifier_of_a_request() {
    assert_eq!(
        show(INVITE, "%rm %ru"),
        "INVITE sip:bob@example.net;user=phone"
    );
    assert_eq!(show(INVITE, "%fu %ft"), "sip:alice@example.com ft-1");
    assert_eq!(show(INVITE, "%tu %tt"), "sip:bob@example.net <null>");
    assert_eq!(show(INVITE, "%ci %cs"), "cid-42@host 17");
    assert_eq!(
        show(INVITE, "%ct|%ua"),
        "<sip:alice@192.0.2.5:5060>|phone/1.0"
    );
    assert_eq!(show(INVITE, "%is"), "192.0.2.5");
    assert_eq!(show(INVITE, "%rs %rr"), "<null> <null>");
    assert_eq!(show(INVITE, "%Ts"), "1700000000");
    assert_eq!(show(INVITE, "%pp"), std::process::id().to_string());
    assert_eq!(show(INVITE, "%ml"), INVITE.len().to_string());
    assert_eq!(show(INVITE, "%mf"), "0");
    assert_eq!(show_with(INVITE, "%mf", |c| c.flags = 5), "5");
    assert!(show(INVITE, "%mi").parse::<u64>().unwrap() > 0);
    assert_eq!(show(INVITE, "100%% %Tf").len(), "100% ".len() + 24);
    let mb = show(INVITE, "%mb");
    assert!(
        mb.starts_with("INVITE sip:bob@example.net;user=phone SIP/2.0\\r\\nVia:"),
        "{mb}"
    );
    assert!(!mb.contains('\n'));
}

#[test]
fn a_rewritten_ruri_is_shown() {
    let s = show_with(INVITE, "%ru", |c| {
        c.new_uri = Some(b"sip:carol@example.org".to_vec())
    });
    assert_eq!(s, "sip:carol@example.org");
}

#[test]
fn reply_specifiers() {
    assert_eq!(
        show(REPLY, "%rs %rr %rm %ru"),
        "486 Busy Here <null> <null>"
    );
    assert_eq!(show(REPLY, "%tt"), "tt-9");
    assert_eq!(show(REPLY, "%ct %ua"), "<null> <null>");
}

#[test]
fn headers_by_name_and_index() {
    assert_eq!(show(INVITE, "%{X-Info}"), "first");
    assert_eq!(show(INVITE, "%{x-info[1]}"), "second");
    assert_eq!(show(INVITE, "%{X-Info[-1]}"), "second");
    assert_eq!(show(INVITE, "%{X-Info[2]}"), "<null>");
    assert_eq!(show(INVITE, "%{X-None}"), "<null>");
    assert_eq!(show(INVITE, "%hdr(User-Agent)"), "phone/1.0");
    assert_eq!(show(INVITE, "$hdr(X-Info[1])"), "second");
    // Compact forms name the same header.
    assert_eq!(show(INVITE, "%{i}"), "cid-42@host");
}

#[test]
fn avps_by_every_name_form() {
    let set = |c: &mut MsgCtx<'_>| {
        c.avps.push((AvpName::Int(7), AvpValue::Int(-3)));
        c.avps.push((
            AvpName::Str(b"who".to_vec()),
            AvpValue::Str(b"carol".to_vec()),
        ));
    };
    assert_eq!(
        show_with(INVITE, "%avp(i:7) %avp(s:who) $avp(who)", set),
        "-3 carol carol"
    );
    assert_eq!(show_with(INVITE, "%avp(i:8)", set), "<null>");
}

#[test]
fn dollar_aliases_print_the_same_as_percent() {
    let pairs = [
        ("$ru", "%ru"),
        ("$rm", "%rm"),
        ("$fu", "%fu"),
        ("$ft", "%ft"),
        ("$tu", "%tu"),
        ("$ci", "%ci"),
        ("$cs", "%cs"),
        ("$ct", "%ct"),
        ("$ua", "%ua"),
        ("$si", "%is"),
        ("$pp", "%pp"),
        ("$Ts", "%Ts"),
        ("$ml", "%ml"),
    ];
    for (d, p) in pairs {
        assert_eq!(show(INVITE, d), show(INVITE, p), "{d}");
    }
    assert_eq!(show(INVITE, "cost $5 $$ $"), "cost $5 $ $");
}

#[test]
fn unknown_and_malformed_specifiers_are_refused() {
    assert!(matches!(
        parse("%zz"),
        Err(FormatError::Unknown { at: 0, .. })
    ));
    assert!(matches!(
        parse("ab %r"),
        Err(FormatError::Unknown { at: 3, .. })
    ));
    assert!(matches!(parse("%"), Err(FormatError::Unknown { .. })));
    assert!(matches!(parse("$foo"), Err(FormatError::Unknown { .. })));
    assert!(matches!(parse("$is"), Err(FormatError::Unknown { .. })));
    for bad in [
        "%{X", "%{}", "%{X[a]}", "%{X[1}", "%hdr(X", "%avp()", "%avp(x",
    ] {
        assert!(
            matches!(parse(bad), Err(FormatError::Malformed { .. })),
            "{bad}"
        );
    }
}

#[test]
fn the_format_is_parsed_into_parts_once() {
    let p = parse("a%%b %ru\n%{X-A[-1]}").unwrap();
    assert_eq!(
        p,
        vec![
            Part::Text(b"a%b ".to_vec()),
            Part::Spec(Spec::Ruri),
            Part::Text(b"\n".to_vec()),
            Part::Spec(Spec::Header {
                name: b"X-A".to_vec(),
                index: HdrIndex::Last
            }),
        ]
    );
}

#[test]
fn hostile_values_cannot_forge_lines() {
    let mut out = Vec::new();
    escape_into(
        &mut out,
        b"ok\r\nFAKE: line\x00\x7f\\ \xc2\x85 \xff caf\xc3\xa9",
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "ok\\r\\nFAKE: line\\x00\\x7f\\\\ \\xc2\\x85 \\xff café"
    );
    assert_eq!(show(INVITE, "%{X-Evil}"), "a\\\\b\\x1b[31m");
}

#[test]
fn a_folded_header_stays_on_one_line() {
    let raw = INVITE.replace("X-Info: first\r\n", "X-Info: first\r\n  folded\r\n");
    let s = show(&raw, "[%{X-Info}]\n");
    assert_eq!(s, "[first\\r\\n  folded]\n");
}

#[test]
fn a_line_past_buf_size_is_refused() {
    let rt = minimal_rt();
    let msg = Msg::parse(INVITE.as_bytes().to_vec()).unwrap();
    let sock = rt.sockets.all().first().unwrap();
    let ctx = MsgCtx::new(
        &rt,
        &msg,
        "192.0.2.5:5062".parse().unwrap(),
        sock,
        RouteKind::Request,
    );
    let parts = parse("%mb").unwrap();
    assert!(render(&parts, &ctx, 0, 64).is_err());
    assert!(render(&parts, &ctx, 0, 4096).is_ok());
    assert_eq!(NULL, b"<null>");
}

#[test]
fn levels_as_0_9_named_them() {
    assert_eq!(parse_level("L_ALERT"), Some(-3));
    assert_eq!(parse_level("L_CRIT"), Some(-2));
    assert_eq!(parse_level("L_ERR"), Some(-1));
    assert_eq!(parse_level("L_WARN"), Some(1));
    assert_eq!(parse_level("L_NOTICE"), Some(2));
    assert_eq!(parse_level("l_info"), Some(3));
    assert_eq!(parse_level("L_DBG"), Some(4));
    assert_eq!(parse_level("L_BOGUS"), None);
}

#[test]
fn configs_load_or_fail_with_file_and_line() {
    let ok = r#"loadmodule "xlog.so"
modparam("xlog", "buf_size", 1024)
route { xlog("L_INFO", "%rm %ru\n"); xdbg("%ci\n"); t_on_failure("1"); }
failure_route[1] { xlog("L_ERR", "failed %ru\n"); }
onreply_route[1] { xlog("L_NOTICE", "%rs\n"); }
"#;
    // t_on_failure needs tm; without it the route still loads with xlog.
    let ok = ok.replace(" t_on_failure(\"1\");", "");
    runtime(&ok).unwrap();

    let bad = "loadmodule \"xlog.so\"\nroute {\n  xlog(\"L_INFO\", \"%rm %xx\\n\");\n}\n";
    let e = load_error(bad);
    assert!(e.starts_with("xlog.cfg:3:"), "{e}");
    assert!(e.contains("%xx"), "{e}");

    let lvl = "loadmodule \"xlog.so\"\nroute { xlog(\"L_LOUD\", \"x\"); }\n";
    let e = load_error(lvl);
    assert!(e.contains("L_LOUD"), "{e}");

    let branch = "loadmodule \"xlog.so\"\nbranch_route[1] { xdbg(\"x\"); }\n";
    assert!(
        runtime(branch).is_err(),
        "0.9 exported xlog for no branch route"
    );

    let print_reply = "loadmodule \"print.so\"\nonreply_route[1] { print(\"x\"); }\n";
    assert!(runtime(print_reply).is_err());
    runtime("loadmodule \"print.so\"\nroute { print(\"hello\"); }\n").unwrap();
}
