//! usrloc with a database behind it: SER's `db_mode` 1 (write-through),
//! 2 (write-back) and 3 (database only).
//!
//! In modes 1 and 2 the shared-memory tables stay the truth every worker
//! reads; the database follows them and fills them at start. A change
//! marks its record dirty ([`store`](super::store)). In write-through
//! the worker that made it writes it at once — only what changed: the
//! contacts that went are deleted, the new and changed ones upserted —
//! and a write that fails leaves the record dirty. The usrloc process
//! ([`run`]) writes every dirty record each `timer_interval` (the whole
//! of write-back; in write-through only what failed or raced), reconciling
//! the AOR's rows with memory, and the supervisor writes what is left at
//! shutdown ([`final_flush`]). One process writes an AOR at a time, so
//! its writes land in order.
//!
//! In mode 3 there is no memory table: every save reads the AOR's rows,
//! changes them and writes the difference back, every lookup reads them,
//! so several servers on one database see each other's registrations.
//!
//! A database out of reach never loses a registration in modes 1 and 2
//! (the record stays dirty until a write succeeds); in mode 3 it fails the
//! save or the lookup, which the registrar answers with 500.

use std::time::Duration;

use crate::db::{DbError, DbUrl};
use crate::modules::db_conn::with_db;

use super::binding::{AorBindings, Binding};
use super::db::{Clock, DomainDb};
use super::store::{Change, Dirty, Store};
use super::UlError;

/// SER's `db_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbMode {
    /// 0: memory only.
    Memory,
    /// 1: every change written at once.
    WriteThrough,
    /// 2: changes written every `timer_interval`.
    WriteBack,
    /// 3: the database is the table.
    DbOnly,
}

impl DbMode {
    pub fn from_int(n: i64) -> Option<DbMode> {
        Some(match n {
            0 => DbMode::Memory,
            1 => DbMode::WriteThrough,
            2 => DbMode::WriteBack,
            3 => DbMode::DbOnly,
            _ => return None,
        })
    }

    /// Does shared memory hold the tables (and the database follow)?
    pub fn tracked(self) -> bool {
        matches!(self, DbMode::WriteThrough | DbMode::WriteBack)
    }
}

/// The database side: its URL and each domain's statements, indexed as
/// the store's domains.
pub(super) struct Persist {
    pub(super) url: DbUrl,
    pub(super) domains: Vec<DomainDb>,
}

/// How many times a write-through writer follows changes that raced it
/// before leaving the rest to the usrloc process.
const WRITE_ROUNDS: usize = 3;

fn warn_write(key: &[u8], e: &DbError) {
    crate::warn_limited!(
        "usrloc: {} not written to the database, kept in memory and retried: {e}",
        String::from_utf8_lossy(key)
    );
}

impl Persist {
    fn dom(&self, d: usize) -> Result<&DomainDb, UlError> {
        self.domains.get(d).ok_or(UlError::NotInitialised)
    }

    /// Write-through: writes `c` (which this process claimed), then any
    /// change that raced it, and settles the record.
    pub(super) fn write_through(&self, store: &Store, d: usize, c: Change) -> Result<(), UlError> {
        let dom = self.dom(d)?;
        let clock = Clock::now();
        let mut key = c.key;
        let mut gen = c.gen;
        let mut res = with_db(&self.url, |db| {
            if c.was_synced {
                dom.apply(db, &key, &c.before, &c.after, &clock)
            } else {
                dom.reconcile(db, &key, &c.after, &clock)
            }
        });
        for _ in 0..WRITE_ROUNDS {
            let still_dirty = store.settle(d, &key, gen, res.is_ok())?;
            if let Err(e) = &res {
                warn_write(&key, e);
                return Ok(());
            }
            if !still_dirty {
                return Ok(());
            }
            let Some(next) = store.claim(d, &key, clock.mono_ms)? else {
                return Ok(());
            };
            (key, gen) = (next.key, next.gen);
            res = with_db(&self.url, |db| dom.reconcile(db, &key, &next.live, &clock));
        }
        Ok(())
    }

    /// Writes every dirty record nobody else is writing. Stops at the
    /// first sign that the database is out of reach (what was not written
    /// stays dirty). Returns the records written.
    pub(super) fn flush(&self, store: &Store) -> Result<usize, DbError> {
        let mut written = 0;
        for d in 0..self.domains.len() {
            let dom = &self.domains[d];
            let mut bucket = 0;
            while let Some(dirty) = store.claim_dirty(d, bucket, shm::monotonic_ms()) {
                bucket += 1;
                let mut fail: Option<DbError> = None;
                for Dirty { key, live, gen } in dirty {
                    let res = match &fail {
                        Some(_) => None,
                        None => Some(with_db(&self.url, |db| {
                            dom.reconcile(db, &key, &live, &Clock::now())
                        })),
                    };
                    let ok = matches!(res, Some(Ok(_)));
                    if let Err(e) = store.settle(d, &key, gen, ok) {
                        log::error!("usrloc: {e}");
                    }
                    match res {
                        Some(Ok(_)) => written += 1,
                        Some(Err(e)) if e.is_unavailable() => fail = Some(e),
                        // The database refuses this AOR's rows (too long
                        // a contact, say): it is not coming back by
                        // itself, and the rest can still be written.
                        Some(Err(e)) => warn_write(&key, &e),
                        None => {}
                    }
                }
                if let Some(e) = fail {
                    return Err(e);
                }
            }
        }
        Ok(written)
    }

    /// Fills the tables from the database (modes 1 and 2, at start).
    /// Returns the bindings loaded.
    pub(super) fn load(&self, store: &Store, names: &[String]) -> Result<usize, PersistError> {
        let clock = Clock::now();
        let mut db = crate::db::Db::new(self.url.clone());
        let mut n = 0;
        for (d, dom) in self.domains.iter().enumerate() {
            let table = names.get(d).map_or("?", String::as_str);
            let rows = dom.all(&mut db, &clock).map_err(|e| PersistError::Load {
                table: table.to_string(),
                source: e,
            })?;
            for (aor, mut v) in rows {
                v.retain(|b| b.is_live(clock.mono_ms));
                n += v.len();
                if !v.is_empty() {
                    store.load(d, &aor, clock.mono_ms, v)?;
                }
            }
        }
        // The connection was the supervisor's; children open their own.
        db.close();
        Ok(n)
    }

    /// Checks that each table can be read (mode 3, at start).
    pub(super) fn probe(&self, names: &[String]) -> Result<(), PersistError> {
        let mut db = crate::db::Db::new(self.url.clone());
        for (d, dom) in self.domains.iter().enumerate() {
            dom.bindings(&mut db, b"", &Clock::now())
                .map_err(|e| PersistError::Load {
                    table: names.get(d).cloned().unwrap_or_default(),
                    source: e,
                })?;
        }
        db.close();
        Ok(())
    }

    /// Mode 3: the AOR's rows, read, changed by `f` and written back.
    pub(super) fn update<R>(
        &self,
        d: usize,
        aor: &[u8],
        f: impl FnOnce(&mut Vec<Binding>) -> R,
    ) -> Result<R, UlError> {
        let dom = self.dom(d)?;
        let clock = Clock::now();
        with_db(&self.url, |db| {
            let before = dom.bindings(db, aor, &clock)?;
            let mut v = before.clone();
            v.retain(|b| b.is_live(clock.mono_ms));
            let r = f(&mut v);
            dom.apply(db, aor, &before, &v, &clock)?;
            Ok(r)
        })
        .map_err(UlError::Db)
    }

    /// Mode 3: the live bindings of `aor`, `None` when it has none.
    pub(super) fn lookup(&self, d: usize, aor: &[u8]) -> Result<Option<Vec<Binding>>, UlError> {
        let dom = self.dom(d)?;
        let clock = Clock::now();
        let mut v = with_db(&self.url, |db| dom.bindings(db, aor, &clock))?;
        if v.is_empty() {
            return Ok(None);
        }
        v.retain(|b| b.is_live(clock.mono_ms));
        Ok(Some(v))
    }

    /// Mode 3: every AOR with live bindings.
    pub(super) fn records(&self, d: usize) -> Result<Vec<AorBindings>, UlError> {
        let dom = self.dom(d)?;
        let clock = Clock::now();
        let mut all = with_db(&self.url, |db| dom.all(db, &clock))?;
        for (_, v) in &mut all {
            v.retain(|b| b.is_live(clock.mono_ms));
        }
        all.retain(|(_, v)| !v.is_empty());
        Ok(all)
    }

    /// Mode 3: deletes the expired rows of every table; how many went.
    pub(super) fn delete_expired(&self, d: usize) -> Result<u64, UlError> {
        let dom = self.dom(d)?;
        Ok(with_db(&self.url, |db| {
            dom.delete_expired(db, &Clock::now())
        })?)
    }
}

/// Why usrloc could not start on its database.
#[derive(Debug, thiserror::Error)]
pub(super) enum PersistError {
    #[error("cannot read table {table:?} (run `serctl db init`, or check db_url): {source}")]
    Load {
        table: String,
        #[source]
        source: DbError,
    },
    #[error(transparent)]
    Store(#[from] UlError),
}

/// The usrloc process (db_mode 1, 2, 3): every `interval`, the expiry
/// sweep and the writes of dirty records, or in mode 3 the deletion of
/// expired rows. Never returns while the server runs.
pub(super) fn run(interval: Duration) -> i32 {
    loop {
        crate::proc::shared::sleep_beating(interval);
        super::periodic();
    }
}
