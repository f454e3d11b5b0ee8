//! The config as a TOML file: what `GET /api/v1/config?format=toml` and
//! `ballast config export` write, and what `ballast check` and `serve` read back.
//!
//! Control path only. The model already serialises to the admin API's JSON in the
//! shape the decoder reads (durations `"5s"`, sizes `"64KiB"`, addresses as
//! `IP:PORT`, optional fields left out when unset, `access_log` as the file writes
//! it), so the TOML is that same tree written in TOML's syntax rather than a second
//! serialiser that could drift: JSON `null` (an unset option) is left out, integers
//! stay integers, the one float (a retry budget's ratio) stays a float, and objects
//! inside arrays become arrays of tables (`[[listeners]]`, `[[listeners.rules]]`).
//! Keys keep the model's order, so the text is deterministic: export → parse →
//! export gives the same bytes, and parse → export → parse the same `Config`.
//! What the model holds is written, defaults included, as resolved values — a
//! default that depends on another key (a health check's `timeout`) is written as
//! the value in effect, which reads back to the same `Config`.

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
        let json = serde_json::to_value(self).map_err(|e| ExportError(e.to_string()))?;
        match to_toml_value(json)? {
            Some(toml::Value::Table(t)) => {
                toml::to_string_pretty(&t).map_err(|e| ExportError(e.to_string()))
            }
            _ => Err(ExportError("the config is not a table".into())),
        }
    }
}

/// A JSON value as a TOML one; `None` for `null` (an unset option, left out).
fn to_toml_value(value: serde_json::Value) -> Result<Option<toml::Value>, ExportError> {
    use serde_json::Value as J;
    Ok(Some(match value {
        J::Null => return Ok(None),
        J::Bool(b) => toml::Value::Boolean(b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(f)) if n.is_f64() => toml::Value::Float(f),
            _ => return Err(ExportError(format!("{n} does not fit a TOML integer"))),
        },
        J::String(s) => toml::Value::String(s),
        J::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(v) = to_toml_value(item)? {
                    out.push(v);
                }
            }
            toml::Value::Array(out)
        }
        J::Object(map) => {
            let mut table = toml::Table::new();
            for (k, v) in map {
                if let Some(v) = to_toml_value(v)? {
                    table.insert(k, v);
                }
            }
            toml::Value::Table(table)
        }
    }))
}
