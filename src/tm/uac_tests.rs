//! `t_uac` end to end inside one process: the request leaves with our
//! branch id, the peer's 200 comes back through the driver, and the
//! completion report hears it. (Only test in this binary that sets up tm's
//! process-wide state.)

use std::net::UdpSocket;
use std::sync::Mutex;
use std::time::Duration;

use crate::net::{ListenAddr, ListenSocket, Proto, SocketTable};
use crate::route::globals::CoreCfg;
use crate::route::Runtime;
use crate::sip::Msg;
use crate::tm::callbacks::{register_report, UacOutcome};
use crate::tm::stats::snapshot;
use crate::tm::store::branch_id;
use crate::tm::uac::{t_uac, UacRequest};

static REPORTED: Mutex<Vec<(u16, Vec<u8>)>> = Mutex::new(Vec::new());

fn record(o: &UacOutcome<'_>) {
    REPORTED.lock().unwrap().push((o.code, o.param.to_vec()));
}

fn header<'a>(raw: &'a str, name: &str) -> &'a str {
    raw.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or("")
}

#[test]
fn uac_sends_retransmits_and_reports_the_final() {
    let region: &'static shm::Region = Box::leak(Box::new(shm::Region::new(8 << 20).unwrap()));
    let script = crate::cfg::parse_str("loadmodule \"tm.so\"\nroute {}\n", "t.cfg").unwrap();
    let loaded = crate::route::load(
        &script,
        "t.cfg",
        CoreCfg::default(),
        crate::modules::CATALOG,
    )
    .unwrap();
    let udp = crate::net::open_udp("127.0.0.1:0".parse().unwrap(), 0, false).unwrap();
    let addr = udp.local_addr().unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let listen = ListenAddr {
        proto: Proto::Udp,
        addr,
        name: "127.0.0.1".into(),
    };
    let table = SocketTable::from_sockets(vec![ListenSocket::udp(listen, udp)]);
    let rt: &'static Runtime = Box::leak(Box::new(Runtime::new(loaded, table)));
    for m in &rt.modules {
        m.mod_init(rt, region).unwrap();
    }
    register_report(7, record);

    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let ruri = format!("sip:bob@{}", peer.local_addr().unwrap());
    let req = UacRequest {
        method: "MESSAGE",
        ruri: &ruri,
        from: "<sip:alice@example.test>",
        to: "<sip:bob@example.test>",
        headers: "Content-Type: text/plain\r\n",
        body: b"I love you man!!!!",
        ..Default::default()
    };
    let started = t_uac(&req, 7, b"report-to-me").unwrap();

    let mut buf = vec![0u8; 65536];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(from, addr);
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        got.starts_with(&format!("MESSAGE {ruri} SIP/2.0\r\n")),
        "{got}"
    );
    let branch = branch_id(started.hash, started.label, 0);
    assert!(
        header(&got, "Via").contains(&format!(";branch={branch}")),
        "{got}"
    );
    assert!(header(&got, "From").contains(";tag="));
    assert_eq!(header(&got, "CSeq"), "10 MESSAGE");
    assert!(got.ends_with("\r\n\r\nI love you man!!!!"));

    // Answer 200 and hand it to the driver as a worker would.
    let reply = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=b1\r\nCall-ID: {}\r\nCSeq: 10 MESSAGE\r\nContent-Length: 0\r\n\r\n",
        header(&got, "Via"),
        header(&got, "From"),
        header(&got, "To"),
        header(&got, "Call-ID")
    );
    peer.send_to(reply.as_bytes(), addr).unwrap();
    let rcv = &rt.sockets.all()[0];
    let (n, src) = rcv.udp_socket().unwrap().recv_from(&mut buf).unwrap();
    let msg = Msg::parse(buf[..n].to_vec()).map_err(|f| f.error).unwrap();
    assert!(
        crate::tm::driver::on_reply(&msg, src, rcv),
        "the reply must find its transaction"
    );
    assert_eq!(
        REPORTED.lock().unwrap().as_slice(),
        &[(200, b"report-to-me".to_vec())]
    );
    let s = snapshot();
    assert_eq!((s.created, s.local), (1, 1));
    // No timer process here: the cell waits in Wait, still counted.
    assert_eq!(s.current(), 1);
    // A second reply (retransmitted 200) is absorbed, not reported twice.
    peer.send_to(reply.as_bytes(), addr).unwrap();
    let (n, src) = rcv.udp_socket().unwrap().recv_from(&mut buf).unwrap();
    let msg = Msg::parse(buf[..n].to_vec()).map_err(|f| f.error).unwrap();
    assert!(crate::tm::driver::on_reply(&msg, src, rcv));
    assert_eq!(REPORTED.lock().unwrap().len(), 1);
}
