//! Property test: random event sequences against the machine (the run and
//! its invariants are in `explore`, shared with the fuzz target).

use shm::TestRng as Rng;

use super::explore::Run;

#[test]
fn random_event_sequences_keep_the_invariants_and_terminate() {
    for seed in 1..=3000u64 {
        let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut run = Run::new(&mut rng, format!("seed {seed}"));
        for _ in 0..rng.below(60) {
            run.event(&mut rng);
        }
        run.finish(&mut rng);
    }
}
