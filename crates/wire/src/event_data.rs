//! Conversion between the Node packet data (`[event, ...args]` as a dynamic value, binary as
//! `Value::Binary`) and the form socketioxide's common parser keeps event data in: a JSON text
//! `["event", arg...]` whose binary arguments are `{"_placeholder":true,"num":N}` objects, plus
//! the attachments (`socketioxide_core::Value::Str(Str, Option<VecDeque<Bytes>>)`).
//!
//! This runs once per broadcast per node (not per socket): one pass, no intermediate
//! `serde_json::Value`, and binary moves instead of copying where the input is owned.
//!
//! # Placeholder-shaped objects in data (the one check)
//!
//! Receivers rebuild a binary packet by replacing every object that *looks like* a placeholder
//! with an attachment: socket.io-parser (JS) when `obj._placeholder === true` (and throws
//! "illegal attachments", which makes the client close the connection, when `num` is out of
//! range), python-socketio when `obj['_placeholder']` is truthy, socketioxide when the first
//! key is `_placeholder`. Event data that *itself* holds such an object therefore cannot be
//! relayed faithfully: next to a real attachment it aliases it or points past the end.
//! [`is_placeholder_key`] / [`is_placeholder_shaped`] define the shape once (any object with
//! a `_placeholder` key, whatever its value: the widest of the three readings), and every
//! path that relays data refuses it with [`WireError::PlaceholderInData`]:
//! [`into_placeholder_json`] / [`to_placeholder_json`] (Node/emitter data from Redis),
//! [`from_placeholder_json`] (socketioxide's and python-socketio's form: real placeholders are
//! resolved, any other is refused), and [`check_no_placeholders`] /
//! [`check_no_placeholders_json`] for values that reach socketioxide's serializer directly
//! (client publishes, the HTTP API).

use std::collections::VecDeque;

use bytes::Bytes;
use rmpv::Value;

use crate::error::{Result, WireError};
use crate::json::{self, BinaryMode};
pub use crate::placeholder::{PLACEHOLDER_KEY, is_placeholder_key, is_placeholder_shaped};

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
/// `num` is an error there too). Any other placeholder-shaped object (see the module doc) is
/// refused with [`WireError::PlaceholderInData`], attachments or not.
///
/// Cost: one walk of the parsed value, no allocation beyond the parse itself (the walk also
/// runs for text without attachments, where it only compares map keys).
pub fn from_placeholder_json(text: &str, attachments: &VecDeque<Bytes>) -> Result<Value> {
    let mut v = json::parse(text.as_bytes())?;
    replace_placeholders(&mut v, attachments)?;
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
            if is_placeholder_shaped(entries) {
                let num = placeholder_num(entries).ok_or(WireError::PlaceholderInData)?;
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

/// Refuse event data holding a placeholder-shaped object anywhere (the check for values that
/// go to socketioxide's serializer, which writes such objects verbatim next to the real
/// placeholders it makes for `Value::Binary`).
///
/// Cost: one recursive walk, no allocation; O(size of the value). The depth is bounded by
/// whoever built the value (serde_json's recursion limit of 128, [`crate::msgpack::MAX_DEPTH`]).
pub fn check_no_placeholders(v: &Value) -> Result<()> {
    match v {
        Value::Array(items) => items.iter().try_for_each(check_no_placeholders),
        Value::Map(entries) => {
            if is_placeholder_shaped(entries) {
                return Err(WireError::PlaceholderInData);
            }
            entries
                .iter()
                .try_for_each(|(_, v)| check_no_placeholders(v))
        }
        _ => Ok(()),
    }
}

/// [`check_no_placeholders`] for a `serde_json::Value` (what backends send over HTTP).
pub fn check_no_placeholders_json(v: &serde_json::Value) -> Result<()> {
    match v {
        serde_json::Value::Array(items) => items.iter().try_for_each(check_no_placeholders_json),
        serde_json::Value::Object(o) => {
            if o.contains_key(PLACEHOLDER_KEY) {
                return Err(WireError::PlaceholderInData);
            }
            o.values().try_for_each(check_no_placeholders_json)
        }
        _ => Ok(()),
    }
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

    fn map(kv: Vec<(&str, Value)>) -> Value {
        Value::Map(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
    }
    fn ph(num: i64) -> Value {
        map(vec![
            ("_placeholder", Value::from(true)),
            ("num", Value::from(num)),
        ])
    }

    /// The forged publish of issue 13 as socketioxide hands it over: the first placeholder
    /// took the one attachment, the second (num 3) was left as an object.
    #[test]
    fn placeholder_shaped_objects_are_found_anywhere() {
        let forged = map(vec![("a", Value::Binary(vec![1])), ("b", ph(3))]);
        assert_eq!(
            check_no_placeholders(&forged),
            Err(WireError::PlaceholderInData)
        );
        // Fake beside real (would alias attachment 0), key order swapped, other values of
        // `_placeholder`, deep inside arrays, a binary key.
        for v in [
            map(vec![("a", Value::Binary(vec![1])), ("b", ph(0))]),
            map(vec![
                ("num", Value::from(0)),
                ("_placeholder", Value::from(true)),
            ]),
            map(vec![("_placeholder", Value::from(1))]),
            map(vec![("_placeholder", Value::from(false))]),
            Value::Array(vec![
                Value::from(1),
                Value::Array(vec![map(vec![("x", ph(0))])]),
            ]),
            Value::Map(vec![(
                Value::Binary(b"_placeholder".to_vec()),
                Value::from(true),
            )]),
        ] {
            assert_eq!(
                check_no_placeholders(&v),
                Err(WireError::PlaceholderInData),
                "{v}"
            );
            // The Redis paths refuse the same values, borrowed or owned.
            assert_eq!(
                to_placeholder_json(&v),
                Err(WireError::PlaceholderInData),
                "{v}"
            );
            assert_eq!(
                into_placeholder_json(v.clone()),
                Err(WireError::PlaceholderInData)
            );
        }
        // Ordinary data, binary included, passes; a key merely containing the word too.
        let fine = map(vec![
            ("placeholder", Value::from(true)),
            ("__placeholder", Value::from(true)),
            ("bin", Value::Binary(vec![1, 2])),
            (
                "list",
                Value::Array(vec![map(vec![("num", Value::from(0))])]),
            ),
        ]);
        assert_eq!(check_no_placeholders(&fine), Ok(()));
        assert!(to_placeholder_json(&fine).is_ok());
    }

    #[test]
    fn json_values_are_checked_the_same_way() {
        use serde_json::json;
        assert_eq!(
            check_no_placeholders_json(&json!({"x": [{"_placeholder": true, "num": 0}]})),
            Err(WireError::PlaceholderInData)
        );
        assert_eq!(
            check_no_placeholders_json(&json!([{"_placeholder": "yes"}])),
            Err(WireError::PlaceholderInData)
        );
        assert_eq!(
            check_no_placeholders_json(&json!({"a": {"num": 0, "placeholder": true}})),
            Ok(())
        );
    }

    /// socketioxide's (and python-socketio's) form: real placeholders resolve, any other
    /// placeholder-shaped object is refused, with or without attachments.
    #[test]
    fn placeholder_text_refuses_what_it_cannot_resolve() {
        let one: VecDeque<Bytes> = [Bytes::from_static(&[9])].into();
        let none = VecDeque::new();
        assert_eq!(
            from_placeholder_json(r#"["e",{"_placeholder":true,"num":0}]"#, &one),
            Ok(Value::Array(vec![Value::from("e"), Value::Binary(vec![9])]))
        );
        assert!(matches!(
            from_placeholder_json(r#"["e",{"_placeholder":true,"num":0}]"#, &none),
            Err(WireError::BadPlaceholder { num: 0, count: 0 })
        ));
        for text in [
            r#"["e",{"_placeholder":false,"num":0}]"#,
            r#"["e",{"_placeholder":1}]"#,
            r#"["e",{"a":{"_placeholder":"x"}}]"#,
        ] {
            assert_eq!(
                from_placeholder_json(text, &one),
                Err(WireError::PlaceholderInData),
                "{text}"
            );
            assert_eq!(
                from_placeholder_json(text, &none),
                Err(WireError::PlaceholderInData),
                "{text}"
            );
        }
    }
}
