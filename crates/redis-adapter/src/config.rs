//! Tunables of the adapter. The gateway maps its own config onto this struct; the adapter
//! never reads files or the environment itself.

use std::time::Duration;

use crate::mode::PubSubMode;

/// Default of [`AdapterConfig::max_inbound_bytes`]: 8 MiB.
pub const MAX_INBOUND_BYTES: usize = 8 << 20;

/// Adapter settings. `Default` matches `@socket.io/redis-adapter` where Node has an equivalent.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Channel prefix (`key` option of the Node adapter).
    pub key: String,
    /// How long fetchSockets / allRooms / serverSideEmit wait for other nodes (Node: 5000 ms).
    pub request_timeout: Duration,
    /// Capacity of each namespace's inbound queue (messages beyond it are dropped and counted).
    pub inbound_queue: usize,
    /// Capacity of fred's pub/sub broadcast channel.
    pub subscriber_buffer: usize,
    /// Capacity of the per-request response queue (acks of a broadcast with acks).
    pub response_queue: usize,
    /// How often local room membership is compared with the subscribed room channels.
    /// socketioxide joins rooms without telling the adapter, so this bounds how long a fresh
    /// member can miss a room broadcast from another node; call
    /// [`RedisAdapterHandle::sync_rooms`](crate::RedisAdapterHandle::sync_rooms) to close it at once.
    pub room_sync_interval: Duration,
    /// How often that comparison runs when nobody reported a change. At every tick of
    /// `room_sync_interval` by default (each tick lists every local membership: O(local
    /// sockets + memberships), 5 times a second at the defaults). An application that reports
    /// every membership change it makes with
    /// [`RedisAdapterHandle::rooms_changed`](crate::RedisAdapterHandle::rooms_changed) (or
    /// [`ensure_rooms`](crate::RedisAdapterHandle::ensure_rooms) for joins) can set it much
    /// longer: the comparison then runs on the next tick after a report, and this remains a
    /// safety net. The adapter reports the changes it applies itself (socketsJoin/Leave from
    /// any node).
    pub room_full_sync_interval: Duration,
    /// How often the subscriber connection is probed (publish to a private channel, expect it back).
    pub probe_interval: Duration,
    /// How long a probe may take before the subscriber is declared dead and reconnected.
    pub probe_timeout: Duration,
    /// Reconnect backoff: first delay.
    pub reconnect_min_delay: Duration,
    /// Reconnect backoff: maximum delay. Short (fred adds up to 100 ms of jitter to each delay,
    /// so many nodes do not retry in step): after an outage of any length the subscriptions
    /// are back within about this long of Redis accepting connections.
    pub reconnect_max_delay: Duration,
    /// Timeout of each Redis command (publish, PUBSUB NUMSUB, SUBSCRIBE).
    pub command_timeout: Duration,
    /// This node's name, given with its sockets in fetchSockets answers (the gateway's
    /// `--node-id`), so any node can say where a socket lives. Node peers ignore it.
    pub node_name: Option<String>,
    /// Classic or sharded pub/sub (and, sharded, which rooms get a channel).
    pub pubsub: PubSubMode,
    /// Acks awaited at once for other nodes' broadcasts-with-ack; past it a request is
    /// delivered without acks (see `peer_budget`).
    pub max_peer_acks: u64,
    /// Bytes per second of answers to other nodes' requests (burst twice that); past it
    /// requests are not answered (see `peer_budget`).
    pub peer_answer_rate: f64,
    /// Longest message accepted on the adapter's channels; longer ones are dropped before
    /// decoding and counted (`adapter_dropped_total{reason="too_large"}`). Anyone who can
    /// PUBLISH there sends them, and decoding takes up to ~40 times a message's bytes. Redis
    /// itself disconnects a pub/sub client whose output buffer passes 32 MB (its default
    /// `client-output-buffer-limit pubsub`), so messages near that size do not travel anyway.
    pub max_inbound_bytes: usize,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            key: sio_wire::DEFAULT_KEY.to_owned(),
            request_timeout: Duration::from_millis(5000),
            inbound_queue: 4096,
            subscriber_buffer: 4096,
            response_queue: 1024,
            room_sync_interval: Duration::from_millis(200),
            room_full_sync_interval: Duration::from_millis(200),
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(2),
            reconnect_min_delay: Duration::from_millis(50),
            reconnect_max_delay: Duration::from_millis(250),
            command_timeout: Duration::from_secs(3),
            node_name: None,
            pubsub: PubSubMode::Classic,
            max_peer_acks: crate::peer_budget::MAX_PEER_ACKS,
            peer_answer_rate: crate::peer_budget::ANSWER_BYTES_PER_SEC,
            max_inbound_bytes: MAX_INBOUND_BYTES,
        }
    }
}
