//! Every input under `fuzz/regressions/<target>/` (each that ever crashed a
//! target, and a minimised corpus of interesting cases) replayed through the
//! target's check on stable, as part of `cargo test`.

use std::fs;
use std::path::PathBuf;

use super::TARGETS;

fn regressions() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions")
}

#[test]
fn every_regression_input_passes_its_check() {
    let mut replayed = 0;
    for (name, check) in TARGETS {
        let dir = regressions().join(name);
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut files: Vec<PathBuf> = entries.map(|e| e.expect("entry").path()).collect();
        files.sort();
        assert!(!files.is_empty(), "no regression inputs for {name}");
        for file in files {
            let data = fs::read(&file).expect("readable");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{name}: {} fails its check",
                file.display()
            );
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len());
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let bins = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (name, _) in TARGETS {
        assert!(
            bins.join(format!("{name}.rs")).is_file(),
            "fuzz target {name}"
        );
    }
}
