//! `cargo +nightly fuzz run redirect`: see `ballast_proxy::fuzzing::redirect`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::redirect(data));
