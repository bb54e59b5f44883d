//! Private helpers to pull typed fields out of decoded maps (JSON or msgpack alike), with a
//! typed error instead of a panic when a field has the wrong shape.

use rmpv::Value;

use crate::error::{Result, WireError};

/// The entries of a decoded object, consumed field by field.
pub(crate) struct Fields(pub(crate) Vec<(Value, Value)>);

impl Fields {
    pub(crate) fn from_value(v: Value, what: &str) -> Result<Self> {
        match v {
            Value::Map(m) => Ok(Fields(m)),
            _ => Err(WireError::shape(format!("{what} is not an object"))),
        }
    }

    /// Move the value of `key` out (None when absent). Maps here have a handful of keys, so a
    /// linear scan is cheaper than building an index.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.0
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| std::mem::replace(v, Value::Nil))
    }

    /// Like [`Fields::take`] but treats `null` as absent (JSON.stringify drops `undefined`,
    /// other encoders write null).
    pub(crate) fn take_present(&mut self, key: &str) -> Option<Value> {
        self.take(key).filter(|v| !v.is_nil())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k.as_str() == Some(key))
    }

    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>> {
        self.take_present(key).map(|v| string(v, key)).transpose()
    }

    pub(crate) fn req_string(&mut self, key: &str) -> Result<String> {
        self.string(key)?
            .ok_or_else(|| WireError::shape(format!("missing `{key}`")))
    }

    pub(crate) fn int(&mut self, key: &str) -> Result<Option<i64>> {
        self.take_present(key).map(|v| int(&v, key)).transpose()
    }

    pub(crate) fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        match self.take_present(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(_) => Err(WireError::shape(format!("`{key}` is not a boolean"))),
        }
    }

    pub(crate) fn rooms(&mut self, key: &str) -> Result<Vec<String>> {
        match self.take_present(key) {
            None => Ok(Vec::new()),
            Some(v) => rooms(v, key),
        }
    }
}

/// A string field; numbers are accepted and printed (JS rooms may be numbers).
pub(crate) fn string(v: Value, key: &str) -> Result<String> {
    match v {
        Value::String(s) => match s.into_str() {
            Some(s) => Ok(s),
            None => Err(WireError::shape(format!("`{key}` is not UTF-8"))),
        },
        Value::Integer(i) => Ok(i.to_string()),
        Value::F64(f) => Ok(crate::json::number_text(f)),
        _ => Err(WireError::shape(format!("`{key}` is not a string"))),
    }
}

pub(crate) fn int(v: &Value, key: &str) -> Result<i64> {
    match v {
        Value::Integer(i) => i.as_i64(),
        Value::F64(f) => crate::msgpack::integral(*f).and_then(|i| i.as_i64()),
        _ => None,
    }
    .ok_or_else(|| WireError::shape(format!("`{key}` is not an integer")))
}

/// A list of room names (a lone string is accepted as a one-room list).
pub(crate) fn rooms(v: Value, key: &str) -> Result<Vec<String>> {
    match v {
        Value::Array(items) => items.into_iter().map(|r| string(r, key)).collect(),
        Value::Nil => Ok(Vec::new()),
        other => Ok(vec![string(other, key)?]),
    }
}
