//! Secrets from the kernel's random pool (getrandom(2)).

/// Fill `buf` with random bytes from the kernel. Blocks only at boot,
/// until the pool is first seeded — never later.
pub fn fill(buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    // Bounded: each successful call writes at least one byte; only EINTR
    // repeats without progress, and it needs a signal per round.
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a live, exclusively borrowed byte slice; the
        // kernel writes at most `rest.len()` bytes into it.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        super::fill(&mut a).unwrap();
        super::fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
