//! Messages of the sharded adapter (`createShardedAdapter` of `@socket.io/redis-adapter` 8.x,
//! i.e. socket.io-adapter's `ClusterAdapter` message types over SPUBLISH/SSUBSCRIBE).
//!
//! On the wire a message is `{type, data?, uid, nsp}` (that key order: the Node adapter sets
//! `uid` and `nsp` after building `{type, data}`). It is JSON, except that types 3, 8, 9, 10 and
//! 12 are msgpack when their `data` holds binary. Channels: `key#nsp#` (main),
//! `key#nsp#<uid>#` (responses to one node), `key#nsp#<room>#` (dynamic room channels), see
//! [`sharded_publish_channel`].
//!
//! Encoding goes through a dynamic value tree (one allocation per node of the message): the
//! sharded path is only used on Redis 7 clusters and shares the broadcast cost with SPUBLISH.

use rmpv::Value;

use crate::channels::NamespaceChannels;
use crate::error::{Result, WireError};
use crate::fields::Fields;
use crate::json::{self, BinaryMode};
use crate::msgpack;
use crate::packet::{BroadcastOptions, Packet};
use crate::request::{FetchedSocket, decode_any};

/// `MessageType` of socket.io-adapter's ClusterAdapter.
pub mod cluster_type {
    /// A node announces itself (heartbeat adapters only).
    pub const INITIAL_HEARTBEAT: u8 = 1;
    /// Still alive (heartbeat adapters only).
    pub const HEARTBEAT: u8 = 2;
    /// Broadcast (with `requestId` when acks are expected).
    pub const BROADCAST: u8 = 3;
    /// socketsJoin.
    pub const SOCKETS_JOIN: u8 = 4;
    /// socketsLeave.
    pub const SOCKETS_LEAVE: u8 = 5;
    /// disconnectSockets.
    pub const DISCONNECT_SOCKETS: u8 = 6;
    /// fetchSockets.
    pub const FETCH_SOCKETS: u8 = 7;
    /// Answer to fetchSockets.
    pub const FETCH_SOCKETS_RESPONSE: u8 = 8;
    /// serverSideEmit.
    pub const SERVER_SIDE_EMIT: u8 = 9;
    /// Ack of a serverSideEmit.
    pub const SERVER_SIDE_EMIT_RESPONSE: u8 = 10;
    /// How many clients will ack a broadcast.
    pub const BROADCAST_CLIENT_COUNT: u8 = 11;
    /// One client's ack of a broadcast.
    pub const BROADCAST_ACK: u8 = 12;
    /// A node leaves (heartbeat adapters only).
    pub const ADAPTER_CLOSE: u8 = 13;
}
use cluster_type as ct;

/// What a cluster message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterBody {
    /// 1
    InitialHeartbeat,
    /// 2
    Heartbeat,
    /// 3: `{packet, opts}`, or `{packet, requestId, opts}` for a broadcast with acks.
    Broadcast {
        packet: Packet,
        request_id: Option<String>,
        opts: BroadcastOptions,
    },
    /// 4: `{opts, rooms}`
    SocketsJoin {
        opts: BroadcastOptions,
        rooms: Vec<String>,
    },
    /// 5: `{opts, rooms}`
    SocketsLeave {
        opts: BroadcastOptions,
        rooms: Vec<String>,
    },
    /// 6: `{opts, close}`
    DisconnectSockets { opts: BroadcastOptions, close: bool },
    /// 7: `{opts, requestId}`
    FetchSockets {
        opts: BroadcastOptions,
        request_id: String,
    },
    /// 8: `{requestId, sockets}`
    FetchSocketsResponse {
        request_id: String,
        sockets: Vec<FetchedSocket>,
    },
    /// 9: `{packet}` or `{requestId, packet}`; `packet` = `[event, ...args]`.
    ServerSideEmit {
        request_id: Option<String>,
        packet: Vec<Value>,
    },
    /// 10: `{requestId, packet}` (the ack argument).
    ServerSideEmitResponse { request_id: String, packet: Value },
    /// 11: `{requestId, clientCount}`
    BroadcastClientCount {
        request_id: String,
        client_count: u64,
    },
    /// 12: `{requestId, packet}` (the client's ack argument).
    BroadcastAck { request_id: String, packet: Value },
    /// 13
    AdapterClose,
}

/// `{type, data?, uid, nsp}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterMessage {
    /// The sending node (16 hex chars in Node; `"emitter"` for emitters).
    pub uid: String,
    /// Namespace.
    pub nsp: String,
    /// Type and data.
    pub body: ClusterBody,
}

fn s(x: &str) -> Value {
    Value::from(x)
}

fn rooms_value(r: &[String]) -> Value {
    Value::Array(r.iter().map(|x| Value::from(x.as_str())).collect())
}

impl ClusterBody {
    /// The `type` number.
    pub fn message_type(&self) -> u8 {
        match self {
            ClusterBody::InitialHeartbeat => ct::INITIAL_HEARTBEAT,
            ClusterBody::Heartbeat => ct::HEARTBEAT,
            ClusterBody::Broadcast { .. } => ct::BROADCAST,
            ClusterBody::SocketsJoin { .. } => ct::SOCKETS_JOIN,
            ClusterBody::SocketsLeave { .. } => ct::SOCKETS_LEAVE,
            ClusterBody::DisconnectSockets { .. } => ct::DISCONNECT_SOCKETS,
            ClusterBody::FetchSockets { .. } => ct::FETCH_SOCKETS,
            ClusterBody::FetchSocketsResponse { .. } => ct::FETCH_SOCKETS_RESPONSE,
            ClusterBody::ServerSideEmit { .. } => ct::SERVER_SIDE_EMIT,
            ClusterBody::ServerSideEmitResponse { .. } => ct::SERVER_SIDE_EMIT_RESPONSE,
            ClusterBody::BroadcastClientCount { .. } => ct::BROADCAST_CLIENT_COUNT,
            ClusterBody::BroadcastAck { .. } => ct::BROADCAST_ACK,
            ClusterBody::AdapterClose => ct::ADAPTER_CLOSE,
        }
    }

    /// Whether this is an answer to a request (goes to the requester's own channel).
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            ClusterBody::FetchSocketsResponse { .. }
                | ClusterBody::ServerSideEmitResponse { .. }
                | ClusterBody::BroadcastClientCount { .. }
                | ClusterBody::BroadcastAck { .. }
        )
    }

    fn data(&self) -> Option<Value> {
        let rid = |r: &str| (s("requestId"), s(r));
        Some(Value::Map(match self {
            ClusterBody::InitialHeartbeat | ClusterBody::Heartbeat | ClusterBody::AdapterClose => {
                return None;
            }
            ClusterBody::Broadcast {
                packet,
                request_id,
                opts,
            } => {
                let mut m = vec![(s("packet"), packet.to_value())];
                if let Some(r) = request_id {
                    m.push(rid(r));
                }
                m.push((s("opts"), opts.to_value()));
                m
            }
            ClusterBody::SocketsJoin { opts, rooms }
            | ClusterBody::SocketsLeave { opts, rooms } => {
                vec![
                    (s("opts"), opts.to_value()),
                    (s("rooms"), rooms_value(rooms)),
                ]
            }
            ClusterBody::DisconnectSockets { opts, close } => {
                vec![
                    (s("opts"), opts.to_value()),
                    (s("close"), Value::Boolean(*close)),
                ]
            }
            ClusterBody::FetchSockets { opts, request_id } => {
                vec![(s("opts"), opts.to_value()), rid(request_id)]
            }
            ClusterBody::FetchSocketsResponse {
                request_id,
                sockets,
            } => vec![
                rid(request_id),
                (
                    s("sockets"),
                    Value::Array(sockets.iter().map(FetchedSocket::to_value).collect()),
                ),
            ],
            ClusterBody::ServerSideEmit { request_id, packet } => {
                let mut m = Vec::with_capacity(2);
                if let Some(r) = request_id {
                    m.push(rid(r));
                }
                m.push((s("packet"), Value::Array(packet.clone())));
                m
            }
            ClusterBody::ServerSideEmitResponse { request_id, packet }
            | ClusterBody::BroadcastAck { request_id, packet } => {
                vec![rid(request_id), (s("packet"), packet.clone())]
            }
            ClusterBody::BroadcastClientCount {
                request_id,
                client_count,
            } => {
                vec![
                    rid(request_id),
                    (s("clientCount"), Value::from(*client_count)),
                ]
            }
        }))
    }
}

/// Whether a value holds binary anywhere (socket.io's `hasBinary`).
pub fn has_binary(v: &Value) -> bool {
    match v {
        Value::Binary(_) => true,
        Value::Array(a) => a.iter().any(has_binary),
        Value::Map(m) => m.iter().any(|(_, v)| has_binary(v)),
        _ => false,
    }
}

impl ClusterMessage {
    /// The message as a dynamic value `{type, data?, uid, nsp}`.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::with_capacity(4);
        m.push((s("type"), Value::from(self.body.message_type())));
        if let Some(d) = self.body.data() {
            m.push((s("data"), d));
        }
        m.push((s("uid"), s(&self.uid)));
        m.push((s("nsp"), s(&self.nsp)));
        Value::Map(m)
    }

    /// The bytes the Node sharded adapter would publish: msgpack for types 3, 8, 9, 10, 12
    /// when the data holds binary, JSON otherwise.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let v = self.to_value();
        let may_have_binary = matches!(
            self.body.message_type(),
            ct::BROADCAST
                | ct::FETCH_SOCKETS_RESPONSE
                | ct::SERVER_SIDE_EMIT
                | ct::SERVER_SIDE_EMIT_RESPONSE
                | ct::BROADCAST_ACK
        );
        if may_have_binary && has_binary(&v) {
            return Ok(msgpack::encode(&v));
        }
        let mut out = Vec::with_capacity(128);
        json::write_value(&v, &mut out, &mut BinaryMode::NodeBuffer)?;
        Ok(out)
    }

    /// Decode a message received on a sharded channel (JSON or msgpack).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut f = Fields::from_value(decode_any(bytes)?, "cluster message")?;
        let ty = f
            .int("type")?
            .ok_or_else(|| WireError::shape("missing `type`"))?;
        let uid = f.string("uid")?.unwrap_or_default();
        let nsp = f.string("nsp")?.unwrap_or_else(|| "/".to_owned());
        let mut d = match f.take_present("data") {
            Some(v) => Fields::from_value(v, "data")?,
            None => Fields(Vec::new()),
        };
        let opts = |d: &mut Fields| -> Result<BroadcastOptions> {
            d.take_present("opts")
                .map(BroadcastOptions::from_value)
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let rid = |d: &mut Fields| d.req_string("requestId");
        let body = match ty {
            1 => ClusterBody::InitialHeartbeat,
            2 => ClusterBody::Heartbeat,
            13 => ClusterBody::AdapterClose,
            3 => ClusterBody::Broadcast {
                packet: Packet::from_value(
                    d.take("packet")
                        .ok_or_else(|| WireError::shape("missing `packet`"))?,
                )?,
                request_id: d.string("requestId")?,
                opts: opts(&mut d)?,
            },
            4 => ClusterBody::SocketsJoin {
                opts: opts(&mut d)?,
                rooms: d.rooms("rooms")?,
            },
            5 => ClusterBody::SocketsLeave {
                opts: opts(&mut d)?,
                rooms: d.rooms("rooms")?,
            },
            6 => ClusterBody::DisconnectSockets {
                opts: opts(&mut d)?,
                close: d.bool("close")?.unwrap_or(false),
            },
            7 => ClusterBody::FetchSockets {
                opts: opts(&mut d)?,
                request_id: rid(&mut d)?,
            },
            8 => {
                let sockets = match d.take_present("sockets") {
                    Some(Value::Array(a)) => a
                        .into_iter()
                        .map(FetchedSocket::from_value)
                        .collect::<Result<_>>()?,
                    None => Vec::new(),
                    Some(_) => return Err(WireError::shape("`sockets` is not an array")),
                };
                ClusterBody::FetchSocketsResponse {
                    request_id: rid(&mut d)?,
                    sockets,
                }
            }
            9 => ClusterBody::ServerSideEmit {
                request_id: d.string("requestId")?,
                packet: match d.take_present("packet") {
                    Some(Value::Array(a)) => a,
                    None => Vec::new(),
                    Some(_) => return Err(WireError::shape("`packet` is not an array")),
                },
            },
            10 => ClusterBody::ServerSideEmitResponse {
                request_id: rid(&mut d)?,
                packet: d.take("packet").unwrap_or(Value::Nil),
            },
            11 => ClusterBody::BroadcastClientCount {
                request_id: rid(&mut d)?,
                client_count: u64::try_from(d.int("clientCount")?.unwrap_or(0)).unwrap_or(0),
            },
            12 => ClusterBody::BroadcastAck {
                request_id: rid(&mut d)?,
                packet: d.take("packet").unwrap_or(Value::Nil),
            },
            other => return Err(WireError::UnknownType(other)),
        };
        Ok(ClusterMessage { uid, nsp, body })
    }
}

/// `subscriptionMode` of the sharded adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// Only the main and response channels.
    Static,
    /// Plus one channel per public room (not for rooms that look like socket ids). Default.
    #[default]
    Dynamic,
    /// Plus one channel per room, private rooms (socket ids) included.
    DynamicPrivate,
}

/// Node's `looksLikeASocketId`: a 20-character room name is taken for a socket id.
pub fn looks_like_socket_id(room: &str) -> bool {
    room.encode_utf16().count() == 20
}

/// The channel the sharded adapter publishes `msg` on: the room's own channel for a broadcast
/// without acks to exactly one room (when `mode` gives that room a channel), else `key#nsp#`.
/// Responses go to `key#nsp#<requester uid>#` ([`NamespaceChannels::room`] of the uid).
pub fn sharded_publish_channel(
    channels: &NamespaceChannels,
    msg: &ClusterMessage,
    mode: SubscriptionMode,
) -> String {
    if let ClusterBody::Broadcast {
        request_id: None,
        opts,
        ..
    } = &msg.body
        && let [room] = opts.rooms.as_slice()
    {
        let dynamic = match mode {
            SubscriptionMode::Static => false,
            SubscriptionMode::Dynamic => !looks_like_socket_id(room),
            SubscriptionMode::DynamicPrivate => true,
        };
        if dynamic {
            return channels.room(room);
        }
    }
    channels.broadcast().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_unless_binary() {
        let mut msg = ClusterMessage {
            uid: "0123456789abcdef".into(),
            nsp: "/".into(),
            body: ClusterBody::Broadcast {
                packet: Packet::event("/", "ev", vec![Value::from(1)]),
                request_id: None,
                opts: BroadcastOptions {
                    rooms: vec!["r".into()],
                    ..Default::default()
                },
            },
        };
        let bytes = msg.encode().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"type":3,"data":{"packet":{"type":2,"data":["ev",1],"nsp":"/"},"opts":{"rooms":["r"],"except":[],"flags":{}}},"uid":"0123456789abcdef","nsp":"/"}"#
        );
        assert_eq!(ClusterMessage::decode(&bytes).unwrap(), msg);
        let ch = NamespaceChannels::new("socket.io", "/");
        assert_eq!(
            sharded_publish_channel(&ch, &msg, SubscriptionMode::Dynamic),
            "socket.io#/#r#"
        );
        assert_eq!(
            sharded_publish_channel(&ch, &msg, SubscriptionMode::Static),
            "socket.io#/#"
        );
        if let ClusterBody::Broadcast { packet, .. } = &mut msg.body {
            packet.data = Value::Array(vec![Value::from("ev"), Value::Binary(vec![1])]);
        }
        let bytes = msg.encode().unwrap();
        assert_eq!(bytes[0], 0x84);
        assert_eq!(ClusterMessage::decode(&bytes).unwrap(), msg);
        let hb = ClusterMessage {
            uid: "u".into(),
            nsp: "/".into(),
            body: ClusterBody::Heartbeat,
        };
        assert_eq!(hb.encode().unwrap(), br#"{"type":2,"uid":"u","nsp":"/"}"#);
        assert!(looks_like_socket_id("PGj3_-L0xWV7s5J0AAAA"));
    }
}
