//! Proxying an Engine.IO request to the node that owns its session, and authenticating such
//! requests between nodes.
//!
//! * Polls (`GET`/`POST`): hyper's pooled HTTP/1 client; bodies are streamed both ways, status
//!   and headers (`Set-Cookie` included) are kept, hop-by-hop headers dropped.
//! * WebSocket upgrades: the upgrade request is replayed on a fresh connection to the owner;
//!   on its `101` both sides are upgraded and joined with `copy_bidirectional`, so the client
//!   talks to the owner through this node for the life of the WebSocket.
//!
//! A forwarded request carries `x-sio-forwarded: <node-id>` and
//! `x-sio-forward-auth: <unix-seconds>.<hex HMAC-SHA256(secret, node|ts|method|path?query)>`.
//! The receiver checks the tag (constant time, ±30 s) and never forwards such a request again
//! (loop guard); a request with a missing or wrong tag is refused with 403.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header},
    response::Response,
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use ring::hmac;

pub const FORWARDED_HEADER: HeaderName = HeaderName::from_static("x-sio-forwarded");
pub const AUTH_HEADER: HeaderName = HeaderName::from_static("x-sio-forward-auth");

/// Accepted clock difference between nodes for a forwarded request's timestamp.
const MAX_SKEW_SECS: u64 = 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a forward failed (the label of `polling_forwards_total`).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The owner cannot be reached (connection refused, timed out).
    #[error("owner unreachable: {0}")]
    OwnerDown(String),
    /// Anything else (bad URL, protocol error mid-request).
    #[error("forwarding failed: {0}")]
    Other(String),
}

/// Why an incoming forwarded request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("forwarding is not enabled on this node (no --cluster-secret)")]
    Disabled,
    #[error("missing or malformed x-sio-forward-auth")]
    Malformed,
    #[error("forward timestamp outside the accepted window")]
    Expired,
    #[error("bad forward signature")]
    BadSignature,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn signed_message(node: &str, ts: u64, method: &Method, pq: &str) -> String {
    format!("{node}\n{ts}\n{method}\n{pq}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Signs outgoing forwards and verifies incoming ones.
#[derive(Clone)]
pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(secret: &str) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    pub fn sign(&self, node: &str, ts: u64, method: &Method, pq: &str) -> String {
        let tag = hmac::sign(&self.key, signed_message(node, ts, method, pq).as_bytes());
        format!("{ts}.{}", hex(tag.as_ref()))
    }

    /// Hex HMAC-SHA256 of `message` (the registry's entries, see [`super::registry`]).
    pub fn tag(&self, message: &[u8]) -> String {
        hex(hmac::sign(&self.key, message).as_ref())
    }

    /// Does `tag` (hex) authenticate `message`? Constant time.
    pub fn check_tag(&self, message: &[u8], tag: &str) -> bool {
        unhex(tag).is_some_and(|t| hmac::verify(&self.key, message, &t).is_ok())
    }

    /// Verify the forwarding headers of an incoming request.
    pub fn verify(&self, headers: &HeaderMap, method: &Method, uri: &Uri) -> Result<(), AuthError> {
        let node = headers
            .get(FORWARDED_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Malformed)?;
        let auth = headers
            .get(AUTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Malformed)?;
        let (ts, tag) = auth.split_once('.').ok_or(AuthError::Malformed)?;
        let ts: u64 = ts.parse().map_err(|_| AuthError::Malformed)?;
        let tag = unhex(tag).ok_or(AuthError::Malformed)?;
        if now_secs().abs_diff(ts) > MAX_SKEW_SECS {
            return Err(AuthError::Expired);
        }
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        hmac::verify(
            &self.key,
            signed_message(node, ts, method, pq).as_bytes(),
            &tag,
        )
        .map_err(|_| AuthError::BadSignature)
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) never copied across a proxy, except for the
/// `Connection`/`Upgrade` pair of a WebSocket upgrade, which the upgrade path re-adds.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        h.remove(name);
    }
}

/// The client's credentials, never sent on to the owner with a poll or an upgrade: a request of
/// an open session is authenticated by its session key alone (the `sid` in the query,
/// [`crate::session_key`]), and authentication ([`crate::auth`]) reads the headers of the
/// session's handshake (socketioxide's `req_parts()`), which the owner answered itself. The
/// cookies and bearer token of a client are for the application, not for another node.
const CLIENT_CREDENTIALS: [HeaderName; 2] = [header::COOKIE, header::AUTHORIZATION];

fn strip_credentials(h: &mut HeaderMap) {
    for name in CLIENT_CREDENTIALS {
        h.remove(name);
    }
}

pub struct Forwarder {
    node_id: String,
    signer: Signer,
    client: Client<HttpConnector, Body>,
}

impl Forwarder {
    pub fn new(node_id: &str, secret: &str) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        Forwarder {
            node_id: node_id.to_owned(),
            signer: Signer::new(secret),
            client,
        }
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Target URI on `base` (an advertise URL) for the request's path and query. `base` must
    /// name an origin only ([`crate::config::advertise`]; the registry already drops any other, this
    /// is the last line): a path or query in it would make the client's request one for any
    /// URL this node can reach.
    fn target(base: &str, uri: &Uri) -> Result<Uri, ForwardError> {
        let base = crate::config::advertise::normalize(base)
            .map_err(|e| ForwardError::Other(format!("bad advertise URL {base:?}: {e}")))?;
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        format!("{base}{pq}")
            .parse::<Uri>()
            .map_err(|e| ForwardError::Other(format!("bad advertise URL {base}: {e}")))
    }

    fn stamp(&self, headers: &mut HeaderMap, method: &Method, uri: &Uri, client: Option<&str>) {
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        let sig = self.signer.sign(&self.node_id, now_secs(), method, pq);
        // node ids are header-safe (validated in config); the signature is ASCII.
        if let (Ok(n), Ok(s)) = (
            HeaderValue::from_str(&self.node_id),
            HeaderValue::from_str(&sig),
        ) {
            headers.insert(FORWARDED_HEADER, n);
            headers.insert(AUTH_HEADER, s);
        }
        if let Some(ip) = client {
            let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_owned(),
            };
            if let Ok(v) = HeaderValue::from_str(&xff) {
                headers.insert("x-forwarded-for", v);
            }
        }
    }

    /// Forward a polling request (`GET` or `POST`) to `base`.
    pub async fn http(
        &self,
        req: Request,
        base: &str,
        client_ip: Option<&str>,
    ) -> Result<Response, ForwardError> {
        let (mut parts, body) = req.into_parts();
        let target = Self::target(base, &parts.uri)?;
        strip_hop_by_hop(&mut parts.headers);
        strip_credentials(&mut parts.headers);
        parts.headers.remove(header::HOST);
        self.stamp(&mut parts.headers, &parts.method, &parts.uri, client_ip);
        parts.uri = target;
        parts.version = Version::HTTP_11;
        let out = Request::from_parts(parts, body);
        let resp = self.client.request(out).await.map_err(|e| {
            if e.is_connect() {
                ForwardError::OwnerDown(e.to_string())
            } else {
                ForwardError::Other(e.to_string())
            }
        })?;
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Body::new(body)))
    }

    /// Forward a WebSocket upgrade to `base` and splice the two connections once both sides
    /// switched protocols.
    pub async fn websocket(
        &self,
        req: Request,
        base: &str,
        client_ip: Option<&str>,
    ) -> Result<Response, ForwardError> {
        let (mut parts, _body) = req.into_parts();
        let Some(client_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(ForwardError::Other("connection cannot be upgraded".into()));
        };
        let target = Self::target(base, &parts.uri)?;
        let authority = target
            .authority()
            .ok_or_else(|| ForwardError::Other(format!("advertise URL {base} has no host")))?
            .clone();
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
            .await
            .map_err(|_| ForwardError::OwnerDown(format!("connect to {addr} timed out")))?
            .map_err(|e| ForwardError::OwnerDown(format!("{addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ForwardError::Other(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "forwarded websocket connection ended");
            }
        });

        let mut headers = parts.headers.clone();
        strip_hop_by_hop(&mut headers);
        // The upgrade of an open session: authenticated by its key, like a poll.
        strip_credentials(&mut headers);
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(h) = HeaderValue::from_str(authority.as_str()) {
            headers.insert(header::HOST, h);
        }
        self.stamp(&mut headers, &parts.method, &parts.uri, client_ip);
        let pq = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut out = Request::builder()
            .method(Method::GET)
            .uri(pq)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| ForwardError::Other(e.to_string()))?;
        *out.headers_mut() = headers;
        let mut resp = sender
            .send_request(out)
            .await
            .map_err(|e| ForwardError::Other(e.to_string()))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // e.g. 400 "Session ID unknown": pass the owner's answer on.
            let (parts, body) = resp.into_parts();
            return Ok(Response::from_parts(parts, Body::new(body)));
        }
        let owner_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (owner, client) = tokio::join!(owner_upgrade, client_upgrade);
            match (owner, client) {
                (Ok(owner), Ok(client)) => {
                    let mut owner = TokioIo::new(owner);
                    let mut client = TokioIo::new(client);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut owner).await;
                }
                (o, c) => tracing::debug!(
                    owner_ok = o.is_ok(),
                    client_ok = c.is_ok(),
                    "websocket forward: upgrade failed"
                ),
            }
        });
        // The 101 goes back to the client as the owner wrote it (Sec-WebSocket-Accept is
        // computed from the client's key, which was passed through).
        let mut back = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        if let Some(h) = back.headers_mut() {
            *h = resp.headers().clone();
        }
        back.body(Body::empty())
            .map_err(|e| ForwardError::Other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let s = Signer::new("0123456789abcdef");
        let uri: Uri = "/socket.io/?EIO=4&transport=polling&sid=abc"
            .parse()
            .unwrap();
        let mut h = HeaderMap::new();
        let sig = s.sign(
            "gateway-1",
            now_secs(),
            &Method::GET,
            "/socket.io/?EIO=4&transport=polling&sid=abc",
        );
        h.insert(FORWARDED_HEADER, HeaderValue::from_static("gateway-1"));
        h.insert(AUTH_HEADER, HeaderValue::from_str(&sig).unwrap());
        assert_eq!(s.verify(&h, &Method::GET, &uri), Ok(()));
        // Another method, path, node or secret: refused.
        assert_eq!(
            s.verify(&h, &Method::POST, &uri),
            Err(AuthError::BadSignature)
        );
        let other: Uri = "/socket.io/?EIO=4&transport=polling&sid=abd"
            .parse()
            .unwrap();
        assert_eq!(
            s.verify(&h, &Method::GET, &other),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            Signer::new("another-secret-xx").verify(&h, &Method::GET, &uri),
            Err(AuthError::BadSignature)
        );
        h.insert(FORWARDED_HEADER, HeaderValue::from_static("gateway-2"));
        assert_eq!(
            s.verify(&h, &Method::GET, &uri),
            Err(AuthError::BadSignature)
        );
        h.insert(AUTH_HEADER, HeaderValue::from_static("garbage"));
        assert_eq!(s.verify(&h, &Method::GET, &uri), Err(AuthError::Malformed));
        let old = s.sign("gateway-2", now_secs() - 3600, &Method::GET, "/x");
        h.insert(AUTH_HEADER, HeaderValue::from_str(&old).unwrap());
        assert_eq!(s.verify(&h, &Method::GET, &uri), Err(AuthError::Expired));
    }

    #[test]
    fn registry_tags() {
        let s = Signer::new("0123456789abcdef");
        let t = s.tag(b"message");
        assert!(s.check_tag(b"message", &t));
        assert!(!s.check_tag(b"messagf", &t));
        assert!(!Signer::new("another-secret-xx").check_tag(b"message", &t));
        assert!(!s.check_tag(b"message", "zz"));
        assert!(!s.check_tag(b"message", ""));
    }

    #[test]
    fn targets_are_on_the_owner_origin_only() {
        let uri: Uri = "/socket.io/?EIO=4&transport=polling&sid=abc"
            .parse()
            .unwrap();
        assert_eq!(
            Forwarder::target("http://10.0.0.2:3000/", &uri)
                .unwrap()
                .to_string(),
            "http://10.0.0.2:3000/socket.io/?EIO=4&transport=polling&sid=abc"
        );
        assert!(
            Forwarder::target("http://127.0.0.1:31420/internal/admin/secrets?x=", &uri).is_err()
        );
    }

    /// A poll forwarded to an owner (here a bare HTTP server recording what it receives)
    /// carries the session key and the forwarding signature, not the client's cookies or
    /// bearer token.
    #[tokio::test]
    async fn client_credentials_are_not_forwarded() {
        use std::sync::{Arc, Mutex};
        let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let seen2 = seen.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let seen = seen2.clone();
            async move {
                seen.lock().unwrap().push(req.headers().clone());
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let f = Forwarder::new("gateway-1", "0123456789abcdef");
        let req = Request::builder()
            .uri("/socket.io/?EIO=4&transport=polling&sid=abc")
            .header(header::COOKIE, "sio_node=gateway-2; app_session=secret")
            .header(header::AUTHORIZATION, "Bearer client-token")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::empty())
            .unwrap();
        let resp = f
            .http(req, &format!("http://{addr}"), Some("10.0.0.9"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let seen = seen.lock().unwrap();
        let h = &seen[0];
        assert!(h.get(header::COOKIE).is_none(), "cookie forwarded: {h:?}");
        assert!(
            h.get(header::AUTHORIZATION).is_none(),
            "authorization forwarded: {h:?}"
        );
        assert_eq!(h[header::CONTENT_TYPE], "text/plain");
        assert_eq!(h[FORWARDED_HEADER], "gateway-1");
        assert!(h.contains_key(AUTH_HEADER));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
