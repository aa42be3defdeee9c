//! A rough timing of the tier-1 parse, run by hand:
//! `cargo test --release --lib sip::tests::bench -- --ignored --nocapture`.
//! Timings are printed, never asserted (DESIGN.md).

use super::fixtures::INVITE;
use crate::sip::Msg;

#[test]
#[ignore]
fn parse_speed() {
    let n = 200_000;
    let mut buf = INVITE.to_vec();
    let t = std::time::Instant::now();
    for _ in 0..n {
        let m = match Msg::parse(std::mem::take(&mut buf)) {
            Ok(m) => m,
            Err(f) => panic!("{:?}", f.error),
        };
        std::hint::black_box(m.headers().len());
        buf = m.into_buf();
    }
    let tier1 = t.elapsed() / n;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let m = Msg::parse(std::mem::take(&mut buf))
            .map_err(|f| f.error)
            .unwrap();
        m.validate().unwrap();
        std::hint::black_box(m.via1().unwrap().branch);
        buf = m.into_buf();
    }
    let full = t.elapsed() / n;
    println!(
        "INVITE {} bytes: parse {:?}, parse+validate {:?}",
        INVITE.len(),
        tier1,
        full
    );
}
