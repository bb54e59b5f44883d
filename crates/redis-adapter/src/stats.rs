//! Counters and health flags of the adapter, lock-free so the hot path only does relaxed atomic
//! adds. The gateway exports them as Prometheus metrics; the test example serves them as JSON.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Kind of adapter message, used as the `type` label of the per-type counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum MsgType {
    Broadcast = 0,
    AllRooms = 1,
    SocketsJoin = 2,
    SocketsLeave = 3,
    DisconnectSockets = 4,
    FetchSockets = 5,
    ServerSideEmit = 6,
    BroadcastWithAck = 7,
    Response = 8,
    Unknown = 9,
}

impl MsgType {
    /// Number of variants (size of the counter arrays).
    pub const COUNT: usize = 10;
    /// Every variant, in index order.
    pub const ALL: [MsgType; Self::COUNT] = [
        MsgType::Broadcast,
        MsgType::AllRooms,
        MsgType::SocketsJoin,
        MsgType::SocketsLeave,
        MsgType::DisconnectSockets,
        MsgType::FetchSockets,
        MsgType::ServerSideEmit,
        MsgType::BroadcastWithAck,
        MsgType::Response,
        MsgType::Unknown,
    ];

    /// Stable label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Broadcast => "broadcast",
            MsgType::AllRooms => "all_rooms",
            MsgType::SocketsJoin => "sockets_join",
            MsgType::SocketsLeave => "sockets_leave",
            MsgType::DisconnectSockets => "disconnect_sockets",
            MsgType::FetchSockets => "fetch_sockets",
            MsgType::ServerSideEmit => "server_side_emit",
            MsgType::BroadcastWithAck => "broadcast_with_ack",
            MsgType::Response => "response",
            MsgType::Unknown => "unknown",
        }
    }
}

/// Why an inbound message or an outbound action was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// The fred pub/sub broadcast channel lagged (messages overwritten before being read).
    SubscriberLagged = 0,
    /// A namespace's bounded inbound queue was full.
    QueueFull = 1,
    /// A publish was refused because Redis is down, or failed.
    PublishFailed = 2,
    /// A response arrived for a request that already completed or timed out.
    LateResponse = 3,
    /// Packet data socketioxide produced that the Node format cannot carry (e.g. msgpack parser).
    Unsupported = 4,
    /// A remote broadcast could not be handed to a local socket (its buffer full, or closed).
    LocalDelivery = 5,
    /// A peer's request was refused its answer or its acks: over the budget of what other
    /// nodes' requests may cost this node (see `peer_budget`).
    RequestRefused = 6,
    /// A message on the adapter's channels longer than
    /// [`AdapterConfig::max_inbound_bytes`](crate::AdapterConfig::max_inbound_bytes), dropped
    /// before decoding.
    TooLarge = 7,
}

impl DropReason {
    /// Number of variants.
    pub const COUNT: usize = 8;
    /// Every variant, in index order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::SubscriberLagged,
        DropReason::QueueFull,
        DropReason::PublishFailed,
        DropReason::LateResponse,
        DropReason::Unsupported,
        DropReason::LocalDelivery,
        DropReason::RequestRefused,
        DropReason::TooLarge,
    ];
    /// Stable label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::SubscriberLagged => "subscriber_lagged",
            DropReason::QueueFull => "queue_full",
            DropReason::PublishFailed => "publish_failed",
            DropReason::LateResponse => "late_response",
            DropReason::Unsupported => "unsupported",
            DropReason::LocalDelivery => "local_delivery",
            DropReason::RequestRefused => "request_refused",
            DropReason::TooLarge => "too_large",
        }
    }
}

/// Atomic counters shared by every namespace of one adapter instance.
#[derive(Debug, Default)]
pub struct AdapterStats {
    published: [AtomicU64; MsgType::COUNT],
    received: [AtomicU64; MsgType::COUNT],
    request_timeouts: [AtomicU64; MsgType::COUNT],
    dropped: [AtomicU64; DropReason::COUNT],
    decode_errors: AtomicU64,
    reconnects: AtomicU64,
    resubscriptions: AtomicU64,
    probe_failures: AtomicU64,
    room_channels: AtomicU64,
    delivered: AtomicU64,
    redis_up: AtomicBool,
    subscriber_alive: AtomicBool,
    subscriber_broken: AtomicBool,
}

impl AdapterStats {
    pub(crate) fn published(&self, t: MsgType) {
        self.published[t as usize].fetch_add(1, Relaxed);
    }
    pub(crate) fn received(&self, t: MsgType) {
        self.received[t as usize].fetch_add(1, Relaxed);
    }
    pub(crate) fn request_timeout(&self, t: MsgType) {
        self.request_timeouts[t as usize].fetch_add(1, Relaxed);
    }
    pub(crate) fn dropped(&self, r: DropReason, n: u64) {
        self.dropped[r as usize].fetch_add(n, Relaxed);
    }
    pub(crate) fn decode_error(&self) -> u64 {
        self.decode_errors.fetch_add(1, Relaxed) + 1
    }
    pub(crate) fn reconnect(&self) {
        self.reconnects.fetch_add(1, Relaxed);
    }
    pub(crate) fn resubscribe(&self) {
        self.resubscriptions.fetch_add(1, Relaxed);
    }
    pub(crate) fn probe_failure(&self) {
        self.probe_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn add_room_channels(&self, added: usize, removed: usize) {
        self.room_channels.fetch_add(added as u64, Relaxed);
        self.room_channels.fetch_sub(removed as u64, Relaxed);
    }
    pub(crate) fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Relaxed);
    }
    pub(crate) fn set_redis_up(&self, up: bool) {
        self.redis_up.store(up, Relaxed);
    }
    pub(crate) fn set_subscriber_alive(&self, alive: bool) {
        self.subscriber_alive.store(alive, Relaxed);
    }
    pub(crate) fn set_subscriber_broken(&self, broken: bool) {
        self.subscriber_broken.store(broken, Relaxed);
    }

    /// Deliveries this node wrote to its own sockets for broadcasts of other nodes and emitters
    /// (one per receiving socket; failed sends are `dropped_count(LocalDelivery)`).
    pub fn delivered_count(&self) -> u64 {
        self.delivered.load(Relaxed)
    }

    /// Messages published, by type.
    pub fn published_count(&self, t: MsgType) -> u64 {
        self.published[t as usize].load(Relaxed)
    }
    /// Messages received (after decoding), by type.
    pub fn received_count(&self, t: MsgType) -> u64 {
        self.received[t as usize].load(Relaxed)
    }
    /// Requests that did not get all their answers before the timeout, by type.
    pub fn request_timeout_count(&self, t: MsgType) -> u64 {
        self.request_timeouts[t as usize].load(Relaxed)
    }
    /// Dropped messages, by reason.
    pub fn dropped_count(&self, r: DropReason) -> u64 {
        self.dropped[r as usize].load(Relaxed)
    }
    /// Messages read from the adapter's channels that could not be decoded.
    pub fn decode_error_count(&self) -> u64 {
        self.decode_errors.load(Relaxed)
    }
    /// Reconnections of either Redis connection.
    pub fn reconnect_count(&self) -> u64 {
        self.reconnects.load(Relaxed)
    }
    /// Resubscriptions of every shard channel after a cluster topology change (sharded mode).
    pub fn resubscription_count(&self) -> u64 {
        self.resubscriptions.load(Relaxed)
    }
    /// Subscriber probes that failed (each one forces a reconnection of the subscriber).
    pub fn probe_failure_count(&self) -> u64 {
        self.probe_failures.load(Relaxed)
    }
    /// Per-room (and per-socket-id) channels currently subscribed, all namespaces.
    pub fn room_channel_count(&self) -> u64 {
        self.room_channels.load(Relaxed)
    }

    /// The health view: is Redis reachable, does the subscriber really receive.
    pub fn health(&self) -> Health {
        Health {
            redis_up: self.redis_up.load(Relaxed),
            subscriber_alive: self.subscriber_alive.load(Relaxed),
            subscriber_broken: self.subscriber_broken.load(Relaxed),
        }
    }

    /// A plain copy of every counter (for JSON endpoints and tests).
    pub fn snapshot(&self) -> StatsSnapshot {
        let by_type = |a: &[AtomicU64; MsgType::COUNT]| {
            MsgType::ALL
                .iter()
                .map(|t| (t.as_str(), a[*t as usize].load(Relaxed)))
                .collect()
        };
        StatsSnapshot {
            published: by_type(&self.published),
            received: by_type(&self.received),
            request_timeouts: by_type(&self.request_timeouts),
            dropped: DropReason::ALL
                .iter()
                .map(|r| (r.as_str(), self.dropped[*r as usize].load(Relaxed)))
                .collect(),
            decode_errors: self.decode_error_count(),
            reconnects: self.reconnect_count(),
            resubscriptions: self.resubscription_count(),
            probe_failures: self.probe_failure_count(),
            room_channels: self.room_channel_count(),
            delivered: self.delivered_count(),
            health: self.health(),
        }
    }
}

/// Health of the Redis side of the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Both Redis connections are connected.
    pub redis_up: bool,
    /// The last subscriber probe came back through Redis in time.
    pub subscriber_alive: bool,
    /// Redis took the last probe (PUBLISH answered) but this node's subscriber did not get it:
    /// the fault is this node's own, not Redis being down for everyone.
    pub subscriber_broken: bool,
}

impl Health {
    /// Ready to serve cluster traffic.
    pub fn is_ok(&self) -> bool {
        self.redis_up && self.subscriber_alive
    }
}

/// A copy of [`AdapterStats`] at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    pub published: std::collections::BTreeMap<&'static str, u64>,
    pub received: std::collections::BTreeMap<&'static str, u64>,
    pub request_timeouts: std::collections::BTreeMap<&'static str, u64>,
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
    pub decode_errors: u64,
    pub reconnects: u64,
    pub resubscriptions: u64,
    pub probe_failures: u64,
    pub room_channels: u64,
    pub delivered: u64,
    pub health: Health,
}
