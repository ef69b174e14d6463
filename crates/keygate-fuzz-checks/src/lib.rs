//! The properties keygate's fuzz targets check (`fuzz/fuzz_targets/`), one module per target.
//! Each `check` takes any bytes and panics when a property fails; libFuzzer reports the panic
//! as a crash, and `tests/seed_corpus.rs` runs the committed seed corpus through the same
//! functions, so `cargo test` catches a regression without cargo-fuzz or a nightly compiler.

pub mod credential_extraction;
pub mod token_format;
pub mod token_request_bodies;

/// A target's check: returns when every property holds, panics otherwise.
pub type Check = fn(&[u8]);

/// Every fuzz target by name, with its check: the seed-corpus test walks this list, so a new
/// target without a corpus fails the test.
pub const TARGETS: &[(&str, Check)] = &[
    ("token_format", token_format::check),
    ("credential_extraction", credential_extraction::check),
    ("token_request_bodies", token_request_bodies::check),
];
