//! Event arguments for the emitter: JSON values (what backends usually hold), raw binary
//! (delivered to clients as binary attachments) or an already built wire value.

use sio_wire::Value;

/// One event argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A JSON value (`serde_json::json!(...)`).
    Json(serde_json::Value),
    /// Binary data: clients receive a `Buffer`/`ArrayBuffer`, as from Node's `Buffer`.
    Binary(Vec<u8>),
    /// A dynamic wire value (may nest binary inside objects).
    Value(Value),
}

impl Arg {
    /// A binary argument.
    pub fn binary(b: impl Into<Vec<u8>>) -> Self {
        Arg::Binary(b.into())
    }

    /// The wire value.
    pub fn into_value(self) -> Value {
        match self {
            Arg::Json(j) => sio_wire::json::from_serde(&j),
            Arg::Binary(b) => Value::Binary(b),
            Arg::Value(v) => v,
        }
    }
}

impl From<serde_json::Value> for Arg {
    fn from(v: serde_json::Value) -> Self {
        Arg::Json(v)
    }
}

impl From<Value> for Arg {
    fn from(v: Value) -> Self {
        Arg::Value(v)
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Value(Value::from(s))
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Value(Value::from(s))
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::Value(Value::from(n))
    }
}

impl From<bool> for Arg {
    fn from(b: bool) -> Self {
        Arg::Value(Value::Boolean(b))
    }
}
