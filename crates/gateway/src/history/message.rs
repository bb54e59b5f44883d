//! One message of a history and the form it is delivered in: its arguments followed by one
//! extra trailing argument, the mark `{"room", "offset", "epoch"}`.
//!
//! Offsets are sent as strings: opaque to clients (in cluster mode they are Redis Stream ids),
//! handed back as `since.offset` to recover what followed.
use std::time::Instant;

use serde::{Serialize, ser::SerializeTuple};

/// The arguments of a message, as the publisher gave them.
#[derive(Debug, Clone)]
pub enum Args {
    /// A client's `publish` data: one argument, binary kept binary.
    One(rmpv::Value),
    /// The HTTP API's `data` (one) or `args` (several).
    Many(Vec<serde_json::Value>),
}

impl Args {
    fn len(&self) -> usize {
        match self {
            Args::One(_) => 1,
            Args::Many(v) => v.len(),
        }
    }

    /// The bytes these arguments hold in memory beyond the [`Args`] value itself: every nested
    /// value's slot plus the text and binary it points to (see `history::budget`). An estimate
    /// from below of the allocator's view, and never below the encoded size's order: a JSON
    /// array of a million zeros is ~2 MB on the wire and ~32 MB here, and counts as the latter.
    /// One walk of the value, no allocation.
    pub fn footprint(&self) -> u64 {
        match self {
            Args::One(v) => rmpv_footprint(v),
            Args::Many(v) => v.iter().map(|a| JSON_SLOT + json_footprint(a)).sum::<u64>(),
        }
    }

    /// The arguments as JSON (the HTTP API's history read; binary becomes arrays of bytes).
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        match self {
            Args::One(v) => vec![serde_json::to_value(v).unwrap_or(serde_json::Value::Null)],
            Args::Many(v) => v.clone(),
        }
    }
}

/// One nested `rmpv::Value` (its slot in the array or map holding it).
const RMPV_SLOT: u64 = std::mem::size_of::<rmpv::Value>() as u64;
/// One nested `serde_json::Value`.
const JSON_SLOT: u64 = std::mem::size_of::<serde_json::Value>() as u64;
/// One entry of a JSON object besides its key's text and its value: the key's `String` and the
/// B-tree's share of it (nodes hold 11 entries, with edges and lengths).
const JSON_MAP_ENTRY: u64 = std::mem::size_of::<String>() as u64 + 16;

/// The fewest bytes `v` takes in any encoding a client may use (JSON or MessagePack): its
/// text and binary, one byte per other value. For the flow control of replays
/// (`history::flow`), which needs an estimate that is never above what is sent.
pub fn json_wire_floor(v: &serde_json::Value) -> u64 {
    use serde_json::Value as V;
    match v {
        V::Null | V::Bool(_) | V::Number(_) => 1,
        V::String(s) => s.len() as u64,
        V::Array(items) => 1 + items.iter().map(json_wire_floor).sum::<u64>(),
        V::Object(m) => {
            1 + m
                .iter()
                .map(|(k, v)| k.len() as u64 + json_wire_floor(v))
                .sum::<u64>()
        }
    }
}

/// [`json_wire_floor`] of a MessagePack value (binary counts its bytes: sent as an attachment
/// of that length, or longer in base64).
fn rmpv_wire_floor(v: &rmpv::Value) -> u64 {
    use rmpv::Value as V;
    match v {
        V::Nil | V::Boolean(_) | V::Integer(_) | V::F32(_) | V::F64(_) => 1,
        V::String(s) => s.as_bytes().len() as u64,
        V::Binary(b) | V::Ext(_, b) => b.len() as u64,
        V::Array(items) => 1 + items.iter().map(rmpv_wire_floor).sum::<u64>(),
        V::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| rmpv_wire_floor(k) + rmpv_wire_floor(v))
                .sum::<u64>()
        }
    }
}

fn rmpv_footprint(v: &rmpv::Value) -> u64 {
    use rmpv::Value as V;
    match v {
        V::Nil | V::Boolean(_) | V::Integer(_) | V::F32(_) | V::F64(_) => 0,
        V::String(s) => s.as_bytes().len() as u64,
        V::Binary(b) | V::Ext(_, b) => b.len() as u64,
        V::Array(items) => items.iter().map(|i| RMPV_SLOT + rmpv_footprint(i)).sum(),
        V::Map(entries) => entries
            .iter()
            .map(|(k, v)| 2 * RMPV_SLOT + rmpv_footprint(k) + rmpv_footprint(v))
            .sum(),
    }
}

fn json_footprint(v: &serde_json::Value) -> u64 {
    use serde_json::Value as V;
    match v {
        V::Null | V::Bool(_) | V::Number(_) => 0,
        V::String(s) => s.len() as u64,
        V::Array(items) => items.iter().map(|i| JSON_SLOT + json_footprint(i)).sum(),
        V::Object(m) => m
            .iter()
            .map(|(k, v)| JSON_MAP_ENTRY + k.len() as u64 + JSON_SLOT + json_footprint(v))
            .sum(),
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub offset: u64,
    pub at: Instant,
    pub event: String,
    pub args: Args,
    /// What this entry counts against `--history-max-bytes` (see `history::budget`).
    pub bytes: u64,
}

impl Entry {
    /// This message as delivered from `room` of a history in `epoch`.
    pub fn delivery<'a>(&'a self, room: &'a str, epoch: &'a str) -> Delivery<'a> {
        Delivery {
            event: &self.event,
            args: &self.args,
            mark: Mark {
                room,
                offset: Offset::Seq(self.offset),
                epoch,
            },
        }
    }
}

/// The trailing argument of every message delivered from a history room (its shape is
/// sio-wire's, shared with the emitter).
pub type Mark<'a> = sio_wire::history::Mark<'a, Offset>;

/// An offset, written as a string either way.
#[derive(Debug, Clone, Copy)]
pub enum Offset {
    /// Single node: 1, 2, 3, ...
    Seq(u64),
    /// Cluster mode: the stream id.
    Id(sio_wire::history::StreamId),
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Offset::Seq(n) => n.fmt(f),
            Offset::Id(id) => id.fmt(f),
        }
    }
}

/// A message as delivered: its arguments, then the mark. Serializes as a tuple, which
/// socketioxide spreads into separate Socket.IO arguments.
pub struct Delivery<'a> {
    /// The event name (not part of the arguments).
    pub event: &'a str,
    pub args: &'a Args,
    pub mark: Mark<'a>,
}

impl Delivery<'_> {
    /// The fewest bytes this message takes as sent (event, arguments and mark; see
    /// [`json_wire_floor`]): what a replay counts against its window. One walk of the value,
    /// no allocation.
    pub fn wire_floor(&self) -> u64 {
        let args = match self.args {
            Args::One(v) => rmpv_wire_floor(v),
            Args::Many(v) => v.iter().map(json_wire_floor).sum(),
        };
        self.event.len() as u64 + args + (self.mark.room.len() + self.mark.epoch.len()) as u64
    }

    /// This message as the JSON text of a Socket.IO event's data, `[event, ...args, mark]`, the
    /// form in which the hold-back keeps a broadcast for a recovering socket (binary as arrays
    /// of bytes, as in the cluster's stream).
    pub fn packet_json(&self) -> String {
        let mut parts = Vec::with_capacity(self.args.len() + 2);
        parts.push(serde_json::Value::from(self.event));
        parts.extend(self.args.to_json());
        parts.push(serde_json::to_value(self.mark).unwrap_or(serde_json::Value::Null));
        serde_json::Value::Array(parts).to_string()
    }
}

impl Serialize for Delivery<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.args.len() + 1)?;
        match self.args {
            Args::One(v) => t.serialize_element(v)?,
            Args::Many(v) => {
                for a in v {
                    t.serialize_element(a)?;
                }
            }
        }
        t.serialize_element(&self.mark)?;
        t.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_trails_the_arguments() {
        let args = Args::Many(vec![serde_json::json!({"a": 1}), serde_json::json!("b")]);
        let d = Delivery {
            event: "ev",
            args: &args,
            mark: Mark {
                room: "chat:x",
                offset: Offset::Seq(42),
                epoch: "e1",
            },
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!([{"a": 1}, "b", {"room": "chat:x", "offset": "42", "epoch": "e1"}])
        );
        let one = Args::One(rmpv::Value::from("hi"));
        let d = Delivery {
            event: "ev",
            args: &one,
            mark: Mark {
                room: "r",
                offset: Offset::Seq(1),
                epoch: "e",
            },
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!(["hi", {"room": "r", "offset": "1", "epoch": "e"}])
        );
        // As the hold-back keeps it: the event first, then the arguments and the mark.
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&d.packet_json()).unwrap(),
            serde_json::json!(["ev", "hi", {"room": "r", "offset": "1", "epoch": "e"}])
        );
    }

    /// The replay's flow control must never count a message above what is sent: the window
    /// would then look full with everything delivered, and the replay wait for nothing.
    #[test]
    fn the_wire_floor_is_never_above_the_encoded_size() {
        let samples = [
            Args::Many(vec![
                serde_json::json!({"text": "héllo \"quoted\" \n", "n": [1, 2.5, -3], "ok": true}),
                serde_json::json!(null),
                serde_json::json!("€".repeat(1000)),
                serde_json::json!({}),
                serde_json::json!([]),
            ]),
            Args::Many(vec![]),
            Args::One(rmpv::Value::Binary(vec![7; 10_000])),
            Args::One(rmpv::Value::Map(vec![
                (rmpv::Value::from("k"), rmpv::Value::from(0)),
                (
                    rmpv::Value::from(1),
                    rmpv::Value::Array(vec![rmpv::Value::Nil]),
                ),
            ])),
            Args::One(rmpv::Value::from("x".repeat(500_000))),
        ];
        for args in &samples {
            let d = Delivery {
                event: "msg",
                args,
                mark: Mark {
                    room: "chat:x",
                    offset: Offset::Seq(7),
                    epoch: "0123456789abcdef",
                },
            };
            let floor = d.wire_floor();
            // JSON text (binary as arrays of bytes here; as attachments of its length, or
            // base64 when polling, in a real packet: never shorter).
            let json = serde_json::to_string(&(d.event, &d)).unwrap().len() as u64;
            assert!(floor <= json, "{floor} > {json} (JSON) for {args:?}");
            let mut packed = Vec::new();
            let v = rmpv::ext::to_value((d.event, &d)).unwrap();
            rmpv::encode::write_value(&mut packed, &v).unwrap();
            let packed = packed.len() as u64;
            assert!(
                floor <= packed,
                "{floor} > {packed} (MessagePack) for {args:?}"
            );
            // And close to it for big messages.
            if packed > 100_000 {
                assert!(floor * 100 >= packed * 99, "{floor} vs {packed}");
            }
        }
    }

    #[test]
    fn footprint_counts_what_is_held_not_what_was_sent() {
        let bin = Args::One(rmpv::Value::Binary(vec![0; 100_000]));
        assert_eq!(bin.footprint(), 100_000);
        // Small values cost their slots: far more than their encoded size.
        let zeros = Args::One(rmpv::Value::Array(vec![rmpv::Value::from(0); 1000]));
        assert_eq!(zeros.footprint(), 1000 * RMPV_SLOT);
        assert!(
            zeros.footprint() > 10 * 2001,
            "[0,0,...] is ~2 bytes a value on the wire"
        );
        let json = Args::Many(vec![
            serde_json::json!({"text": "hello"}),
            serde_json::json!(1),
        ]);
        assert_eq!(
            json.footprint(),
            2 * JSON_SLOT + JSON_MAP_ENTRY + 4 + JSON_SLOT + 5
        );
    }
}
