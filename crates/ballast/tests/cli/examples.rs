//! The starter kit never rots: every `examples/*.toml` and the packaged config
//! pass the real `ballast check`, with the certificates `examples/certs.sh` makes.
//!
//! The examples are copied into a temporary directory with the certificates made
//! there (the script is idempotent; the source tree is left alone), so relative
//! certificate paths resolve as they do for a user who ran `examples/certs.sh`.
//! Globbing the folder means a new example is checked without being listed here;
//! the README's starter-kit table must name it too.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::check;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_passes_ballast_check() {
    let files = examples();
    assert!(files.len() >= 5, "examples/: {files:?}");
    let dir = std::env::temp_dir().join(format!("ballast-examples-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for _ in 0..2 {
        // Twice: the second run finds every file and leaves them.
        let out = Command::new("bash")
            .arg(root().join("examples/certs.sh"))
            .arg(dir.join("certs"))
            .output()
            .expect("run examples/certs.sh (needs bash and openssl)");
        assert!(
            out.status.success(),
            "examples/certs.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let key = std::fs::read_to_string(dir.join("certs/site.key")).expect("site.key");
    assert!(key.contains("PRIVATE KEY"), "{key}");

    let mut failed = Vec::new();
    for file in files.iter().chain([&root().join("packaging/ballast.toml")]) {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let copy = dir.join(&name);
        std::fs::copy(file, &copy).expect("copy example");
        let (code, out, err) = check(&copy);
        if code != 0 || !out.contains("valid") {
            failed.push(format!("{name}: exit {code}\n{out}{err}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_names_every_example() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    for file in examples() {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            readme.contains(&format!("`examples/{name}`")),
            "README.md does not name `examples/{name}`"
        );
    }
}
