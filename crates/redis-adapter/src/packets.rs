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
