//! The Prometheus endpoint (`metrics_listen`): scraped before, during and
//! after a sipp run through tm, its counters move and the text parses as
//! the exposition format; another path is 404; a client that sends half a
//! request and stalls does not stop the next scrape; a bad address is
//! refused at load with file:line, a port already taken refuses the start.

use crate::common::procfs;
use crate::common::server::{check_config, run_bounded};
use crate::common::{
    free_udp_port, ser_bin, serial, status_of, Request, Ser, Sipp, TestDir, UdpPeer,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// A stateful relay to a sipp UAS on `uas`, with the endpoint on `mport`.
fn relay_cfg(port: u16, mport: u16, uas: u16) -> String {
    format!(
        r#"
debug=2
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=2
fifo=""
metrics_listen="127.0.0.1:{mport}"
loadmodule "/usr/local/lib/ser/modules/sl.so"
loadmodule "/usr/local/lib/ser/modules/tm.so"
modparam("tm", "wt_timer", 2)
route {{
    if (!t_relay_to_udp("127.0.0.1", "{uas}")) {{ sl_reply_error(); }};
}}
"#
    )
}

/// Starts ser and waits until the endpoint listens.
fn start(cfg: &str, mport: u16) -> Ser {
    let mut ser = Ser::start(cfg);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !procfs::tcp_port_listening(mport) {
        assert!(ser.is_running(), "server exited:\n{}", ser.log());
        assert!(
            Instant::now() < deadline,
            "metrics port {mport} never listened:\n{}",
            ser.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ser
}

/// One HTTP exchange: `request` sent whole, the answer read to its end
/// (the server closes). Returns (status, head, body).
fn http(mport: u16, request: &[u8]) -> (u16, String, String) {
    let mut c = TcpStream::connect(("127.0.0.1", mport)).expect("connect to metrics");
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    c.write_all(request).expect("send request");
    let mut raw = Vec::new();
    c.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("reading the answer: {e} (got {raw:?})"));
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

/// `GET /metrics`, checked and parsed.
fn scrape(mport: u16) -> Scrape {
    let (status, head, body) = http(mport, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length: {head}"));
    assert_eq!(len, body.len(), "Content-Length");
    parse(&body).unwrap_or_else(|e| panic!("not the exposition format: {e}\n{body}"))
}

/// Scrapes until `ok` holds or 3 s passed; the last scrape either way. A
/// worker counts a reply just after sending it, so a peer can hold the
/// last reply a moment before the counters show it.
fn scrape_until(mport: u16, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = scrape(mport);
        if ok(&s) || Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
struct Line {
    name: String,
    labels: Labels,
    value: f64,
}

#[derive(Debug, Default)]
struct Scrape {
    types: HashMap<String, String>,
    samples: Vec<Line>,
}

impl Scrape {
    /// Sum of `name`'s samples whose labels include every `want` pair.
    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                want.iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

type Labels = Vec<(String, String)>;

/// `{k="v",…}` from the text after the name; returns labels and the rest.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("no {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find("=\"").ok_or("label without =\"")?;
        let key = &rest[..eq];
        if !valid_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((key.to_string(), value));
        rest = &rest[eq + 2 + end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// The text exposition format, strictly: `# HELP`/`# TYPE` lines, every
/// sample `name{labels} value` of a family that has a TYPE given before
/// it (a summary's `_sum`/`_count` belong to the summary), counters named
/// `…_total`, one TYPE per family.
fn parse(body: &str) -> Result<Scrape, String> {
    let mut s = Scrape::default();
    if !body.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !valid_name(name) {
                return Err(format!("HELP of a bad name: {line}"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE: {line}"))?;
            if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                return Err(format!("unknown type: {line}"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(format!("counter not named _total: {line}"));
            }
            if s.types.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(format!("second TYPE for {name}"));
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(format!("stray line: {line:?}"));
        }
        let name_end = line.find(['{', ' ']).ok_or(format!("no value: {line}"))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(format!("bad metric name: {line}"));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(|e| format!("{e}: {line}"))?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let value_text = rest
            .strip_prefix(' ')
            .ok_or(format!("no space before the value: {line}"))?;
        let value: f64 = match value_text {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value: {line}"))?,
        };
        let typed = s.types.contains_key(name)
            || ["_sum", "_count"].iter().any(|suf| {
                name.strip_suffix(suf)
                    .is_some_and(|base| s.types.get(base).is_some_and(|k| k == "summary"))
            });
        if !typed {
            return Err(format!("sample without a TYPE before it: {line}"));
        }
        s.samples.push(Line {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(s)
}

#[test]
fn the_parser_refuses_what_is_not_the_format() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v \\\"q\\\"\"} 3\n\
              # TYPE d summary\nd_sum 0.5\nd_count 2\n";
    let s = parse(ok).unwrap();
    assert_eq!(s.sum("a_total", &[("k", "v \"q\"")]), 3.0);
    assert_eq!(s.sum("d_count", &[]), 2.0);
    for bad in [
        "a_total 1\n",
        "# TYPE a counter\na 1\n",
        "# TYPE a_total counter\na_total one\n",
        "# TYPE a_total counter\na_total{k=v} 1\n",
        "# TYPE g gauge\n# TYPE g gauge\ng 1\n",
        "# TYPE g gauge\ng 1",
        "# TYPE g gauge\ng_sum 1\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} accepted");
    }
}

/// Before a sipp run through tm the transaction counters are 0; during
/// it the endpoint still answers; after it tm created a transaction per
/// INVITE and BYE, relayed 1xx and 2xx replies, and the UDP workers
/// counted the messages and their queueing delay.
#[test]
fn counters_move_during_a_sipp_run() {
    let _g = serial();
    let dir = TestDir::new();
    let calls = 20u64;
    let uas = Sipp::builtin("uas").timeout(Duration::from_secs(30));
    let (port, mport) = (free_udp_port(), free_udp_port());
    let ser = start(&relay_cfg(port, mport, uas.port()), mport);

    let before = scrape(mport);
    for name in [
        "ser_build_info",
        "ser_tm_transactions_created_total",
        "ser_tm_transactions_freed_total",
        "ser_tm_transactions_current",
        "ser_tm_transactions_waiting",
        "ser_sl_replies_total",
        "ser_shm_used_bytes",
        "ser_shm_free_bytes",
        "ser_shm_max_used_bytes",
        "ser_received_messages_total",
        "ser_queue_delay_seconds_count",
        "ser_admission_refused_total",
        "ser_process_restarts_total",
    ] {
        assert!(before.has(name), "{name} missing");
    }
    assert_eq!(before.sum("ser_tm_transactions_created_total", &[]), 0.0);
    assert_eq!(before.sum("ser_process_restarts_total", &[]), 0.0);
    assert!(before.sum("ser_shm_used_bytes", &[]) > 0.0);
    // One sample per UDP worker (children=2), each with its description.
    let workers: Vec<&Line> = before
        .samples
        .iter()
        .filter(|s| s.name == "ser_received_messages_total")
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(workers.iter().all(|w| w
        .labels
        .iter()
        .any(|(k, v)| k == "desc" && v.starts_with("receiver child="))));

    let callee = uas.spawn(&dir);
    let caller = Sipp::builtin("uac")
        .to(port)
        .calls(calls)
        .rate(10)
        .timeout(Duration::from_secs(30))
        .spawn(&dir);
    std::thread::sleep(Duration::from_millis(700));
    let during = scrape(mport);
    assert!(during.has("ser_tm_transactions_current"));
    caller.wait(Duration::from_secs(40)).assert_all_ok(calls);
    callee.stop();

    let after = scrape_until(mport, |s| {
        s.sum("ser_tm_final_replies_total", &[("class", "2xx")])
            - before.sum("ser_tm_final_replies_total", &[("class", "2xx")])
            >= (2 * calls) as f64
    });
    let moved = |name: &str, want: &[(&str, &str)]| after.sum(name, want) - before.sum(name, want);
    // INVITE and BYE each make a transaction (the ACK of a 2xx does not).
    assert!(
        moved("ser_tm_transactions_created_total", &[]) >= (2 * calls) as f64,
        "created: {after:?}\n{}",
        ser.log()
    );
    assert!(moved("ser_tm_replies_total", &[("class", "1xx")]) >= calls as f64);
    assert!(moved("ser_tm_replies_total", &[("class", "2xx")]) >= (2 * calls) as f64);
    assert!(moved("ser_tm_final_replies_total", &[("class", "2xx")]) >= (2 * calls) as f64);
    assert_eq!(moved("ser_tm_replies_total", &[("class", "5xx")]), 0.0);
    // Requests in and replies back: at least INVITE, 180, 200, ACK, BYE,
    // 200 per call, spread over the workers.
    assert!(
        moved("ser_received_messages_total", &[]) >= (6 * calls) as f64,
        "{after:?}"
    );
    assert!(moved("ser_queue_delay_seconds_count", &[]) >= (6 * calls) as f64);
    assert!(after.sum("ser_queue_delay_seconds_sum", &[]) > 0.0);
    assert!(after.sum("ser_shm_max_used_bytes", &[]) >= after.sum("ser_shm_used_bytes", &[]));
}

/// Only `/metrics` is served; another path is 404 and another method
/// 405. A client that sends half a request and stalls, and one that
/// sends an endless head, are cut off, and the scrape behind them is
/// answered.
#[test]
fn other_paths_and_stalled_clients_do_not_stop_a_scrape() {
    let (port, mport) = (free_udp_port(), free_udp_port());
    let cfg = format!(
        "listen=udp:127.0.0.1:{port}\nchildren=1\nfifo=\"\"\nlog_stderror=yes\n\
         metrics_listen=\"127.0.0.1:{mport}\"\n\
         loadmodule \"/usr/local/lib/ser/modules/sl.so\"\n\
         route {{ sl_send_reply(\"200\", \"ok\"); }}\n"
    );
    let ser = start(&cfg, mport);
    let (status, _, _) = http(mport, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status, 404);
    let (status, head, _) = http(mport, b"GET /other HTTP/1.0\r\n\r\n");
    assert_eq!(status, 404, "{head}");
    let (status, head, _) = http(mport, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    let (status, _, _) = http(mport, b"NOT HTTP\r\n\r\n");
    assert_eq!(status, 400);

    // Half a request, then silence, held open across the next scrape.
    let mut stalled = TcpStream::connect(("127.0.0.1", mport)).unwrap();
    stalled.write_all(b"GET /metr").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let s = scrape(mport);
    assert!(s.has("ser_sl_replies_total"), "{s:?}\n{}", ser.log());
    // The stalled client was cut off: its connection is closed.
    stalled
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        stalled.read_to_end(&mut rest).map(|_| rest.len()).ok(),
        Some(0)
    );

    // A head that does not end within the 8 KiB cap is refused there.
    // Exactly the cap is sent: bytes the server never read would make its
    // close a reset that could overtake the answer.
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(8 * 1024, b'a');
    let mut c = TcpStream::connect(("127.0.0.1", mport)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    c.write_all(&big).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(scrape(mport).has("ser_build_info"));
}

/// A `metrics_listen` that is not an IP address and port is refused by
/// `ser -c` naming the file and line.
#[test]
fn a_bad_metrics_listen_is_refused_with_file_and_line() {
    let dir = TestDir::new();
    for bad in [
        "\"localhost:9090\"",
        "\"127.0.0.1\"",
        "\"127.0.0.1:0\"",
        "\"127.0.0.1:99999\"",
        "9090",
    ] {
        let cfg = format!(
            "listen=udp:127.0.0.1:5999\nfifo=\"\"\nmetrics_listen={bad}\nroute {{ drop; }}\n"
        );
        let file = dir.write("ser.cfg", cfg.as_bytes());
        let r = check_config(&file);
        assert_ne!(r.code(), Some(0), "{bad}: {r:?}");
        assert!(
            r.stderr.contains("ser.cfg:3") && r.stderr.contains("metrics_listen"),
            "{bad}: {}",
            r.stderr
        );
    }
}

/// A metrics port someone else holds refuses the start (no server
/// running without the endpoint it was asked for).
#[test]
fn a_taken_metrics_port_refuses_the_start() {
    let dir = TestDir::new();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mport = holder.local_addr().unwrap().port();
    let port = free_udp_port();
    let cfg = format!(
        "listen=udp:127.0.0.1:{port}\nfifo=\"\"\nlog_stderror=yes\n\
         metrics_listen=\"127.0.0.1:{mport}\"\nroute {{ drop; }}\n"
    );
    let file = dir.write("ser.cfg", cfg.as_bytes());
    let r = run_bounded(
        Command::new(ser_bin())
            .arg("-f")
            .arg(&file)
            .args(["-DD", "-E"]),
        &dir,
        "taken",
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), Some(255), "{r:?}");
    assert!(
        r.stderr.contains("metrics_listen") && r.stderr.contains(&mport.to_string()),
        "{}",
        r.stderr
    );
}

/// Requests refused by admission control show in the refusing worker's
/// counter and in sl's 5xx, and the backlog in the queueing delay. The
/// backlog is made as in `overload.rs`: the server's processes are
/// stopped while new calls queue in the socket.
#[test]
fn admission_refusals_and_queueing_delay_are_counted() {
    let _g = serial();
    let callee = UdpPeer::bind();
    let (port, mport) = (free_udp_port(), free_udp_port());
    let ser = start(&relay_cfg(port, mport, callee.port()), mport);
    let caller = UdpPeer::bind();
    // Let the kernel switch arrival stamping on (it does so asynchronously).
    std::thread::sleep(Duration::from_millis(200));
    let before = scrape(mport);

    let stop = |sig| {
        for pid in ser.child_pids() {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    };
    stop(Signal::SIGSTOP);
    for i in 0..5 {
        let r = Request::new(
            "INVITE",
            &format!("sip:new{i}@127.0.0.1:{port}"),
            caller.port(),
        );
        caller.send_to_port(&r.build(), port);
    }
    std::thread::sleep(Duration::from_millis(250));
    stop(Signal::SIGCONT);
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while refused < 5 && Instant::now() < deadline {
        if let Some((m, _)) = caller.recv_timeout(Duration::from_millis(200)) {
            if status_of(&m) == Some(503) {
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "no 503 while overloaded:\n{}", ser.log());

    let after = scrape_until(mport, |s| {
        s.sum("ser_admission_refused_total", &[]) - before.sum("ser_admission_refused_total", &[])
            >= f64::from(refused)
    });
    let moved = |name: &str, want: &[(&str, &str)]| after.sum(name, want) - before.sum(name, want);
    assert_eq!(
        moved("ser_admission_refused_total", &[]),
        f64::from(refused),
        "{after:?}"
    );
    assert!(moved("ser_sl_replies_total", &[("class", "5xx")]) >= f64::from(refused));
    // The first of them waited the whole stop (250 ms), the shedding
    // threshold is 80 ms.
    assert!(
        moved("ser_queue_delay_seconds_sum", &[]) >= 0.08,
        "{after:?}"
    );
}
