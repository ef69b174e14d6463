//! Replays the committed seed corpus of every fuzz target (`fuzz/corpus/<target>/`) through
//! the target's checks, so a regression in a property fails `cargo test` without cargo-fuzz.
//! Crash reproducers found while fuzzing are kept in the corpus too.

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_seed_of_every_target_keeps_its_properties() {
    for (target, check) in keygate_fuzz_checks::TARGETS {
        let dir = corpus_dir(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("the seed corpus {} is missing: {e}", dir.display()));
        let mut seeds = 0;
        for entry in entries {
            let path = entry.expect("a readable corpus directory").path();
            let data = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read seed {}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: seed {} fails", path.display());
            seeds += 1;
        }
        assert!(
            seeds >= 5,
            "{target}: only {seeds} seeds in {}",
            dir.display()
        );
    }
}
