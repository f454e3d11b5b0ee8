//! The `[admin]` table of issue 25: a non-loopback address locked unless told
//! otherwise, token files read and checked, TLS files loaded; every misuse at its
//! key with line and column, and no token's content in any message.

use std::path::PathBuf;

use super::*;
use crate::test_fixture::assert_error;

/// A directory with token files, a certificate with its key, another key, and a
/// CA bundle, all generated now.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(tag: &str) -> Files {
        let dir =
            std::env::temp_dir().join(format!("ballast-config-admin-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (name, names) in [("admin", "localhost"), ("other", "other")] {
            let c = rcgen::generate_simple_self_signed(vec![names.to_string()]).expect("cert");
            std::fs::write(dir.join(format!("{name}.pem")), c.cert.pem()).expect("write");
            let key = c.signing_key.serialize_pem();
            std::fs::write(dir.join(format!("{name}.key")), key).expect("write");
        }
        for (name, text) in [
            ("write.token", "w-SECRET-1\n"),
            ("read.token", "  r-SECRET-2 \n"),
            ("same.token", "w-SECRET-1"),
            ("empty.token", " \n\n"),
        ] {
            std::fs::write(dir.join(name), text).expect("write");
        }
        Files { dir }
    }

    /// A config whose `[admin]` table is `admin` (paths relative to the directory).
    fn config(&self, admin: &str) -> Result<Config, ConfigErrors> {
        let text = format!(
            "[admin]\n{admin}\n\n[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:8080\"\n\
             default_action = {{ type = \"fixed_response\", status = 200 }}\n"
        );
        Config::from_toml_in(&text, &self.dir)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn no_secret_in(errs: &ConfigErrors) {
    let text = errs.to_string();
    assert!(!text.contains("SECRET"), "a token leaked into: {text}");
}

#[test]
fn every_key_is_read_resolved_and_round_trips() {
    let f = Files::new("keys");
    let c = f
        .config(
            r#"bind = "0.0.0.0:9900"
token_file = "write.token"
read_token_file = "read.token"
tls = { cert = "admin.pem", key = "admin.key", client_ca = "other.pem" }"#,
        )
        .expect("valid");
    let a = &c.admin;
    assert_eq!(a.bind, "0.0.0.0:9900".parse().expect("addr"));
    assert_eq!(a.token_file, Some(f.dir.join("write.token")));
    assert_eq!(a.read_token_file, Some(f.dir.join("read.token")));
    assert!(!a.allow_open_writes);
    let tls = a.tls.as_ref().expect("tls");
    assert_eq!(tls.cert, f.dir.join("admin.pem"));
    assert_eq!(tls.client_ca, Some(f.dir.join("other.pem")));
    // The admin API's JSON form reads back the same; no token content in it.
    let json = serde_json::to_value(&c).expect("json");
    assert!(!json.to_string().contains("SECRET"), "{json}");
    assert_eq!(Config::from_json(&json).expect("round trip"), c);
    // Defaults serialize as before: only `bind`.
    let plain = f.config("").expect("valid");
    let json = serde_json::to_value(&plain.admin).expect("json");
    assert_eq!(json, serde_json::json!({ "bind": "127.0.0.1:9900" }));
}

#[test]
fn a_non_loopback_address_needs_a_token_or_an_explicit_opt_out() {
    let f = Files::new("open");
    for bind in ["0.0.0.0:9900", "10.1.2.3:9900", "[::]:9900"] {
        let errs = f
            .config(&format!("bind = \"{bind}\""))
            .expect_err("refused");
        assert_error(&errs, "admin.bind", 2, "is not a loopback address");
        assert!(errs.to_string().contains("admin.token_file"), "{errs}");
        assert!(errs.to_string().contains("(line 2, column 8)"), "{errs}");
    }
    for bind in ["127.0.0.1:9900", "127.0.0.2:0", "[::1]:9900"] {
        f.config(&format!("bind = \"{bind}\""))
            .expect("loopback is fine");
    }
    let c = f
        .config("bind = \"0.0.0.0:9900\"\nallow_open_writes = true")
        .expect("opted out");
    assert!(c.admin.allow_open_writes && c.admin.open_writes_exposed());
    let c = f
        .config("bind = \"0.0.0.0:9900\"\ntoken_file = \"write.token\"")
        .expect("locked");
    assert!(!c.admin.open_writes_exposed());
    let errs = f
        .config("allow_open_writes = \"yes\"")
        .expect_err("not a boolean");
    assert_error(
        &errs,
        "admin.allow_open_writes",
        2,
        "expected true or false",
    );
}

#[test]
fn token_files_must_exist_hold_a_token_and_differ() {
    let f = Files::new("tokens");
    let errs = f
        .config("token_file = \"missing.token\"")
        .expect_err("missing");
    assert_error(&errs, "admin.token_file", 2, "cannot read");
    let errs = f
        .config("token_file = \"write.token\"\nread_token_file = \"empty.token\"")
        .expect_err("empty");
    assert_error(&errs, "admin.read_token_file", 3, "is empty");
    let errs = f
        .config("token_file = \"write.token\"\nread_token_file = \"same.token\"")
        .expect_err("same token");
    assert_error(
        &errs,
        "admin.read_token_file",
        3,
        "same token as token_file",
    );
    no_secret_in(&errs);
    let errs = f
        .config("read_token_file = \"read.token\"")
        .expect_err("read without write");
    assert_error(&errs, "admin.read_token_file", 2, "needs token_file");
    let errs = f.config("token_file = \"\"").expect_err("empty path");
    assert_error(&errs, "admin.token_file", 2, "empty file path");
    let errs = f.config("tokn_file = \"write.token\"").expect_err("typo");
    assert_error(&errs, "admin.tokn_file", 2, "did you mean `token_file`");
}

#[test]
fn tls_files_are_loaded_and_checked() {
    let f = Files::new("tls");
    let errs = f
        .config(r#"tls = { cert = "admin.pem", key = "other.key" }"#)
        .expect_err("mismatched key");
    assert_error(&errs, "admin.tls.key", 2, "");
    let errs = f
        .config(r#"tls = { cert = "nope.pem", key = "admin.key" }"#)
        .expect_err("missing cert");
    assert_error(&errs, "admin.tls.cert", 2, "cannot read");
    let errs = f
        .config(r#"tls = { cert = "admin.pem", key = "admin.pem" }"#)
        .expect_err("a certificate is not a key");
    assert_error(&errs, "admin.tls.key", 2, "no private key");
    let errs = f
        .config(r#"tls = { cert = "admin.pem", key = "admin.key", client_ca = "write.token" }"#)
        .expect_err("not a CA bundle");
    assert_error(&errs, "admin.tls.client_ca", 2, "no certificate");
    no_secret_in(&errs);
    let errs = f
        .config(r#"tls = { cert = "admin.pem" }"#)
        .expect_err("no key");
    assert_error(&errs, "admin.tls.key", 2, "missing required field");
}
