//! python-socketio 5.14.3's RedisManager messages, recorded from the real package on a private
//! Redis by `tests/fixtures/wire/capture_python.py`, decode to the expected structure; a pickle
//! payload (the pre-5.14 format) is refused.

use std::path::PathBuf;

use sio_wire::{PyManagerMessage, Value, WireError, decode_py_message};

fn load() -> Vec<(String, String, Vec<u8>)> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wire/python.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let m = &c["messages"][0];
            let hex = m["hex"].as_str().expect("hex");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            (
                c["name"].as_str().expect("name").to_owned(),
                m["channel"].as_str().expect("ch").to_owned(),
                bytes,
            )
        })
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn python_socketio_messages_decode() {
    let cases = load();
    assert_eq!(cases.len(), 10);
    for (name, channel, bytes) in &cases {
        let m = decode_py_message(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        match (name.as_str(), m) {
            (
                "emit_room",
                PyManagerMessage::Emit {
                    event,
                    data,
                    namespace,
                    room,
                    skip_sid,
                    callback,
                    host_id,
                },
            ) => {
                assert_eq!(event, "ev");
                assert_eq!(data, Value::Map(vec![(Value::from("a"), Value::from(1))]));
                assert_eq!(
                    (namespace.as_str(), room, skip_sid, callback),
                    ("/", Some(strings(&["r1"])), vec![], None)
                );
                assert_eq!(host_id.map(|h| h.len()), Some(32));
            }
            (
                "emit_all_skip",
                PyManagerMessage::Emit {
                    room,
                    skip_sid,
                    data,
                    ..
                },
            ) => {
                assert_eq!(
                    (room, skip_sid, data),
                    (None, strings(&["sid1"]), Value::from("text"))
                );
            }
            ("emit_rooms_list", PyManagerMessage::Emit { room, skip_sid, .. }) => {
                assert_eq!(
                    (room, skip_sid),
                    (Some(strings(&["a", "b"])), strings(&["x", "y"]))
                );
            }
            (
                "emit_tuple_args",
                PyManagerMessage::Emit {
                    data, namespace, ..
                },
            ) => {
                assert_eq!(namespace, "/chat");
                assert_eq!(
                    data,
                    Value::Array(vec![Value::from(1), Value::from("two"), Value::Nil])
                );
            }
            ("emit_binary", PyManagerMessage::Emit { data, event, .. }) => {
                assert_eq!(event, "bin");
                assert_eq!(
                    data,
                    Value::Map(vec![
                        (Value::from("file"), Value::Binary(vec![1, 2, 3])),
                        (Value::from("name"), Value::from("f")),
                    ])
                );
            }
            ("disconnect", PyManagerMessage::Disconnect { sid, namespace, .. }) => {
                assert_eq!((sid.as_str(), namespace.as_str()), ("sid9", "/"));
            }
            ("enter_room", PyManagerMessage::EnterRoom { sid, room, .. }) => {
                assert_eq!((sid.as_str(), room.as_str()), ("sid9", "lobby"))
            }
            ("leave_room", PyManagerMessage::LeaveRoom { sid, room, .. }) => {
                assert_eq!((sid.as_str(), room.as_str()), ("sid9", "lobby"))
            }
            (
                "close_room",
                PyManagerMessage::CloseRoom {
                    room, namespace, ..
                },
            ) => {
                assert_eq!((room.as_str(), namespace.as_str()), ("lobby", "/chat"));
            }
            ("other_channel", PyManagerMessage::Emit { .. }) => {
                assert_eq!(channel, "flask-socketio")
            }
            (name, other) => panic!("{name}: unexpected {other:?}"),
        }
        if name != "other_channel" {
            assert_eq!(channel, sio_wire::PY_DEFAULT_CHANNEL);
        }
    }
}

#[test]
fn pickle_payloads_are_refused() {
    // `pickle.dumps({"method": "emit"}, protocol=4)` as python-socketio < 5.14 published it.
    let pickle =
        b"\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x06method\x94\x8c\x04emit\x94s.";
    assert_eq!(decode_py_message(pickle), Err(WireError::Pickle));
    for (name, _, bytes) in load() {
        for cut in [0, bytes.len() / 2] {
            assert!(
                decode_py_message(&bytes[..cut]).is_err(),
                "{name}: prefix {cut} decoded"
            );
        }
    }
}
