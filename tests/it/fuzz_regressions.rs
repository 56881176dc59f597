//! Fuzz findings, replayed as plain tests through the fuzz harness itself
//! (`fuzz/src/lib.rs`, included as a module), so each input takes exactly the
//! code path the fuzzer found it on. Each crash input lives in
//! `fuzz/regressions/<target>/`; the seed corpus (`fuzz/corpus/<target>/`) is
//! replayed too, and must verify.
//!
//! `cargo test --all-features --test it -- --ignored fuzz_regressions::write_seed_corpus`
//! regenerates the seed corpus.
#![cfg(all(feature = "test-util", feature = "ed25519"))]

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code, unreachable_pub)]
mod harness;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn target(name: &str) -> fn(&[u8]) {
    match name {
        "presets" => harness::presets,
        "generic" => harness::generic,
        "layer" => harness::layer,
        other => panic!("no fuzz target {other}"),
    }
}

/// Every file under `fuzz/<dir>/<target>/`, run through its target.
fn replay(dir: &str) -> usize {
    let mut count = 0;
    for name in ["presets", "generic", "layer"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(name)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|entry| entry.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let input = std::fs::read(&path).unwrap();
            eprintln!("replaying {}", path.display());
            target(name)(&input);
            count += 1;
        }
    }
    count
}

#[test]
fn crash_inputs_no_longer_fail() {
    replay("regressions");
}

#[test]
fn seed_corpus_replays() {
    assert!(replay("corpus") >= 3 * 4, "the seed corpus is missing");
}

/// The seeds are what they claim to be: valid signed requests that every
/// preset (and the layer) accepts, so the fuzzer starts from the accepting
/// paths.
#[test]
fn seeds_are_valid_signed_requests() {
    for (target, name, input) in harness::seeds() {
        match target {
            "presets" => {
                let preset = &harness::preset_list()[usize::from(input[0])];
                let (parts, body) = harness::parse_request(&input[1..]);
                let verified = harness::checked_verify(&*preset.verifier, &parts, body)
                    .unwrap_or_else(|error| panic!("seed {name}: {error:?}"));
                assert_eq!(verified.provider(), preset.name, "{name}");
            }
            "generic" => {
                let (parts, body) = harness::parse_request(&input[4..]);
                harness::checked_verify(&harness::generic_configs()[0], &parts, body)
                    .unwrap_or_else(|error| panic!("seed {name}: {error:?}"));
            }
            _ => {}
        }
        self::target(target)(&input);
    }
}

#[test]
#[ignore = "writes fuzz/corpus/; run by hand after changing the input format"]
fn write_seed_corpus() {
    for (target, name, input) in harness::seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), input).unwrap();
    }
}
