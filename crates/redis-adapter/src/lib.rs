//! A [socketioxide](https://docs.rs/socketioxide) adapter over [fred](https://docs.rs/fred)
//! that speaks the wire protocol of the Node.js
//! [`@socket.io/redis-adapter`](https://github.com/socketio/socket.io-redis-adapter) 8.x
//! classic PUB/SUB adapter (`createAdapter`) or, with [`PubSubMode::Sharded`], its sharded
//! adapter (`createShardedAdapter`: `SSUBSCRIBE`/`SPUBLISH` on Redis 7 / Redis Cluster,
//! socket.io-adapter's ClusterAdapter messages, `dynamic` | `dynamic-private` | `static`
//! subscription modes).
//!
//! Node.js socket.io servers and socketioxide servers using this adapter share one cluster:
//! broadcasts (to all, to rooms, with `except`), broadcasts with acks, `socketsJoin` /
//! `socketsLeave`, `disconnectSockets`, `fetchSockets`, `allRooms` and `serverSideEmit` work
//! in both directions, and [`@socket.io/redis-emitter`](https://github.com/socketio/socket.io-redis-emitter)
//! reaches sockets on every node unchanged.
//!
//! Beyond the Node adapter:
//! - **Per-room subscriptions**: a node subscribes to `key#nsp#` and the request/response
//!   channels, and to a room's channel `key#nsp#room#` only while it has local members in that
//!   room (socket ids included: Node emitters address single sockets through them).
//! - **Robustness**: reconnect with exponential backoff, resubscription after a Redis restart,
//!   a periodic probe of the subscriber connection (publish on a private channel and expect to
//!   receive it; force a reconnection otherwise), bounded queues, requests that never wait past
//!   their timeout, and counters for everything dropped ([`AdapterStats`]).
//!
//! # Example
//! ```no_run
//! use socketioxide::{SocketIo, extract::SocketRef, adapter::Adapter};
//! use sio_redis_adapter::{AdapterConfig, RedisAdapter, RedisAdapterCtr};
//!
//! async fn on_connect<A: Adapter>(socket: SocketRef<A>) {
//!     socket.join("room1");
//! }
//!
//! # async fn doc_main() -> Result<(), Box<dyn std::error::Error>> {
//! let ctr = RedisAdapterCtr::connect("redis://127.0.0.1:6379", AdapterConfig::default()).await?;
//! let handle = ctr.handle(); // stats, health, cluster-wide fetchSockets, serverSideEmit
//! let (layer, io) = SocketIo::builder()
//!     .with_adapter::<RedisAdapter<_>>(ctr)
//!     .build_layer();
//! io.ns("/", on_connect).await?;
//! io.to("room1").emit("hello", "world").await?;
//! assert!(handle.health().redis_up);
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! # Limits
//! - Only the common (text) parser's packets can be carried (Node's format is text + binaries).
//! - Node socket ids (20 chars) do not fit socketioxide's `Sid` (16): `io.fetch_sockets()`
//!   returns a Node peer's sockets under stand-in ids starting with `_-_`, which `emit`,
//!   `join`, `leave` and `disconnect` on the `RemoteSocket` turn back into the real id.
//!   [`RedisAdapterHandle::fetch_sockets`] returns every socket with its real id.
//! - Acks of remote clients carry `Sid::ZERO`: the Node protocol does not say who answered.
//! - socketioxide joins rooms without telling the adapter: room channels follow membership
//!   within [`AdapterConfig::room_sync_interval`], or at once after
//!   [`RedisAdapterHandle::sync_rooms`] (or [`RedisAdapterHandle::ensure_rooms`] for joins).
//!   An application that reports its sockets' joins, leaves and disconnections
//!   ([`RedisAdapterHandle::rooms_changed`]) can lengthen
//!   [`AdapterConfig::room_full_sync_interval`] so that local memberships are not listed at
//!   every tick.

// Layers, bottom up; a module imports only from layers below its own (checked by hand and
// by script when the split was made; there is no cycle):
//  0. mode, config, error, stats, warn_limit, room_watch
//  1. foreign (ids), requests, rooms, packets, server_side_emit, sharded (protocol
//     conversions), test_support
//  2. driver (the pub/sub seam), targets
//  3. pubsub (driver + the adapter's policies)
//  4. namespace (per-namespace state, the requests it sends)
//  5. registry (the namespaces, dispatch of received messages)
//  6. fred_driver, memory_driver (drivers feeding the registry), shared (`Core`);
//     6b. sharded_driver (uses fred_driver's connections)
//  7. ack_stream, local_ns
//  8. handle (`RedisAdapterHandle`), inbound (other nodes' messages), inbound_cluster
//     (the same in sharded mode)
//  9. ctr (`RedisAdapterCtr`, builds an instance)
// 10. adapter (outbound `CoreAdapter`)
// 11. this file (docs and re-exports), multi_node_tests
mod ack_stream;
mod adapter;
mod config;
mod ctr;
mod delivery_filter;
mod driver;
mod error;
mod foreign;
mod fred_driver;
mod handle;
mod inbound;
mod inbound_cluster;
mod local_ns;
#[cfg(test)]
mod memory_driver;
mod mode;
#[cfg(test)]
mod multi_node_tests;
mod namespace;
mod packets;
mod peer_budget;
mod pubsub;
mod registry;
mod requests;
mod room_watch;
mod rooms;
mod server_side_emit;
mod sharded;
mod sharded_driver;
mod shared;
mod socket_info;
mod stats;
mod targets;
#[cfg(test)]
mod test_support;
mod warn_limit;

pub use ack_stream::AckStream;
pub use adapter::{InitRes, RedisAdapter};
pub use config::{AdapterConfig, MAX_INBOUND_BYTES};
pub use ctr::RedisAdapterCtr;
pub use delivery_filter::DeliveryFilter;
pub use error::Error;
pub use handle::RedisAdapterHandle;
pub use mode::{PubSubMode, SubscriptionMode, room_has_channel};
pub use peer_budget::{ANSWER_BYTES_PER_SEC, MAX_ACK_TIMEOUT, MAX_PEER_ACKS};
pub use requests::Collected;
pub use room_watch::{RoomWatch, apply_add, apply_add_one, apply_del, apply_del_one};
pub use server_side_emit::{ServerSideEmit, ServerSideEmitHandler};
pub use sio_wire::FetchedSocket;
pub use socket_info::{SocketInfo, SocketInfoSource};
pub use stats::{AdapterStats, DropReason, Health, MsgType, StatsSnapshot};
