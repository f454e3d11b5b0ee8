//! `cargo +nightly fuzz run proxy_header`: see `ballast_proxy::fuzzing::proxy_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::proxy_header(data));
