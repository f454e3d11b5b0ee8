//! What a handshake will settle on, read from the ClientHello before it runs.
//!
//! Control of logging only, on the accept path. When a handshake fails (a client
//! certificate refused, a bad record after the hello), the half-done connection is
//! gone and cannot be asked for its version and cipher suite. They are determined by
//! the ClientHello and the server's own settings, though: rustls takes the highest
//! version both sides allow, and within it the first suite in the client's order
//! that the server has (`ignore_client_order` is left off). So the failure log line
//! carries them, computed this way, as the operator's view of the connection needs.

use rustls::server::ClientHello;
use rustls::{ServerConfig, SupportedCipherSuite};

/// The (version, cipher suite) a handshake with this hello negotiates, or `None`
/// when no suite is shared (the handshake fails on that).
pub fn negotiation(
    hello: &ClientHello<'_>,
    config: &ServerConfig,
) -> Option<(&'static str, &'static str)> {
    let server = &config.crypto_provider().cipher_suites;
    let offered = hello.cipher_suites();
    let pick = |tls13: bool| {
        offered.iter().find_map(|c| {
            server
                .iter()
                .find(|s| s.suite() == *c && matches!(s, SupportedCipherSuite::Tls13(_)) == tls13)
        })
    };
    // The server's suite list already holds only what its TLS policy allows.
    let (version, suite) = match pick(true) {
        Some(s) => ("TLSv1.3", s),
        None => ("TLSv1.2", pick(false)?),
    };
    Some((version, suite.suite().as_str().unwrap_or("unknown")))
}
