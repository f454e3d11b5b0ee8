//! The secret files a config names, and a warning for each that other users can
//! read.
//!
//! Control path, at start. Secrets are the admin tokens, the admin listener's TLS
//! key, the listeners' TLS keys, the keys of client certificates presented to
//! targets, and the stickiness key. A file whose mode grants anything to group or
//! others (`mode & 0o077`) is named in a WARN with its key and mode — never its
//! content. It is a warning, not an error: deployments that give a group read
//! access on purpose (a secrets agent's group, say) keep working.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use ballast_config::Config;

/// Every secret file of `config`, with the key that names it.
pub fn secret_files(config: &Config) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let admin = &config.admin;
    let mut add = |key: String, p: &Option<PathBuf>| {
        if let Some(p) = p {
            out.push((key, p.clone()));
        }
    };
    add("admin.token_file".into(), &admin.token_file);
    add("admin.read_token_file".into(), &admin.read_token_file);
    add(
        "admin.tls.key".into(),
        &admin.tls.as_ref().map(|t| t.key.clone()),
    );
    add(
        "server.stickiness_key_file".into(),
        &config.server.stickiness_key_file,
    );
    for (i, l) in config.listeners.iter().enumerate() {
        for (j, c) in l.tls.iter().flat_map(|t| &t.certificates).enumerate() {
            add(
                format!("listeners[{i}].certificates[{j}].key"),
                &Some(c.key.clone()),
            );
        }
    }
    for (i, g) in config.target_groups.iter().enumerate() {
        let key = g
            .tls
            .as_ref()
            .and_then(|t| t.client_cert.as_ref())
            .map(|c| c.key.clone());
        add(format!("target_groups[{i}].tls.client_cert.key"), &key);
    }
    out
}

/// The secret files readable or writable by group or others, with their mode.
pub fn exposed_secret_files(config: &Config) -> Vec<(String, PathBuf, u32)> {
    secret_files(config)
        .into_iter()
        .filter_map(|(key, path)| {
            let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o777;
            (mode & 0o077 != 0).then_some((key, path, mode))
        })
        .collect()
}

/// Log a WARN for each secret file others can read.
pub fn warn_exposed_secret_files(config: &Config) {
    for (key, path, mode) in exposed_secret_files(config) {
        tracing::warn!(
            key = %key, file = %path.display(), mode = %format!("{mode:04o}"),
            "secret file is accessible to other users; chmod 600 it"
        );
    }
}
