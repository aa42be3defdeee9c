//! The management interfaces against clients that misbehave: one that
//! sends requests over the unix socket and never reads its replies must
//! not keep anyone else from being answered.

use crate::common::ctlkit::{serctl, sock_of, start, text};
use crate::common::{free_udp_port, serial, TestDir};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A client whose queue is full (it never reads) used to cost every reply
/// to it `unix_tx_timeout` (2 s) of the only unix socket process; forty
/// requests kept `serctl -s … ps` timing out for over a minute. Now its
/// replies wait aside (bounded) or are dropped, and serctl — the real
/// binary, with its own 5 s limit — is answered every time.
#[test]
fn a_client_that_never_reads_does_not_stop_serctl() {
    let _g = serial();
    let port = free_udp_port();
    let ser = start(TestDir::new(), port, "route { drop; }");
    let sock = sock_of(&ser);
    let deaf_path = ser.dir().join("deaf.sock");
    let deaf = UnixDatagram::bind(&deaf_path).expect("bind the deaf client");
    let _ = nix::sys::socket::setsockopt(&deaf, nix::sys::socket::sockopt::RcvBuf, &1024usize);
    deaf.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let sock_arg = sock.display().to_string();
    // Large replies too: queued for the deaf client they fill the server
    // socket's own send buffer, so that replies to anyone would block.
    let big = format!(":print:\n{}\n", "x".repeat(60_000));
    for round in 0..8 {
        let burst = if round == 0 { 40 } else { 8 };
        for _ in 0..burst {
            // The server reads at once; a full server queue is not what
            // is tested, so a send that fails is simply not counted.
            let req: &[u8] = if round % 2 == 0 {
                big.as_bytes()
            } else {
                b":ps:\n"
            };
            let _ = deaf.send_to(req, &sock);
        }
        let out = serctl(&["-s", &sock_arg], &["ps"]);
        assert!(
            out.status.success() && text(&out.stdout).contains("unix"),
            "round {round}: serctl ps failed: {}{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            ser.log()
        );
    }
    // The drops are logged, but rate-limited (two call sites, ten each).
    let log = ser.log();
    let dropped = log.lines().filter(|l| l.contains("dropped")).count();
    assert!((1..=20).contains(&dropped), "{dropped} drop lines:\n{log}");
}
