//! This node's link to the others as the namespaces use it: the [`Driver`] plus the adapter's
//! policies around it (failed publishes counted, the node count), its settings and counters.
//! Everything above talks to Redis through [`PubSub`], never to a client library.

use std::sync::Arc;

use bytes::Bytes;

use crate::{
    config::AdapterConfig,
    driver::Driver,
    error::Error,
    stats::{AdapterStats, DropReason},
    warn_limit::LogLimiter,
};

/// The driver with the adapter's settings, counters and log limiter (one per adapter instance).
pub(crate) struct PubSub {
    pub(crate) config: AdapterConfig,
    pub(crate) stats: Arc<AdapterStats>,
    driver: Arc<dyn Driver>,
    log: Arc<LogLimiter>,
}

impl PubSub {
    pub(crate) fn new(
        config: AdapterConfig,
        stats: Arc<AdapterStats>,
        log: Arc<LogLimiter>,
        driver: Arc<dyn Driver>,
    ) -> Self {
        Self {
            config,
            stats,
            driver,
            log,
        }
    }

    /// True when a warning may be logged now (at most one line per second).
    pub(crate) fn warn_allowed(&self) -> bool {
        self.log.allow()
    }

    /// PUBLISH, failing fast (and counting) when Redis is known to be down so socket tasks
    /// never wait on a dead connection.
    pub(crate) async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), Error> {
        // `Bytes::from(Vec)` takes the buffer over without copying.
        match self.driver.publish(channel, Bytes::from(payload)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stats.dropped(DropReason::PublishFailed, 1);
                Err(e)
            }
        }
    }

    /// Nodes listening on `channel`, this one included.
    pub(crate) async fn server_count(&self, channel: &str) -> Result<usize, Error> {
        self.driver.server_count(channel).await
    }

    pub(crate) async fn subscribe(&self, channels: Vec<String>) -> Result<(), Error> {
        self.driver.subscribe(channels).await
    }

    pub(crate) async fn unsubscribe(&self, channels: Vec<String>) -> Result<(), Error> {
        self.driver.unsubscribe(channels).await
    }

    /// Shard channels subscribed, per primary (sharded mode; empty otherwise).
    pub(crate) fn shard_subscriptions(&self) -> Vec<(String, usize)> {
        self.driver.shard_subscriptions()
    }

    /// Both directions connected right now.
    pub(crate) fn is_up(&self) -> bool {
        self.driver.is_up()
    }
}
