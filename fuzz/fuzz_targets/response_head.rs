//! `cargo +nightly fuzz run response_head`: see `ballast_proxy::fuzzing::response_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::response_head(data));
