#![no_main]
//! See `keygate_fuzz_checks::token_request_bodies` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz_checks::token_request_bodies::check(data));
