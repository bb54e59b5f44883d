//! `GET /api/v1/cluster`: the live nodes of the registry, for operators and tooling.
//!
//! Protected like the rest of the HTTP API, by the same middleware
//! ([`crate::api::keys::require_api_key`]: `Authorization: Bearer <key>`, constant-time compare;
//! without `--api-key` the API is disabled, 404). Added to the router by [`Cluster::api_routes`].
use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::Cluster;

/// The registry's nodes, and this node's view of Redis (`redis`: whether it is reachable and
/// whether the adapter's subscriber receives), also when the registry cannot be read.
pub async fn cluster(State(c): State<Arc<Cluster>>) -> Response {
    let h = c.handle.health();
    let redis = json!({
        "up": h.redis_up && c.handle.redis_up(),
        "subscriber_alive": h.subscriber_alive,
    });
    match c.registry.list().await {
        Ok(nodes) => Json(json!({
            "node_id": c.node_id,
            "nodes": nodes,
            "redis": redis,
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": format!("node registry unavailable: {e}"),
                "node_id": c.node_id,
                "redis": redis,
            })),
        )
            .into_response(),
    }
}
