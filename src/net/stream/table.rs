//! The TCP main process's connections: ids, lookup by peer address (and
//! alias), the choice of which to close under `max_connections`, and the
//! counters. Generic over what the loop keeps beside each connection (its
//! socket), so it is tested with `()`.
use std::collections::HashMap;
use std::net::SocketAddr;

use super::conn::{CloseReason, Conn};
use crate::net::Proto;

/// Connection ids stay below this, so that the loop's other tokens
/// (listeners, the link) can live above it on 32-bit targets too.
pub const MAX_CONN_ID: u32 = 0x7fff_ffff;

/// Counters of the TCP main process, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Connections open now (connecting and closing ones included).
    pub open: u64,
    /// Connections accepted on our listeners.
    pub accepted: u64,
    /// Outgoing connections established.
    pub connected: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Of those, closed after `tcp_connection_lifetime` without traffic.
    pub idle_closed: u64,
    /// Of those, closed for an error (framing, TLS, I/O, a timeout other
    /// than idle, a failed connect).
    pub errors: u64,
}

impl std::fmt::Display for StreamStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "open {} accepted {} connected {} closed {} idle_closed {} errors {}",
            self.open, self.accepted, self.connected, self.closed, self.idle_closed, self.errors
        )
    }
}

/// A connection and what the loop keeps with it.
#[derive(Debug)]
pub struct Slot<T> {
    pub conn: Conn,
    pub io: T,
    /// Extra addresses the peer is known by (RFC 5923 aliases).
    aliases: Vec<SocketAddr>,
    /// When it was accepted or its connect started.
    pub opened: std::time::Instant,
    /// The connection holds a direct-write slot (`super::slots`).
    pub direct: bool,
    /// Its socket has been handed to another process.
    pub shared: bool,
    /// The slot's direct-write count at the last sweep.
    pub writes_seen: u32,
    /// The slot flags this process last set (`super::slots`).
    pub synced: u32,
    /// Requests queued on an outgoing connection not yet established: if
    /// it fails, each is answered 503 (RFC 3261 8.1.3.1) at once instead
    /// of its transaction waiting for the FR timer.
    pub unsent: Vec<Vec<u8>>,
    /// Watched for writability (connecting, or bytes waiting): only
    /// then, so that writes by others do not wake the loop.
    pub want_write: bool,
}

impl<T> Slot<T> {
    /// Extra addresses the peer is known by.
    pub fn aliases(&self) -> &[SocketAddr] {
        &self.aliases
    }
}

/// Every connection of the process; see the module doc.
#[derive(Debug)]
pub struct ConnTable<T> {
    slots: HashMap<u32, Slot<T>>,
    /// Remote address → connection (the latest one, if several).
    by_peer: HashMap<(Proto, SocketAddr), u32>,
    /// Alias → connection.
    by_alias: HashMap<(Proto, SocketAddr), u32>,
    last_id: u32,
    accept_aliases: bool,
    stats: StreamStats,
}

impl<T> ConnTable<T> {
    pub fn new(accept_aliases: bool) -> Self {
        ConnTable {
            slots: HashMap::new(),
            by_peer: HashMap::new(),
            by_alias: HashMap::new(),
            last_id: 0,
            accept_aliases,
            stats: StreamStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// A free id: the one after the last, wrapping below
    /// [`MAX_CONN_ID`], never 0, never one in use. `None` only if every
    /// id is taken.
    pub fn next_id(&mut self) -> Option<u32> {
        for _ in 0..=self.slots.len() {
            self.last_id = if self.last_id >= MAX_CONN_ID {
                1
            } else {
                self.last_id + 1
            };
            if !self.slots.contains_key(&self.last_id) {
                return Some(self.last_id);
            }
        }
        None
    }

    /// Moves the id counter, to test the wrap without 2^31 calls.
    #[cfg(test)]
    pub(crate) fn set_last_id(&mut self, id: u32) {
        self.last_id = id;
    }

    /// Adds a connection made with an id from [`ConnTable::next_id`].
    pub fn insert(&mut self, conn: Conn, io: T) {
        let info = conn.info;
        self.by_peer.insert((info.proto, info.peer), info.id);
        if let Some(old) = self.slots.insert(
            info.id,
            Slot {
                conn,
                io,
                aliases: Vec::new(),
                opened: std::time::Instant::now(),
                direct: false,
                shared: false,
                writes_seen: 0,
                want_write: info.outbound,
                synced: 0,
                unsent: Vec::new(),
            },
        ) {
            // Cannot happen with ids from `next_id`; keep the maps right
            // if it does.
            self.unlink(&old);
        } else {
            self.stats.open += 1;
        }
        if info.outbound {
            // Counted as connected when the connect succeeds.
        } else {
            self.stats.accepted += 1;
        }
    }

    /// An outgoing connection could not even be started (no socket, a
    /// refused bind or connect): an error with no connection to close.
    pub fn count_failed_connect(&mut self) {
        self.stats.errors += 1;
    }

    /// An outgoing connection got established.
    pub fn count_connected(&mut self) {
        self.stats.connected += 1;
    }

    pub fn get(&self, id: u32) -> Option<&Slot<T>> {
        self.slots.get(&id)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Slot<T>> {
        self.slots.get_mut(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u32, &Slot<T>)> {
        self.slots.iter()
    }

    pub fn ids(&self) -> Vec<u32> {
        self.slots.keys().copied().collect()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u32, &mut Slot<T>)> {
        self.slots.iter_mut()
    }

    /// Removes a connection, counting why.
    pub fn remove(&mut self, id: u32, why: &CloseReason) -> Option<Slot<T>> {
        let slot = self.slots.remove(&id)?;
        self.unlink(&slot);
        self.stats.open = self.stats.open.saturating_sub(1);
        self.stats.closed += 1;
        if matches!(why, CloseReason::Idle(_)) {
            self.stats.idle_closed += 1;
        } else if why.is_error() {
            self.stats.errors += 1;
        }
        Some(slot)
    }

    fn unlink(&mut self, slot: &Slot<T>) {
        let info = slot.conn.info;
        let key = (info.proto, info.peer);
        if self.by_peer.get(&key) == Some(&info.id) {
            self.by_peer.remove(&key);
        }
        for a in &slot.aliases {
            let key = (info.proto, *a);
            if self.by_alias.get(&key) == Some(&info.id) {
                self.by_alias.remove(&key);
            }
        }
    }

    /// Records that the peer of `id` is also reachable as `addr` (RFC
    /// 5923, SER's `tcp_accept_aliases`): sends to `addr` then use this
    /// connection. Ignored unless aliases are accepted. False if not
    /// recorded.
    pub fn alias(&mut self, id: u32, addr: SocketAddr) -> bool {
        if !self.accept_aliases {
            return false;
        }
        let Some(slot) = self.slots.get_mut(&id) else {
            return false;
        };
        if !slot.aliases.contains(&addr) {
            slot.aliases.push(addr);
        }
        self.by_alias.insert((slot.conn.info.proto, addr), id);
        true
    }

    /// The connection to send over: the one whose peer is `hint` if it is
    /// still open, else one whose peer or alias is `dest`; same protocol,
    /// never one being closed.
    pub fn find(&self, proto: Proto, dest: SocketAddr, hint: Option<SocketAddr>) -> Option<u32> {
        let usable = |id: &u32| self.slots.get(id).is_some_and(|s| !s.conn.is_closing());
        let by_hint = hint.and_then(|h| self.by_peer.get(&(proto, h)).copied());
        by_hint
            .filter(usable)
            .or_else(|| self.by_peer.get(&(proto, dest)).copied().filter(usable))
            .or_else(|| self.by_alias.get(&(proto, dest)).copied().filter(usable))
    }

    /// The connection to close to make room for a new one: the one idle
    /// the longest, preferring those with nothing queued (their close
    /// loses no message). Ones already closing go first: they are on
    /// their way out anyway.
    pub fn eviction_candidate(&self) -> Option<u32> {
        self.slots
            .iter()
            .min_by_key(|(_, s)| {
                (
                    !s.conn.is_closing(),
                    s.conn.queued_len() > 0,
                    s.conn.last_activity(),
                )
            })
            .map(|(id, _)| *id)
    }
}
