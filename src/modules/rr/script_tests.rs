//! The module through the config loader and interpreter, against a real
//! runtime bound to loopback: parameters, fixups, and what a script run
//! leaves in the message context.

use crate::cfg::ast::RouteKind;
use crate::net::{ListenAddr, ListenSocket, Proto, SocketTable};
use crate::route::globals::CoreCfg;
use crate::route::interp::run_top;
use crate::route::{MsgCtx, Runtime};
use crate::sip::Msg;

const SCRIPT: &str = r#"
loadmodule "rr.so"
modparam("rr", "enable_full_lr", 1)
route {
    if (loose_route()) {
        if (!loose_route()) { drop; };
        setflag(1);
        return(1);
    };
    record_route();
    record_route();
}
"#;

fn runtime(script: &str) -> Result<Runtime, crate::route::LoadError> {
    let ast = crate::cfg::parse_str(script, "rr.cfg").unwrap();
    let loaded = crate::route::load(&ast, "rr.cfg", CoreCfg::default(), crate::modules::CATALOG)?;
    let udp = crate::net::open_udp("127.0.0.1:0".parse().unwrap(), 0, false).unwrap();
    let listen = ListenAddr {
        proto: Proto::Udp,
        addr: udp.local_addr().unwrap(),
        name: "127.0.0.1".into(),
    };
    let table = SocketTable::from_sockets(vec![ListenSocket::udp(listen, udp)]);
    Ok(Runtime::new(loaded, table))
}

/// Runs the main route over `raw`; returns the edited message bytes,
/// the context's flags and dst_uri.
fn run(rt: &Runtime, raw: &str) -> (String, u32, Option<String>) {
    let msg = Msg::parse(raw.as_bytes().to_vec()).unwrap();
    let sock = rt.sockets.all().first().unwrap();
    let src = "192.0.2.5:5060".parse().unwrap();
    let mut ctx = MsgCtx::new(rt, &msg, src, sock, RouteKind::Request);
    run_top(rt.routes.main(), &mut ctx);
    let mut out = Vec::new();
    ctx.lumps.apply(msg.buf(), &mut out).unwrap();
    let dst = ctx.dst_uri.map(|d| String::from_utf8(d).unwrap());
    (String::from_utf8(out).unwrap(), ctx.flags, dst)
}

#[test]
fn record_route_once_with_socket_address() {
    let rt = runtime(SCRIPT).unwrap();
    let port = rt.sockets.all().first().unwrap().listen.addr.port();
    let raw = "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK1\r\n\
               From: <sip:alice@a.example>;tag=caller\r\nTo: <sip:bob@b.example>\r\n\
               Call-ID: c@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let (out, flags, _) = run(&rt, raw);
    assert_eq!(
        flags & (1 << 1),
        0,
        "loose_route must be false without Route"
    );
    let want = format!(
        "INVITE sip:bob@b.example SIP/2.0\r\n\
         Record-Route: <sip:127.0.0.1:{port};ftag=caller;lr=on>\r\nVia: "
    );
    assert!(out.starts_with(&want), "{out}");
    assert_eq!(out.matches("Record-Route").count(), 1, "{out}");
}

#[test]
fn loose_route_in_dialog() {
    let rt = runtime(SCRIPT).unwrap();
    let port = rt.sockets.all().first().unwrap().listen.addr.port();
    let raw = format!(
        "BYE sip:bob@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK2\r\n\
         Route: <sip:127.0.0.1:{port};ftag=caller;lr=on>, <sip:p2.example;lr>\r\n\
         From: <sip:alice@a.example>;tag=caller\r\nTo: <sip:bob@b.example>;tag=callee\r\n\
         Call-ID: c@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let (out, flags, dst) = run(&rt, &raw);
    assert_ne!(flags & (1 << 1), 0, "loose_route must be true");
    assert_eq!(dst.as_deref(), Some("sip:p2.example;lr"));
    assert!(out.contains("\r\nRoute: <sip:p2.example;lr>\r\n"), "{out}");
    assert!(!out.contains("Record-Route"), "{out}");
}

#[test]
fn parameters_and_arguments_are_checked() {
    assert!(
        runtime("loadmodule \"rr.so\"\nmodparam(\"rr\", \"append_fromtag\", 0)\nroute {}\n")
            .is_ok()
    );
    assert!(
        runtime("loadmodule \"rr.so\"\nmodparam(\"rr\", \"enable_double_rr\", 0)\nroute {}\n")
            .is_ok()
    );
    assert!(runtime("loadmodule \"rr.so\"\nmodparam(\"rr\", \"no_such\", 1)\nroute {}\n").is_err());
    assert!(runtime("loadmodule \"rr.so\"\nroute { is_direction(\"sideways\"); }\n").is_err());
    assert!(runtime("loadmodule \"rr.so\"\nroute { record_route_preset(\"\"); }\n").is_err());
    let rt = runtime(
        "loadmodule \"rr.so\"\nmodparam(\"rr\", \"append_fromtag\", 0)\n\
         route { record_route_preset(\"10.1.1.1:5090\"); }\n",
    )
    .unwrap();
    let raw = "OPTIONS sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK3\r\n\
               From: <sip:alice@a.example>;tag=caller\r\nTo: <sip:bob@b.example>\r\n\
               Call-ID: c@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let (out, _, _) = run(&rt, raw);
    assert!(
        out.contains("\r\nRecord-Route: <sip:10.1.1.1:5090;lr>\r\nVia: "),
        "{out}"
    );
}
