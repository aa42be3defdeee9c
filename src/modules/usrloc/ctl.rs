//! usrloc's management commands (FIFO and unix socket), with SER 0.9's
//! names, parameter lines and reply texts: `ul_stats`, `ul_rm`,
//! `ul_rm_contact`, `ul_dump`, `ul_flush`, `ul_add`, `ul_show_contact`.
//!
//! Parameters are one per line: the table (domain) name first, then the
//! AOR — cut at `@` unless `use_domain` is set, in which case the `@` is
//! required — then the command's own values.

use crate::ctl::{CmdCtx, CtlCmd, Outcome, ParamError, Params, Reply};

use super::binding::{Binding, FL_PERMANENT, PERMANENT};
use super::{use_domain, UlError};

pub static COMMANDS: &[CtlCmd] = &[
    CtlCmd {
        name: "ul_stats",
        handler: ul_stats,
    },
    CtlCmd {
        name: "ul_rm",
        handler: ul_rm,
    },
    CtlCmd {
        name: "ul_rm_contact",
        handler: ul_rm_contact,
    },
    CtlCmd {
        name: "ul_dump",
        handler: ul_dump,
    },
    CtlCmd {
        name: "ul_flush",
        handler: ul_flush,
    },
    CtlCmd {
        name: "ul_add",
        handler: ul_add,
    },
    CtlCmd {
        name: "ul_show_contact",
        handler: ul_show_contact,
    },
];

/// Call-ID and CSeq of bindings made by `ul_add` (no REGISTER made them).
const CTL_CALL_ID: &[u8] = b"ser-ctl-ul_add";
const CTL_CSEQ: u32 = 1;

/// A command ends early with a reply of its own, or with a parameter the
/// dispatcher must report (an interrupted request).
enum Fail {
    Reply(Reply),
    Param(ParamError),
}

impl From<ParamError> for Fail {
    fn from(e: ParamError) -> Fail {
        Fail::Param(e)
    }
}

type Step<T> = Result<T, Fail>;

fn finish(r: Step<Reply>) -> Result<Outcome, ParamError> {
    match r {
        Ok(r) | Err(Fail::Reply(r)) => Ok(r.into()),
        Err(Fail::Param(e)) => Err(e),
    }
}

fn fail<T>(code: u16, text: impl Into<String>) -> Step<T> {
    Err(Fail::Reply(Reply::new(code, text)))
}

/// A mandatory, non-empty line; missing → `400 <cmd>: <what> expected`.
fn need(p: &mut Params<'_>, cmd: &str, what: &'static str) -> Step<String> {
    match p.nonempty(what) {
        Ok(l) => Ok(l),
        Err(ParamError::Missing(_)) => fail(400, format!("{cmd}: {what} expected")),
        Err(e) => Err(e.into()),
    }
}

/// The AOR as usrloc keys it, from a FIFO line.
fn aor_of(cmd: &str, raw: &str) -> Step<String> {
    match raw.find('@') {
        None if use_domain() => fail(400, format!("{cmd}: username@domain expected")),
        Some(i) if !use_domain() => Ok(raw[..i].to_string()),
        _ => Ok(raw.to_string()),
    }
}

fn table_and_aor(p: &mut Params<'_>, cmd: &str) -> Step<(String, String)> {
    let table = need(p, cmd, "table name")?;
    let aor = need(p, cmd, "AOR")?;
    Ok((table, aor_of(cmd, &aor)?))
}

fn store_error(e: UlError) -> Fail {
    match e {
        UlError::UnknownDomain(t) => Fail::Reply(Reply::new(400, format!("table ({t}) not found"))),
        e => Fail::Reply(Reply::new(500, format!("usrloc: {e}"))),
    }
}

fn now() -> u64 {
    shm::monotonic_ms()
}

/// `<contact>;q=<q>;expires=<s>`, as `ul_show_contact` prints a binding.
/// An unspecified q is left out; a permanent binding shows
/// `expires=permanent`.
pub fn contact_line(b: &Binding, now_ms: u64) -> String {
    let mut s = format!("<{}>", String::from_utf8_lossy(&b.contact));
    if let Some(q) = b.q_text() {
        s.push_str(";q=");
        s.push_str(&q);
    }
    if b.is_permanent() {
        s.push_str(";expires=permanent");
    } else {
        s.push_str(&format!(";expires={}", b.expires_in_s(now_ms)));
    }
    s
}

fn ul_stats(_: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, ParamError> {
    finish((|| {
        let mut body = vec!["Domain Registered Expired".to_string()];
        for (name, users, expired) in super::stats().map_err(store_error)? {
            body.push(format!("'{name}' {users} {expired}"));
        }
        Ok(Reply::ok(body))
    })())
}

fn ul_rm(p: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, ParamError> {
    finish((|| {
        let (table, aor) = table_and_aor(p, "ul_rm")?;
        let existed = super::update(&table, aor.as_bytes(), now(), |v| {
            let had = !v.is_empty();
            v.clear();
            had
        })
        .map_err(store_error)?;
        // Saying "deleted" for a typo would leave the real AOR registered
        // while the operator believes it gone.
        if !existed {
            return fail(404, format!("Username {aor} in table {table} not found"));
        }
        log::info!("usrloc: ul_rm deleted ({table}, {aor})");
        Ok(Reply::new(200, format!("user ({table}, {aor}) deleted")))
    })())
}

enum RmContact {
    NoUser,
    NoContact,
    Deleted,
}

fn ul_rm_contact(p: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, ParamError> {
    finish((|| {
        let (table, aor) = table_and_aor(p, "ul_rm_contact")?;
        let contact = need(p, "ul_rm_contact", "contact")?;
        let r = super::update(&table, aor.as_bytes(), now(), |v| {
            if v.is_empty() {
                return RmContact::NoUser;
            }
            let before = v.len();
            v.retain(|b| b.contact != contact.as_bytes());
            if v.len() == before {
                RmContact::NoContact
            } else {
                RmContact::Deleted
            }
        })
        .map_err(store_error)?;
        match r {
            RmContact::NoUser => fail(404, format!("Username {aor} in table {table} not found")),
            RmContact::NoContact => {
                fail(404, format!("Contact {contact} in table {table} not found"))
            }
            RmContact::Deleted => Ok(Reply::new(
                200,
                format!("Contact ({aor}, {contact}) deleted from table {table}"),
            )),
        }
    })())
}

fn dump_line(b: &Binding, now_ms: u64) -> String {
    let lossy = |x: &[u8]| String::from_utf8_lossy(x).into_owned();
    let mut s = format!(
        "    {};flags={:#x};cseq={};callid={}",
        contact_line(b, now_ms),
        b.flags,
        b.cseq,
        lossy(&b.call_id)
    );
    if !b.user_agent.is_empty() {
        s.push_str(&format!(";user_agent=\"{}\"", lossy(&b.user_agent)));
    }
    if !b.received.is_empty() {
        s.push_str(&format!(";received=<{}>", lossy(&b.received)));
    }
    s
}

/// `ul_dump [brief]`: every domain, its AORs and (unless brief) their
/// live bindings.
fn ul_dump(p: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, ParamError> {
    let brief = p
        .optional()
        .is_some_and(|l| l.eq_ignore_ascii_case("brief"));
    finish((|| {
        let t = now();
        let mut body = Vec::new();
        for (name, recs) in super::dump(t).map_err(store_error)? {
            body.push(format!("Domain '{name}': {} AOR(s)", recs.len()));
            for (aor, bindings) in recs {
                body.push(format!("  AOR '{}'", String::from_utf8_lossy(&aor)));
                if !brief {
                    body.extend(bindings.iter().map(|b| dump_line(b, t)));
                }
            }
        }
        Ok(Reply::ok(body))
    })())
}

/// `ul_flush`: the expiry sweep now, and (as SER) the writes of dirty
/// records to the database.
fn ul_flush(_: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, ParamError> {
    finish((|| {
        super::flush(now()).map_err(store_error)?;
        Ok(Reply::new(200, "ul_flush completed"))
    })())
}

/// A q-value as `ul_add` takes it (`0.5`, `1.00`, `1`) → q × 1000.
fn parse_q(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return None;
    }
    let x: f64 = s.parse().ok()?;
    (0.0..=1.0)
        .contains(&x)
        .then(|| (x * 1000.0).round() as i32)
}

fn number(cmd_field: &str, s: &str) -> Step<u32> {
    s.trim().parse::<u32>().or_else(|_| {
        fail(
            400,
            format!("Invalid {cmd_field} format: expected a non-negative integer, got {s:?}"),
        )
    })
}

fn ul_add(p: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, ParamError> {
    finish((|| {
        const CMD: &str = "ul_add";
        let (table, aor) = table_and_aor(p, CMD)?;
        let contact = need(p, CMD, "contact")?;
        let expires = need(p, CMD, "expires")?;
        let q = need(p, CMD, "q")?;
        let replicate = need(p, CMD, "replicate")?;
        // 0.8 clients send no flags line; 0.9 ones do.
        let flags = p.optional();
        if !super::has_domain(&table).map_err(store_error)? {
            return fail(
                400,
                format!(
                    "Table '{table}' not found in memory, use save(\"{table}\") or \
                     lookup(\"{table}\") in the configuration script first"
                ),
            );
        };
        let expires = number("expires", &expires)?;
        let Some(q) = parse_q(&q) else {
            return fail(
                400,
                format!("Invalid q format: expected a number from 0 to 1 such as 0.5, got {q:?}"),
            );
        };
        // Replication to other servers does not exist here; the value is
        // only checked, as SER checks it.
        number("replicate", &replicate)?;
        let mut flags = match flags {
            Some(f) => number("flags", &f)?,
            None => 0,
        };
        let t = now();
        let expires_ms = if expires == 0 || flags & FL_PERMANENT != 0 {
            flags |= FL_PERMANENT;
            PERMANENT
        } else {
            t.saturating_add(u64::from(expires) * 1000)
        };
        super::update(&table, aor.as_bytes(), t, |v| {
            match v.iter_mut().find(|b| b.contact == contact.as_bytes()) {
                Some(b) => {
                    b.expires_ms = expires_ms;
                    b.q = q;
                    b.call_id = CTL_CALL_ID.to_vec();
                    b.cseq = CTL_CSEQ;
                    b.flags = flags;
                    b.last_modified_ms = t;
                }
                None => v.push(Binding {
                    contact: contact.as_bytes().to_vec(),
                    expires_ms,
                    q,
                    call_id: CTL_CALL_ID.to_vec(),
                    cseq: CTL_CSEQ,
                    flags,
                    user_agent: Vec::new(),
                    received: Vec::new(),
                    last_modified_ms: t,
                }),
            }
        })
        .map_err(|e| {
            Fail::Reply(Reply::new(
                500,
                format!("Error while adding contact ('{aor}','{contact}') in table '{table}': {e}"),
            ))
        })?;
        Ok(Reply::new(200, "Added to table")
            .with_body(vec![format!("('{aor}','{contact}') to '{table}'")]))
    })())
}

fn ul_show_contact(p: &mut Params<'_>, _: &CmdCtx<'_>) -> Result<Outcome, ParamError> {
    finish((|| {
        let (table, aor) = table_and_aor(p, "ul_show_contact")?;
        let t = now();
        match super::lookup(&table, aor.as_bytes(), t).map_err(store_error)? {
            None => fail(404, format!("Username {aor} in table {table} not found")),
            Some(v) if v.is_empty() => fail(404, "No registered contacts found"),
            Some(v) => {
                Ok(Reply::new(200, "OK").with_body(v.iter().map(|b| contact_line(b, t)).collect()))
            }
        }
    })())
}

#[cfg(test)]
#[path = "ctl_tests.rs"]
mod tests;
