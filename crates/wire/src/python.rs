//! Decoding of python-socketio's Redis manager messages (channel `socketio` by default), so
//! Python backends using `socketio.RedisManager(write_only=True)` can publish into the
//! cluster. Since python-socketio 5.14 the payload is JSON; before, it was a Python pickle,
//! which is refused with [`WireError::Pickle`] and never unpickled (unpickling runs code).
//!
//! Decode only: the gateway never publishes in this format.

use std::collections::VecDeque;

use bytes::Bytes;
use rmpv::Value;

use crate::error::{Result, WireError};
use crate::fields::{self, Fields};

/// Default channel of python-socketio's pub/sub managers.
pub const PY_DEFAULT_CHANNEL: &str = "socketio";

/// One message of a python-socketio manager.
#[derive(Debug, Clone, PartialEq)]
pub enum PyManagerMessage {
    /// `emit`: deliver `event` with `data` to `room` (or everyone) minus `skip_sid`.
    Emit {
        /// Event name.
        event: String,
        /// The `data` argument: one value, or a list of arguments (a tuple in Python, and
        /// always the argument list since 5.16). Binary attachments are already put back.
        data: Value,
        /// Namespace (`/` when absent).
        namespace: String,
        /// Target rooms (a socket id is a room); `None` = everyone in the namespace.
        room: Option<Vec<String>>,
        /// Socket ids to skip.
        skip_sid: Vec<String>,
        /// `[room, namespace, id]` when the sender wants an ack (needs its host to answer).
        callback: Option<Value>,
        /// The sending host.
        host_id: Option<String>,
    },
    /// `disconnect` a socket.
    Disconnect {
        sid: String,
        namespace: String,
        host_id: Option<String>,
    },
    /// `enter_room`: put a socket in a room.
    EnterRoom {
        sid: String,
        room: String,
        namespace: String,
        host_id: Option<String>,
    },
    /// `leave_room`.
    LeaveRoom {
        sid: String,
        room: String,
        namespace: String,
        host_id: Option<String>,
    },
    /// `close_room`: everyone leaves `room`.
    CloseRoom {
        room: String,
        namespace: String,
        host_id: Option<String>,
    },
    /// `callback`: an ack travelling back to `host_id`.
    Callback {
        host_id: Option<String>,
        sid: String,
        namespace: String,
        id: i64,
        args: Value,
    },
}

/// Decode one message received on a python-socketio channel.
pub fn decode_py_message(bytes: &[u8]) -> Result<PyManagerMessage> {
    // Pickle protocol 2+ starts with the PROTO opcode 0x80; protocols 0/1 start with an opcode
    // that is never a JSON text start either. Anything not JSON is refused as pickle only when
    // it looks like one, so real JSON errors stay visible.
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first == Some(0x80) || (first.is_some() && first != Some(b'{')) && looks_like_pickle(bytes) {
        return Err(WireError::Pickle);
    }
    let mut f = Fields::from_value(crate::json::parse(bytes)?, "message")?;
    let method = f.req_string("method")?;
    let host_id = f.string("host_id")?;
    let namespace = f.string("namespace")?.unwrap_or_else(|| "/".to_owned());
    Ok(match method.as_str() {
        "emit" => {
            let event = f.req_string("event")?;
            let mut data = f.take("data").unwrap_or(Value::Nil);
            if f.bool("binary")?.unwrap_or(false) {
                // Resolves the real placeholders and refuses any other.
                data = reconstruct_binary(data)?;
            } else {
                crate::event_data::check_no_placeholders(&data)?;
            }
            PyManagerMessage::Emit {
                event,
                data,
                namespace,
                room: f
                    .take_present("room")
                    .map(|r| fields::rooms(r, "room"))
                    .transpose()?,
                skip_sid: f.rooms("skip_sid")?,
                callback: f.take_present("callback"),
                host_id,
            }
        }
        "disconnect" => PyManagerMessage::Disconnect {
            sid: f.req_string("sid")?,
            namespace,
            host_id,
        },
        "enter_room" => PyManagerMessage::EnterRoom {
            sid: f.req_string("sid")?,
            room: f.req_string("room")?,
            namespace,
            host_id,
        },
        "leave_room" => PyManagerMessage::LeaveRoom {
            sid: f.req_string("sid")?,
            room: f.req_string("room")?,
            namespace,
            host_id,
        },
        "close_room" => PyManagerMessage::CloseRoom {
            room: f.req_string("room")?,
            namespace,
            host_id,
        },
        "callback" => PyManagerMessage::Callback {
            host_id,
            sid: f.req_string("sid")?,
            namespace,
            id: f
                .int("id")?
                .ok_or_else(|| WireError::shape("missing `id`"))?,
            args: f.take("args").unwrap_or(Value::Nil),
        },
        other => return Err(WireError::shape(format!("unknown method `{other}`"))),
    })
}

/// Pickle protocol 0/1 texts end with the STOP opcode `.`; JSON never does.
fn looks_like_pickle(bytes: &[u8]) -> bool {
    bytes.last() == Some(&b'.')
}

/// python-socketio sends binary emits as `[data_with_placeholders, base64, base64...]`.
fn reconstruct_binary(data: Value) -> Result<Value> {
    let mut items = match data {
        Value::Array(a) if !a.is_empty() => a.into_iter(),
        _ => {
            return Err(WireError::shape(
                "binary `data` is not [data, attachments...]",
            ));
        }
    };
    let body = items.next().unwrap_or(Value::Nil);
    let mut att = VecDeque::new();
    for a in items {
        let text = a.as_str().ok_or(WireError::Base64)?;
        att.push_back(Bytes::from(base64_decode(text)?));
    }
    let text = crate::json::to_json_string(&body)?;
    crate::event_data::from_placeholder_json(&text, &att)
}

/// Standard base64 with padding (what Python's `b64encode` writes).
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        if chunk.len() == 1 {
            return Err(WireError::Base64);
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c).ok_or(WireError::Base64)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_forms() {
        let m = decode_py_message(
            br#"{"method":"emit","event":"ev","data":[1,"a"],"namespace":"/","room":"r1","skip_sid":["s1"],"callback":null,"host_id":"h"}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            PyManagerMessage::Emit {
                event: "ev".into(),
                data: Value::Array(vec![Value::from(1), Value::from("a")]),
                namespace: "/".into(),
                room: Some(vec!["r1".into()]),
                skip_sid: vec!["s1".into()],
                callback: None,
                host_id: Some("h".into()),
            }
        );
        let m = decode_py_message(
            br#"{"method":"emit","event":"ev","data":[{"_placeholder":true,"num":0},"AQID"],"binary":true,"room":null,"skip_sid":null}"#,
        )
        .unwrap();
        match m {
            PyManagerMessage::Emit { data, room, .. } => {
                assert_eq!(data, Value::Binary(vec![1, 2, 3]));
                assert_eq!(room, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pickle_is_refused() {
        assert_eq!(
            decode_py_message(b"\x80\x04\x95\x10\x00"),
            Err(WireError::Pickle)
        );
        assert_eq!(
            decode_py_message(b"(dp0\nS'method'\np1\n."),
            Err(WireError::Pickle)
        );
        assert!(matches!(
            decode_py_message(b"{bad json"),
            Err(WireError::Json(_))
        ));
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    }
}
