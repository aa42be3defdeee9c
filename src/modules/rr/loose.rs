//! `loose_route()` as a pure plan: which Route entries go, what becomes
//! the R-URI or the next hop, computed from the parsed message alone so
//! it is testable without sockets; [`RoutePlan::edit`] then turns the
//! removals into lumps that leave a well-formed message.
//!
//! RFC 3261 §16.4 (a strict previous hop put our URI in the R-URI),
//! §16.12 (loose routing), §16.6 step 6 / §12.2.1.1 (a strict next hop
//! gets the Route URI as R-URI and the old R-URI as the last Route).

use crate::sip::{parse_contacts, parse_uri, HdrKind, Lumps, Msg, ParseError, Span};

/// Why `loose_route()` could not process the Route set (the script sees
/// −1, as SER answers any parse failure with "not routed").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RrError {
    #[error("malformed Route header: {0}")]
    Route(ParseError),
    #[error("malformed URI in Route header")]
    RouteUri,
    #[error("malformed Request-URI")]
    Ruri,
    #[error("malformed To header: {0}")]
    To(ParseError),
}

/// One Route value, wherever it sits in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteEntry {
    /// Index of its header line in `Msg::headers()`.
    pub hdr: usize,
    /// The whole value (`<uri>;params` or an addr-spec), absolute.
    pub span: Span,
    /// The URI inside it, absolute.
    pub uri: Span,
    /// The URI carries `lr` (its next hop routes loosely).
    pub lr: bool,
}

/// What `loose_route()` reports to the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteStatus {
    /// The Route set decided the next hop (script returns 1).
    Routed,
    /// An initial request whose only Route was ours: it was removed and
    /// the R-URI decides, as if there had been none (script returns −1).
    Preloaded,
}

impl RouteStatus {
    pub fn code(self) -> i32 {
        match self {
            RouteStatus::Routed => 1,
            RouteStatus::Preloaded => -1,
        }
    }
}

/// The outcome of `loose_route()` before it touches the message context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// Every Route value of the message, in order.
    pub entries: Vec<RouteEntry>,
    /// Parallel to `entries`: the ones to delete.
    pub removed: Vec<bool>,
    pub new_ruri: Option<Vec<u8>>,
    pub dst_uri: Option<Vec<u8>>,
    /// A URI to add as a new last Route (the R-URI handed to a strict
    /// router).
    pub append: Option<Vec<u8>>,
    pub status: RouteStatus,
}

/// All Route values in order, across header lines and comma lists.
pub fn route_entries(msg: &Msg) -> Result<Vec<RouteEntry>, RrError> {
    let buf = msg.buf();
    let mut out = Vec::new();
    for (hdr, h) in msg.headers().iter().enumerate() {
        if h.kind != HdrKind::Route {
            continue;
        }
        // Route shares Contact's grammar (a name-addr list) minus `*`.
        let list = parse_contacts(buf, h.value).map_err(RrError::Route)?;
        for c in list {
            if c.star {
                return Err(RrError::Route(ParseError::BadNameAddr));
            }
            let a = c.addr;
            let start = match a.display {
                Some(d) => d.start as usize,
                None if buf.get((a.uri.start as usize).wrapping_sub(1)) == Some(&b'<') => {
                    a.uri.start as usize - 1
                }
                None => a.uri.start as usize,
            };
            let uri = parse_uri(a.uri.get(buf)).map_err(|_| RrError::RouteUri)?;
            out.push(RouteEntry {
                hdr,
                // `params` ends where the trimmed value ends, even when empty
                span: Span::from_to(start, a.params.end()),
                uri: a.uri,
                lr: uri.lr,
            });
        }
    }
    Ok(out)
}

/// Host and port of `uri`, for a `myself` check; `None` if unparseable.
fn host_port(uri: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let u = parse_uri(uri).ok()?;
    Some((u.host.get(uri), u.port))
}

/// Plans `loose_route()` for `msg` whose current R-URI is `ruri`.
/// `Ok(None)`: no Route header, nothing to do. `double_rr` lets a removed
/// own entry marked `r2` take the one after it along (SER's pair of
/// Record-Routes for cross-interface forwarding).
pub fn plan_loose_route(
    msg: &Msg,
    ruri: &[u8],
    double_rr: bool,
    is_myself: impl Fn(&[u8], Option<u16>) -> bool,
) -> Result<Option<RoutePlan>, RrError> {
    let buf = msg.buf();
    let entries = route_entries(msg)?;
    if entries.is_empty() {
        return Ok(None);
    }
    // An initial request (no To tag) carries a preloaded Route set; its
    // R-URI may well name our domain without being our RR URI.
    let preloaded = msg.to().map_err(RrError::To)?.tag.is_none();
    let (ruri_host, ruri_port) = host_port(ruri).ok_or(RrError::Ruri)?;
    let mine = |e: &RouteEntry| {
        host_port(e.uri.get(buf)).is_some_and(|(h, p)| !h.is_empty() && is_myself(h, p))
    };
    let mut plan = RoutePlan {
        removed: vec![false; entries.len()],
        entries,
        new_ruri: None,
        dst_uri: None,
        append: None,
        status: RouteStatus::Routed,
    };
    let last = plan.entries.len() - 1;
    // §16.4: a strict router before us replaced the R-URI with our URI
    // and pushed the real target to the end of the Route set.
    let strict_prev = !preloaded && !ruri_host.is_empty() && is_myself(ruri_host, ruri_port);
    if strict_prev {
        plan.new_ruri = plan.entries.get(last).map(|e| e.uri.get(buf).to_vec());
        plan.removed[last] = true;
    }
    let next = |p: &RoutePlan, from: usize| (from..=last).find(|&i| !p.removed[i]);
    let Some(mut top) = next(&plan, 0) else {
        return Ok(Some(plan));
    };
    if plan.entries.get(top).is_some_and(mine) {
        plan.removed[top] = true;
        let r2 = parse_uri(plan.entries[top].uri.get(buf))
            .ok()
            .and_then(|u| u.param(plan.entries[top].uri.get(buf), b"r2"))
            .is_some();
        if double_rr && r2 {
            if let Some(second) = next(&plan, top + 1) {
                plan.removed[second] = true;
            }
        }
        match next(&plan, top + 1) {
            Some(n) => top = n,
            None => {
                if preloaded {
                    plan.status = RouteStatus::Preloaded;
                }
                return Ok(Some(plan));
            }
        }
    }
    let entry = plan.entries[top];
    let uri = entry.uri.get(buf).to_vec();
    if entry.lr {
        plan.dst_uri = Some(uri);
    } else if strict_prev {
        // The R-URI taken from the last Route would go straight back
        // there: keep that entry instead of removing and re-adding it.
        plan.removed[last] = false;
        plan.removed[top] = true;
        plan.new_ruri = Some(uri);
    } else {
        plan.append = Some(ruri.to_vec());
        plan.removed[top] = true;
        plan.new_ruri = Some(uri);
    }
    Ok(Some(plan))
}

impl RoutePlan {
    /// Adds the deletions (and the appended Route) to `lumps`. A header
    /// line losing every value goes whole; otherwise each run of removed
    /// values goes with the comma before it (or, at the front, the one
    /// after it), so no empty `Route:` line or dangling comma is left.
    pub fn edit(&self, msg: &Msg, lumps: &mut Lumps) {
        let mut i = 0;
        while i < self.entries.len() {
            let hdr = self.entries[i].hdr;
            let end = (i..self.entries.len())
                .find(|&j| self.entries[j].hdr != hdr)
                .unwrap_or(self.entries.len());
            let group = &self.entries[i..end];
            let gone = &self.removed[i..end];
            if gone.iter().all(|g| *g) {
                if let Some(h) = msg.headers().get(hdr) {
                    lumps.delete(h.line);
                }
            } else {
                let mut a = 0;
                while a < group.len() {
                    if !gone[a] {
                        a += 1;
                        continue;
                    }
                    let b = (a..group.len()).find(|&k| !gone[k]).unwrap_or(group.len());
                    // `b` is the first kept value after the run a..b
                    let span = if a > 0 {
                        Span::from_to(group[a - 1].span.end(), group[b - 1].span.end())
                    } else {
                        Span::from_to(group[a].span.start as usize, group[b].span.start as usize)
                    };
                    lumps.delete(span);
                    a = b;
                }
            }
            i = end;
        }
        if let Some(uri) = &self.append {
            let at = self
                .entries
                .last()
                .and_then(|e| msg.headers().get(e.hdr))
                .map_or(msg.headers_end(), |h| h.line.end());
            let mut line = Vec::with_capacity(uri.len() + 11);
            line.extend_from_slice(b"Route: <");
            line.extend_from_slice(uri);
            line.extend_from_slice(b">\r\n");
            lumps.insert(at, &line);
        }
    }
}
