//! `ballast config export`: a config kept in a state directory, as a TOML file.
//!
//! Control path, offline: it reads `state.dir` as `ballast serve` would (the
//! version the admin API persisted, or one that the file dropped and the history
//! kept) and prints it with `Config::to_toml`, so the output is a file that
//! `ballast check` and `serve` accept. The running config of a live process is
//! `GET /api/v1/config?format=toml` instead. Nothing here writes.

use std::path::Path;

use ballast_admin::Store;

/// The TOML text of the persisted config of `dir`, or of its dropped `history`
/// version.
pub fn run(dir: &Path, history: Option<u64>) -> anyhow::Result<String> {
    let store = Store::new(dir);
    let (version, config) = match history {
        None => match store.peek()? {
            Some(p) => (p.version, p.config),
            None => anyhow::bail!(
                "{} holds no persisted config (the admin API never changed one): the config file is what runs",
                store.path().display()
            ),
        },
        Some(v) => match store.load_history(v, None)? {
            Some(c) => (v, c),
            None => {
                let kept: Vec<String> = store
                    .history_versions()
                    .iter()
                    .map(u64::to_string)
                    .collect();
                anyhow::bail!(
                    "{} is not kept; kept versions: {}",
                    store.history_path(v).display(),
                    if kept.is_empty() { "none".to_string() } else { kept.join(", ") }
                )
            }
        },
    };
    let what = if history.is_some() {
        "dropped version"
    } else {
        "persisted version"
    };
    Ok(format!(
        "# ballast config, {what} {version} of {} (ballast config export).\n\
         # Relative file paths are relative to the directory ballast runs in.\n\n{}",
        dir.display(),
        config.to_toml()?
    ))
}
