//! The [`Driver`] over fred: two Redis connections (one publisher, one subscriber), their
//! reconnect policy, the pump that hands subscribed messages to the namespace registry, and the
//! probe that proves the subscriber still receives (a subscriber can die silently: the TCP
//! connection looks fine but Redis lost the subscriptions, e.g. after a failover).

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use fred::{
    clients::{Client, SubscriberClient},
    interfaces::{ClientLike, EventInterface, PubsubInterface},
    types::{
        Builder,
        config::{Config, ReconnectPolicy},
    },
};
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, broadcast::error::RecvError};

use crate::{
    config::AdapterConfig,
    driver::Driver,
    error::Error,
    registry::Registry,
    requests::random_id,
    stats::{AdapterStats, DropReason},
    warn_limit::LogLimiter,
};

/// Redis pub/sub through fred. Its tasks hold it weakly: they end once the adapter is dropped.
pub(crate) struct FredDriver(Arc<Conns>);

/// The two connections and what their tasks share; also used by
/// [`ShardedDriver`](crate::sharded_driver::ShardedDriver), which differs only in commands.
pub(crate) struct Conns {
    pub(crate) publisher: Client,
    pub(crate) subscriber: SubscriberClient,
    pub(crate) stats: Arc<AdapterStats>,
    pub(crate) log: Arc<LogLimiter>,
    /// The probe (and everything else) goes through SPUBLISH/SSUBSCRIBE.
    sharded: bool,
    registry: Arc<Registry>,
    probe_interval: Duration,
    probe_timeout: Duration,
    probe_channel: String,
    probe_seen: AtomicU64,
    probe_notify: Notify,
}

impl FredDriver {
    /// Connects both clients to `url` (redis://, rediss://, redis-sentinel://, as fred parses
    /// it); subscribed messages go to `registry`.
    pub(crate) async fn connect(
        url: &str,
        config: &AdapterConfig,
        stats: Arc<AdapterStats>,
        log: Arc<LogLimiter>,
        registry: Arc<Registry>,
    ) -> Result<Self, Error> {
        Ok(Self(
            Conns::open(url, config, stats, log, registry, false).await?,
        ))
    }
}

impl Conns {
    /// Connects both clients, subscribes the probe channel (`SSUBSCRIBE` when `sharded`) and
    /// starts the pump, event and probe tasks (they hold the result weakly).
    pub(crate) async fn open(
        url: &str,
        config: &AdapterConfig,
        stats: Arc<AdapterStats>,
        log: Arc<LogLimiter>,
        registry: Arc<Registry>,
        sharded: bool,
    ) -> Result<Arc<Self>, Error> {
        let fred_config = Config::from_url(url)?;
        let mut builder = Builder::from_config(fred_config);
        let cmd_timeout = config.command_timeout;
        let buffer = config.subscriber_buffer;
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(5);
                c.internal_command_timeout = cmd_timeout;
                // Commands queued while disconnected are bounded; beyond that they fail fast.
                c.max_command_buffer_len = 10_000;
                c.unresponsive.max_timeout = Some(cmd_timeout * 2);
                c.unresponsive.interval = Duration::from_secs(1);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = cmd_timeout;
                p.broadcast_channel_capacity = buffer;
            })
            .set_policy(ReconnectPolicy::new_exponential(
                0, // retry forever
                config.reconnect_min_delay.as_millis() as u32,
                config.reconnect_max_delay.as_millis() as u32,
                2,
            ));
        let publisher = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        publisher.init().await?;
        subscriber.init().await?;
        // fred re-issues every tracked SUBSCRIBE after each reconnection.
        subscriber.manage_subscriptions();

        let probe_channel = sio_wire::probe_channel(&config.key, &random_id(12));
        let conns = Arc::new(Conns {
            publisher,
            subscriber,
            stats,
            log,
            sharded,
            registry,
            probe_interval: config.probe_interval,
            probe_timeout: config.probe_timeout,
            probe_channel,
            probe_seen: AtomicU64::new(0),
            probe_notify: Notify::new(),
        });
        conns.stats.set_redis_up(true);
        if sharded {
            conns
                .subscriber
                .ssubscribe(conns.probe_channel.clone())
                .await?;
        } else {
            conns
                .subscriber
                .subscribe(conns.probe_channel.clone())
                .await?;
        }
        conns.stats.set_subscriber_alive(true);

        tokio::spawn(pump(Arc::downgrade(&conns), conns.subscriber.message_rx()));
        tokio::spawn(watch_events(Arc::downgrade(&conns)));
        tokio::spawn(probe_loop(Arc::downgrade(&conns)));
        Ok(conns)
    }

    /// PUBLISH, or SPUBLISH when sharded (the probe's token).
    async fn publish_probe(&self, token: u64) -> bool {
        let (chan, msg) = (self.probe_channel.clone(), token.to_string());
        if self.sharded {
            self.publisher
                .spublish::<i64, _, _>(chan, msg)
                .await
                .is_ok()
        } else {
            self.publisher.publish::<i64, _, _>(chan, msg).await.is_ok()
        }
    }
}

/// Subscribers of `channel`: `PUBSUB NUMSUB` (classic) or `PUBSUB SHARDNUMSUB` (sharded). On a
/// Redis Cluster each primary only knows its own subscribers, so the counts are summed over
/// every primary, as the Node adapter does.
pub(crate) async fn subscriber_count(
    publisher: &Client,
    channel: &str,
    sharded: bool,
) -> Result<usize, Error> {
    if !publisher.is_connected() {
        return Err(Error::RedisDown);
    }
    if !publisher.is_clustered() {
        return Ok(numsub(publisher, channel, sharded).await? as usize);
    }
    let mut total = 0u64;
    for server in publisher.active_connections() {
        total += numsub(&publisher.with_cluster_node(server), channel, sharded).await?;
    }
    Ok(total as usize)
}

async fn numsub<C: PubsubInterface + Sync>(
    c: &C,
    channel: &str,
    sharded: bool,
) -> Result<u64, Error> {
    let (_, n): (String, u64) = if sharded {
        c.pubsub_shardnumsub(channel).await?
    } else {
        c.pubsub_numsub(channel).await?
    };
    Ok(n)
}

impl Driver for FredDriver {
    fn publish(&self, channel: String, payload: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let publisher = &self.0.publisher;
            if !publisher.is_connected() {
                return Err(Error::RedisDown);
            }
            publisher.publish::<i64, _, _>(channel, payload).await?;
            Ok(())
        })
    }

    fn subscribe(&self, channels: Vec<String>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { Ok(self.0.subscriber.subscribe(channels).await?) })
    }

    fn unsubscribe(&self, channels: Vec<String>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { Ok(self.0.subscriber.unsubscribe(channels).await?) })
    }

    /// `PUBSUB NUMSUB <channel>` like Node (see [`subscriber_count`]).
    fn server_count<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(subscriber_count(&self.0.publisher, channel, false))
    }

    fn is_up(&self) -> bool {
        self.0.publisher.is_connected() && self.0.subscriber.is_connected()
    }

    /// Classic pub/sub is not sharded: every channel, under `classic` (scrape time only).
    fn shard_subscriptions(&self) -> Vec<(String, usize)> {
        vec![(
            "classic".to_owned(),
            self.0.subscriber.tracked_channels().len(),
        )]
    }
}

/// Hands every message of the subscriber to the registry (which queues without blocking),
/// except the probe's own.
async fn pump(conns: Weak<Conns>, mut rx: tokio::sync::broadcast::Receiver<fred::types::Message>) {
    loop {
        let msg = match rx.recv().await {
            Ok(m) => m,
            Err(RecvError::Lagged(n)) => {
                if let Some(c) = conns.upgrade() {
                    c.stats.dropped(DropReason::SubscriberLagged, n);
                    if c.log.allow() {
                        tracing::warn!(lost = n, "redis adapter subscriber lagged");
                    }
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(c) = conns.upgrade() else { return };
        let channel: &str = &msg.channel;
        if channel == c.probe_channel {
            if let Some(token) = msg.value.as_str().and_then(|s| s.parse::<u64>().ok()) {
                c.probe_seen.fetch_max(token, Ordering::Relaxed);
                c.probe_notify.notify_waiters();
            }
            continue;
        }
        // The payload moves into the queue without a copy (fred hands out shared `Bytes`).
        let payload: Bytes = match msg.value {
            fred::types::Value::Bytes(b) => b,
            fred::types::Value::String(s) => s.into_inner(),
            _ => continue,
        };
        c.registry.dispatch(channel, payload);
    }
}

/// Keeps `redis_up` current and counts reconnections.
async fn watch_events(conns: Weak<Conns>) {
    let (mut pub_re, mut sub_re, mut pub_err, mut sub_err) = match conns.upgrade() {
        Some(c) => (
            c.publisher.reconnect_rx(),
            c.subscriber.reconnect_rx(),
            c.publisher.error_rx(),
            c.subscriber.error_rx(),
        ),
        None => return,
    };
    loop {
        let event_is_error = tokio::select! {
            r = pub_re.recv() => { if matches!(r, Err(RecvError::Closed)) { return } false }
            r = sub_re.recv() => { if matches!(r, Err(RecvError::Closed)) { return } false }
            r = pub_err.recv() => { if matches!(r, Err(RecvError::Closed)) { return } true }
            r = sub_err.recv() => { if matches!(r, Err(RecvError::Closed)) { return } true }
        };
        let Some(c) = conns.upgrade() else { return };
        if event_is_error {
            c.stats.set_redis_up(false);
            c.stats.set_subscriber_alive(false);
            // Redis itself is unreachable: not a fault of this node's subscriber.
            c.stats.set_subscriber_broken(false);
            if c.log.allow() {
                tracing::warn!("redis adapter connection error, reconnecting");
            }
        } else {
            c.stats.reconnect();
            c.stats
                .set_redis_up(c.publisher.is_connected() && c.subscriber.is_connected());
            tracing::info!("redis adapter reconnected");
        }
    }
}

/// Publishes a token on the private probe channel and expects the subscriber to see it.
async fn probe_loop(conns: Weak<Conns>) {
    let mut token = 0u64;
    loop {
        let (interval, timeout) = match conns.upgrade() {
            Some(c) => (c.probe_interval, c.probe_timeout),
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(c) = conns.upgrade() else { return };
        let up = c.publisher.is_connected() && c.subscriber.is_connected();
        c.stats.set_redis_up(up);
        if !up {
            // fred is already reconnecting with backoff.
            c.stats.set_subscriber_alive(false);
            c.stats.set_subscriber_broken(false);
            continue;
        }
        token += 1;
        let cc = c.clone();
        let seen = async move {
            loop {
                let notified = cc.probe_notify.notified();
                if cc.probe_seen.load(Ordering::Relaxed) >= token {
                    return;
                }
                notified.await;
            }
        };
        let published = c.publish_probe(token).await;
        // A Redis that does not answer a PUBLISH within the command timeout (stalled) is down
        // for this node's purposes, even though its connections stay open.
        c.stats.set_redis_up(published);
        let ok = published && tokio::time::timeout(timeout, seen).await.is_ok();
        c.stats.set_subscriber_alive(ok);
        // Redis answered the PUBLISH, yet our own subscriber missed it: this node's fault.
        c.stats.set_subscriber_broken(published && !ok);
        if !ok {
            c.stats.probe_failure();
        }
        // Only a subscriber that missed a PUBLISH Redis answered is reconnected. When the
        // PUBLISH itself failed (Redis stalled, e.g. SIGSTOP, or unreachable), the subscriber
        // is not at fault: tearing it down then would drop every node's subscriptions just as
        // Redis resumes and runs the PUBLISHes queued meanwhile, which would reach nobody
        // (measured: the last 3 s of publishes of a 6 s stall acked ok and lost). A dead
        // connection is fred's to reconnect.
        if published && !ok {
            tracing::warn!("redis adapter subscriber probe failed, forcing reconnection");
            let sub = c.subscriber.clone();
            drop(c);
            // Reconnection re-runs every tracked SUBSCRIBE (manage_subscriptions).
            if let Err(e) = tokio::time::timeout(timeout * 2, sub.force_reconnection()).await {
                tracing::warn!("redis adapter forced reconnection timed out: {e}");
            }
        }
    }
}
