//! The HTTP API for backends, under `/api/v1`, protected by API keys ([`keys`]).
//!
//! Everything goes through socketioxide's `SocketIo` broadcast operators ([`ops`]), so with
//! the Redis adapter an emit, a socketsJoin or a fetchSockets is cluster-wide exactly like one
//! made from a Node.js socket.io server. Errors are JSON `{"error": "..."}` with a 4xx status
//! for a bad request and 503 when the adapter could not take the operation (never a silent
//! 200). The OpenAPI document ([`openapi`]) describes these handlers and is checked against
//! them by the schemathesis test.
pub mod history;
pub mod keys;
pub mod openapi;
pub mod ops;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Query, Request},
    http::{StatusCode, request::Parts},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::de::DeserializeOwned;
use serde_json::json;
use socketioxide::adapter::Adapter;

use crate::state::{AppState, Gateway};

/// An API error: a status and a message, rendered as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    /// The adapter (Redis) could not take the operation.
    pub fn unavailable(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("adapter unavailable, operation not performed: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// `Json<T>` whose rejections (bad JSON, wrong content type, body over the limit, not an
/// object, missing field) are JSON [`ApiError`]s with axum's status and explanation.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let v = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(v)) => v,
            Err(r) => return Err(ApiError::new(r.status(), r.body_text())),
        };
        // serde would also accept a struct written as an array; the API takes objects only.
        if !v.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "request body must be a JSON object",
            ));
        }
        serde_json::from_value(v).map(Body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid request body: {e}"),
            )
        })
    }
}

/// `Query<T>` with JSON rejections.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(r) => Err(ApiError::new(StatusCode::BAD_REQUEST, r.body_text())),
        }
    }
}

/// The `/api/v1` router (to be nested at that path). Request bodies are capped at
/// `--max-payload`; the whole router answers 404 when no API key is configured.
pub fn router<A: Adapter>(gw: &Arc<Gateway>) -> Router<AppState<A>> {
    let limit = usize::try_from(gw.config.max_payload).unwrap_or(usize::MAX);
    Router::new()
        .route("/emit", post(ops::emit::<A>))
        .route("/sockets/join", post(ops::join::<A>))
        .route("/sockets/leave", post(ops::leave::<A>))
        .route("/sockets/disconnect", post(ops::disconnect::<A>))
        .route("/sockets", get(ops::sockets::<A>))
        .route("/rooms", get(ops::rooms_list::<A>))
        .route("/rooms/{room}/history", get(history::read::<A>))
        .route_layer(middleware::from_fn_with_state(
            gw.config.clone(),
            keys::require_api_key,
        ))
        // The document describes the API; it holds no secret and schema tools fetch it
        // before they know about auth. It still vanishes with the API (no key → 404).
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API endpoint") })
        .layer(DefaultBodyLimit::max(limit))
}
