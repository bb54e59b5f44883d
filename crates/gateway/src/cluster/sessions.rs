//! Which Engine.IO sessions live on this node, and the `/socket.io/` layer ([`Routing`]) that sends
//! requests for sessions of other nodes to their owner.
//!
//! A long-polling client makes one HTTP request per poll and per send; behind a round-robin
//! balancer they land on any node. Engine.IO alone answers "Session ID unknown" (HTTP 400)
//! on every node but the one holding the session. Here:
//! 1. The polling handshake (`GET ?transport=polling` without `sid`) is answered locally; its
//!    response carries the new sid (`0{"sid":...}`), which is remembered in [`Sessions`] and
//!    recorded in Redis as `sid -> this node` before the response leaves, so a follow-up
//!    request can never overtake the record. This layer runs outside
//!    [`crate::session_key`]: that sid is the session's secret key, not its socket id (the
//!    Redis record is named by the key's digest, see [`super::registry`]; logs show its
//!    [`fingerprint`]).
//! 2. A request with a `sid` this node does not hold is forwarded to the owner: the Redis
//!    record names it; when Redis has no record (or cannot be asked), the sticky cookie does.
//!    The record comes first because a browser's one cookie is shared by all its tabs: the
//!    cookie names the node of the *latest* handshake, not necessarily this session's.
//! 3. Without an owner (or when the owner is this node) the request goes to the local engine,
//!    which answers as Engine.IO does for an unknown session.
//!
//! Local lookups cost one mutex-protected hash lookup per polling request (never on the
//! broadcast path). The map is pruned by [`Sessions::sweep`]: a session is dropped once no
//! namespace has a socket with its id and its grace period (time to connect a namespace) is over.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    Cluster,
    forward::{AUTH_HEADER, FORWARDED_HEADER, ForwardError},
};
use crate::{
    engine_io::{self, session_unknown},
    hook::{Hook, Next, Step},
    listener::ConnInfo,
    session_key::fingerprint,
    warn_limit::WarnLimit,
};

/// Largest handshake response body read to learn the sid (a real one is ~120 bytes).
const MAX_HANDSHAKE_BODY: usize = 64 * 1024;

pub struct Sessions {
    // Locked once per polling request / handshake and once per sweep; not per message.
    local: Mutex<HashMap<String, Instant>>,
    /// Owners of other nodes' sessions already looked up (sid -> node id, when): a session
    /// never changes owner, so a round-robin client costs one Redis GET, not one per poll.
    remote: Mutex<HashMap<String, (String, Instant)>>,
    grace: Duration,
}

/// How long a looked-up owner is reused (also bounds the cache: pruned by `sweep`).
const REMOTE_TTL: Duration = Duration::from_secs(60);

impl Sessions {
    pub fn new(grace: Duration) -> Sessions {
        Sessions {
            local: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            grace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, sid: &str) {
        self.lock().insert(sid.to_owned(), Instant::now());
    }

    /// The cached owner of another node's session.
    pub fn owner(&self, sid: &str) -> Option<String> {
        let map = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        map.get(sid)
            .filter(|(_, at)| at.elapsed() < REMOTE_TTL)
            .map(|(n, _)| n.clone())
    }

    pub fn remember_owner(&self, sid: &str, node: &str) {
        self.remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid.to_owned(), (node.to_owned(), Instant::now()));
    }

    pub fn contains(&self, sid: &str) -> bool {
        self.lock().contains_key(sid)
    }

    /// Split the remembered sessions into (still alive, ended); ended ones are forgotten.
    /// `alive(sid)` tells whether a namespace socket with that id exists.
    pub fn sweep(&self, alive: impl Fn(&str) -> bool) -> (Vec<String>, Vec<String>) {
        let now = Instant::now();
        self.remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (_, at)| now.duration_since(*at) < REMOTE_TTL);
        let sids: Vec<(String, Instant)> =
            self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
        let (mut live, mut ended) = (Vec::new(), Vec::new());
        for (sid, since) in sids {
            if alive(&sid) || now.duration_since(since) < self.grace {
                live.push(sid);
            } else {
                ended.push(sid);
            }
        }
        if !ended.is_empty() {
            let mut map = self.lock();
            for sid in &ended {
                map.remove(sid);
            }
        }
        (live, ended)
    }
}

fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The sid in an Engine.IO v4 polling handshake body: `0{"sid":"...",...}` (possibly followed
/// by more packets separated by 0x1e).
fn handshake_sid(body: &[u8]) -> Option<String> {
    let first = body.split(|b| *b == 0x1e).next()?;
    let json = first.strip_prefix(b"0")?;
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    v.get("sid")?.as_str().map(str::to_owned)
}

/// An Engine.IO v4 polling payload holding one NOOP packet.
fn noop_response() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        "6",
    )
        .into_response()
}

/// The `/socket.io/` routing of the module doc, on the client-facing service (a [`Hook`]).
/// The paths that wait on Redis or a peer (a polling handshake's record, a forward) are
/// detours, boxed: fred's futures are large (~14 KB), and most requests never reach them.
#[derive(Clone)]
pub struct Routing(pub Arc<Cluster>);

impl Hook for Routing {
    type Carry = ();
    const AFTER: bool = false;

    fn before(&self, req: &mut Request) -> Step<()> {
        let c = &self.0;
        let shape = engine_io::Shape::of(req);
        if !shape.engine_io {
            return Step::Continue(());
        }
        if req.headers().contains_key(FORWARDED_HEADER) || req.headers().contains_key(AUTH_HEADER) {
            return from_peer(c, req);
        }
        let sid = if shape.has_sid {
            engine_io::session_sid(req)
        } else {
            None
        };
        match sid {
            None => {
                let polling =
                    req.method() == Method::GET && shape.transport == engine_io::Named::Polling;
                if !polling {
                    return Step::Continue(());
                }
                let c = c.clone();
                Step::Detour(Box::new(move |req, next| {
                    Box::pin(async move { polling_handshake(&c, req, next).await })
                }))
            }
            Some(sid) if c.sessions.contains(sid) => Step::Continue(()),
            Some(sid) => {
                let (c, sid) = (c.clone(), sid.to_owned());
                Step::Detour(Box::new(move |req, next| {
                    Box::pin(async move { elsewhere(&c, sid, req, next).await })
                }))
            }
        }
    }
}

/// A request claiming to come from a peer: verified, then served here whatever happens (a
/// forwarded request is never forwarded again).
fn from_peer(c: &Cluster, req: &Request) -> Step<()> {
    let verdict = match &c.forwarder {
        Some(f) => f.signer().verify(req.headers(), req.method(), req.uri()),
        None => Err(super::forward::AuthError::Disabled),
    };
    match verdict {
        Ok(()) => Step::Continue(()),
        Err(e) => {
            if let Some(m) = c.forward_metrics() {
                m.refused.inc();
            }
            let peer = req
                .extensions()
                .get::<ConnectInfo<ConnInfo>>()
                .map(|ci| ci.0.remote.to_string());
            // Anyone can send the header: one warning per interval, the rest counted only.
            static WARN: WarnLimit = WarnLimit::new(Duration::from_secs(10));
            if let Some(held_back) = WARN.allow() {
                tracing::warn!(node_id = %c.node_id, peer = ?peer, error = %e, held_back, "refused a request with an invalid forwarding header (each is counted in polling_forwards_total{{result=\"refused\"}}; warned at most every 10 s)");
            }
            Step::Answer(engine_io::error_response(
                StatusCode::FORBIDDEN,
                403,
                "invalid forwarding header",
            ))
        }
    }
}

/// A polling handshake: served here; the session is remembered and recorded in Redis.
async fn polling_handshake(c: &Cluster, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_HANDSHAKE_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read a handshake response");
            return (StatusCode::INTERNAL_SERVER_ERROR, "handshake failed").into_response();
        }
    };
    if let Some(sid) = handshake_sid(&bytes) {
        c.sessions.insert(&sid);
        // While Redis is down the write could only time out: skip it rather than delay the
        // handshake (the sticky cookie still names this node).
        if c.forwarder.is_some()
            && c.handle.redis_up()
            && let Err(e) = c.registry.set_sid(&sid).await
        {
            // The session still works through a sticky balancer or the cookie.
            tracing::debug!(node_id = %c.node_id, session = %fingerprint(&sid), error = %e, "cannot record the session owner");
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A request for a session this node does not hold.
async fn elsewhere(c: &Cluster, sid: String, req: Request, next: Next) -> Response {
    let Some(fwd) = &c.forwarder else {
        return next.run(req).await;
    };
    let Some(m) = c.forward_metrics() else {
        return next.run(req).await;
    };
    let recorded = if let Some(node) = c.sessions.owner(&sid) {
        Ok(Some(node))
    } else if c.handle.redis_up() {
        let r = c.registry.get_sid(&sid).await;
        if let Ok(Some(node)) = &r {
            c.sessions.remember_owner(&sid, node);
        }
        r
    } else {
        Ok(None)
    };
    let owner = match recorded {
        Ok(Some(node)) => Some(node),
        Ok(None) | Err(_) => cookie(&req, &c.cookie_name)
            .filter(|n| *n != c.node_id && c.node_url(n).is_some())
            .map(str::to_owned),
    };
    let owner = match owner {
        Some(o) if o != c.node_id => o,
        // No owner anywhere, or a record naming us for a session we no longer hold: the
        // local engine answers "Session ID unknown".
        _ => {
            m.no_owner.inc();
            return next.run(req).await;
        }
    };
    let Some(url) = c.resolve_node(&owner).await else {
        m.owner_down.inc();
        tracing::debug!(node_id = %c.node_id, session = %fingerprint(&sid), %owner, "session owner not in the registry");
        return session_unknown();
    };
    let client_ip = req
        .extensions()
        .get::<ConnectInfo<ConnInfo>>()
        .map(|ci| ci.0.remote.ip().to_string());
    let is_ws = engine_io::transport(req.uri().query().unwrap_or("")) == Some("websocket")
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let long_poll = !is_ws && req.method() == Method::GET;
    if long_poll && c.is_leaving() {
        // Draining: a poll passing through here could be cut when this node exits. Refuse it
        // before it starts; balancers retry a refused GET on another node (deploy/ configs
        // retry on 503), which forwards it to the owner.
        return engine_io::retry_later(StatusCode::SERVICE_UNAVAILABLE, "server is draining");
    }
    let res = if is_ws {
        fwd.websocket(req, &url, client_ip.as_deref()).await
    } else if long_poll {
        // A poll already passing through when the drain starts is released with a NOOP
        // packet (the client polls again, elsewhere). Dropping the forward closes its
        // connection to the owner, whose engine then drops the pending poll before taking
        // any packet from the session's queue.
        tokio::select! {
            r = fwd.http(req, &url, client_ip.as_deref()) => r,
            _ = c.left() => Ok(noop_response()),
        }
    } else {
        fwd.http(req, &url, client_ip.as_deref()).await
    };
    match res {
        Ok(resp) => {
            m.ok.inc();
            tracing::trace!(node_id = %c.node_id, session = %fingerprint(&sid), %owner, status = %resp.status(), "forwarded");
            resp
        }
        Err(e) => {
            match e {
                ForwardError::OwnerDown(_) => m.owner_down.inc(),
                ForwardError::Other(_) => m.error.inc(),
            }
            tracing::debug!(node_id = %c.node_id, session = %fingerprint(&sid), %owner, error = %e, "forward failed");
            session_unknown()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_from_handshake() {
        let body = br#"0{"sid":"AbC-12_x","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(handshake_sid(body).as_deref(), Some("AbC-12_x"));
        let mut two = body.to_vec();
        two.extend_from_slice(b"\x1e40{\"sid\":\"x\"}");
        assert_eq!(handshake_sid(&two).as_deref(), Some("AbC-12_x"));
        assert_eq!(handshake_sid(b"garbage"), None);
        assert_eq!(handshake_sid(b"0{}"), None);
    }

    #[test]
    fn sweep_keeps_young_and_live() {
        let s = Sessions::new(Duration::from_secs(60));
        s.insert("a");
        let (live, ended) = s.sweep(|_| false);
        assert_eq!((live.len(), ended.len()), (1, 0));
        let s = Sessions::new(Duration::ZERO);
        s.insert("a");
        s.insert("b");
        let (live, ended) = s.sweep(|sid| sid == "a");
        assert_eq!((live, ended), (vec!["a".to_owned()], vec!["b".to_owned()]));
        assert!(s.contains("a") && !s.contains("b"));
    }
}
