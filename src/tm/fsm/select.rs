//! Choosing the final reply to send upstream when every branch failed
//! (RFC 3261 §16.7 step 6, with SER 2.x priorities).

use super::Branch;

/// Rank of a final status: lower is better. 2xx (never stored, listed for
/// completeness) < 6xx (the callee declined everywhere, RFC 16.7 step 6) <
/// 3xx (an alternative to try) < the 4xx a caller can act on (credentials
/// 401/407, media 415, extension 420, more digits 484) < other 4xx < 5xx
/// (the caller can do least with a server error) < anything else.
pub fn class_rank(code: u16) -> u8 {
    match code {
        200..=299 => 0,
        600..=699 => 1,
        300..=399 => 2,
        401 | 407 | 415 | 420 | 484 => 3,
        400..=499 => 4,
        500..=599 => 5,
        _ => 6,
    }
}

/// The best final among the final branches: best [`class_rank`], then the
/// lowest code, then the lowest branch index; branches whose reply was
/// dropped (`t_drop_replies`) only when no other is final. `None` if no
/// branch is final.
pub fn best_final(branches: &[Branch]) -> Option<u8> {
    let best = |with_dropped: bool| {
        branches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_final() && (with_dropped || b.dropped == 0))
            .min_by_key(|(i, b)| (class_rank(b.status), b.status, *i))
            .and_then(|(i, _)| u8::try_from(i).ok())
    };
    best(false).or_else(|| best(true))
}

#[cfg(test)]
mod tests {
    use super::super::BranchPhase;
    use super::*;

    fn finals(codes: &[u16]) -> Vec<Branch> {
        codes
            .iter()
            .map(|&c| Branch {
                phase: BranchPhase::Final as u8,
                status: c,
                ..Branch::default()
            })
            .collect()
    }

    fn best(codes: &[u16]) -> Option<u16> {
        let bs = finals(codes);
        best_final(&bs).map(|i| codes[usize::from(i)])
    }

    #[test]
    fn ranking_follows_2x_priorities() {
        assert_eq!(best(&[486, 404]), Some(404));
        assert_eq!(best(&[486, 603]), Some(603));
        assert_eq!(best(&[407, 401, 480]), Some(401));
        assert_eq!(best(&[302, 486]), Some(302));
        assert_eq!(best(&[503, 500]), Some(500));
        assert_eq!(best(&[503, 480]), Some(480));
        assert_eq!(best(&[404, 484]), Some(484));
        assert_eq!(best(&[302, 603]), Some(603));
        assert_eq!(best(&[]), None);
    }

    #[test]
    fn ties_go_to_the_lowest_branch_and_non_final_branches_are_skipped() {
        let mut bs = finals(&[486, 486, 404]);
        assert_eq!(best_final(&bs), Some(2));
        bs[2].phase = BranchPhase::Proceeding as u8;
        assert_eq!(best_final(&bs), Some(0));
    }

    #[test]
    fn dropped_replies_lose_to_any_other_and_answer_when_alone() {
        let mut bs = finals(&[404, 486]);
        bs[0].dropped = 1;
        assert_eq!(best_final(&bs), Some(1));
        bs[1].dropped = 1;
        assert_eq!(best_final(&bs), Some(0));
    }

    #[test]
    fn class_rank_orders_classes() {
        let order = [200, 603, 302, 401, 404, 503, 199];
        for w in order.windows(2) {
            assert!(
                class_rank(w[0]) < class_rank(w[1]),
                "{} before {}",
                w[0],
                w[1]
            );
        }
    }
}
