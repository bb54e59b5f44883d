//! sio-gateway: a horizontally scalable Socket.IO gateway on socketioxide + axum.
//!
//! Module map:
//! * [`config`]: every option (flags, env, TOML), validation, defaults.
//! * [`server`]: socketioxide layer, axum router, tower layers, listeners, signals; generic
//!   over the adapter ([`adapter::GatewayAdapter`]).
//! * [`relay`]: what clients may do (join/leave/publish, upstream events), per connection.
//! * [`rules`]: room glob rules with `{sub}`.
//! * [`limits`]: event-rate token bucket, connection cap.
//! * [`metrics`], [`health`]: Prometheus metrics, `/healthz`, `/readyz`.
//! * [`drain`]: graceful drain at the transport level; [`listener`]: cuttable TCP connections.
//! * [`chat`]: the demo page; [`logging`]: tracing set-up; [`state`]: shared state.
pub mod adapter;
pub mod chat;
pub mod config;
pub mod drain;
pub mod health;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod relay;
pub mod rules;
pub mod server;
pub mod state;

use socketioxide::adapter::LocalAdapter;

/// Run one gateway node with the adapter the configuration asks for.
pub async fn run(config: config::Config) -> anyhow::Result<()> {
    if let Some(url) = &config.redis {
        anyhow::bail!(
            "Redis adapter not available in this build (--redis {url} given); \
             run without --redis for a single in-memory node"
        );
    }
    server::serve::<LocalAdapter>(config, (), Vec::new()).await
}
