//! SER's core management commands: `print`, `uptime`, `version`, `pwd`,
//! `arg`, `which`, `ps`, `kill`, `meminfo`, 2.x's `core.tcp_info`, and
//! `core.tcp_list` (the connections, as Kamailio's RPC of that name), and
//! SER 2.x's `dns.view` / `dns.delete_all` on the DNS cache.

use std::time::{SystemTime, UNIX_EPOCH};

use super::registry::{CmdCtx, CtlCmd};
use super::reply::{Outcome, Reply};
use super::request::{ParamError, Params};

pub static COMMANDS: &[CtlCmd] = &[
    CtlCmd {
        name: "print",
        handler: print,
    },
    CtlCmd {
        name: "core.tcp_info",
        handler: tcp_info,
    },
    CtlCmd {
        name: "core.tcp_list",
        handler: tcp_list,
    },
    CtlCmd {
        name: "dns.view",
        handler: dns_view,
    },
    CtlCmd {
        name: "dns.delete_all",
        handler: dns_delete_all,
    },
    CtlCmd {
        name: "uptime",
        handler: uptime,
    },
    CtlCmd {
        name: "version",
        handler: version,
    },
    CtlCmd {
        name: "pwd",
        handler: pwd,
    },
    CtlCmd {
        name: "arg",
        handler: arg,
    },
    CtlCmd {
        name: "which",
        handler: which,
    },
    CtlCmd {
        name: "ps",
        handler: ps,
    },
    CtlCmd {
        name: "kill",
        handler: kill,
    },
    CtlCmd {
        name: "meminfo",
        handler: meminfo,
    },
];

type R = Result<Outcome, ParamError>;

fn print(p: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let line = p.line("text to print")?;
    Ok(Reply::ok(vec![line]).into())
}

/// The DNS cache: one line per entry (`name type ttl=<s left> value…`),
/// as SER 2.x's `dns.view` listed it; 500 when `use_dns_cache` is off.
fn dns_view(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    use crate::net::dns::{cache, RData};
    if !cache::enabled() {
        return Ok(Reply::new(500, "dns cache support disabled (use_dns_cache=off)").into());
    }
    let now = shm::monotonic_ms();
    let mut lines = Vec::new();
    for e in cache::entries(now) {
        let left = e.expires_ms.saturating_sub(now).div_ceil(1000);
        let value = match &e.value {
            cache::Cached::Failed => "negative".to_string(),
            cache::Cached::Records(rs) => rs
                .iter()
                .map(|r| match &r.data {
                    RData::Addr(a) => a.to_string(),
                    RData::Name(n) => n.clone(),
                    RData::Srv(s) => format!("{} {} {} {}", s.priority, s.weight, s.port, s.target),
                    RData::Naptr(n) => format!(
                        "{} {} \"{}\" \"{}\" {}",
                        n.order, n.preference, n.flags, n.services, n.replacement
                    ),
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        lines.push(format!("{} {} ttl={left} {value}", e.name, e.qtype.name()));
    }
    let (hits, misses) = cache::counters();
    lines.push(format!("hits={hits} misses={misses}"));
    Ok(Reply::ok(lines).into())
}

/// Empties the DNS cache.
fn dns_delete_all(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    if !crate::net::dns::cache::enabled() {
        return Ok(Reply::new(500, "dns cache support disabled (use_dns_cache=off)").into());
    }
    let n = crate::net::dns::cache::flush();
    Ok(Reply::ok(vec![format!("{n} entries deleted")]).into())
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The TCP main process's connection counters (`name: value` lines, as
/// SER 2.x's RPC printed them); 500 when no TCP/TLS address is served.
fn tcp_info(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let Some(s) = crate::net::stream::shared::snapshot() else {
        return Ok(Reply::new(500, "tcp support disabled (no tcp: or tls: listen address)").into());
    };
    Ok(Reply::ok(vec![
        format!("opened_connections: {}", s.open),
        format!("accepted: {}", s.accepted),
        format!("connected: {}", s.connected),
        format!("closed: {}", s.closed),
        format!("idle_closed: {}", s.idle_closed),
        format!("errors: {}", s.errors),
    ])
    .into())
}

/// Every open TCP/TLS connection, one line each, from the TCP main
/// process (asked over the stream link, answered within a second).
fn tcp_list(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    use crate::net::stream::{list_connections, StreamSendError};
    let rows = match list_connections(std::time::Duration::from_secs(1)) {
        Ok(r) => r,
        Err(StreamSendError::NotServed) => {
            return Ok(
                Reply::new(500, "tcp support disabled (no tcp: or tls: listen address)").into(),
            )
        }
        Err(e) => {
            return Ok(Reply::new(500, format!("tcp main process did not answer: {e}")).into())
        }
    };
    let lines = rows
        .iter()
        .map(|r| {
            format!(
                "id={} proto={} dir={} peer={} local={} age={} idle={} queued={} aliases={}",
                r.id,
                r.proto,
                if r.outbound { "out" } else { "in" },
                r.peer,
                r.local,
                r.age_s,
                r.idle_s,
                r.queued,
                r.aliases
            )
        })
        .collect();
    Ok(Reply::ok(lines).into())
}

fn uptime(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let now = SystemTime::now();
    let started = super::settings().started;
    let up = now
        .duration_since(started)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(Reply::ok(vec![
        format!("Now: {}", crate::os::time::ctime(secs(now))),
        format!("Up Since: {}", crate::os::time::ctime(secs(started))),
        format!("Up time: {up} [sec]"),
    ])
    .into())
}

fn version(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    Ok(Reply::ok(vec![format!(
        "Server: {}\r",
        crate::util::version::server_name()
    )])
    .into())
}

fn pwd(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    Ok(match std::env::current_dir() {
        Ok(d) => Reply::ok(vec![d.display().to_string()]),
        Err(e) => Reply::new(500, format!("pwd: {e}")),
    }
    .into())
}

fn arg(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    Ok(Reply::ok(super::settings().argv.clone()).into())
}

fn which(_: &mut Params<'_>, ctx: &CmdCtx<'_>) -> R {
    let names = ctx.registry.names().into_iter().map(String::from).collect();
    Ok(Reply::ok(names).into())
}

fn ps(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    Ok(Reply::ok(crate::proc::shared::ps_lines()).into())
}

fn kill(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    use nix::sys::signal::{kill, Signal};
    let Some(pid) = crate::proc::shared::attendant_pid() else {
        return Ok(Reply::new(500, "kill: process list unavailable").into());
    };
    // The supervisor stops every child on SIGTERM; the reply goes out
    // first because the reply is written before the signal lands here.
    match kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM) {
        Ok(()) => Ok(Reply::new(200, "killing now...").into()),
        Err(e) => Ok(Reply::new(500, format!("kill: {e}")).into()),
    }
}

fn meminfo(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let Some(region) = shm::try_global() else {
        return Ok(Reply::new(500, "meminfo: shared memory not set up").into());
    };
    let st = region.stats();
    Ok(Reply::ok(vec![
        format!("total: {}", st.total),
        format!("free: {}", st.free),
        format!("used: {}", st.used),
        format!("max used: {}", st.peak_used),
        format!("fragments: {}", st.allocs.saturating_sub(st.frees)),
    ])
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::registry::Registry;
    use crate::ctl::request::{Dialect, Head, TextLines};

    fn run(cmd: &str, params: &str) -> Reply {
        let r = Registry::with_core();
        let head = Head {
            command: cmd.into(),
            reply: String::new(),
        };
        r.serve(&head, &mut TextLines::new(params), Dialect::Fifo, None)
            .reply
            .unwrap()
    }

    #[test]
    fn core_commands_answer() {
        assert_eq!(run("print", "hello\n\n"), Reply::ok(vec!["hello".into()]));
        assert_eq!(run("print", "").code, 400);
        let up = run("uptime", "");
        assert_eq!(up.body.len(), 3);
        assert!(up.body[2].starts_with("Up time: ") && up.body[2].ends_with(" [sec]"));
        assert!(run("version", "").body[0].starts_with("Server: Sip EXpress router ("));
        assert!(run("which", "").body.iter().any(|l| l == "uptime"));
        assert!(!run("pwd", "").body[0].is_empty());
        assert!(!run("arg", "").body.is_empty());
    }
}
