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

    /// The arguments as JSON (the HTTP API's history read; binary becomes arrays of bytes).
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        match self {
            Args::One(v) => vec![serde_json::to_value(v).unwrap_or(serde_json::Value::Null)],
            Args::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub offset: u64,
    pub at: Instant,
    pub event: String,
    pub args: Args,
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
}
