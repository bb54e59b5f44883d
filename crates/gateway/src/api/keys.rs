//! API-key check for the HTTP API (`/api/v1/...`).
//!
//! Keys come from `--api-key` (several may be configured so they can be rotated: add the new
//! one, move the backends over, remove the old one). A request must carry
//! `Authorization: Bearer <key>`. Every configured key is compared in constant time
//! (`subtle`) and all of them are always compared, so neither the position of a matching key
//! nor the length of a matching prefix shows in the timing. With no key configured the API
//! does not exist: 404, the same as any unknown path.
//!
//! Use it on any router that must be protected (the cluster info endpoint reuses it):
//! ```ignore
//! router.route_layer(axum::middleware::from_fn_with_state(gw.clone(), api::keys::require_api_key))
//! ```
use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::config::Config;

/// Outcome of checking a request's credentials against the configured keys.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// No key configured: the API is disabled.
    Disabled,
    Missing,
    Wrong,
    Ok,
}

/// Check `headers` against `keys` (constant time per key, every key compared).
pub fn check(keys: &[String], headers: &HeaderMap) -> KeyCheck {
    if keys.is_empty() {
        return KeyCheck::Disabled;
    }
    let Some(given) = crate::auth::bearer(headers) else {
        return KeyCheck::Missing;
    };
    let mut found = subtle::Choice::from(0u8);
    for k in keys {
        found |= k.as_bytes().ct_eq(given.as_bytes());
    }
    if bool::from(found) {
        KeyCheck::Ok
    } else {
        KeyCheck::Wrong
    }
}

/// axum middleware: let the request through only with a valid API key.
pub async fn require_api_key(
    State(config): State<Arc<Config>>,
    req: Request,
    next: Next,
) -> Response {
    let unauthorized = |msg: &str| {
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, msg).into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"sio-gateway\""),
        );
        r
    };
    match check(&config.api_key, req.headers()) {
        KeyCheck::Ok => next.run(req).await,
        KeyCheck::Disabled => ApiError::new(
            StatusCode::NOT_FOUND,
            "HTTP API disabled: no --api-key configured",
        )
        .into_response(),
        KeyCheck::Missing => unauthorized("missing API key: send `Authorization: Bearer <key>`"),
        KeyCheck::Wrong => unauthorized("invalid API key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::AUTHORIZATION, v.parse().unwrap());
        m
    }

    #[test]
    fn keys() {
        let keys = vec!["old-key-123".to_owned(), "new-key-456".to_owned()];
        assert_eq!(check(&[], &h("Bearer x")), KeyCheck::Disabled);
        assert_eq!(check(&keys, &HeaderMap::new()), KeyCheck::Missing);
        assert_eq!(check(&keys, &h("Basic old-key-123")), KeyCheck::Missing);
        assert_eq!(check(&keys, &h("Bearer old-key-12")), KeyCheck::Wrong);
        assert_eq!(check(&keys, &h("Bearer old-key-1234")), KeyCheck::Wrong);
        assert_eq!(check(&keys, &h("Bearer old-key-123")), KeyCheck::Ok);
        assert_eq!(check(&keys, &h("bearer new-key-456")), KeyCheck::Ok);
    }
}
