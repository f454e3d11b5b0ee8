//! TLS files changing under a running listener: new handshakes see the new files,
//! open connections carry on, and a broken file keeps the last good set.

use ballast_testkit::pki::{Ca, TempDir};
use ballast_testkit::tls::{peer_leaf, HttpsConn, TlsClient};
use ballast_testkit::{backends, eventually};

use crate::tls::https_ballast;
use crate::SOON;

#[tokio::test]
async fn a_changed_certificate_applies_to_new_handshakes_and_spares_open_connections() {
    let bs = backends(1).await;
    let (dir, ca) = (TempDir::new("reload"), Ca::new("Test CA"));
    let v1 = ca.server(&["localhost"]);
    let lines = format!("certificates = [{}]", v1.toml(&dir, "site"));
    let ballast = https_ballast(&bs, &lines).await;
    let client = TlsClient::new(&ca);

    let tls = client.connect(ballast.addr, "localhost").await.expect("v1");
    assert_eq!(peer_leaf(&tls), v1.der);
    let mut open = HttpsConn::new(tls).await;
    assert_eq!(open.get("/before", &[]).await.expect("request").status, 200);

    // Replace the files; the background watcher notices within a few seconds.
    let v2 = ca.server(&["localhost"]);
    v2.write(&dir, "site");
    eventually("new handshakes get the new certificate", SOON, || async {
        let tls = client
            .connect(ballast.addr, "localhost")
            .await
            .expect("handshake");
        peer_leaf(&tls) == v2.der
    })
    .await;
    assert_eq!(
        open.get("/after", &[])
            .await
            .expect("old connection")
            .status,
        200
    );

    // A config apply (SIGHUP's path) reads the files again as well.
    let v3 = ca.server(&["localhost"]);
    v3.write(&dir, "site");
    let config = ballast.server.snapshot().config.as_ref().clone();
    ballast.server.apply(config).await.expect("apply");
    let tls = client.connect(ballast.addr, "localhost").await.expect("v3");
    assert_eq!(peer_leaf(&tls), v3.der);
    assert_eq!(
        open.get("/still", &[])
            .await
            .expect("old connection")
            .status,
        200
    );
    assert_eq!(ballast.server.tls_reload_errors(), 0);
}

#[tokio::test]
async fn a_broken_file_keeps_the_last_good_certificate_and_is_counted() {
    let bs = backends(1).await;
    let (dir, ca) = (TempDir::new("broken"), Ca::new("Test CA"));
    let v1 = ca.server(&["localhost"]);
    let lines = format!("certificates = [{}]", v1.toml(&dir, "site"));
    let ballast = https_ballast(&bs, &lines).await;
    let client = TlsClient::new(&ca);
    let before = ballast.server.tls_reload_errors();

    dir.write(
        "site.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    ballast.server.reload_tls_files().await;
    assert_eq!(ballast.server.tls_reload_errors(), before + 1);
    let tls = client
        .connect(ballast.addr, "localhost")
        .await
        .expect("old certificate");
    assert_eq!(peer_leaf(&tls), v1.der);
    // Reported once, not at every poll.
    assert_eq!(ballast.server.reload_tls_files().await, 0);
    assert_eq!(ballast.server.tls_reload_errors(), before + 1);

    // A mismatched key is refused the same way; a good pair then loads.
    let other = ca.server(&["localhost"]);
    dir.write("site.pem", &other.cert_pem);
    ballast.server.reload_tls_files().await;
    assert_eq!(ballast.server.tls_reload_errors(), before + 2);
    dir.write("site.key", &other.key_pem);
    assert_eq!(ballast.server.reload_tls_files().await, 1);
    let tls = client
        .connect(ballast.addr, "localhost")
        .await
        .expect("new pair");
    assert_eq!(peer_leaf(&tls), other.der);
}
