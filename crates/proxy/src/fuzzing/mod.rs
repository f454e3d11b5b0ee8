//! The checks that ballast's parsers are fuzzed with, one function per target,
//! each taking the fuzzer's bytes and panicking on a defect: a panic inside the
//! parser, or a property the parser must keep and did not (a differential
//! mismatch against an oracle, a round trip that changed, an unsafe output).
//!
//! Neither data path nor control path: compiled only for this crate's tests and
//! with the `fuzzing` feature, which the `cargo fuzz` targets in `fuzz/` at the
//! repository root turn on, so an ordinary build has none of it and nothing
//! internal is made public by it. The fuzz targets and the stable regression test
//! (`tests.rs`, which replays every file under `fuzz/regressions/<target>/`) call
//! the same functions, so an input that once crashed is checked by exactly the code
//! that found it, on every `cargo test`.
//!
//! Where an oracle exists the check is differential: ballast's own request-head
//! parser against `httparse` read directly, and its shortcut desync verdict against
//! AWS's full classifier; globs against a plain dynamic-programming matcher;
//! chunked bodies decoded in one piece against byte by byte and against the
//! encoder; path normalisation against itself (idempotence); the config against
//! its own JSON form (the admin API's round trip); PROXY headers, durations,
//! sizes and rates against their prefixes, bounds and printed forms.

mod config;
mod connection;
mod http1;
mod routing;
#[cfg(test)]
mod tests;

pub use config::{config_toml, units};
pub use connection::{proxy_header, sticky_cookie};
pub use http1::{chunked_body, request_head, response_head};
pub use routing::{glob, path, redirect};

/// A target's check: panics on a defect.
pub type Check = fn(&[u8]);

/// Every target by the name its `cargo fuzz` binary, corpus and regressions
/// folder have.
pub const TARGETS: &[(&str, Check)] = &[
    ("request_head", request_head),
    ("chunked_body", chunked_body),
    ("response_head", response_head),
    ("path", path),
    ("glob", glob),
    ("redirect", redirect),
    ("config_toml", config_toml),
    ("units", units),
    ("proxy_header", proxy_header),
    ("sticky_cookie", sticky_cookie),
];
