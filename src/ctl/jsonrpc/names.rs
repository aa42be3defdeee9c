//! Method names: every FIFO command under its own name, SER 2.x /
//! Kamailio RPC names as aliases of the FIFO commands that do the same,
//! and the result shapes of commands whose reply has a fixed structure.

use serde_json::{json, Map, Value};

/// An RPC name and the FIFO command it runs.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    pub name: &'static str,
    pub command: &'static str,
}

const fn a(name: &'static str, command: &'static str) -> Alias {
    Alias { name, command }
}

/// The 2.x names. Only commands that exist here are aliased; an alias
/// whose module is not loaded is "method not found", as the FIFO name is.
pub static ALIASES: &[Alias] = &[
    a("core.version", "version"),
    a("core.uptime", "uptime"),
    a("core.ps", "ps"),
    a("core.pwd", "pwd"),
    a("core.arg", "arg"),
    a("core.kill", "kill"),
    a("core.shmmem", "meminfo"),
    a("core.prints", "print"),
    a("tm.stats", "t_stats"),
    a("tm.hash_stats", "t_hash"),
    a("tm.t_uac_wait", "t_uac_dlg"),
    a("tm.t_uac_dlg", "t_uac_dlg"),
    a("tm.cancel", "t_uac_cancel"),
    a("tm.reply", "t_reply"),
    a("ul.dump", "ul_dump"),
    a("ul.lookup", "ul_show_contact"),
    a("ul.rm", "ul_rm"),
    a("ul.rm_contact", "ul_rm_contact"),
    a("ul.add", "ul_add"),
    a("ul.flush", "ul_flush"),
    a("ul.stats", "ul_stats"),
    a("sl.stats", "sl_stats"),
];

/// Methods the JSON-RPC server answers itself.
pub const LIST_METHODS: &str = "system.listMethods";
pub const METHOD_HELP: &str = "system.methodHelp";

/// The FIFO command an RPC name runs: an alias's target, else the name.
pub fn command_of(method: &str) -> &str {
    alias(method).map(|a| a.command).unwrap_or(method)
}

pub fn alias(method: &str) -> Option<&'static Alias> {
    ALIASES.iter().find(|a| a.name.eq_ignore_ascii_case(method))
}

/// The shape of a method's result: a FIFO name gives the FIFO reply's
/// lines (what FIFO scripts and `serctl` parse); a 2.x name gives an
/// object where its command's reply has a fixed structure.
pub fn method_shape(method: &str) -> Option<Shape> {
    alias(method).and_then(|a| shape_of(a.command))
}

/// Every method callable with the commands in `has`: the FIFO names, the
/// aliases whose command exists, and the `system.*` methods; sorted.
pub fn list(fifo_names: &[&'static str]) -> Vec<String> {
    let mut v: Vec<String> = fifo_names.iter().map(|s| s.to_string()).collect();
    v.extend(
        ALIASES
            .iter()
            .filter(|a| fifo_names.iter().any(|n| n.eq_ignore_ascii_case(a.command)))
            .map(|a| a.name.to_string()),
    );
    v.push(LIST_METHODS.into());
    v.push(METHOD_HELP.into());
    v.sort();
    v.dedup();
    v
}

/// `system.methodHelp`'s text, or `None` for an unknown method.
pub fn help(method: &str, exists: impl Fn(&str) -> bool) -> Option<String> {
    if method == LIST_METHODS {
        return Some("The methods this server answers.".into());
    }
    if method == METHOD_HELP {
        return Some("Help on the method named by the one parameter.".into());
    }
    let cmd = command_of(method);
    if !exists(cmd) {
        return None;
    }
    let shape = if method_shape(method).is_some() {
        "an object"
    } else {
        "the reply's lines as an array of strings"
    };
    let alias = if cmd.eq_ignore_ascii_case(method) {
        String::new()
    } else {
        format!("Alias of the FIFO command '{cmd}'. ")
    };
    Some(format!(
        "{alias}Parameters are the FIFO command's parameter lines, in order \
         (an array parameter is a header set or body ended by '.'); the result is {shape}."
    ))
}

/// How a command's body lines become an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `name: integer` lines (`meminfo`, `core.tcp_info`).
    Counters,
    /// `uptime`'s three lines.
    Uptime,
    /// `t_stats`'s three lines.
    TmStats,
    /// `version`'s `Server:` line.
    Version,
}

pub fn shape_of(cmd: &str) -> Option<Shape> {
    match cmd.to_ascii_lowercase().as_str() {
        "meminfo" | "core.tcp_info" => Some(Shape::Counters),
        "uptime" => Some(Shape::Uptime),
        "t_stats" => Some(Shape::TmStats),
        "version" => Some(Shape::Version),
        _ => None,
    }
}

/// The result of a successful immediate reply: the shaped object when the
/// method has a shape and the lines fit it, else the lines. A reply that
/// says all in its status text (`200 user (location, a) deleted`) gives
/// that text as its one line.
pub fn result_of(shape: Option<Shape>, reason: &str, body: &[String]) -> Value {
    if let Some(v) = shape.and_then(|s| shaped(s, body)) {
        return v;
    }
    if body.is_empty() && !reason.eq_ignore_ascii_case("ok") {
        return json!([reason]);
    }
    json!(body)
}

/// `None` when the lines are not what the shape expects (then the lines
/// are returned as they are, never a half-filled object).
fn shaped(shape: Shape, body: &[String]) -> Option<Value> {
    match shape {
        Shape::Counters => {
            let mut m = Map::new();
            for l in body {
                let (k, v) = l.split_once(':')?;
                let n: u64 = v.trim().parse().ok()?;
                m.insert(k.trim().replace(' ', "_"), json!(n));
            }
            Some(Value::Object(m))
        }
        Shape::Uptime => {
            let [now, since, up] = body else { return None };
            let secs: u64 = up
                .strip_prefix("Up time: ")?
                .strip_suffix(" [sec]")?
                .parse()
                .ok()?;
            Some(json!({
                "now": now.strip_prefix("Now: ")?.trim(),
                "up_since": since.strip_prefix("Up Since: ")?.trim(),
                "uptime": secs,
            }))
        }
        Shape::TmStats => {
            let n: Vec<u64> = body
                .join(" ")
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            // current, waiting, total, local, replied, 6xx 5xx 4xx 3xx 2xx;
            // the status classes' own digits come first in their labels.
            let [cur, waiting, total, local, replied, 6, c6, 5, c5, 4, c4, 3, c3, 2, c2] = n[..]
            else {
                return None;
            };
            Some(json!({
                "current": cur,
                "waiting": waiting,
                "total": total,
                "total_local": local,
                "replied_locally": replied,
                "completed": {"6xx": c6, "5xx": c5, "4xx": c4, "3xx": c3, "2xx": c2},
            }))
        }
        Shape::Version => {
            let [line] = body else { return None };
            Some(json!({"server": line.strip_prefix("Server: ")?.trim()}))
        }
    }
}

/// A report delivered later (a UAC transaction's end): the final status,
/// its reason and the report's lines. A SIP failure is still a result:
/// the command did its job, the far end answered it.
pub fn report_result(code: u16, reason: &str, body: &[String]) -> Value {
    json!({"status": code, "reason": reason, "lines": body})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::registry::Registry;

    /// The command table of a ser with every module loaded.
    fn full_registry() -> Registry {
        let mut r = Registry::with_core();
        for name in crate::modules::CATALOG.names {
            let m = (crate::modules::CATALOG.create)(name)
                .unwrap_or_else(|| panic!("module {name} listed but not created"));
            r.add(m.ctl_commands());
        }
        r
    }

    #[test]
    fn every_alias_runs_a_command_that_exists() {
        let r = full_registry();
        for a in ALIASES {
            assert!(r.find(a.command).is_some(), "{} -> {}", a.name, a.command);
            assert!(r.find(a.name).is_none(), "{} shadows a FIFO name", a.name);
        }
        let names = r.names();
        let l = list(&names);
        assert!(l.iter().any(|m| m == "tm.stats") && l.iter().any(|m| m == "t_stats"));
        assert!(l.iter().any(|m| m == LIST_METHODS));
        // Without usrloc, its aliases are not offered.
        let core = Registry::with_core();
        let l = list(&core.names());
        assert!(!l.iter().any(|m| m.starts_with("ul.")));
        assert!(l.iter().any(|m| m == "core.uptime"));
    }

    #[test]
    fn names_resolve_and_help_says_what_they_run() {
        assert_eq!(command_of("core.shmmem"), "meminfo");
        assert_eq!(command_of("TM.Stats"), "t_stats");
        assert_eq!(command_of("t_stats"), "t_stats");
        let r = full_registry();
        let exists = |c: &str| r.find(c).is_some();
        assert!(help("ul.lookup", exists)
            .unwrap()
            .contains("'ul_show_contact'"));
        assert!(help("ps", exists).unwrap().contains("array of strings"));
        assert!(help("core.uptime", exists).unwrap().contains("an object"));
        assert!(help("uptime", exists).unwrap().contains("array of strings"));
        assert!(help("nosuch", exists).is_none());
    }

    #[test]
    fn shapes() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let sh = |m: &str| method_shape(m);
        assert_eq!(sh("uptime"), None, "FIFO names give lines");
        let up = result_of(
            sh("core.uptime"),
            "ok",
            &l(&[
                "Now: Tue Dec  1 13:00:00 2026",
                "Up Since: Tue Dec  1 12:00:00 2026",
                "Up time: 3600 [sec]",
            ]),
        );
        assert_eq!(up["uptime"], 3600);
        assert_eq!(up["up_since"], "Tue Dec  1 12:00:00 2026");
        let mem = result_of(sh("core.shmmem"), "ok", &l(&["total: 10", "max used: 4"]));
        assert_eq!(mem, json!({"total": 10, "max_used": 4}));
        let st = result_of(
            sh("tm.stats"),
            "ok",
            &l(&[
                "Current: 1 (2 waiting) Total: 30 (4 local)",
                "Replied localy: 5",
                "Completion status 6xx: 6, 5xx: 7, 4xx: 8, 3xx: 9,2xx: 10",
            ]),
        );
        assert_eq!(st["current"], 1);
        assert_eq!(st["total_local"], 4);
        assert_eq!(st["completed"]["2xx"], 10);
        assert_eq!(st["completed"]["6xx"], 6);
        // Lines that do not fit the shape come back as lines.
        assert_eq!(
            result_of(sh("core.shmmem"), "ok", &l(&["odd"])),
            json!(["odd"])
        );
        assert_eq!(
            result_of(sh("core.ps"), "ok", &l(&["a", "b"])),
            json!(["a", "b"])
        );
        assert_eq!(
            result_of(sh("ul.rm"), "user (location, a) deleted", &[]),
            json!(["user (location, a) deleted"])
        );
        assert_eq!(result_of(None, "ok", &[]), json!([]));
        assert_eq!(
            result_of(
                sh("core.version"),
                "ok",
                &l(&["Server: Sip EXpress router (x)\r"])
            ),
            json!({"server": "Sip EXpress router (x)"})
        );
    }
}
