//! `cargo +nightly fuzz run units`: see `ballast_proxy::fuzzing::units`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::units(data));
