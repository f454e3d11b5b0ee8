//! The parsed source of a config: a small tree of values that remember where they
//! came from.
//!
//! Control path only. The TOML file, and later the admin API's JSON body, are both
//! turned into this one tree, so that a single decoder (`decode.rs`) validates every
//! source the same way and reports positions when the source has them. TOML values
//! carry a line and column; JSON values carry none (their errors name the field path).

use std::fmt;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{ConfigError, ConfigErrors};

/// Where a value starts in its source text, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One value of the source tree.
#[derive(Clone, Debug)]
pub struct Node {
    pub value: Value,
    pub pos: Option<Pos>,
}

#[derive(Clone, Debug)]
pub enum Value {
    String(String),
    Integer(i64),
    /// A retry budget's ratio is the one float; datetimes exist to be reported
    /// as the wrong type with their position, rather than rejected by the parser.
    Float(f64),
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    /// Entries keep their source order, so errors come out in file order.
    Table(Vec<(Key, Node)>),
}

#[derive(Clone, Debug)]
pub struct Key {
    pub name: String,
    pub pos: Option<Pos>,
}

impl Value {
    /// The kind of value, as an error message says it ("found an integer").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Datetime => "a datetime",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// Maps byte offsets to line and column.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn pos(&self, text: &str, offset: usize) -> Pos {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = text
            .get(start..offset.min(text.len()))
            .map_or(1, |s| s.chars().count() + 1);
        Pos {
            line: line as u32,
            column: column as u32,
        }
    }
}

/// Parse TOML text into a source tree. A syntax error is reported with its position;
/// the parser recovers where it can, so several syntax errors come out at once.
pub fn from_toml(text: &str) -> Result<Node, ConfigErrors> {
    let lines = Lines::new(text);
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let errors = errors
            .into_iter()
            .map(|e| {
                let pos = e.span().map(|s| lines.pos(text, s.start));
                ConfigError::new("", pos, e.message().trim().to_string())
            })
            .collect();
        return Err(ConfigErrors(errors));
    }
    let pos = Some(lines.pos(text, root.span().start));
    Ok(Node {
        value: convert_table(root.into_inner(), &lines, text),
        pos,
    })
}

fn convert_table(table: DeTable<'_>, lines: &Lines, text: &str) -> Value {
    Value::Table(
        table
            .into_iter()
            .map(|(k, v)| {
                let key = Key {
                    pos: Some(lines.pos(text, k.span().start)),
                    name: k.into_inner().into_owned(),
                };
                (key, convert(v, lines, text))
            })
            .collect(),
    )
}

fn convert(value: Spanned<DeValue<'_>>, lines: &Lines, text: &str) -> Node {
    let pos = Some(lines.pos(text, value.span().start));
    let value = match value.into_inner() {
        DeValue::String(s) => Value::String(s.into_owned()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Value::Integer(n),
            // Out of i64 range: keep the text so the decoder can say what it found.
            Err(_) => Value::String(i.as_str().to_string()),
        },
        DeValue::Float(f) => Value::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Value::Bool(b),
        DeValue::Datetime(_) => Value::Datetime,
        DeValue::Array(items) => {
            Value::Array(items.into_iter().map(|v| convert(v, lines, text)).collect())
        }
        DeValue::Table(t) => convert_table(t, lines, text),
    };
    Node { value, pos }
}

/// Turn a JSON document into a source tree without positions (errors name the path).
pub fn from_json(value: &serde_json::Value) -> Node {
    let value = match value {
        serde_json::Value::Null => Value::Table(Vec::new()),
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value::Table(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    (
                        Key {
                            name: k.clone(),
                            pos: None,
                        },
                        from_json(v),
                    )
                })
                .collect(),
        ),
    };
    Node { value, pos: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let text = "a = 1\n[t]\n  b = \"x\"\n";
        let root = from_toml(text).expect("valid toml");
        let Value::Table(entries) = root.value else {
            panic!("root is a table")
        };
        let (_, t) = &entries[1];
        let Value::Table(inner) = &t.value else {
            panic!("t is a table")
        };
        let (key, value) = &inner[0];
        assert_eq!(key.pos, Some(Pos { line: 3, column: 3 }));
        assert_eq!(value.pos, Some(Pos { line: 3, column: 7 }));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let errs = from_toml("a = 1\nb = \n").expect_err("invalid toml");
        assert_eq!(errs.0[0].pos.map(|p| p.line), Some(2));
    }
}
