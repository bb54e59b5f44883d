//! The two Redis connections of an adapter instance (one publisher, one subscriber), their
//! reconnect policy, the dispatcher that routes subscribed messages to namespaces, and the probe
//! that proves the subscriber still receives (a subscriber can die silently: the TCP connection
//! looks fine but Redis lost the subscriptions, e.g. after a failover).

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
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
use tokio::sync::{Notify, broadcast::error::RecvError};

use crate::{
    AdapterConfig, Error,
    foreign::ForeignIds,
    namespace::{Inbound, NsShared},
    requests::random_id,
    stats::{AdapterStats, DropReason},
};

/// Handler for serverSideEmit requests from other nodes.
pub type ServerSideEmitHandler =
    Arc<dyn Fn(ServerSideEmit) -> Option<serde_json::Value> + Send + Sync + 'static>;

/// A serverSideEmit received from another node.
#[derive(Debug, Clone)]
pub struct ServerSideEmit {
    /// Namespace it was emitted on.
    pub nsp: String,
    /// `[event, ...args]`.
    pub data: Vec<serde_json::Value>,
    /// The sender waits for an answer; the handler's return value (or `null`) is sent back.
    pub wants_ack: bool,
}

/// Shared state of one adapter instance (all namespaces).
pub(crate) struct Core {
    pub(crate) config: AdapterConfig,
    pub(crate) publisher: Client,
    pub(crate) subscriber: SubscriberClient,
    pub(crate) stats: Arc<AdapterStats>,
    pub(crate) namespaces: RwLock<Vec<Arc<NsShared>>>,
    pub(crate) sse_handler: RwLock<Option<ServerSideEmitHandler>>,
    /// Stand-in `Sid`s of Node peers' sockets returned by `fetch_sockets`.
    pub(crate) foreign: ForeignIds,
    probe_channel: String,
    probe_seen: AtomicU64,
    probe_notify: Notify,
    log_limit: LogLimiter,
}

/// Rate limiter for warnings on the message path: at most one line per second.
pub(crate) struct LogLimiter {
    start: Instant,
    last: AtomicU64,
}

impl LogLimiter {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
    /// True when a line may be logged now.
    pub(crate) fn allow(&self) -> bool {
        let now = self.start.elapsed().as_millis() as u64 + 1000;
        let last = self.last.load(Ordering::Relaxed);
        now >= last + 1000
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

impl Core {
    /// Connects both clients to `url` (redis://, rediss://, redis-sentinel://, as fred parses it).
    pub(crate) async fn connect(url: &str, config: AdapterConfig) -> Result<Arc<Self>, Error> {
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
        let core = Arc::new(Core {
            config,
            publisher,
            subscriber,
            stats: Arc::new(AdapterStats::default()),
            namespaces: RwLock::new(Vec::new()),
            foreign: ForeignIds::default(),
            sse_handler: RwLock::new(None),
            probe_channel,
            probe_seen: AtomicU64::new(0),
            probe_notify: Notify::new(),
            log_limit: LogLimiter::new(),
        });
        core.stats.set_redis_up(true);
        core.subscriber
            .subscribe(core.probe_channel.clone())
            .await?;
        core.stats.set_subscriber_alive(true);

        tokio::spawn(dispatch(
            Arc::downgrade(&core),
            core.subscriber.message_rx(),
        ));
        tokio::spawn(watch_events(Arc::downgrade(&core)));
        tokio::spawn(probe_loop(Arc::downgrade(&core)));
        Ok(core)
    }

    pub(crate) fn warn_allowed(&self) -> bool {
        self.log_limit.allow()
    }

    /// PUBLISH, failing fast (and counting) when Redis is known to be down so socket tasks
    /// never wait on a dead connection.
    pub(crate) async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), Error> {
        if !self.publisher.is_connected() {
            self.stats.dropped(DropReason::PublishFailed, 1);
            return Err(Error::RedisDown);
        }
        match self
            .publisher
            .publish::<i64, _, _>(channel, Bytes::from(payload))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                self.stats.dropped(DropReason::PublishFailed, 1);
                Err(e.into())
            }
        }
    }

    /// `PUBSUB NUMSUB <channel>` like Node (the local node is included in the count). On a
    /// Redis Cluster each primary only knows its own subscribers: the counts are summed over
    /// every primary, as the Node adapter does.
    pub(crate) async fn numsub(&self, channel: &str) -> Result<usize, Error> {
        if !self.publisher.is_connected() {
            return Err(Error::RedisDown);
        }
        if !self.publisher.is_clustered() {
            let (_, n): (String, u64) = self.publisher.pubsub_numsub(channel).await?;
            return Ok(n as usize);
        }
        let mut total = 0u64;
        for server in self.publisher.active_connections() {
            let (_, n): (String, u64) = self
                .publisher
                .with_cluster_node(server)
                .pubsub_numsub(channel)
                .await?;
            total += n;
        }
        Ok(total as usize)
    }

    pub(crate) fn namespace(&self, nsp: &str) -> Option<Arc<NsShared>> {
        self.namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|n| n.nsp == nsp)
            .cloned()
    }
}

/// Routes every message of the subscriber to the namespace it belongs to, without blocking:
/// each namespace has a bounded queue, a full queue drops (and counts) the message.
async fn dispatch(
    core: std::sync::Weak<Core>,
    mut rx: tokio::sync::broadcast::Receiver<fred::types::Message>,
) {
    loop {
        let msg = match rx.recv().await {
            Ok(m) => m,
            Err(RecvError::Lagged(n)) => {
                if let Some(core) = core.upgrade() {
                    core.stats.dropped(DropReason::SubscriberLagged, n);
                    if core.warn_allowed() {
                        tracing::warn!(lost = n, "redis adapter subscriber lagged");
                    }
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(core) = core.upgrade() else { return };
        let channel: &str = &msg.channel;
        // `Inbound` keeps only the channel kind; classification borrows the name.
        if channel == core.probe_channel {
            if let Some(token) = msg.value.as_str().and_then(|s| s.parse::<u64>().ok()) {
                core.probe_seen.fetch_max(token, Ordering::Relaxed);
                core.probe_notify.notify_waiters();
            }
            continue;
        }
        // The payload moves into the queue without a copy (fred hands out shared `Bytes`).
        let payload: Bytes = match msg.value {
            fred::types::Value::Bytes(b) => b,
            fred::types::Value::String(s) => s.into_inner(),
            _ => continue,
        };
        // Read lock per message: uncontended (written only when a namespace is created or
        // closed), and it keeps routing correct while namespaces come and go.
        let namespaces = core.namespaces.read().unwrap_or_else(|e| e.into_inner());
        for ns in namespaces.iter() {
            if let Some(kind) = ns.channels.classify(channel) {
                let inbound = Inbound::new(kind, payload);
                if ns.inbound.try_send(inbound).is_err() {
                    core.stats.dropped(DropReason::QueueFull, 1);
                    if core.warn_allowed() {
                        tracing::warn!(nsp = %ns.nsp, "redis adapter inbound queue full, dropping");
                    }
                }
                break;
            }
        }
    }
}

/// Keeps `redis_up` current and counts reconnections.
async fn watch_events(core: std::sync::Weak<Core>) {
    let (mut pub_re, mut sub_re, mut pub_err, mut sub_err) = match core.upgrade() {
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
        let Some(core) = core.upgrade() else { return };
        if event_is_error {
            core.stats.set_redis_up(false);
            core.stats.set_subscriber_alive(false);
            if core.warn_allowed() {
                tracing::warn!("redis adapter connection error, reconnecting");
            }
        } else {
            core.stats.reconnect();
            core.stats
                .set_redis_up(core.publisher.is_connected() && core.subscriber.is_connected());
            tracing::info!("redis adapter reconnected");
        }
    }
}

/// Publishes a token on the private probe channel and expects the subscriber to see it.
async fn probe_loop(core: std::sync::Weak<Core>) {
    let mut token = 0u64;
    loop {
        let (interval, timeout) = match core.upgrade() {
            Some(c) => (c.config.probe_interval, c.config.probe_timeout),
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(c) = core.upgrade() else { return };
        let up = c.publisher.is_connected() && c.subscriber.is_connected();
        c.stats.set_redis_up(up);
        if !up {
            // fred is already reconnecting with backoff.
            c.stats.set_subscriber_alive(false);
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
        let ok = c
            .publisher
            .publish::<i64, _, _>(c.probe_channel.clone(), token.to_string())
            .await
            .is_ok()
            && tokio::time::timeout(timeout, seen).await.is_ok();
        c.stats.set_subscriber_alive(ok);
        if !ok {
            c.stats.probe_failure();
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
