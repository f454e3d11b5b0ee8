//! `cargo +nightly fuzz run sticky_cookie`: see `ballast_proxy::fuzzing::sticky_cookie`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::sticky_cookie(data));
