//! The shape of Engine.IO requests as the gateway's middlewares see them: which paths belong to
//! the Socket.IO service and which requests open a session. One place, so that the drain
//! guard, the sticky cookie, the handshake rate limit, the cluster forwarder, the request-head
//! trimming and the metrics agree on it (`/socket.io.min.js`, the chat page's client bundle,
//! shares the prefix but is not Engine.IO).
//!
//! [`error_response`] builds every error body the gateway answers an Engine.IO request with
//! (`{"code":<number>,"message":...}`, as Node's engine.io does; engineioxide's own bodies
//! carry the code as a string and are rewritten through it by [`crate::session_key`]).
use axum::{
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// socketioxide's default Engine.IO path.
pub const PATH: &str = "/socket.io";

/// Is `path` served by the Socket.IO service?
pub fn is_engine_io(path: &str) -> bool {
    path.strip_prefix(PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The value of `key` in a query string (not percent-decoded: Engine.IO's keys and sids do
/// not need it).
///
/// One pass over the bytes: an Engine.IO request goes through about ten lookups on its way in
/// (drain, sticky, session key, cluster, request head), and `split('&')` + `split_once('=')`
/// with their char searchers cost ~3.5k instructions per handshake (callgrind, BENCHMARKS.md).
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    let (q, k) = (query.as_bytes(), key.as_bytes());
    let mut start = 0;
    while start <= q.len() {
        let end = q[start..]
            .iter()
            .position(|&b| b == b'&')
            .map_or(q.len(), |i| start + i);
        let seg = &q[start..end];
        // `key=` only, as engineioxide looks keys up: a bare `key` is no value of it (or the
        // gateway and the engine would read two different pairs of `transport&transport=x`).
        // `&`, `=` are ASCII: every index here is a char boundary.
        if seg.starts_with(k) && seg.get(k.len()) == Some(&b'=') {
            return query.get(start + k.len() + 1..end);
        }
        start = end + 1;
    }
    None
}

/// The transport an Engine.IO request names, read as engineioxide reads it (its first
/// `transport=` pair, up to a further `=`), so the gateway's layers and the engine never
/// disagree on it.
pub fn transport(query: &str) -> Option<&str> {
    query_param(query, "transport").map(|v| v.split('=').next().unwrap_or(v))
}

/// The session id of an Engine.IO request, if it names one.
pub fn session_sid(req: &Request) -> Option<&str> {
    query_param(req.uri().query().unwrap_or(""), "sid").filter(|s| !s.is_empty())
}

/// Does this Engine.IO request open a new session (no `sid` yet)?
pub fn is_handshake(req: &Request) -> bool {
    is_engine_io(req.uri().path()) && session_sid(req).is_none()
}

/// An Engine.IO error answer that asks the client to come back in a second
/// (`Retry-After: 1`), its HTTP status as the code: the drain's 503s, the per-IP rate's 429.
pub fn retry_later(status: StatusCode, message: &str) -> Response {
    let mut resp = error_response(status, status.as_u16(), message);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// Engine.IO error code 1 (Node's `Server.errors.UNKNOWN_SID`).
pub const UNKNOWN_SID: u16 = 1;

/// An Engine.IO error answer: `status`, `Content-Type: application/json` and the body
/// `{"code":<code>,"message":<message>}` with `code` a JSON number. Engine.IO's own codes
/// (0 transport unknown, 1 session ID unknown, 2 bad handshake method, 3 bad request,
/// 4 forbidden, 5 unsupported protocol version) come with 400/403; the gateway's refusals
/// use their HTTP status as the code (403, 429, 503).
pub fn error_response(status: StatusCode, code: u16, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `400 {"code":1,"message":"Session ID unknown"}`: what Node answers for a session it does
/// not hold (clients treat it as a lost transport and reconnect).
pub fn session_unknown() -> Response {
    error_response(StatusCode::BAD_REQUEST, UNKNOWN_SID, "Session ID unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn error_bodies_have_numeric_codes() {
        let r = session_unknown();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(r.into_body(), 1024)
            .await
            .expect("small body");
        assert_eq!(&body[..], br#"{"code":1,"message":"Session ID unknown"}"#);
    }

    fn req(uri: &str) -> Request {
        Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("valid request")
    }

    #[test]
    fn paths() {
        assert!(is_engine_io("/socket.io/"));
        assert!(is_engine_io("/socket.io"));
        assert!(!is_engine_io("/socket.io.min.js"));
        assert!(!is_engine_io("/api/v1/emit"));
    }

    #[test]
    fn handshakes_and_sids() {
        assert!(is_handshake(&req("/socket.io/?EIO=4&transport=polling")));
        assert!(is_handshake(&req("/socket.io/?EIO=4&sid=")));
        let r = req("/socket.io/?EIO=4&transport=websocket&sid=abc");
        assert!(!is_handshake(&r));
        assert_eq!(session_sid(&r), Some("abc"));
        assert!(!is_handshake(&req("/socket.io.min.js")));
        assert_eq!(
            query_param("a=1&b&c=3", "b"),
            None,
            "a bare key has no value"
        );
        assert_eq!(query_param("b&b=2", "b"), Some("2"), "engineioxide's pair");
        assert_eq!(query_param("a=1&b&c=3", "c"), Some("3"));
        assert_eq!(query_param("a=1&b&c=3", "a"), Some("1"));
        assert_eq!(
            query_param("ab=1&a=2", "a"),
            Some("2"),
            "a longer key is not a match"
        );
        assert_eq!(query_param("a==1", "a"), Some("=1"));
        assert_eq!(query_param("a=1&", "b"), None);
        assert_eq!(query_param("&&a=", "a"), Some(""));
        assert_eq!(query_param("x=é&sid=ü", "sid"), Some("ü"));
        assert_eq!(query_param("", "sid"), None);
    }

    /// The gateway reads the transport engineioxide will use: a websocket upgrade hidden
    /// behind a bare `transport` (or a `transport=websocket=x`) was not recorded as one, so
    /// cutting that client fell back to its polling handshake's connection.
    #[test]
    fn the_transport_engineioxide_reads() {
        assert_eq!(transport("EIO=4&transport=polling"), Some("polling"));
        assert_eq!(
            transport("EIO=4&transport&transport=websocket&sid=k"),
            Some("websocket")
        );
        assert_eq!(transport("EIO=4&transport=websocket=x"), Some("websocket"));
        assert_eq!(transport("EIO=4&transports=websocket"), None);
        assert_eq!(transport("EIO=4&transport"), None);
    }
}
