use super::*;

fn job<'a>(script: &'a str) -> Job<'a> {
    Job {
        script,
        name: "exec_test",
        args: &[],
        env: &[],
        stdin: None,
        capture: true,
        limit: Duration::from_secs(10),
    }
}

fn out(f: &Finished) -> String {
    String::from_utf8_lossy(&f.stdout).into_owned()
}

/// Whether `pid` is gone or only a zombie of someone else (our own
/// children are reaped; a killed grandchild is reparented).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn output_and_exit_status() {
    let f = run(&job("echo one; echo two")).unwrap();
    assert!(f.success());
    assert_eq!(out(&f), "one\ntwo\n");
    let f = run(&job("echo partial; exit 3")).unwrap();
    assert!(!f.success());
    assert_eq!(f.status_text(), "exit status 3");
    assert_eq!(out(&f), "partial\n");
}

#[test]
fn arguments_and_environment_are_data_not_code() {
    let hostile: &[u8] = b"sip:x@h';touch /tmp/ser-exec-pwned;'$(id)`id`";
    let env = vec![(b"SIP_HF_SUBJECT".to_vec(), b"$(id) `id` ;exit 1".to_vec())];
    let j = Job {
        args: &[hostile],
        env: &env,
        ..job("printf '%s\\n' \"$1\" \"$SIP_HF_SUBJECT\" \"$0\"")
    };
    let f = run(&j).unwrap();
    assert!(f.success());
    assert_eq!(
        out(&f),
        format!(
            "{}\n$(id) `id` ;exit 1\nexec_test\n",
            String::from_utf8_lossy(hostile)
        )
    );
    assert!(!std::path::Path::new("/tmp/ser-exec-pwned").exists());
}

#[test]
fn stdin_larger_than_a_pipe_is_fed_whole() {
    let input = vec![b'x'; 300_000];
    let j = Job {
        stdin: Some(&input),
        ..job("wc -c")
    };
    let f = run(&j).unwrap();
    assert!(f.success());
    assert_eq!(out(&f).trim(), "300000");
}

#[test]
fn a_command_that_ignores_its_stdin_still_succeeds() {
    let input = vec![b'x'; 300_000];
    let j = Job {
        stdin: Some(&input),
        capture: false,
        ..job("exit 0")
    };
    assert!(run(&j).unwrap().success());
}

#[test]
fn a_hanging_command_and_its_children_are_killed_at_the_deadline() {
    let dir = std::env::temp_dir().join(format!("ser-exec-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("grandchild");
    let childfile = dir.join("child");
    let script = format!(
        "echo $$ > {}; sleep 30 & echo $! > {}; wait",
        childfile.display(),
        pidfile.display()
    );
    let j = Job {
        limit: Duration::from_millis(300),
        ..job(&script)
    };
    let t0 = Instant::now();
    let e = run(&j).unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(e, RunError::TimedOut(_)), "{e}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let grandchild: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t0 = Instant::now();
    while !dead(grandchild) && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(dead(grandchild), "sleep {grandchild} survived the kill");
    assert_eq!(unreaped(), 0);
    // Our child was reaped, not left a zombie: no /proc entry at all.
    let child = std::fs::read_to_string(&childfile).unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{}", child.trim())).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_silent_command_holding_stdout_open_is_killed_too() {
    let j = Job {
        limit: Duration::from_millis(200),
        ..job("exec sleep 30")
    };
    assert!(matches!(run(&j), Err(RunError::TimedOut(_))));
    let j = Job {
        limit: Duration::from_millis(200),
        capture: false,
        ..job("exec sleep 30")
    };
    assert!(matches!(run(&j), Err(RunError::TimedOut(_))));
}

#[test]
fn a_background_grandchild_does_not_hold_the_caller() {
    let t0 = Instant::now();
    let f = run(&job("sleep 3 >/dev/null & echo done")).unwrap();
    assert_eq!(out(&f), "done\n");
    let f2 = run(&job("sleep 3 & echo done")).unwrap();
    assert_eq!(out(&f2), "done\n");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

#[test]
fn runaway_output_is_cut_and_killed() {
    let t0 = Instant::now();
    let e = run(&job("yes sip:flood@example.com")).unwrap_err();
    assert!(matches!(e, RunError::TooMuchOutput), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_killed_command_reports_its_signal() {
    let f = run(&job("kill -TERM $$")).unwrap();
    assert!(!f.success());
    assert_eq!(f.status_text(), "signal 15");
}
