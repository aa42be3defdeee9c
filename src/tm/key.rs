//! Transaction identity and matching (ser-compat-spec §2.2.1–2.2.2).
//!
//! A cell keeps, as spans into its cloned request, every field a later
//! request may be matched on; an incoming message is reduced to a
//! [`MsgKey`] once and compared with the cells of its bucket.
//!
//! - RFC 3261 (top Via branch starts with `z9hG4bK`): branch, sent-by and
//!   transport equal; the method must match (an ACK matches its INVITE,
//!   a CANCEL never matches its INVITE here — see [`MatchKind::CancelTarget`]).
//! - Pre-3261: Call-ID, CSeq, From, To byte-equal, plus the R-URI
//!   (`ruri_matching`) and the whole top Via (`via1_matching`).
//! - An ACK for a 2xx is a new transaction downstream; it is matched by
//!   dialog (Call-ID, CSeq number, From tag) to tell end-to-end ACKs.

use crate::sip::{Method, Msg, Span};
use crate::util::hash::fnv64;

/// RFC 3261 §8.1.1.7 magic cookie.
pub const COOKIE: &[u8] = b"z9hG4bK";

shm::shm_struct! {
    /// A span inside the cell's cloned request.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct SpanS {
        pub start: u32,
        pub len: u32,
    }
}

impl SpanS {
    pub fn get<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        Span {
            start: self.start,
            len: self.len,
        }
        .get(buf)
    }
}

impl From<Span> for SpanS {
    fn from(s: Span) -> SpanS {
        SpanS {
            start: s.start,
            len: s.len,
        }
    }
}

shm::shm_struct! {
    /// What a cell is matched on, as spans into its request clone.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Key {
        pub method: SpanS,
        pub branch: SpanS,
        pub via1: SpanS,
        pub via_host: SpanS,
        pub via_transport: SpanS,
        pub call_id: SpanS,
        pub from: SpanS,
        pub from_tag: SpanS,
        pub to: SpanS,
        pub to_uri: SpanS,
        pub ruri: SpanS,
        pub cseq_num: u32,
        /// 0 when the Via gave no port.
        pub via_port: u16,
        /// 1 when the top Via branch carries the RFC 3261 cookie.
        pub rfc3261: u8,
        pub _pad: u8,
    }
}

/// The matching fields of an incoming request, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct MsgKey<'m> {
    pub method: Method,
    pub method_bytes: &'m [u8],
    pub branch: &'m [u8],
    pub via1: &'m [u8],
    pub via_host: &'m [u8],
    pub via_port: u16,
    pub via_transport: &'m [u8],
    pub call_id: &'m [u8],
    pub cseq_num: u32,
    pub from: &'m [u8],
    pub from_tag: &'m [u8],
    pub to: &'m [u8],
    pub to_uri: &'m [u8],
    pub to_tag: &'m [u8],
    pub ruri: &'m [u8],
    pub rfc3261: bool,
}

/// A request lacks what a transaction needs (SER's −9 "tuple incomplete").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("transaction tuple incomplete")]
pub struct TupleIncomplete;

fn is_3261(branch: &[u8]) -> bool {
    branch.len() > COOKIE.len() && branch[..COOKIE.len()].eq_ignore_ascii_case(COOKIE)
}

/// The 16-bit bucket of a transaction: Call-ID and CSeq number.
pub fn hash(call_id: &[u8], cseq_num: u32) -> u32 {
    let h = fnv64(7, &[call_id, &cseq_num.to_be_bytes()]);
    ((h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48)) & 0xffff) as u32
}

/// Spans of a parsed request, for the cell (relative to `msg.buf()`,
/// which the cell copies byte for byte).
pub fn key_of(msg: &Msg) -> Result<Key, TupleIncomplete> {
    let v = msg.via1().map_err(|_| TupleIncomplete)?;
    let from = msg.from().map_err(|_| TupleIncomplete)?;
    let to = msg.to().map_err(|_| TupleIncomplete)?;
    let cseq = msg.cseq().map_err(|_| TupleIncomplete)?;
    let call_id = msg
        .header(crate::sip::HdrKind::CallId)
        .ok_or(TupleIncomplete)?
        .value;
    let from_h = msg
        .header(crate::sip::HdrKind::From)
        .ok_or(TupleIncomplete)?
        .value;
    let to_h = msg
        .header(crate::sip::HdrKind::To)
        .ok_or(TupleIncomplete)?
        .value;
    let method = match msg.first_line() {
        crate::sip::FirstLine::Request { method_span, .. } => *method_span,
        crate::sip::FirstLine::Reply { .. } => return Err(TupleIncomplete),
    };
    let branch = v.branch.unwrap_or(Span::EMPTY);
    Ok(Key {
        method: method.into(),
        branch: branch.into(),
        via1: v.span.into(),
        via_host: v.host.into(),
        via_transport: v.transport_span.into(),
        call_id: call_id.into(),
        from: from_h.into(),
        from_tag: from.tag.unwrap_or(Span::EMPTY).into(),
        to: to_h.into(),
        to_uri: to.uri.into(),
        ruri: msg.ruri_span().into(),
        cseq_num: cseq.num,
        via_port: v.port.unwrap_or(0),
        rfc3261: u8::from(is_3261(branch.get(msg.buf()))),
        _pad: 0,
    })
}

impl<'m> MsgKey<'m> {
    pub fn of(msg: &'m Msg) -> Result<MsgKey<'m>, TupleIncomplete> {
        let b = msg.buf();
        let k = key_of(msg)?;
        let to_tag = msg
            .to()
            .ok()
            .and_then(|t| t.tag)
            .map(|t| t.get(b))
            .unwrap_or(&[]);
        Ok(MsgKey {
            method: msg.method(),
            method_bytes: k.method.get(b),
            branch: k.branch.get(b),
            via1: k.via1.get(b),
            via_host: k.via_host.get(b),
            via_port: k.via_port,
            via_transport: k.via_transport.get(b),
            call_id: k.call_id.get(b),
            cseq_num: k.cseq_num,
            from: k.from.get(b),
            from_tag: k.from_tag.get(b),
            to: k.to.get(b),
            to_uri: k.to_uri.get(b),
            to_tag,
            ruri: k.ruri.get(b),
            rfc3261: k.rfc3261 == 1,
        })
    }

    pub fn hash(&self) -> u32 {
        hash(self.call_id, self.cseq_num)
    }
}

/// How an incoming request relates to a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// Same transaction (a retransmission, or a hop-by-hop ACK candidate).
    Same,
    /// An ACK in the same dialog as an INVITE cell (end-to-end ACK
    /// candidate for a 2xx).
    DialogAck,
    /// A CANCEL whose target is this (non-CANCEL) cell.
    CancelTarget,
}

/// Matching switches (tm params).
#[derive(Debug, Clone, Copy)]
pub struct MatchOpts {
    pub ruri_matching: bool,
    pub via1_matching: bool,
}

/// The cell's view: its key, request bytes and method.
pub struct CellView<'c> {
    pub key: &'c Key,
    pub req: &'c [u8],
}

impl<'c> CellView<'c> {
    fn f(&self, s: SpanS) -> &'c [u8] {
        s.get(self.req)
    }

    fn method(&self) -> Method {
        Method::from_bytes(self.f(self.key.method))
    }

    fn same_via_tid(&self, m: &MsgKey<'_>) -> bool {
        self.key.rfc3261 == 1
            && self.f(self.key.branch).eq_ignore_ascii_case(m.branch)
            && self.f(self.key.via_host).eq_ignore_ascii_case(m.via_host)
            && self.key.via_port == m.via_port
            && self
                .f(self.key.via_transport)
                .eq_ignore_ascii_case(m.via_transport)
    }

    fn same_2543_core(&self, m: &MsgKey<'_>) -> bool {
        self.f(self.key.call_id) == m.call_id
            && self.key.cseq_num == m.cseq_num
            && self.f(self.key.from) == m.from
    }

    /// Does `m` belong to this cell, and how?
    pub fn classify(&self, m: &MsgKey<'_>, o: MatchOpts) -> Option<MatchKind> {
        let cell_method = self.method();
        match m.method {
            Method::Ack => {
                if cell_method != Method::Invite {
                    return None;
                }
                if m.rfc3261 {
                    if self.same_via_tid(m) {
                        return Some(MatchKind::Same);
                    }
                } else if self.key.rfc3261 == 0
                    && self.same_2543_core(m)
                    && self.f(self.key.to_uri) == m.to_uri
                    && (!o.ruri_matching || self.f(self.key.ruri) == m.ruri)
                    && (!o.via1_matching || self.f(self.key.via1) == m.via1)
                {
                    return Some(MatchKind::Same);
                }
                // A 2xx's ACK has a new branch: match by dialog.
                let same_dialog = self.f(self.key.call_id) == m.call_id
                    && self.key.cseq_num == m.cseq_num
                    && self.f(self.key.from_tag) == m.from_tag;
                same_dialog.then_some(MatchKind::DialogAck)
            }
            Method::Cancel if cell_method != Method::Cancel => {
                let target = if m.rfc3261 {
                    self.same_via_tid(m)
                } else {
                    self.key.rfc3261 == 0
                        && self.same_2543_core(m)
                        && self.f(self.key.to_uri) == m.to_uri
                        && self.f(self.key.ruri) == m.ruri
                        && self.f(self.key.via1) == m.via1
                };
                target.then_some(MatchKind::CancelTarget)
            }
            _ => {
                let same_method = self.f(self.key.method) == m.method_bytes;
                if !same_method {
                    return None;
                }
                let same = if m.rfc3261 {
                    self.same_via_tid(m)
                } else {
                    self.key.rfc3261 == 0
                        && self.same_2543_core(m)
                        && self.f(self.key.to) == m.to
                        && (!o.ruri_matching || self.f(self.key.ruri) == m.ruri)
                        && (!o.via1_matching || self.f(self.key.via1) == m.via1)
                };
                same.then_some(MatchKind::Same)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(first: &str, via: &str, to: &str, cseq: &str) -> Msg {
        let raw = format!(
            "{first}\r\nVia: {via}\r\nFrom: <sip:a@x>;tag=f1\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: {cseq}\r\n\
             Content-Length: 0\r\n\r\n"
        );
        Msg::parse(raw.into_bytes()).map_err(|f| f.error).unwrap()
    }

    const O: MatchOpts = MatchOpts {
        ruri_matching: true,
        via1_matching: true,
    };

    fn classify(cell: &Msg, m: &Msg) -> Option<MatchKind> {
        let key = key_of(cell).unwrap();
        CellView {
            key: &key,
            req: cell.buf(),
        }
        .classify(&MsgKey::of(m).unwrap(), O)
    }

    #[test]
    fn rfc3261_matching() {
        let inv = msg(
            "INVITE sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx1",
            "<sip:b@h>",
            "1 INVITE",
        );
        let again = msg(
            "INVITE sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx1",
            "<sip:b@h>",
            "1 INVITE",
        );
        assert_eq!(classify(&inv, &again), Some(MatchKind::Same));
        let other = msg(
            "INVITE sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx2",
            "<sip:b@h>",
            "1 INVITE",
        );
        assert_eq!(classify(&inv, &other), None);
        let ack = msg(
            "ACK sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx1",
            "<sip:b@h>;tag=t",
            "1 ACK",
        );
        assert_eq!(classify(&inv, &ack), Some(MatchKind::Same));
        let ack2xx = msg(
            "ACK sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKnew",
            "<sip:b@h>;tag=t",
            "1 ACK",
        );
        assert_eq!(classify(&inv, &ack2xx), Some(MatchKind::DialogAck));
        let cancel = msg(
            "CANCEL sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx1",
            "<sip:b@h>",
            "1 CANCEL",
        );
        assert_eq!(classify(&inv, &cancel), Some(MatchKind::CancelTarget));
        // A CANCEL retransmission matches the CANCEL cell, not as target.
        assert_eq!(classify(&cancel, &cancel), Some(MatchKind::Same));
        let bye = msg(
            "BYE sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx1",
            "<sip:b@h>",
            "1 BYE",
        );
        assert_eq!(classify(&inv, &bye), None);
    }

    #[test]
    fn pre_3261_matching() {
        let inv = msg(
            "INVITE sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4",
            "<sip:b@h>",
            "5 INVITE",
        );
        let again = msg(
            "INVITE sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4",
            "<sip:b@h>",
            "5 INVITE",
        );
        assert_eq!(classify(&inv, &again), Some(MatchKind::Same));
        let ack = msg(
            "ACK sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4",
            "<sip:b@h>;tag=zz",
            "5 ACK",
        );
        assert_eq!(classify(&inv, &ack), Some(MatchKind::Same));
        let other_uri = msg(
            "INVITE sip:c@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4",
            "<sip:b@h>",
            "5 INVITE",
        );
        assert_eq!(classify(&inv, &other_uri), None);
        let cancel = msg(
            "CANCEL sip:b@h SIP/2.0",
            "SIP/2.0/UDP 1.2.3.4",
            "<sip:b@h>",
            "5 CANCEL",
        );
        assert_eq!(classify(&inv, &cancel), Some(MatchKind::CancelTarget));
    }

    #[test]
    fn hash_is_16_bit_and_stable() {
        assert!(hash(b"abc", 1) < 65536);
        assert_eq!(hash(b"abc", 1), hash(b"abc", 1));
        assert_ne!(hash(b"abc", 1), hash(b"abc", 2));
    }
}
