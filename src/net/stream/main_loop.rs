//! The TCP main process's event loop: the thin mio glue around
//! [`Conn`] (one connection's rules) and [`ConnTable`] (ids, lookup,
//! eviction, counters).
//!
//! One thread, one `Poll`, everything non-blocking and edge-triggered:
//! listeners are accepted until they would block; a connection is read
//! until it would block (or its read budget is spent, then it is served
//! again before the next wait, so one busy peer cannot starve the
//! others) and written whenever it has something queued; the link from
//! the other processes ([`SendReq`]) is drained the same way; each framed
//! message goes to the reader [`Channels::reader_of`] names, through a
//! bounded backlog when that reader is behind. Timers are swept at least
//! every [`TICK`], which is also how often `stop` is asked.
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixDatagram};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::conn::{CloseReason, Conn, ConnInfo, QueueError, Timeouts};
use super::deliver::Deliverer;
use super::ipc::{
    Channels, ConnRow, Delivery, DirectTag, FdNote, LinkMsg, SendReq, MAX_DATAGRAM, MAX_PAYLOAD,
    ROWS_PER_DATAGRAM,
};
use super::slots::{Held, Slots, BROKEN, OPEN, QUEUED};
use super::table::{ConnTable, Slot, StreamStats, MAX_CONN_ID};
use crate::net::tls::{ServerName, TlsContext};
use crate::net::Proto;

/// The longest the loop waits before checking `stop` and the timers.
pub const TICK: Duration = Duration::from_millis(100);

/// Bytes read from one connection per readiness event before the others
/// get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Send requests taken from the link per pass of the loop.
const LINK_BUDGET: usize = 256;
/// One read from a connection.
const READ_CHUNK: usize = 64 * 1024;

/// Requests remembered per connection being established (see
/// `Slot::unsent`); more are sent all the same, unanswered if it fails.
const MAX_UNSENT: usize = 64;

/// How soon messages waiting for a reader that was full are tried again.
const BACKLOG_RETRY: Duration = Duration::from_millis(1);
/// The longest retry interval: a reader that takes nothing for a while
/// (stopped, or stuck in a script) is retried ever less often, so that
/// its backlog does not keep the main process polling every millisecond
/// (about 900 wakeups a second, measured) while it is stalled.
const BACKLOG_RETRY_MAX: Duration = Duration::from_millis(64);

/// The next retry interval: back to the shortest as soon as a reader
/// took something, doubled (up to the longest) while none did.
fn next_backlog_retry(prev: Duration, moved: bool) -> Duration {
    if moved {
        BACKLOG_RETRY
    } else {
        (prev * 2).min(BACKLOG_RETRY_MAX)
    }
}

/// Processes that may register a channel for sockets ([`FdNote`]).
const MAX_CHANNELS: usize = 1024;

/// Tokens above every connection id.
const LINK: Token = Token(MAX_CONN_ID as usize + 1);
const LISTENER_BASE: usize = MAX_CONN_ID as usize + 2;

/// The TCP/TLS settings the loop runs with (SER's `tcp_*` parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCfg {
    /// `tcp_connection_lifetime`: a connection with no traffic for this
    /// long is closed.
    pub connection_lifetime: Duration,
    /// `tcp_connect_timeout`: an outgoing connect not done by then fails.
    pub connect_timeout: Duration,
    /// `tcp_send_timeout`: a queue to a peer that does not move for this
    /// long closes the connection (TLS uses `tls_send_timeout`).
    pub send_timeout: Duration,
    /// `tcp_max_connections`: past it the longest idle connection is
    /// closed for the new one (0 is taken as 1).
    pub max_connections: usize,
    /// Largest message the framer takes (at most [`MAX_PAYLOAD`], what a
    /// reader's datagram carries).
    pub max_msg: usize,
    /// A message begun and not finished for this long closes the
    /// connection: a peer trickling bytes holds no buffer for ever.
    pub incomplete_timeout: Duration,
    /// `tcp_accept_aliases`: record extra addresses a connection's peer
    /// is known by ([`ConnTable::alias`]).
    pub accept_aliases: bool,
}

impl Default for StreamCfg {
    /// SER 0.9's defaults where it had the parameter.
    fn default() -> Self {
        StreamCfg {
            connection_lifetime: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            max_connections: 2048,
            max_msg: MAX_PAYLOAD,
            incomplete_timeout: Duration::from_secs(30),
            accept_aliases: false,
        }
    }
}

/// A listening socket, opened by the supervisor before the fork.
#[derive(Debug)]
pub struct Listener {
    /// Index in the server's socket table ([`SendReq::sock`]).
    pub sock: u8,
    /// Tcp or Tls.
    pub proto: Proto,
    /// Bound and listening.
    pub listener: std::net::TcpListener,
    pub local: SocketAddr,
}

/// Why the loop could not run.
#[derive(Debug, thiserror::Error)]
pub enum MainLoopError {
    /// The poller could not be made or failed while waiting.
    #[error("tcp main: poll: {0}")]
    Poll(io::Error),
    /// A socket could not be made non-blocking or registered.
    #[error("tcp main: cannot watch {what}: {source}")]
    Register { what: String, source: io::Error },
    /// A `tls:` listener and no TLS context to accept with.
    #[error("tcp main: TLS listener {local} but no TLS configuration")]
    TlsWithoutContext { local: SocketAddr },
    /// A listener that is neither TCP nor TLS.
    #[error("tcp main: listener {local} is {proto}, not tcp or tls")]
    NotStream { local: SocketAddr, proto: Proto },
}

/// What the loop asks its caller and tells it.
pub trait Observer {
    /// True when the loop must return (asked at least every [`TICK`]).
    fn stop(&mut self) -> bool;
    /// True when the counters should be logged (one info line).
    fn dump_requested(&mut self) -> bool {
        false
    }
    /// The counters, whenever they changed.
    fn stats(&mut self, _stats: &StreamStats) {}
}

struct StopOnly<'a>(&'a dyn Fn() -> bool);

impl Observer for StopOnly<'_> {
    fn stop(&mut self) -> bool {
        (self.0)()
    }
}

/// Runs the TCP main process until `stop()` turns true.
pub fn run(
    cfg: &StreamCfg,
    listeners: Vec<Listener>,
    ch: &Channels,
    tls: Option<&TlsContext>,
    stop: &dyn Fn() -> bool,
) -> Result<(), MainLoopError> {
    run_observed(cfg, listeners, ch, tls, None, &mut StopOnly(stop))
}

/// [`run`] with an [`Observer`] for the counters and the dump, and the
/// direct-write slots when other processes may write to connections.
pub fn run_observed(
    cfg: &StreamCfg,
    listeners: Vec<Listener>,
    ch: &Channels,
    tls: Option<&TlsContext>,
    slots: Option<Slots>,
    obs: &mut dyn Observer,
) -> Result<(), MainLoopError> {
    let mut l = Loop::new(cfg, listeners, ch, tls)?;
    l.slots = slots;
    let mut events = Events::with_capacity(1024);
    let mut last_stats = None;
    while !obs.stop() {
        // Every turn waits at most a TICK, below the heartbeat's period.
        crate::os::heartbeat::beat();
        l.turn(&mut events)?;
        if obs.dump_requested() {
            log::info!("tcp: {}", l.table.stats());
        }
        let s = l.table.stats();
        if last_stats != Some(s) {
            obs.stats(&s);
            last_stats = Some(s);
        }
    }
    l.close_all();
    obs.stats(&l.table.stats());
    Ok(())
}

struct Lst {
    sock: u8,
    proto: Proto,
    local: SocketAddr,
    inner: TcpListener,
    /// An accept failed for lack of resources: try again at the sweep
    /// (edge-triggered readiness will not say so again).
    retry: bool,
}

struct Loop<'a> {
    cfg: &'a StreamCfg,
    ch: &'a Channels,
    tls: Option<&'a TlsContext>,
    poll: Poll,
    listeners: Vec<Lst>,
    /// A second handle on the link's reading end, registered with mio.
    link: UnixDatagram,
    table: ConnTable<TcpStream>,
    deliverer: Deliverer,
    /// How soon the backlog is tried again ([`next_backlog_retry`]).
    backlog_retry: Duration,
    /// Connections whose read budget ran out, to read again first.
    again: Vec<u32>,
    link_again: bool,
    next_sweep: Instant,
    scratch: Vec<u8>,
    dgram: Vec<u8>,
    max_msg: usize,
    /// Direct writes by other processes (plain TCP only).
    slots: Option<Slots>,
    /// Where each process wants sockets sent, by pid.
    chans: HashMap<u32, std::os::unix::net::UnixDatagram>,
}

fn register_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> MainLoopError {
    let what = what.into();
    move |source| MainLoopError::Register { what, source }
}

impl<'a> Loop<'a> {
    fn new(
        cfg: &'a StreamCfg,
        listeners: Vec<Listener>,
        ch: &'a Channels,
        tls: Option<&'a TlsContext>,
    ) -> Result<Self, MainLoopError> {
        let poll = Poll::new().map_err(MainLoopError::Poll)?;
        let reg = poll.registry();
        let mut lsts = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.into_iter().enumerate() {
            match l.proto {
                Proto::Tcp => {}
                Proto::Tls if tls.is_some() => {}
                Proto::Tls => return Err(MainLoopError::TlsWithoutContext { local: l.local }),
                Proto::Udp => {
                    return Err(MainLoopError::NotStream {
                        local: l.local,
                        proto: l.proto,
                    })
                }
            }
            let what = format!("listener {}", l.local);
            l.listener
                .set_nonblocking(true)
                .map_err(register_err(what.clone()))?;
            let mut inner = TcpListener::from_std(l.listener);
            reg.register(&mut inner, Token(LISTENER_BASE + i), Interest::READABLE)
                .map_err(register_err(what))?;
            lsts.push(Lst {
                sock: l.sock,
                proto: l.proto,
                local: l.local,
                inner,
                retry: false,
            });
        }
        let link_std = ch.to_main_rx.try_clone().map_err(register_err("link"))?;
        link_std
            .set_nonblocking(true)
            .map_err(register_err("link"))?;
        let mut link = UnixDatagram::from_std(link_std);
        reg.register(&mut link, LINK, Interest::READABLE)
            .map_err(register_err("link"))?;
        Ok(Loop {
            cfg,
            ch,
            tls,
            poll,
            listeners: lsts,
            link,
            table: ConnTable::new(cfg.accept_aliases),
            deliverer: Deliverer::new(ch.readers.len()),
            backlog_retry: BACKLOG_RETRY,
            again: Vec::new(),
            link_again: false,
            next_sweep: Instant::now(),
            scratch: vec![0; READ_CHUNK],
            dgram: vec![0; MAX_DATAGRAM],
            max_msg: cfg.max_msg.min(MAX_PAYLOAD),
            slots: None,
            chans: HashMap::new(),
        })
    }

    /// One wait for readiness and everything it brings.
    fn turn(&mut self, events: &mut Events) -> Result<(), MainLoopError> {
        let now = Instant::now();
        let timeout = if !self.again.is_empty() || self.link_again {
            Duration::ZERO
        } else if self.deliverer.has_backlog() {
            // A reader is behind: try it again soon. Not by watching its
            // socket for room, which would wake the loop at every message
            // any reader takes.
            self.backlog_retry
        } else {
            self.next_sweep.saturating_duration_since(now).min(TICK)
        };
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(MainLoopError::Poll(e)),
        }
        let now = Instant::now();
        for ev in events.iter() {
            let Token(t) = ev.token();
            if ev.token() == LINK {
                self.serve_link(now);
            } else if t >= LISTENER_BASE {
                self.accept(t - LISTENER_BASE, now);
            } else if let Ok(id) = u32::try_from(t) {
                let ends = ev.is_read_closed() || ev.is_error();
                let readable = ev.is_readable() || ends;
                let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
                self.conn_event(id, readable, writable, !ends, now);
            }
        }
        for id in std::mem::take(&mut self.again) {
            self.conn_event(id, true, false, false, now);
        }
        if self.link_again {
            self.serve_link(now);
        }
        if self.deliverer.has_backlog() {
            let moved = self
                .deliverer
                .flush(self.ch.readers.iter().map(|(_, tx)| tx));
            self.backlog_retry = next_backlog_retry(self.backlog_retry, moved);
        }
        if now >= self.next_sweep {
            self.sweep(now);
        }
        Ok(())
    }

    /// Closes what timed out; retries listeners that failed.
    fn sweep(&mut self, now: Instant) {
        let mut next = now + TICK;
        let mut expired = Vec::new();
        for (id, slot) in self.table.iter_mut() {
            if let (Some(slots), true) = (self.slots, slot.direct) {
                let w = slots.writes(*id);
                if w != slot.writes_seen {
                    slot.writes_seen = w;
                    slot.conn.touch(now);
                }
                if slots.is_broken(*id) {
                    expired.push((
                        *id,
                        CloseReason::Io(io::Error::other(
                            "a message written directly by another process was cut short",
                        )),
                    ));
                    continue;
                }
            }
            match slot.conn.handle_timeout(now) {
                Some(why) => expired.push((*id, why)),
                None => {
                    if let Some(d) = slot.conn.deadline() {
                        next = next.min(d);
                    }
                }
            }
        }
        for (id, why) in expired {
            self.close(id, why);
        }
        for i in 0..self.listeners.len() {
            if self.listeners.get(i).is_some_and(|l| l.retry) {
                self.accept(i, now);
            }
        }
        self.next_sweep = next;
    }

    fn accept(&mut self, i: usize, now: Instant) {
        loop {
            let Some(l) = self.listeners.get_mut(i) else {
                return;
            };
            let (stream, peer) = match l.inner.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    l.retry = false;
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // EMFILE and friends: the connection waits in the
                    // kernel's queue until the sweep tries again.
                    crate::warn_limited!("tcp: accept on {}: {e}", l.local);
                    l.retry = true;
                    return;
                }
            };
            let (sock, proto, local) = (l.sock, l.proto, l.local);
            self.admit(stream, peer, sock, proto, local, now);
        }
    }

    fn admit(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        sock: u8,
        proto: Proto,
        local: SocketAddr,
        now: Instant,
    ) {
        self.make_room();
        let Some(id) = self.table.next_id() else {
            return;
        };
        let session = match (proto, self.tls) {
            (Proto::Tls, Some(ctx)) => match ctx.accept(now) {
                Ok(s) => Some(s),
                Err(e) => {
                    crate::warn_limited!("tls: connection from {peer} on {local} refused: {e}");
                    return;
                }
            },
            _ => None,
        };
        let _ = stream.set_nodelay(true);
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(id as usize), Interest::READABLE)
        {
            crate::warn_limited!("tcp: connection from {peer} on {local} dropped: {e}");
            return;
        }
        let info = ConnInfo {
            id,
            peer,
            sock,
            proto,
            outbound: false,
        };
        let conn = Conn::new(info, session, self.max_msg, self.timeouts(proto), None, now);
        log::debug!("tcp: connection {id} from {peer} on {local} ({proto})");
        self.table.insert(conn, stream);
        self.claim(id, proto, OPEN);
    }

    /// Gives a plain TCP connection a direct-write slot if one is free.
    fn claim(&mut self, id: u32, proto: Proto, flags: u32) {
        let (Some(slots), Proto::Tcp) = (self.slots, proto) else {
            return;
        };
        if let Some(slot) = self.table.get_mut(id) {
            slot.direct = slots.claim(id, flags);
            slot.writes_seen = slots.writes(id);
        }
    }

    fn timeouts(&self, proto: Proto) -> Timeouts {
        let send = match (proto, self.tls) {
            (Proto::Tls, Some(ctx)) => ctx.send_timeout(),
            _ => self.cfg.send_timeout,
        };
        Timeouts {
            idle: self.cfg.connection_lifetime,
            send,
            incomplete: self.cfg.incomplete_timeout,
        }
    }

    /// Under `max_connections`, closes connections until one more fits.
    fn make_room(&mut self) {
        let max = self.cfg.max_connections.max(1);
        while self.table.len() >= max {
            let Some(victim) = self.table.eviction_candidate() else {
                return;
            };
            self.close(victim, CloseReason::Evicted);
        }
    }

    /// Readiness on a connection.
    fn conn_event(
        &mut self,
        id: u32,
        readable: bool,
        writable: bool,
        short_ok: bool,
        now: Instant,
    ) {
        let Some(slot) = self.table.get_mut(id) else {
            return;
        };
        if slot.conn.is_connecting() {
            if !(readable || writable) {
                return;
            }
            match connect_result(&slot.io) {
                ConnectState::Pending => return,
                ConnectState::Failed(e) => return self.close(id, CloseReason::ConnectFailed(e)),
                ConnectState::Done => {
                    slot.conn.on_connected(now);
                    log::debug!(
                        "tcp: connection {id} to {} established",
                        slot.conn.info.peer
                    );
                    self.table.count_connected();
                }
            }
        }
        if readable {
            match self.read(id, short_ok, now) {
                ReadOutcome::Done => {}
                ReadOutcome::Again => self.again.push(id),
                ReadOutcome::Close(why) => return self.close(id, why),
            }
        }
        self.flush(id, now);
    }

    /// Reads until the socket would block or the budget is spent,
    /// delivering what the connection frames. With `short_ok`, a read
    /// that did not fill the buffer ends it: the socket was empty then,
    /// and edge-triggered readiness reports any byte that comes later
    /// (one `recv` per message less). Not when the peer's end of stream
    /// or an error was reported: that is only seen by reading on.
    fn read(&mut self, id: u32, short_ok: bool, now: Instant) -> ReadOutcome {
        let Loop {
            table,
            deliverer,
            ch,
            scratch,
            ..
        } = self;
        let Some(slot) = table.get_mut(id) else {
            return ReadOutcome::Done;
        };
        let mut sink = |info: &ConnInfo, bytes: &[u8]| deliver(deliverer, ch, info, bytes);
        let mut budget = READ_BUDGET;
        loop {
            if budget == 0 {
                return ReadOutcome::Again;
            }
            match slot.io.read(scratch) {
                Ok(0) => return ReadOutcome::Close(slot.conn.on_eof(now, &mut sink)),
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    let data = scratch.get(..n).unwrap_or(&[]);
                    if let Err(why) = slot.conn.on_data(data, now, &mut sink) {
                        // Best effort: a TLS alert tells the peer why.
                        let _ = write_out(slot, now);
                        return ReadOutcome::Close(why);
                    }
                    if short_ok && n < scratch.len() {
                        return ReadOutcome::Done;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadOutcome::Done,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return ReadOutcome::Close(CloseReason::Io(e)),
            }
        }
    }

    /// Writes what the connection has queued, as far as the socket takes.
    fn flush(&mut self, id: u32, now: Instant) {
        // The slot is locked only when the flags may change: nothing
        // queued and nothing new to say leaves it to the writers.
        let quiet = self.table.get(id).is_some_and(|s| {
            !s.direct || (s.conn.queued_len() == 0 && flags_for(&s.conn) == Some(s.synced))
        });
        let held = if quiet { None } else { self.hold(id) };
        self.flush_holding(id, held, now);
    }

    /// The direct-write slot of `id`, locked, if it has one: our writes
    /// and the flags change under it.
    fn hold(&self, id: u32) -> Option<Held<'static>> {
        let slots = self.slots?;
        self.table.get(id).filter(|s| s.direct)?;
        slots.hold(id)
    }

    /// [`Loop::flush`] with the slot already held.
    fn flush_holding(&mut self, id: u32, held: Option<Held<'static>>, now: Instant) {
        let Some(slot) = self.table.get_mut(id) else {
            return;
        };
        let r = write_out(slot, now);
        if !slot.unsent.is_empty() && established(&slot.conn) {
            slot.unsent = Vec::new();
        }
        if let Some(h) = held {
            match flags_for(&slot.conn) {
                Some(f) => {
                    h.set_flags(f | (h.flags() & BROKEN));
                    slot.synced = f;
                }
                None => {
                    h.release();
                    slot.direct = false;
                }
            }
        }
        if let Err(why) = r {
            return self.close(id, why);
        }
        let want = slot.conn.is_connecting() || slot.conn.queued_len() > 0;
        if want != slot.want_write {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            match self
                .poll
                .registry()
                .reregister(&mut slot.io, Token(id as usize), interest)
            {
                Ok(()) => slot.want_write = want,
                Err(e) => self.close(id, CloseReason::Io(e)),
            }
        }
    }

    /// Takes send requests off the link.
    fn serve_link(&mut self, now: Instant) {
        let mut dgram = std::mem::take(&mut self.dgram);
        self.link_again = true;
        for _ in 0..LINK_BUDGET {
            match crate::os::recv_with_fd(self.link.as_fd(), &mut dgram) {
                Ok((n, fd)) => match LinkMsg::decode(dgram.get(..n).unwrap_or(&[]), fd) {
                    Ok(LinkMsg::Send(req, bytes)) => self.send_req(req, bytes, now),
                    Ok(LinkMsg::Register { pid, chan }) => self.register(pid, chan),
                    Ok(LinkMsg::List { reply }) => self.list(&reply, now),
                    Ok(LinkMsg::Alias { proto, peer, alias }) => {
                        if let Some(id) = self.table.find(proto, peer, None) {
                            if self.table.alias(id, alias) {
                                log::debug!("{proto}: connection {id} from {peer} is also {alias}");
                            }
                        }
                    }
                    Err(e) => crate::warn_limited!("tcp: send request refused: {e}"),
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.link_again = false;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    crate::warn_limited!("tcp: reading the send link: {e}");
                    self.link_again = false;
                    break;
                }
            }
        }
        self.dgram = dgram;
    }

    /// Every connection, as rows on `reply` (`core.tcp_list`); never
    /// waits: an asker too slow to read gets a short list and says so.
    fn list(&self, reply: &std::os::fd::OwnedFd, now: Instant) {
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut rows: Vec<ConnRow> = self
            .table
            .iter()
            .map(|(id, s)| ConnRow {
                id: *id,
                proto: s.conn.info.proto,
                outbound: s.conn.info.outbound,
                local: self
                    .listeners
                    .iter()
                    .find(|l| l.sock == s.conn.info.sock)
                    .map_or(unspecified, |l| l.local),
                peer: s.conn.info.peer,
                age_s: secs(now.saturating_duration_since(s.opened)),
                idle_s: secs(now.saturating_duration_since(s.conn.last_activity())),
                queued: u32::try_from(s.conn.queued_len()).unwrap_or(u32::MAX),
                aliases: u16::try_from(s.aliases().len()).unwrap_or(u16::MAX),
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        let mut chunks = rows.chunks(ROWS_PER_DATAGRAM).peekable();
        if chunks.peek().is_none() {
            let _ = crate::os::send_with_fd(reply.as_fd(), &[&ConnRow::encode(&[], true)], None);
            return;
        }
        while let Some(c) = chunks.next() {
            let d = ConnRow::encode(c, chunks.peek().is_none());
            if crate::os::send_with_fd(reply.as_fd(), &[&d], None).is_err() {
                return;
            }
        }
    }

    /// Process `pid` takes sockets on `chan` from now on.
    fn register(&mut self, pid: u32, chan: std::os::fd::OwnedFd) {
        if self.chans.len() >= MAX_CHANNELS && !self.chans.contains_key(&pid) {
            // Channels of processes gone (a failed send removes them)
            // make room; if none went, this process writes via the link.
            crate::warn_limited!("tcp: {MAX_CHANNELS} processes take direct writes: {pid} refused");
            return;
        }
        self.chans.insert(pid, chan.into());
    }

    /// Sends the socket of `id` to process `pid` (a [`DirectTag::WantFd`]).
    fn hand_out(&mut self, id: u32, pid: u32, req: &SendReq) {
        let Some(slot) = self.table.get_mut(id).filter(|s| s.direct) else {
            return;
        };
        let Some(chan) = self.chans.get(&pid) else {
            return;
        };
        let peer = slot.conn.info.peer;
        let note = FdNote {
            conn: id,
            peer,
            alias: (req.dest != peer && req.hint != Some(peer)).then_some(req.dest),
        };
        match crate::os::send_with_fd(chan.as_fd(), &[&note.encode()], Some(slot.io.as_fd())) {
            Ok(()) => slot.shared = true,
            // Full: it will ask again.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                // The process is gone.
                self.chans.remove(&pid);
            }
        }
    }

    fn send_req(&mut self, req: SendReq, bytes: &[u8], now: Instant) {
        // A message counted against a connection's slot is queued under
        // the slot's lock, and the count drops with it.
        let counted = req.direct.counted_on();
        let mut held = counted.and_then(|c| self.hold(c));
        let rest_only = matches!(req.direct, DirectTag::Rest(_));
        let own = counted.filter(|c| self.table.get(*c).is_some_and(|s| !s.conn.is_closing()));
        if rest_only && own.is_none() {
            // The start went out on a connection now gone: the rest is
            // worth nothing elsewhere.
            if let Some(h) = held {
                h.sub_pending();
            }
            return;
        }
        if !matches!(req.proto, Proto::Tcp | Proto::Tls) {
            if let Some(h) = held {
                h.sub_pending();
            }
            crate::warn_limited!(
                "tcp: send request for {} to {} refused",
                req.proto,
                req.dest
            );
            return;
        }
        if own.is_none() {
            // Not for its own connection after all: the count drops now.
            if let Some(h) = held.take() {
                h.sub_pending();
            }
        }
        let found = own.or_else(|| self.table.find(req.proto, req.dest, req.hint));
        let id = match found {
            Some(id) => id,
            None => match self.connect(&req, now) {
                Some(id) => id,
                None => return,
            },
        };
        let Some(slot) = self.table.get_mut(id) else {
            return;
        };
        let queued = slot.conn.queue(bytes, now);
        if let Some(h) = &held {
            h.sub_pending();
        }
        if queued.is_ok()
            && slot.conn.info.outbound
            && !established(&slot.conn)
            && slot.unsent.len() < MAX_UNSENT
        {
            slot.unsent.push(bytes.to_vec());
        }
        if queued.is_err() {
            // Unlocked before any close, which takes the slot again.
            drop(held.take());
        }
        match queued {
            Ok(()) => {
                let held = held.or_else(|| self.hold(id));
                self.flush_holding(id, held, now);
                if let DirectTag::WantFd(pid) = req.direct {
                    self.hand_out(id, pid, &req);
                }
            }
            Err(QueueError::Tls(e)) if e.is_fatal() => {
                crate::warn_limited!("tls: message to {} dropped: {e}", req.dest);
                self.close(id, CloseReason::Tls(e));
            }
            Err(e) => {
                crate::warn_limited!(
                    "{}: message of {} bytes to {} dropped: {e}",
                    req.proto,
                    bytes.len(),
                    req.dest
                );
            }
        }
    }

    /// Starts a connection to `req.dest`; its id, or `None` (logged).
    fn connect(&mut self, req: &SendReq, now: Instant) -> Option<u32> {
        let session = match (req.proto, self.tls) {
            (Proto::Tls, None) => {
                crate::warn_limited!("tls: no TLS configuration: message to {} dropped", req.dest);
                return None;
            }
            (Proto::Tls, Some(ctx)) => match ctx.connect(ServerName::from(req.dest.ip()), now) {
                Ok(s) => Some(s),
                Err(e) => {
                    crate::warn_limited!("tls: connection to {} not started: {e}", req.dest);
                    return None;
                }
            },
            _ => None,
        };
        self.make_room();
        let id = self.table.next_id()?;
        let bind = self
            .listeners
            .iter()
            .find(|l| l.sock == req.sock)
            .map(|l| l.local.ip());
        let mut stream = match start_connect(req.dest, bind) {
            Ok(s) => s,
            Err(e) => {
                crate::warn_limited!("{}: connect to {} failed: {e}", req.proto, req.dest);
                self.table.count_failed_connect();
                return None;
            }
        };
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(id as usize),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            crate::warn_limited!("{}: connect to {} failed: {e}", req.proto, req.dest);
            self.table.count_failed_connect();
            return None;
        }
        let info = ConnInfo {
            id,
            peer: req.dest,
            sock: req.sock,
            proto: req.proto,
            outbound: true,
        };
        let timeouts = self.timeouts(req.proto);
        let conn = Conn::new(
            info,
            session,
            self.max_msg,
            timeouts,
            Some(self.cfg.connect_timeout),
            now,
        );
        log::debug!("tcp: connection {id} to {} started", req.dest);
        self.table.insert(conn, stream);
        // Not open for direct writes until connected (`sync_flags`).
        self.claim(id, req.proto, 0);
        Some(id)
    }

    fn close(&mut self, id: u32, why: CloseReason) {
        if let Some(h) = self.hold(id) {
            h.release();
        }
        let Some(mut slot) = self.table.remove(id, &why) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut slot.io);
        log_close(&slot.conn.info, &why);
        if !matches!(why, CloseReason::Shutdown) {
            self.answer_unsent(&slot.conn.info, std::mem::take(&mut slot.unsent), &why);
        }
        if slot.shared {
            // Other processes hold the socket too: closing ours alone
            // would leave the connection up. They fail their next write.
            let _ = slot.io.shutdown(Shutdown::Both);
        }
        // Dropping the stream closes the socket.
    }

    /// The requests of a connection that never got established, answered
    /// 503 as if by the peer: each transaction learns at once that its
    /// branch failed (and may try the next one) instead of waiting for
    /// its FR timer; an ACK or a reply is just lost, as it would be.
    fn answer_unsent(&mut self, info: &ConnInfo, unsent: Vec<Vec<u8>>, why: &CloseReason) {
        if unsent.is_empty() {
            return;
        }
        let reason = format!(
            "Service Unavailable ({} {} unreachable)",
            info.proto, info.peer
        );
        let tag = format!("{:x}.{:x}", std::process::id(), info.id);
        let mut n = 0;
        for m in unsent {
            if let Some(r) = crate::sip::salvage::service_unavailable(&m, reason.as_bytes(), &tag) {
                deliver(&mut self.deliverer, self.ch, info, &r);
                n += 1;
            }
        }
        if n > 0 {
            crate::log_limited!(
                log::Level::Info,
                "{}: {n} request(s) to {} answered 503 locally: {why}",
                info.proto,
                info.peer
            );
        }
    }

    fn close_all(&mut self) {
        for id in self.table.ids() {
            self.close(id, CloseReason::Shutdown);
        }
    }
}

enum ReadOutcome {
    Done,
    /// Budget spent: more may wait.
    Again,
    Close(CloseReason),
}

/// Hands one framed message to its connection's reader.
fn deliver(deliverer: &mut Deliverer, ch: &Channels, info: &ConnInfo, bytes: &[u8]) {
    let del = Delivery {
        proto: info.proto,
        sock: info.sock,
        conn: info.id,
        peer: info.peer,
    };
    let target = ch
        .reader_of(info.id)
        .and_then(|i| ch.readers.get(i).map(|(_, tx)| (i, tx)));
    match target {
        Some((i, tx)) => {
            deliverer.deliver(i, tx, &del, bytes);
        }
        None => crate::warn_limited!("tcp: no reader: message from {} dropped", info.peer),
    }
}

/// Connected, and past the TLS handshake if there is one: what is queued
/// now can reach the peer.
fn established(conn: &Conn) -> bool {
    !conn.is_connecting() && conn.tls().is_none_or(|s| !s.is_handshaking())
}

/// The slot's flags from the connection's state: open once connected,
/// queued while bytes wait; `None`: closing, the slot is given up.
fn flags_for(conn: &Conn) -> Option<u32> {
    if conn.is_closing() {
        return None;
    }
    let mut f = 0;
    if !conn.is_connecting() {
        f |= OPEN;
    }
    if conn.queued_len() > 0 {
        f |= QUEUED;
    }
    Some(f)
}

/// Writes until the queue is empty or the socket would block; then, for
/// a connection being closed, shuts our side.
fn write_out(slot: &mut Slot<TcpStream>, now: Instant) -> Result<(), CloseReason> {
    loop {
        let out = slot.conn.pending_out();
        if out.is_empty() {
            break;
        }
        match slot.io.write(out) {
            Ok(0) => return Err(CloseReason::Io(ErrorKind::WriteZero.into())),
            Ok(n) => slot.conn.wrote(n, now),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(CloseReason::Io(e)),
        }
    }
    if slot.conn.should_shut() {
        // The peer reads our reply, then its end of stream; the socket
        // stays open to drain what the peer still sends, so the close
        // later does not turn into a reset that could destroy the reply.
        let _ = slot.io.shutdown(Shutdown::Write);
        slot.conn.shut_done();
    }
    Ok(())
}

enum ConnectState {
    Pending,
    Done,
    Failed(io::Error),
}

/// Whether a non-blocking connect has finished (mio's recipe: an error
/// pending on the socket, or a peer address once connected).
fn connect_result(s: &TcpStream) -> ConnectState {
    match s.take_error() {
        Ok(Some(e)) | Err(e) => return ConnectState::Failed(e),
        Ok(None) => {}
    }
    match s.peer_addr() {
        Ok(_) => ConnectState::Done,
        Err(e) if e.kind() == ErrorKind::NotConnected => ConnectState::Pending,
        Err(e) => ConnectState::Failed(e),
    }
}

/// A non-blocking connect to `dest`, from `bind`'s IP (port 0) when it is
/// a specific address of the same family.
fn start_connect(dest: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(dest), Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    let _ = s.set_nodelay(true);
    if let Some(ip) = bind {
        if !ip.is_unspecified() && ip.is_ipv4() == dest.is_ipv4() {
            s.bind(&SocketAddr::new(ip, 0).into())?;
        }
    }
    match s.connect(&dest.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        // Interrupted, the connect goes on in the background.
        Err(e) if e.kind() == ErrorKind::Interrupted => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

/// The one log line of every close.
fn log_close(info: &ConnInfo, why: &CloseReason) {
    let dir = if info.outbound { "to" } else { "from" };
    let (id, peer, proto) = (info.id, info.peer, info.proto);
    match why {
        CloseReason::PeerClosed | CloseReason::Shutdown => {
            log::debug!("{proto}: connection {id} {dir} {peer} closed: {why}");
        }
        CloseReason::Idle(_) | CloseReason::Evicted | CloseReason::PeerClosedMidMessage { .. } => {
            crate::log_limited!(
                log::Level::Info,
                "{proto}: connection {id} {dir} {peer} closed: {why}"
            );
        }
        _ => crate::warn_limited!("{proto}: connection {id} {dir} {peer} closed: {why}"),
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn a_reader_taking_nothing_is_retried_ever_less_often_up_to_the_cap() {
        let mut r = BACKLOG_RETRY;
        let mut seen = vec![r];
        for _ in 0..10 {
            r = next_backlog_retry(r, false);
            seen.push(r);
        }
        let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [1, 2, 4, 8, 16, 32, 64, 64, 64, 64, 64]);
        // Below the heartbeat's period and the loop's tick: a reader that
        // runs again is fed within one of its beats.
        assert!(BACKLOG_RETRY_MAX <= TICK);
        assert_eq!(next_backlog_retry(BACKLOG_RETRY_MAX, true), BACKLOG_RETRY);
    }
}
