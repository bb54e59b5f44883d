//! Connect-time authentication (`--auth none|jwt|webhook`).
//!
//! [`authenticate`] is a socketioxide connect middleware, run after `relay::admit`. It reads
//! the handshake (Socket.IO `auth` payload, headers, query, remote address), asks the
//! configured [`Authenticator`] for an [`Identity`], and stores it in the socket's extensions;
//! the relay then joins the socket to `user:<sub>` and the identity's rooms, and checks room
//! rules with the identity's extra grants, and cuts the session when the credentials expire
//! ([`expiry`]). A refusal is an `Err` whose text socketioxide sends
//! to the client as its `connect_error` message, and is counted in
//! `auth_failures_total{reason}`.
pub mod expiry;
pub mod jwt;
pub mod webhook;

use std::{net::SocketAddr, sync::Arc};

use axum::extract::ConnectInfo;
use serde_json::Value;
use socketioxide::{
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
};

use crate::{
    config::{AuthMode, Config},
    listener::ConnInfo,
    metrics::Metrics,
    namespaces::Namespaces,
    rules::{Pattern, RuleSet},
};

/// Every authenticated socket joins `user:<sub>`, so a backend reaches all of a user's
/// devices (on every node) with one room.
/// Room rules treat these rooms as personal (see `rules`).
pub const USER_ROOM_PREFIX: &str = crate::rules::PERSONAL_PREFIX;

/// Who a socket is, and what its credentials grant beyond the configured room rules.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The subject (`sub` claim, webhook `user`); `{sub}` in room rules.
    pub sub: Option<String>,
    /// Rooms joined on connect (besides `user:<sub>`).
    pub rooms: Vec<String>,
    /// Free-form data from the webhook (shown by `GET /api/v1/sockets`).
    pub data: Value,
    /// Extra join / publish grants (globs with `{sub}`); empty grants nothing.
    pub can_join: RuleSet,
    pub can_publish: RuleSet,
    /// When the credentials stop being valid, seconds since the Unix epoch (a JWT's `exp` plus
    /// `--jwt-leeway`, an auth webhook answer's `exp`); the session is cut then
    /// ([`expiry`], `--auth-expiry close`).
    pub expires_at: Option<u64>,
}

impl Identity {
    /// Rooms to join on connect: `user:<sub>` first, then the granted ones.
    pub fn connect_rooms(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.rooms.len() + 1);
        if let Some(sub) = &self.sub {
            v.push(format!("{USER_ROOM_PREFIX}{sub}"));
        }
        v.extend(self.rooms.iter().cloned());
        v
    }
}

/// Why a connection was refused; the text is the client's `connect_error` message.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "authentication required: no token (give auth.token, an Authorization: Bearer header or a token query parameter)"
    )]
    MissingToken,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("authentication service unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// Label of `auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::Refused(_) => "webhook_refused",
            AuthError::Unavailable(_) => "webhook_error",
        }
    }
}

/// What the authenticators see of a namespace connection.
pub struct Handshake<'a> {
    pub nsp: &'a str,
    /// The Socket.IO `auth` payload (`null` when the client sent none).
    pub auth: &'a Value,
    pub headers: &'a axum::http::HeaderMap,
    pub query: Option<&'a str>,
    pub remote: Option<SocketAddr>,
}

impl Handshake<'_> {
    /// The bearer token: `auth.token`, else `Authorization: Bearer`, else `?token=`.
    pub fn token(&self) -> Option<String> {
        if let Some(t) = self.auth.get("token").and_then(Value::as_str) {
            return Some(t.to_owned());
        }
        if let Some(t) = bearer(self.headers) {
            return Some(t.to_owned());
        }
        let q = self.query?;
        form_urlencoded_get(q, "token")
    }
}

/// Value of `key` in a query string, percent-decoded.
fn form_urlencoded_get(q: &str, key: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(c) => {
                        out.push(c);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse a list of glob strings from a claim / webhook field; invalid globs are skipped
/// (logged): a bad grant must not widen anything.
pub fn grants(v: Option<&Value>) -> RuleSet {
    let pats = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|s| match Pattern::parse(s) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::debug!(glob = s, error = %e, "ignoring invalid room rule grant");
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    RuleSet::new(pats)
}

/// A list of room names from a claim / webhook field (non-strings and bad names skipped).
pub fn room_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= 256)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The configured authentication.
pub enum Authenticator {
    None,
    Jwt(jwt::JwtAuth),
    Webhook(webhook::WebhookAuth),
}

impl Authenticator {
    /// Request headers this authenticator reads from a socket's request parts (after the
    /// Engine.IO handshake, at every namespace connect). `request_head` drops the others
    /// from the head a session keeps, so they must all be listed here.
    pub fn headers_read(&self) -> &'static [&'static str] {
        match self {
            Authenticator::None => &[],
            // `Handshake::token` reads `Authorization: Bearer`.
            Authenticator::Jwt(_) => &["authorization"],
            Authenticator::Webhook(_) => webhook::FORWARDED_HEADERS,
        }
    }

    /// Build from the configuration: reads key files, starts the JWKS watcher.
    pub fn from_config(config: &Config) -> anyhow::Result<Authenticator> {
        Ok(match config.auth.mode {
            AuthMode::None => Authenticator::None,
            AuthMode::Jwt => Authenticator::Jwt(jwt::JwtAuth::from_config(&config.auth)?),
            AuthMode::Webhook => Authenticator::Webhook(webhook::WebhookAuth::from_config(
                &config.auth,
                config.webhook_ca_file.as_deref(),
            )?),
        })
    }

    pub async fn check(&self, h: &Handshake<'_>) -> Result<Option<Identity>, AuthError> {
        match self {
            Authenticator::None => Ok(None),
            Authenticator::Jwt(j) => j.check(h).map(Some),
            Authenticator::Webhook(w) => w.check(h).await.map(Some),
        }
    }
}

/// Connect middleware: authenticate the namespace connection, store its [`Identity`].
pub async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    io: socketioxide::SocketIo<A>,
    State(authenticator): State<Arc<Authenticator>>,
    State(metrics): State<Arc<Metrics>>,
    State(namespaces): State<Arc<Namespaces>>,
    TryData(auth): TryData<Value>,
) -> Result<(), AuthError> {
    if matches!(*authenticator, Authenticator::None) {
        return Ok(());
    }
    let auth = auth.unwrap_or(Value::Null);
    let parts = s.req_parts();
    let h = Handshake {
        nsp: s.ns(),
        auth: &auth,
        headers: &parts.headers,
        query: parts.uri.query(),
        remote: parts
            .extensions
            .get::<ConnectInfo<ConnInfo>>()
            .map(|c| c.0.remote),
    };
    match authenticator.check(&h).await {
        Ok(Some(id)) => {
            s.extensions.insert(Arc::new(id));
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            metrics
                .auth_failures_total
                .with_label_values(&[e.reason()])
                .inc();
            tracing::debug!(sid = %s.id, ns = s.ns(), error = %e, "auth refused");
            // A refused connection leaves no namespace behind (see `namespaces`).
            namespaces.release(&io, s.ns());
            Err(e)
        }
    }
}

/// After connect: join `user:<sub>` and the identity's rooms. Returns the identity.
pub fn on_connected<A: Adapter>(s: &SocketRef<A>) -> Option<Arc<Identity>> {
    let id = s.extensions.get::<Arc<Identity>>()?;
    let rooms = id.connect_rooms();
    if !rooms.is_empty() {
        s.join(rooms);
    }
    Some(id)
}

/// The bearer token of an `Authorization` header, if it has that form (client tokens here,
/// API keys in `api::keys`).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_token() {
        assert_eq!(
            form_urlencoded_get("EIO=4&token=a%2Eb.c+d&x=1", "token").as_deref(),
            Some("a.b.c d")
        );
        assert_eq!(form_urlencoded_get("EIO=4", "token"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn connect_rooms() {
        let id = Identity {
            sub: Some("42".into()),
            rooms: vec!["team:a".into()],
            ..Default::default()
        };
        assert_eq!(id.connect_rooms(), vec!["user:42", "team:a"]);
    }
}
