//! The clock helper. The containers never read the clock themselves (the
//! caller passes `now_ms`), which keeps them testable with virtual time.

/// Milliseconds of CLOCK_MONOTONIC: never jumps with wall-clock changes,
/// and is the same clock in every process of the machine.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter; CLOCK_MONOTONIC always exists
    // on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1000) + (ts.tv_nsec as u64) / 1_000_000
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_does_not_go_back() {
        let a = super::monotonic_ms();
        let b = super::monotonic_ms();
        assert!(b >= a && a > 0);
    }
}
