//! The broadcast message of the classic adapter: msgpack `[uid, packet, opts]`, where `packet`
//! is the Node Socket.IO packet `{type, data:[event, ...args], nsp, id?}` and `opts` the
//! broadcast options `{rooms, except, flags}`.
//!
//! Encoding writes msgpack directly (no intermediate value tree for the envelope) and keeps the
//! key order Node uses, so a message decoded from a Node peer re-encodes to the same bytes.

use rmpv::Value;

use crate::error::{Result, WireError};
use crate::fields::Fields;
use crate::msgpack::{self, write_array_len, write_map_len, write_str, write_uint};

/// Event names Socket.IO reserves for its own lifecycle: the Node server's `RESERVED_EVENTS`
/// (socket.io 4 `socket-types.ts`), which `@socket.io/redis-emitter` refuses to emit as well.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Socket.IO packet types (socket.io-parser `PacketType`).
pub mod packet_type {
    /// CONNECT
    pub const CONNECT: u8 = 0;
    /// DISCONNECT
    pub const DISCONNECT: u8 = 1;
    /// EVENT: what every broadcast carries, binary or not.
    pub const EVENT: u8 = 2;
    /// ACK
    pub const ACK: u8 = 3;
    /// CONNECT_ERROR
    pub const CONNECT_ERROR: u8 = 4;
    /// BINARY_EVENT
    pub const BINARY_EVENT: u8 = 5;
    /// BINARY_ACK
    pub const BINARY_ACK: u8 = 6;
}

/// The Node Socket.IO packet as it travels through Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// See [`packet_type`]; broadcasts use [`packet_type::EVENT`].
    pub packet_type: u8,
    /// `[event, ...args]` for events; binary arguments are `Value::Binary`.
    pub data: Value,
    /// The namespace; a missing `nsp` means `/`.
    pub nsp: Option<String>,
    /// The ack id (only on packets that expect acknowledgements).
    pub id: Option<i64>,
}

impl Packet {
    /// An EVENT packet `{type:2, data:[event, ...args], nsp}`.
    pub fn event(nsp: impl Into<String>, event: impl Into<String>, args: Vec<Value>) -> Self {
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::from(event.into()));
        data.extend(args);
        Self::with_data(nsp, Value::Array(data))
    }

    /// An EVENT packet whose `data` (`[event, ...args]`) is already built.
    pub fn with_data(nsp: impl Into<String>, data: Value) -> Self {
        Self {
            packet_type: packet_type::EVENT,
            data,
            nsp: Some(nsp.into()),
            id: None,
        }
    }

    /// The namespace, `/` when absent (as the Node adapter treats it).
    pub fn nsp(&self) -> &str {
        self.nsp.as_deref().unwrap_or("/")
    }

    /// The event name: the first element of `data`, when it is a string.
    pub fn event_name(&self) -> Option<&str> {
        match &self.data {
            Value::Array(items) => items.first().and_then(Value::as_str),
            _ => None,
        }
    }

    /// Append the msgpack encoding (`{type, data, nsp, id?}`).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = 2 + usize::from(self.nsp.is_some()) + usize::from(self.id.is_some());
        write_map_len(out, len);
        write_str(out, "type");
        write_uint(out, u64::from(self.packet_type));
        write_str(out, "data");
        msgpack::encode_into(&self.data, out);
        if let Some(nsp) = &self.nsp {
            write_str(out, "nsp");
            write_str(out, nsp);
        }
        if let Some(id) = self.id {
            write_str(out, "id");
            msgpack::write_int(out, id);
        }
    }

    /// Read a packet out of a decoded value.
    pub fn from_value(v: Value) -> Result<Self> {
        let mut f = Fields::from_value(v, "packet")?;
        let packet_type = f.int("type")?.unwrap_or(i64::from(packet_type::EVENT));
        let packet_type = u8::try_from(packet_type)
            .map_err(|_| WireError::shape(format!("packet type {packet_type} out of range")))?;
        Ok(Self {
            packet_type,
            data: f.take("data").unwrap_or(Value::Nil),
            nsp: f.string("nsp")?,
            id: f.int("id")?,
        })
    }

    /// The packet as a dynamic value (key order as [`Packet::encode_into`]).
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            (Value::from("type"), Value::from(self.packet_type)),
            (Value::from("data"), self.data.clone()),
        ];
        if let Some(nsp) = &self.nsp {
            m.push((Value::from("nsp"), Value::from(nsp.as_str())));
        }
        if let Some(id) = self.id {
            m.push((Value::from("id"), Value::from(id)));
        }
        Value::Map(m)
    }
}

/// One broadcast flag, to remember the order flags were set in (Node writes object keys in
/// insertion order, so `volatile.compress(x)` and `compress(x).volatile` differ on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `volatile`
    Volatile,
    /// `compress`
    Compress,
    /// `local`
    Local,
    /// `broadcast`
    Broadcast,
    /// `binary`
    Binary,
    /// `timeout` (milliseconds)
    Timeout,
    /// `expectSingleResponse`
    ExpectSingleResponse,
}

impl Flag {
    const ALL: [Flag; 7] = [
        Flag::Volatile,
        Flag::Compress,
        Flag::Local,
        Flag::Broadcast,
        Flag::Binary,
        Flag::Timeout,
        Flag::ExpectSingleResponse,
    ];

    /// The key Node uses.
    pub fn key(self) -> &'static str {
        match self {
            Flag::Volatile => "volatile",
            Flag::Compress => "compress",
            Flag::Local => "local",
            Flag::Broadcast => "broadcast",
            Flag::Binary => "binary",
            Flag::Timeout => "timeout",
            Flag::ExpectSingleResponse => "expectSingleResponse",
        }
    }

    fn from_key(k: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == k)
    }
}

/// `opts.flags` of a broadcast. Unknown flags are ignored.
#[derive(Debug, Clone, Default)]
pub struct BroadcastFlags {
    /// Drop the packet for clients that are not ready to receive it.
    pub volatile: Option<bool>,
    /// Ask for per-message compression.
    pub compress: Option<bool>,
    /// Only on the emitting node (such broadcasts never reach Redis from Node).
    pub local: Option<bool>,
    /// Set by `socket.broadcast`.
    pub broadcast: Option<bool>,
    /// Legacy binary hint.
    pub binary: Option<bool>,
    /// Ack timeout in milliseconds (broadcast with acks).
    pub timeout: Option<u64>,
    /// Set by socket.io for `emitWithAck` to a single socket.
    pub expect_single_response: Option<bool>,
    // Key order on the wire, fixed-size so decoding allocates nothing for it.
    order: [Option<Flag>; 7],
}

impl PartialEq for BroadcastFlags {
    /// Equal when the flag values are equal; the remembered key order does not count.
    fn eq(&self, o: &Self) -> bool {
        self.volatile == o.volatile
            && self.compress == o.compress
            && self.local == o.local
            && self.broadcast == o.broadcast
            && self.binary == o.binary
            && self.timeout == o.timeout
            && self.expect_single_response == o.expect_single_response
    }
}

impl BroadcastFlags {
    /// Set a boolean flag (or `timeout` from `value` as milliseconds), remembering the order.
    pub fn set(&mut self, flag: Flag, value: u64) {
        let b = value != 0;
        match flag {
            Flag::Volatile => self.volatile = Some(b),
            Flag::Compress => self.compress = Some(b),
            Flag::Local => self.local = Some(b),
            Flag::Broadcast => self.broadcast = Some(b),
            Flag::Binary => self.binary = Some(b),
            Flag::Timeout => self.timeout = Some(value),
            Flag::ExpectSingleResponse => self.expect_single_response = Some(b),
        }
        self.note(flag);
    }

    fn note(&mut self, flag: Flag) {
        if self.order.contains(&Some(flag)) {
            return;
        }
        if let Some(slot) = self.order.iter_mut().find(|s| s.is_none()) {
            *slot = Some(flag);
        }
    }

    fn is_set(&self, flag: Flag) -> bool {
        match flag {
            Flag::Volatile => self.volatile.is_some(),
            Flag::Compress => self.compress.is_some(),
            Flag::Local => self.local.is_some(),
            Flag::Broadcast => self.broadcast.is_some(),
            Flag::Binary => self.binary.is_some(),
            Flag::Timeout => self.timeout.is_some(),
            Flag::ExpectSingleResponse => self.expect_single_response.is_some(),
        }
    }

    /// The set flags in wire order: first those whose order is known, then the rest.
    pub fn iter_set(&self) -> impl Iterator<Item = Flag> + '_ {
        let known = self
            .order
            .iter()
            .flatten()
            .copied()
            .filter(|f| self.is_set(*f));
        let rest = Flag::ALL
            .into_iter()
            .filter(|f| self.is_set(*f) && !self.order.contains(&Some(*f)));
        known.chain(rest)
    }

    /// Append the msgpack map.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        write_map_len(out, self.iter_set().count());
        for flag in self.iter_set() {
            write_str(out, flag.key());
            let b = |v: Option<bool>| if v == Some(true) { 0xc3 } else { 0xc2 };
            match flag {
                Flag::Volatile => out.push(b(self.volatile)),
                Flag::Compress => out.push(b(self.compress)),
                Flag::Local => out.push(b(self.local)),
                Flag::Broadcast => out.push(b(self.broadcast)),
                Flag::Binary => out.push(b(self.binary)),
                Flag::Timeout => write_uint(out, self.timeout.unwrap_or(0)),
                Flag::ExpectSingleResponse => out.push(b(self.expect_single_response)),
            }
        }
    }

    /// The flags as a dynamic value (wire key order), for the JSON encodings.
    pub fn to_value(&self) -> Value {
        Value::Map(
            self.iter_set()
                .map(|flag| {
                    let b = |v: Option<bool>| Value::Boolean(v == Some(true));
                    let v = match flag {
                        Flag::Volatile => b(self.volatile),
                        Flag::Compress => b(self.compress),
                        Flag::Local => b(self.local),
                        Flag::Broadcast => b(self.broadcast),
                        Flag::Binary => b(self.binary),
                        Flag::Timeout => Value::from(self.timeout.unwrap_or(0)),
                        Flag::ExpectSingleResponse => b(self.expect_single_response),
                    };
                    (Value::from(flag.key()), v)
                })
                .collect(),
        )
    }

    /// Read flags from a decoded value (`null`/absent means none).
    pub fn from_value(v: Value) -> Result<Self> {
        let mut flags = Self::default();
        let entries = match v {
            Value::Nil => return Ok(flags),
            Value::Map(m) => m,
            _ => return Err(WireError::shape("flags is not an object")),
        };
        for (k, v) in entries {
            let Some(flag) = k.as_str().and_then(Flag::from_key) else {
                continue;
            };
            match (flag, v) {
                (_, Value::Nil) => {}
                (Flag::Timeout, v) => {
                    let ms = crate::fields::int(&v, "timeout")?;
                    flags.set(Flag::Timeout, u64::try_from(ms).unwrap_or(0));
                }
                (f, Value::Boolean(b)) => flags.set(f, u64::from(b)),
                // JS truthiness for odd encoders: any other value counts as set.
                (f, _) => flags.set(f, 1),
            }
        }
        Ok(flags)
    }
}

/// Key order of the options object: the adapter writes `{rooms, except, flags}`, the emitter
/// `{rooms, flags, except}`. Kept so re-encoding is byte-identical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptsLayout {
    /// `{rooms, except, flags}` (`@socket.io/redis-adapter`).
    #[default]
    Adapter,
    /// `{rooms, flags, except}` (`@socket.io/redis-emitter`).
    Emitter,
}

/// `opts` of a broadcast: target rooms (empty = everyone), excluded rooms, flags.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BroadcastOptions {
    /// Union of these rooms; empty means every socket of the namespace.
    pub rooms: Vec<String>,
    /// Sockets in any of these rooms are skipped.
    pub except: Vec<String>,
    /// Flags.
    pub flags: BroadcastFlags,
    /// Key order on the wire (not part of the meaning).
    pub layout: OptsLayout,
}

impl BroadcastOptions {
    /// Append the msgpack map in `self.layout` order.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        write_map_len(out, 3);
        write_str(out, "rooms");
        write_rooms(out, &self.rooms);
        match self.layout {
            OptsLayout::Adapter => {
                write_str(out, "except");
                write_rooms(out, &self.except);
                write_str(out, "flags");
                self.flags.encode_into(out);
            }
            OptsLayout::Emitter => {
                write_str(out, "flags");
                self.flags.encode_into(out);
                write_str(out, "except");
                write_rooms(out, &self.except);
            }
        }
    }

    /// The options as a dynamic value (in `self.layout` key order).
    pub fn to_value(&self) -> Value {
        let rooms =
            |r: &[String]| Value::Array(r.iter().map(|x| Value::from(x.as_str())).collect());
        let (r, e, f) = (
            (Value::from("rooms"), rooms(&self.rooms)),
            (Value::from("except"), rooms(&self.except)),
            (Value::from("flags"), self.flags.to_value()),
        );
        Value::Map(match self.layout {
            OptsLayout::Adapter => vec![r, e, f],
            OptsLayout::Emitter => vec![r, f, e],
        })
    }

    /// Read options from a decoded value.
    pub fn from_value(v: Value) -> Result<Self> {
        let mut f = Fields::from_value(v, "opts")?;
        let layout = {
            let pos = |k: &str| f.0.iter().position(|(key, _)| key.as_str() == Some(k));
            match (pos("flags"), pos("except")) {
                (Some(fl), Some(ex)) if fl < ex => OptsLayout::Emitter,
                _ => OptsLayout::Adapter,
            }
        };
        Ok(Self {
            rooms: f.rooms("rooms")?,
            except: f.rooms("except")?,
            flags: BroadcastFlags::from_value(f.take("flags").unwrap_or(Value::Nil))?,
            layout,
        })
    }
}

/// An array of string room names read in place (None: not that shape, use the generic path).
fn read_rooms(r: &mut msgpack::Reader<'_>) -> Option<Vec<String>> {
    let n = r.array_len()?;
    let mut rooms = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        rooms.push(r.str_ref()?.to_owned());
    }
    Some(rooms)
}

fn write_rooms(out: &mut Vec<u8>, rooms: &[String]) {
    write_array_len(out, rooms.len());
    for r in rooms {
        write_str(out, r);
    }
}

/// uid the Node emitter (and `sio-emitter`) puts in broadcasts.
pub const EMITTER_UID: &str = "emitter";

/// `[uid, packet, opts]`, published on `key#nsp#` or `key#nsp#room#`.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastMessage {
    /// The sending adapter's uid (receivers drop their own), `"emitter"` for emitters.
    pub uid: String,
    /// The packet to deliver.
    pub packet: Packet,
    /// Who gets it.
    pub opts: BroadcastOptions,
}

impl BroadcastMessage {
    /// Append the msgpack bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        write_array_len(out, 3);
        write_str(out, &self.uid);
        self.packet.encode_into(out);
        self.opts.encode_into(out);
    }

    /// The msgpack bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out);
        out
    }

    /// Decode a message received on a broadcast or room channel.
    ///
    /// Runs once per message per node. The envelope (uid, packet keys, options) is read in
    /// place; only `data` becomes a value tree (its allocations are the price of a dynamic
    /// payload). Anything unusual falls back to the generic path, which gives the same result
    /// or the precise error.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if let Some(msg) = Self::decode_envelope_in_place(bytes) {
            return Ok(msg);
        }
        Self::decode_generic(bytes)
    }

    fn decode_envelope_in_place(bytes: &[u8]) -> Option<Self> {
        let mut r = msgpack::Reader::new(bytes);
        if r.array_len()? != 3 {
            return None;
        }
        let uid = r.str_ref()?.to_owned();
        let mut packet = Packet {
            packet_type: packet_type::EVENT,
            data: Value::Nil,
            nsp: None,
            id: None,
        };
        for _ in 0..r.map_len()? {
            match r.str_ref()? {
                "type" => {
                    packet.packet_type =
                        r.any(1).ok()?.as_u64().and_then(|t| u8::try_from(t).ok())?
                }
                "data" => packet.data = r.any(1).ok()?,
                "nsp" => packet.nsp = Some(r.str_ref()?.to_owned()),
                "id" => packet.id = Some(r.any(1).ok()?.as_i64()?),
                _ => return None,
            }
        }
        let mut opts = BroadcastOptions::default();
        let mut seen_flags = false;
        for _ in 0..r.map_len()? {
            match r.str_ref()? {
                "rooms" => opts.rooms = read_rooms(&mut r)?,
                "except" => {
                    opts.except = read_rooms(&mut r)?;
                    if seen_flags {
                        opts.layout = OptsLayout::Emitter;
                    }
                }
                "flags" => {
                    seen_flags = true;
                    opts.flags = BroadcastFlags::from_value(r.any(1).ok()?).ok()?;
                }
                _ => return None,
            }
        }
        r.at_end().then_some(Self { uid, packet, opts })
    }

    fn decode_generic(bytes: &[u8]) -> Result<Self> {
        let items = match msgpack::decode(bytes)? {
            Value::Array(items) if items.len() >= 2 => items,
            _ => return Err(WireError::shape("broadcast is not [uid, packet, opts]")),
        };
        let mut it = items.into_iter();
        let uid = crate::fields::string(it.next().unwrap_or(Value::Nil), "uid")?;
        let packet = Packet::from_value(it.next().unwrap_or(Value::Nil))?;
        let opts = match it.next() {
            None | Some(Value::Nil) => BroadcastOptions::default(),
            Some(v) => BroadcastOptions::from_value(v)?,
        };
        Ok(Self { uid, packet, opts })
    }
}

/// The sender uid of a broadcast `[uid, packet, opts]`, read without decoding the rest, so a
/// node drops its own broadcasts (they come back on the namespace channel) without paying for a
/// full decode. `None` when the bytes do not start like a broadcast; callers then fall back to
/// [`BroadcastMessage::decode`], which gives the precise error.
pub fn peek_broadcast_uid(bytes: &[u8]) -> Option<&str> {
    let mut r = msgpack::Reader::new(bytes);
    if r.array_len()? != 3 {
        return None;
    }
    r.str_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_uid_of_broadcasts_and_malformed_input() {
        for uid in [
            "AAAAAAAAAAAAAAA1".to_owned(),
            "x".repeat(40),
            "y".repeat(300),
        ] {
            let msg = BroadcastMessage {
                uid: uid.clone(),
                packet: Packet::event("/", "ev", vec![Value::from(1)]),
                opts: BroadcastOptions::default(),
            }
            .encode();
            assert_eq!(peek_broadcast_uid(&msg), Some(uid.as_str()));
            // Every truncation either still holds the whole uid or yields None, never a panic.
            for cut in 0..msg.len() {
                let got = peek_broadcast_uid(&msg[..cut]);
                assert!(got.is_none() || got == Some(uid.as_str()), "cut {cut}");
            }
        }
        for bad in [
            &b""[..],
            b"\x93",
            b"\x93\xa5ab",
            b"\x92\xa1a",
            b"\x94\xa1a",
            b"\xdc\x00",
            b"\xdc\x00\x03\xd9",
            b"\xdc\x00\x03\xda\xff\xff",
            b"\x93\x01\xa1a",
            b"\x93\xa2\xff\xfe",
            b"{}",
        ] {
            assert_eq!(peek_broadcast_uid(bad), None, "{bad:?}");
        }
        // array16(3), as some encoders write even small arrays.
        assert_eq!(
            peek_broadcast_uid(b"\xdc\x00\x03\xa2ab\x80\x80"),
            Some("ab")
        );
    }

    #[test]
    fn wire_md_example() {
        let msg = BroadcastMessage {
            uid: EMITTER_UID.into(),
            packet: Packet::event("/", "hello", vec![Value::from("world")]),
            opts: BroadcastOptions {
                rooms: vec!["room1".into()],
                layout: OptsLayout::Emitter,
                ..Default::default()
            },
        };
        let mut expected = vec![0x93, 0xa7];
        expected.extend_from_slice(b"emitter");
        expected.extend_from_slice(b"\x83\xa4type\x02\xa4data\x92\xa5hello\xa5world\xa3nsp\xa1/");
        expected.extend_from_slice(b"\x83\xa5rooms\x91\xa5room1\xa5flags\x80\xa6except\x90");
        assert_eq!(msg.encode(), expected);
        assert_eq!(BroadcastMessage::decode(&expected).unwrap(), msg);
        assert_eq!(
            BroadcastMessage::decode(&expected).unwrap().opts.layout,
            OptsLayout::Emitter
        );
    }

    /// The in-place envelope reader takes every broadcast recorded from Node and agrees with the
    /// generic decoder on it.
    #[test]
    fn in_place_envelope_agrees_with_generic_decoder() {
        let dir =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wire");
        let mut n = 0;
        for file in ["emitter.json", "adapter.json"] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            for case in doc["cases"].as_array().unwrap() {
                for m in case["messages"].as_array().unwrap() {
                    let hex = m["hex"].as_str().unwrap();
                    let bytes: Vec<u8> = (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                        .collect();
                    if !m["channel"].as_str().unwrap().contains("#/")
                        || bytes[0] == b'{'
                        || m["channel"].as_str().unwrap().contains("-re")
                    {
                        continue;
                    }
                    let fast = BroadcastMessage::decode_envelope_in_place(&bytes)
                        .expect("fast path taken");
                    let generic = BroadcastMessage::decode_generic(&bytes).unwrap();
                    assert_eq!(fast, generic);
                    assert_eq!(fast.opts.layout, generic.opts.layout);
                    if case["name"] != "huge_integral_number" {
                        assert_eq!(fast.encode(), bytes);
                    }
                    n += 1;
                }
            }
        }
        assert!(n >= 20, "{n} broadcasts checked");
        // Odd but valid shapes take the generic path and still decode.
        let odd = msgpack::encode(&Value::Array(vec![
            Value::from("u"),
            Value::Map(vec![
                (Value::from("data"), Value::Array(vec![])),
                (Value::from("nsp"), Value::Nil),
            ]),
            Value::Map(vec![(
                Value::from("rooms"),
                Value::Array(vec![Value::from(5)]),
            )]),
        ]));
        assert!(BroadcastMessage::decode_envelope_in_place(&odd).is_none());
        let m = BroadcastMessage::decode(&odd).unwrap();
        assert_eq!(
            (m.packet.nsp(), m.opts.rooms.as_slice()),
            ("/", &["5".to_owned()][..])
        );
    }

    #[test]
    fn flag_order_is_kept() {
        let mut f = BroadcastFlags::default();
        f.set(Flag::Compress, 0);
        f.set(Flag::Volatile, 1);
        let mut out = Vec::new();
        f.encode_into(&mut out);
        assert_eq!(out, b"\x82\xa8compress\xc2\xa8volatile\xc3");
        let back = BroadcastFlags::from_value(msgpack::decode(&out).unwrap()).unwrap();
        let mut again = Vec::new();
        back.encode_into(&mut again);
        assert_eq!(again, out);
    }
}
