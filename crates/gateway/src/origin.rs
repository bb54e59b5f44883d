//! Which browser origins may open a websocket, and CORS answers that grant nothing to others.
//!
//! Browsers do not apply CORS to websockets: any page may open one to any host, sending the
//! host's cookies along. With cookie-based auth (the auth webhook sees the handshake's cookies)
//! that lets any site open an authenticated socket as its visitor. So every websocket upgrade
//! of `/socket.io/` that carries an `Origin` header is checked here:
//! * `--cors-origin '*'`: any origin;
//! * `--cors-origin` with a list: the origin must be one of them (exact, as CORS compares);
//! * no `--cors-origin` (the default, "same origin only"): the origin's host and port must be
//!   the request's `Host`.
//!
//! A refused upgrade gets `403 {"code":4,"message":"origin not allowed"}` (Engine.IO's
//! "Forbidden") and counts in `connections_refused_total{reason="origin"}`. Requests without an
//! `Origin` (non-browser clients) are not browsers' cross-site requests and pass. Polling needs
//! no check: browsers apply CORS to it, and a session's requests need its secret key.
//!
//! [`StripCredentials`]: tower-http's CORS layer sends `Access-Control-Allow-Credentials: true`
//! even when it grants the origin nothing; the header is removed from such answers.
use std::sync::Arc;

use axum::{
    extract::Request,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    hook::{Finish, Hook, Step},
    metrics::Metrics,
};

/// The origin rule, built once from `--cors-origin`.
#[derive(Debug, Clone)]
pub enum OriginPolicy {
    Any,
    List(Vec<String>),
    SameOrigin,
}

impl OriginPolicy {
    pub fn from_config(origins: &[String]) -> OriginPolicy {
        if origins.iter().any(|o| o == "*") {
            OriginPolicy::Any
        } else if origins.is_empty() {
            OriginPolicy::SameOrigin
        } else {
            OriginPolicy::List(
                origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_owned())
                    .collect(),
            )
        }
    }

    /// May a page of `origin` open a websocket to a request with these headers?
    pub fn allows(&self, origin: &str, headers: &HeaderMap) -> bool {
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => list.iter().any(|o| o == origin),
            OriginPolicy::SameOrigin => headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .zip(origin_authority(origin))
                .is_some_and(|(host, (auth, default_port))| {
                    strip_port(host, default_port).eq_ignore_ascii_case(auth)
                }),
        }
    }
}

/// `https://example.com:8443` → (`example.com:8443`, `:443`); the default port of the scheme is
/// dropped from the authority so `https://example.com` and `Host: example.com:443` agree.
fn origin_authority(origin: &str) -> Option<(&str, &'static str)> {
    let (scheme, rest) = origin.split_once("://")?;
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let auth = rest.trim_end_matches('/');
    if auth.is_empty() || auth.contains(['/', '@', '?', '#']) {
        return None;
    }
    Some((strip_port(auth, default_port), default_port))
}

fn strip_port<'a>(authority: &'a str, default_port: &str) -> &'a str {
    authority.strip_suffix(default_port).unwrap_or(authority)
}

fn is_ws_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The websocket origin check (a [`Hook`]): the policy, and whether signed forwards between
/// nodes skip it.
#[derive(Clone)]
pub struct Guard {
    pub metrics: Arc<Metrics>,
    pub policy: Arc<OriginPolicy>,
    /// Cluster mode: a request with the forwarding signature was checked by the node the client
    /// reached (which rewrote `Host`); the cluster middleware verifies the signature and refuses
    /// a forged one with 403.
    pub skip_signed_forwards: bool,
}

/// Outermost on the client-facing service (before any forwarding).
impl Hook for Guard {
    type Carry = ();
    const AFTER: bool = false;

    fn before(&self, req: &mut Request) -> Step<()> {
        // The outermost layer: reads the request's Engine.IO shape once for all the others.
        if !crate::engine_io::Shape::stash(req).engine_io || !is_ws_upgrade(req) {
            return Step::Continue(());
        }
        // Without an `Origin` it passes, forwarded or not: looked at first.
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Step::Continue(());
        };
        if self.skip_signed_forwards
            && req
                .headers()
                .contains_key(crate::cluster::forward::AUTH_HEADER)
        {
            return Step::Continue(());
        }
        let allowed = origin
            .to_str()
            .is_ok_and(|o| self.policy.allows(o, req.headers()));
        if allowed {
            return Step::Continue(());
        }
        self.metrics
            .connections_refused_total
            .with_label_values(&["origin"])
            .inc();
        tracing::debug!(origin = ?origin, "websocket upgrade from a foreign origin refused");
        Step::Answer(
            (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"code": 4, "message": "origin not allowed"})),
            )
                .into_response(),
        )
    }
}

/// Just outside the CORS layer: no `Allow-Credentials` without `Allow-Origin`.
#[derive(Clone)]
pub struct StripCredentials;

impl Hook for StripCredentials {
    type Carry = ();

    fn before(&self, _req: &mut Request) -> Step<()> {
        Step::Continue(())
    }

    fn after(&self, (): (), mut resp: Response) -> Finish {
        let h = resp.headers_mut();
        if !h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            h.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        }
        Finish::Done(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(h) {
            m.insert(header::HOST, v);
        }
        m
    }

    #[test]
    fn same_origin() {
        let p = OriginPolicy::from_config(&[]);
        assert!(p.allows("http://localhost:3000", &host("localhost:3000")));
        assert!(p.allows("https://chat.example", &host("chat.example")));
        assert!(p.allows("https://chat.example", &host("chat.example:443")));
        assert!(p.allows("http://Chat.Example", &host("chat.example")));
        assert!(!p.allows("https://evil.example", &host("chat.example")));
        assert!(!p.allows("http://localhost:3001", &host("localhost:3000")));
        assert!(!p.allows("null", &host("localhost:3000")));
        assert!(!p.allows("http://localhost:3000", &HeaderMap::new()));
        assert!(!p.allows("http://a@localhost:3000", &host("localhost:3000")));
    }

    #[test]
    fn listed_and_any() {
        let p = OriginPolicy::from_config(&["https://app.example/".into()]);
        assert!(p.allows("https://app.example", &host("gw.internal")));
        assert!(!p.allows("https://evil.example", &host("gw.internal")));
        assert!(!p.allows("https://app.example.evil", &host("gw.internal")));
        let any = OriginPolicy::from_config(&["*".into()]);
        assert!(any.allows("https://evil.example", &host("gw")));
    }
}
