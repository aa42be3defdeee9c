//! pike — SER 0.9's flood detection: `pike_check_req()` counts the
//! requests of each source address per `sampling_time_unit` and is false
//! for an address over `reqs_density_per_unit`; what to do then (drop,
//! reply) is the script's choice, as in SER. `remove_latency` is how long
//! an address is remembered after its last counted request. IPv4 and
//! IPv6. The FIFO/unix socket command `pike_list` (OpenSER's MI command of
//! that name) lists the addresses known, red ones marked.
//!
//! The counting is the sans-io [`tree`]; here is only the shm table it
//! runs on: [`SHARDS`] shards of [`SLOTS`] nodes, each behind its own
//! process-shared lock, allocated before the fork so every worker counts
//! into the same one. An address's shard is its first byte, as SER's 256
//! branch locks were. The lock is a leaf: nothing is taken while it is
//! held.

pub mod tree;

use std::net::IpAddr;
use std::sync::OnceLock;

use shm::{Region, ShmError, ShmLocked};

use crate::cfg::ast::Literal;
use crate::ctl::{CmdCtx, CtlCmd, Outcome, ParamError as CtlParamError, Params, Reply};
use crate::route::export::{
    param_int, BoxedFn, FixupEnv, FixupError, FnDef, ModInitError, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;
use tree::{Limits, Node, Verdict};

/// Shards (an address's first byte modulo this).
pub const SHARDS: usize = 64;
/// Nodes per shard: prefixes and addresses remembered at once.
pub const SLOTS: usize = 64;

shm::shm_struct! {
    /// One shard's nodes.
    pub struct Shard {
        nodes: [Node; SLOTS],
    }
}

struct Shared {
    shards: &'static [ShmLocked<Shard>],
    lim: Limits,
}

static TABLE: OnceLock<Shared> = OnceLock::new();

fn init(region: &'static Region, lim: Limits) -> Result<(), ShmError> {
    if TABLE.get().is_some() {
        return Ok(());
    }
    // Zeroed: every lock free, every node free.
    let shards = region.slice(region.alloc_slice_zeroed::<ShmLocked<Shard>>(SHARDS)?);
    let _ = TABLE.set(Shared { shards, lim });
    Ok(())
}

/// The address bytes pike counts: IPv4 (also when mapped into IPv6) as
/// 4 bytes, IPv6 as 16.
fn octets(ip: IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            b[..4].copy_from_slice(&v4.octets());
            (b, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

/// Counts a request from `ip` now; `Allowed` too when the table is
/// missing (SER returned true on internal errors).
pub fn check_ip(ip: IpAddr) -> Verdict {
    let Some(t) = TABLE.get() else {
        return Verdict::Allowed;
    };
    let (b, n) = octets(ip);
    let Some(shard) = t.shards.get(usize::from(b[0]) % SHARDS) else {
        return Verdict::Allowed;
    };
    let now = shm::monotonic_ms();
    let mut g = shard.lock();
    tree::check(&mut g.nodes, &b[..n], now, &t.lim)
}

#[derive(Debug, Default)]
pub struct Pike {
    lim: Limits,
}

static FUNCS: &[FnDef] = &[FnDef::new("pike_check_req", 0, 0, RouteMask::REQUEST)];

impl Module for Pike {
    fn name(&self) -> &'static str {
        "pike"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        let n = param_int("pike", param, value)?;
        let bad = |reason: &str| ParamError::BadValue {
            module: "pike",
            param: param.into(),
            reason: reason.into(),
        };
        match param {
            "sampling_time_unit" if (1..=3600).contains(&n) => self.lim.unit_ms = n as u64 * 1000,
            "sampling_time_unit" => return Err(bad("seconds, 1 to 3600")),
            "reqs_density_per_unit" if (1..=65000).contains(&n) => self.lim.max_hits = n as u16,
            "reqs_density_per_unit" => return Err(bad("requests, 1 to 65000")),
            "remove_latency" if (1..=86400).contains(&n) => self.lim.timeout_ms = n as u64 * 1000,
            "remove_latency" => return Err(bad("seconds, 1 to 86400")),
            _ => return Err(super::no_params("pike", param)),
        }
        Ok(())
    }

    fn fixup(
        &self,
        _f: &FnDef,
        _args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
            match check_ip(ctx.src.ip()) {
                Verdict::Allowed => 1,
                Verdict::Blocked => {
                    crate::warn_limited!("pike: too many hits on {}", ctx.src.ip());
                    -1
                }
            }
        }))
    }

    fn ctl_commands(&self) -> &'static [CtlCmd] {
        COMMANDS
    }

    fn mod_init(
        &self,
        _rt: &'static crate::route::Runtime,
        region: &'static Region,
    ) -> Result<(), ModInitError> {
        init(region, self.lim).map_err(|e| ModInitError {
            module: "pike",
            reason: format!("no shared memory for the address table: {e}"),
        })
    }
}

/// One line of `pike_list`: the prefix, its counters, `RED` when refused.
fn line(n: &Node, lim: &Limits) -> String {
    let len = usize::from(n.len);
    let addr = match len {
        4 if n.flags & tree::LEAF != 0 => {
            std::net::Ipv4Addr::new(n.key[0], n.key[1], n.key[2], n.key[3]).to_string()
        }
        16 => std::net::Ipv6Addr::from(n.key).to_string(),
        _ => {
            let bytes: Vec<String> = n.key[..len.min(16)].iter().map(u8::to_string).collect();
            format!("{}.*", bytes.join("."))
        }
    };
    let red = if n.flags & tree::LEAF != 0 && n.red(lim.max_hits) {
        " RED"
    } else {
        ""
    };
    format!(
        "{addr} hits={},{} leaf_hits={},{}{red}",
        n.hits[0], n.hits[1], n.leaf_hits[0], n.leaf_hits[1]
    )
}

fn pike_list(_: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, CtlParamError> {
    let Some(t) = TABLE.get() else {
        return Ok(Reply::ok(Vec::new()).into());
    };
    let now = shm::monotonic_ms();
    let mut out = Vec::new();
    for shard in t.shards {
        let nodes = tree::live(&shard.lock().nodes, now);
        out.extend(nodes.iter().map(|n| line(n, &t.lim)));
    }
    Ok(Reply::ok(out).into())
}

static COMMANDS: &[CtlCmd] = &[CtlCmd {
    name: "pike_list",
    handler: pike_list,
}];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let (b, n) = octets("::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(&b[..n], &[10, 1, 2, 3]);
        let (_, n) = octets("2001:db8::1".parse().unwrap());
        assert_eq!(n, 16);
    }

    #[test]
    fn parameters_are_range_checked_and_others_refused() {
        let mut p = Pike::default();
        assert!(p.set_param("sampling_time_unit", &Literal::Int(5)).is_ok());
        assert_eq!(p.lim.unit_ms, 5000);
        assert!(p
            .set_param("reqs_density_per_unit", &Literal::Int(0))
            .is_err());
        assert!(p
            .set_param("remove_latency", &Literal::Str("9".into()))
            .is_err());
        assert!(p.set_param("pike_log_level", &Literal::Int(1)).is_err());
    }

    #[test]
    fn list_lines_name_the_address_and_mark_red() {
        let lim = Limits {
            unit_ms: 1000,
            max_hits: 2,
            timeout_ms: 5000,
        };
        let mut nodes = vec![Node::default(); 8];
        while tree::check(&mut nodes, &[10, 0, 0, 1], 1, &lim) == Verdict::Allowed {}
        let lines: Vec<String> = tree::live(&nodes, 2)
            .iter()
            .map(|n| line(n, &lim))
            .collect();
        assert!(
            lines[0].starts_with("10.0.0.1 ") && lines[0].ends_with(" RED"),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.starts_with("10.* ")), "{lines:?}");
    }
}
