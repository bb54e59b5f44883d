//! The shape of Engine.IO requests as the gateway's middlewares see them: which paths belong to
//! the Socket.IO service and which requests open a session. One place, so that the drain
//! guard, the sticky cookie, the handshake rate limit, the cluster forwarder, the request-head
//! trimming and the metrics agree on it (`/socket.io.min.js`, the chat page's client bundle,
//! shares the prefix but is not Engine.IO).
use axum::extract::Request;

/// socketioxide's default Engine.IO path.
pub const PATH: &str = "/socket.io";

/// Is `path` served by the Socket.IO service?
pub fn is_engine_io(path: &str) -> bool {
    path.strip_prefix(PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The value of `key` in a query string (not percent-decoded: Engine.IO's keys and sids do
/// not need it).
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// The session id of an Engine.IO request, if it names one.
pub fn session_sid(req: &Request) -> Option<&str> {
    query_param(req.uri().query().unwrap_or(""), "sid").filter(|s| !s.is_empty())
}

/// Does this Engine.IO request open a new session (no `sid` yet)?
pub fn is_handshake(req: &Request) -> bool {
    is_engine_io(req.uri().path()) && session_sid(req).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(query_param("a=1&b&c=3", "b"), Some(""));
        assert_eq!(query_param("", "sid"), None);
    }
}
