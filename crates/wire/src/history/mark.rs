//! The mark: the one extra trailing argument every message of a history room is delivered
//! with, `{"room": ..., "offset": ..., "epoch": ...}`. Offsets are strings either way (a
//! single node's 1, 2, 3... or, in cluster mode, the Redis Stream id), opaque to clients, which
//! hand them back as `join {room, since: {offset, epoch}}`.
//!
//! Written by the gateway (serde, into socketioxide) and by the emitter (a msgpack map in the
//! broadcast's data); read back by every gateway node from another node's or an emitter's
//! broadcast ([`mark_offset`]) to order live messages with a replay.
use std::fmt::Display;

use serde::{Deserialize, Serialize, ser::SerializeMap};
use serde_json::value::RawValue;

use super::StreamId;
use crate::Value;

/// The mark's field names, in the order they are written.
pub const ROOM: &str = "room";
pub const OFFSET: &str = "offset";
pub const EPOCH: &str = "epoch";

/// The trailing argument of a history room's message; `O` is the offset (printed as a string).
#[derive(Debug, Clone, Copy)]
pub struct Mark<'a, O> {
    pub room: &'a str,
    pub offset: O,
    pub epoch: &'a str,
}

impl<O: Display> Serialize for Mark<'_, O> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry(ROOM, self.room)?;
        m.serialize_entry(OFFSET, &AsStr(&self.offset))?;
        m.serialize_entry(EPOCH, self.epoch)?;
        m.end()
    }
}

/// A `Display` written as a string, without an intermediate `String`.
struct AsStr<'a, O>(&'a O);

impl<O: Display> Serialize for AsStr<'_, O> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

impl<O: Display> Mark<'_, O> {
    /// The mark as a wire value (a map of three strings), to append to a broadcast's data.
    pub fn to_value(&self) -> Value {
        Value::Map(vec![
            (Value::from(ROOM), Value::from(self.room)),
            (Value::from(OFFSET), Value::from(self.offset.to_string())),
            (Value::from(EPOCH), Value::from(self.epoch)),
        ])
    }
}

#[derive(Deserialize)]
struct MarkIn<'a> {
    #[serde(borrow)]
    room: &'a str,
    #[serde(borrow)]
    offset: &'a str,
}

/// The offset of a history message's JSON text `[event, ...args, {room, offset, epoch}]`
/// (socketioxide's form of a broadcast's data), when its mark names `room`; `None` when it has
/// none (a broadcast that bypassed the history).
pub fn mark_offset(text: &str, room: &str) -> Option<StreamId> {
    let parts: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    let last = parts.get(1..)?.last()?;
    let m: MarkIn<'_> = serde_json::from_str(last.get()).ok()?;
    (m.room == room)
        .then(|| StreamId::parse(m.offset))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shape_in_json_and_msgpack() {
        let id = StreamId::parse("1733400000000-7").unwrap();
        let mark = Mark {
            room: "chat:x",
            offset: id,
            epoch: "00000000000000ab",
        };
        let json = serde_json::json!({"room": "chat:x", "offset": "1733400000000-7", "epoch": "00000000000000ab"});
        assert_eq!(serde_json::to_value(mark).unwrap(), json);
        assert_eq!(crate::json::to_serde(&mark.to_value()), json);
        // What a gateway reads back from the broadcast's data.
        let text = serde_json::to_string(&serde_json::json!(["ev", {"a": 1}, json])).unwrap();
        assert_eq!(mark_offset(&text, "chat:x"), Some(id));
        assert_eq!(mark_offset(&text, "chat:y"), None, "another room's mark");
        assert_eq!(mark_offset(r#"["ev",{"a":1}]"#, "chat:x"), None, "no mark");
        assert_eq!(
            mark_offset(r#"[{"room":"chat:x","offset":"1-0"}]"#, "chat:x"),
            None,
            "the event is not a mark"
        );
        assert_eq!(mark_offset("not json", "chat:x"), None);
    }
}
