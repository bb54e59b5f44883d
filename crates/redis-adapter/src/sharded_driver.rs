//! The [`Driver`] for sharded pub/sub (Redis >= 7, `SPUBLISH`/`SSUBSCRIBE`), on the same two
//! fred connections as [`FredDriver`](crate::fred_driver::FredDriver) (reconnection, pump,
//! probe), with the sharded commands.
//!
//! What fred gives, read in its sources (10.1): on a Redis Cluster `SPUBLISH` and `SSUBSCRIBE`
//! are routed to the primary owning the channel's slot and follow `MOVED`; `SSUBSCRIBE` needs
//! its channels in one slot (CROSSSLOT otherwise), so channels are grouped by slot here, one
//! command per slot. The subscriber client tracks shard channels and
//! `manage_subscriptions` re-issues them, slot by slot, after every reconnection (a primary
//! killed and replaced by its replica closes the connection: fred reconnects to the new
//! topology, then resubscribes). fred drops the `sunsubscribe` push Redis sends when a slot
//! migrates while the connection stays up, so this driver also resubscribes on every cluster
//! topology change either client notices, and polls `CLUSTER SLOTS` (every probe interval) to
//! notice a migration of a slot this node never publishes to. Re-issuing `SSUBSCRIBE` on a
//! channel already subscribed on that connection is a no-op for Redis: no delivery is
//! duplicated.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use fred::{
    interfaces::{ClientLike, ClusterInterface, EventInterface, PubsubInterface},
    util::redis_keyslot,
};
use futures_util::future::BoxFuture;
use tokio::sync::broadcast::error::RecvError;

use crate::{
    config::AdapterConfig, driver::Driver, error::Error, fred_driver::Conns, registry::Registry,
    stats::AdapterStats, warn_limit::LogLimiter,
};

/// Sharded pub/sub through fred.
pub(crate) struct ShardedDriver(Arc<Conns>);

/// The lowest Redis major version with sharded pub/sub.
pub(crate) const MIN_REDIS_MAJOR: u64 = 7;

impl ShardedDriver {
    /// Connects to `url` (`redis-cluster://` for a cluster; a single Redis >= 7 works too, with
    /// every channel on it) and refuses a server older than Redis 7.
    pub(crate) async fn connect(
        url: &str,
        config: &AdapterConfig,
        stats: Arc<AdapterStats>,
        log: Arc<LogLimiter>,
        registry: Arc<Registry>,
    ) -> Result<Self, Error> {
        // The version is read before anything is subscribed: with an old server the probe's
        // SSUBSCRIBE would fail with a less helpful "unknown command".
        check_version(url, config).await?;
        let conns = Conns::open(url, config, stats, log, registry, true).await?;
        // Set when a resubscription failed: the slot-map watcher retries it every interval
        // until one succeeds (a failure used to wait for the next topology change, and a node
        // could stay unsubscribed after a slot migration).
        let retry = Arc::new(AtomicBool::new(false));
        tokio::spawn(resubscribe_on_cluster_change(
            Arc::downgrade(&conns),
            retry.clone(),
        ));
        if conns.publisher.is_clustered() {
            tokio::spawn(watch_slot_map(
                Arc::downgrade(&conns),
                config.probe_interval,
                retry,
            ));
        }
        Ok(Self(conns))
    }
}

/// Fails with [`Error::RedisTooOld`] when the server says it is older than Redis 7.
async fn check_version(url: &str, config: &AdapterConfig) -> Result<(), Error> {
    let mut builder =
        fred::types::Builder::from_config(fred::types::config::Config::from_url(url)?);
    let timeout = config.command_timeout;
    builder.with_connection_config(|c| c.connection_timeout = timeout);
    let client = builder.build()?;
    client.init().await?;
    let version = client.server_version();
    let _ = client.quit().await;
    match version {
        Some(v) if v.major < MIN_REDIS_MAJOR => Err(Error::RedisTooOld(v.to_string())),
        _ => Ok(()),
    }
}

/// Channels grouped by hash slot (SSUBSCRIBE/SUNSUBSCRIBE take one slot per command).
fn by_slot(channels: Vec<String>) -> BTreeMap<u16, Vec<String>> {
    let mut out: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for c in channels {
        out.entry(redis_keyslot(c.as_bytes())).or_default().push(c);
    }
    out
}

impl Driver for ShardedDriver {
    fn publish(&self, channel: String, payload: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let publisher = &self.0.publisher;
            if !publisher.is_connected() {
                return Err(Error::RedisDown);
            }
            publisher.spublish::<i64, _, _>(channel, payload).await?;
            Ok(())
        })
    }

    fn subscribe(&self, channels: Vec<String>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            for (_, group) in by_slot(channels) {
                self.0.subscriber.ssubscribe(group).await?;
            }
            Ok(())
        })
    }

    fn unsubscribe(&self, channels: Vec<String>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            for (_, group) in by_slot(channels) {
                self.0.subscriber.sunsubscribe(group).await?;
            }
            Ok(())
        })
    }

    /// `PUBSUB SHARDNUMSUB <channel>` summed over every primary, as the Node adapter does
    /// (only the slot owner counts subscribers; the others answer 0).
    fn server_count<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(crate::fred_driver::subscriber_count(
            &self.0.publisher,
            channel,
            true,
        ))
    }

    fn is_up(&self) -> bool {
        self.0.publisher.is_connected() && self.0.subscriber.is_connected()
    }

    /// Called at scrape time, not on a message path: O(subscribed channels).
    fn shard_subscriptions(&self) -> Vec<(String, usize)> {
        let channels = self.0.subscriber.tracked_shard_channels();
        let routing = self.0.subscriber.cached_cluster_state();
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for c in &channels {
            let server = match &routing {
                Some(r) => r.get_server(redis_keyslot(c.as_bytes())).map_or_else(
                    || "unknown".to_owned(),
                    |s| format!("{}:{}", s.host, s.port),
                ),
                None => "single".to_owned(),
            };
            *per.entry(server).or_default() += 1;
        }
        per.into_iter().collect()
    }
}

/// Re-issues every tracked shard subscription when either client sees the cluster's topology
/// change (slot migration, fail-over noticed through `MOVED`).
async fn resubscribe_on_cluster_change(conns: Weak<Conns>, retry: Arc<AtomicBool>) {
    let (mut a, mut b) = match conns.upgrade() {
        Some(c) => (
            c.publisher.cluster_change_rx(),
            c.subscriber.cluster_change_rx(),
        ),
        None => return,
    };
    loop {
        let closed = tokio::select! {
            r = a.recv() => matches!(r, Err(RecvError::Closed)),
            r = b.recv() => matches!(r, Err(RecvError::Closed)),
        };
        if closed {
            return;
        }
        let Some(c) = conns.upgrade() else { return };
        c.stats.resubscribe();
        if let Err(e) = resubscribe_shards(&c.subscriber).await {
            retry.store(true, Ordering::Release);
            if c.log.allow() {
                tracing::warn!(
                    "redis adapter: resubscription after a topology change failed (retried): {e}"
                );
            }
            // While the cluster's nodes disagree, each failed SSUBSCRIBE is itself a topology
            // change (a MOVED): without a pause this looped thousands of times a second. The
            // slot-map watcher retries; the changes queued meanwhile are folded into one.
            drop(c);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            while a.try_recv().is_ok() {}
            while b.try_recv().is_ok() {}
        }
    }
}

/// Re-issues every tracked shard subscription, slot by slot. Not fred's `resubscribe_all`: it
/// first sends `SUBSCRIBE` with the (empty) list of classic channels, which Redis refuses
/// ("wrong number of arguments"), and returns that error before any `SSUBSCRIBE`: after a slot
/// migration the node then stayed unsubscribed (`adapter-sharded-failover`, 2 runs in 3).
async fn resubscribe_shards(subscriber: &fred::clients::SubscriberClient) -> Result<(), Error> {
    let channels: Vec<String> = subscriber
        .tracked_shard_channels()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    for (_, group) in by_slot(channels) {
        subscriber.ssubscribe(group).await?;
    }
    Ok(())
}

/// The slot map as `(first slot, last slot, primary host, primary port)`, sorted, from a
/// `CLUSTER SLOTS` answer; `None` if it does not have that shape.
fn slot_map(v: &fred::types::Value) -> Option<Vec<(i64, i64, String, i64)>> {
    use fred::types::Value as V;
    let V::Array(ranges) = v else { return None };
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let V::Array(f) = r else { return None };
        let (first, last) = (f.first()?.as_i64()?, f.get(1)?.as_i64()?);
        let V::Array(primary) = f.get(2)? else {
            return None;
        };
        let host = primary.first()?.as_string()?;
        let port = primary.get(1)?.as_i64()?;
        out.push((first, last, host, port));
    }
    out.sort();
    Some(out)
}

/// Polls `CLUSTER SLOTS` every `interval` and, when the slot map changed, makes the subscriber
/// re-read it and re-issue every shard subscription. Needed for slot migrations: Redis then
/// tells subscribers with a `sunsubscribe` push (which fred drops) while every connection stays
/// up, and a node that never publishes to the moved slot never gets a `MOVED` either. One
/// command per interval and node; nothing on a message path. Also retries, every interval, a
/// resubscription that failed (`retry`, set by either task), after re-reading the topology.
async fn watch_slot_map(conns: Weak<Conns>, interval: std::time::Duration, retry: Arc<AtomicBool>) {
    let mut last: Option<Vec<(i64, i64, String, i64)>> = None;
    let mut first = true;
    loop {
        // The first map is read at once: the subscriptions made from now on are on it.
        if !std::mem::take(&mut first) {
            tokio::time::sleep(interval).await;
        }
        let Some(c) = conns.upgrade() else { return };
        if !c.publisher.is_connected() {
            continue;
        }
        let v = match c.publisher.cluster_slots::<fred::types::Value>().await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!("redis adapter: CLUSTER SLOTS failed: {e}");
                continue;
            }
        };
        let Some(map) = slot_map(&v) else {
            tracing::debug!("redis adapter: unexpected CLUSTER SLOTS answer: {v:?}");
            continue;
        };
        let changed = last.as_ref().is_some_and(|l| *l != map);
        last = Some(map);
        let retrying = retry.swap(false, Ordering::AcqRel);
        if !changed && !retrying {
            continue;
        }
        if changed {
            tracing::info!(
                "redis adapter: cluster slot map changed, re-subscribing shard channels"
            );
        }
        c.stats.resubscribe();
        let res = async {
            c.subscriber.sync_cluster().await?;
            c.publisher.sync_cluster().await?;
            resubscribe_shards(&c.subscriber).await
        }
        .await;
        if let Err(e) = res {
            retry.store(true, Ordering::Release);
            if c.log.allow() {
                tracing::warn!("redis adapter: resubscription failed (retried): {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_grouped_by_slot() {
        let groups = by_slot(vec![
            "socket.io#/#".into(),
            "socket.io#/#{a}#".into(),
            "x{a}y".into(),
        ]);
        let total: usize = groups.values().map(Vec::len).sum();
        assert_eq!(total, 3);
        assert!(groups.values().any(|g| g.len() == 2), "{groups:?}");
    }

    #[test]
    fn slot_maps_are_compared_in_a_stable_order() {
        use fred::types::Value as V;
        let range = |a: i64, b: i64, port: i64| {
            V::Array(vec![
                V::Integer(a),
                V::Integer(b),
                V::Array(vec![
                    V::String("127.0.0.1".into()),
                    V::Integer(port),
                    V::String("id".into()),
                ]),
            ])
        };
        let one = V::Array(vec![range(0, 99, 7001), range(100, 199, 7002)]);
        let other_order = V::Array(vec![range(100, 199, 7002), range(0, 99, 7001)]);
        let moved = V::Array(vec![range(0, 98, 7001), range(99, 199, 7002)]);
        assert_eq!(slot_map(&one), slot_map(&other_order));
        assert_ne!(slot_map(&one), slot_map(&moved));
        assert_eq!(slot_map(&V::Integer(1)), None);
    }
}
