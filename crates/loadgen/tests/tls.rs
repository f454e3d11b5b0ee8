//! https: a server with a certificate made at test time, trusted through --cacert or
//! accepted with --insecure, over HTTP/1.1 and HTTP/2 (ALPN).

mod common;

use std::sync::Arc;

use ballast_loadgen::measure;
use common::{args, start, temp_path, Options};

fn tls_server(alpn: &[&[u8]]) -> (common::Server, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let server = start(Options {
        tls: Some(Arc::new(config)),
        ..Options::default()
    });
    (server, cert.cert.pem())
}

#[test]
fn https_with_cacert_and_with_insecure() {
    let (server, pem) = tls_server(&[b"http/1.1"]);
    let ca = temp_path("ca.pem");
    std::fs::write(&ca, pem).expect("write ca");
    let url = format!("https://localhost:{}/", server.addr.port());
    let ca_arg = ca.to_string_lossy().into_owned();
    let s = measure(&args(&[
        "-c",
        "2",
        "-n",
        "50",
        "--cacert",
        &ca_arg,
        "--threads",
        "1",
        &url,
    ]))
    .expect("trusted through --cacert");
    assert_eq!(s.requests, 50);
    let s = measure(&args(&[
        "-c",
        "2",
        "-n",
        "50",
        "--insecure",
        "--threads",
        "1",
        &url,
    ]))
    .expect("accepted with --insecure");
    assert_eq!(s.requests, 50);
    let _ = std::fs::remove_file(&ca);
}

#[test]
fn https_http2_negotiates_h2() {
    let (server, _) = tls_server(&[b"h2", b"http/1.1"]);
    let url = format!("https://localhost:{}/", server.addr.port());
    let s = measure(&args(&[
        "--http2",
        "-c",
        "1",
        "--streams",
        "4",
        "-n",
        "40",
        "--insecure",
        "--threads",
        "1",
        &url,
    ]))
    .expect("run");
    assert_eq!(s.requests, 40);
    assert_eq!(
        server
            .counts
            .http2_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        40
    );
}

#[test]
fn an_untrusted_certificate_fails_before_the_run() {
    let (server, _) = tls_server(&[b"http/1.1"]);
    let other =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let ca = temp_path("other-ca.pem");
    std::fs::write(&ca, other.cert.pem()).expect("write ca");
    let url = format!("https://localhost:{}/", server.addr.port());
    let ca_arg = ca.to_string_lossy().into_owned();
    let err = measure(&args(&["-n", "5", "--cacert", &ca_arg, &url])).expect_err("untrusted");
    let _ = std::fs::remove_file(&ca);
    assert!(format!("{err:#}").contains("cannot connect"), "{err:#}");
}
