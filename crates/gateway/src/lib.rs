//! sio-gateway: a horizontally scalable Socket.IO gateway on socketioxide + axum.
//!
//! Module map:
//! * [`config`]: every option (flags, env, TOML), validation, defaults.
//! * [`server`]: socketioxide layer, axum router, tower layers, listeners, signals; generic
//!   over the adapter ([`adapter::GatewayAdapter`]).
//! * [`relay`]: what clients may do (join/leave/publish, upstream events), per connection.
//! * [`rules`]: room glob rules with `{sub}`.
//! * [`limits`]: event-rate token bucket, connection cap; [`origin`]: websocket origin check.
//! * [`namespaces`]: pattern namespaces bounded and removed when empty.
//! * [`ack`]: client acks that wait for room instead of being dropped.
//! * [`metrics`], [`health`]: Prometheus metrics, `/healthz`, `/readyz`.
//! * [`drain`]: graceful drain at the transport level; [`listener`]: cuttable TCP connections.
//! * [`cluster`]: `--redis` mode: Redis adapter, node registry, polling forwarding.
//! * [`auth`]: connect-time authentication (JWT, webhook); [`upstream`]: where other client
//!   events go (Redis Stream, webhook); [`api`]: the HTTP API for backends (`/api/v1`);
//!   [`webhook_client`]: the HTTP(S) client both webhooks use; [`pysio`]: obey
//!   python-socketio's Redis manager (`--pysio-channel`).
//! * [`sticky`]: the sticky-session cookie on handshakes; [`request_head`]: trim a
//!   session's kept request head and detach it from hyper's read buffer.
//! * [`session_key`]: the secret key a polling session presents as `sid`, apart from its
//!   public socket id; [`engine_io`]: the shape of Engine.IO requests and error bodies.
//! * [`history`]: room history (`--history`): offsets, epochs, recovery on `join {room, since}`.
//! * [`chat`]: the demo page; [`logging`]: tracing set-up; [`state`]: shared state.
pub mod ack;
pub mod adapter;
pub mod admin;
pub mod api;
pub mod args;
pub mod auth;
pub mod chat;
pub mod cluster;
pub mod cluster_view;
pub mod config;
pub mod drain;
pub mod engine_io;
pub mod engine_sessions;
pub mod event_rate;
pub mod health;
pub mod heap;
pub mod history;
pub mod hook;
pub mod id_hash;
pub mod installed;
pub mod limits;
pub mod listener;
pub mod local_adapter;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod namespaces;
pub mod origin;
pub mod pending_sessions;
pub mod per_session;
pub mod polling;
pub mod polling_body;
pub mod pysio;
pub mod redis_client;
pub mod relay;
pub mod request_head;
pub mod rules;
pub mod server;
pub mod session_key;
pub mod state;
pub mod sticky;
pub mod upstream;
pub mod warn_limit;
pub mod webhook_client;

/// Run one gateway node with the adapter the configuration asks for.
pub async fn run(config: config::Config) -> anyhow::Result<()> {
    if let Some(url) = config.redis.clone() {
        let cluster = cluster::Cluster::connect(&config, &url).await?;
        let checks = cluster.ready_checks(config.readiness);
        let state = cluster.adapter_state();
        return server::serve::<cluster::ClusterAdapter>(config, state, checks, Some(cluster))
            .await;
    }
    server::serve::<local_adapter::WatchedLocalAdapter>(
        config,
        local_adapter::LocalState::default(),
        Vec::new(),
        None,
    )
    .await
}
