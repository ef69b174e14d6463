#![no_main]
//! See `keygate_fuzz_checks::credential_extraction` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz_checks::credential_extraction::check(data));
