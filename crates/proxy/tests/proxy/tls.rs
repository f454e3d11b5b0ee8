//! HTTPS listeners: certificates by SNI, TLS policy, ALPN h2, forged headers, and
//! TLS from ballast to TLS targets (health checks included).

use ballast_testkit::pki::{path_str, Ca, TempDir};
use ballast_testkit::tls::{peer_leaf, tls_target, HttpsConn, TlsClient};
use ballast_testkit::{backends, BackendHandle, Ballast, Client, Setup};

/// A ballast whose listener `public` is `https` with these extra listener lines.
pub async fn https_ballast(bs: &[BackendHandle], tls_lines: &str) -> Ballast {
    let mut setup = Setup::new(bs);
    setup.listener_extra = format!("protocol = \"https\"\n{tls_lines}");
    Ballast::start(&setup).await
}

#[tokio::test]
async fn sni_picks_exact_then_wildcard_then_the_first_certificate() {
    let bs = backends(1).await;
    let (dir, ca) = (TempDir::new("sni"), Ca::new("Test CA"));
    let default = ca.server(&["default.example.com"]);
    let exact = ca.server(&["api.example.com"]);
    let wild = ca.server(&["*.wild.example.com"]);
    let lines = format!(
        "certificates = [{}, {}, {}]",
        default.toml(&dir, "default"),
        exact.toml(&dir, "exact"),
        wild.toml(&dir, "wild")
    );
    let ballast = https_ballast(&bs, &lines).await;

    let client = TlsClient::new(&ca);
    let tls = client
        .connect(ballast.addr, "api.example.com")
        .await
        .expect("exact");
    assert_eq!(peer_leaf(&tls), exact.der);
    let tls = client
        .connect(ballast.addr, "x.wild.example.com")
        .await
        .expect("wildcard");
    assert_eq!(peer_leaf(&tls), wild.der);
    let tls = client
        .connect(ballast.addr, "API.Example.COM")
        .await
        .expect("case-insensitive");
    assert_eq!(peer_leaf(&tls), exact.der);

    // A wildcard covers one label only; unknown names and no SNI get the first.
    let any = TlsClient::any_server(&[b"http/1.1"]);
    for sni in ["a.b.wild.example.com", "unknown.example.com", "127.0.0.1"] {
        let tls = any.connect(ballast.addr, sni).await.expect("default");
        assert_eq!(peer_leaf(&tls), default.der, "{sni}");
    }

    // Requests flow, marked as HTTPS for the target.
    let tls = client
        .connect(ballast.addr, "api.example.com")
        .await
        .expect("exact");
    let mut conn = HttpsConn::new(tls).await;
    let reply = conn.get("/hello", &[]).await.expect("request");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["headers"]["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn tls13_policy_refuses_tls12_and_recommended_accepts_it() {
    let bs = backends(1).await;
    let (dir, ca) = (TempDir::new("policy"), Ca::new("Test CA"));
    let leaf = ca.server(&["localhost"]);
    let cert = leaf.toml(&dir, "site");
    let strict = https_ballast(
        &bs,
        &format!("certificates = [{cert}]\ntls_policy = \"tls13\""),
    )
    .await;
    let open = https_ballast(&bs, &format!("certificates = [{cert}]")).await;

    let tls12 = TlsClient::build(&ca, &[&rustls::version::TLS12], None, &[b"http/1.1"]);
    let tls13 = TlsClient::build(&ca, &[&rustls::version::TLS13], None, &[b"http/1.1"]);
    assert!(tls12.connect(strict.addr, "localhost").await.is_err());
    let tls = tls13
        .connect(strict.addr, "localhost")
        .await
        .expect("TLS 1.3");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    let tls = tls12
        .connect(open.addr, "localhost")
        .await
        .expect("TLS 1.2 under recommended");
    let suite = format!(
        "{:?}",
        tls.get_ref()
            .1
            .negotiated_cipher_suite()
            .expect("suite")
            .suite()
    );
    assert!(
        suite.contains("ECDHE") && (suite.contains("GCM") || suite.contains("CHACHA")),
        "{suite}"
    );
    let mut conn = HttpsConn::new(tls).await;
    assert_eq!(conn.get("/", &[]).await.expect("request").status, 200);

    ballast_testkit::eventually("refused handshake counted", crate::SOON, || async {
        strict.server.tls_handshake_errors("public") >= 1
    })
    .await;
    assert_eq!(open.server.tls_handshake_errors("public"), 0);
}

#[tokio::test]
async fn alpn_h2_serves_http2_and_http11_still_works() {
    let bs = backends(1).await;
    let (dir, ca) = (TempDir::new("alpn"), Ca::new("Test CA"));
    let cert = ca.server(&["localhost"]).toml(&dir, "site");
    let ballast = https_ballast(&bs, &format!("certificates = [{cert}]")).await;

    let h2 = TlsClient::build(&ca, &[&rustls::version::TLS13], None, &[b"h2", b"http/1.1"]);
    let tls = h2
        .connect(ballast.addr, "localhost")
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut conn = HttpsConn::new(tls).await;
    assert!(conn.is_h2());
    for i in 0..3 {
        let reply = conn
            .get(&format!("/h2/{i}"), &[])
            .await
            .expect("h2 request");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["path"], format!("/h2/{i}"));
        assert_eq!(reply.json()["headers"]["x-forwarded-proto"], "https");
    }

    let tls = TlsClient::new(&ca)
        .connect(ballast.addr, "localhost")
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut conn = HttpsConn::new(tls).await;
    assert!(!conn.is_h2());
    assert_eq!(conn.get("/h1", &[]).await.expect("h1 request").status, 200);
}

#[tokio::test]
async fn forged_client_cert_headers_are_removed_on_plain_listeners() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let req = http::Request::get(ballast.url("/"))
        .header("X-Client-Cert-Subject", "CN=admin")
        .header("X-Client-Cert", "forged")
        .header("X-Client-Cert-Leaf", "forged")
        .header("X-Kept", "1")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let reply = Client::http1().send(req).await.expect("request");
    let headers = &reply.json()["headers"];
    assert!(headers.get("x-client-cert-subject").is_none(), "{headers}");
    assert!(headers.get("x-client-cert").is_none(), "{headers}");
    assert!(headers.get("x-client-cert-leaf").is_none(), "{headers}");
    assert_eq!(headers["x-kept"], "1");
    assert_eq!(headers["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn tls_to_targets_verifies_them_sends_sni_and_a_client_certificate() {
    let bs = backends(1).await;
    let dir = TempDir::new("upstream");
    let (target_ca, client_ca) = (Ca::new("Target CA"), Ca::new("Ballast Client CA"));
    let target_leaf = target_ca.server(&["target.internal"]);
    let target = tls_target(&target_leaf, Some(&client_ca), bs[0].addr()).await;
    let ca_file = dir.write("target-ca.pem", &target_ca.cert_pem);
    let client_cert = client_ca.client("ballast", 7).toml(&dir, "ballast-client");

    let mut setup = Setup::new(&bs);
    setup.targets = vec![(target, 1)];
    setup.group_extra = format!(
        "tls = {{ ca = {:?}, server_name = \"target.internal\", client_cert = {client_cert} }}",
        path_str(&ca_file)
    );
    let ballast = Ballast::start(&setup).await;
    // Health checks speak TLS too: the target turns healthy.
    ballast.all_healthy().await;
    let reply = Client::http1()
        .get(&ballast.url("/through-tls"))
        .await
        .expect("request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["path"], "/through-tls");

    // A name the target's certificate does not hold fails verification: 502.
    let mut wrong = setup.clone();
    wrong.group_extra = format!(
        "tls = {{ ca = {:?}, server_name = \"other.internal\", client_cert = {client_cert} }}",
        path_str(&ca_file)
    );
    let bad = Ballast::start(&wrong).await;
    let reply = Client::http1().get(&bad.url("/")).await.expect("response");
    assert_eq!(reply.status, 502, "{}", reply.text());
}

#[tokio::test]
async fn handshake_failures_are_a_metric_and_sessions_are_in_the_access_log() {
    let bs = backends(1).await;
    let (dir, ca) = (TempDir::new("observe"), Ca::new("Test CA"));
    let cert = ca.server(&["localhost"]).toml(&dir, "site");
    let log = std::env::temp_dir().join(format!("ballast-tls-log-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut setup = Setup::new(&bs);
    setup.listener_extra = format!("protocol = \"https\"\ncertificates = [{cert}]");
    setup.access_log = log.display().to_string();
    let ballast = Ballast::start(&setup).await;

    // A plain-text request on the TLS port is a failed handshake.
    let mut plain = tokio::net::TcpStream::connect(ballast.addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    ballast_testkit::eventually("failed handshake counted", crate::SOON, || async {
        ballast.server.tls_handshake_errors("public") >= 1
    })
    .await;
    let text = ballast.server.metrics_text();
    assert!(
        text.contains("ballast_tls_handshake_errors_total{listener=\"public\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ballast_tls_reload_errors_total 0\n"),
        "{text}"
    );

    let tls = TlsClient::new(&ca)
        .connect(ballast.addr, "localhost")
        .await
        .expect("handshake");
    let mut conn = HttpsConn::new(tls).await;
    assert_eq!(conn.get("/", &[]).await.expect("request").status, 200);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    ballast_testkit::eventually("an access-log line", crate::SOON, || async {
        !read().is_empty()
    })
    .await;
    let line: serde_json::Value =
        serde_json::from_str(read().lines().next().expect("line")).expect("JSON line");
    assert_eq!(line["tls_protocol"], "TLSv1.3", "{line}");
    assert!(
        line["tls_cipher"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{line}"
    );
}
