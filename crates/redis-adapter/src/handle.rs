//! [`RedisAdapterHandle`]: stats, health and cluster operations beyond socketioxide's API,
//! usable from anywhere (HTTP handlers, metrics, background tasks).

use std::sync::Arc;

use crate::{
    error::Error,
    namespace::NsShared,
    requests::Collected,
    server_side_emit::ServerSideEmit,
    shared::Core,
    stats::{AdapterStats, Health},
};
use sio_wire::FetchedSocket;

/// Cluster operations and observability of an adapter instance, usable from anywhere.
#[derive(Clone)]
pub struct RedisAdapterHandle {
    core: Arc<Core>,
}

impl RedisAdapterHandle {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    fn ns(&self, nsp: &str) -> Result<Arc<NsShared>, Error> {
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
        self.core.pubsub.server_count(ns.count_channel()).await
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

    /// Installs the hook called before each broadcast from another node is delivered here (see
    /// [`DeliveryFilter`](crate::DeliveryFilter)); only the first call takes effect (false after).
    pub fn set_delivery_filter(&self, filter: Arc<dyn crate::DeliveryFilter>) -> bool {
        self.core.delivery_filter.set(filter).is_ok()
    }

    /// Installs what this node tells other nodes about its sockets in `fetchSockets` answers
    /// (see [`SocketInfoSource`](crate::SocketInfoSource)); only the first call takes effect.
    pub fn set_socket_info(&self, source: Arc<dyn crate::SocketInfoSource>) -> bool {
        self.core.socket_info.set(source).is_ok()
    }

    /// Installs the hook told of the joins and leaves applied here by broadcast operators
    /// (see [`RoomWatch`](crate::RoomWatch)); only the first call takes effect.
    pub fn set_room_watch(&self, watch: Arc<dyn crate::RoomWatch>) -> bool {
        self.core.room_watch.set(watch).is_ok()
    }

    /// Brings the room-channel subscriptions of `nsp` in line with local membership now
    /// (e.g. right after `socket.join`, before acknowledging the join to a client).
    pub async fn sync_rooms(&self, nsp: &str) -> Result<(), Error> {
        self.ns(nsp)?.sync_rooms(&self.core.pubsub).await
    }

    /// Reports that local membership of `nsp` changed (a socket's own join, leave or
    /// disconnect, which socketioxide applies without telling the adapter): the room channels
    /// are reconciled on the next tick of [`AdapterConfig::room_sync_interval`](crate::AdapterConfig::room_sync_interval),
    /// even when [`AdapterConfig::room_full_sync_interval`](crate::AdapterConfig::room_full_sync_interval)
    /// is long. O(1) and without I/O, so it may be called on every connection and disconnection.
    pub fn rooms_changed(&self, nsp: &str) {
        if let Ok(ns) = self.ns(nsp) {
            ns.mark_rooms_changed();
        }
    }

    /// Ticks of the room sync task still owed to reported changes of `nsp` (tests).
    #[cfg(test)]
    pub(crate) fn rooms_changed_ticks(&self, nsp: &str) -> u8 {
        self.ns(nsp).map_or(0, |ns| ns.rooms_changed_ticks())
    }

    /// Subscribes the channels of `rooms` just joined by local sockets of `nsp` (at the cost of
    /// those rooms only; see [`sync_rooms`](Self::sync_rooms) for the full reconciliation).
    pub async fn ensure_rooms(&self, nsp: &str, rooms: &[String]) -> Result<(), Error> {
        self.ns(nsp)?.ensure_rooms(&self.core.pubsub, rooms).await
    }

    /// Room channels currently subscribed for `nsp`.
    pub async fn subscribed_room_count(&self, nsp: &str) -> Result<usize, Error> {
        Ok(self.ns(nsp)?.subscribed_rooms().await)
    }

    /// The channels this node is subscribed to (namespace, response, room and probe channels),
    /// per primary `host:port` of the cluster's slot map in sharded mode; classic mode gives one
    /// entry, `classic`, with every channel.
    pub fn shard_subscriptions(&self) -> Vec<(String, usize)> {
        self.core.pubsub.shard_subscriptions()
    }

    /// The protocol this adapter speaks.
    pub fn pubsub_mode(&self) -> crate::PubSubMode {
        self.core.pubsub.config.pubsub
    }
}
