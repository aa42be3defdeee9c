//! One registered contact of an address-of-record, as plain data.
//!
//! This is what the registrar computes with and what usrloc keeps in
//! shared memory (encoded; see `store`). Times are absolute milliseconds
//! of the system-wide monotonic clock (`shm::monotonic_ms`), the same in
//! every process and immune to wall-clock steps.

/// `expires_ms` of a binding that never expires (FIFO `ul_add` with the
/// permanent flag, SER's FL_PERMANENT).
pub const PERMANENT: u64 = u64::MAX;

/// q of a contact that gave none (SER's Q_UNSPECIFIED). Sorts as 1.0
/// minus a hair, as RFC 3261 leaves it to the registrar.
pub const Q_UNSPECIFIED: i32 = -1;

/// Binding flag of SER 0.9 usrloc: the phone is behind NAT.
pub const FL_NAT: u32 = 1;
/// Binding flag of SER 0.9 usrloc (`ul_add` flags 128): never expires.
/// usrloc also sets `expires_ms` to [`PERMANENT`] for such bindings.
pub const FL_PERMANENT: u32 = 128;

/// An AOR and its bindings.
pub type AorBindings = (Vec<u8>, Vec<Binding>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as registered (without `<>` and parameters).
    pub contact: Vec<u8>,
    /// When the binding expires (monotonic ms), or [`PERMANENT`].
    pub expires_ms: u64,
    /// q × 1000 (0..=1000), or [`Q_UNSPECIFIED`].
    pub q: i32,
    /// Call-ID and CSeq of the REGISTER that last refreshed it (RFC 3261
    /// 10.3 step 7: a same-Call-ID refresh with a lower CSeq is refused).
    pub call_id: Vec<u8>,
    pub cseq: u32,
    /// Binding flags, SER's values: bit 0 ([`FL_NAT`]) the phone is behind
    /// NAT; permanence is `expires_ms == PERMANENT`.
    pub flags: u32,
    /// User-Agent of the registering phone (shown by `ul_show_contact`).
    pub user_agent: Vec<u8>,
    /// Where the REGISTER came from, `sip:ip:port`, when the phone is
    /// behind NAT and its Contact is not reachable (SER's `received`);
    /// empty when unused. `lookup` sends there instead of the Contact.
    pub received: Vec<u8>,
    /// When it was last written (monotonic ms): newer first among equal q.
    pub last_modified_ms: u64,
}

impl Binding {
    pub fn is_permanent(&self) -> bool {
        self.expires_ms == PERMANENT
    }

    /// Live at `now_ms`?
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms > now_ms
    }

    /// Whole seconds left at `now_ms` (0 once expired; `u32::MAX` if
    /// permanent), as the 200 OK and `ul_show_contact` print them.
    pub fn expires_in_s(&self, now_ms: u64) -> u32 {
        if self.is_permanent() {
            return u32::MAX;
        }
        let left = self.expires_ms.saturating_sub(now_ms);
        u32::try_from(left.div_ceil(1000)).unwrap_or(u32::MAX)
    }

    /// The q-value as SER prints it (`0.5`, `1`), `None` when unspecified.
    pub fn q_text(&self) -> Option<String> {
        if self.q == Q_UNSPECIFIED {
            return None;
        }
        let q = self.q.clamp(0, 1000);
        let mut s = format!("{}.{:03}", q / 1000, q % 1000);
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
        Some(s)
    }

    /// Sort key for `lookup`: higher q first, unspecified counting as 1.0
    /// below an explicit 1.0, then the most recently refreshed first.
    pub fn order_key(&self) -> (std::cmp::Reverse<i32>, std::cmp::Reverse<u64>) {
        let q = if self.q == Q_UNSPECIFIED { 999 } else { self.q };
        (
            std::cmp::Reverse(q),
            std::cmp::Reverse(self.last_modified_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(q: i32, t: u64) -> Binding {
        Binding {
            contact: b"sip:a@h".to_vec(),
            expires_ms: 10_000,
            q,
            call_id: Vec::new(),
            cseq: 1,
            flags: 0,
            user_agent: Vec::new(),
            received: Vec::new(),
            last_modified_ms: t,
        }
    }

    #[test]
    fn q_prints_like_ser() {
        assert_eq!(b(500, 0).q_text().as_deref(), Some("0.5"));
        assert_eq!(b(1000, 0).q_text().as_deref(), Some("1"));
        assert_eq!(b(0, 0).q_text().as_deref(), Some("0"));
        assert_eq!(b(125, 0).q_text().as_deref(), Some("0.125"));
        assert_eq!(b(Q_UNSPECIFIED, 0).q_text(), None);
    }

    #[test]
    fn order_is_q_then_recency() {
        let mut v = [b(100, 5), b(Q_UNSPECIFIED, 1), b(1000, 0), b(100, 9)];
        v.sort_by_key(Binding::order_key);
        let got: Vec<(i32, u64)> = v.iter().map(|x| (x.q, x.last_modified_ms)).collect();
        assert_eq!(got, [(1000, 0), (-1, 1), (100, 9), (100, 5)]);
    }

    #[test]
    fn expiry_rounds_up_and_permanent_stays() {
        let mut x = b(0, 0);
        assert_eq!(x.expires_in_s(8_500), 2);
        assert!(!x.is_live(10_000));
        assert_eq!(x.expires_in_s(20_000), 0);
        x.expires_ms = PERMANENT;
        assert!(x.is_live(u64::MAX - 1));
        assert_eq!(x.expires_in_s(0), u32::MAX);
    }
}
