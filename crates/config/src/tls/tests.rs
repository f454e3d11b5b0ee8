//! TLS config: files loaded and checked at decode time, each problem reported at
//! the position of the string that names the file.

use std::path::{Path, PathBuf};

use crate::*;

/// A fresh directory with a certificate and key pair for `localhost`, another
/// pair, a CA bundle and junk, all generated now.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(tag: &str) -> Files {
        let dir =
            std::env::temp_dir().join(format!("ballast-config-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (name, names) in [
            ("site", vec!["localhost", "*.example.com"]),
            ("other", vec!["other"]),
        ] {
            let names: Vec<String> = names.into_iter().map(String::from).collect();
            let c = rcgen::generate_simple_self_signed(names).expect("certificate");
            std::fs::write(dir.join(format!("{name}.pem")), c.cert.pem()).expect("write");
            std::fs::write(
                dir.join(format!("{name}.key")),
                c.signing_key.serialize_pem(),
            )
            .expect("write");
        }
        std::fs::write(dir.join("junk.pem"), "not a certificate\n").expect("write");
        Files { dir }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(listener: &str, group: &str) -> String {
    format!(
        r#"
[[listeners]]
name = "tls"
bind = "127.0.0.1:8443"
protocol = "https"
default_action = {{ type = "forward", target_group = "g" }}
{listener}

[[target_groups]]
name = "g"
targets = []
{group}
"#
    )
}

fn check(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    Config::from_toml_in(text, base)
}

/// (line, column) of the first occurrence of `needle` in `text`, 1-based.
fn pos_of(text: &str, needle: &str) -> (u32, u32) {
    let at = text.find(needle).expect("needle in text");
    let line = text[..at].matches('\n').count() as u32 + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col as u32)
}

fn assert_error_at(errs: &ConfigErrors, path: &str, (line, col): (u32, u32), needle: &str) {
    assert!(
        errs.iter().any(|e| e.path == path
            && e.line == Some(line)
            && e.column == Some(col)
            && e.message.contains(needle)),
        "expected {path} at {line}:{col} containing {needle:?}; got:\n{errs}"
    );
}

#[test]
fn https_listener_reads_every_tls_field_relative_to_the_config() {
    let f = Files::new("full");
    std::fs::write(
        f.dir.join("ca.pem"),
        std::fs::read(f.dir.join("other.pem")).expect("read"),
    )
    .expect("write");
    let text = config(
        r#"certificates = [{ cert = "site.pem", key = "site.key" }, { cert = "other.pem", key = "other.key" }]
tls_policy = "tls13"
mtls = { mode = "verify", ca = "ca.pem", headers = { subject = "X-Subject" } }"#,
        r#"tls = { enabled = true, ca = "ca.pem", server_name = "api.internal", client_cert = { cert = "site.pem", key = "site.key" } }"#,
    );
    let c = check(&text, &f.dir).expect("valid");
    let tls = c.listeners[0].tls.as_ref().expect("tls");
    assert_eq!(c.listeners[0].protocol, ListenerProtocol::Https);
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(tls.certificates[0].cert, f.dir.join("site.pem"));
    assert_eq!(tls.tls_policy, TlsPolicy::Tls13);
    assert_eq!(tls.mtls.mode, MtlsMode::Verify);
    assert_eq!(tls.mtls.headers.subject, "X-Subject");
    assert_eq!(tls.mtls.headers.issuer, "X-Client-Cert-Issuer");
    let g = c.target_groups[0].tls.as_ref().expect("group tls");
    assert_eq!(g.server_name.as_deref(), Some("api.internal"));
    assert!(!g.insecure_skip_verify);
    // The model serializes paths, never key material, and reads back the same.
    let mut json = serde_json::to_value(&c).expect("serialize");
    // (`access_log` does not round-trip through JSON yet; not a TLS matter.)
    json.as_object_mut().expect("object").remove("access_log");
    assert_eq!(
        json["listeners"][0]["certificates"][0]["key"],
        f.dir.join("site.key").display().to_string()
    );
    assert_eq!(Config::from_json(&json).expect("round trip"), c);
    // As TOML (`GET /api/v1/config?format=toml`), with the resolved absolute paths.
    let exported = c.to_toml().expect("export");
    let back = Config::from_toml(&exported).expect("the export reads back");
    assert_eq!(back, c);
    assert_eq!(back.to_toml().expect("again"), exported);
    assert_eq!(
        material::dns_names(&material::cert_chain(&f.dir.join("site.pem")).expect("chain")[0]),
        ["localhost", "*.example.com"]
    );
}

use crate::tls::material;

#[test]
fn missing_cert_file_is_reported_with_position() {
    let f = Files::new("missing");
    let text = config(
        r#"certificates = [{ cert = "nope.pem", key = "site.key" }]"#,
        "",
    );
    let errs = check(&text, &f.dir).expect_err("invalid");
    assert_error_at(
        &errs,
        "listeners[0].certificates[0].cert",
        pos_of(&text, "\"nope.pem\""),
        "cannot read",
    );
}

#[test]
fn unparsable_pem_and_mismatched_pairs_are_errors() {
    let f = Files::new("bad");
    let text = config(
        r#"certificates = [{ cert = "junk.pem", key = "site.key" }, { cert = "site.pem", key = "other.key" }, { cert = "site.pem", key = "junk.pem" }]"#,
        "",
    );
    let errs = check(&text, &f.dir).expect_err("invalid");
    assert_error_at(
        &errs,
        "listeners[0].certificates[0].cert",
        pos_of(&text, "\"junk.pem\""),
        "no certificate",
    );
    assert_error_at(
        &errs,
        "listeners[0].certificates[1].key",
        pos_of(&text, "\"other.key\""),
        "does not match",
    );
    let junk_key = text.rfind("\"junk.pem\"").expect("second junk");
    let line = text[..junk_key].matches('\n').count() as u32 + 1;
    assert!(
        errs.iter()
            .any(|e| e.path == "listeners[0].certificates[2].key"
                && e.line == Some(line)
                && e.message.contains("no private key")),
        "{errs}"
    );
}

#[test]
fn tls_keys_on_http_listeners_and_verify_without_ca_are_errors() {
    let f = Files::new("misuse");
    let text = config(
        r#"certificates = [{ cert = "site.pem", key = "site.key" }]
mtls = { mode = "verify" }"#,
        "",
    )
    .replace("protocol = \"https\"", "protocol = \"http\"");
    let errs = check(&text, &f.dir).expect_err("invalid");
    assert_error_at(
        &errs,
        "listeners[0].certificates",
        pos_of(&text, "[{ cert"),
        "only to protocol = \"https\"",
    );
    let text = config(
        r#"certificates = [{ cert = "site.pem", key = "site.key" }]
mtls = { mode = "verify", crls = ["junk.pem"] }
tls_policy = "tls10""#,
        r#"tls = { insecure_skip_verify = "yes" }"#,
    );
    let errs = check(&text, &f.dir).expect_err("invalid");
    assert_error_at(
        &errs,
        "listeners[0].mtls.ca",
        pos_of(&text, "{ mode"),
        "needs `ca`",
    );
    assert_error_at(
        &errs,
        "listeners[0].mtls.crls[0]",
        pos_of(&text, "\"junk.pem\""),
        "no CRL",
    );
    assert_error_at(
        &errs,
        "listeners[0].tls_policy",
        pos_of(&text, "\"tls10\""),
        "allowed: \"recommended\", \"tls13\"",
    );
    assert_error_at(
        &errs,
        "target_groups[0].tls.insecure_skip_verify",
        pos_of(&text, "\"yes\""),
        "expected a boolean",
    );
}

#[test]
fn http2_groups_read_their_tls_files_and_report_bad_ones_in_place() {
    const LISTENER: &str = r#"certificates = [{ cert = "site.pem", key = "site.key" }]"#;
    let f = Files::new("h2");
    let group = r#"protocol = "http2"
tls = { ca = "other.pem", server_name = "other", client_cert = { cert = "site.pem", key = "site.key" } }"#;
    let c = check(&config(LISTENER, group), &f.dir).expect("valid");
    let g = &c.target_groups[0];
    assert_eq!(g.protocol, TargetProtocol::Http2);
    let tls = g.tls.as_ref().expect("tls");
    assert_eq!(tls.ca.as_deref(), Some(f.dir.join("other.pem").as_path()));
    assert_eq!(tls.server_name.as_deref(), Some("other"));
    assert!(tls.client_cert.is_some());

    let text = config(
        LISTENER,
        r#"protocol = "http2"
tls = { ca = "junk.pem", client_cert = { cert = "site.pem", key = "other.key" } }"#,
    );
    let errs = check(&text, &f.dir).expect_err("invalid");
    assert_error_at(
        &errs,
        "target_groups[0].tls.ca",
        pos_of(&text, "\"junk.pem\""),
        "",
    );
    assert_error_at(
        &errs,
        "target_groups[0].tls.client_cert.key",
        pos_of(&text, "\"other.key\""),
        "does not match",
    );
}
