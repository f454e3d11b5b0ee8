//! `cargo +nightly fuzz run config_toml`: see `ballast_proxy::fuzzing::config_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ballast_proxy::fuzzing::config_toml(data));
