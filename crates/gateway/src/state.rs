//! The gateway's shared state: one [`Gateway`] per process, behind an `Arc`.
//!
//! It holds everything that is independent of the adapter type (config, metrics, limits,
//! drain state, the TCP connection registry). socketioxide handlers reach it through
//! socketioxide's `State` extractor; axum handlers through [`AppState`], which adds the
//! adapter-typed `SocketIo<A>` handle.
use std::sync::Arc;

use bytes::Bytes;
use socketioxide::{SocketIo, adapter::Adapter};

use crate::{
    chat, cluster_view::ClusterView, config::Config, drain::Drain, health::ReadyCheck,
    limits::ConnectionLimit, listener::ConnRegistry, metrics::Metrics,
};

/// The services built before the gateway state, each once (see `server::serve`).
pub struct Services {
    /// Extra readiness conditions (the cluster's Redis check).
    pub ready_checks: Vec<Arc<dyn ReadyCheck>>,
    pub auth: crate::auth::Authenticator,
    pub upstream: crate::upstream::Sink,
    pub cluster: Arc<dyn ClusterView>,
}

pub struct Gateway {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub conn_limit: ConnectionLimit,
    /// Pattern namespaces: the cap and their removal when empty.
    pub namespaces: crate::namespaces::Namespaces,
    pub drain: Drain,
    /// Connections of the client-facing listener (cut one by one during a drain).
    pub conns: Arc<ConnRegistry>,
    /// Extra readiness conditions (e.g. "Redis connected"), checked by `/readyz`.
    pub ready_checks: Vec<Arc<dyn ReadyCheck>>,
    /// Readiness changes, logged once each.
    pub ready_log: crate::health::ReadyLog,
    /// The socket.io-client bundle for the chat page, if one was found on disk.
    pub client_js: Option<Bytes>,
    /// Connect-time authentication and the upstream sink (built by `server::serve` first:
    /// they read key files, connect to Redis).
    pub auth: crate::auth::Authenticator,
    pub upstream: crate::upstream::Sink,
    /// Pre-rendered sticky-session headers, added to every handshake response.
    pub sticky: crate::sticky::Sticky,
    /// The secret keys polling sessions present as `sid` (see [`crate::session_key`]).
    pub session_keys: crate::session_key::SessionKeys,
    /// Polling requests that ride through a dying forwarder (see [`crate::polling`]).
    pub polling: crate::polling::PollingSessions,
    /// What the cluster answers (room sync, presence); [`crate::cluster_view::SingleNode`]
    /// without `--redis`.
    pub cluster: Arc<dyn ClusterView>,
}

impl Gateway {
    /// The services the composition root (`server::serve`) built, put together once.
    pub fn new(config: Config, services: Services) -> Gateway {
        let Services {
            ready_checks,
            auth,
            upstream,
            cluster,
        } = services;
        let metrics = Arc::new(Metrics::new(&config.node_id));
        let client_js = chat::load_client_js(config.client_js.as_deref());
        Gateway {
            sticky: crate::sticky::Sticky::new(&config),
            session_keys: crate::session_key::SessionKeys::new(
                config.ping_interval + config.ping_timeout,
            ),
            polling: Default::default(),
            cluster,
            conn_limit: ConnectionLimit::new(config.max_connections),
            namespaces: crate::namespaces::Namespaces::new(
                &config.namespace,
                config.max_namespaces,
            ),
            drain: Drain::default(),
            conns: Arc::new(ConnRegistry::default()),
            config: Arc::new(config),
            metrics,
            ready_checks,
            ready_log: Default::default(),
            client_js,
            auth,
            upstream,
        }
    }

    /// Wait until the adapter is subscribed to the rooms local sockets are in (no-op on a
    /// single node: the in-memory adapter needs no subscription).
    pub async fn sync_rooms(&self, nsp: &str) {
        self.cluster.sync_rooms(nsp.to_owned()).await;
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

impl<A: Adapter> axum::extract::FromRef<AppState<A>> for crate::metrics::MetricsState<A> {
    fn from_ref(st: &AppState<A>) -> Self {
        crate::metrics::MetricsState {
            metrics: st.gw.metrics.clone(),
            io: st.io.clone(),
            config: st.gw.config.clone(),
        }
    }
}
