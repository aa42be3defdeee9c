//! The sip layer depends on nothing else in the crate and does no I/O
//! (style.md, "Layers run one way"): checked on the source text of every
//! non-test file.

#[test]
fn sip_uses_nothing_outside_itself() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sip");
    let mut stack = vec![dir];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                // Test code may use what it likes (the fuzz run takes the
                // tests' seeded generator from shm).
                if !p.ends_with("tests") {
                    stack.push(p);
                }
                continue;
            }
            let src = std::fs::read_to_string(&p).unwrap();
            seen += 1;
            for forbidden in [
                "crate::cfg",
                "crate::route",
                "crate::net",
                "crate::os",
                "crate::proc",
                "crate::timer",
                "crate::modules",
                "shm::",
                "std::net",
                "std::fs",
                "std::time",
                "std::thread",
                "libc::",
                "nix::",
                "unsafe ",
            ] {
                assert!(!src.contains(forbidden), "{} uses {forbidden}", p.display());
            }
        }
    }
    assert!(seen > 10);
}
