//! Cluster mode (`--redis`): several gateway nodes share one Redis.
//!
//! What a node does beyond the single-node gateway, and where:
//! * [`ClusterAdapter`]: socketioxide runs on `sio-redis-adapter` (the Node
//!   `@socket.io/redis-adapter` protocol), so rooms and broadcasts span every node;
//!   [`metrics::AdapterCollector`] exports its counters at scrape time; a client's `join` is
//!   acknowledged once the room's channel is subscribed (`ClusterView::sync_rooms`); presence
//!   (`GET /api/v1/sockets`) asks the adapter directly (`ClusterView::presence`) so that Node.js
//!   peers' sockets are listed too.
//! * [`registry`]: every node announces itself (id, advertise URL, connections) under a key with
//!   a TTL, refreshed by a heartbeat, deleted on drain; `GET /api/v1/cluster` ([`api`]) lists them.
//!   The same module keeps the `sid -> node` records of long-polling sessions. Both are signed
//!   with `--cluster-secret`, and what fails the signature or the advertise URL rule
//!   ([`crate::config::advertise`]: an origin only) is ignored, so writing to Redis does not choose where a
//!   node forwards.
//! * [`sessions`]: the middleware in front of `/socket.io/`: it remembers the Engine.IO sessions
//!   opened here and, for a request whose session lives on another node, finds the owner
//!   (sid record, else the sticky cookie) and hands the request to [`forward`], which proxies
//!   HTTP polls and WebSocket upgrades to it, signed with `--cluster-secret`. It runs outside
//!   [`crate::session_key`], so the `sid` it sees, records and forwards by is the session's
//!   secret key, never its public socket id.
//! * `/readyz` fails while Redis is unreachable or the adapter's subscriber is dead
//!   ([`RedisReady`]).
//!
//! The cluster object is not generic over the adapter: the few things it needs from the node
//! (is this session key still live here, how many connections) are captured as closures in
//! [`Cluster::start`].
pub mod api;
pub mod forward;
pub mod metrics;
pub mod registry;
pub mod sessions;
pub mod socket_info;

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use axum::{Router, middleware, routing::get};
use sio_redis_adapter::{
    AdapterConfig, Health, InitRes, PubSubMode, RedisAdapter, RedisAdapterCtr, RedisAdapterHandle,
    SubscriptionMode,
};
use socketioxide::{SocketIo, adapter::Adapter};

use crate::{
    adapter::GatewayAdapter,
    config::{Config, Readiness, RedisPubSub, RedisSubscriptionMode},
    health::ReadyCheck,
    state::Gateway,
};

use self::{
    forward::Forwarder,
    metrics::{AdapterCollector, ForwardMetrics},
    registry::{NodeInfo, Registry},
    sessions::Sessions,
};

/// How long a node that left the registry is still a forwarding target (see `Cluster::known`).
/// Longer than any sensible drain period; a node that is really gone fails fast (connection
/// refused, counted as `owner_down`).
const FORWARD_GRACE: Duration = Duration::from_secs(120);

/// The adapter type of a cluster node.
pub type ClusterAdapter = RedisAdapter<socketioxide::adapter::Emitter>;

impl GatewayAdapter for ClusterAdapter {
    async fn init_namespace(res: InitRes) -> anyhow::Result<()> {
        res.await
            .context("subscribing the namespace's Redis channels")
    }

    fn set_room_watch(state: &RedisAdapterCtr, watch: Arc<dyn sio_redis_adapter::RoomWatch>) {
        state.handle().set_room_watch(watch);
    }
}

/// [`crate::cluster_view::ClusterView`] answered by the Redis adapter.
struct AdapterView(RedisAdapterHandle);

/// Awaits a room subscription for at most 2 s: a join must not hang on a dead Redis. The
/// adapter's next tick catches up (a failure marks the namespace changed; so does a timeout,
/// here, since the dropped future could not).
async fn bounded(
    handle: &RedisAdapterHandle,
    nsp: &str,
    what: &str,
    sync: impl std::future::Future<Output = Result<(), sio_redis_adapter::Error>>,
) {
    match tokio::time::timeout(Duration::from_secs(2), sync).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%nsp, error = %e, "{what} failed"),
        Err(_) => {
            handle.rooms_changed(nsp);
            tracing::debug!(%nsp, "{what} timed out");
        }
    }
}

impl crate::cluster_view::ClusterView for AdapterView {
    fn sync_rooms(&self, nsp: String) -> futures_util::future::BoxFuture<'static, ()> {
        let handle = self.0.clone();
        Box::pin(async move {
            let sync = handle.sync_rooms(&nsp);
            bounded(&handle, &nsp, "room sync", sync).await;
        })
    }

    fn ensure_rooms(
        &self,
        nsp: String,
        rooms: Vec<String>,
    ) -> futures_util::future::BoxFuture<'static, ()> {
        let handle = self.0.clone();
        Box::pin(async move {
            let sync = handle.ensure_rooms(&nsp, &rooms);
            bounded(&handle, &nsp, "room subscription", sync).await;
        })
    }

    fn rooms_changed(&self, nsp: &str) {
        self.0.rooms_changed(nsp);
    }

    fn presence(
        &self,
        nsp: String,
        rooms: Vec<String>,
    ) -> Option<futures_util::future::BoxFuture<'static, crate::cluster_view::PresenceResult>> {
        let handle = self.0.clone();
        Some(Box::pin(async move {
            handle.fetch_sockets(&nsp, &rooms, &[]).await
        }))
    }
}

/// `/readyz` condition on Redis (see `--readiness` and docs/operations.md, "Readiness").
///
/// Redis is a dependency every node shares: when it is unreachable, it is unreachable for the
/// whole fleet, and failing readiness would take every node out of the balancer at once while
/// each still serves its own clients. So by default ([`Readiness::Local`]) that is a
/// degradation (reported in `/readyz`'s body, `redis_up`, the logs), and only a fault that is
/// this node's own makes it unready: Redis answers the subscriber probe's PUBLISH, yet this
/// node's subscriber does not receive it. [`Readiness::Strict`] is unready in both cases.
pub struct RedisReady {
    pub handle: RedisAdapterHandle,
    pub mode: Readiness,
}

/// The Redis problem seen by this node, if any.
fn redis_problem(h: Health, connected: bool) -> Option<&'static str> {
    if !h.redis_up || !connected {
        Some("redis unreachable")
    } else if !h.subscriber_alive {
        Some("adapter subscriber not receiving (probe failed)")
    } else {
        None
    }
}

/// Readiness (`Err` = unready) and degradation for `mode`, from the adapter's health and
/// whether both Redis connections are up.
fn redis_readiness(
    mode: Readiness,
    h: Health,
    connected: bool,
) -> (Result<(), String>, Option<String>) {
    let problem = redis_problem(h, connected);
    match mode {
        Readiness::Strict => (problem.map_or(Ok(()), |p| Err(p.into())), None),
        Readiness::Local if h.subscriber_broken => (
            Err("this node's adapter subscriber is not receiving while Redis answers (probe failed)".into()),
            None,
        ),
        Readiness::Local => (
            Ok(()),
            problem.map(|p| {
                format!("{p}: serving this node's clients; other nodes are not reached until Redis is back")
            }),
        ),
    }
}

impl ReadyCheck for RedisReady {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn check(&self) -> Result<(), String> {
        redis_readiness(self.mode, self.handle.health(), self.handle.redis_up()).0
    }
    fn degraded(&self) -> Option<String> {
        redis_readiness(self.mode, self.handle.health(), self.handle.redis_up()).1
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type KeyProbe = Box<dyn Fn(&str) -> bool + Send + Sync>;
type Counter = Box<dyn Fn() -> usize + Send + Sync>;

/// What the cluster needs from the running socketioxide instance (set by [`Cluster::start`]).
struct Hooks {
    /// Is this session key still known here (its session has not ended)?
    has_session: KeyProbe,
    /// Socket.IO connections on this node (all namespaces).
    connections: Counter,
}

/// One node's membership in the cluster.
pub struct Cluster {
    pub node_id: String,
    pub advertise: String,
    started_at: u64,
    adapter: RedisAdapterCtr,
    pub handle: RedisAdapterHandle,
    pub registry: Registry,
    pub sessions: Sessions,
    /// None without `--cluster-secret`: this node never forwards.
    pub forwarder: Option<Forwarder>,
    pub cookie_name: String,
    heartbeat: Duration,
    /// Nodes seen in the registry (node id -> info, last seen), refreshed by the heartbeat;
    /// used to find the address of a session's owner without a Redis round trip. A node that
    /// left the registry stays here for [`FORWARD_GRACE`]: a draining node deregisters first
    /// but still serves its sessions (it closes them one by one), so their polls are still
    /// forwarded to it and end with a clean Engine.IO CLOSE rather than "Session ID unknown".
    known: RwLock<HashMap<String, (NodeInfo, Instant)>>,
    leaving: AtomicBool,
    /// Fires when the drain starts (see `sessions`: polls passing through are released).
    left: tokio::sync::watch::Sender<bool>,
    hooks: OnceLock<Hooks>,
    metrics: OnceLock<ForwardMetrics>,
}

/// `--redis-pubsub` and `--redis-subscription-mode` as the adapter takes them.
fn pubsub_mode(config: &Config) -> PubSubMode {
    match config.redis_pubsub {
        RedisPubSub::Classic => PubSubMode::Classic,
        RedisPubSub::Sharded => PubSubMode::Sharded(match config.redis_subscription_mode {
            RedisSubscriptionMode::Dynamic => SubscriptionMode::Dynamic,
            RedisSubscriptionMode::DynamicPrivate => SubscriptionMode::DynamicPrivate,
            RedisSubscriptionMode::Static => SubscriptionMode::Static,
        }),
    }
}

/// How often the adapter reconciles its room channels with local membership when nobody
/// reported a change: a safety net, since every change is reported. Each reconciliation lists
/// every local membership; at the adapter's default (every 200 ms) that listing was ~6 % of a
/// node's CPU at 10 broadcasts/s to its 1,000 sockets (BENCHMARKS.md, issue 18).
const ROOM_FULL_SYNC: Duration = Duration::from_secs(10);

impl Cluster {
    /// Connect the adapter and the registry client to `url`. Fails if Redis is unreachable now.
    pub async fn connect(config: &Config, url: &str) -> anyhow::Result<Arc<Cluster>> {
        let adapter_config = AdapterConfig {
            node_name: Some(config.node_id.clone()),
            pubsub: pubsub_mode(config),
            // The gateway reports every membership change it makes (`ensure_rooms` after
            // joins, `rooms_changed` after connections, leaves and disconnections), so the
            // full listing of local memberships runs after a change only, and otherwise as
            // a safety net.
            room_full_sync_interval: ROOM_FULL_SYNC,
            max_inbound_bytes: config.max_redis_message(),
            ..AdapterConfig::default()
        };
        let prefix = registry::prefix(&adapter_config.key);
        let adapter = RedisAdapterCtr::connect(url, adapter_config)
            .await
            .with_context(|| format!("cannot connect the Redis adapter to {url}"))?;
        let handle = adapter.handle();
        let registry = Registry::connect(
            url,
            prefix,
            config.node_id.clone(),
            config.cluster_node_ttl,
            session_ttl(config),
            config.cluster_secret.as_deref(),
        )
        .await
        .with_context(|| format!("cannot connect the node registry to {url}"))?;
        let forwarder = match &config.cluster_secret {
            Some(secret) => Some(Forwarder::new(&config.node_id, secret)),
            None => {
                tracing::warn!(
                    node_id = %config.node_id,
                    "no --cluster-secret: polling requests for sessions of other nodes are not forwarded"
                );
                None
            }
        };
        Ok(Arc::new(Cluster {
            node_id: config.node_id.clone(),
            advertise: config.advertise.trim_end_matches('/').to_owned(),
            started_at: unix_ms(),
            adapter,
            handle,
            registry,
            sessions: Sessions::new(session_grace(config)),
            forwarder,
            cookie_name: config.sticky_cookie.clone(),
            heartbeat: config.cluster_heartbeat,
            known: RwLock::new(HashMap::new()),
            leaving: AtomicBool::new(false),
            left: tokio::sync::watch::Sender::new(false),
            hooks: OnceLock::new(),
            metrics: OnceLock::new(),
        }))
    }

    /// The adapter state to build socketioxide with.
    pub fn adapter_state(&self) -> RedisAdapterCtr {
        self.adapter.clone()
    }

    /// What the rest of the gateway asks of the cluster (room sync, presence).
    pub fn view(&self) -> Arc<dyn crate::cluster_view::ClusterView> {
        Arc::new(AdapterView(self.handle.clone()))
    }

    /// Readiness checks contributed by the cluster.
    pub fn ready_checks(&self, mode: Readiness) -> Vec<Arc<dyn ReadyCheck>> {
        vec![Arc::new(RedisReady {
            handle: self.handle.clone(),
            mode,
        })]
    }

    /// Wire into a running node: metrics, first announcement, heartbeat and session sweeper.
    pub async fn start<A: Adapter>(self: &Arc<Self>, gw: &Arc<Gateway>, io: &SocketIo<A>) {
        let fm = ForwardMetrics::register(gw.metrics.registry());
        self.registry.count_untrusted(fm.untrusted.clone());
        let _ = self.metrics.set(fm);
        AdapterCollector::install(&gw.metrics, self.handle.clone());
        let gw1 = gw.clone();
        let io2 = io.clone();
        let _ = self.hooks.set(Hooks {
            // The session-key layer drops a key once its session ended (no namespace socket,
            // unused for a grace period); the local session and its record follow.
            has_session: Box::new(move |key| gw1.session_keys.contains(key)),
            connections: Box::new(move || {
                io2.nsps().into_iter().map(|ns| ns.sockets().len()).sum()
            }),
        });

        // Announce before serving so peers can forward to us from the first handshake on.
        self.beat().await;
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.heartbeat);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if me.leaving.load(Ordering::Acquire) {
                    return;
                }
                me.beat().await;
            }
        });
        let me = self.clone();
        tokio::spawn(async move { me.sweep_sessions().await });
    }

    /// One heartbeat: refresh our entry, then re-read the registry.
    async fn beat(&self) {
        let info = NodeInfo {
            id: self.node_id.clone(),
            advertise: self.advertise.clone(),
            started_at: self.started_at,
            connections: self.hooks.get().map_or(0, |h| (h.connections)()),
            updated_at: unix_ms(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        if let Err(e) = self.registry.announce(&info).await {
            tracing::debug!(node_id = %self.node_id, error = %e, "registry heartbeat failed");
        }
        // Re-check after the write: a drain that started meanwhile must not be undone.
        if self.leaving.load(Ordering::Acquire) {
            let _ = self.registry.remove().await;
        }
        match self.registry.list().await {
            Ok(nodes) => {
                let now = Instant::now();
                let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
                known.retain(|_, (_, seen)| now.duration_since(*seen) < FORWARD_GRACE);
                for n in nodes {
                    known.insert(n.id.clone(), (n, now));
                }
            }
            Err(e) => tracing::debug!(error = %e, "registry listing failed"),
        }
    }

    /// Drop out of the registry at once (start of a drain); the heartbeat stops.
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::Release);
        self.left.send_replace(true);
        match self.registry.remove().await {
            Ok(()) => tracing::info!(node_id = %self.node_id, "left the node registry"),
            Err(e) => {
                tracing::warn!(node_id = %self.node_id, error = %e, "cannot remove the registry entry")
            }
        }
    }

    /// This node is draining.
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    /// Resolves once the drain has started.
    pub async fn left(&self) {
        let mut rx = self.left.subscribe();
        if rx.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Advertise URL of a node, from the recent listings.
    pub fn node_url(&self, id: &str) -> Option<String> {
        self.known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|(n, _)| n.advertise.clone())
    }

    /// Advertise URL of a node: from the recent listings, else (a node that joined since
    /// the last heartbeat) straight from the registry, remembered for next time.
    pub async fn resolve_node(&self, id: &str) -> Option<String> {
        if let Some(url) = self.node_url(id) {
            return Some(url);
        }
        if !self.handle.redis_up() {
            return None;
        }
        let info = self.registry.get(id).await.ok().flatten()?;
        let url = info.advertise.clone();
        self.known
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), (info, Instant::now()));
        Some(url)
    }

    pub(crate) fn forward_metrics(&self) -> Option<&ForwardMetrics> {
        self.metrics.get()
    }

    fn has_session(&self, key: &str) -> bool {
        self.hooks.get().is_some_and(|h| (h.has_session)(key))
    }

    /// Keep the sid records of live polling sessions fresh; drop the records of ended ones.
    async fn sweep_sessions(self: Arc<Self>) {
        let every = self.registry.sid_ttl / 3;
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (alive, ended) = self.sessions.sweep(|key| self.has_session(key));
            if let Err(e) = self.registry.refresh_sids(&alive).await {
                tracing::debug!(error = %e, "refreshing sid records failed");
            }
            if let Err(e) = self.registry.delete_sids(&ended).await {
                tracing::debug!(error = %e, "deleting sid records failed");
            }
        }
    }

    /// The cluster's own routes (`/api/v1/cluster`), merged into the node's router; its
    /// `/socket.io/` layer ([`sessions::Routing`]) is put around the node by
    /// `server::app`.
    pub fn api_routes(self: &Arc<Self>, gw: &Arc<Gateway>) -> Router {
        Router::new()
            .route("/api/v1/cluster", get(api::cluster))
            .route_layer(middleware::from_fn_with_state(
                gw.config.clone(),
                crate::api::keys::require_api_key,
            ))
            .with_state(self.clone())
    }
}

/// How long a sid record outlives its last refresh: a little over two heartbeat windows of
/// Engine.IO (ping interval + timeout), so a live session is never without one.
fn session_ttl(config: &Config) -> Duration {
    (config.ping_interval + config.ping_timeout) * 2
}

/// How long a session opened here counts as local before any namespace socket exists for it.
fn session_grace(config: &Config) -> Duration {
    config.ping_interval + config.ping_timeout
}

#[cfg(test)]
mod readiness_tests {
    use super::*;

    fn h(redis_up: bool, subscriber_alive: bool, subscriber_broken: bool) -> Health {
        Health {
            redis_up,
            subscriber_alive,
            subscriber_broken,
        }
    }

    #[test]
    fn redis_down_for_everyone_is_degraded_not_unready_by_default() {
        let (ready, degraded) = redis_readiness(Readiness::Local, h(false, false, false), false);
        assert!(ready.is_ok());
        assert!(degraded.is_some_and(|d| d.starts_with("redis unreachable")));
        // A stalled Redis: the probe's PUBLISH timed out, nothing says this node is at fault.
        let (ready, degraded) = redis_readiness(Readiness::Local, h(true, false, false), true);
        assert!(ready.is_ok());
        assert!(degraded.is_some());
    }

    #[test]
    fn own_subscriber_broken_while_redis_answers_is_unready() {
        let (ready, degraded) = redis_readiness(Readiness::Local, h(true, false, true), true);
        assert!(ready.unwrap_err().contains("while Redis answers"));
        assert!(degraded.is_none());
    }

    #[test]
    fn strict_is_unready_on_any_redis_problem() {
        assert!(
            redis_readiness(Readiness::Strict, h(false, false, false), false)
                .0
                .is_err()
        );
        assert!(
            redis_readiness(Readiness::Strict, h(true, false, false), true)
                .0
                .is_err()
        );
        assert!(
            redis_readiness(Readiness::Strict, h(true, true, false), false)
                .0
                .is_err()
        );
        assert_eq!(
            redis_readiness(Readiness::Strict, h(true, true, false), true),
            (Ok(()), None)
        );
    }

    #[test]
    fn healthy_is_ready_and_not_degraded() {
        for mode in [Readiness::Local, Readiness::Strict] {
            assert_eq!(
                redis_readiness(mode, h(true, true, false), true),
                (Ok(()), None)
            );
        }
    }
}
