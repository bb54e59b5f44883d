//! Requests (`key-request#nsp#`) and responses (`key-response#nsp#[uid#]`) of the classic
//! adapter: types 0–9. JSON on the wire, except the BROADCAST request (type 7) and the
//! BROADCAST_ACK response (type 9), which are msgpack; a reader tells them apart by the first
//! byte (`{` means JSON), exactly as the Node adapter does.
//!
//! Emitter requests are the same messages without a `uid` (types 2–4) or with uid `"emitter"`.

use rmpv::Value;

use crate::error::{Result, WireError};
use crate::fields::{self, Fields};
use crate::json::{self, BinaryMode};
use crate::msgpack::{self, write_map_len, write_str, write_uint};
use crate::packet::{BroadcastOptions, Packet};

/// Request/response `type` numbers.
pub mod request_type {
    /// Legacy `sockets()` request.
    pub const SOCKETS: u8 = 0;
    /// `allRooms()`.
    pub const ALL_ROOMS: u8 = 1;
    /// `socketsJoin()`.
    pub const REMOTE_JOIN: u8 = 2;
    /// `socketsLeave()`.
    pub const REMOTE_LEAVE: u8 = 3;
    /// `disconnectSockets()`.
    pub const REMOTE_DISCONNECT: u8 = 4;
    /// `fetchSockets()`.
    pub const REMOTE_FETCH: u8 = 5;
    /// `serverSideEmit()`.
    pub const SERVER_SIDE_EMIT: u8 = 6;
    /// Broadcast with acknowledgements (msgpack).
    pub const BROADCAST: u8 = 7;
    /// Response: how many clients will ack.
    pub const BROADCAST_CLIENT_COUNT: u8 = 8;
    /// Response: one client's ack (msgpack).
    pub const BROADCAST_ACK: u8 = 9;
}
use request_type as rt;

/// `{rooms, except}` selecting sockets for join/leave/disconnect/fetch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoomsOpts {
    /// Union of these rooms; empty = every socket of the namespace.
    pub rooms: Vec<String>,
    /// Minus the sockets in any of these rooms.
    pub except: Vec<String>,
}

impl RoomsOpts {
    fn from_value(v: Value) -> Result<Self> {
        let mut f = Fields::from_value(v, "opts")?;
        Ok(Self {
            rooms: f.rooms("rooms")?,
            except: f.rooms("except")?,
        })
    }
}

/// A message on the request channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// 0 (legacy): socket ids in `rooms`.
    Sockets {
        uid: Option<String>,
        request_id: String,
        rooms: Vec<String>,
    },
    /// 1: every node answers with its rooms.
    AllRooms {
        uid: Option<String>,
        request_id: String,
    },
    /// 2: every node (the sender included) adds the matching sockets to `rooms`. No reply.
    SocketsJoin {
        uid: Option<String>,
        opts: RoomsOpts,
        rooms: Vec<String>,
    },
    /// 3: every node removes the matching sockets from `rooms`. No reply.
    SocketsLeave {
        uid: Option<String>,
        opts: RoomsOpts,
        rooms: Vec<String>,
    },
    /// 4: every node disconnects the matching sockets (`close` also closes the transport).
    DisconnectSockets {
        uid: Option<String>,
        opts: RoomsOpts,
        close: bool,
    },
    /// 2 (legacy single-socket form `{sid, room}`): the owner replies `{requestId}`.
    RemoteJoin {
        uid: Option<String>,
        request_id: Option<String>,
        sid: String,
        room: String,
    },
    /// 3 (legacy single-socket form).
    RemoteLeave {
        uid: Option<String>,
        request_id: Option<String>,
        sid: String,
        room: String,
    },
    /// 4 (legacy single-socket form).
    RemoteDisconnect {
        uid: Option<String>,
        request_id: Option<String>,
        sid: String,
        close: bool,
    },
    /// 5: every node answers with its matching sockets.
    FetchSockets {
        uid: Option<String>,
        request_id: String,
        opts: RoomsOpts,
    },
    /// 6: `data` = `[event, ...args]`; with a `request_id` every other node acks once.
    ServerSideEmit {
        uid: Option<String>,
        request_id: Option<String>,
        data: Vec<Value>,
    },
    /// 7 (msgpack): broadcast whose client acks travel back as type 8/9 responses.
    BroadcastWithAck {
        uid: String,
        request_id: String,
        packet: Packet,
        opts: BroadcastOptions,
    },
}

impl Request {
    /// The `type` number.
    pub fn request_type(&self) -> u8 {
        match self {
            Request::Sockets { .. } => rt::SOCKETS,
            Request::AllRooms { .. } => rt::ALL_ROOMS,
            Request::SocketsJoin { .. } | Request::RemoteJoin { .. } => rt::REMOTE_JOIN,
            Request::SocketsLeave { .. } | Request::RemoteLeave { .. } => rt::REMOTE_LEAVE,
            Request::DisconnectSockets { .. } | Request::RemoteDisconnect { .. } => {
                rt::REMOTE_DISCONNECT
            }
            Request::FetchSockets { .. } => rt::REMOTE_FETCH,
            Request::ServerSideEmit { .. } => rt::SERVER_SIDE_EMIT,
            Request::BroadcastWithAck { .. } => rt::BROADCAST,
        }
    }

    /// The sender's uid, when it gave one.
    pub fn uid(&self) -> Option<&str> {
        match self {
            Request::Sockets { uid, .. }
            | Request::AllRooms { uid, .. }
            | Request::SocketsJoin { uid, .. }
            | Request::SocketsLeave { uid, .. }
            | Request::DisconnectSockets { uid, .. }
            | Request::RemoteJoin { uid, .. }
            | Request::RemoteLeave { uid, .. }
            | Request::RemoteDisconnect { uid, .. }
            | Request::FetchSockets { uid, .. }
            | Request::ServerSideEmit { uid, .. } => uid.as_deref(),
            Request::BroadcastWithAck { uid, .. } => Some(uid),
        }
    }

    /// The request id, when the request expects answers.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Request::Sockets { request_id, .. }
            | Request::AllRooms { request_id, .. }
            | Request::FetchSockets { request_id, .. }
            | Request::BroadcastWithAck { request_id, .. } => Some(request_id),
            Request::RemoteJoin { request_id, .. }
            | Request::RemoteLeave { request_id, .. }
            | Request::RemoteDisconnect { request_id, .. }
            | Request::ServerSideEmit { request_id, .. } => request_id.as_deref(),
            Request::SocketsJoin { .. }
            | Request::SocketsLeave { .. }
            | Request::DisconnectSockets { .. } => None,
        }
    }

    /// Decode a message received on the request channel (JSON or msgpack).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::from_value(decode_any(bytes)?)
    }

    /// Read a request from an already decoded value.
    pub fn from_value(v: Value) -> Result<Self> {
        let mut f = Fields::from_value(v, "request")?;
        let ty = f
            .int("type")?
            .ok_or_else(|| WireError::shape("missing `type`"))?;
        let uid = f.string("uid")?;
        let rid = f.string("requestId")?;
        let need_rid =
            |rid: Option<String>| rid.ok_or_else(|| WireError::shape("missing `requestId`"));
        let opts = f.take_present("opts");
        Ok(match ty {
            0 => Request::Sockets {
                uid,
                request_id: need_rid(rid)?,
                rooms: f.rooms("rooms")?,
            },
            1 => Request::AllRooms {
                uid,
                request_id: need_rid(rid)?,
            },
            2 | 3 => match opts {
                Some(o) => {
                    let opts = RoomsOpts::from_value(o)?;
                    let rooms = f.rooms("rooms")?;
                    if ty == 2 {
                        Request::SocketsJoin { uid, opts, rooms }
                    } else {
                        Request::SocketsLeave { uid, opts, rooms }
                    }
                }
                None => {
                    let sid = f.req_string("sid")?;
                    let room = f.req_string("room")?;
                    if ty == 2 {
                        Request::RemoteJoin {
                            uid,
                            request_id: rid,
                            sid,
                            room,
                        }
                    } else {
                        Request::RemoteLeave {
                            uid,
                            request_id: rid,
                            sid,
                            room,
                        }
                    }
                }
            },
            4 => {
                let close = f.bool("close")?.unwrap_or(false);
                match opts {
                    Some(o) => Request::DisconnectSockets {
                        uid,
                        opts: RoomsOpts::from_value(o)?,
                        close,
                    },
                    None => Request::RemoteDisconnect {
                        uid,
                        request_id: rid,
                        sid: f.req_string("sid")?,
                        close,
                    },
                }
            }
            5 => Request::FetchSockets {
                uid,
                request_id: need_rid(rid)?,
                opts: opts
                    .map(RoomsOpts::from_value)
                    .transpose()?
                    .unwrap_or_default(),
            },
            6 => {
                let data = match f.take_present("data") {
                    Some(Value::Array(a)) => a,
                    None => Vec::new(),
                    Some(_) => return Err(WireError::shape("`data` is not an array")),
                };
                Request::ServerSideEmit {
                    uid,
                    request_id: rid,
                    data,
                }
            }
            7 => Request::BroadcastWithAck {
                uid: uid.ok_or_else(|| WireError::shape("missing `uid`"))?,
                request_id: need_rid(rid)?,
                packet: Packet::from_value(
                    f.take("packet")
                        .ok_or_else(|| WireError::shape("missing `packet`"))?,
                )?,
                opts: opts
                    .map(BroadcastOptions::from_value)
                    .transpose()?
                    .unwrap_or_default(),
            },
            other => return Err(WireError::UnknownType(other)),
        })
    }

    /// The bytes Node would publish: JSON for types 0–6, msgpack for type 7.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut o = Vec::with_capacity(96);
        if let Request::BroadcastWithAck {
            uid,
            request_id,
            packet,
            opts,
        } = self
        {
            write_map_len(&mut o, 5);
            write_str(&mut o, "uid");
            write_str(&mut o, uid);
            write_str(&mut o, "requestId");
            write_str(&mut o, request_id);
            write_str(&mut o, "type");
            write_uint(&mut o, u64::from(rt::BROADCAST));
            write_str(&mut o, "packet");
            packet.encode_into(&mut o);
            write_str(&mut o, "opts");
            opts.encode_into(&mut o);
            return Ok(o);
        }
        // JSON: `{uid?, requestId?, type, ...}`, the key order of both Node packages.
        o.push(b'{');
        let mut w = JsonObj {
            out: &mut o,
            first: true,
        };
        if let Some(uid) = self.uid() {
            w.key("uid");
            json::write_str(w.out, uid);
        }
        if let Some(rid) = self.request_id() {
            w.key("requestId");
            json::write_str(w.out, rid);
        }
        w.key("type");
        json::write_f64(w.out, f64::from(self.request_type()));
        match self {
            Request::Sockets { rooms, .. } => {
                w.key("rooms");
                write_json_rooms(w.out, rooms);
            }
            Request::AllRooms { .. } | Request::BroadcastWithAck { .. } => {}
            Request::SocketsJoin { opts, rooms, .. }
            | Request::SocketsLeave { opts, rooms, .. } => {
                w.key("opts");
                write_json_opts(w.out, opts);
                w.key("rooms");
                write_json_rooms(w.out, rooms);
            }
            Request::DisconnectSockets { opts, close, .. } => {
                w.key("opts");
                write_json_opts(w.out, opts);
                w.key("close");
                w.out
                    .extend_from_slice(if *close { b"true" } else { b"false" });
            }
            Request::RemoteJoin { sid, room, .. } | Request::RemoteLeave { sid, room, .. } => {
                w.key("sid");
                json::write_str(w.out, sid);
                w.key("room");
                json::write_str(w.out, room);
            }
            Request::RemoteDisconnect { sid, close, .. } => {
                w.key("sid");
                json::write_str(w.out, sid);
                w.key("close");
                w.out
                    .extend_from_slice(if *close { b"true" } else { b"false" });
            }
            Request::FetchSockets { opts, .. } => {
                w.key("opts");
                write_json_opts(w.out, opts);
            }
            Request::ServerSideEmit { data, .. } => {
                w.key("data");
                json::write_value_slice(data, w.out, &mut BinaryMode::NodeBuffer)?;
            }
        }
        o.push(b'}');
        Ok(o)
    }
}

struct JsonObj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl JsonObj<'_> {
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        json::write_str(self.out, k);
        self.out.push(b':');
    }
}

fn write_json_rooms(out: &mut Vec<u8>, rooms: &[String]) {
    out.push(b'[');
    for (i, r) in rooms.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(out, r);
    }
    out.push(b']');
}

fn write_json_opts(out: &mut Vec<u8>, opts: &RoomsOpts) {
    out.extend_from_slice(b"{\"rooms\":");
    write_json_rooms(out, &opts.rooms);
    out.extend_from_slice(b",\"except\":");
    write_json_rooms(out, &opts.except);
    out.push(b'}');
}

/// Decode JSON (first byte `{`) or msgpack, as the Node adapter chooses.
pub fn decode_any(bytes: &[u8]) -> Result<Value> {
    if bytes.first() == Some(&b'{') {
        json::parse(bytes)
    } else {
        msgpack::decode(bytes)
    }
}

/// One socket in a fetchSockets answer: `{id, handshake, rooms, data}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedSocket {
    /// Socket id.
    pub id: String,
    /// The Node handshake object (`headers, time, address, xdomain, secure, issued, url,
    /// query, auth`), kept as a dynamic value.
    pub handshake: Value,
    /// Rooms of the socket (its own id included, as Node reports).
    pub rooms: Vec<String>,
    /// `socket.data`; `None` when it was `undefined` (JSON.stringify drops the key).
    pub data: Option<Value>,
    /// The name of the node that holds the socket (a gateway's `--node-id`). Not in Node's
    /// format: gateways add it and Node ignores it (its `RemoteSocket` reads only the four
    /// fields above); `None` for Node peers' sockets.
    pub node: Option<String>,
}

impl FetchedSocket {
    /// The socket as a dynamic value (`{id, handshake, rooms, data?}`).
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            (Value::from("id"), Value::from(self.id.as_str())),
            (Value::from("handshake"), self.handshake.clone()),
            (
                Value::from("rooms"),
                Value::Array(self.rooms.iter().map(|r| Value::from(r.as_str())).collect()),
            ),
        ];
        if let Some(d) = &self.data {
            m.push((Value::from("data"), d.clone()));
        }
        if let Some(n) = &self.node {
            m.push((Value::from("node"), Value::from(n.as_str())));
        }
        Value::Map(m)
    }

    /// Read a socket from a decoded value.
    pub fn from_value(v: Value) -> Result<Self> {
        let mut f = Fields::from_value(v, "socket")?;
        Ok(Self {
            id: f.req_string("id")?,
            handshake: f.take("handshake").unwrap_or(Value::Nil),
            rooms: f.rooms("rooms")?,
            data: f.take("data"),
            node: f.string("node")?,
        })
    }

    fn write_json(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(b"{\"id\":");
        json::write_str(out, &self.id);
        out.extend_from_slice(b",\"handshake\":");
        json::write_value(&self.handshake, out, &mut BinaryMode::NodeBuffer)?;
        out.extend_from_slice(b",\"rooms\":");
        write_json_rooms(out, &self.rooms);
        if let Some(d) = &self.data {
            out.extend_from_slice(b",\"data\":");
            json::write_value(d, out, &mut BinaryMode::NodeBuffer)?;
        }
        if let Some(n) = &self.node {
            out.extend_from_slice(b",\"node\":");
            json::write_str(out, n);
        }
        out.push(b'}');
        Ok(())
    }
}

/// A message on a response channel. Types 1, 5 and the legacy forms carry no `type` on the
/// wire: they are recognised by their fields (`rooms`, `sockets`), and the requester matches
/// them by `requestId` to what it asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Legacy answer to type 0: `{requestId, sockets:[sid...]}`.
    Sockets {
        request_id: String,
        sockets: Vec<String>,
    },
    /// Answer to ALL_ROOMS: `{requestId, rooms}`.
    AllRooms {
        request_id: String,
        rooms: Vec<String>,
    },
    /// Answer to REMOTE_FETCH: `{requestId, sockets:[{id, handshake, rooms, data}]}`.
    FetchSockets {
        request_id: String,
        sockets: Vec<FetchedSocket>,
    },
    /// Answer to a legacy single-socket join/leave/disconnect: `{requestId}`.
    Done { request_id: String },
    /// Ack of a serverSideEmit: `{type:6, requestId, data}`.
    ServerSideEmitAck { request_id: String, data: Value },
    /// `{type:8, requestId, clientCount}`.
    BroadcastClientCount {
        request_id: String,
        client_count: u64,
    },
    /// msgpack `{type:9, requestId, packet}`: one client's ack arguments.
    BroadcastAck { request_id: String, packet: Value },
}

impl Response {
    /// The request id this answers.
    pub fn request_id(&self) -> &str {
        match self {
            Response::Sockets { request_id, .. }
            | Response::AllRooms { request_id, .. }
            | Response::FetchSockets { request_id, .. }
            | Response::Done { request_id }
            | Response::ServerSideEmitAck { request_id, .. }
            | Response::BroadcastClientCount { request_id, .. }
            | Response::BroadcastAck { request_id, .. } => request_id,
        }
    }

    /// Decode a message received on a response channel (JSON or msgpack).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut f = Fields::from_value(decode_any(bytes)?, "response")?;
        let request_id = f.req_string("requestId")?;
        match f.int("type")? {
            Some(6) => {
                return Ok(Response::ServerSideEmitAck {
                    request_id,
                    data: f.take("data").unwrap_or(Value::Nil),
                });
            }
            Some(8) => {
                let n = f.int("clientCount")?.unwrap_or(0);
                return Ok(Response::BroadcastClientCount {
                    request_id,
                    client_count: u64::try_from(n).unwrap_or(0),
                });
            }
            Some(9) => {
                return Ok(Response::BroadcastAck {
                    request_id,
                    packet: f.take("packet").unwrap_or(Value::Nil),
                });
            }
            // Answers to types 0, 1 and 5 carry no type: recognised by their fields below.
            Some(other) if !(f.has("rooms") || f.has("sockets")) => {
                return Err(WireError::UnknownType(other));
            }
            _ => {}
        }
        if let Some(rooms) = f.take_present("rooms") {
            return Ok(Response::AllRooms {
                request_id,
                rooms: fields::rooms(rooms, "rooms")?,
            });
        }
        match f.take_present("sockets") {
            Some(Value::Array(items)) => {
                if items.first().is_some_and(|s| s.is_str()) {
                    let sockets = items
                        .into_iter()
                        .map(|s| fields::string(s, "sockets"))
                        .collect::<Result<_>>()?;
                    Ok(Response::Sockets {
                        request_id,
                        sockets,
                    })
                } else {
                    let sockets = items
                        .into_iter()
                        .map(FetchedSocket::from_value)
                        .collect::<Result<_>>()?;
                    Ok(Response::FetchSockets {
                        request_id,
                        sockets,
                    })
                }
            }
            Some(_) => Err(WireError::shape("`sockets` is not an array")),
            None => Ok(Response::Done { request_id }),
        }
    }

    /// The bytes Node would publish (msgpack for BROADCAST_ACK, JSON otherwise).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut o = Vec::with_capacity(64);
        match self {
            Response::BroadcastAck { request_id, packet } => {
                write_map_len(&mut o, 3);
                write_str(&mut o, "type");
                write_uint(&mut o, u64::from(rt::BROADCAST_ACK));
                write_str(&mut o, "requestId");
                write_str(&mut o, request_id);
                write_str(&mut o, "packet");
                msgpack::encode_into(packet, &mut o);
            }
            Response::ServerSideEmitAck { request_id, data } => {
                o.extend_from_slice(b"{\"type\":6,\"requestId\":");
                json::write_str(&mut o, request_id);
                o.extend_from_slice(b",\"data\":");
                json::write_value(data, &mut o, &mut BinaryMode::NodeBuffer)?;
                o.push(b'}');
            }
            Response::BroadcastClientCount {
                request_id,
                client_count,
            } => {
                o.extend_from_slice(b"{\"type\":8,\"requestId\":");
                json::write_str(&mut o, request_id);
                o.extend_from_slice(b",\"clientCount\":");
                o.extend_from_slice(client_count.to_string().as_bytes());
                o.push(b'}');
            }
            Response::AllRooms { request_id, rooms }
            | Response::Sockets {
                request_id,
                sockets: rooms,
            } => {
                o.extend_from_slice(b"{\"requestId\":");
                json::write_str(&mut o, request_id);
                let key: &[u8] = if matches!(self, Response::AllRooms { .. }) {
                    b",\"rooms\":"
                } else {
                    b",\"sockets\":"
                };
                o.extend_from_slice(key);
                write_json_rooms(&mut o, rooms);
                o.push(b'}');
            }
            Response::FetchSockets {
                request_id,
                sockets,
            } => {
                o.extend_from_slice(b"{\"requestId\":");
                json::write_str(&mut o, request_id);
                o.extend_from_slice(b",\"sockets\":[");
                for (i, s) in sockets.iter().enumerate() {
                    if i > 0 {
                        o.push(b',');
                    }
                    s.write_json(&mut o)?;
                }
                o.extend_from_slice(b"]}");
            }
            Response::Done { request_id } => {
                o.extend_from_slice(b"{\"requestId\":");
                json::write_str(&mut o, request_id);
                o.push(b'}');
            }
        }
        Ok(o)
    }
}
