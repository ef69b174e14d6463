#![no_main]
//! See `keygate_fuzz_checks::token_format` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz_checks::token_format::check(data));
