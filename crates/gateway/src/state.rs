//! The gateway's shared state: one [`Gateway`] per process, behind an `Arc`.
//!
//! It holds everything that is independent of the adapter type (config, metrics, limits,
//! drain state, the TCP connection registry). socketioxide handlers reach it through
//! socketioxide's `State` extractor; axum handlers through [`AppState`], which adds the
//! adapter-typed `SocketIo<A>` handle.
use std::sync::Arc;

use socketioxide::{SocketIo, adapter::Adapter};

use crate::{
    admin::Admin,
    auth::Authenticator,
    chat::Chat,
    cluster_view::ClusterView,
    config::Config,
    drain::Drain,
    engine_sessions::{Closer, EngineSessions},
    event_rate::EventRate,
    health::{Readiness, ReadyCheck},
    history::History,
    limits::ConnectionLimit,
    listener::ConnRegistry,
    metrics::Metrics,
    namespaces::Namespaces,
    polling::PollingSessions,
    session_key::SessionKeys,
    sticky::Sticky,
    upstream::Sink,
};

/// The services built before the gateway state, each once (see `server::serve`).
pub struct Services {
    /// Extra readiness conditions (the cluster's Redis check).
    pub ready_checks: Vec<Arc<dyn ReadyCheck>>,
    pub auth: Authenticator,
    pub upstream: Sink,
    pub cluster: Arc<dyn ClusterView>,
    /// Cluster mode with `--history`: the Redis Streams of the histories.
    pub history_store: Option<crate::history::stream::StreamStore>,
}

/// Every service of the node, built once. The lower modules never see this hub: each
/// middleware and handler is given the services it uses (`from_fn_with_state`, axum
/// `FromRef` substates, socketioxide states by type), so they do not import this module.
pub struct Gateway {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub conn_limit: ConnectionLimit,
    /// Pattern namespaces: the cap and their removal when empty.
    pub namespaces: Arc<Namespaces>,
    pub drain: Arc<Drain>,
    /// The live namespaces of each Engine.IO session (see [`crate::engine_sessions`]).
    pub engine_sessions: Arc<EngineSessions>,
    /// Connections of the client-facing listener (cut one by one during a drain).
    pub conns: Arc<ConnRegistry>,
    /// `/readyz`: the drain plus extra conditions (e.g. "Redis connected").
    pub readiness: Arc<Readiness>,
    /// The demo page and the client bundle, if one was found on disk.
    pub chat: Arc<Chat>,
    /// Connect-time authentication and the upstream sink (built by `server::serve` first:
    /// they read key files, connect to Redis).
    pub auth: Arc<Authenticator>,
    pub upstream: Sink,
    /// Each session's upstream events in flight (the webhook sink's per-client cap).
    pub upstream_sessions: crate::upstream::Sessions,
    /// Each Engine.IO session's `--event-rate` bucket, shared by its namespace sockets (the
    /// relay's and the Admin UI's).
    pub event_rate: Arc<EventRate>,
    /// Sessions handshaken and not connected to a namespace yet (`--max-pending-sessions`).
    pub pending_sessions: Arc<crate::pending_sessions::PendingSessions>,
    /// How many pattern namespaces each Engine.IO session is in (see `namespaces`).
    pub session_namespaces: crate::per_session::PerSession<crate::namespaces::SessionCount>,
    /// Pre-rendered sticky-session headers, added to every handshake response.
    pub sticky: Arc<Sticky>,
    /// The secret keys polling sessions present as `sid` (see [`crate::session_key`]).
    pub session_keys: Arc<SessionKeys>,
    /// Polling requests that ride through a dying forwarder (see [`crate::polling`]).
    pub polling: Arc<PollingSessions>,
    /// What the cluster answers (room sync, presence); [`crate::cluster_view::SingleNode`]
    /// without `--redis`.
    pub cluster: Arc<dyn ClusterView>,
    /// The HTTP API's cluster socket listings, shared by concurrent requests.
    pub listings: crate::cluster_view::Listings,
    /// The Admin UI's server side, with `--admin-ui`.
    pub admin: Option<Arc<Admin>>,
    /// Room histories (`--history`): the append point of every broadcast into a history room.
    pub history: Arc<History>,
    /// When authenticated sockets' credentials expire (`--auth-expiry close`).
    pub expiries: Arc<crate::auth::expiry::Expiries>,
}

impl Gateway {
    /// The services the composition root (`server::serve`) built, put together once.
    pub fn new(config: Config, services: Services) -> Gateway {
        let Services {
            ready_checks,
            auth,
            upstream,
            cluster,
            history_store,
        } = services;
        let metrics = Arc::new(Metrics::new(&config.node_id));
        let sticky = Arc::new(Sticky::new(&config));
        let drain = Arc::new(Drain::default());
        let conns = Arc::new(
            ConnRegistry::new(
                metrics.bytes_received_total.clone(),
                metrics.bytes_sent_total.clone(),
            )
            .limit_per_ip(
                config.max_conns_per_ip,
                metrics
                    .connections_refused_total
                    .with_label_values(&["ip_connections"]),
            ),
        );
        let history = Arc::new(History::new(
            config.history.clone(),
            config.history_max_bytes,
            history_store,
            metrics.registry(),
        ));
        let event_rate = Arc::new(EventRate::new(config.event_rate, config.event_burst));
        let pending_sessions = Arc::new(crate::pending_sessions::PendingSessions::new(
            config.max_pending_sessions,
            config.connect_timeout,
            metrics.sessions_pending.clone(),
        ));
        Gateway {
            admin: Admin::new(
                &config,
                metrics.clone(),
                cluster.clone(),
                event_rate.clone(),
            ),
            history,
            chat: Arc::new(Chat::new(
                config.client_js.as_deref(),
                &config.node_id,
                sticky.clone(),
            )),
            readiness: Arc::new(Readiness::new(&config.node_id, drain.clone(), ready_checks)),
            sticky,
            session_keys: Arc::new(SessionKeys::new(config.ping_interval + config.ping_timeout)),
            polling: Default::default(),
            cluster,
            listings: Default::default(),
            conn_limit: ConnectionLimit::new(config.max_connections),
            namespaces: Arc::new(Namespaces::new(&config.namespace, config.max_namespaces)),
            engine_sessions: Arc::new(EngineSessions::new(Closer {
                grace: config.ping_interval + config.ping_timeout,
                drain: drain.clone(),
                conns: conns.clone(),
                closed: metrics.sessions_closed_no_namespace_total.clone(),
            })),
            drain,
            conns,
            config: Arc::new(config),
            metrics,
            auth: Arc::new(auth),
            upstream,
            upstream_sessions: Default::default(),
            event_rate,
            pending_sessions,
            session_namespaces: Default::default(),
            expiries: Default::default(),
        }
    }

    /// What a history replay reads of the node's transports (see `history::replay`).
    pub fn transports(&self) -> crate::history::replay::Transports<'_> {
        crate::history::replay::Transports {
            polling: &self.polling,
            drain: &self.drain,
            conns: &self.conns,
        }
    }

    /// Wait until the adapter is subscribed to the rooms local sockets are in (no-op on a
    /// single node: the in-memory adapter needs no subscription).
    pub async fn sync_rooms(&self, nsp: &str) {
        self.cluster.sync_rooms(nsp.to_owned()).await;
    }

    /// Local membership of `nsp` changed other than by a join followed by `ensure_rooms`
    /// (see [`crate::cluster_view::ClusterView::rooms_changed`]).
    pub fn rooms_changed(&self, nsp: &str) {
        self.cluster.rooms_changed(nsp);
    }

    /// Wait until the adapter is subscribed to `rooms`, just joined by a local socket (no-op
    /// on a single node). O(rooms), unlike `sync_rooms`.
    pub async fn ensure_rooms(&self, nsp: &str, rooms: Vec<String>) {
        self.cluster.ensure_rooms(nsp.to_owned(), rooms).await;
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }
}

/// State of the axum router: the gateway plus the adapter-typed Socket.IO handle.
pub struct AppState<A: Adapter> {
    pub gw: Arc<Gateway>,
    pub io: SocketIo<A>,
}

// Manual impl: a derive would demand `A: Clone`, which adapters are not.
impl<A: Adapter> Clone for AppState<A> {
    fn clone(&self) -> Self {
        AppState {
            gw: self.gw.clone(),
            io: self.io.clone(),
        }
    }
}

// Substates: the handlers that need one service take only that.
impl<A: Adapter> axum::extract::FromRef<AppState<A>> for Arc<Readiness> {
    fn from_ref(st: &AppState<A>) -> Self {
        st.gw.readiness.clone()
    }
}

impl<A: Adapter> axum::extract::FromRef<AppState<A>> for Arc<Config> {
    fn from_ref(st: &AppState<A>) -> Self {
        st.gw.config.clone()
    }
}

impl<A: Adapter> axum::extract::FromRef<AppState<A>> for Arc<Chat> {
    fn from_ref(st: &AppState<A>) -> Self {
        st.gw.chat.clone()
    }
}

impl<A: Adapter> axum::extract::FromRef<AppState<A>> for crate::metrics::MetricsState<A> {
    fn from_ref(st: &AppState<A>) -> Self {
        crate::metrics::MetricsState {
            metrics: st.gw.metrics.clone(),
            io: st.io.clone(),
            config: st.gw.config.clone(),
            pending_sessions: st.gw.pending_sessions.clone(),
        }
    }
}
