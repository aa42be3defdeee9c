//! JSON-RPC 2.0 management (`jsonrpc_socket=`, `jsonrpc_listen=`): the
//! FIFO's commands under their own and 2.x names over a unix stream socket
//! and loopback TCP; a UAC transaction's report; usrloc after a REGISTER;
//! hostile and stalled clients; `serctl -j`; a non-loopback address
//! refused at load.

use crate::common::ctlkit::{serctl, text};
use crate::common::server::{check_config, Ser};
use crate::common::sip::{first_line, header_value, reply_to, Request, UdpPeer};
use crate::common::{free_udp_port, serial, TestDir};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Rpc {
    ser: Ser,
    sock: PathBuf,
    tcp: SocketAddr,
}

fn free_tcp_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// ser with tm, usrloc and registrar (REGISTERs saved, the rest dropped),
/// JSON-RPC on a socket in the test directory and on a loopback port.
fn start() -> Rpc {
    let dir = TestDir::new();
    let port = free_udp_port();
    let sock = dir.join("jsonrpc.sock");
    let tcp = free_tcp_addr();
    let cfg = format!(
        r#"
debug=3
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=2
jsonrpc_socket="{sock}"
jsonrpc_listen="{tcp}"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("tm", "fr_timer", 2)
route {{
    if (method == "REGISTER") {{ save("location"); break; }};
    drop;
}}
"#,
        sock = sock.display()
    );
    let ser = Ser::start_in(dir, &cfg, &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while UnixStream::connect(&sock).is_err() || TcpStream::connect(tcp).is_err() {
        assert!(
            Instant::now() < deadline,
            "no JSON-RPC server:\n{}",
            ser.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Rpc { ser, sock, tcp }
}

/// Sends raw bytes, reads the response to the end of the connection.
fn raw(mut s: impl Read + Write, bytes: &[u8]) -> String {
    s.write_all(bytes).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn unix_stream(r: &Rpc) -> UnixStream {
    let s = UnixStream::connect(&r.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn tcp_stream(r: &Rpc) -> TcpStream {
    let s = TcpStream::connect(r.tcp).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn parse(s: &str) -> Value {
    assert!(s.ends_with('\n'), "a response ends with LF: {s:?}");
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s:?}"))
}

fn call(r: &Rpc, method: &str, params: Value) -> Value {
    let req = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
    parse(&raw(unix_stream(r), req.to_string().as_bytes()))
}

#[test]
fn fifo_names_and_2x_names_over_unix_socket_and_tcp() {
    let _g = serial();
    let r = start();
    let m = call(&r, "system.listMethods", json!([]));
    let methods: Vec<&str> = m["result"]
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "ps",
        "uptime",
        "t_uac_dlg",
        "ul_show_contact",
        "core.uptime",
        "core.ps",
        "tm.stats",
        "ul.dump",
        "ul.lookup",
        "system.methodHelp",
    ] {
        assert!(methods.contains(&want), "{want} missing: {methods:?}");
    }
    // FIFO name: the reply's lines; 2.x name: an object.
    let up = call(&r, "uptime", json!([]));
    let lines = up["result"].as_array().expect("lines");
    assert_eq!(lines.len(), 3, "{up}");
    assert!(lines[2].as_str().unwrap().starts_with("Up time: "), "{up}");
    assert_eq!(up["id"], 1);
    let req = json!({"jsonrpc": "2.0", "method": "core.uptime", "id": "t"});
    let up = parse(&raw(tcp_stream(&r), req.to_string().as_bytes()));
    assert!(up["result"]["uptime"].is_u64(), "{up}");
    assert_eq!(up["id"], "t");
    let ps = call(&r, "core.ps", json!([]));
    assert!(ps.to_string().contains("jsonrpc server"), "{ps}");
    let st = call(&r, "tm.stats", json!([]));
    assert_eq!(st["result"]["current"], 0, "{st}");
    let h = call(&r, "system.methodHelp", json!(["ul.lookup"]));
    assert!(
        h["result"].as_str().unwrap().contains("ul_show_contact"),
        "{h}"
    );
}

#[test]
fn usrloc_commands_see_a_registered_contact() {
    let _g = serial();
    let r = start();
    let ua = UdpPeer::bind();
    let contact = format!("<sip:alice@127.0.0.1:{}>", ua.port());
    let mut reg = Request::new("REGISTER", "sip:127.0.0.1", ua.port())
        .header("Contact", &contact)
        .header("Expires", "600");
    reg.to = "<sip:alice@127.0.0.1>".into();
    ua.send_to_port(&reg.build(), r.ser.port());
    let (rep, _) = ua
        .recv_timeout(Duration::from_secs(3))
        .expect("REGISTER answered");
    assert!(first_line(&rep).contains(" 200 "), "{}", text(&rep));

    for m in ["ul.lookup", "ul_show_contact"] {
        let v = call(&r, m, json!(["location", "alice"]));
        assert!(
            v["result"]
                .to_string()
                .contains(&format!("127.0.0.1:{}", ua.port())),
            "{m}: {v}"
        );
    }
    let d = call(&r, "ul.dump", json!([]));
    assert!(d["result"].to_string().contains("alice"), "{d}");
    let rm = call(&r, "ul.rm", json!(["location", "alice"]));
    assert!(rm["result"].is_array(), "{rm}");
    // Gone: the command's 404 travels in the error's data.
    let v = call(&r, "ul.lookup", json!(["location", "alice"]));
    assert_eq!(v["error"]["code"], -32000, "{v}");
    assert_eq!(v["error"]["data"]["status"], 404, "{v}");
    // A missing parameter line is an invalid-params error.
    let v = call(&r, "ul.lookup", json!([]));
    assert_eq!(v["error"]["code"], -32602, "{v}");
}

#[test]
fn t_uac_dlg_answers_with_the_final_reply_while_others_are_served() {
    let _g = serial();
    let r = start();
    let uas = UdpPeer::bind();
    let ruri = format!("sip:bob@127.0.0.1:{}", uas.port());
    let req = json!({
        "jsonrpc": "2.0",
        "method": "tm.t_uac_wait",
        "params": ["OPTIONS", ruri, ".", ["From: <sip:rpc@127.0.0.1>", format!("To: <{ruri}>")], []],
        "id": 42
    });
    let mut waiting = unix_stream(&r);
    waiting.write_all(req.to_string().as_bytes()).unwrap();
    let (opt, from) = uas
        .recv_timeout(Duration::from_secs(3))
        .expect("OPTIONS arrives");
    assert_eq!(first_line(&opt), format!("OPTIONS {ruri} SIP/2.0"));
    assert!(header_value(&opt, "From")
        .unwrap()
        .contains("sip:rpc@127.0.0.1"));
    // While that request waits for its reply, another client is served.
    let t0 = Instant::now();
    let p = call(&r, "print", json!(["meanwhile"]));
    assert_eq!(p["result"], json!(["meanwhile"]));
    assert!(t0.elapsed() < Duration::from_secs(2));
    uas.send(&reply_to(&opt, 486, "Busy Here", Some("b")), from);
    let mut out = String::new();
    waiting.read_to_string(&mut out).unwrap();
    let v = parse(&out);
    assert_eq!(v["id"], 42);
    assert_eq!(v["result"]["status"], 486, "{v}");
    assert_eq!(v["result"]["reason"], "Busy Here", "{v}");
    // Nobody answers: tm's own 408 after fr_timer.
    let dead = format!("sip:x@127.0.0.1:{}", free_udp_port());
    let v = call(
        &r,
        "t_uac_dlg",
        json!([
            "OPTIONS",
            dead,
            ".",
            ["From: <sip:rpc@127.0.0.1>", format!("To: <{dead}>")],
            []
        ]),
    );
    assert_eq!(v["result"]["status"], 408, "{v}");
}

#[test]
fn bad_requests_get_error_objects_and_stalled_clients_block_nobody() {
    let _g = serial();
    let r = start();
    let code = |s: &str| parse(s)["error"]["code"].as_i64();
    let v = call(&r, "nosuch.method", json!([]));
    assert_eq!(v["error"]["code"], -32601, "{v}");
    assert_eq!(v["id"], 1);
    assert_eq!(
        code(&raw(unix_stream(&r), b"{\"jsonrpc\":\"2.0\",,}")),
        Some(-32700)
    );
    assert_eq!(
        code(&raw(tcp_stream(&r), b"\x00\xff garbage\r\n")),
        Some(-32700)
    );
    assert_eq!(
        code(&raw(
            unix_stream(&r),
            b"[{\"jsonrpc\":\"2.0\",\"method\":\"ps\",\"id\":1}]"
        )),
        Some(-32600)
    );
    assert_eq!(
        code(&raw(unix_stream(&r), b"{\"method\":\"ps\",\"id\":1}")),
        Some(-32600)
    );
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert_eq!(code(&raw(unix_stream(&r), deep.as_bytes())), Some(-32700));
    // Oversized: refused once the limit passes, without reading it all.
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"print\",\"params\":[\"{}\"],\"id\":1}}",
        "x".repeat(100 * 1024)
    );
    let mut s = tcp_stream(&r);
    let _ = s.write_all(big.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert_eq!(code(&out), Some(-32600), "{out}");
    // A client that stops half-way holds only its own connection.
    let mut stalled = unix_stream(&r);
    stalled.write_all(b"{\"jsonrpc\":\"2.0\",\"meth").unwrap();
    let t0 = Instant::now();
    let v = call(&r, "print", json!(["not blocked"]));
    assert_eq!(v["result"], json!(["not blocked"]));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // ... and is told so after the read timeout (5 s).
    let mut out = String::new();
    stalled.read_to_string(&mut out).unwrap();
    assert_eq!(code(&out), Some(-32700), "{out}");
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    // A client closing early with half a request gets a parse error.
    let mut half = unix_stream(&r);
    half.write_all(b"{\"jsonrpc\":").unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    half.read_to_string(&mut out).unwrap();
    assert_eq!(code(&out), Some(-32700), "{out}");
    // A notification runs and gets no response.
    let out = raw(
        unix_stream(&r),
        b"{\"jsonrpc\":\"2.0\",\"method\":\"print\",\"params\":[\"n\"]}",
    );
    assert_eq!(out, "");
    // Still serving.
    assert!(call(&r, "version", json!([]))["result"].is_array());
}

#[test]
fn serctl_speaks_json_rpc() {
    let _g = serial();
    let r = start();
    let sock = r.sock.display().to_string();
    let tcp = r.tcp.to_string();
    for t in [["-j", sock.as_str()], ["-j", tcp.as_str()]] {
        let ps = serctl(&t, &["ps"]);
        assert_eq!(ps.status.code(), Some(0), "{t:?} {}", text(&ps.stderr));
        assert!(
            text(&ps.stdout).contains("jsonrpc server"),
            "{}",
            text(&ps.stdout)
        );
        let up = text(&serctl(&t, &["uptime"]).stdout);
        assert!(up.contains("Up Since: ") && up.contains(" [sec]"), "{up}");
        let st = text(&serctl(&t, &["stats"]).stdout);
        assert!(st.contains("Current: 0"), "{st}");
        let p = text(&serctl(&t, &["fifo", "print", "hello there"]).stdout);
        assert!(p.ends_with("hello there\n"), "{p}");
        let bad = serctl(&t, &["fifo", "nosuch"]);
        assert_eq!(bad.status.code(), Some(1));
        assert!(
            text(&bad.stderr).contains("500 method not found"),
            "{}",
            text(&bad.stderr)
        );
        let ul = serctl(&t, &["ul", "show", "nobody"]);
        assert_eq!(ul.status.code(), Some(1));
        assert!(text(&ul.stderr).starts_with("404 "), "{}", text(&ul.stderr));
    }
    // The environment variable picks it too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serctl"))
        .env("SER_JSONRPC", &sock)
        .args(["fifo", "core.shmmem"])
        .output()
        .expect("serctl");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("total: "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn non_loopback_tcp_is_refused_at_load_with_file_and_line() {
    let dir = TestDir::new();
    let file = dir.write(
        "ser.cfg",
        b"listen=udp:127.0.0.1:5999\njsonrpc_listen=\"0.0.0.0:5081\"\nroute { drop; }\n",
    );
    let r = check_config(&file);
    assert_ne!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("ser.cfg:2"), "{}", r.stderr);
    assert!(r.stderr.contains("loopback"), "{}", r.stderr);
}
