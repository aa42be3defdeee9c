//! The destination blacklist's commands (core commands in SER 2.1, as
//! RPCs): `dst_blacklist.view` lists the live entries, one a line
//! (`<proto> <address>:<port> <seconds left>`); `dst_blacklist.delete`
//! clears them all, or with an `address[:port]` line only those of that
//! address (and port). SER 2.1 had `dst_blacklist.delete_all` and no way to
//! remove one entry: its name is kept as an alias of the argument-less
//! form, the one-entry form is ours.

use std::net::{IpAddr, SocketAddr};

use super::registry::{CmdCtx, CtlCmd};
use super::reply::{Outcome, Reply};
use super::request::{ParamError, Params};
use crate::net::blacklist::{self, Blacklist, Dest};

pub static COMMANDS: &[CtlCmd] = &[
    CtlCmd {
        name: "dst_blacklist.view",
        handler: view,
    },
    CtlCmd {
        name: "dst_blacklist.delete",
        handler: delete,
    },
    CtlCmd {
        name: "dst_blacklist.delete_all",
        handler: delete_all,
    },
];

type R = Result<Outcome, ParamError>;

fn disabled() -> Outcome {
    // SER's answer when the core was built or configured without it.
    Reply::new(500, "dst blacklist support disabled (use_dst_blacklist=no)").into()
}

/// The lines of `dst_blacklist.view` at `now` (ms).
pub fn view_lines(t: &Blacklist, now: u64) -> Vec<String> {
    t.live(now)
        .into_iter()
        .map(|e| {
            let left = e.expires.saturating_sub(now).div_ceil(1000);
            format!("{} {} {left}", e.dest.proto, e.dest.addr)
        })
        .collect()
}

fn view(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let Some(t) = blacklist::table() else {
        return Ok(disabled());
    };
    Ok(Reply::ok(view_lines(t, shm::monotonic_ms())).into())
}

/// What `dst_blacklist.delete`'s argument selects: an address, with or
/// without a port (`10.0.0.1`, `10.0.0.1:5060`, `::1`, `[::1]:5060`).
pub fn parse_target(s: &str) -> Option<(IpAddr, Option<u16>)> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some((a.ip(), Some(a.port())));
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>().ok().map(|ip| (ip, None))
}

fn selects(ip: IpAddr, port: Option<u16>) -> impl Fn(&Dest) -> bool {
    move |d: &Dest| d.addr.ip() == ip && port.is_none_or(|p| d.addr.port() == p)
}

fn delete(p: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let arg = p.optional();
    let Some(t) = blacklist::table() else {
        return Ok(disabled());
    };
    let now = shm::monotonic_ms();
    let n = match arg {
        None => t.remove(now, |_| true),
        Some(a) => match parse_target(&a) {
            Some((ip, port)) => t.remove(now, selects(ip, port)),
            None => {
                return Ok(Reply::new(400, format!("not an address[:port]: {a}")).into());
            }
        },
    };
    Ok(Reply::ok(vec![format!("{n} deleted")]).into())
}

fn delete_all(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let Some(t) = blacklist::table() else {
        return Ok(disabled());
    };
    let n = t.remove(shm::monotonic_ms(), |_| true);
    Ok(Reply::ok(vec![format!("{n} deleted")]).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_targets() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(parse_target("10.0.0.1"), Some((v4, None)));
        assert_eq!(parse_target(" 10.0.0.1:5070 "), Some((v4, Some(5070))));
        assert_eq!(parse_target("::1"), Some((v6, None)));
        assert_eq!(parse_target("[::1]"), Some((v6, None)));
        assert_eq!(parse_target("[::1]:5060"), Some((v6, Some(5060))));
        assert_eq!(parse_target("host.example"), None);
        let pick = selects(v4, Some(5070));
        assert!(pick(&Dest::udp("10.0.0.1:5070".parse().unwrap())));
        assert!(!pick(&Dest::udp("10.0.0.1:5060".parse().unwrap())));
        let any = selects(v4, None);
        assert!(any(&Dest::udp("10.0.0.1:5060".parse().unwrap())));
    }
}
