//! Session keys: the secret a long-polling client presents as `sid`, kept apart from its public
//! Socket.IO socket id.
//!
//! # Threat
//!
//! socketioxide gives a client's Socket.IO sockets the Engine.IO session id as `socket.id`: the
//! handshake `0{"sid":X}` and the CONNECT ack `40{"sid":X}` carry the same X. `socket.id` is
//! public by design: applications pass it around, the gateway lists it (`GET /api/v1/sockets`),
//! every socket sits in a room named after it. Engine.IO authenticates the requests of a session
//! (polling `GET`/`POST ?sid=`, the websocket upgrade `?transport=websocket&sid=`) by that sid
//! alone, so whoever learnt a polling client's `socket.id` could post packets as that client,
//! with its authenticated identity, or steal its polls. Node's engine.io (socket.io ≥ 3) keeps
//! the two ids apart; socketioxide cannot, so this layer does, in front of it.
//!
//! # Design
//!
//! * Handshake: the answer to a polling handshake (`0{"sid":X,...}`, possibly followed by more
//!   0x1e-separated packets) gets a fresh key K in place of X: 128 bits from the operating
//!   system's CSPRNG, 32 hex characters. [`SessionKeys`] remembers K -> X. The client learns X
//!   only as its socket id, in the CONNECT ack.
//! * Every later `/socket.io/` request that carries a `sid` must present a known K; its query is
//!   rewritten to `sid=X` before the drain guard and socketioxide see it. Anything else (a
//!   public socket id, a guess, an ended session, a bare, empty or repeated `sid`) is answered
//!   `400 {"code":1,"message":"Session ID unknown"}` without reaching the engine. Repeated
//!   `sid`s are refused because engineioxide reads the *first* `sid=` pair: one pair must never
//!   be checked while another one is used.
//! * Websocket-only sessions (handshake over websocket) never present a sid, so they need no
//!   key; the upgrade of a polling session presents K like its polls.
//! * engineioxide's own error bodies carry the code as a string (`{"code":"3",...}`); they are
//!   rebuilt with a numeric code by [`engine_io::error_response`], like every error body the
//!   gateway writes itself.
//!
//! Placement (see `server.rs`): inside the cluster middleware, which works with K (it records
//! `sid -> node` from the handshake body it sees and forwards polls by K), and outside the drain
//! guard and socketioxide, which work with X.
//!
//! Keys are held as SHA-256(K): a lookup's timing depends only on a digest of the presented
//! value. The same digest ([`digest_hex`]) names the cluster's Redis `sid -> node` record, so
//! reading Redis reveals no key; logs carry [`fingerprint`], a prefix of it.
//!
//! Cost: one short mutex-held lookup per request that carries a sid (polls, posts, the upgrade),
//! never held across an await; nothing on the message or broadcast path. Entries are created
//! only by successful polling handshakes; [`SessionKeys::sweep`] drops a key once no namespace
//! has a socket with its socket id and the key has not been presented for a grace period (ping
//! interval + ping timeout: a live polling session polls at least once per ping interval, and
//! by then Engine.IO has closed a silent one).
use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{OriginalUri, Request},
    http::{Method, StatusCode, Uri, header, uri::PathAndQuery},
    response::Response,
};
use ring::{
    digest,
    rand::{SecureRandom, SystemRandom},
};
use socketioxide::{SocketIo, adapter::Adapter, socket::Sid};

use crate::{
    engine_io,
    hook::{Finish, Hook, Step},
    polling::PollingSessions,
};

/// Random bytes in a key (128 bits).
const KEY_BYTES: usize = 16;
/// Largest handshake answer read to rewrite its sid (a real one is ~120 bytes).
const MAX_HANDSHAKE_BODY: usize = 64 * 1024;
/// Largest error answer read to rewrite its code (engineioxide's are ~50 bytes).
const MAX_ERROR_BODY: usize = 4 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionKeyError {
    #[error("no live session has this key")]
    Unknown,
    #[error("the query does not name exactly one session (bare, empty or repeated sid)")]
    Malformed,
    #[error("cannot rebuild the request URI")]
    Uri,
    #[error("the system random generator failed")]
    Random,
    #[error("not a handshake answer with a valid sid")]
    Handshake,
}

type Digest = [u8; 32];

fn digest(key: &str) -> Digest {
    let d = digest::digest(&digest::SHA256, key.as_bytes());
    Digest::try_from(d.as_ref()).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hex SHA-256 of a session key: what the cluster stores in Redis instead of the key.
pub fn digest_hex(key: &str) -> String {
    hex(&digest(key))
}

/// A short, non-secret name of a session key for logs (12 hex characters of its digest).
pub fn fingerprint(key: &str) -> String {
    let mut d = digest_hex(key);
    d.truncate(12);
    d
}

struct Entry {
    sid: Sid,
    /// Creation, then every time the key is presented.
    last_used: Instant,
}

/// Session key -> socket id of the live polling sessions of this node.
pub struct SessionKeys {
    map: Mutex<HashMap<Digest, Entry>>,
    rng: SystemRandom,
    grace: Duration,
}

impl SessionKeys {
    pub fn new(grace: Duration) -> SessionKeys {
        SessionKeys {
            map: Mutex::new(HashMap::new()),
            rng: SystemRandom::new(),
            grace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new key for the session whose socket id is `sid`.
    pub fn issue(&self, sid: Sid) -> Result<String, SessionKeyError> {
        let mut raw = [0u8; KEY_BYTES];
        self.rng
            .fill(&mut raw)
            .map_err(|_| SessionKeyError::Random)?;
        let key = hex(&raw);
        let entry = Entry {
            sid,
            last_used: Instant::now(),
        };
        self.lock().insert(digest(&key), entry);
        Ok(key)
    }

    /// The socket id of the session `key` opens, if it is live; marks the key as used.
    pub fn resolve(&self, key: &str) -> Option<Sid> {
        let d = digest(key);
        let mut map = self.lock();
        let e = map.get_mut(&d)?;
        e.last_used = Instant::now();
        Some(e.sid)
    }

    /// Is `key` the key of a session this node still knows?
    pub fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(&digest(key))
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Forget the keys of ended sessions: unused for the grace period and `alive(sid)` false
    /// (no namespace socket with that id). Returns how many were dropped. The lock is held
    /// to copy out the candidates and to remove the ended ones, not while `alive` runs.
    pub fn sweep(&self, alive: impl Fn(Sid) -> bool) -> usize {
        let now = Instant::now();
        let idle = |e: &Entry| now.saturating_duration_since(e.last_used) >= self.grace;
        let candidates: Vec<(Digest, Sid)> = self
            .lock()
            .iter()
            .filter(|(_, e)| idle(e))
            .map(|(d, e)| (*d, e.sid))
            .collect();
        let ended: Vec<Digest> = candidates
            .into_iter()
            .filter(|(_, sid)| !alive(*sid))
            .map(|(d, _)| d)
            .collect();
        if ended.is_empty() {
            return 0;
        }
        let mut map = self.lock();
        let mut dropped = 0;
        for d in ended {
            // Presented again meanwhile: still in use.
            if map.get(&d).is_some_and(idle) {
                map.remove(&d);
                dropped += 1;
            }
        }
        dropped
    }
}

/// The one `sid` value of a query: `Ok(None)` when it names no session (a handshake),
/// `Err(Malformed)` for a bare (`sid`), empty (`sid=`) or repeated one. A pair counts as a sid
/// for this layer's key (`sid`) and for engineioxide's (a `sid=` prefix), whichever is wider.
fn sid_param(query: &str) -> Result<Option<&str>, SessionKeyError> {
    let mut found = None;
    for pair in query.split('&') {
        let value = match pair.strip_prefix("sid") {
            Some("") => return Err(SessionKeyError::Malformed),
            Some(rest) => match rest.strip_prefix('=') {
                Some(v) => v,
                None => continue, // `sidx=...`: another key
            },
            None => continue,
        };
        if value.is_empty() || found.is_some() {
            return Err(SessionKeyError::Malformed);
        }
        found = Some(value);
    }
    Ok(found)
}

/// `query` with its (single) `sid` pair's value replaced by `sid`.
fn with_sid(query: &str, sid: Sid) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        if pair.starts_with("sid=") {
            let _ = write!(out, "sid={sid}");
        } else {
            out.push_str(pair);
        }
    }
    out
}

/// The URI the engine sees for a request presenting `key`: its `sid` is the socket id.
/// `Ok(None)` for a request that names no session.
fn translate(uri: &Uri, keys: &SessionKeys) -> Result<Option<(Uri, Sid)>, SessionKeyError> {
    let query = uri.query().unwrap_or("");
    let Some(key) = sid_param(query)? else {
        return Ok(None);
    };
    let sid = keys.resolve(key).ok_or(SessionKeyError::Unknown)?;
    let pq = format!("{}?{}", uri.path(), with_sid(query, sid));
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).map_err(|_| SessionKeyError::Uri)?);
    Uri::from_parts(parts)
        .map(|uri| Some((uri, sid)))
        .map_err(|_| SessionKeyError::Uri)
}

/// A polling handshake answer with its sid replaced by the key `key_for(sid)` returns.
fn rewrite_handshake(
    body: &[u8],
    key_for: impl FnOnce(Sid) -> Result<String, SessionKeyError>,
) -> Result<Vec<u8>, SessionKeyError> {
    let split = body.iter().position(|b| *b == 0x1e).unwrap_or(body.len());
    let (first, rest) = body.split_at(split);
    let json = first.strip_prefix(b"0").ok_or(SessionKeyError::Handshake)?;
    let mut open: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|_| SessionKeyError::Handshake)?;
    let sid: Sid = open
        .get("sid")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
        .ok_or(SessionKeyError::Handshake)?;
    open.insert("sid".into(), serde_json::Value::String(key_for(sid)?));
    let mut out = b"0".to_vec();
    serde_json::to_writer(&mut out, &open).map_err(|_| SessionKeyError::Handshake)?;
    out.extend_from_slice(rest);
    Ok(out)
}

/// engineioxide's error body `{"code":"<n>","message":...}` as (n, message); `None` for any
/// other body (including one whose code is already a number).
fn string_code(body: &[u8]) -> Option<(u16, String)> {
    #[derive(serde::Deserialize)]
    struct EngineError {
        code: String,
        message: String,
    }
    let e: EngineError = serde_json::from_slice(body).ok()?;
    Some((e.code.parse().ok()?, e.message))
}

fn handshake_failed() -> Response {
    engine_io::error_response(StatusCode::INTERNAL_SERVER_ERROR, 500, "handshake failed")
}

/// The session keys of the module doc, in front of the drain guard (a [`Hook`]).
#[derive(Clone)]
pub struct KeyGuard {
    pub keys: Arc<SessionKeys>,
    pub polling: Arc<PollingSessions>,
}

impl Hook for KeyGuard {
    /// `None` for requests that are not Engine.IO's (their answers are left alone); else
    /// whether the request may open a session (a GET without `sid`).
    type Carry = Option<bool>;

    fn before(&self, req: &mut Request) -> Step<Option<bool>> {
        let shape = engine_io::Shape::of(req);
        if !shape.engine_io {
            return Step::Continue(None);
        }
        // No `sid` pair at all: what `translate` answers `Ok(None)` for, without its scan.
        let translated = if shape.sid_pairs {
            translate(req.uri(), &self.keys)
        } else {
            Ok(None)
        };
        match translated {
            Ok(None) => Step::Continue(Some(req.method() == Method::GET)),
            Ok(Some((uri, sid))) => {
                if let Some(orig) = req.extensions_mut().get_mut::<OriginalUri>() {
                    orig.0 = uri.clone();
                }
                *req.uri_mut() = uri;
                let query = req.uri().query().unwrap_or("");
                if engine_io::transport(query) != Some("polling") {
                    return Step::Continue(Some(false));
                }
                let t = engine_io::query_param(query, "t").map(str::to_owned);
                if req.method() == Method::GET {
                    let polling = self.polling.clone();
                    return Step::Detour(Box::new(move |req, next| {
                        Box::pin(async move {
                            let resp = polling.get(sid, t.as_deref(), next.run(req)).await;
                            match finish(None, false, resp) {
                                Finish::Done(resp) => resp,
                                Finish::Then(rewrite) => rewrite.await,
                            }
                        })
                    }));
                }
                if req.method() == Method::POST && self.polling.post_is_retry(sid, t.as_deref()) {
                    return Step::Answer(crate::polling::post_ok());
                }
                Step::Continue(Some(false))
            }
            Err(e) => {
                let key = sid_param(req.uri().query().unwrap_or(""))
                    .ok()
                    .flatten()
                    .map(fingerprint);
                tracing::debug!(session = ?key, error = %e, "refused an Engine.IO request");
                Step::Answer(engine_io::session_unknown())
            }
        }
    }

    fn after(&self, opens: Option<bool>, resp: Response) -> Finish {
        match opens {
            Some(opens) => finish(Some(&self.keys), opens, resp),
            None => Finish::Done(resp),
        }
    }
}

/// An Engine.IO answer on its way out: a polling handshake's body gets the session key (only
/// the polling handshake answers a sid-less GET with 200; a websocket one is a 101), and
/// engineioxide's error bodies get numeric codes.
fn finish(keys: Option<&Arc<SessionKeys>>, opens: bool, resp: Response) -> Finish {
    if let Some(keys) = keys
        && opens
        && resp.status() == StatusCode::OK
    {
        let keys = keys.clone();
        return Finish::Then(Box::pin(async move { give_key(&keys, resp).await }));
    }
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if resp.status().is_client_error() && json {
        return Finish::Then(Box::pin(numeric_code(resp)));
    }
    Finish::Done(resp)
}

async fn give_key(keys: &SessionKeys, resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_HANDSHAKE_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read a handshake answer");
            return handshake_failed();
        }
    };
    match rewrite_handshake(&bytes, |sid| keys.issue(sid)) {
        Ok(out) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(out))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot give a session key to a polling handshake");
            handshake_failed()
        }
    }
}

/// Rebuild an engineioxide error body with a numeric code (its only header is the
/// content type, which the rebuilt answer has too).
async fn numeric_code(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read an Engine.IO error answer");
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, Body::empty());
        }
    };
    match string_code(&bytes) {
        Some((code, message)) => engine_io::error_response(parts.status, code, &message),
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

/// Sweep the keys of ended sessions forever (spawned once per node).
pub async fn sweep_forever<A: Adapter>(
    keys: Arc<SessionKeys>,
    polling: Arc<PollingSessions>,
    io: SocketIo<A>,
) {
    let every = (keys.grace() / 3).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let nsps = io.nsps();
        let alive = |sid| nsps.iter().any(|ns| ns.get_socket(sid).is_some());
        let dropped = keys.sweep(alive);
        polling.retain(alive);
        if dropped > 0 {
            tracing::trace!(
                dropped,
                left = keys.len(),
                "session keys of ended sessions dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(s: &str) -> Sid {
        s.parse().expect("valid sid")
    }

    const X: &str = "AbC-12_xAbC-12_x";

    #[test]
    fn handshake_body_gets_a_key_instead_of_the_socket_id() {
        let keys = SessionKeys::new(Duration::from_secs(60));
        let body = format!(
            r#"0{{"sid":"{X}","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
        );
        let mut two = body.clone().into_bytes();
        two.extend_from_slice(b"\x1e40{\"sid\":\"x\"}");
        let out = rewrite_handshake(&two, |s| keys.issue(s)).expect("rewritten");
        let (first, rest) = out.split_at(out.iter().position(|b| *b == 0x1e).expect("sep"));
        assert_eq!(rest, b"\x1e40{\"sid\":\"x\"}", "later packets untouched");
        let v: serde_json::Value = serde_json::from_slice(&first[1..]).expect("json");
        let key = v["sid"].as_str().expect("sid");
        assert_ne!(key, X);
        assert_eq!(key.len(), 2 * KEY_BYTES);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(v["pingInterval"], 25000);
        assert_eq!(v["upgrades"][0], "websocket");
        assert_eq!(keys.resolve(key), Some(sid(X)));
        assert_eq!(keys.resolve(X), None, "the socket id is not a key");
        // Two handshakes, two different keys.
        let other = rewrite_handshake(body.as_bytes(), |s| keys.issue(s)).expect("rewritten");
        assert_ne!(other, out[..first.len()].to_vec());
    }

    #[test]
    fn bad_handshake_bodies_are_refused() {
        let keys = SessionKeys::new(Duration::from_secs(60));
        for body in [
            &b"garbage"[..],
            b"0{}",
            b"0{\"sid\":\"short\"}",
            b"0{\"sid\":1}",
            b"",
        ] {
            assert_eq!(
                rewrite_handshake(body, |s| keys.issue(s)),
                Err(SessionKeyError::Handshake)
            );
        }
        assert!(keys.is_empty());
    }

    #[test]
    fn query_is_rewritten_to_the_socket_id() {
        let keys = SessionKeys::new(Duration::from_secs(60));
        let key = keys.issue(sid(X)).expect("key");
        let uri: Uri = format!("/socket.io/?EIO=4&transport=polling&t=abc&sid={key}&x=1")
            .parse()
            .expect("uri");
        let (out, to) = translate(&uri, &keys).expect("known").expect("has sid");
        assert_eq!(to, sid(X));
        assert_eq!(
            out.to_string(),
            format!("/socket.io/?EIO=4&transport=polling&t=abc&sid={X}&x=1")
        );
        let hs: Uri = "/socket.io/?EIO=4&transport=polling".parse().expect("uri");
        assert_eq!(translate(&hs, &keys), Ok(None));
    }

    #[test]
    fn unknown_and_ambiguous_sids_are_refused() {
        let keys = SessionKeys::new(Duration::from_secs(60));
        let key = keys.issue(sid(X)).expect("key");
        let t = |q: &str| translate(&format!("/socket.io/?{q}").parse().expect("uri"), &keys);
        assert_eq!(
            t(&format!("EIO=4&transport=polling&sid={X}")),
            Err(SessionKeyError::Unknown),
            "the public socket id"
        );
        assert_eq!(
            t("EIO=4&transport=polling&sid=0123456789abcdef0123456789abcdef"),
            Err(SessionKeyError::Unknown)
        );
        // engineioxide uses the first `sid=` pair: a valid key next to another sid must not
        // validate the request.
        for q in [
            format!("EIO=4&transport=polling&sid={key}&sid={X}"),
            format!("EIO=4&transport=polling&sid={X}&sid={key}"),
            format!("EIO=4&transport=polling&sid&sid={X}"),
            format!("EIO=4&transport=polling&sid=&sid={X}"),
            "EIO=4&transport=polling&sid=".to_owned(),
        ] {
            assert_eq!(t(&q), Err(SessionKeyError::Malformed), "{q}");
        }
        assert_eq!(
            t(&format!("EIO=4&sidx=1&transport=polling&sid={key}"))
                .expect("ok")
                .map(|(u, _)| u.to_string()),
            Some(format!(
                "/socket.io/?EIO=4&sidx=1&transport=polling&sid={X}"
            ))
        );
    }

    #[test]
    fn sweep_drops_ended_sessions_only() {
        let a = sid("aaaaaaaaaaaaaaaa");
        let b = sid("bbbbbbbbbbbbbbbb");
        // Within the grace period nothing goes, alive or not.
        let keys = SessionKeys::new(Duration::from_secs(60));
        let ka = keys.issue(a).expect("key");
        assert_eq!(keys.sweep(|_| false), 0);
        assert!(keys.contains(&ka));
        // Past it, only sessions without a socket go.
        let keys = SessionKeys::new(Duration::ZERO);
        let ka = keys.issue(a).expect("key");
        let kb = keys.issue(b).expect("key");
        assert_eq!(keys.sweep(|s| s == a), 1);
        assert!(keys.contains(&ka));
        assert!(!keys.contains(&kb));
        assert_eq!(keys.resolve(&kb), None);
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn engine_error_codes_become_numbers() {
        assert_eq!(
            string_code(br#"{"code":"3","message":"Bad request"}"#),
            Some((3, "Bad request".to_owned()))
        );
        assert_eq!(
            string_code(br#"{"code":1,"message":"Session ID unknown"}"#),
            None
        );
        assert_eq!(string_code(b"not json"), None);
    }

    #[test]
    fn digests_and_fingerprints_hide_the_key() {
        let d = digest_hex("k");
        assert_eq!(d.len(), 64);
        assert!(!d.contains('k'));
        assert_eq!(fingerprint("k"), d[..12]);
    }
}
