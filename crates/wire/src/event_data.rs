//! Conversion between the Node packet data (`[event, ...args]` as a dynamic value, binary as
//! `Value::Binary`) and the form socketioxide's common parser keeps event data in: a JSON text
//! `["event", arg...]` whose binary arguments are `{"_placeholder":true,"num":N}` objects, plus
//! the attachments (`socketioxide_core::Value::Str(Str, Option<VecDeque<Bytes>>)`).
//!
//! This runs once per broadcast per node (not per socket): one pass, no intermediate
//! `serde_json::Value`, and binary moves instead of copying where the input is owned.

use std::collections::VecDeque;

use bytes::Bytes;
use rmpv::Value;

use crate::error::{Result, WireError};
use crate::json::{self, BinaryMode};

/// Socketioxide's form of event data: JSON text with placeholders, and the attachments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlaceholderJson {
    /// `["event", arg...]` as JSON text (use `Str::from(text)` on the socketioxide side).
    pub text: String,
    /// Binary attachments in placeholder order (`Some(attachments)` when non-empty).
    pub attachments: VecDeque<Bytes>,
}

impl PlaceholderJson {
    /// The attachments as socketioxide wants them: `None` when there are none.
    pub fn attachments_opt(self) -> (String, Option<VecDeque<Bytes>>) {
        let att = (!self.attachments.is_empty()).then_some(self.attachments);
        (self.text, att)
    }
}

/// Node packet data → socketioxide form, borrowing (binary is copied into the attachments).
pub fn to_placeholder_json(data: &Value) -> Result<PlaceholderJson> {
    let mut out = Vec::with_capacity(64);
    let mut attachments = VecDeque::new();
    json::write_value(
        data,
        &mut out,
        &mut BinaryMode::Placeholders(&mut attachments),
    )?;
    finish(out, attachments)
}

/// Node packet data → socketioxide form, consuming the value (binary moves, no copy).
pub fn into_placeholder_json(data: Value) -> Result<PlaceholderJson> {
    let mut out = Vec::with_capacity(64);
    let mut attachments = VecDeque::new();
    json::write_value_owned(
        data,
        &mut out,
        &mut BinaryMode::Placeholders(&mut attachments),
    )?;
    finish(out, attachments)
}

fn finish(out: Vec<u8>, attachments: VecDeque<Bytes>) -> Result<PlaceholderJson> {
    let text = String::from_utf8(out).map_err(|e| WireError::Json(e.to_string()))?;
    Ok(PlaceholderJson { text, attachments })
}

/// socketioxide form → Node packet data: parse the JSON text and put each attachment back in
/// place of its placeholder (as socket.io-parser's `reconstructPacket` does; an out-of-range
/// `num` is an error there too).
pub fn from_placeholder_json(text: &str, attachments: &VecDeque<Bytes>) -> Result<Value> {
    let mut v = json::parse(text.as_bytes())?;
    if !attachments.is_empty() {
        replace_placeholders(&mut v, attachments)?;
    }
    Ok(v)
}

fn replace_placeholders(v: &mut Value, att: &VecDeque<Bytes>) -> Result<()> {
    match v {
        Value::Array(items) => {
            for item in items {
                replace_placeholders(item, att)?;
            }
        }
        Value::Map(entries) => {
            if let Some(num) = placeholder_num(entries) {
                let b = usize::try_from(num).ok().and_then(|i| att.get(i)).ok_or(
                    WireError::BadPlaceholder {
                        num,
                        count: att.len(),
                    },
                )?;
                *v = Value::Binary(b.to_vec());
                return Ok(());
            }
            for (_, val) in entries {
                replace_placeholders(val, att)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `Some(num)` when the object is `{_placeholder: true, num: N}`.
fn placeholder_num(entries: &[(Value, Value)]) -> Option<i64> {
    let mut is_placeholder = false;
    let mut num = None;
    for (k, v) in entries {
        match k.as_str() {
            Some("_placeholder") => is_placeholder = v.as_bool() == Some(true),
            Some("num") => num = v.as_i64().or(Some(-1)),
            _ => {}
        }
    }
    if is_placeholder {
        Some(num.unwrap_or(-1))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_both_ways() {
        let data = Value::Array(vec![
            Value::from("ev"),
            Value::from("x"),
            Value::Binary(vec![1, 2, 3]),
            Value::Map(vec![(Value::from("b"), Value::Binary(vec![4]))]),
        ]);
        let pj = to_placeholder_json(&data).unwrap();
        assert_eq!(
            pj.text,
            r#"["ev","x",{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}]"#
        );
        assert_eq!(pj.attachments.len(), 2);
        assert_eq!(
            from_placeholder_json(&pj.text, &pj.attachments).unwrap(),
            data
        );
        assert_eq!(into_placeholder_json(data.clone()).unwrap(), pj);
        let bad = from_placeholder_json(r#"["e",{"_placeholder":true,"num":5}]"#, &pj.attachments);
        assert!(matches!(bad, Err(WireError::BadPlaceholder { num: 5, .. })));
    }
}
