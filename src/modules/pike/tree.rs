//! pike's counting, sans-io: SER's tree of IP address prefixes kept as a
//! flat, fixed set of nodes, driven by plain values (the nodes, the
//! address, the time in ms). No shm, no clock: [`check`] is the whole
//! algorithm and the unit tests below run it on a vector.
//!
//! SER 0.9 (`ip_tree.c`, `pike_funcs.c`): every request hits the longest
//! known prefix of its source address, one node per address byte. A
//! prefix hit "hot" (a quarter of `reqs_density_per_unit` in the current
//! or previous sampling unit, or on average over both) grows a node one
//! byte longer, which inherits the parent's hits less one. Once the full
//! address has a node, hits count on it as a leaf; a leaf with
//! `reqs_density_per_unit` hits in the current or previous unit, or on
//! average over both, is red: the request is refused. So a new address is
//! refused after between x and about 1.25x+4 requests in one unit (SER's
//! documentation says up to 3x), and let through again once its rate
//! falls. A node not refreshed for `remove_latency` is forgotten; a cold
//! prefix is not refreshed, so it goes first.
//!
//! Deviations, for bounded memory and cheap locking: SER kept
//! `sampling_time_unit` by swapping every counter from the timer; here a
//! node records the unit its counters belong to and is rolled forward when
//! touched (the same counts, no timer work). SER's tree grew in shm
//! without limit; here a fixed number of nodes per shard (all prefixes of
//! one address live in the shard of its first byte), and a new node takes
//! a free or expired slot or else evicts the one expiring soonest, red
//! leaves last. A flood from many addresses thus churns only its own
//! shard, and can never take memory from the rest of the server. A node
//! outlives none of its descendants (refreshing a node refreshes the
//! prefixes above it), which is what SER's timer list did by keeping
//! nodes with kids out of it.

/// Node flag: a full address ended here (SER's NODE_IPLEAF_FLAG).
pub const LEAF: u8 = 1;

const PREV: usize = 0;
const CURR: usize = 1;

shm::shm_struct! {
    /// One prefix node. `len == 0` is a free slot (a zeroed table is empty).
    #[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
    pub struct Node {
        /// The address bytes; those past `len` are zero.
        pub key: [u8; 16],
        /// Prefix length in bytes (1..=16); 0 = free.
        pub len: u8,
        pub flags: u8,
        /// Hits as a prefix, [previous unit, current unit].
        pub hits: [u16; 2],
        /// Hits as a full address, [previous unit, current unit].
        pub leaf_hits: [u16; 2],
        /// The sampling unit the current counters belong to.
        pub unit: u32,
        /// Monotonic ms after which the node is forgotten.
        pub expires: u64,
    }
}

/// The module parameters, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `sampling_time_unit` (SER: seconds, default 2).
    pub unit_ms: u64,
    /// `reqs_density_per_unit` (default 30).
    pub max_hits: u16,
    /// `remove_latency` (SER: seconds, default 120).
    pub timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            unit_ms: 2000,
            max_hits: 30,
            timeout_ms: 120_000,
        }
    }
}

/// What [`check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Under the density (or nowhere to count it: SER's error path lets
    /// the request through too).
    Allowed,
    /// The address is over `reqs_density_per_unit`.
    Blocked,
}

impl Node {
    fn live(&self, now: u64) -> bool {
        self.len > 0 && self.expires > now
    }

    fn prefix_of(&self, ip: &[u8]) -> bool {
        let n = usize::from(self.len);
        n <= ip.len() && self.key.get(..n) == ip.get(..n)
    }

    /// Moves the counters to `unit` (SER's swap_routine, done lazily).
    fn roll(&mut self, unit: u32) {
        if self.unit == unit {
            return;
        }
        if self.unit.wrapping_add(1) == unit {
            self.hits = [self.hits[CURR], 0];
            self.leaf_hits = [self.leaf_hits[CURR], 0];
        } else {
            self.hits = [0, 0];
            self.leaf_hits = [0, 0];
        }
        self.unit = unit;
    }

    fn hot(c: [u16; 2], limit: u16) -> bool {
        let avg = (u32::from(c[PREV]) + u32::from(c[CURR])) / 2;
        c[PREV] >= limit || c[CURR] >= limit || avg >= u32::from(limit)
    }

    /// A prefix busy enough to grow a longer one.
    fn hot_prefix(&self, max: u16) -> bool {
        Self::hot(self.hits, max >> 2)
    }

    /// A full address over the density: red.
    pub fn red(&self, max: u16) -> bool {
        Self::hot(self.leaf_hits, max)
    }

    fn new(ip: &[u8], len: usize, unit: u32, expires: u64) -> Node {
        let mut key = [0u8; 16];
        let n = len.min(ip.len()).min(16);
        key[..n].copy_from_slice(&ip[..n]);
        Node {
            key,
            len: n as u8,
            unit,
            expires,
            ..Node::default()
        }
    }
}

fn bump(c: &mut u16) {
    // SER stopped one short of the type's maximum.
    if *c < u16::MAX - 1 {
        *c += 1;
    }
}

/// Counts one request from `ip` (4 or 16 bytes) at `now` ms into `nodes`
/// (one shard) and says whether it is over the density.
pub fn check(nodes: &mut [Node], ip: &[u8], now: u64, lim: &Limits) -> Verdict {
    let ip = &ip[..ip.len().min(16)];
    if ip.is_empty() {
        return Verdict::Allowed;
    }
    let unit = (now / lim.unit_ms.max(1)) as u32;
    let fresh = now.saturating_add(lim.timeout_ms);
    // One pass: the live prefixes of `ip` by length, a free slot, and the
    // slot to evict if none is free.
    let mut path: [Option<usize>; 17] = [None; 17];
    let mut free = None;
    let mut victim: Option<(bool, u64, usize)> = None;
    for (i, n) in nodes.iter().enumerate() {
        if !n.live(now) {
            free = free.or(Some(i));
        } else if n.prefix_of(ip) {
            path[usize::from(n.len)] = Some(i);
        } else {
            let key = (n.red(lim.max_hits), n.expires, i);
            if victim.is_none_or(|v| (key.0, key.1) < (v.0, v.1)) {
                victim = Some(key);
            }
        }
    }
    let slot = free.or(victim.map(|v| v.2));
    let deepest = (1..=ip.len()).rev().find_map(|l| path[l].map(|i| (l, i)));
    let mut verdict = Verdict::Allowed;
    let mut refresh = true;
    match deepest {
        None => {
            // An empty branch: the first byte's node, one hit.
            let Some(s) = slot else { return verdict };
            let mut n = Node::new(ip, 1, unit, fresh);
            n.hits[CURR] = 1;
            nodes[s] = n;
            if ip.len() == 1 {
                nodes[s].flags |= LEAF;
            }
        }
        Some((len, i)) if len == ip.len() => {
            let n = &mut nodes[i];
            n.roll(unit);
            n.flags |= LEAF;
            bump(&mut n.leaf_hits[CURR]);
            if n.red(lim.max_hits) {
                verdict = Verdict::Blocked;
            }
            n.expires = n.expires.max(fresh);
        }
        Some((len, i)) => {
            let n = &mut nodes[i];
            n.roll(unit);
            bump(&mut n.hits[CURR]);
            if n.hot_prefix(lim.max_hits) {
                // Grow the prefix by one byte; the kid inherits the hits.
                let inherited = n.hits[CURR].saturating_sub(1);
                n.expires = n.expires.max(fresh);
                if let Some(s) = slot {
                    let mut kid = Node::new(ip, len + 1, unit, fresh);
                    kid.hits[CURR] = inherited;
                    nodes[s] = kid;
                }
            } else {
                // A cold prefix is left to expire (SER's NO_UPDATE).
                refresh = false;
            }
        }
    }
    if refresh {
        for i in path.iter().flatten() {
            let n = &mut nodes[*i];
            n.expires = n.expires.max(fresh);
        }
    }
    verdict
}

/// The live nodes, for the `pike_list` command: full addresses first.
pub fn live(nodes: &[Node], now: u64) -> Vec<Node> {
    let mut v: Vec<Node> = nodes.iter().copied().filter(|n| n.live(now)).collect();
    v.sort_by_key(|n| (n.flags & LEAF == 0, std::cmp::Reverse(n.len), n.key));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(max: u16) -> Limits {
        Limits {
            unit_ms: 1000,
            max_hits: max,
            timeout_ms: 10_000,
        }
    }

    /// Requests from `ip` at `now` until the first refusal; how many.
    fn hits_to_block(nodes: &mut [Node], ip: &[u8], now: u64, l: &Limits) -> usize {
        (1..=1000)
            .find(|_| check(nodes, ip, now, l) == Verdict::Blocked)
            .expect("blocked within 1000")
    }

    #[test]
    fn a_new_ipv4_address_is_refused_between_x_and_3x() {
        let l = lim(20);
        let mut t = vec![Node::default(); 64];
        let n = hits_to_block(&mut t, &[10, 0, 0, 1], 5, &l);
        assert!((20..=60).contains(&n), "{n}");
        // Blocked it stays while the flood goes on.
        assert_eq!(check(&mut t, &[10, 0, 0, 1], 6, &l), Verdict::Blocked);
    }

    #[test]
    fn a_neighbour_is_served_and_needs_its_own_density() {
        let l = lim(20);
        let mut t = vec![Node::default(); 64];
        hits_to_block(&mut t, &[10, 0, 0, 1], 5, &l);
        // 10.0.0.2 shares the prefix: it is counted from its own first
        // request, refused only after x requests of its own.
        for _ in 0..10 {
            assert_eq!(check(&mut t, &[10, 0, 0, 2], 7, &l), Verdict::Allowed);
        }
        let n = hits_to_block(&mut t, &[10, 0, 0, 2], 8, &l);
        assert!(n <= 20, "{n}");
    }

    #[test]
    fn a_slow_sender_is_never_refused() {
        let l = lim(20);
        let mut t = vec![Node::default(); 64];
        // 15 a second for a minute: under 20 per unit.
        for s in 0..60u64 {
            for k in 0..15u64 {
                let now = s * 1000 + k * 60;
                assert_eq!(check(&mut t, &[192, 0, 2, 9], now, &l), Verdict::Allowed);
            }
        }
    }

    #[test]
    fn the_block_ends_two_quiet_units_after_the_flood() {
        let l = lim(20);
        let mut t = vec![Node::default(); 64];
        hits_to_block(&mut t, &[10, 1, 2, 3], 100, &l);
        // The next unit still sees the previous one's count.
        assert_eq!(check(&mut t, &[10, 1, 2, 3], 1100, &l), Verdict::Blocked);
        // Two units later both counters are below the density again.
        assert_eq!(check(&mut t, &[10, 1, 2, 3], 3500, &l), Verdict::Allowed);
    }

    #[test]
    fn nodes_are_forgotten_after_remove_latency() {
        let l = lim(20);
        let mut t = vec![Node::default(); 64];
        hits_to_block(&mut t, &[10, 1, 2, 3], 0, &l);
        assert!(!live(&t, 1).is_empty());
        assert!(live(&t, l.timeout_ms + 1).is_empty());
    }

    #[test]
    fn ipv6_is_counted_too() {
        let l = lim(8);
        let mut t = vec![Node::default(); 64];
        let ip: [u8; 16] = "2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let n = hits_to_block(&mut t, &ip, 0, &l);
        assert!((8..=200).contains(&n), "{n}");
        let leaf = live(&t, 1)[0];
        assert_eq!((leaf.len, leaf.flags & LEAF), (16, LEAF));
    }

    #[test]
    fn many_sources_cannot_grow_the_table_nor_evict_a_red_leaf_first() {
        let l = lim(8);
        let mut t = vec![Node::default(); 32];
        hits_to_block(&mut t, &[10, 9, 9, 9], 0, &l);
        // Thousands of other sources in the same shard churn the rest.
        for a in 0..=255u8 {
            for b in 0..8u8 {
                check(&mut t, &[10, a, b, 1], 10, &l);
                check(&mut t, &[10, a, b, 1], 10, &l);
            }
        }
        assert_eq!(t.len(), 32);
        assert_eq!(check(&mut t, &[10, 9, 9, 9], 20, &l), Verdict::Blocked);
    }

    #[test]
    fn a_full_table_of_the_path_itself_lets_requests_through() {
        let l = lim(4);
        let mut t = vec![Node::default(); 2];
        for _ in 0..100 {
            assert_eq!(check(&mut t, &[1, 2, 3, 4], 0, &l), Verdict::Allowed);
        }
        assert_eq!(check(&mut [], &[1, 2, 3, 4], 0, &l), Verdict::Allowed);
    }
}
