//! Facts about processes and sockets read from /proc, so the tests can
//! observe the server without its cooperation.

use std::fs;

/// `(pid, ppid, state)` of one process, or None if it is gone. The comm
/// field may hold spaces and parentheses, so parsing starts after the last
/// `)`.
pub(crate) fn stat(pid: i32) -> Option<(i32, i32, char)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((pid, ppid, state))
}

/// True while the process exists and is not a zombie (a zombie has exited;
/// only its parent has not collected it yet).
pub(crate) fn alive(pid: i32) -> bool {
    matches!(stat(pid), Some((_, _, s)) if s != 'Z' && s != 'X')
}

/// Pids of every live process whose parent is `ppid`, sorted.
pub(crate) fn child_pids(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some((_, pp, s)) = stat(pid) {
            if pp == ppid && s != 'Z' && s != 'X' {
                out.push(pid);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Every live descendant of `root` (children, grandchildren, ...), sorted.
pub(crate) fn descendant_pids(root: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for c in child_pids(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out.sort_unstable();
    out
}

/// Whether some socket of this network namespace is bound to UDP `port` on
/// 127.0.0.1 or on the IPv4/IPv6 wildcard. Reading the kernel's table
/// avoids the race of probing by binding the port ourselves (which would
/// make the server's own bind fail if it came at that instant).
pub(crate) fn udp_port_bound(port: u16) -> bool {
    port_bound("udp", port, false)
}

/// Whether some TCP socket listens on `port` (127.0.0.1 or a wildcard).
pub(crate) fn tcp_port_listening(port: u16) -> bool {
    port_bound("tcp", port, true)
}

/// [`udp_port_bound`] for `/proc/net/<proto>`; with `listening`, only
/// sockets in the LISTEN state (0A) count.
fn port_bound(proto: &str, port: u16, listening: bool) -> bool {
    let wanted4 = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    let any6 = format!("00000000000000000000000000000000:{port:04X}");
    let hit = |file: &str, keys: &[String]| {
        fs::read_to_string(file)
            .map(|t| {
                t.lines().skip(1).any(|l| {
                    let mut f = l.split_whitespace();
                    let local = f.nth(1).unwrap_or("");
                    let state = f.nth(1).unwrap_or("");
                    keys.iter().any(|k| k == local) && (!listening || state == "0A")
                })
            })
            .unwrap_or(false)
    };
    hit(&format!("/proc/net/{proto}"), &wanted4) || hit(&format!("/proc/net/{proto}6"), &[any6])
}
