//! The pub/sub seam: what the adapter needs from Redis, and nothing more.
//!
//! Everything above this trait (namespaces, requests, broadcasts) is written against it;
//! [`FredDriver`](crate::fred_driver::FredDriver) is the Redis implementation and
//! `MemoryBus` (tests only) lets several adapter instances ("nodes") share one in-process bus.

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::error::Error;

/// Redis pub/sub as the adapter uses it.
///
/// **Inbound**: a driver is built with the node's
/// [`Registry`](crate::registry::Registry) and hands every message received on a subscribed
/// channel to [`Registry::dispatch`](crate::registry::Registry::dispatch), in the order the
/// server delivered them, without blocking (dispatch only queues). Anything else that travels
/// on the subscriber connection and is the driver's own business (e.g. the fred driver's probe
/// channel) is filtered out before.
///
/// **Connection robustness** (reconnect with backoff, resubscription after a restart, probing
/// the subscriber, the `redis_up`/`subscriber_alive` flags and their counters) belongs to the
/// implementation: it is what differs between transports.
///
/// **Cost**: the adapter holds an `Arc<dyn Driver>`; each call is one dynamic call and one
/// boxed future. On the broadcast hot path that is one small allocation per PUBLISH (not per
/// socket), next to the encoded message and the channel name that a publish needs anyway.
///
/// **Sharded pub/sub** ([`ShardedDriver`](crate::sharded_driver::ShardedDriver)) is the second
/// implementation: `publish` is `SPUBLISH` (routed by fred to the channel's slot owner),
/// `subscribe`/`unsubscribe` are `SSUBSCRIBE`/`SUNSUBSCRIBE` grouped by slot, `server_count` is
/// `PUBSUB SHARDNUMSUB`. Channel names and the message format are not the driver's concern:
/// the namespace layer passes the names its protocol (classic or sharded) wants.
pub(crate) trait Driver: Send + Sync + 'static {
    /// PUBLISH `payload` on `channel`. Fails at once with [`Error::RedisDown`] while the
    /// connection is known to be down, so callers never wait on a dead connection.
    fn publish(&self, channel: String, payload: Bytes) -> BoxFuture<'_, Result<(), Error>>;

    /// SUBSCRIBE to `channels` (one command); kept across reconnections.
    fn subscribe(&self, channels: Vec<String>) -> BoxFuture<'_, Result<(), Error>>;

    /// UNSUBSCRIBE from `channels` (one command).
    fn unsubscribe(&self, channels: Vec<String>) -> BoxFuture<'_, Result<(), Error>>;

    /// Subscribers of `channel` across the deployment, this node included (`PUBSUB NUMSUB`).
    /// The adapter subscribes every node to a namespace's request channel, so this counts the
    /// nodes serving it.
    fn server_count<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<usize, Error>>;

    /// Both directions are connected right now (no caching).
    fn is_up(&self) -> bool;

    /// The channels this node is subscribed to, per shard: sharded drivers count per primary
    /// (`host:port`, from the client's cached slot map); the classic driver reports all its
    /// channels under `classic`; the memory driver nothing.
    fn shard_subscriptions(&self) -> Vec<(String, usize)> {
        Vec::new()
    }
}
