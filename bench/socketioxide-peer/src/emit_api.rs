//! `POST /api/v1/emit {nsp, rooms, except, event, data}`: a backend's broadcast, as sio-bench's
//! `--origin http` sends it (crates/bench/src/origin.rs; bench/node-server.mjs answers the same).
//! With `--api-key K` the request must carry `Authorization: Bearer K`; without, any is accepted.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;

/// The request body.
#[derive(Debug, Deserialize)]
pub struct EmitRequest {
    #[serde(default = "root")]
    nsp: String,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    event: String,
    #[serde(default)]
    data: Value,
}

fn root() -> String {
    "/".to_owned()
}

/// What the handler needs: the Socket.IO handle and the expected bearer token, if any.
pub struct EmitApi<A: Adapter> {
    pub io: SocketIo<A>,
    pub api_key: Option<String>,
}

/// The handler.
pub async fn emit<A: Adapter>(
    State(api): State<Arc<EmitApi<A>>>,
    headers: HeaderMap,
    Json(m): Json<EmitRequest>,
) -> (StatusCode, Json<Value>) {
    if let Some(key) = &api.api_key {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "bad api key" })),
            );
        }
    }
    let Some(op) = api.io.of(&m.nsp) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "unknown namespace" })),
        );
    };
    match op
        .to(m.rooms)
        .except(m.except)
        .emit(&m.event, &m.data)
        .await
    {
        Ok(()) => (StatusCode::OK, Json(json!({ "ok": true }))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}
