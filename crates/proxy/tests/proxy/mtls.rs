//! Mutual TLS on listeners: `verify` (CA and CRL) with the certificate's fields as
//! headers, and `passthrough` with the presented chain as a header.

use ballast_testkit::pki::{path_str, Ca, TempDir};
use ballast_testkit::tls::{cert_der, pem_chain, url_decode, HttpsConn, TlsClient};
use ballast_testkit::{backends, eventually};

use crate::tls::https_ballast;
use crate::SOON;

fn header(reply: &ballast_testkit::Reply, name: &str) -> String {
    reply.json()["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("header {name} missing: {}", reply.text()))
        .to_string()
}

#[tokio::test]
async fn verify_accepts_a_good_client_and_refuses_missing_expired_foreign_and_revoked() {
    let bs = backends(1).await;
    let dir = TempDir::new("mtls");
    let (server_ca, client_ca, rogue_ca) = (
        Ca::new("Server CA"),
        Ca::new("Client CA"),
        Ca::new("Rogue CA"),
    );
    let cert = server_ca.server(&["localhost"]).toml(&dir, "site");
    let ca = dir.write("client-ca.pem", &client_ca.cert_pem);
    let crl = dir.write("client-ca.crl", &client_ca.crl(&[4004]));
    let lines = format!(
        "certificates = [{cert}]\nmtls = {{ mode = \"verify\", ca = {:?}, crls = [{:?}], headers = {{ subject = \"X-Subject\" }} }}",
        path_str(&ca),
        path_str(&crl)
    );
    let ballast = https_ballast(&bs, &lines).await;
    let with = |leaf| {
        TlsClient::build(
            &server_ca,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            Some(leaf),
            &[b"http/1.1"],
        )
    };

    let good = client_ca.client("alice", 1001);
    let tls = with(&good)
        .connect(ballast.addr, "localhost")
        .await
        .expect("good client");
    let mut conn = HttpsConn::new(tls).await;
    let reply = conn
        .get(
            "/",
            &[
                ("X-Subject", "CN=forged"),
                ("X-Client-Cert-Issuer", "CN=forged"),
            ],
        )
        .await
        .expect("request");
    assert_eq!(reply.status, 200);
    let subject = header(&reply, "x-subject");
    assert!(
        subject.contains("CN=alice") && subject.contains("O=Ballast Test"),
        "{subject}"
    );
    assert!(header(&reply, "x-client-cert-issuer").contains("CN=Client CA"));
    assert_eq!(
        u64::from_str_radix(&header(&reply, "x-client-cert-serial-number"), 16),
        Ok(1001)
    );
    let validity = header(&reply, "x-client-cert-validity");
    assert!(
        validity.starts_with("NotBefore=") && validity.contains(";NotAfter="),
        "{validity}"
    );
    let leaf = url_decode(&header(&reply, "x-client-cert-leaf"));
    assert_eq!(cert_der(&leaf), good.der);
    // The renamed header took the default's place.
    assert!(reply.json()["headers"]
        .get("x-client-cert-subject")
        .is_none());

    let base = ballast.server.tls_handshake_errors("public");
    let none = TlsClient::new(&server_ca);
    assert!(
        none.connect(ballast.addr, "localhost").await.is_err(),
        "no certificate"
    );
    let expired = client_ca.expired_client("old", 1002);
    assert!(
        with(&expired)
            .connect(ballast.addr, "localhost")
            .await
            .is_err(),
        "expired"
    );
    let foreign = rogue_ca.client("mallory", 1003);
    assert!(
        with(&foreign)
            .connect(ballast.addr, "localhost")
            .await
            .is_err(),
        "wrong CA"
    );
    let revoked = client_ca.client("revoked", 4004);
    assert!(
        with(&revoked)
            .connect(ballast.addr, "localhost")
            .await
            .is_err(),
        "revoked"
    );
    eventually("four refused handshakes counted", SOON, || async {
        ballast.server.tls_handshake_errors("public") >= base + 4
    })
    .await;
    // Refusals never disturbed the good client's connection.
    assert_eq!(conn.get("/again", &[]).await.expect("request").status, 200);
}

#[tokio::test]
async fn passthrough_sends_the_presented_chain_and_accepts_no_certificate() {
    let bs = backends(1).await;
    let dir = TempDir::new("passthrough");
    let (server_ca, any_ca) = (Ca::new("Server CA"), Ca::new("Anyone's CA"));
    let cert = server_ca.server(&["localhost"]).toml(&dir, "site");
    let lines = format!("certificates = [{cert}]\nmtls = {{ mode = \"passthrough\" }}");
    let ballast = https_ballast(&bs, &lines).await;

    let client = any_ca.client("bob", 55);
    let tls = TlsClient::build(
        &server_ca,
        &[&rustls::version::TLS13],
        Some(&client),
        &[b"h2"],
    )
    .connect(ballast.addr, "localhost")
    .await
    .expect("any certificate is accepted");
    let mut conn = HttpsConn::new(tls).await;
    let reply = conn
        .get("/", &[("X-Client-Cert", "forged")])
        .await
        .expect("request");
    let chain = pem_chain(&url_decode(&header(&reply, "x-client-cert")));
    assert_eq!(chain, vec![client.der.clone()]);
    assert!(reply.json()["headers"]
        .get("x-client-cert-subject")
        .is_none());

    let tls = TlsClient::new(&server_ca)
        .connect(ballast.addr, "localhost")
        .await
        .expect("no certificate is fine too");
    let mut conn = HttpsConn::new(tls).await;
    let reply = conn
        .get("/", &[("X-Client-Cert", "forged")])
        .await
        .expect("request");
    assert!(
        reply.json()["headers"].get("x-client-cert").is_none(),
        "{}",
        reply.text()
    );
}
