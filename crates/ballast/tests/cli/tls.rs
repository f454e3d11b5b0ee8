//! The connection log line of a refused mutual-TLS client, as an operator reads it.

use std::path::Path;

use ballast_testkit::pki::{path_str, Ca, TempDir};
use ballast_testkit::tls::TlsClient;
use ballast_testkit::{backends, BallastProcess, Setup};

use crate::{BIN, SOON};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_certificate_is_logged_with_version_cipher_and_reason() {
    let bs = backends(1).await;
    let dir = TempDir::new("mtls-log");
    let (server_ca, client_ca) = (Ca::new("Server CA"), Ca::new("Client CA"));
    let cert = server_ca.server(&["localhost"]).toml(&dir, "site");
    let ca = dir.write("client-ca.pem", &client_ca.cert_pem);
    let mut setup = Setup::new(&bs);
    setup.listener_extra = format!(
        "protocol = \"https\"\ncertificates = [{cert}]\nmtls = {{ mode = \"verify\", ca = {:?} }}",
        path_str(&ca)
    );
    let p = BallastProcess::spawn(Path::new(BIN), &setup.toml());

    // No client certificate: the handshake must fail.
    let refused = TlsClient::new(&server_ca)
        .connect(p.addr, "localhost")
        .await;
    assert!(
        refused.is_err(),
        "a client without a certificate is refused"
    );
    let line = p.wait_for_log("TLS handshake failed", SOON);
    for field in [
        "listener=public",
        "client=127.0.0.1:",
        "tls_version=\"TLSv1.3\"",
        "cipher=\"TLS13_",
        "handshake_ms=",
        "verify=\"failed\"",
        "reason=",
    ] {
        assert!(line.contains(field), "{field} missing in: {line}");
    }
}
