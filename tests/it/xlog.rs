//! xlog and print on the real server: every pseudo-variable on a sipp
//! call through tm (request and onreply routes), the `debug=` level
//! gating xlog like any log line, hostile header values that cannot forge
//! log lines, print's stdout line, and bad formats refused at load with
//! file:line.

use crate::common::server::{check_config, Ser};
use crate::common::sip::{status_of, Request, UdpPeer};
use crate::common::sipp::Sipp;
use crate::common::tmkit::tm_cfg;
use crate::common::{free_udp_port, serial, TestDir};
use std::time::{Duration, Instant};

const MODS: &str = r#"loadmodule "/usr/local/lib/ser/modules/xlog.so"
loadmodule "/usr/local/lib/ser/modules/print.so"
loadmodule "/usr/local/lib/ser/modules/avpops.so""#;

/// Lines of the server log that start with `prefix`.
fn lines(ser: &Ser, prefix: &str) -> Vec<String> {
    ser.log()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

fn wait_lines(ser: &Ser, prefix: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = lines(ser, prefix);
        if found.len() >= n || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `name=value` out of an xlog line written as `k=v k=v …`.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} missing in {line}"))
        + key.len();
    line[at..].split(' ').next().unwrap_or("")
}

#[test]
fn every_pseudo_variable_on_a_sipp_call() {
    let _g = serial();
    let dir = TestDir::new();
    let uas = Sipp::builtin("uas").timeout(Duration::from_secs(20));
    let port = free_udp_port();
    let routes = format!(
        r#"route {{
    if (method == "INVITE") {{
        avp_write("s:carol", "s:who");
        avp_write("i:42", "i:7");
        setflag(3);
        xlog("L_NOTICE", "XLREQ rm=%rm ru=%ru fu=%fu ft=%ft tu=%tu tt=%tt ci=%ci cs=%cs ct=%ct is=%is pp=%pp Ts=%Ts Tf=[%Tf] ua=%ua mf=%mf mi=%mi ml=%ml mfwd=%{{Max-Forwards}} via=%hdr(Via[-1]) who=%avp(s:who) seven=%avp(i:7) none=%avp(s:none) rs=%rs pct=%%\n");
        xlog("L_NOTICE", "XLNEW ru=$ru rm=$rm fu=$fu ft=$ft tu=$tu ci=$ci cs=$cs si=$si pp=$pp hdr=$hdr(Call-ID) avp=$avp(who)\n");
        xlog("L_INFO", "XLHIDDEN info is above debug=2\n");
        xdbg("XLHIDDEN debug\n");
        print("PRINTED %ru is not expanded by print");
        t_on_reply("1");
    }};
    if (!t_relay_to_udp("127.0.0.1", "{uas}")) {{ sl_reply_error(); }};
}}
onreply_route[1] {{
    xlog("L_NOTICE", "XLREPLY rs=%rs rr=%rr tt=%tt rm=%rm ru=%ru ci=%ci cs=%cs\n");
}}"#,
        uas = uas.port()
    );
    let ser = Ser::start(&tm_cfg(port, 2, MODS, &routes));
    let callee = uas.spawn(&dir);
    Sipp::builtin("uac")
        .to(port)
        .calls(1)
        .timeout(Duration::from_secs(15))
        .run(&dir)
        .assert_all_ok(1);
    callee.stop();

    let req = wait_lines(&ser, "XLREQ", 1);
    assert_eq!(req.len(), 1, "{}", ser.log());
    let l = &req[0];
    assert_eq!(field(l, "rm"), "INVITE");
    assert!(field(l, "ru").starts_with("sip:service@127.0.0.1"), "{l}");
    assert!(field(l, "fu").starts_with("sip:sipp@127.0.0.1"), "{l}");
    assert!(
        !field(l, "ft").is_empty() && field(l, "ft") != "<null>",
        "{l}"
    );
    assert!(field(l, "tu").starts_with("sip:service@127.0.0.1"), "{l}");
    assert_eq!(field(l, "tt"), "<null>");
    assert!(field(l, "ci").contains("@127.0.0.1"), "{l}");
    assert_eq!(field(l, "cs"), "1");
    assert!(field(l, "ct").contains("sip:sipp@127.0.0.1"), "{l}");
    assert_eq!(field(l, "is"), "127.0.0.1");
    let pp: i32 = field(l, "pp").parse().expect("pid");
    assert!(ser.child_pids().contains(&pp), "{pp} is no child of ser");
    let ts: u64 = field(l, "Ts").parse().expect("Ts");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ts <= now && now - ts < 60, "{ts} vs {now}");
    let tf = &l[l.find("Tf=[").unwrap() + 4..l.find("] ua=").unwrap()];
    assert_eq!(tf.len(), 24, "ctime shape: {tf:?}");
    assert_eq!(field(l, "ua"), "<null>", "sipp's uac sends no User-Agent");
    assert_eq!(field(l, "mf"), "8");
    assert!(field(l, "mi").parse::<u64>().unwrap() >= 1, "{l}");
    assert!(field(l, "ml").parse::<u64>().unwrap() > 200, "{l}");
    assert_eq!(field(l, "mfwd"), "70");
    assert!(field(l, "via").starts_with("SIP/2.0/UDP"), "{l}");
    assert_eq!(field(l, "who"), "carol");
    assert_eq!(field(l, "seven"), "42");
    assert_eq!(field(l, "none"), "<null>");
    assert_eq!(field(l, "rs"), "<null>");
    assert_eq!(field(l, "pct"), "%");

    let new = wait_lines(&ser, "XLNEW", 1);
    assert_eq!(new.len(), 1, "{}", ser.log());
    let n = &new[0];
    for (d, p) in [
        ("ru", "ru"),
        ("rm", "rm"),
        ("fu", "fu"),
        ("ft", "ft"),
        ("tu", "tu"),
        ("ci", "ci"),
        ("cs", "cs"),
        ("si", "is"),
        ("pp", "pp"),
        ("avp", "who"),
    ] {
        assert_eq!(field(n, d), field(l, p), "${d} vs %{p}");
    }
    assert_eq!(field(n, "hdr"), field(l, "ci"));

    // The 180 and the 200 through the onreply route.
    let replies = wait_lines(&ser, "XLREPLY", 2);
    assert!(replies.len() >= 2, "{}", ser.log());
    let ok = replies
        .iter()
        .find(|r| field(r, "rs") == "200")
        .unwrap_or_else(|| panic!("no 200 in {replies:?}"));
    assert_eq!(field(ok, "rr"), "OK");
    assert!(!field(ok, "tt").is_empty() && field(ok, "tt") != "<null>");
    assert_eq!(field(ok, "rm"), "<null>");
    assert_eq!(field(ok, "ru"), "<null>");
    assert_eq!(field(ok, "ci"), field(l, "ci"));
    assert_eq!(field(ok, "cs"), "1");

    assert!(lines(&ser, "XLHIDDEN").is_empty(), "{}", ser.log());
    let printed = lines(&ser, "PRINTED");
    assert_eq!(
        printed,
        vec!["PRINTED %ru is not expanded by print".to_string()]
    );
}

fn stateless_cfg(port: u16, route: &str) -> String {
    format!(
        r#"
debug=2
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=1
fifo=""
loadmodule "/usr/local/lib/ser/modules/sl.so"
{MODS}
route {{
{route}
    sl_send_reply("200", "OK");
}}
"#
    )
}

#[test]
fn hostile_header_values_cannot_forge_log_lines() {
    let port = free_udp_port();
    let ser = Ser::start(&stateless_cfg(
        port,
        r#"    xlog("L_NOTICE", "XLH evil=[%{X-Evil}] ua=[%ua] ci=%ci\n");"#,
    ));
    let peer = UdpPeer::bind();
    // A folded header carries CR LF inside its value; ESC and a lone
    // backslash ride along; the User-Agent holds bytes that are no UTF-8.
    let mut raw = Request::new("OPTIONS", &format!("sip:x@127.0.0.1:{port}"), peer.port())
        .header("X-Evil", "a\r\n FORGED: ser[1]: ERROR: owned \x1b[31m\\x")
        .build();
    let ua_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    raw.splice(
        ua_at..ua_at,
        b"User-Agent: \xff\xfe\x07bell\r\n".iter().copied(),
    );
    // Content-Length is 0 and stays right: the header went before the blank line.
    peer.send_to_port(&raw, port);
    let (reply, _) = peer
        .recv_final(Duration::from_secs(3))
        .expect("a reply to the OPTIONS");
    assert_eq!(status_of(&reply), Some(200));

    let got = wait_lines(&ser, "XLH ", 1);
    assert_eq!(got.len(), 1, "{}", ser.log());
    let l = &got[0];
    assert!(
        l.contains(r"evil=[a\r\n FORGED: ser[1]: ERROR: owned \x1b[31m\\x]"),
        "{l}"
    );
    assert!(l.contains(r"ua=[\xff\xfe\x07bell]"), "{l}");
    assert!(
        !ser.log()
            .lines()
            .any(|x| x.trim_start().starts_with("FORGED")),
        "{}",
        ser.log()
    );
    assert!(!ser.log().contains('\x1b'), "raw ESC reached the log");
}

#[test]
fn debug_level_decides_which_xlog_lines_appear() {
    let port = free_udp_port();
    let cfg = stateless_cfg(
        port,
        r#"    xlog("L_ERR", "XLV err\n");
    xlog("L_INFO", "XLV info\n");
    xdbg("XLV dbg %rm\n");"#,
    )
    .replace("debug=2", "debug=4");
    let ser = Ser::start(&cfg);
    let peer = UdpPeer::bind();
    let raw = Request::new("OPTIONS", &format!("sip:x@127.0.0.1:{port}"), peer.port()).build();
    peer.send_to_port(&raw, port);
    peer.recv_final(Duration::from_secs(3)).expect("reply");
    let got = wait_lines(&ser, "XLV", 3);
    assert_eq!(
        got,
        vec!["XLV err", "XLV info", "XLV dbg OPTIONS"],
        "{}",
        ser.log()
    );
}

#[test]
fn bad_formats_and_levels_are_refused_at_load_with_file_and_line() {
    let dir = TestDir::new();
    for (body, needle) in [
        (r#"xlog("L_INFO", "%ru %zz\n");"#, "%zz"),
        (r#"xlog("L_INFO", "$bogus\n");"#, "$bogus"),
        (r#"xlog("L_INFO", "%{X-Open\n");"#, "header name not closed"),
        (r#"xlog("L_LOUD", "x\n");"#, "L_LOUD"),
        (r#"xdbg("%hdr(X[a])\n");"#, "header index"),
    ] {
        let cfg = format!(
            "loadmodule \"/usr/local/lib/ser/modules/xlog.so\"\nroute {{\n    {body}\n}}\n"
        );
        let file = dir.write("ser.cfg", cfg.as_bytes());
        let r = check_config(&file);
        assert_ne!(r.code(), Some(0), "{body}: {r:?}");
        assert!(
            r.stderr.contains(needle) && r.stderr.contains("ser.cfg:3"),
            "{body}: {}",
            r.stderr
        );
    }
    // print only in the request route, as SER 0.9 exported it.
    let cfg = "loadmodule \"/usr/local/lib/ser/modules/print.so\"\n\
route { drop; }\nonreply_route[1] { print(\"x\"); }\n";
    let file = dir.write("ser.cfg", cfg.as_bytes());
    let r = check_config(&file);
    assert_ne!(r.code(), Some(0), "{r:?}");
    assert!(r.stderr.contains("ser.cfg:3"), "{}", r.stderr);
}
