//! `cargo +nightly fuzz run request_head`: see `ballast_proxy::fuzzing::request_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::request_head(data));
