//! `lookup`: the live bindings of the R-URI's AOR become the request's
//! targets — the best one rewrites the R-URI, the others become branches.

use crate::modules::usrloc::{Binding, Q_UNSPECIFIED};
use crate::route::ctx::{Branch, MAX_BRANCHES};

use super::save::FL_NAT;

/// The parts of the message context `lookup` writes.
pub struct Dest<'a> {
    pub new_uri: &'a mut Option<Vec<u8>>,
    pub dst_uri: &'a mut Option<Vec<u8>>,
    pub dset: &'a mut Vec<Branch>,
    pub flags: &'a mut u32,
}

/// How `lookup` behaves (module parameters).
#[derive(Debug, Clone, Copy)]
pub struct LookupOpts {
    pub append_branches: bool,
    pub desc_time_order: bool,
    pub nat_flag: u32,
}

/// Order bindings as `lookup` tries them: by q, then most recent first;
/// with `desc_time_order` only by recency.
pub fn order(bindings: &mut [Binding], desc_time_order: bool) {
    if desc_time_order {
        bindings.sort_by_key(|b| std::cmp::Reverse(b.last_modified_ms));
    } else {
        bindings.sort_by_key(Binding::order_key);
    }
}

fn branch_q(q: i32) -> Option<u16> {
    if q == Q_UNSPECIFIED {
        None
    } else {
        u16::try_from(q.clamp(0, 1000)).ok()
    }
}

fn received(b: &Binding) -> Option<Vec<u8>> {
    (!b.received.is_empty()).then(|| b.received.clone())
}

/// Point `d` at `bindings` (already live). Returns false when there is
/// none. The destination set never grows past [`MAX_BRANCHES`] counting
/// the R-URI, like `append_branch`.
pub fn apply(mut bindings: Vec<Binding>, opts: LookupOpts, d: Dest<'_>) -> bool {
    order(&mut bindings, opts.desc_time_order);
    let mut it = bindings.into_iter();
    let Some(first) = it.next() else {
        return false;
    };
    let mut nat = first.flags & FL_NAT != 0;
    if let Some(r) = received(&first) {
        *d.dst_uri = Some(r);
    }
    *d.new_uri = Some(first.contact);
    if opts.append_branches {
        for b in it {
            if d.dset.len() + 1 >= MAX_BRANCHES {
                break;
            }
            nat |= b.flags & FL_NAT != 0;
            d.dset.push(Branch {
                q: branch_q(b.q),
                dst_uri: received(&b),
                uri: b.contact,
            });
        }
    }
    if nat && opts.nat_flag < 32 {
        *d.flags |= 1 << opts.nat_flag;
    }
    true
}
