//! JSON for the dynamic [`rmpv::Value`]: the JSON requests/responses of the adapter protocol
//! and the JSON text socketioxide keeps event data in.
//!
//! The writer follows `JSON.stringify` where the two could differ: integral numbers print
//! without a fraction, NaN/Infinity print `null`, Dates print as ISO-8601 strings, and binary
//! either prints like a Node `Buffer` (`{"type":"Buffer","data":[..]}`) or becomes a Socket.IO
//! attachment placeholder (`{"_placeholder":true,"num":N}`), chosen by [`BinaryMode`].

use std::collections::VecDeque;

use bytes::Bytes;
use rmpv::Value;

use crate::error::{Result, WireError};
use crate::msgpack::timestamp_millis;

/// What the JSON writer does with `Value::Binary`.
pub enum BinaryMode<'a> {
    /// Write it as `JSON.stringify(buffer)` does: `{"type":"Buffer","data":[1,2]}`.
    NodeBuffer,
    /// Replace it with a Socket.IO placeholder and push the bytes as an attachment.
    Placeholders(&'a mut VecDeque<Bytes>),
}

/// Append `value` as JSON text to `out`.
pub fn write_value(value: &Value, out: &mut Vec<u8>, mode: &mut BinaryMode<'_>) -> Result<()> {
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => {
            if let Some(u) = i.as_u64() {
                write_display(out, u);
            } else if let Some(n) = i.as_i64() {
                write_display(out, n);
            }
        }
        Value::F32(f) => write_f64(out, f64::from(*f)),
        Value::F64(f) => write_f64(out, *f),
        Value::String(s) => match s.as_str() {
            Some(s) => write_str(out, s),
            None => write_str(out, &String::from_utf8_lossy(s.as_bytes())),
        },
        Value::Binary(b) => write_binary(out, b, None, mode),
        Value::Array(items) => write_value_slice(items, out, mode)?,
        Value::Map(entries) => {
            out.push(b'{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                refuse_placeholder_key(k, mode)?;
                write_key(k, out)?;
                out.push(b':');
                write_value(v, out, mode)?;
            }
            out.push(b'}');
        }
        Value::Ext(-1, data) => match timestamp_millis(data) {
            Some(ms) => {
                out.push(b'"');
                out.extend_from_slice(iso8601(ms).as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        },
        // notepack hands other ext types to JS as `[type, Buffer]`.
        Value::Ext(ty, data) => {
            out.push(b'[');
            write_display(out, *ty);
            out.push(b',');
            write_binary(out, data, None, mode);
            out.push(b']');
        }
    }
    Ok(())
}

/// `owned`, when given, is the binary itself (moved into the attachment list) and `b` is ignored.
fn write_binary(
    out: &mut Vec<u8>,
    borrowed: &[u8],
    owned: Option<Vec<u8>>,
    mode: &mut BinaryMode<'_>,
) {
    let b = owned.as_deref().unwrap_or(borrowed);
    match mode {
        BinaryMode::NodeBuffer => {
            out.extend_from_slice(b"{\"type\":\"Buffer\",\"data\":[");
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_display(out, *x);
            }
            out.extend_from_slice(b"]}");
        }
        BinaryMode::Placeholders(att) => {
            out.extend_from_slice(b"{\"_placeholder\":true,\"num\":");
            write_display(out, att.len());
            out.push(b'}');
            let bytes = match owned {
                Some(v) => Bytes::from(v),
                None => Bytes::copy_from_slice(borrowed),
            };
            att.push_back(bytes);
        }
    }
}

/// Like [`write_value`] but consumes the value, so binary moves into the attachment list
/// without a copy (the broadcast receive path owns the decoded value).
pub fn write_value_owned(value: Value, out: &mut Vec<u8>, mode: &mut BinaryMode<'_>) -> Result<()> {
    match value {
        Value::Binary(b) => {
            write_binary(out, &[], Some(b), mode);
            Ok(())
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value_owned(item, out, mode)?;
            }
            out.push(b']');
            Ok(())
        }
        Value::Map(entries) => {
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                refuse_placeholder_key(&k, mode)?;
                write_key(&k, out)?;
                out.push(b':');
                write_value_owned(v, out, mode)?;
            }
            out.push(b'}');
            Ok(())
        }
        other => write_value(&other, out, mode),
    }
}

/// In placeholder mode the output is Socket.IO event data: an object of the input with a
/// `_placeholder` key would read as an attachment reference next to the real ones this writer
/// makes, so it is refused (see [`crate::event_data`]). Checked while writing the keys anyway:
/// no extra pass, no allocation.
fn refuse_placeholder_key(k: &Value, mode: &BinaryMode<'_>) -> Result<()> {
    if matches!(mode, BinaryMode::Placeholders(_)) && crate::placeholder::is_placeholder_key(k) {
        return Err(WireError::PlaceholderInData);
    }
    Ok(())
}

fn write_key(k: &Value, out: &mut Vec<u8>) -> Result<()> {
    match k {
        Value::String(s) => match s.as_str() {
            Some(s) => write_str(out, s),
            None => write_str(out, &String::from_utf8_lossy(s.as_bytes())),
        },
        Value::Integer(i) => {
            out.push(b'"');
            if let Some(u) = i.as_u64() {
                write_display(out, u);
            } else if let Some(n) = i.as_i64() {
                write_display(out, n);
            }
            out.push(b'"');
        }
        _ => return Err(WireError::NonStringKey),
    }
    Ok(())
}

fn write_display(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{v}");
}

/// A JSON string literal with JSON.stringify's escapes (serde_json uses the same set).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's string serializer cannot fail on a Vec writer.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A JS number as JSON.stringify prints it (close enough for every parser: integral values
/// without a fraction, non-finite values as null).
pub fn write_f64(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
    } else if f.floor() == f && f.abs() < 9.2e18 {
        write_display(out, f as i64);
    } else {
        let _ = serde_json::to_writer(&mut *out, &f);
    }
}

/// `Date.prototype.toISOString` of `ms` milliseconds since the epoch.
pub fn iso8601(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    if (0..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
    } else {
        let sign = if y < 0 { '-' } else { '+' };
        format!(
            "{sign}{:06}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z",
            y.abs()
        )
    }
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `value` as a JSON text with Node-Buffer binary (for JSON requests and responses).
pub fn to_json_string(value: &Value) -> Result<String> {
    let mut out = Vec::with_capacity(64);
    write_value(value, &mut out, &mut BinaryMode::NodeBuffer)?;
    // The writer only emits valid UTF-8 (strings go through serde_json).
    String::from_utf8(out).map_err(|e| WireError::Json(e.to_string()))
}

/// JSON text with every *lone* UTF-16 surrogate escape (`\ud83d` not followed by a low
/// surrogate escape, or a low one with no high one before it) replaced by `\ufffd`; `None`
/// when there is none (the common case: no allocation, one scan for backslashes).
///
/// Why: `JSON.stringify` writes a string cut in the middle of a surrogate pair (a cut emoji)
/// as a lone `\udXXX` escape, which JSON allows but UTF-8, Rust strings and serde_json do not,
/// so socketioxide's parser refuses the whole event. Relaying the exact text would mean
/// carrying raw JSON past socketioxide's serializer and the Redis adapter's msgpack (whose str
/// is UTF-8 too); instead only the lone surrogate becomes U+FFFD, which is also what a
/// browser's `TextEncoder` makes of it. Every other character, valid pairs included, is
/// left as sent. The replacement has the same length, so offsets in the text do not move.
pub fn replace_lone_surrogates(text: &str) -> Option<String> {
    fn hex4(b: &[u8], at: usize) -> Option<u16> {
        let h = b.get(at..at + 4)?;
        let s = std::str::from_utf8(h).ok()?;
        u16::from_str_radix(s, 16).ok()
    }
    fn is_escape_u(b: &[u8], at: usize) -> bool {
        b.get(at) == Some(&b'\\') && b.get(at + 1) == Some(&b'u')
    }
    let b = text.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    // A backslash only ever starts an escape in valid JSON (outside strings there is none), and
    // every escape is skipped whole, so `\\ud83d` (an escaped backslash) is not mistaken.
    while let Some(off) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'\\')) {
        let p = i + off;
        if b.get(p + 1) != Some(&b'u') {
            i = p + 2;
            continue;
        }
        i = p + 6;
        let lone = match hex4(b, p + 2) {
            Some(0xD800..=0xDBFF) => {
                let paired =
                    is_escape_u(b, p + 6) && matches!(hex4(b, p + 8), Some(0xDC00..=0xDFFF));
                if paired {
                    i = p + 12;
                }
                !paired
            }
            Some(0xDC00..=0xDFFF) => true,
            _ => false,
        };
        if lone {
            let o = out.get_or_insert_with(|| b.to_vec());
            o[p + 2..p + 6].copy_from_slice(b"fffd");
        }
    }
    // Only ASCII hex digits were overwritten: still UTF-8.
    out.and_then(|o| String::from_utf8(o).ok())
}

/// Parse JSON text into a dynamic value (integers stay integers, other numbers F64).
pub fn parse(text: &[u8]) -> Result<Value> {
    Ok(serde_json::from_slice::<Value>(text)?)
}

/// Convert the dynamic value to a `serde_json::Value` the way JSON.stringify + JSON.parse would
/// in Node: binary becomes `{"type":"Buffer","data":[..]}`, Dates ISO strings, NaN/Infinity
/// null, non-string map keys are printed (numbers) or dropped (anything else).
pub fn to_serde(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => J::from(u),
            (None, Some(n)) => J::from(n),
            _ => J::Null,
        },
        Value::F32(f) => f64_to_serde(f64::from(*f)),
        Value::F64(f) => f64_to_serde(*f),
        Value::String(s) => J::String(match s.as_str() {
            Some(s) => s.to_owned(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        }),
        Value::Binary(b) => buffer_json(b),
        Value::Array(a) => J::Array(a.iter().map(to_serde).collect()),
        Value::Map(m) => J::Object(
            m.iter()
                .filter_map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.as_str()?.to_owned(),
                        Value::Integer(i) => i.to_string(),
                        _ => return None,
                    };
                    Some((key, to_serde(v)))
                })
                .collect(),
        ),
        Value::Ext(-1, d) => timestamp_millis(d)
            .map(|ms| J::String(iso8601(ms)))
            .unwrap_or(J::Null),
        Value::Ext(ty, d) => J::Array(vec![J::from(*ty), buffer_json(d)]),
    }
}

fn f64_to_serde(f: f64) -> serde_json::Value {
    match crate::msgpack::integral(f).and_then(|i| i.as_i64()) {
        Some(n) => serde_json::Value::from(n),
        None => serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
    }
}

fn buffer_json(b: &[u8]) -> serde_json::Value {
    serde_json::json!({ "type": "Buffer", "data": b })
}

/// Convert a `serde_json::Value` (what backends hold) into the dynamic value.
pub fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_serde).collect()),
        serde_json::Value::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), from_serde(v)))
                .collect(),
        ),
    }
}

/// A number printed as JSON/JS would print it (used where a number names a room).
pub fn number_text(f: f64) -> String {
    let mut out = Vec::new();
    write_f64(&mut out, f);
    String::from_utf8(out).unwrap_or_default()
}

/// Write a slice of values as a JSON array.
pub fn write_value_slice(
    items: &[Value],
    out: &mut Vec<u8>,
    mode: &mut BinaryMode<'_>,
) -> Result<()> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(item, out, mode)?;
    }
    out.push(b']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_conversions() {
        let j = serde_json::json!({"a": [1, "x", null, 1.5, true], "b": {"c": -3}});
        assert_eq!(to_serde(&from_serde(&j)), j);
        let v = Value::Array(vec![
            Value::Binary(vec![1, 2]),
            Value::F64(2.0),
            Value::F64(f64::NAN),
            crate::msgpack::date_value(0),
        ]);
        assert_eq!(
            to_serde(&v),
            serde_json::json!([{"type": "Buffer", "data": [1, 2]}, 2, null, "1970-01-01T00:00:00.000Z"])
        );
        let text = to_json_string(&v).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            to_serde(&v)
        );
    }

    #[test]
    fn lone_surrogates_become_replacement_chars() {
        let fix = |t: &str| replace_lone_surrogates(t);
        // Nothing to do: no copy.
        assert_eq!(fix(r#"["publish",{"data":"a😀 \u00e9"}]"#), None);
        assert_eq!(fix(r#"["a\ud83d\ude00"]"#), None, "a valid pair stays");
        assert_eq!(
            fix(r#"["\\ud83d"]"#),
            None,
            "an escaped backslash is not an escape"
        );
        // Lone high, lone low, high at the end, either case, beside a valid pair.
        assert_eq!(fix(r#"["a\ud83d"]"#).as_deref(), Some(r#"["a\ufffd"]"#));
        assert_eq!(fix(r#"["\ude00b"]"#).as_deref(), Some(r#"["\ufffdb"]"#));
        assert_eq!(
            fix(r#"["\uD83D\ud83d\ude00","\ud83dx"]"#).as_deref(),
            Some(r#"["\ufffd\ud83d\ude00","\ufffdx"]"#)
        );
        assert_eq!(
            fix(r#"["\ud83d\u0041"]"#).as_deref(),
            Some(r#"["\ufffd\u0041"]"#)
        );
        // The result parses, and only the lone surrogate changed.
        let fixed = fix(r#"["a\ud83d","b"]"#).unwrap();
        let v: serde_json::Value = serde_json::from_str(&fixed).unwrap();
        assert_eq!(v, serde_json::json!(["a\u{fffd}", "b"]));
        // Truncated or malformed escapes are left for the parser to refuse.
        assert_eq!(fix(r#"["\ud8"#), None);
        assert_eq!(fix("\\"), None);
    }

    #[test]
    fn iso_dates_like_js() {
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(253_402_300_800_000), "+010000-01-01T00:00:00.000Z");
    }
}
