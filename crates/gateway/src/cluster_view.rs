//! What the rest of the gateway asks of the cluster, behind one small trait: the single-node
//! implementation answers locally, the cluster's (`cluster::AdapterView`) asks the Redis
//! adapter. Built once, in the composition root (`server::serve`), and held by `Gateway`.
use futures_util::future::BoxFuture;

/// Every socket of the cluster in some rooms, flagged partial when a node did not answer.
pub type PresenceResult = Result<
    sio_redis_adapter::Collected<sio_redis_adapter::FetchedSocket>,
    sio_redis_adapter::Error,
>;

pub trait ClusterView: Send + Sync {
    /// Resolves once the adapter follows the namespace's local rooms (joins are acknowledged
    /// after this, so a message published right after reaches the new member from any node).
    fn sync_rooms(&self, nsp: String) -> BoxFuture<'static, ()>;

    /// Like `sync_rooms` for rooms a local socket just joined, at the cost of those rooms
    /// only (a join or connection must not cost O(local sockets)).
    fn ensure_rooms(&self, nsp: String, rooms: Vec<String>) -> BoxFuture<'static, ()>;

    /// Local membership of `nsp` changed without `ensure_rooms` (a socket's own-id room at
    /// connection, a leave, a disconnection): the adapter reconciles its room channels on its
    /// next tick. O(1), no I/O. Every such change must be reported: without a report the
    /// adapter reconciles only every `ROOM_FULL_SYNC` (cluster/mod.rs), its safety net.
    fn rooms_changed(&self, nsp: &str);

    /// Presence straight from the adapter, Node.js peers' sockets included (socketioxide's
    /// `fetch_sockets` cannot hold their 20-character ids). `None` on a single node, where
    /// socketioxide answers.
    fn presence(
        &self,
        nsp: String,
        rooms: Vec<String>,
    ) -> Option<BoxFuture<'static, PresenceResult>>;
}

/// A node without `--redis`: nothing to wait for, presence is socketioxide's.
pub struct SingleNode;

impl ClusterView for SingleNode {
    fn sync_rooms(&self, _nsp: String) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    fn ensure_rooms(&self, _nsp: String, _rooms: Vec<String>) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    fn rooms_changed(&self, _nsp: &str) {}

    fn presence(
        &self,
        _nsp: String,
        _rooms: Vec<String>,
    ) -> Option<BoxFuture<'static, PresenceResult>> {
        None
    }
}
