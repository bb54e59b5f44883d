//! A [socketioxide](https://docs.rs/socketioxide) adapter over [fred](https://docs.rs/fred)
//! that speaks the wire protocol of the Node.js
//! [`@socket.io/redis-adapter`](https://github.com/socketio/socket.io-redis-adapter) 8.x
//! (classic PUB/SUB adapter).
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
//!   [`RedisAdapterHandle::sync_rooms`].

// Modules from the bottom up: each imports only from modules listed before it.
mod ack_stream;
mod adapter;
mod config;
mod driver;
mod error;
mod foreign;
mod fred_driver;
mod inbound;
mod local_ns;
#[cfg(test)]
mod memory_driver;
#[cfg(test)]
mod multi_node_tests;
mod namespace;
mod packets;
mod pubsub;
mod registry;
mod requests;
mod rooms;
mod server_side_emit;
mod shared;
mod stats;
mod targets;
#[cfg(test)]
mod test_support;
mod warn_limit;

use std::sync::Arc;

pub use ack_stream::AckStream;
pub use adapter::{InitRes, RedisAdapter};
pub use config::AdapterConfig;
pub use error::Error;
pub use requests::Collected;
pub use server_side_emit::{ServerSideEmit, ServerSideEmitHandler};
pub use sio_wire::FetchedSocket;
pub use stats::{AdapterStats, DropReason, Health, MsgType, StatsSnapshot};

use crate::{
    fred_driver::FredDriver, pubsub::PubSub, registry::Registry, shared::Core,
    warn_limit::LogLimiter,
};

/// The adapter's state (socketioxide `CoreAdapter::State`): the Redis connections shared by
/// every namespace. Pass it to `SocketIo::builder().with_adapter::<RedisAdapter<_>>(ctr)`.
#[derive(Clone)]
pub struct RedisAdapterCtr {
    core: Arc<Core>,
}

impl RedisAdapterCtr {
    /// Connects a publisher and a subscriber client to `url`, as parsed by
    /// `fred::types::config::Config::from_url`: `redis://`, `rediss://`,
    /// `redis-sentinel://host:port/db?sentinelServiceName=name`, `redis-cluster://host:port`.
    /// Fails if Redis cannot be reached now (the caller decides whether to retry); later
    /// outages are reconnected with exponential backoff.
    pub async fn connect(url: &str, config: AdapterConfig) -> Result<Self, Error> {
        let stats = Arc::new(AdapterStats::default());
        let log = Arc::new(LogLimiter::default());
        let registry = Arc::new(Registry::new(stats.clone(), log.clone()));
        let driver =
            FredDriver::connect(url, &config, stats.clone(), log.clone(), registry.clone()).await?;
        let pubsub = PubSub::new(config, stats, log, Arc::new(driver));
        Ok(Self {
            core: Core::new(pubsub, registry),
        })
    }

    /// A handle for stats, health and cluster operations beyond socketioxide's API.
    pub fn handle(&self) -> RedisAdapterHandle {
        RedisAdapterHandle {
            core: self.core.clone(),
        }
    }
}

/// Cluster operations and observability of an adapter instance, usable from anywhere.
#[derive(Clone)]
pub struct RedisAdapterHandle {
    core: Arc<Core>,
}

impl RedisAdapterHandle {
    fn ns(&self, nsp: &str) -> Result<Arc<namespace::NsShared>, Error> {
        self.core
            .namespaces
            .get(nsp)
            .ok_or_else(|| Error::UnknownNamespace(nsp.to_owned()))
    }

    /// The counters (shared, live).
    pub fn stats(&self) -> &Arc<AdapterStats> {
        &self.core.stats
    }

    /// Redis connected, subscriber alive.
    pub fn health(&self) -> Health {
        self.core.stats.health()
    }

    /// Both connections are connected right now (no caching).
    pub fn redis_up(&self) -> bool {
        self.core.pubsub.is_up()
    }

    /// The last subscriber probe succeeded.
    pub fn subscriber_alive(&self) -> bool {
        self.core.stats.health().subscriber_alive
    }

    /// Nodes listening on the namespace (`PUBSUB NUMSUB`, this node included).
    pub async fn server_count(&self, nsp: &str) -> Result<usize, Error> {
        let ns = self.ns(nsp)?;
        self.core.pubsub.server_count(ns.channels.request()).await
    }

    /// fetchSockets across the cluster, Node peers' sockets included. `complete()` is false
    /// when some node did not answer within the request timeout.
    pub async fn fetch_sockets(
        &self,
        nsp: &str,
        rooms: &[String],
        except: &[String],
    ) -> Result<Collected<FetchedSocket>, Error> {
        let ns = self.ns(nsp)?;
        let opts = sio_wire::RoomsOpts {
            rooms: rooms.to_vec(),
            except: except.to_vec(),
        };
        ns.fetch(&self.core.pubsub, &opts, true).await
    }

    /// The id a socket has on the wire: the real id of a Node peer's socket that
    /// `io.fetch_sockets()` returned under a stand-in `Sid`, the id itself otherwise.
    pub fn socket_id(&self, sid: socketioxide_core::Sid) -> String {
        self.core.foreign.wire_id(sid.as_str())
    }

    /// allRooms across the cluster.
    pub async fn all_rooms(&self, nsp: &str) -> Result<Collected<String>, Error> {
        self.ns(nsp)?.all_rooms(&self.core.pubsub).await
    }

    /// serverSideEmit(`[event, ...args]`) to the other nodes, without ack.
    pub async fn server_side_emit(
        &self,
        nsp: &str,
        data: &[serde_json::Value],
    ) -> Result<(), Error> {
        self.ns(nsp)?
            .server_side_emit(&self.core.pubsub, data)
            .await
    }

    /// serverSideEmit with ack: one answer per other node, partial after the request timeout.
    pub async fn server_side_emit_with_ack(
        &self,
        nsp: &str,
        data: &[serde_json::Value],
    ) -> Result<Collected<serde_json::Value>, Error> {
        self.ns(nsp)?
            .server_side_emit_with_ack(&self.core.pubsub, data)
            .await
    }

    /// Sets the handler of serverSideEmit from other nodes. Its return value answers a request
    /// with ack; without a handler (or a `None` answer) such requests are answered with `null`.
    pub fn on_server_side_emit(
        &self,
        handler: impl Fn(ServerSideEmit) -> Option<serde_json::Value> + Send + Sync + 'static,
    ) {
        *self
            .core
            .sse_handler
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(handler));
    }

    /// Brings the room-channel subscriptions of `nsp` in line with local membership now
    /// (e.g. right after `socket.join`, before acknowledging the join to a client).
    pub async fn sync_rooms(&self, nsp: &str) -> Result<(), Error> {
        self.ns(nsp)?.sync_rooms(&self.core.pubsub).await
    }

    /// Room channels currently subscribed for `nsp`.
    pub async fn subscribed_room_count(&self, nsp: &str) -> Result<usize, Error> {
        Ok(self.ns(nsp)?.subscribed_rooms().await)
    }
}
