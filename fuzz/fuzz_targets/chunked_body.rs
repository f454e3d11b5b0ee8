//! `cargo +nightly fuzz run chunked_body`: see `ballast_proxy::fuzzing::chunked_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::chunked_body(data));
