//! One Redis client factory for the gateway's own Redis users: the node registry
//! (`cluster::registry`), the upstream Stream sink (`upstream::stream`) and the python-socketio
//! subscriber (`pysio`). Connection and command timeouts, the bounded queue of commands while
//! disconnected, and the reconnect policy are set here, once. The Redis adapter keeps its own
//! set-up (`sio_redis_adapter`'s fred driver): that crate must not depend on the gateway; its
//! reconnect policy is the same.
//!
//! Reconnection: 50 ms doubling to 250 ms, plus fred's jitter (up to 100 ms), for ever. A Redis
//! that comes back is used again within about a third of a second, whatever the outage length,
//! and many nodes do not retry in step.
use std::time::Duration;

use fred::{
    clients::{Client, SubscriberClient},
    types::{
        Builder,
        config::{Config as FredConfig, ReconnectPolicy},
    },
};

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default timeout of every command (callers may bound a call tighter).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Commands queued while disconnected; past it they fail at once instead of piling up.
pub const MAX_OFFLINE_QUEUE: usize = 10_000;
const RECONNECT_MIN_MS: u32 = 50;
const RECONNECT_MAX_MS: u32 = 250;

/// A Redis URL that fred cannot use, or a client it cannot build.
#[derive(Debug, thiserror::Error)]
pub enum RedisClientError {
    #[error("invalid Redis URL {url}: {source}")]
    Url {
        url: String,
        source: fred::error::Error,
    },
    #[error("cannot build the Redis client: {0}")]
    Build(#[from] fred::error::Error),
}

fn builder(url: &str) -> Result<Builder, RedisClientError> {
    let config = FredConfig::from_url(url).map_err(|source| RedisClientError::Url {
        url: crate::config::url_for_log(url),
        source,
    })?;
    let mut b = Builder::from_config(config);
    b.with_connection_config(|c| {
        c.connection_timeout = CONNECT_TIMEOUT;
        c.internal_command_timeout = COMMAND_TIMEOUT;
        c.max_command_buffer_len = MAX_OFFLINE_QUEUE;
    })
    .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
    .set_policy(ReconnectPolicy::new_exponential(
        0, // for ever
        RECONNECT_MIN_MS,
        RECONNECT_MAX_MS,
        2,
    ));
    Ok(b)
}

/// A client for commands (not connected yet: call `init`).
pub fn client(url: &str) -> Result<Client, RedisClientError> {
    Ok(builder(url)?.build()?)
}

/// A pub/sub client (not connected yet: call `init`); it re-subscribes after a reconnection
/// once `manage_subscriptions` was called.
pub fn subscriber(url: &str) -> Result<SubscriberClient, RedisClientError> {
    Ok(builder(url)?.build_subscriber_client()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_the_gateway_accepts_builds() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://127.0.0.1:6380",
            "redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=mymaster",
            "redis-cluster://127.0.0.1:7000",
        ] {
            assert!(client(url).is_ok(), "{url}");
            assert!(subscriber(url).is_ok(), "{url}");
        }
    }
}
