//! SER 0.9's exec module end to end: `exec_dset` turning a script's two
//! output lines into a forked call (both callees get the INVITE),
//! `exec_msg` receiving the request on stdin with the `SIP_*` variables,
//! values from the message never run as shell code, a failing command
//! taken as false, and a command sleeping past `time_to_kill` killed
//! (its whole process group, reaped) while the only worker goes on
//! serving other calls.

use crate::common::procfs;
use crate::common::sip::{first_line, status_of, Request, UdpPeer};
use crate::common::tmkit::*;
use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const EXEC: &str = "loadmodule \"/usr/local/lib/ser/modules/exec.so\"";

/// An executable shell script in `dir`.
fn script(dir: &TestDir, name: &str, body: &str) -> PathBuf {
    let p = dir.write(name, format!("#!/bin/sh\n{body}").as_bytes());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The README's use: the script prints the URI set, one per line; ser
/// rewrites the R-URI to the first and forks to the second.
#[test]
fn exec_dset_forks_a_call_to_the_lines_a_script_prints() {
    let _g = serial();
    let dir = TestDir::new();
    let argfile = dir.join("arg");
    let c = fork_call(
        |port, ports| {
            let s = script(
                &dir,
                "route.sh",
                &format!(
                    "printf '%s' \"$1\" > {}\necho sip:bob@127.0.0.1:{}\n\necho 'sip:carol@127.0.0.1:{}'\n",
                    argfile.display(),
                    ports[0],
                    ports[1]
                ),
            );
            tm_cfg(
                port,
                1,
                EXEC,
                &format!(
                    "route {{\n    if (!exec_dset(\"{}\")) {{\n        \
                     sl_send_reply(\"500\", \"exec_dset failed\");\n        break;\n    }}\n    \
                     t_relay();\n}}\n",
                    s.display()
                ),
            )
        },
        &[Callee::Answers(486), Callee::Answers(404)],
        false,
    );
    let invites = |who: usize| -> Vec<String> {
        c.heard
            .iter()
            .filter(|h| h.who == who && method_of(&h.msg).as_deref() == Some("INVITE"))
            .filter_map(|h| ruri_of(&h.msg))
            .collect()
    };
    let (bob, carol) = (invites(1), invites(2));
    assert!(!bob.is_empty() && !carol.is_empty(), "{}", c.text);
    assert!(bob.iter().all(|u| u.starts_with("sip:bob@")), "{}", c.text);
    assert!(
        carol.iter().all(|u| u.starts_with("sip:carol@")),
        "{}",
        c.text
    );
    // The caller's R-URI was the script's argument.
    assert_eq!(
        read(&argfile),
        format!("sip:bob@127.0.0.1:{}", c.ser.port()),
        "{}",
        c.text
    );
    // RFC 16.7 picks the lower 4xx; what matters is one final.
    assert_eq!(c.finals, vec![404], "{}", c.text);
}

fn ask(caller: &UdpPeer, port: u16, req: &Request) -> Option<(u16, String)> {
    caller.send_to_port(&req.build(), port);
    let (m, _) = caller.recv_final(Duration::from_secs(5))?;
    Some((status_of(&m)?, first_line(&m)))
}

/// exec_msg: the request on stdin, the header fields and the well-known
/// values in `SIP_*` variables; hostile values in the R-URI and a header
/// stay data (SER put the R-URI inside single quotes on the command line).
#[test]
fn exec_msg_gets_the_request_and_values_never_run_as_code() {
    let dir = TestDir::new();
    let (msgfile, envfile, argfile) = (dir.join("msg"), dir.join("env"), dir.join("arg"));
    let pwned = dir.join("pwned");
    let on_msg = script(
        &dir,
        "on_msg.sh",
        &format!(
            "cat > {}\nenv | grep '^SIP_' | sort > {}\n",
            msgfile.display(),
            envfile.display()
        ),
    );
    let on_dset = script(
        &dir,
        "on_dset.sh",
        &format!("printf '%s' \"$1\" > {}\necho \"$1\"\n", argfile.display()),
    );
    let port = free_udp_port();
    let cfg = tm_cfg(
        port,
        1,
        EXEC,
        &format!(
            "route {{\n    if (method==\"OPTIONS\") {{\n        \
             if (exec_msg(\"{}\")) {{ sl_send_reply(\"200\", \"seen\"); }}\n        \
             else {{ sl_send_reply(\"500\", \"exec_msg failed\"); }}\n        break;\n    }}\n    \
             if (exec_dset(\"{}\")) {{ sl_send_reply(\"202\", \"dset\"); }}\n    \
             else {{ sl_send_reply(\"500\", \"exec_dset failed\"); }}\n}}\n",
            on_msg.display(),
            on_dset.display()
        ),
    );
    let ser = Ser::start(&cfg);
    let caller = UdpPeer::bind();

    let evil = format!("$(touch {}) `touch {}`", pwned.display(), pwned.display());
    let opts = Request::new(
        "OPTIONS",
        &format!("sip:alice@127.0.0.1:{port}"),
        caller.port(),
    )
    .header("X-Evil", &evil)
    .header("Subject", "hello");
    let (code, line) = ask(&caller, port, &opts).expect("answer to OPTIONS");
    assert_eq!(code, 200, "{line}\n{}", ser.log());
    let got = std::fs::read(&msgfile).unwrap();
    assert_eq!(got, opts.build(), "stdin was not the request");
    let env = read(&envfile);
    for want in [
        format!("SIP_HF_X_EVIL={evil}"),
        "SIP_HF_SUBJECT=hello".to_string(),
        format!("SIP_HF_CALL_ID={}", opts.call_id),
        "SIP_HF_CSEQ=1 OPTIONS".to_string(),
        format!("SIP_TID={}", opts.branch),
        "SIP_DID=".to_string(),
        "SIP_SRCIP=127.0.0.1".to_string(),
        format!("SIP_RURI=sip:alice@127.0.0.1:{port}"),
        format!("SIP_ORURI=sip:alice@127.0.0.1:{port}"),
        "SIP_USER=alice".to_string(),
        "SIP_OUSER=alice".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "no {want:?} in\n{env}");
    }

    // A quote in the R-URI's user part: SER's `cmd 'URI'` ran $(id).
    let uri = format!("sip:x'$(id)'@127.0.0.1:{port}");
    let inv = Request::new("INVITE", &uri, caller.port());
    let (code, line) = ask(&caller, port, &inv).expect("answer to INVITE");
    assert_eq!(code, 202, "{line}\n{}", ser.log());
    assert_eq!(read(&argfile), uri);
    assert!(!pwned.exists(), "a header value ran as shell code");
}

/// A failing command is false (`sl_reply_error` tells it as SER's
/// E_EXEC), and so is one that prints no URI.
#[test]
fn a_failing_command_is_false() {
    let port = free_udp_port();
    let cfg = tm_cfg(
        port,
        1,
        EXEC,
        "route {\n    if (uri=~\"^sip:empty@\") {\n        \
         if (!exec_dset(\"true\")) { sl_send_reply(\"500\", \"no uri\"); }\n        break;\n    }\n    \
         if (!exec_dset(\"echo sip:a@127.0.0.1; exit 3\")) { sl_reply_error(); break; }\n    \
         sl_send_reply(\"200\", \"unexpected\");\n}\n",
    );
    let ser = Ser::start(&cfg);
    let caller = UdpPeer::bind();
    let r = Request::new("OPTIONS", &format!("sip:x@127.0.0.1:{port}"), caller.port());
    let (code, line) = ask(&caller, port, &r).expect("answer");
    assert_eq!(code, 500, "{line}\n{}", ser.log());
    assert!(line.contains("Error in external logic"), "{line}");
    let r = Request::new(
        "OPTIONS",
        &format!("sip:empty@127.0.0.1:{port}"),
        caller.port(),
    );
    let (code, line) = ask(&caller, port, &r).expect("answer");
    assert_eq!((code, line.as_str()), (500, "SIP/2.0 500 no uri"));
}

/// `time_to_kill 1`: a command sleeping 30 s is killed after a second,
/// with what it started, and reaped; the one worker answers a call that
/// waited behind it and the next ones at once.
#[test]
fn a_command_past_time_to_kill_is_killed_and_the_worker_serves_on() {
    let _g = serial();
    let dir = TestDir::new();
    let pids = dir.join("pids");
    let slow = script(
        &dir,
        "slow.sh",
        &format!(
            "echo $$ >> {p}\nsleep 30 &\necho $! >> {p}\nwait\n",
            p = pids.display()
        ),
    );
    let port = free_udp_port();
    let cfg = tm_cfg(
        port,
        1,
        &format!("{EXEC}\nmodparam(\"exec\", \"time_to_kill\", 1)"),
        &format!(
            "route {{\n    if (uri=~\"^sip:slow@\") {{\n        \
             if (!exec_msg(\"exec {}\")) {{ sl_send_reply(\"500\", \"killed\"); break; }}\n        \
             sl_send_reply(\"200\", \"finished\");\n        break;\n    }}\n    \
             sl_send_reply(\"200\", \"fast\");\n}}\n",
            slow.display()
        ),
    );
    let ser = Ser::start(&cfg);
    let caller = UdpPeer::bind();
    let other = UdpPeer::bind();
    let t0 = Instant::now();
    let r = Request::new(
        "OPTIONS",
        &format!("sip:slow@127.0.0.1:{port}"),
        caller.port(),
    );
    caller.send_to_port(&r.build(), port);
    // Queued behind the slow one on the single worker.
    std::thread::sleep(Duration::from_millis(200));
    let f = Request::new(
        "OPTIONS",
        &format!("sip:fast@127.0.0.1:{port}"),
        other.port(),
    );
    other.send_to_port(&f.build(), port);

    let (m, _) = caller
        .recv_final(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no answer to the slow call\n{}", ser.log()));
    let took = t0.elapsed();
    assert_eq!(first_line(&m), "SIP/2.0 500 killed");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The queued call is answered as soon as the worker is back: with
    // the 503 of admission control, since it waited a second in the
    // socket's queue (ARCHITECTURE.md, "Admission control").
    let (m, _) = other
        .recv_final(Duration::from_secs(2))
        .expect("the queued call was not served");
    let line = first_line(&m);
    assert!(
        line == "SIP/2.0 200 fast" || line.starts_with("SIP/2.0 503 "),
        "{line}"
    );
    for _ in 0..3 {
        let t1 = Instant::now();
        let f = Request::new(
            "OPTIONS",
            &format!("sip:fast@127.0.0.1:{port}"),
            other.port(),
        );
        let (code, _) = ask(&other, port, &f).expect("worker still serving");
        assert_eq!(code, 200);
        assert!(t1.elapsed() < Duration::from_millis(500));
    }

    // The script and its `sleep 30` are gone: killed, and the script
    // (the worker's child: `exec` replaced the `sh -c`) reaped, not left
    // a zombie. The orphaned `sleep` belongs to init then.
    let listed: Vec<i32> = read(&pids)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while listed
        .iter()
        .any(|p| procfs::stat(*p).is_some_and(|s| s.2 != 'Z'))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in &listed {
        assert!(
            procfs::stat(*p).is_none_or(|s| s.2 == 'Z'),
            "{p} still runs: {:?}",
            procfs::stat(*p)
        );
    }
    assert!(
        procfs::stat(listed[0]).is_none(),
        "the script {} was not reaped",
        listed[0]
    );
    for d in procfs::descendant_pids(ser.pid()) {
        assert!(
            procfs::stat(d).is_none_or(|s| s.2 != 'Z'),
            "zombie {d} under ser"
        );
    }
}
