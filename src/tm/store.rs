//! The transaction table in shared memory: creation, lookup, unlinking,
//! and the branch ids that lead replies back to their cell.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use shm::{Region, ShmError, ShmHashTable, ShmOff, ShmRefCount};

use crate::sip::{Method, Msg};
use crate::tm::branch::BranchId;
use crate::tm::cell::{store_bytes, Cell, CellRef, CellState, Peer};
use crate::tm::fsm::Tx;
use crate::tm::key::{key_of, CellView, MatchKind, MatchOpts, MsgKey};

pub use crate::tm::branch::TABLE_BITS;

struct Globals {
    region: &'static Region,
    table: ShmOff<ShmHashTable<Cell>>,
}

static GLOBALS: OnceLock<Globals> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("shared memory: {0}")]
    Shm(#[from] ShmError),
    #[error("the transaction table is already set up")]
    AlreadyInit,
    #[error("the transaction table is not set up")]
    NotInit,
    #[error("transaction tuple incomplete")]
    Tuple,
    #[error("no secret for branch ids from the kernel: {0}")]
    Random(std::io::Error),
}

/// Create the table and counters. Once, before the fork.
pub fn init(region: &'static Region) -> Result<(), StoreError> {
    crate::tm::branch::init().map_err(StoreError::Random)?;
    let table = ShmHashTable::<Cell>::create(region, TABLE_BITS)?;
    region
        .get(table)
        .seed_labels(region, crate::tm::branch::label_seed);
    crate::tm::stats::init(region)?;
    GLOBALS
        .set(Globals { region, table })
        .map_err(|_| StoreError::AlreadyInit)
}

fn g() -> Option<&'static Globals> {
    GLOBALS.get()
}

pub fn region() -> Option<&'static Region> {
    g().map(|g| g.region)
}

/// `(current, total)` of bucket `i`, for `t_hash`.
pub fn bucket_counters(i: u32) -> (u32, u64) {
    match g() {
        Some(g) => g.region.get(g.table).counters(g.region, i),
        None => (0, 0),
    }
}

/// Result of looking a request up.
pub enum Found {
    /// A cell and how the request relates to it.
    Cell(CellRef, MatchKind),
    None,
}

/// Find the cell `m` belongs to. With `want` set, only that kind of match
/// is accepted (CANCEL lookups want [`MatchKind::CancelTarget`]).
pub fn lookup(m: &MsgKey<'_>, o: MatchOpts, want: Option<MatchKind>) -> Found {
    let Some(g) = g() else { return Found::None };
    let table = g.region.get(g.table);
    let Some(bucket) = table.lock_bucket(g.region, table.bucket_of(m.hash())) else {
        return Found::None;
    };
    let mut hit = None;
    for (off, cell) in bucket.iter() {
        let view = CellView {
            key: &cell.key,
            req: cell.req_bytes(g.region),
        };
        if let Some(kind) = view.classify(m, o) {
            if want.is_none_or(|w| w == kind)
                && !(want.is_none() && kind == MatchKind::CancelTarget)
            {
                hit = Some((off, kind));
                // An exact match wins over a dialog match; keep looking
                // only while what we have is the weaker kind.
                if kind != MatchKind::DialogAck {
                    break;
                }
            }
        }
    }
    match hit {
        // The bucket lock keeps the cell linked, so it cannot be freed
        // before our reference is counted.
        Some((off, kind)) => Found::Cell(CellRef::acquire(g.region, off), kind),
        None => Found::None,
    }
}

/// Find a cell by the id in our Via branch.
pub fn lookup_id(hash: u32, label: u32) -> Option<CellRef> {
    let g = g()?;
    let table = g.region.get(g.table);
    if hash >= table.len() {
        return None;
    }
    let bucket = table.lock_bucket(g.region, hash)?;
    let off = bucket.find(|c| c.label.load(Ordering::Relaxed) == label)?;
    Some(CellRef::acquire(g.region, off))
}

/// Find an INVITE transaction by its Call-ID and CSeq number (how SER
/// 0.9's `t_uac_cancel` names the transaction to cancel).
pub fn lookup_invite(call_id: &[u8], cseq_num: u32) -> Option<CellRef> {
    let g = g()?;
    let table = g.region.get(g.table);
    let bucket = table.lock_bucket(g.region, crate::tm::key::hash(call_id, cseq_num))?;
    let off = bucket.find(|c| {
        c.method == Method::Invite as u32
            && c.key.cseq_num == cseq_num
            && c.key.call_id.get(c.req_bytes(g.region)) == call_id
    })?;
    Some(CellRef::acquire(g.region, off))
}

/// Outcome of [`create`].
pub enum Created {
    New(CellRef),
    /// Another process created the same transaction first.
    Existing(CellRef, MatchKind),
}

/// Clone `msg` into a new cell and link it, unless an equal transaction
/// appeared meanwhile (checked under the bucket lock). `reliable`: it came
/// over TCP/TLS, so our final reply upstream is not retransmitted.
pub fn create(
    msg: &Msg,
    src: Peer,
    local: bool,
    reliable: bool,
    o: MatchOpts,
) -> Result<Created, StoreError> {
    let g = g().ok_or(StoreError::NotInit)?;
    let region = g.region;
    let key = key_of(msg).map_err(|_| StoreError::Tuple)?;
    let mk = MsgKey::of(msg).map_err(|_| StoreError::Tuple)?;
    let hash = mk.hash();
    let req = store_bytes(region, msg.buf())?;
    let invite = msg.method() == Method::Invite;
    let tx = Tx::new(invite, local, reliable);
    let cell = Cell {
        link: shm::ListLink::new(),
        timer: Default::default(),
        // One reference for the table, one for the creator.
        refs: ShmRefCount::new(2),
        hash,
        label: AtomicU32::new(0),
        method: msg.method() as u32,
        req,
        key,
        src,
        state: shm::ShmLocked::new(CellState {
            tx,
            ..Default::default()
        }),
    };
    let off = match region.alloc(cell) {
        Ok(o) => o,
        Err(e) => {
            region.free_slice(req);
            return Err(e.into());
        }
    };
    let table = region.get(g.table);
    let Some(mut bucket) = table.lock_bucket(region, hash) else {
        region.free_slice(req);
        region.free(off);
        return Err(StoreError::NotInit);
    };
    let dup = bucket.iter().find_map(|(o2, c)| {
        let view = CellView {
            key: &c.key,
            req: c.req_bytes(region),
        };
        view.classify(&mk, o)
            .filter(|k| *k == MatchKind::Same)
            .map(|k| (o2, k))
    });
    if let Some((o2, kind)) = dup {
        let existing = CellRef::acquire(region, o2);
        drop(bucket);
        region.free_slice(req);
        region.free(off);
        return Ok(Created::Existing(existing, kind));
    }
    // The label is written before the cell becomes reachable.
    region
        .get(off)
        .label
        .store(bucket.next_label(), Ordering::Relaxed);
    bucket.insert(off);
    drop(bucket);
    if let Some(s) = crate::tm::stats::stats() {
        s.created.fetch_add(1, Ordering::Relaxed);
        if local {
            s.local.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(Created::New(CellRef::adopt(region, off)))
}

/// After a process died: drops the references it held on cells (raw
/// offsets from its record in the process list). A cell then left in the
/// table with no timer armed has nobody to finish it (its creator died
/// before arming one): it is unlinked, so the table's reference goes too
/// and its caller's retransmission starts a fresh transaction. A cell
/// whose timer is in `firing` (the timers the dead timer process had taken
/// off the wheel and not claimed, `timer::in_flight_of`: its handler had
/// not finished with them) is left alone: its reference is the wheel's,
/// and the next timer process fires it again.
/// Returns (references dropped, cells unlinked).
pub fn release_orphans(offs: &[u32], firing: &[ShmOff<shm::TimerLink>]) -> (usize, usize) {
    let Some(g) = g() else { return (0, 0) };
    let mut unlinked = 0;
    let mut dropped = 0;
    for off in offs.iter().filter_map(|o| ShmOff::<Cell>::from_u32(*o)) {
        // A timer the dead timer process had not yet claimed: the record
        // and the wheel list the same reference, and the next timer
        // process fires it again with that reference.
        if firing.contains(&shm::shm_field!(off, Cell, timer)) {
            continue;
        }
        // The dead process's reference, adopted here so that dropping
        // `cref` releases it (the supervisor keeps no record of its own).
        let cref = CellRef::adopt(g.region, off);
        let c = cref.cell();
        if !c.timer.is_armed() && c.link.bucket().is_some() {
            unlink(&cref);
            unlinked += 1;
        }
        drop(cref);
        dropped += 1;
    }
    (dropped, unlinked)
}

/// Unlink a terminated cell and drop the table's reference.
pub fn unlink(cell: &CellRef) {
    let Some(g) = g() else { return };
    let table = g.region.get(g.table);
    let c = cell.cell();
    let removed = match table.lock_bucket(g.region, c.hash) {
        Some(mut b) => b.remove(cell.off()),
        None => false,
    };
    if removed {
        crate::tm::cell::release(g.region, cell.off());
    }
}

/// Our Via branch for fork `branch` of cell (`hash`, `label`); see
/// [`crate::tm::branch`].
pub fn branch_id(hash: u32, label: u32, branch: u8) -> String {
    BranchId {
        hash,
        label,
        branch,
    }
    .encode()
}

/// Parse and verify a branch we wrote in this run: `(hash, label, branch)`.
pub fn parse_branch_id(b: &[u8]) -> Option<(u32, u32, u8)> {
    BranchId::decode(b).map(|id| (id.hash, id.label, id.branch))
}
