//! sio-wire: the Redis wire formats of the Socket.IO ecosystem, shared by the Rust adapter,
//! the emitter and the gateway so that channel names, message types and encodings live in
//! exactly one place.
//!
//! Compatible with `@socket.io/redis-adapter` 8.x and `@socket.io/redis-emitter` 5.x (msgpack
//! as notepack.io 3 writes it), and able to read python-socketio's Redis manager messages.
//! Pure: no I/O, no Redis client, no socketioxide. Every decoder returns [`WireError`] on
//! malformed input and never panics.
//!
//! - [`channels`]: channel names and parsing them back.
//! - [`msgpack`]: the notepack dialect (encode byte-identical to Node, decode its ext types).
//! - [`json`]: JSON for the dynamic value (requests/responses, JSON.stringify conventions).
//! - [`packet`]: the broadcast message `[uid, packet, opts]`.
//! - [`request`]: request/response types 0–9.
//! - [`cluster`]: the sharded adapter's ClusterAdapter messages (types 1–13).
//! - [`event_data`]: Node packet data ⇄ socketioxide's JSON-with-placeholders form.
//! - [`python`]: python-socketio Redis manager messages (decode only).
//! - [`socket_id`]: the shape of socket ids (a socket's own room).
//! - [`history`]: room history (`--history`): the rules, the Redis Stream format, the mark.
//! - [`room_glob`]: room globs (room rules, history rules).
//! - [`duration`]: durations as options write them (`250ms`, `10s`, `2m`).

pub mod channels;
pub mod cluster;
pub mod duration;
pub mod error;
pub mod event_data;
mod fields;
pub mod history;
pub mod json;
pub mod msgpack;
pub mod packet;
mod placeholder;
pub mod python;
pub mod request;
pub mod room_glob;
pub mod socket_id;

pub use channels::{
    ChannelKind, DEFAULT_KEY, NamespaceChannels, ParsedChannel, parse_channel, probe_channel,
};
pub use cluster::{
    ClusterBody, ClusterMessage, SubscriptionMode, cluster_type, sharded_publish_channel,
};
pub use error::{Result, WireError};
pub use event_data::{
    PLACEHOLDER_KEY, PlaceholderJson, check_no_placeholders, check_no_placeholders_json,
    from_placeholder_json, into_placeholder_json, is_placeholder_shaped, to_placeholder_json,
};
pub use packet::{
    BroadcastFlags, BroadcastMessage, BroadcastOptions, EMITTER_UID, Flag, OptsLayout, Packet,
    RESERVED_EVENTS, packet_type, peek_broadcast_uid,
};
pub use python::{PY_DEFAULT_CHANNEL, PyManagerMessage, decode_py_message};
pub use request::{FetchedSocket, Request, Response, RoomsOpts, request_type};
/// The dynamic value used for packet data and every free-form field.
pub use rmpv::Value;
