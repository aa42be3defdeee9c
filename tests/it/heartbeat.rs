//! Every long-lived process beats (issue 18, item 4): a SIGSTOPped TCP
//! reader or FIFO server is reported as stalled by the supervisor and
//! again when it runs on; a server left idle for longer than the stall
//! limit, with slow clients holding its FIFO, metrics, JSON-RPC and TCP
//! sockets, reports no process at all. The respawn suite covers the UDP
//! workers.

use crate::common::ctlkit::{self, ps};
use crate::common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// What the supervisor logs about a process whose beat stopped.
const STALLED: &str = "has not run its loop";
/// ... and when it beats again.
const RESUMED: &str = "runs its loop again";

fn pid_of(ser: &Ser, desc: &str) -> i32 {
    let list = ps(ser);
    list.iter()
        .find(|(_, d)| d.starts_with(desc))
        .map(|(p, _)| *p)
        .unwrap_or_else(|| panic!("no '{desc}' in ps: {list:?}"))
}

/// Waits (at most 10 s) for a log line holding both `a` and `b`.
fn wait_for_line(ser: &Ser, a: &str, b: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ser.log().lines().any(|l| l.contains(a) && l.contains(b)) {
        assert!(
            Instant::now() < deadline,
            "no line with '{a}' and '{b}' in the log:\n{}",
            ser.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_tcp_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

#[test]
fn a_stopped_tcp_reader_and_fifo_server_are_reported_and_resumed() {
    let _g = serial();
    let port = free_udp_port();
    let extra = format!("listen=tcp:127.0.0.1:{port}\ntcp_children=2\n");
    let ser = ctlkit::start(TestDir::new(), port, &extra);
    let reader = pid_of(&ser, "tcp receiver child=1");
    let fifo = pid_of(&ser, "fifo server");
    for pid in [reader, fifo] {
        kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("SIGSTOP");
    }
    wait_for_line(
        &ser,
        &format!("process {reader} (tcp receiver child=1)"),
        STALLED,
    );
    wait_for_line(&ser, &format!("process {fifo} (fifo server)"), STALLED);
    for pid in [reader, fifo] {
        kill(Pid::from_raw(pid), Signal::SIGCONT).expect("SIGCONT");
    }
    wait_for_line(
        &ser,
        &format!("process {reader} (tcp receiver child=1)"),
        RESUMED,
    );
    wait_for_line(&ser, &format!("process {fifo} (fifo server)"), RESUMED);
    // Only the two stopped processes were reported.
    let log = ser.log();
    let reported: Vec<&str> = log.lines().filter(|l| l.contains(STALLED)).collect();
    assert_eq!(reported.len(), 2, "{reported:#?}");
}

/// Every kind of process that waits for input, idle or held by a slow
/// client, for more than twice the stall limit: none is reported.
#[test]
fn an_idle_server_with_slow_clients_reports_no_stall() {
    let _g = serial();
    let dir = TestDir::new();
    let port = free_udp_port();
    let mport = free_tcp_addr();
    let rpc_tcp = free_tcp_addr();
    let extra = format!(
        r#"listen=tcp:127.0.0.1:{port}
tcp_children=2
metrics_listen="{mport}"
jsonrpc_socket="{rpc_sock}"
jsonrpc_listen="{rpc_tcp}"
use_dns_cache=yes
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "nathelper.so"
modparam("nathelper", "natping_interval", 10)
route {{ drop; }}
"#,
        rpc_sock = dir.join("jsonrpc.sock").display(),
    );
    let ser = ctlkit::start(dir, port, &extra);
    let procs: Vec<String> = ps(&ser).into_iter().map(|(_, d)| d).collect();
    for want in [
        "timer",
        "receiver child=0",
        "tcp main process",
        "tcp receiver child=0",
        "fifo server",
        "unix domain socket server",
        "jsonrpc server",
        "dns resolver",
        "metrics server",
        "nathelper keep-alive pinger",
    ] {
        assert!(
            procs.iter().any(|d| d.starts_with(want)),
            "no '{want}' in ps: {procs:?}"
        );
    }
    // Slow clients, each inside its budget: half a scrape, half a
    // JSON-RPC request, half a SIP message, and FIFO requests whose rest
    // never comes, each overtaken by the next 2 s later, so that the FIFO
    // server is inside a request for the whole 7 s (twice the limit).
    let mut scrape = TcpStream::connect(mport).expect("metrics");
    scrape.write_all(b"GET /metr").expect("half a scrape");
    let mut rpc = TcpStream::connect(rpc_tcp).expect("jsonrpc");
    rpc.write_all(b"{\"jsonrpc\":").expect("half a request");
    let mut sip = TcpStream::connect(("127.0.0.1", port)).expect("tcp");
    sip.write_all(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: ")
        .expect("half a message");
    let fifo = ctlkit::fifo_of(&ser);
    let mut reports = Vec::new();
    let t0 = Instant::now();
    for _ in 0..4 {
        let report = ctlkit::Report::new("slow");
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open the FIFO");
        write!(w, ":t_uac_dlg:{}\nOPTIONS\n", report.name).expect("half a FIFO request");
        drop(w);
        reports.push(report);
        std::thread::sleep(Duration::from_secs(2));
    }
    std::thread::sleep(Duration::from_secs(7).saturating_sub(t0.elapsed()));
    let log = ser.log();
    let stalled: Vec<&str> = log.lines().filter(|l| l.contains(STALLED)).collect();
    assert!(stalled.is_empty(), "reported as stalled: {stalled:#?}");
    // The slow FIFO requests were waited for, then refused (not skipped):
    // the first three overtaken, the last one out of time.
    for r in &reports {
        let answer = r.wait(Duration::from_secs(5)).unwrap_or_default();
        assert!(answer.starts_with("400"), "{answer:?}\n{log}");
    }
    drop((scrape, rpc, sip));
}
