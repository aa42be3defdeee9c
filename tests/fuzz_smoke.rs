//! The fuzz targets on the stable toolchain, in `make test`: every target
//! (`ser::fuzz_targets::TARGETS`) gets its seed corpus (`fuzz/corpus/<t>/`),
//! its regression inputs (`fuzz/regressions/<t>/`: past findings, each
//! fixed) and a fixed number of deterministic mutations of them (seeded
//! RNG: byte flips, insertions, deletions, duplications, splices with
//! other seeds, truncations). A few seconds in release mode; the long runs
//! are `make fuzz` (cargo-fuzz, nightly).
//!
//! A panicking input is written to `target/fuzz-smoke-failures/` (to be
//! kept as a regression input once fixed) and fails the test by name.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ser::fuzz_targets::{Target, TARGETS};
use shm::TestRng as Rng;

/// Mutations per target: what fits a few seconds for the slowest target
/// (the config loader) in release mode.
fn rounds(name: &str) -> usize {
    match name {
        "cfg" => 1500,
        "tm_fsm" | "shm_alloc" => 3000,
        _ => 6000,
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted by name (missing folder: none).
fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = rd
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("corpus file");
            (p.display().to_string(), bytes)
        })
        .collect();
    v.sort();
    v
}

/// Bytes that steer parsers into corner cases, whatever the target.
const SPICE: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n ",
    b"\r\n\r\n",
    b";",
    b",",
    b"\"",
    b"\\",
    b"<",
    b">",
    b":",
    b"[",
    b"]",
    b"=",
    b"@",
    b"%",
    b"%4",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b"{",
    b"}",
    b"(",
    b")",
    b"#",
    b"/*",
    b"*/",
    b".",
    b"-1",
    b"0",
    b"4294967296",
    b"99999999999999999999",
    b"\xc3\xa9",
];

fn mutate(rng: &mut Rng, seeds: &[(String, Vec<u8>)], base: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    for _ in 0..1 + rng.index(4) {
        let len = m.len();
        let at = rng.index(len + 1);
        match rng.index(9) {
            0 => m.truncate(at),
            1 => {
                if let Some(b) = m.get_mut(at) {
                    *b ^= 1 << rng.index(8);
                }
            }
            2 => {
                if let Some(b) = m.get_mut(at) {
                    *b = rng.next_u64() as u8;
                }
            }
            3 => {
                let s = SPICE[rng.index(SPICE.len())];
                m.splice(at..at, s.iter().copied());
            }
            4 => {
                let end = (at + rng.index(40)).min(len);
                m.drain(at..end);
            }
            5 => {
                let junk: Vec<u8> = (0..rng.index(32)).map(|_| rng.next_u64() as u8).collect();
                m.splice(at..at, junk);
            }
            6 => {
                // duplicate a slice: repeated headers, statements, params
                let end = (at + rng.index(200)).min(len);
                let dup = m[at..end].to_vec();
                m.splice(at..at, dup);
            }
            _ => {
                // splice in a piece of another seed
                let other = &seeds[rng.index(seeds.len())].1;
                let s = rng.index(other.len() + 1);
                let e = (s + rng.index(300)).min(other.len());
                m.splice(at..at, other[s..e].iter().copied());
            }
        }
    }
    m
}

/// Runs `input`; on a panic keeps it and returns where.
fn run(name: &str, t: Target, what: &str, input: &[u8]) -> Option<String> {
    if catch_unwind(AssertUnwindSafe(|| t(input))).is_ok() {
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-smoke-failures");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{name}-{}", what.replace(['/', ' '], "_")));
    let _ = std::fs::write(&file, input);
    Some(format!(
        "{name}: {what} panicked; input kept in {}",
        file.display()
    ))
}

fn smoke(name: &str, t: Target) -> Vec<String> {
    let seeds = inputs(&root().join("corpus").join(name));
    assert!(!seeds.is_empty(), "no seed corpus for fuzz target {name}");
    let regressions = inputs(&root().join("regressions").join(name));
    let mut failed = Vec::new();
    for (path, bytes) in seeds.iter().chain(&regressions) {
        failed.extend(run(name, t, path, bytes));
    }
    let mut rng = Rng::new(0x5EED_F022 ^ name.len() as u64);
    for i in 0..rounds(name) {
        let base = &seeds[i % seeds.len()].1;
        let m = mutate(&mut rng, &seeds, base);
        failed.extend(run(name, t, &format!("mutation {i}"), &m));
    }
    failed
}

#[test]
fn every_target_survives_its_corpus_regressions_and_mutations() {
    let mut failed = Vec::new();
    for (name, t) in TARGETS {
        failed.extend(smoke(name, *t));
    }
    assert!(
        failed.is_empty(),
        "fuzz smoke findings:\n{}",
        failed.join("\n")
    );
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    // the nightly crate must not fall behind the list
    for (name, _) in TARGETS {
        let bin = root().join("fuzz_targets").join(format!("{name}.rs"));
        let src =
            std::fs::read_to_string(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(
            src.contains(&format!("by_name(\"{name}\")")),
            "{} does not call its target",
            bin.display()
        );
    }
}
