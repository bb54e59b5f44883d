//! Which Redis pub/sub protocol the adapter speaks: the classic `@socket.io/redis-adapter`
//! protocol (PUBLISH/SUBSCRIBE, request/response channels) or the sharded one of its
//! `createShardedAdapter` (SPUBLISH/SSUBSCRIBE, socket.io-adapter's ClusterAdapter messages).

pub use sio_wire::SubscriptionMode;

/// The protocol on the wire. Both sides of one namespace must use the same one: a classic node
/// and a sharded node do not see each other's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PubSubMode {
    /// `PUBLISH`/`SUBSCRIBE` (Node's `createAdapter`). On a Redis Cluster every message is
    /// copied to every shard.
    #[default]
    Classic,
    /// `SPUBLISH`/`SSUBSCRIBE` (Node's `createShardedAdapter`, Redis >= 7): each channel lives on
    /// the shard that owns its slot. `SubscriptionMode` says which rooms get a channel.
    Sharded(SubscriptionMode),
}

impl PubSubMode {
    /// The subscription mode when sharded.
    pub fn sharded(self) -> Option<SubscriptionMode> {
        match self {
            PubSubMode::Classic => None,
            PubSubMode::Sharded(m) => Some(m),
        }
    }
}

/// Whether a room gets its own channel under `mode` (Node's `computeChannel`: a 20-character
/// name is taken for a Node socket id and is private in `dynamic` mode). socketioxide socket ids
/// (16 characters) are not taken for ids by Node publishers, so they get a channel in `dynamic`
/// mode too: a Node peer's `io.to(<our sid>)` is published on it.
pub fn room_has_channel(mode: SubscriptionMode, room: &str) -> bool {
    match mode {
        SubscriptionMode::Static => false,
        SubscriptionMode::Dynamic => !sio_wire::cluster::looks_like_socket_id(room),
        SubscriptionMode::DynamicPrivate => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_channels_follow_node_compute_channel() {
        use SubscriptionMode::*;
        let node_sid = "PGj3_-L0xWV7s5J0AAAA";
        let our_sid = "n0s0000000000000";
        assert!(room_has_channel(Dynamic, "red"));
        assert!(!room_has_channel(Dynamic, node_sid));
        assert!(room_has_channel(Dynamic, our_sid));
        assert!(room_has_channel(DynamicPrivate, node_sid));
        assert!(!room_has_channel(Static, "red"));
        assert_eq!(PubSubMode::default().sharded(), None);
    }
}
