//! The config as a TOML file: what `GET /api/v1/config?format=toml` and
//! `ballast config export` write, and what `ballast check` and `serve` read back.
//!
//! Control path only. The model's `Serialize` impls already write the shape the
//! decoder reads — the admin API's JSON relies on it: durations `"5s"`, sizes
//! `"64KiB"`, addresses `IP:PORT`, optional fields left out when unset, the
//! access log as the file writes it — so the TOML is those same impls driven by
//! the `toml` serialiser, not a second serialiser that could drift. Lists of
//! tables come out as arrays of tables (`[[listeners]]`, `[[listeners.rules]]`),
//! nested tables as tables, and keys in the model's order (`toml`'s
//! `preserve_order`), so the text reads like a hand-written file and is
//! deterministic: export → parse → export gives the same bytes, and parse →
//! export → parse the same `Config` (`tests_export.rs`). Every value in effect is
//! written, defaults included: a default that depends on another key (a health
//! check's `timeout`) is written as the value in effect, which reads back to the
//! same `Config`.

use crate::Config;

/// Why a config could not be written as TOML (a value TOML cannot hold, such as
/// an integer above `i64::MAX`; none of the model's values are).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the config as TOML: {0}")]
pub struct ExportError(String);

impl Config {
    /// The config as the text of a TOML file that [`Config::from_toml`] reads back
    /// to an equal `Config`. File paths are written as the model holds them
    /// (already resolved against the directory of the file they came from).
    pub fn to_toml(&self) -> Result<String, ExportError> {
        let table = toml::Table::try_from(self).map_err(|e| ExportError(e.to_string()))?;
        toml::to_string_pretty(&table).map_err(|e| ExportError(e.to_string()))
    }

    /// The fleet's tables only (cluster mode: `ballast cluster export`), without
    /// a node's own (`crate::NODE_TABLES`).
    pub fn to_fleet_toml(&self) -> Result<String, ExportError> {
        let mut table = toml::Table::try_from(self).map_err(|e| ExportError(e.to_string()))?;
        for t in crate::NODE_TABLES {
            table.remove(t);
        }
        toml::to_string_pretty(&table).map_err(|e| ExportError(e.to_string()))
    }
}
