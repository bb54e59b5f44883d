//! The adapter's state as socketioxide holds it (`CoreAdapter::State`): builds an adapter
//! instance on fred and hands out [`RedisAdapterHandle`]s.

use std::sync::Arc;

use crate::{
    config::AdapterConfig, driver::Driver, error::Error, fred_driver::FredDriver,
    handle::RedisAdapterHandle, mode::PubSubMode, pubsub::PubSub, registry::Registry,
    sharded_driver::ShardedDriver, shared::Core, stats::AdapterStats, warn_limit::LogLimiter,
};

/// The adapter's state (socketioxide `CoreAdapter::State`): the Redis connections shared by
/// every namespace. Pass it to `SocketIo::builder().with_adapter::<RedisAdapter<_>>(ctr)`.
#[derive(Clone)]
pub struct RedisAdapterCtr {
    pub(crate) core: Arc<Core>,
}

impl RedisAdapterCtr {
    /// Connects a publisher and a subscriber client to `url` (classic or sharded pub/sub as
    /// [`AdapterConfig::pubsub`] says; sharded refuses a Redis older than 7), as parsed by
    /// `fred::types::config::Config::from_url`: `redis://`, `rediss://`,
    /// `redis-sentinel://host:port/db?sentinelServiceName=name`, `redis-cluster://host:port`.
    /// Fails if Redis cannot be reached now (the caller decides whether to retry); later
    /// outages are reconnected with exponential backoff.
    pub async fn connect(url: &str, config: AdapterConfig) -> Result<Self, Error> {
        let stats = Arc::new(AdapterStats::default());
        let log = Arc::new(LogLimiter::default());
        let registry = Arc::new(Registry::new(
            stats.clone(),
            log.clone(),
            config.max_inbound_bytes,
        ));
        let driver: Arc<dyn Driver> = match config.pubsub {
            PubSubMode::Classic => Arc::new(
                FredDriver::connect(url, &config, stats.clone(), log.clone(), registry.clone())
                    .await?,
            ),
            PubSubMode::Sharded(_) => Arc::new(
                ShardedDriver::connect(url, &config, stats.clone(), log.clone(), registry.clone())
                    .await?,
            ),
        };
        let pubsub = PubSub::new(config, stats, log, driver);
        Ok(Self {
            core: Core::new(pubsub, registry),
        })
    }

    /// A handle for stats, health and cluster operations beyond socketioxide's API.
    pub fn handle(&self) -> RedisAdapterHandle {
        RedisAdapterHandle::new(self.core.clone())
    }
}
