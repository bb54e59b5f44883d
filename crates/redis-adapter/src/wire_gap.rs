//! TEMPORARY home of the wire-format pieces the adapter needs and `sio-wire` did not provide yet.
//!
//! Everything in this module is format code (channel names, message types, the notepack-compatible
//! msgpack and JSON forms of `@socket.io/redis-adapter` 8.x, and the conversion between
//! socketioxide's packet data and Node's packet form). By the project rule "one concept, one
//! place" it belongs in `sio-wire`; it lives here only because both crates were written at the
//! same time. The adapter uses it exclusively through the functions below so that swapping it for
//! `sio-wire` is a mechanical change. See the crate report for what should move.

use std::collections::VecDeque;

use bytes::Bytes;
use rmpv::Value as Mp;

/// Message / request types of the classic Node adapter (`RequestType` in its dist/index.js).
pub mod kind {
    pub const ALL_ROOMS: u64 = 1;
    pub const REMOTE_JOIN: u64 = 2;
    pub const REMOTE_LEAVE: u64 = 3;
    pub const REMOTE_DISCONNECT: u64 = 4;
    pub const REMOTE_FETCH: u64 = 5;
    pub const SERVER_SIDE_EMIT: u64 = 6;
    pub const BROADCAST: u64 = 7;
    pub const BROADCAST_CLIENT_COUNT: u64 = 8;
    pub const BROADCAST_ACK: u64 = 9;
}

/// Socket.IO packet type EVENT as written by Node in the adapter's `packet.type`.
const PACKET_EVENT: u64 = 2;
const PACKET_BINARY_EVENT: u64 = 5;

/// Errors decoding a message read from Redis.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("msgpack: {0}")]
    Msgpack(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bad shape: {0}")]
    Shape(&'static str),
}

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------

/// The channel names of one namespace, built once (no formatting on the hot path).
#[derive(Debug, Clone)]
pub struct Channels {
    /// `key#nsp#` — broadcasts to all / several rooms; also the prefix of room channels.
    pub broadcast: String,
    /// `key-request#nsp#`
    pub request: String,
    /// `key-response#nsp#`
    pub response: String,
    /// `key-response#nsp#<uid>#` (Node peers with `publishOnSpecificResponseChannel`).
    pub specific_response: String,
}

/// What a channel a message arrived on means for one namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum ChannelKind<'a> {
    /// `key#nsp#` (None) or `key#nsp#room#` (Some(room)).
    Broadcast(Option<&'a str>),
    Request,
    Response,
}

impl Channels {
    pub fn new(key: &str, nsp: &str, uid: &str) -> Self {
        let response = format!("{key}-response#{nsp}#");
        Self {
            broadcast: format!("{key}#{nsp}#"),
            request: format!("{key}-request#{nsp}#"),
            specific_response: format!("{response}{uid}#"),
            response,
        }
    }

    /// `key#nsp#room#`
    pub fn room(&self, room: &str) -> String {
        let mut s = String::with_capacity(self.broadcast.len() + room.len() + 1);
        s.push_str(&self.broadcast);
        s.push_str(room);
        s.push('#');
        s
    }

    pub fn classify<'a>(&self, channel: &'a str) -> Option<ChannelKind<'a>> {
        if channel == self.request {
            return Some(ChannelKind::Request);
        }
        if channel.starts_with(&self.response) {
            return Some(ChannelKind::Response);
        }
        let rest = channel.strip_prefix(&self.broadcast)?;
        if rest.is_empty() {
            return Some(ChannelKind::Broadcast(None));
        }
        rest.strip_suffix('#')
            .map(|r| ChannelKind::Broadcast(Some(r)))
    }
}

/// Private channel this adapter publishes to itself to prove its subscriber connection works.
/// Not part of the Node protocol (Node peers never subscribe to it).
pub fn probe_channel(key: &str, uid: &str) -> String {
    format!("{key}-probe#{uid}#")
}

// ---------------------------------------------------------------------------------------------
// Common pieces
// ---------------------------------------------------------------------------------------------

/// Broadcast flags of the Node adapter's `opts.flags`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flags {
    pub volatile: bool,
    pub compress: Option<bool>,
    pub local: bool,
    pub timeout: Option<u64>,
}

/// `opts` of broadcasts and requests: `{rooms, except, flags}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Opts {
    pub rooms: Vec<String>,
    pub except: Vec<String>,
    pub flags: Flags,
}

/// A Socket.IO packet in Node's adapter form: `{type, data, nsp, id?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePacket {
    pub kind: u64,
    /// `[event, ...args]` with binaries as msgpack bin values.
    pub data: Mp,
    /// Missing means "/".
    pub nsp: Option<String>,
    pub id: Option<i64>,
}

impl NodePacket {
    pub fn nsp(&self) -> &str {
        self.nsp.as_deref().unwrap_or("/")
    }
    pub fn is_event(&self) -> bool {
        self.kind == PACKET_EVENT || self.kind == PACKET_BINARY_EVENT
    }
}

fn get<'a>(map: &'a [(Mp, Mp)], key: &str) -> Option<&'a Mp> {
    map.iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn as_map(v: &Mp) -> Option<&[(Mp, Mp)]> {
    match v {
        Mp::Map(m) => Some(m.as_slice()),
        _ => None,
    }
}

fn str_list(v: Option<&Mp>) -> Vec<String> {
    match v {
        Some(Mp::Array(a)) => a
            .iter()
            .filter_map(|x| match x {
                Mp::String(s) => s.as_str().map(str::to_owned),
                // Node allows numeric rooms; they are keyed by their decimal form.
                Mp::Integer(i) => Some(i.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn truthy(v: Option<&Mp>) -> bool {
    matches!(v, Some(Mp::Boolean(true)))
}

fn int(v: Option<&Mp>) -> Option<i64> {
    match v {
        Some(Mp::Integer(i)) => i.as_i64(),
        Some(Mp::F64(f)) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

fn string(v: Option<&Mp>) -> Option<String> {
    match v {
        Some(Mp::String(s)) => s.as_str().map(str::to_owned),
        Some(Mp::Integer(i)) => Some(i.to_string()),
        _ => None,
    }
}

fn decode_opts(v: Option<&Mp>) -> Opts {
    let Some(m) = v.and_then(as_map) else {
        return Opts::default();
    };
    let flags = get(m, "flags").and_then(as_map).map(|f| Flags {
        volatile: truthy(get(f, "volatile")),
        compress: match get(f, "compress") {
            Some(Mp::Boolean(b)) => Some(*b),
            _ => None,
        },
        local: truthy(get(f, "local")),
        timeout: int(get(f, "timeout")).and_then(|t| u64::try_from(t).ok()),
    });
    Opts {
        rooms: str_list(get(m, "rooms")),
        except: str_list(get(m, "except")),
        flags: flags.unwrap_or_default(),
    }
}

fn encode_opts(opts: &Opts, with_flags: bool) -> Mp {
    let list = |l: &[String]| Mp::Array(l.iter().map(|s| Mp::from(s.as_str())).collect());
    let mut m = vec![
        (Mp::from("rooms"), list(&opts.rooms)),
        (Mp::from("except"), list(&opts.except)),
    ];
    if with_flags {
        let mut f = Vec::new();
        if opts.flags.volatile {
            f.push((Mp::from("volatile"), Mp::Boolean(true)));
        }
        if let Some(c) = opts.flags.compress {
            f.push((Mp::from("compress"), Mp::Boolean(c)));
        }
        if let Some(t) = opts.flags.timeout {
            f.push((Mp::from("timeout"), Mp::from(t)));
        }
        m.push((Mp::from("flags"), Mp::Map(f)));
    }
    Mp::Map(m)
}

fn decode_packet(v: Option<&Mp>) -> Result<NodePacket, WireError> {
    let m = v.and_then(as_map).ok_or(WireError::Shape("packet"))?;
    let kind = int(get(m, "type"))
        .and_then(|t| u64::try_from(t).ok())
        .ok_or(WireError::Shape("packet.type"))?;
    Ok(NodePacket {
        kind,
        data: get(m, "data").cloned().unwrap_or(Mp::Nil),
        nsp: string(get(m, "nsp")),
        id: int(get(m, "id")),
    })
}

fn encode_packet(p: &NodePacket) -> Mp {
    let mut m = vec![
        (Mp::from("type"), Mp::from(p.kind)),
        (Mp::from("data"), p.data.clone()),
    ];
    if let Some(nsp) = &p.nsp {
        m.push((Mp::from("nsp"), Mp::from(nsp.as_str())));
    }
    if let Some(id) = p.id {
        m.push((Mp::from("id"), Mp::from(id)));
    }
    Mp::Map(m)
}

fn to_msgpack(v: &Mp) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut buf, v);
    buf
}

fn read_any(bytes: &[u8]) -> Result<Mp, WireError> {
    if bytes.first() == Some(&b'{') {
        // serde_json straight into an rmpv value: one tree for both encodings.
        Ok(serde_json::from_slice::<Mp>(bytes)?)
    } else {
        let mut rd = bytes;
        rmpv::decode::read_value(&mut rd).map_err(|e| WireError::Msgpack(e.to_string()))
    }
}

fn to_json_bytes(v: &Mp) -> Vec<u8> {
    serde_json::to_vec(&mp_to_json(v)).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Broadcasts: msgpack [uid, packet, opts]
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastMessage {
    pub uid: String,
    pub packet: NodePacket,
    pub opts: Opts,
}

pub fn decode_broadcast(bytes: &[u8]) -> Result<BroadcastMessage, WireError> {
    let mut rd = bytes;
    let v = rmpv::decode::read_value(&mut rd).map_err(|e| WireError::Msgpack(e.to_string()))?;
    let Mp::Array(a) = v else {
        return Err(WireError::Shape("broadcast is not an array"));
    };
    if a.len() < 3 {
        return Err(WireError::Shape("broadcast array too short"));
    }
    Ok(BroadcastMessage {
        uid: string(a.first()).ok_or(WireError::Shape("uid"))?,
        packet: decode_packet(a.get(1))?,
        opts: decode_opts(a.get(2)),
    })
}

pub fn encode_broadcast(uid: &str, packet: &NodePacket, opts: &Opts) -> Vec<u8> {
    to_msgpack(&Mp::Array(vec![
        Mp::from(uid),
        encode_packet(packet),
        encode_opts(opts, true),
    ]))
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    AllRooms {
        uid: String,
        request_id: String,
    },
    /// Types 2 and 3. `opts` None is the legacy single-socket form `{sid, room}`.
    Join {
        leave: bool,
        opts: Option<Opts>,
        rooms: Vec<String>,
        sid: Option<String>,
    },
    Disconnect {
        opts: Option<Opts>,
        close: bool,
        sid: Option<String>,
    },
    Fetch {
        uid: String,
        request_id: String,
        opts: Opts,
    },
    ServerSideEmit {
        uid: Option<String>,
        request_id: Option<String>,
        data: Vec<serde_json::Value>,
    },
    BroadcastWithAck {
        uid: String,
        request_id: String,
        packet: NodePacket,
        opts: Opts,
    },
    Unknown(u64),
}

pub fn decode_request(bytes: &[u8]) -> Result<Request, WireError> {
    let v = read_any(bytes)?;
    let m = as_map(&v).ok_or(WireError::Shape("request is not a map"))?;
    let t = int(get(m, "type"))
        .and_then(|t| u64::try_from(t).ok())
        .ok_or(WireError::Shape("request.type"))?;
    let uid = || string(get(m, "uid")).unwrap_or_default();
    let rid = || string(get(m, "requestId")).ok_or(WireError::Shape("requestId"));
    let opts = || get(m, "opts").map(|o| decode_opts(Some(o)));
    Ok(match t {
        kind::ALL_ROOMS => Request::AllRooms {
            uid: uid(),
            request_id: rid()?,
        },
        kind::REMOTE_JOIN | kind::REMOTE_LEAVE => {
            let mut rooms = str_list(get(m, "rooms"));
            if let Some(r) = string(get(m, "room")) {
                rooms.push(r);
            }
            Request::Join {
                leave: t == kind::REMOTE_LEAVE,
                opts: opts(),
                rooms,
                sid: string(get(m, "sid")),
            }
        }
        kind::REMOTE_DISCONNECT => Request::Disconnect {
            opts: opts(),
            close: truthy(get(m, "close")),
            sid: string(get(m, "sid")),
        },
        kind::REMOTE_FETCH => Request::Fetch {
            uid: uid(),
            request_id: rid()?,
            opts: opts().unwrap_or_default(),
        },
        kind::SERVER_SIDE_EMIT => Request::ServerSideEmit {
            uid: string(get(m, "uid")),
            request_id: string(get(m, "requestId")),
            data: match get(m, "data") {
                Some(Mp::Array(a)) => a.iter().map(mp_to_json).collect(),
                _ => return Err(WireError::Shape("serverSideEmit data")),
            },
        },
        kind::BROADCAST => Request::BroadcastWithAck {
            uid: uid(),
            request_id: rid()?,
            packet: decode_packet(get(m, "packet"))?,
            opts: opts().unwrap_or_default(),
        },
        other => Request::Unknown(other),
    })
}

/// JSON `{uid, requestId, type:1}`
pub fn encode_all_rooms_request(uid: &str, request_id: &str) -> Vec<u8> {
    to_json_bytes(&Mp::Map(vec![
        (Mp::from("uid"), Mp::from(uid)),
        (Mp::from("requestId"), Mp::from(request_id)),
        (Mp::from("type"), Mp::from(kind::ALL_ROOMS)),
    ]))
}

/// JSON `{uid, requestId, type:5, opts:{rooms, except}}`
pub fn encode_fetch_request(uid: &str, request_id: &str, opts: &Opts) -> Vec<u8> {
    to_json_bytes(&Mp::Map(vec![
        (Mp::from("uid"), Mp::from(uid)),
        (Mp::from("requestId"), Mp::from(request_id)),
        (Mp::from("type"), Mp::from(kind::REMOTE_FETCH)),
        (Mp::from("opts"), encode_opts(opts, false)),
    ]))
}

/// JSON `{uid, type:2|3, opts:{rooms, except}, rooms}`
pub fn encode_join_request(uid: &str, leave: bool, opts: &Opts, rooms: &[String]) -> Vec<u8> {
    let t = if leave {
        kind::REMOTE_LEAVE
    } else {
        kind::REMOTE_JOIN
    };
    to_json_bytes(&Mp::Map(vec![
        (Mp::from("uid"), Mp::from(uid)),
        (Mp::from("type"), Mp::from(t)),
        (Mp::from("opts"), encode_opts(opts, false)),
        (
            Mp::from("rooms"),
            Mp::Array(rooms.iter().map(|r| Mp::from(r.as_str())).collect()),
        ),
    ]))
}

/// JSON `{uid, type:4, opts, close}`
pub fn encode_disconnect_request(uid: &str, opts: &Opts, close: bool) -> Vec<u8> {
    to_json_bytes(&Mp::Map(vec![
        (Mp::from("uid"), Mp::from(uid)),
        (Mp::from("type"), Mp::from(kind::REMOTE_DISCONNECT)),
        (Mp::from("opts"), encode_opts(opts, false)),
        (Mp::from("close"), Mp::Boolean(close)),
    ]))
}

/// JSON `{uid, type:6, data, requestId?}`
pub fn encode_server_side_emit(
    uid: &str,
    request_id: Option<&str>,
    data: &[serde_json::Value],
) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    m.insert("uid".into(), uid.into());
    if let Some(r) = request_id {
        m.insert("requestId".into(), r.into());
    }
    m.insert("type".into(), kind::SERVER_SIDE_EMIT.into());
    m.insert("data".into(), serde_json::Value::Array(data.to_vec()));
    serde_json::to_vec(&m).unwrap_or_default()
}

/// msgpack `{uid, requestId, type:7, packet, opts}`
pub fn encode_broadcast_ack_request(
    uid: &str,
    request_id: &str,
    packet: &NodePacket,
    opts: &Opts,
) -> Vec<u8> {
    to_msgpack(&Mp::Map(vec![
        (Mp::from("uid"), Mp::from(uid)),
        (Mp::from("requestId"), Mp::from(request_id)),
        (Mp::from("type"), Mp::from(kind::BROADCAST)),
        (Mp::from("packet"), encode_packet(packet)),
        (Mp::from("opts"), encode_opts(opts, true)),
    ]))
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// One socket in a fetchSockets response: `{id, handshake, rooms, data}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SocketInfo {
    pub id: String,
    pub handshake: serde_json::Value,
    pub rooms: Vec<String>,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    AllRooms {
        request_id: String,
        rooms: Vec<String>,
    },
    Fetch {
        request_id: String,
        sockets: Vec<SocketInfo>,
    },
    ServerSideEmit {
        request_id: String,
        data: serde_json::Value,
    },
    ClientCount {
        request_id: String,
        count: u64,
    },
    Ack {
        request_id: String,
        /// The first argument of the client's ack.
        packet: Mp,
    },
    /// Anything else with a requestId (legacy join/leave acknowledgements).
    Other {
        request_id: String,
    },
}

impl Response {
    pub fn request_id(&self) -> &str {
        match self {
            Response::AllRooms { request_id, .. }
            | Response::Fetch { request_id, .. }
            | Response::ServerSideEmit { request_id, .. }
            | Response::ClientCount { request_id, .. }
            | Response::Ack { request_id, .. }
            | Response::Other { request_id } => request_id,
        }
    }
}

pub fn decode_response(bytes: &[u8]) -> Result<Response, WireError> {
    let v = read_any(bytes)?;
    let m = as_map(&v).ok_or(WireError::Shape("response is not a map"))?;
    let request_id = string(get(m, "requestId")).ok_or(WireError::Shape("requestId"))?;
    let t = int(get(m, "type")).and_then(|t| u64::try_from(t).ok());
    Ok(match t {
        Some(kind::SERVER_SIDE_EMIT) => Response::ServerSideEmit {
            request_id,
            data: get(m, "data").map(mp_to_json).unwrap_or_default(),
        },
        Some(kind::BROADCAST_CLIENT_COUNT) => Response::ClientCount {
            request_id,
            count: int(get(m, "clientCount"))
                .and_then(|c| u64::try_from(c).ok())
                .ok_or(WireError::Shape("clientCount"))?,
        },
        Some(kind::BROADCAST_ACK) => Response::Ack {
            request_id,
            packet: get(m, "packet").cloned().unwrap_or(Mp::Nil),
        },
        _ => {
            if let Some(r) = get(m, "rooms") {
                Response::AllRooms {
                    request_id,
                    rooms: str_list(Some(r)),
                }
            } else if let Some(Mp::Array(list)) = get(m, "sockets") {
                let sockets = list
                    .iter()
                    .filter_map(|s| {
                        let sm = as_map(s)?;
                        Some(SocketInfo {
                            id: string(get(sm, "id"))?,
                            handshake: get(sm, "handshake").map(mp_to_json).unwrap_or_default(),
                            rooms: str_list(get(sm, "rooms")),
                            data: get(sm, "data").map(mp_to_json).unwrap_or_default(),
                        })
                    })
                    .collect();
                Response::Fetch {
                    request_id,
                    sockets,
                }
            } else {
                Response::Other { request_id }
            }
        }
    })
}

/// JSON `{requestId, rooms}`
pub fn encode_all_rooms_response(request_id: &str, rooms: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "requestId": request_id, "rooms": rooms }))
        .unwrap_or_default()
}

/// JSON `{requestId, sockets:[{id, handshake, rooms, data}]}`
pub fn encode_fetch_response(request_id: &str, sockets: &[SocketInfo]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "requestId": request_id, "sockets": sockets }))
        .unwrap_or_default()
}

/// JSON `{type:6, requestId, data}`
pub fn encode_server_side_emit_response(request_id: &str, data: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": kind::SERVER_SIDE_EMIT, "requestId": request_id, "data": data
    }))
    .unwrap_or_default()
}

/// JSON `{type:8, requestId, clientCount}`
pub fn encode_client_count_response(request_id: &str, count: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": kind::BROADCAST_CLIENT_COUNT, "requestId": request_id, "clientCount": count
    }))
    .unwrap_or_default()
}

/// msgpack `{type:9, requestId, packet}`
pub fn encode_ack_response(request_id: &str, packet: &Mp) -> Vec<u8> {
    to_msgpack(&Mp::Map(vec![
        (Mp::from("type"), Mp::from(kind::BROADCAST_ACK)),
        (Mp::from("requestId"), Mp::from(request_id)),
        (Mp::from("packet"), packet.clone()),
    ]))
}

// ---------------------------------------------------------------------------------------------
// socketioxide packet data <-> Node packet data
// ---------------------------------------------------------------------------------------------

/// Builds a Node `packet.data` value from socketioxide's JSON text with
/// `{"_placeholder":true,"num":N}` markers and its binary attachments.
pub fn sio_to_node_data(text: &str, bins: Option<&VecDeque<Bytes>>) -> Result<Mp, WireError> {
    let json: serde_json::Value = serde_json::from_str(text)?;
    Ok(json_to_mp(&json, bins))
}

fn json_to_mp(v: &serde_json::Value, bins: Option<&VecDeque<Bytes>>) -> Mp {
    use serde_json::Value as J;
    match v {
        J::Null => Mp::Nil,
        J::Bool(b) => Mp::Boolean(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                Mp::from(u)
            } else if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        J::String(s) => Mp::from(s.as_str()),
        J::Array(a) => Mp::Array(a.iter().map(|x| json_to_mp(x, bins)).collect()),
        J::Object(o) => {
            if let (Some(J::Bool(true)), Some(num)) = (o.get("_placeholder"), o.get("num"))
                && o.len() == 2
                && let Some(b) = num
                    .as_u64()
                    .and_then(|n| bins.and_then(|b| b.get(n as usize)))
            {
                return Mp::Binary(b.to_vec());
            }
            Mp::Map(
                o.iter()
                    .map(|(k, v)| (Mp::from(k.as_str()), json_to_mp(v, bins)))
                    .collect(),
            )
        }
    }
}

/// Turns a Node `packet.data` value into socketioxide's JSON text + binary attachments.
pub fn node_to_sio_data(v: &Mp) -> (String, VecDeque<Bytes>) {
    let mut bins = VecDeque::new();
    let json = mp_to_json_bins(v, &mut Some(&mut bins));
    (json.to_string(), bins)
}

/// msgpack value to JSON, binaries become base64-less placeholders dropped (used for request
/// fields that Node sends as JSON anyway).
pub fn mp_to_json(v: &Mp) -> serde_json::Value {
    mp_to_json_bins(v, &mut None)
}

fn mp_to_json_bins(v: &Mp, bins: &mut Option<&mut VecDeque<Bytes>>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Mp::Nil => J::Null,
        Mp::Boolean(b) => J::Bool(*b),
        Mp::Integer(i) => {
            if let Some(u) = i.as_u64() {
                J::from(u)
            } else {
                J::from(i.as_i64().unwrap_or_default())
            }
        }
        Mp::F32(f) => serde_json::Number::from_f64(f64::from(*f))
            .map(J::Number)
            .unwrap_or(J::Null),
        Mp::F64(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or(J::Null),
        Mp::String(s) => J::String(s.as_str().unwrap_or_default().to_owned()),
        Mp::Binary(b) => placeholder(b, bins),
        Mp::Array(a) => J::Array(a.iter().map(|x| mp_to_json_bins(x, bins)).collect()),
        Mp::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Mp::String(s) => s.as_str().unwrap_or_default().to_owned(),
                        other => other.to_string(),
                    };
                    (key, mp_to_json_bins(v, bins))
                })
                .collect(),
        ),
        // notepack: `undefined` is fixext1 type 0 with a zero byte.
        Mp::Ext(0, data) if data.len() == 1 && data[0] == 0 => J::Null,
        // notepack: ArrayBuffer / typed arrays are ext type 0.
        Mp::Ext(0, data) => placeholder(data, bins),
        // Dates: timestamp extension (-1) in notepack 3.
        Mp::Ext(-1, data) => timestamp_to_iso(data).map(J::String).unwrap_or(J::Null),
        Mp::Ext(_, _) => J::Null,
    }
}

fn placeholder(b: &[u8], bins: &mut Option<&mut VecDeque<Bytes>>) -> serde_json::Value {
    match bins {
        Some(list) => {
            let num = list.len();
            list.push_back(Bytes::copy_from_slice(b));
            serde_json::json!({ "_placeholder": true, "num": num })
        }
        None => serde_json::Value::Null,
    }
}

/// MessagePack timestamp extension -> ISO 8601 string (what `JSON.stringify(date)` gives).
fn timestamp_to_iso(d: &[u8]) -> Option<String> {
    let (secs, nanos): (i64, u32) = match d.len() {
        4 => (i64::from(u32::from_be_bytes(d.try_into().ok()?)), 0),
        8 => {
            let v = u64::from_be_bytes(d.try_into().ok()?);
            ((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32)
        }
        12 => (
            i64::from_be_bytes(d[4..12].try_into().ok()?),
            u32::from_be_bytes(d[0..4].try_into().ok()?),
        ),
        _ => return None,
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        nanos / 1_000_000
    ))
}

/// Builds the Node packet for an event whose socketioxide data is `text` + `bins`.
pub fn event_packet(nsp: &str, data: Mp) -> NodePacket {
    NodePacket {
        kind: PACKET_EVENT,
        data,
        nsp: Some(nsp.to_owned()),
        id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_emitter_vector_from_wire_md() {
        // emitter.to("room1").emit("hello","world")
        let mut b = Vec::new();
        b.extend(hex("93 a7"));
        b.extend(b"emitter");
        b.extend(hex("83 a4"));
        b.extend(b"type");
        b.push(0x02);
        b.extend(hex("a4"));
        b.extend(b"data");
        b.extend(hex("92 a5"));
        b.extend(b"hello");
        b.push(0xa5);
        b.extend(b"world");
        b.push(0xa3);
        b.extend(b"nsp");
        b.push(0xa1);
        b.extend(b"/");
        b.extend(hex("83 a5"));
        b.extend(b"rooms");
        b.extend(hex("91 a5"));
        b.extend(b"room1");
        b.push(0xa5);
        b.extend(b"flags");
        b.push(0x80);
        b.push(0xa6);
        b.extend(b"except");
        b.push(0x90);
        let m = decode_broadcast(&b).unwrap();
        assert_eq!(m.uid, "emitter");
        assert_eq!(m.packet.nsp(), "/");
        assert_eq!(m.opts.rooms, vec!["room1".to_string()]);
        let (text, bins) = node_to_sio_data(&m.packet.data);
        assert_eq!(text, r#"["hello","world"]"#);
        assert!(bins.is_empty());
    }

    #[test]
    fn binary_round_trip() {
        let mut bins = VecDeque::new();
        bins.push_back(Bytes::from_static(&[1, 2, 3]));
        let mp =
            sio_to_node_data(r#"["ev",{"_placeholder":true,"num":0},1.5]"#, Some(&bins)).unwrap();
        assert_eq!(
            mp,
            Mp::Array(vec![
                Mp::from("ev"),
                Mp::Binary(vec![1, 2, 3]),
                Mp::F64(1.5)
            ])
        );
        let (text, back) = node_to_sio_data(&mp);
        assert_eq!(text, r#"["ev",{"_placeholder":true,"num":0},1.5]"#);
        assert_eq!(back, bins);
    }

    #[test]
    fn ext0_and_undefined_and_date() {
        let v = Mp::Array(vec![
            Mp::Ext(0, vec![0]),
            Mp::Ext(0, vec![9, 9]),
            Mp::Ext(-1, 0u32.to_be_bytes().to_vec()),
        ]);
        let (text, bins) = node_to_sio_data(&v);
        assert_eq!(
            text,
            r#"[null,{"_placeholder":true,"num":0},"1970-01-01T00:00:00.000Z"]"#
        );
        assert_eq!(bins.len(), 1);
    }

    #[test]
    fn requests_round_trip() {
        let opts = Opts {
            rooms: vec!["a".into()],
            except: vec!["b".into()],
            flags: Flags::default(),
        };
        let r = decode_request(&encode_fetch_request("u1", "r1", &opts)).unwrap();
        assert_eq!(
            r,
            Request::Fetch {
                uid: "u1".into(),
                request_id: "r1".into(),
                opts: opts.clone()
            }
        );
        let p = event_packet("/", Mp::Array(vec![Mp::from("x")]));
        let r = decode_request(&encode_broadcast_ack_request("u1", "r2", &p, &opts)).unwrap();
        assert!(matches!(r, Request::BroadcastWithAck { request_id, .. } if request_id == "r2"));
        let r =
            decode_request(br#"{"type":2,"opts":{"rooms":[],"except":[]},"rooms":["x"]}"#).unwrap();
        assert!(matches!(r, Request::Join { leave: false, rooms, .. } if rooms == vec!["x"]));
        assert!(decode_request(b"\xc1garbage").is_err());
        assert!(decode_request(b"{not json").is_err());
    }

    #[test]
    fn responses_decode() {
        let r = decode_response(&encode_client_count_response("r", 3)).unwrap();
        assert_eq!(
            r,
            Response::ClientCount {
                request_id: "r".into(),
                count: 3
            }
        );
        let r = decode_response(&encode_ack_response("r", &Mp::from("ok"))).unwrap();
        assert!(matches!(r, Response::Ack { .. }));
        let r = decode_response(br#"{"requestId":"q","rooms":["a","b"]}"#).unwrap();
        assert_eq!(
            r,
            Response::AllRooms {
                request_id: "q".into(),
                rooms: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn channels_classify() {
        let c = Channels::new("socket.io", "/", "abc");
        assert_eq!(
            c.classify("socket.io#/#"),
            Some(ChannelKind::Broadcast(None))
        );
        assert_eq!(
            c.classify("socket.io#/#r1#"),
            Some(ChannelKind::Broadcast(Some("r1")))
        );
        assert_eq!(
            c.classify("socket.io-request#/#"),
            Some(ChannelKind::Request)
        );
        assert_eq!(
            c.classify("socket.io-response#/#abc#"),
            Some(ChannelKind::Response)
        );
        assert_eq!(c.classify("socket.io#/admin#"), None);
        assert_eq!(c.room("r1"), "socket.io#/#r1#");
    }
}
