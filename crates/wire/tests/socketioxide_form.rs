//! `event_data` against the real socketioxide common parser (test-only dependency): what
//! sio-wire produces from Node packet data is decoded by socketioxide into the right Rust
//! values (binary included), and what socketioxide encodes reads back as the Node data.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sio_wire::Value;
use socketioxide_core::Value as SioValue;
use socketioxide_core::parser::Parse;
use socketioxide_parser_common::CommonParser;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct File {
    name: String,
    data: Bytes,
}

#[test]
fn sio_wire_output_is_read_by_socketioxide() {
    let node = Value::Array(vec![
        Value::from("upload"),
        Value::from("text"),
        Value::Map(vec![
            (Value::from("name"), Value::from("a.bin")),
            (Value::from("data"), Value::Binary(vec![1, 2, 3])),
        ]),
        Value::Binary(vec![4, 5]),
    ]);
    let (text, bins) = sio_wire::to_placeholder_json(&node)
        .unwrap()
        .attachments_opt();
    let mut v = SioValue::Str(text.into(), bins);
    assert_eq!(CommonParser.read_event(&v).unwrap(), "upload");
    let (s, file, raw): (String, File, Bytes) = CommonParser.decode_value(&mut v, true).unwrap();
    assert_eq!(s, "text");
    assert_eq!(
        file,
        File {
            name: "a.bin".into(),
            data: Bytes::from_static(&[1, 2, 3])
        }
    );
    assert_eq!(raw, Bytes::from_static(&[4, 5]));
}

#[test]
fn socketioxide_output_reads_back_as_node_data() {
    let data = (
        "text",
        File {
            name: "b".into(),
            data: Bytes::from_static(&[9, 8]),
        },
        1.5,
        -3,
    );
    let v = CommonParser.encode_value(&data, Some("ev")).unwrap();
    let SioValue::Str(text, bins) = v else {
        panic!("common parser emits text")
    };
    let empty = VecDeque::new();
    let node =
        sio_wire::from_placeholder_json(text.as_str(), bins.as_ref().unwrap_or(&empty)).unwrap();
    assert_eq!(
        node,
        Value::Array(vec![
            Value::from("ev"),
            Value::from("text"),
            Value::Map(vec![
                (Value::from("name"), Value::from("b")),
                (Value::from("data"), Value::Binary(vec![9, 8]))
            ]),
            Value::F64(1.5),
            Value::from(-3),
        ])
    );
    // and back again to the same text and attachments
    let again = sio_wire::to_placeholder_json(&node).unwrap();
    assert_eq!(again.text, text.as_str());
    assert_eq!(Some(again.attachments), bins);
}

/// What socketioxide's common parser makes of the forged publish of issue 13 (two
/// placeholders, one attachment): it hands each `{"_placeholder":..}` object whose *first* key
/// is `_placeholder` the next attachment in document order, ignoring `num`, while attachments
/// remain, and leaves every other one as a plain object. The leftover is what would reach
/// receivers; [`sio_wire::check_no_placeholders`] finds it, and re-encoding it would alias the
/// real attachment or point past the end.
#[test]
fn socketioxide_leaves_surplus_placeholders_as_objects() {
    let decode = |text: &str, bins: &[&'static [u8]]| -> Value {
        let bins: VecDeque<Bytes> = bins.iter().map(|b| Bytes::from_static(b)).collect();
        let mut v = SioValue::Str(text.to_owned().into(), Some(bins));
        CommonParser.decode_value(&mut v, true).unwrap()
    };
    let map = |kv: Vec<(&str, Value)>| {
        Value::Map(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
    };
    let ph = |num: i64| map(vec![("_placeholder", true.into()), ("num", num.into())]);
    // Out of range: `a` takes the attachment, `b` (num 3) stays an object.
    let got = decode(
        r#"["publish",{"a":{"_placeholder":true,"num":0},"b":{"_placeholder":true,"num":3}}]"#,
        &[b"\x01"],
    );
    assert_eq!(got, map(vec![("a", Value::Binary(vec![1])), ("b", ph(3))]));
    assert_eq!(
        sio_wire::check_no_placeholders(&got),
        Err(sio_wire::WireError::PlaceholderInData)
    );
    // The num is ignored: a fake first takes the real attachment and the real one is left.
    let got = decode(
        r#"["publish",{"fake":{"_placeholder":true,"num":7},"real":{"_placeholder":true,"num":0}}]"#,
        &[b"\x01"],
    );
    assert_eq!(
        got,
        map(vec![("fake", Value::Binary(vec![1])), ("real", ph(0))])
    );
    assert!(sio_wire::check_no_placeholders(&got).is_err());
    // Key order matters to socketioxide (not to JS): `num` first is never resolved.
    let got = decode(
        r#"["publish",{"x":{"num":0,"_placeholder":true}}]"#,
        &[b"\x01"],
    );
    assert!(sio_wire::check_no_placeholders(&got).is_err());
    // One placeholder per attachment: nothing left, and re-encoding is well-formed.
    let got = decode(
        r#"["publish",{"a":{"_placeholder":true,"num":0},"b":[{"_placeholder":true,"num":1}]}]"#,
        &[b"\x01", b"\x02"],
    );
    assert_eq!(sio_wire::check_no_placeholders(&got), Ok(()));
}
