//! `is_direction()`: which side of the dialog sent an in-dialog request.
//! Our Record-Route entry carries the From tag of the dialog-creating
//! request as `ftag`; a later request whose From tag equals it comes from
//! the caller (downstream), any other from the callee (upstream).

use crate::sip::{parse_uri, Msg};

use super::loose::route_entries;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Caller to callee.
    Downstream,
    /// Callee to caller.
    Upstream,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Direction> {
        match s.trim().to_ascii_lowercase().as_str() {
            "downstream" => Some(Direction::Downstream),
            "upstream" => Some(Direction::Upstream),
            _ => None,
        }
    }
}

/// The `ftag` of our own entry: the first Route value naming us, else
/// the R-URI when a strict previous hop put our entry there.
fn own_ftag<'m>(msg: &'m Msg, is_myself: &impl Fn(&[u8], Option<u16>) -> bool) -> Option<&'m [u8]> {
    let buf = msg.buf();
    let ours = |uri: &'m [u8]| {
        let u = parse_uri(uri).ok()?;
        let host = u.host.get(uri);
        if host.is_empty() || !is_myself(host, u.port) {
            return None;
        }
        u.param(uri, b"ftag")
    };
    let entries = route_entries(msg).ok()?;
    entries
        .iter()
        .find_map(|e| ours(e.uri.get(buf)))
        .or_else(|| ours(msg.ruri()))
}

/// The direction of `msg`; `None` when it carries no `ftag` of ours or
/// its From cannot be read.
pub fn direction(msg: &Msg, is_myself: impl Fn(&[u8], Option<u16>) -> bool) -> Option<Direction> {
    let ftag = own_ftag(msg, &is_myself).filter(|t| !t.is_empty())?;
    let from = msg.from().ok()?;
    let tag = from.tag.map(|t| t.get(msg.buf()));
    Some(if tag == Some(ftag) {
        Direction::Downstream
    } else {
        Direction::Upstream
    })
}
