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
