//! `cargo +nightly fuzz run glob`: see `ballast_proxy::fuzzing::glob`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::glob(data));
