//! Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3 and
//! §7.5, RFC 5626 §3.5.1), without I/O: a reader reads straight into
//! [`Framer::buf_mut`], reports the count with [`Framer::filled`], then
//! takes frames from [`Framer::next`] until it returns `Ok(None)`.
//!
//! On a stream only Content-Length says where a message ends, so it is
//! mandatory here. The framer looks at nothing else but the start line,
//! to notice a lost boundary early; the message is parsed later by
//! `Msg::parse`.
//!
//! Memory is bounded by [`Limits`]: the buffer starts small and doubles up
//! to the message limit, never beyond, and a body is never buffered when
//! Content-Length already says it will not fit. The search for the end of
//! the header block resumes where it stopped, so bytes arriving one at a
//! time cost no rescanning.
//!
//! Every error loses the frame boundary: the framer is then poisoned (it
//! takes no more bytes and `next` says [`StreamError::Poisoned`]) and the
//! connection must be closed, after the reply the error implies.

use super::error::StreamError;
use super::hdr::HdrKind;
use super::parse::first_line;
use super::scan::{at, is_token, parse_u32, skip_token, trim};
use memchr::memchr;

/// Default cap on a header block: generous for Via and Record-Route
/// stacks, small enough that a peer that never ends its headers is cut off
/// early.
pub const DEFAULT_MAX_HEADER: usize = 16 * 1024;

/// Default cap on a whole message: SER's BUF_SIZE, the `max_len` a script
/// compares `msg:len` against.
pub const DEFAULT_MAX_MSG: usize = 65_535;

/// The smallest message cap honoured: a pending partial ping (three bytes)
/// must always leave room to read into.
const MIN_MSG: usize = 64;

/// The buffer a connection starts with; most messages fit.
const INITIAL_BUF: usize = 4096;

/// Below this much free space the buffer is compacted or grown before a
/// read, so reads do not shrink to a few bytes each.
const MIN_READ: usize = 1024;

/// RFC 5626 §3.5.1 keep-alive ping between messages.
const PING: &[u8] = b"\r\n\r\n";

/// How much one connection may buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest header block, start line through the empty line.
    pub max_header: usize,
    /// Longest message, header block plus Content-Length body bytes.
    pub max_msg: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header: DEFAULT_MAX_HEADER,
            max_msg: DEFAULT_MAX_MSG,
        }
    }
}

/// What [`Framer::next`] yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One complete message: the header block (`bytes[..header_len]`, up
    /// to and including the empty line) followed by exactly Content-Length
    /// body bytes. CRLFs before it are not included.
    Message { bytes: &'a [u8], header_len: usize },
    /// A CRLFCRLF keep-alive between messages (RFC 5626 §3.5.1): answer
    /// with a single CRLF.
    Ping,
}

/// What the framer waits for, with offsets relative to the first unframed
/// byte so that compacting the buffer changes nothing here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between messages: CRLFs, a ping, or the first byte of a message.
    Start,
    /// Inside a header block. Bytes before `scanned` hold no end of it;
    /// `first_line_ok` once the start line has been checked.
    Header { scanned: usize, first_line_ok: bool },
    /// Header block of `header_len` bytes seen; the message is `len` bytes.
    Body { header_len: usize, len: usize },
    /// An error was returned; nothing more is framed.
    Poisoned,
}

/// Frames one connection's byte stream into SIP messages and pings.
pub struct Framer {
    buf: Vec<u8>,
    /// First unframed byte.
    start: usize,
    /// End of the bytes received.
    end: usize,
    /// Length of the message last returned: it is borrowed by the caller
    /// until the next call, which drops it.
    consumed: usize,
    state: State,
    limits: Limits,
}

impl Framer {
    /// A framer for a new connection. `max_msg` is raised to a small floor
    /// (64) and `max_header` lowered to `max_msg`.
    pub fn new(limits: Limits) -> Framer {
        let max_msg = limits.max_msg.max(MIN_MSG);
        let max_header = limits.max_header.min(max_msg);
        Framer {
            buf: vec![0; INITIAL_BUF.min(max_msg)],
            start: 0,
            end: 0,
            consumed: 0,
            state: State::Start,
            limits: Limits {
                max_header,
                max_msg,
            },
        }
    }

    /// The limits in force (after the adjustments of [`Framer::new`]).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Free space to read into; report what was written with
    /// [`Framer::filled`]. Drain [`Framer::next`] first: then this is never
    /// empty, except once poisoned (an empty slice makes `read` return 0,
    /// which a reader must not take for the peer's EOF).
    pub fn buf_mut(&mut self) -> &mut [u8] {
        self.settle();
        if self.state == State::Poisoned {
            return &mut [];
        }
        self.make_room();
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// Marks the first `n` bytes of the slice [`Framer::buf_mut`] returned
    /// as received (clamped to its length).
    pub fn filled(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.buf.len());
    }

    /// Copies as much of `bytes` as fits and returns how many it took; for
    /// callers that already hold the bytes elsewhere (TLS records, tests).
    /// Drain [`Framer::next`] and push the rest when it took fewer.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let dst = self.buf_mut();
        let n = dst.len().min(bytes.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), bytes.get(..n)) {
            d.copy_from_slice(s);
        }
        self.filled(n);
        n
    }

    /// Bytes received but not yet returned in a frame: non-zero at EOF
    /// means the peer closed in the middle of a message (or after a lone
    /// CRLF, which could still have become a ping).
    pub fn pending(&self) -> usize {
        self.end.saturating_sub(self.start + self.consumed)
    }

    /// Whether an error has been returned (the connection must be closed).
    pub fn is_poisoned(&self) -> bool {
        self.state == State::Poisoned
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    /// A returned message stays valid until the next call on the framer.
    /// After an `Err` the framer is poisoned for good.
    #[allow(clippy::should_implement_trait)] // lends from self: no Iterator
    pub fn next(&mut self) -> Result<Option<Frame<'_>>, StreamError> {
        self.settle();
        loop {
            let avail = self.buf.get(self.start..self.end).unwrap_or(&[]);
            match self.state {
                State::Poisoned => return Err(StreamError::Poisoned),
                State::Start => {
                    let Some(&c) = avail.first() else {
                        return Ok(None);
                    };
                    if c == b'\r' || c == b'\n' {
                        if avail.starts_with(PING) {
                            self.start += PING.len();
                            return Ok(Some(Frame::Ping));
                        }
                        if PING.starts_with(avail) {
                            // "\r\n" may be a lone CRLF or half a ping
                            return Ok(None);
                        }
                        // RFC 3261 §7.5: line ends before a start line are
                        // ignored; stray CRs and LFs go the same way, as in
                        // `Msg::parse`.
                        self.start += 1;
                        continue;
                    }
                    if !is_token(c) {
                        // not a method nor "SIP/": binary, TLS on a TCP
                        // port, or the tail of an undersized body
                        return fail(&mut self.state, StreamError::BadStartLine);
                    }
                    self.state = State::Header {
                        scanned: 0,
                        first_line_ok: false,
                    };
                }
                State::Header {
                    scanned,
                    first_line_ok,
                } => match find_header_end(avail, self.limits.max_header, scanned, first_line_ok) {
                    Scan::More {
                        scanned,
                        first_line_ok,
                    } => {
                        self.state = State::Header {
                            scanned,
                            first_line_ok,
                        };
                        return Ok(None);
                    }
                    Scan::Fail(e) => return fail(&mut self.state, e),
                    Scan::End(header_len) => {
                        let header = avail.get(..header_len).unwrap_or(avail);
                        let cl = match content_length(header) {
                            Ok(cl) => cl,
                            Err(ClError::Missing) => {
                                let header = header.to_vec();
                                return fail(
                                    &mut self.state,
                                    StreamError::MissingContentLength { header },
                                );
                            }
                            Err(ClError::Bad) => {
                                let header = header.to_vec();
                                return fail(
                                    &mut self.state,
                                    StreamError::BadContentLength { header },
                                );
                            }
                        };
                        let len = header_len as u64 + u64::from(cl);
                        let limit = self.limits.max_msg;
                        match usize::try_from(len) {
                            Ok(len) if len <= limit => {
                                self.state = State::Body { header_len, len };
                            }
                            _ => {
                                let header = header.to_vec();
                                return fail(
                                    &mut self.state,
                                    StreamError::MessageTooLarge { header, len, limit },
                                );
                            }
                        }
                    }
                },
                State::Body { header_len, len } => {
                    let Some(bytes) = avail.get(..len) else {
                        return Ok(None);
                    };
                    self.state = State::Start;
                    self.consumed = len;
                    return Ok(Some(Frame::Message { bytes, header_len }));
                }
            }
        }
    }

    /// Drops the message the caller was lent by the previous `next`, and
    /// the whole buffer once poisoned: nothing in it will be framed.
    fn settle(&mut self) {
        self.start = (self.start + self.consumed).min(self.end);
        self.consumed = 0;
        if self.state == State::Poisoned && !self.buf.is_empty() {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes at least `MIN_READ` bytes free after `end` when the limit
    /// allows, else as many as it allows.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len().saturating_sub(self.end) >= MIN_READ {
            return;
        }
        if self.start > 0 && self.start <= self.end {
            // With `next` drained before each read, what moves is at most
            // one partial message, which then stays at the front until it
            // is complete: no byte is moved twice.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let cap = self.buf.len();
        if cap.saturating_sub(self.end) < MIN_READ && cap < self.limits.max_msg {
            self.buf
                .resize(cap.saturating_mul(2).min(self.limits.max_msg), 0);
        }
    }
}

/// Poisons the framer with `e`. A free function over the state alone, as
/// `next` still borrows the buffer where it fails.
fn fail<T>(state: &mut State, e: StreamError) -> Result<T, StreamError> {
    *state = State::Poisoned;
    Err(e)
}

/// Progress of the search for the empty line that ends a header block.
enum Scan {
    /// Not found in the bytes so far; resume with these.
    More {
        scanned: usize,
        first_line_ok: bool,
    },
    /// The header block is this long, empty line included.
    End(usize),
    Fail(StreamError),
}

/// Looks for the end of the header block in `avail` from `scanned` on,
/// checking the start line once it is complete. Only the first
/// `max_header` bytes are searched: a block that does not end there is
/// refused, whatever comes later.
fn find_header_end(
    avail: &[u8],
    max_header: usize,
    mut scanned: usize,
    mut first_line_ok: bool,
) -> Scan {
    let w = avail.get(..max_header).unwrap_or(avail);
    let more = |scanned, first_line_ok| {
        if w.len() >= max_header {
            Scan::Fail(StreamError::HeaderTooLarge { limit: max_header })
        } else {
            Scan::More {
                scanned,
                first_line_ok,
            }
        }
    };
    loop {
        let Some(lf) = w
            .get(scanned..)
            .and_then(|r| memchr(b'\n', r))
            .map(|i| scanned + i)
        else {
            return more(w.len(), first_line_ok);
        };
        if !first_line_ok {
            let fe = if lf > 0 && at(w, lf - 1) == b'\r' {
                lf - 1
            } else {
                lf
            };
            if first_line(w, 0, fe).is_err() {
                return Scan::Fail(StreamError::BadStartLine);
            }
            first_line_ok = true;
        }
        // An empty line is LF followed by LF or CRLF; bare LF line ends are
        // accepted as `Msg::parse` accepts them.
        match (w.get(lf + 1), w.get(lf + 2)) {
            (Some(b'\n'), _) => return Scan::End(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Scan::End(lf + 3),
            (None, _) | (Some(b'\r'), None) => return more(lf, first_line_ok),
            _ => scanned = lf + 1,
        }
    }
}

/// Why a header block gives no message length.
enum ClError {
    Missing,
    Bad,
}

/// The Content-Length of a complete header block: full or compact name in
/// any case, blanks around the colon and the value. Several equal values
/// pass (the parser judges duplicates later); a folded one is refused
/// rather than read in part.
fn content_length(h: &[u8]) -> Result<u32, ClError> {
    let mut found: Option<u32> = None;
    let mut in_cl = false;
    // the start line cannot hold a header
    let mut pos = memchr(b'\n', h).map_or(h.len(), |i| i + 1);
    while pos < h.len() {
        let le = h
            .get(pos..)
            .and_then(|r| memchr(b'\n', r))
            .map_or(h.len(), |i| pos + i);
        let line = h.get(pos..le).unwrap_or(&[]);
        pos = le + 1;
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if in_cl {
                return Err(ClError::Bad);
            }
            continue;
        }
        in_cl = false;
        let ne = skip_token(line, 0, line.len());
        let mut c = ne;
        while matches!(at(line, c), b' ' | b'\t') {
            c += 1;
        }
        // lines that are no header are left for the parser to refuse
        if ne == 0 || at(line, c) != b':' {
            continue;
        }
        if HdrKind::from_name(line.get(..ne).unwrap_or(&[])) != HdrKind::ContentLength {
            continue;
        }
        let (vs, ve) = trim(line, c + 1, line.len());
        let n = parse_u32(line.get(vs..ve).unwrap_or(&[])).ok_or(ClError::Bad)?;
        if found.is_some_and(|f| f != n) {
            return Err(ClError::Bad);
        }
        found = Some(n);
        in_cl = true;
    }
    found.ok_or(ClError::Missing)
}

/// One framing outcome, owned: what [`frame_chunks`] collects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framed {
    Message {
        bytes: Vec<u8>,
        header_len: usize,
    },
    Ping,
    Error(StreamError),
    /// The framer took no byte although every frame had been drained: a
    /// framer bug, which would stall a reader.
    Stalled,
}

/// Feeds `chunks` in order, as successive reads would deliver them, and
/// collects every frame, up to and including the first error. Bytes of an
/// incomplete last message are left out.
pub fn frame_chunks<'a>(limits: Limits, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Framed> {
    let mut f = Framer::new(limits);
    let mut out = Vec::new();
    for mut chunk in chunks {
        while !chunk.is_empty() {
            let n = f.push(chunk);
            chunk = chunk.get(n..).unwrap_or(&[]);
            loop {
                match f.next() {
                    Ok(None) => break,
                    Ok(Some(Frame::Ping)) => out.push(Framed::Ping),
                    Ok(Some(Frame::Message { bytes, header_len })) => out.push(Framed::Message {
                        bytes: bytes.to_vec(),
                        header_len,
                    }),
                    Err(e) => {
                        out.push(Framed::Error(e));
                        return out;
                    }
                }
            }
            if n == 0 {
                out.push(Framed::Stalled);
                return out;
            }
        }
    }
    out
}

/// Entry point for a fuzz target: `data[0]` and `data[1]` pick small
/// limits, `data[2]` seeds the chunking of the rest. True when the rest
/// frames identically whole and in chunks, and every message respects the
/// limits and its own Content-Length. Never panics: the target asserts.
pub fn fuzz_feed(data: &[u8]) -> bool {
    let [a, b, seed, rest @ ..] = data else {
        return true;
    };
    let limits = Framer::new(Limits {
        max_header: 16 + usize::from(*a) * 64,
        max_msg: 64 + usize::from(*b) * 256,
    })
    .limits();
    let whole = frame_chunks(limits, [rest]);
    // splitmix64: chunk lengths mostly tiny, sometimes large
    let mut state = u64::from(*seed);
    let mut left = rest;
    let chunks = std::iter::from_fn(|| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let n = if z % 8 == 0 {
            1 + (z >> 8) % 4096
        } else {
            1 + (z >> 32) % 16
        };
        let n = usize::try_from(n).unwrap_or(1);
        let (c, r) = left.split_at(n.min(left.len()));
        left = r;
        (!c.is_empty()).then_some(c)
    });
    let chunked = frame_chunks(limits, chunks);
    whole == chunked && whole.iter().all(|f| respects(f, limits))
}

/// Whether one outcome of [`fuzz_feed`] is within what the framer promises.
fn respects(f: &Framed, limits: Limits) -> bool {
    match f {
        Framed::Ping | Framed::Error(_) => true,
        Framed::Stalled => false,
        Framed::Message { bytes, header_len } => {
            let Some(header) = bytes.get(..*header_len) else {
                return false;
            };
            bytes.len() <= limits.max_msg
                && header.len() <= limits.max_header
                && header.first().is_some_and(|&c| is_token(c))
                && (header.ends_with(b"\n\n") || header.ends_with(b"\n\r\n"))
                && content_length(header).is_ok_and(|cl| cl as usize == bytes.len() - header_len)
        }
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
