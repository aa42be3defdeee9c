//! usrloc's tables in the database (SER 0.9's `location` shape): the
//! statements of one domain, rows ↔ [`Binding`]s, and the three ways a
//! record reaches the database — a known change (write-through), a full
//! reconciliation of one AOR (write-back, or after a failure), and the
//! whole table at start.
//!
//! Bindings keep monotonic milliseconds; the database keeps wall-clock
//! datetimes (as SER wrote them), so every conversion goes through a
//! [`Clock`] read once per operation. A permanent binding is written with
//! SER's "forever" date ([`crate::db::time::FOREVER`]).
//!
//! Without `use_domain` the AOR is the user alone: rows get an empty
//! `domain` and are found by user only, as SER 0.9 did (its rows had the
//! column's default).

use crate::db::{Db, DbError, Op, Row, Stmt, Value};

use super::binding::{AorBindings, Binding, FL_PERMANENT, PERMANENT, Q_UNSPECIFIED};

/// Column names, from the `*_column` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub user: String,
    pub domain: String,
    pub contact: String,
    pub expires: String,
    pub q: String,
    pub callid: String,
    pub cseq: String,
    pub flags: String,
    pub user_agent: String,
    pub received: String,
}

impl Default for Columns {
    fn default() -> Columns {
        Columns {
            user: "username".into(),
            domain: "domain".into(),
            contact: "contact".into(),
            expires: "expires".into(),
            q: "q".into(),
            callid: "callid".into(),
            cseq: "cseq".into(),
            flags: "flags".into(),
            user_agent: "user_agent".into(),
            received: "received".into(),
        }
    }
}

impl Columns {
    /// The `*_column` parameter `param` names `value`; false when `param`
    /// is not one of them.
    pub fn set(&mut self, param: &str, value: String) -> bool {
        let slot = match param {
            "user_column" => &mut self.user,
            "domain_column" => &mut self.domain,
            "contact_column" => &mut self.contact,
            "expires_column" => &mut self.expires,
            "q_column" => &mut self.q,
            "callid_column" => &mut self.callid,
            "cseq_column" => &mut self.cseq,
            "flags_column" => &mut self.flags,
            "user_agent_column" => &mut self.user_agent,
            "received_column" => &mut self.received,
            _ => return false,
        };
        *slot = value;
        true
    }

    /// The binding's columns in the order [`binding_of`] reads them.
    fn binding_cols(&self) -> [&str; 9] {
        [
            &self.contact,
            &self.expires,
            &self.q,
            &self.callid,
            &self.cseq,
            &self.flags,
            &self.user_agent,
            &self.received,
            LAST_MODIFIED,
        ]
    }
}

/// Not configurable in SER 0.9 (the table's own timestamp).
const LAST_MODIFIED: &str = "last_modified";

/// Longest values SER 0.9's table takes (MySQL refuses longer ones in
/// strict mode): a User-Agent is cut to fit, as it is only shown.
const USER_AGENT_MAX: usize = 50;

/// Monotonic and wall-clock "now", read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub mono_ms: u64,
    pub wall_s: i64,
}

impl Clock {
    pub fn now() -> Clock {
        let wall_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        Clock {
            mono_ms: shm::monotonic_ms(),
            wall_s,
        }
    }

    /// The wall-clock second of monotonic `ms` (rounded up, so a binding
    /// never reads back as expiring earlier than it does).
    pub fn wall_of(&self, ms: u64) -> i64 {
        let delta_ms = i128::from(ms) - i128::from(self.mono_ms);
        let delta_s = delta_ms.div_euclid(1000) + i128::from(delta_ms.rem_euclid(1000) != 0);
        i64::try_from(i128::from(self.wall_s) + delta_s).unwrap_or(i64::MAX)
    }

    /// The monotonic millisecond of wall-clock second `s` (0 when it is
    /// before the monotonic clock's start: long expired).
    pub fn mono_of(&self, s: i64) -> u64 {
        let ms = i128::from(self.mono_ms) + (i128::from(s) - i128::from(self.wall_s)) * 1000;
        u64::try_from(ms.max(0)).unwrap_or(u64::MAX)
    }
}

/// An AOR split into the `user` and `domain` columns.
fn split_aor(aor: &[u8], use_domain: bool) -> (Value, Value) {
    let (user, domain) = match aor.iter().position(|&c| c == b'@') {
        Some(i) if use_domain => (&aor[..i], &aor[i + 1..]),
        _ => (aor, &b""[..]),
    };
    (
        Value::text_or_bytes(user.to_vec()),
        Value::text_or_bytes(domain.to_vec()),
    )
}

fn bytes_of(v: Option<&Value>) -> Vec<u8> {
    match v {
        Some(Value::Str(s)) => s.as_bytes().to_vec(),
        Some(Value::Bytes(b)) => b.clone(),
        _ => Vec::new(),
    }
}

/// One row's binding columns (from `first`, in [`Columns::binding_cols`]
/// order) as a binding; `None` when the contact is empty.
fn binding_of(row: &Row, first: usize, clock: &Clock) -> Result<Option<Binding>, DbError> {
    let contact = bytes_of(row.get(first));
    if contact.is_empty() {
        return Ok(None);
    }
    let flags = u32::try_from(row.opt_int(first + 5)?.unwrap_or(0)).unwrap_or(0);
    let expires_s = row.opt_time(first + 1)?;
    let expires_ms = match expires_s {
        Some(s) if s == crate::db::time::forever_secs() => PERMANENT,
        _ if flags & FL_PERMANENT != 0 => PERMANENT,
        Some(s) => clock.mono_of(s),
        None => PERMANENT,
    };
    let q = match row.opt_float(first + 2)? {
        Some(q) => ((q * 1000.0).round() as i32).clamp(0, 1000),
        None => Q_UNSPECIFIED,
    };
    let last_modified_ms = row
        .opt_time(first + 8)
        .ok()
        .flatten()
        .map_or(clock.mono_ms, |s| clock.mono_of(s).min(clock.mono_ms));
    Ok(Some(Binding {
        contact,
        expires_ms,
        q,
        call_id: bytes_of(row.get(first + 3)),
        cseq: u32::try_from(row.opt_int(first + 4)?.unwrap_or(0)).unwrap_or(0),
        flags,
        user_agent: bytes_of(row.get(first + 6)),
        received: bytes_of(row.get(first + 7)),
        last_modified_ms,
    }))
}

/// The values of a binding's non-key columns, in the upsert's order.
fn binding_values(b: &Binding, clock: &Clock) -> [Value; 8] {
    let expires = if b.is_permanent() {
        crate::db::time::forever_secs()
    } else {
        clock.wall_of(b.expires_ms)
    };
    // SER's table has no "unspecified": it is stored as 1.0.
    let q = if b.q == Q_UNSPECIFIED {
        1.0
    } else {
        f64::from(b.q.clamp(0, 1000)) / 1000.0
    };
    let mut ua = b.user_agent.clone();
    if ua.len() > USER_AGENT_MAX {
        let mut n = USER_AGENT_MAX;
        while n > 0 && (ua[n] & 0xC0) == 0x80 {
            n -= 1;
        }
        ua.truncate(n);
    }
    [
        Value::Time(expires),
        Value::Float(q),
        Value::text_or_bytes(b.call_id.clone()),
        Value::Int(i64::from(b.cseq)),
        Value::Int(i64::from(b.flags)),
        Value::text_or_bytes(ua),
        if b.received.is_empty() {
            Value::Null
        } else {
            Value::text_or_bytes(b.received.clone())
        },
        Value::Time(clock.wall_of(b.last_modified_ms).min(clock.wall_s)),
    ]
}

/// Two bindings that would write the same row.
fn same_row(a: &Binding, b: &Binding) -> bool {
    a.contact == b.contact
        && a.expires_ms / 1000 == b.expires_ms / 1000
        && a.q == b.q
        && a.call_id == b.call_id
        && a.cseq == b.cseq
        && a.flags == b.flags
        && a.user_agent == b.user_agent
        && a.received == b.received
}

/// The statements of one domain (table), built once at start.
#[derive(Debug)]
pub struct DomainDb {
    use_domain: bool,
    select_aor: Stmt,
    select_all: Stmt,
    upsert: Stmt,
    delete_contact: Stmt,
    delete_expired: Stmt,
}

impl DomainDb {
    pub fn new(table: &str, cols: &Columns, use_domain: bool) -> Result<DomainDb, DbError> {
        let bcols = cols.binding_cols();
        let who: Vec<&str> = if use_domain {
            vec![&cols.user, &cols.domain]
        } else {
            vec![&cols.user]
        };
        let mut all = vec![cols.user.as_str(), cols.domain.as_str()];
        all.extend_from_slice(&bcols);
        let mut contact_key = who.clone();
        contact_key.push(&cols.contact);
        Ok(DomainDb {
            use_domain,
            select_aor: Stmt::select(table, &bcols).where_eq(&who).build()?,
            select_all: Stmt::select(table, &all).build()?,
            upsert: Stmt::upsert(
                table,
                &[&cols.user, &cols.domain, &cols.contact],
                &bcols[1..],
            )?,
            delete_contact: Stmt::delete(table).where_eq(&contact_key).build()?,
            delete_expired: Stmt::delete(table)
                .where_op(&cols.expires, Op::Lt)
                .where_op(&cols.expires, Op::Ne)
                .build()?,
        })
    }

    fn who(&self, aor: &[u8]) -> Vec<Value> {
        let (user, domain) = split_aor(aor, self.use_domain);
        if self.use_domain {
            vec![user, domain]
        } else {
            vec![user]
        }
    }

    /// Every binding of `aor` in the table, expired ones included.
    pub fn bindings(
        &self,
        db: &mut Db,
        aor: &[u8],
        clock: &Clock,
    ) -> Result<Vec<Binding>, DbError> {
        let rows = db.query(&self.select_aor, &self.who(aor))?;
        let mut v = Vec::with_capacity(rows.len());
        for row in &rows {
            v.extend(binding_of(row, 0, clock)?);
        }
        Ok(v)
    }

    /// Every AOR of the table with its bindings (expired ones included),
    /// in the order the rows came.
    pub fn all(&self, db: &mut Db, clock: &Clock) -> Result<Vec<AorBindings>, DbError> {
        let rows = db.query(&self.select_all, &[])?;
        let mut out: Vec<AorBindings> = Vec::new();
        let mut index: std::collections::HashMap<Vec<u8>, usize> = Default::default();
        for row in &rows {
            let Some(b) = binding_of(row, 2, clock)? else {
                continue;
            };
            let mut aor = bytes_of(row.get(0));
            let domain = bytes_of(row.get(1));
            if self.use_domain && !domain.is_empty() {
                aor.push(b'@');
                aor.extend_from_slice(&domain);
            }
            match index.get(&aor) {
                Some(&i) => out[i].1.push(b),
                None => {
                    index.insert(aor.clone(), out.len());
                    out.push((aor, vec![b]));
                }
            }
        }
        Ok(out)
    }

    /// Writes what changed between `before` (what the table holds) and
    /// `after`: deletes the contacts that went, upserts the new and the
    /// changed ones. Returns the number of statements run.
    pub fn apply(
        &self,
        db: &mut Db,
        aor: &[u8],
        before: &[Binding],
        after: &[Binding],
        clock: &Clock,
    ) -> Result<usize, DbError> {
        let mut n = 0;
        for old in before {
            if !after.iter().any(|b| b.contact == old.contact) {
                let mut p = self.who(aor);
                p.push(Value::text_or_bytes(old.contact.clone()));
                db.exec(&self.delete_contact, &p)?;
                n += 1;
            }
        }
        let (user, domain) = split_aor(aor, self.use_domain);
        for b in after {
            if before.iter().any(|old| same_row(old, b)) {
                continue;
            }
            let mut p = vec![
                user.clone(),
                domain.clone(),
                Value::text_or_bytes(b.contact.clone()),
            ];
            p.extend(binding_values(b, clock));
            db.exec(&self.upsert, &p)?;
            n += 1;
        }
        Ok(n)
    }

    /// Makes the table's rows of `aor` say `live` and nothing else.
    pub fn reconcile(
        &self,
        db: &mut Db,
        aor: &[u8],
        live: &[Binding],
        clock: &Clock,
    ) -> Result<usize, DbError> {
        let before = self.bindings(db, aor, clock)?;
        self.apply(db, aor, &before, live, clock)
    }

    /// Deletes the rows expired at `clock` (not the permanent ones, whose
    /// "forever" date is in the past). Returns how many went.
    pub fn delete_expired(&self, db: &mut Db, clock: &Clock) -> Result<u64, DbError> {
        let forever = crate::db::time::forever_secs();
        db.exec(
            &self.delete_expired,
            &[Value::Time(clock.wall_s), Value::Time(forever)],
        )
    }
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
