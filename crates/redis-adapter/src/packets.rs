//! Conversions between socketioxide's packets and values and the Node wire format
//! (`sio_wire`): outbound events, inbound events, and acks in both directions.

use std::collections::VecDeque;

use bytes::Bytes;
use socketioxide_core::{
    Str, Value,
    packet::{Packet, PacketData},
};

use crate::error::Error;
use sio_wire::{Packet as WirePacket, WireError, packet_type};

/// Attachments of a text event without binaries.
static NO_ATTACHMENTS: VecDeque<Bytes> = VecDeque::new();

/// socketioxide packet -> Node packet. Only text-parser events can be carried.
pub(crate) fn to_node_packet(packet: &Packet) -> Result<WirePacket, Error> {
    match &packet.inner {
        PacketData::Event(Value::Str(text, bins), _)
        | PacketData::BinaryEvent(Value::Str(text, bins), _) => Ok(WirePacket::with_data(
            packet.ns.as_str(),
            sio_wire::from_placeholder_json(text, bins.as_ref().unwrap_or(&NO_ATTACHMENTS))?,
        )),
        _ => Err(Error::Unsupported(
            "only events of the common (text) parser",
        )),
    }
}

/// Node packet -> socketioxide event packet.
pub(crate) fn to_sio_packet(nsp: &str, p: WirePacket) -> Result<Packet, WireError> {
    let (text, bins) = sio_wire::into_placeholder_json(p.data)?.attachments_opt();
    Ok(Packet::event(nsp.to_owned(), Value::Str(text.into(), bins)))
}

/// Is the Node packet an event (the only packets a broadcast carries)?
pub(crate) fn is_event(p: &WirePacket) -> bool {
    p.packet_type == packet_type::EVENT || p.packet_type == packet_type::BINARY_EVENT
}

/// A local client's ack (`[arg, ...]` as text + binaries) -> the first argument, which is all
/// Node forwards. `None` when the text is not valid data.
pub(crate) fn first_ack_arg(text: &Str, bins: Option<&VecDeque<Bytes>>) -> Option<sio_wire::Value> {
    let att = bins.unwrap_or(&NO_ATTACHMENTS);
    match sio_wire::from_placeholder_json(text, att) {
        Ok(sio_wire::Value::Array(mut a)) if !a.is_empty() => Some(a.swap_remove(0)),
        Ok(sio_wire::Value::Array(_)) => Some(sio_wire::Value::Nil),
        Ok(other) => Some(other),
        Err(_) => None,
    }
}

/// Converts the first ack argument as Node sends it into socketioxide's ack value (`[arg]`).
pub(crate) fn remote_ack_value(packet: sio_wire::Value) -> Option<Value> {
    let (text, bins) = sio_wire::into_placeholder_json(sio_wire::Value::Array(vec![packet]))
        .ok()?
        .attachments_opt();
    Some(Value::Str(text.into(), bins))
}

#[cfg(test)]
mod placeholder_tests {
    use sio_wire::{BroadcastMessage, BroadcastOptions as WireOpts, EMITTER_UID, Value as V};

    use super::*;

    fn map(kv: Vec<(&str, V)>) -> V {
        V::Map(kv.into_iter().map(|(k, v)| (V::from(k), v)).collect())
    }
    fn ph(num: i64) -> V {
        map(vec![("_placeholder", V::from(true)), ("num", V::from(num))])
    }

    /// A broadcast as `@socket.io/redis-emitter` puts it on Redis, read back the way
    /// `on_broadcast` reads it.
    fn from_redis(args: Vec<V>) -> Result<Packet, WireError> {
        let bytes = BroadcastMessage {
            uid: EMITTER_UID.into(),
            packet: WirePacket::event("/", "e", args),
            opts: WireOpts::default(),
        }
        .encode();
        let m = BroadcastMessage::decode(&bytes)?;
        to_sio_packet("/", m.packet)
    }

    #[test]
    fn broadcasts_with_placeholder_shaped_data_are_not_delivered() {
        // The forged forms of issue 13: out of range beside a real binary, a fake aliasing
        // the real one, and a placeholder object without any binary.
        for args in [
            vec![map(vec![("a", V::Binary(vec![1])), ("b", ph(3))])],
            vec![V::Binary(vec![1]), ph(0)],
            vec![V::from("x"), map(vec![("deep", V::Array(vec![ph(0)]))])],
        ] {
            assert!(
                matches!(from_redis(args), Err(WireError::PlaceholderInData)),
                "refused before any socket sees it"
            );
        }
        // A Buffer from an emitter still becomes exactly one attachment.
        let p = from_redis(vec![map(vec![("file", V::Binary(vec![7, 8]))])]).unwrap();
        match p.inner {
            PacketData::BinaryEvent(Value::Str(text, Some(bins)), _) => {
                assert_eq!(&*text, r#"["e",{"file":{"_placeholder":true,"num":0}}]"#);
                assert_eq!(bins.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn outgoing_and_ack_paths_refuse_placeholder_objects_too() {
        // socketioxide's form: its own placeholders resolve, any other object with a
        // `_placeholder` key is refused before local delivery or PUBLISH.
        let bins: std::collections::VecDeque<bytes::Bytes> =
            [bytes::Bytes::from_static(b"x")].into();
        let event =
            |text: &'static str| Packet::event("/", Value::Str(text.into(), Some(bins.clone())));
        assert!(to_node_packet(&event(r#"["e",{"_placeholder":true,"num":0}]"#)).is_ok());
        for text in [
            r#"["e",{"x":{"_placeholder":false}}]"#,
            r#"["e",{"_placeholder":true,"num":1}]"#,
        ] {
            assert!(to_node_packet(&event(text)).is_err(), "{text}");
        }
        // A peer's ack argument shaped like a placeholder is not handed to the emitter.
        assert!(remote_ack_value(ph(0)).is_none());
        assert!(remote_ack_value(V::Binary(vec![1])).is_some());
    }
}
