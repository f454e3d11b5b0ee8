//! `cargo +nightly fuzz run path`: see `ballast_proxy::fuzzing::path`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::path(data));
