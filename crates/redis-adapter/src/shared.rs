//! Shared state of one adapter instance (every namespace): the link to Redis, the namespace
//! registry, the serverSideEmit handler and the stand-in ids of Node peers' sockets.

use std::sync::{Arc, OnceLock, RwLock};

use crate::{
    delivery_filter::DeliveryFilter, error::Error, foreign::ForeignIds, peer_budget::PeerBudget,
    pubsub::PubSub, registry::Registry, room_watch::RoomWatch,
    server_side_emit::ServerSideEmitHandler, socket_info::SocketInfoSource, stats::AdapterStats,
};

/// Shared state of one adapter instance (all namespaces).
pub(crate) struct Core {
    pub(crate) pubsub: PubSub,
    /// The counters (the same as `pubsub.stats`, at hand for the message paths).
    pub(crate) stats: Arc<AdapterStats>,
    pub(crate) namespaces: Arc<Registry>,
    pub(crate) sse_handler: RwLock<Option<ServerSideEmitHandler>>,
    /// Stand-in `Sid`s of Node peers' sockets returned by `fetch_sockets`.
    pub(crate) foreign: ForeignIds,
    /// Set once by the application; read lock-free per inbound broadcast.
    pub(crate) delivery_filter: OnceLock<Arc<dyn DeliveryFilter>>,
    /// Set once by the application; read per socket of a `fetchSockets` answer.
    pub(crate) socket_info: OnceLock<Arc<dyn SocketInfoSource>>,
    /// Set once by the application; read per operator join/leave applied here.
    pub(crate) room_watch: OnceLock<Arc<dyn RoomWatch>>,
    /// What answering other nodes' requests may cost (see `peer_budget`).
    pub(crate) peer_budget: PeerBudget,
}

impl Core {
    /// `namespaces` is the registry the driver of `pubsub` dispatches to.
    pub(crate) fn new(pubsub: PubSub, namespaces: Arc<Registry>) -> Arc<Self> {
        Arc::new(Self {
            stats: pubsub.stats.clone(),
            peer_budget: PeerBudget::new(
                pubsub.config.max_peer_acks,
                pubsub.config.peer_answer_rate,
            ),
            pubsub,
            namespaces,
            sse_handler: RwLock::new(None),
            foreign: ForeignIds::default(),
            delivery_filter: OnceLock::new(),
            socket_info: OnceLock::new(),
            room_watch: OnceLock::new(),
        })
    }

    /// At most one warning per second from the message paths.
    pub(crate) fn warn_allowed(&self) -> bool {
        self.pubsub.warn_allowed()
    }

    /// PUBLISH through the driver (fails fast while Redis is down; failures counted).
    pub(crate) async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), Error> {
        self.pubsub.publish(channel, payload).await
    }
}
