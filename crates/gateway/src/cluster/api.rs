//! `GET /api/v1/cluster`: the live nodes of the registry, for operators and tooling.
//!
//! Protected like the rest of the HTTP API, by the same middleware
//! ([`crate::api::keys::require_api_key`]: `Authorization: Bearer <key>`, constant-time compare;
//! without `--api-key` the API is disabled, 404). Added to the router by [`Cluster::wrap`].
use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::Cluster;

pub async fn cluster(State(c): State<Arc<Cluster>>) -> Response {
    match c.registry.list().await {
        Ok(nodes) => Json(json!({
            "node_id": c.node_id,
            "nodes": nodes,
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": format!("node registry unavailable: {e}")})),
        )
            .into_response(),
    }
}
