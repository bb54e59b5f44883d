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
    // A byte search: `split('=')`'s char searcher costs more than the lookup itself.
    query_param(query, "transport").map(|v| match v.bytes().position(|b| b == b'=') {
        Some(i) => v.get(..i).unwrap_or(v),
        None => v,
    })
}

/// The session id of an Engine.IO request, if it names one.
pub fn session_sid(req: &Request) -> Option<&str> {
    query_param(req.uri().query().unwrap_or(""), "sid").filter(|s| !s.is_empty())
}

/// Does this Engine.IO request open a new session (no `sid` yet)?
pub fn is_handshake(req: &Request) -> bool {
    Shape::of(req).is_handshake()
}

/// The transport an Engine.IO request names, as [`transport`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Polling,
    Websocket,
    /// Another value, or none.
    Other,
}

/// What the gateway's layers ask of a request's path and query, read in one pass.
///
/// About ten layers ask an Engine.IO request for its `sid` and `transport` on its way in
/// (origin, cluster routing, session keys, handshake rate, drain guard, sticky cookie, request
/// head): one query scan each cost ~1.6k instructions per websocket handshake (callgrind,
/// BENCHMARKS.md, issue 18). The outermost layer reads the shape once ([`Shape::stash`]) and
/// puts it in the request's extensions; the others read it there ([`Shape::of`]), and so does
/// the connect path, in the handshake's parts socketioxide keeps ([`Shape::of_parts`]). What
/// the layers change later in the URI (the session key's `sid` replaced by the socket id)
/// changes none of these facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// A path of the Socket.IO service ([`is_engine_io`]).
    pub engine_io: bool,
    /// It names a session: [`session_sid`] is `Some` (its first `sid=` pair has a value).
    pub has_sid: bool,
    /// Some pair is `sid` or `sid=...` (what the session keys' `sid` check looks at).
    pub sid_pairs: bool,
    /// [`transport`]'s reading.
    pub transport: Named,
}

impl Shape {
    /// Read `uri` (its query only for Socket.IO paths).
    pub fn read(uri: &axum::http::Uri) -> Shape {
        let mut shape = Shape {
            engine_io: is_engine_io(uri.path()),
            has_sid: false,
            sid_pairs: false,
            transport: Named::Other,
        };
        if !shape.engine_io {
            return shape;
        }
        let (mut sid_seen, mut transport_seen) = (false, false);
        for pair in uri.query().unwrap_or("").as_bytes().split(|&b| b == b'&') {
            if let Some(rest) = pair.strip_prefix(b"sid") {
                match rest.split_first() {
                    None => shape.sid_pairs = true,
                    Some((b'=', value)) => {
                        shape.sid_pairs = true;
                        if !sid_seen {
                            sid_seen = true;
                            shape.has_sid = !value.is_empty();
                        }
                    }
                    Some(_) => {}
                }
            } else if !transport_seen && let Some(value) = pair.strip_prefix(b"transport=") {
                transport_seen = true;
                // Up to a further `=`, as `transport` reads it.
                let value = value.split(|&b| b == b'=').next().unwrap_or(value);
                shape.transport = match value {
                    b"polling" => Named::Polling,
                    b"websocket" => Named::Websocket,
                    _ => Named::Other,
                };
            }
        }
        shape
    }

    /// The shape the outermost layer stashed, or read now.
    pub fn of(req: &Request) -> Shape {
        match req.extensions().get::<Shape>() {
            Some(shape) => *shape,
            None => Shape::read(req.uri()),
        }
    }

    /// The shape of the request whose parts these are (stashed, or read now).
    pub fn of_parts(parts: &axum::http::request::Parts) -> Shape {
        match parts.extensions.get::<Shape>() {
            Some(shape) => *shape,
            None => Shape::read(&parts.uri),
        }
    }

    /// Read the request's shape and stash it for the layers inside (Socket.IO paths only:
    /// the others are told apart by their path alone).
    ///
    /// engineioxide keeps a session's handshake extensions for the session's life: with the
    /// shape they hold three entries (the connection info, hyper's upgrade handle, the shape),
    /// as many as the table's first size holds. axum's `OriginalUri` and path parameters are
    /// not among them: no router wraps the stack any more (`server::app`).
    pub fn stash(req: &mut Request) -> Shape {
        let shape = Shape::read(req.uri());
        if shape.engine_io {
            req.extensions_mut().insert(shape);
        }
        shape
    }

    /// An Engine.IO request that opens a new session (no `sid` yet).
    pub fn is_handshake(&self) -> bool {
        self.engine_io && !self.has_sid
    }
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
/// Engine.IO error code 3 (Node's `Server.errors.BAD_REQUEST`).
pub const BAD_REQUEST: u16 = 3;

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

    /// [`Shape::read`] agrees with the lookups it stands for, on every query of these tests.
    #[test]
    fn the_shape_agrees_with_the_lookups() {
        let queries = [
            "EIO=4&transport=polling",
            "EIO=4&sid=",
            "EIO=4&transport=websocket&sid=abc",
            "EIO=4&transport&transport=websocket&sid=k",
            "EIO=4&transport=websocket=x",
            "EIO=4&transports=websocket",
            "EIO=4&transport",
            "EIO=4&transport=xhr&transport=polling",
            "sid&sid=a",
            "sidx=1&sid=2",
            "sidx=1",
            "sid=&sid=a",
            "sid=a&sid=b",
            "sid",
            "",
            "x=é&sid=ü",
            "&&sid=a&",
        ];
        for q in queries {
            for path in ["/socket.io/", "/socket.io.min.js"] {
                let r = req(&format!("{path}?{q}"));
                let shape = Shape::read(r.uri());
                assert_eq!(shape.engine_io, is_engine_io(path), "{path}?{q}");
                if !shape.engine_io {
                    assert_eq!(Shape::of(&r), shape);
                    continue;
                }
                assert_eq!(shape.has_sid, session_sid(&r).is_some(), "{q}");
                let named = match transport(q) {
                    Some("polling") => Named::Polling,
                    Some("websocket") => Named::Websocket,
                    _ => Named::Other,
                };
                assert_eq!(shape.transport, named, "{q}");
                let pairs = q.split('&').any(|p| p == "sid" || p.starts_with("sid="));
                assert_eq!(shape.sid_pairs, pairs, "{q}");
                // Stashed, it is what the inner layers read.
                let mut r = r;
                assert_eq!(Shape::stash(&mut r), shape);
                assert_eq!(r.extensions().get::<Shape>(), Some(&shape));
                assert_eq!(Shape::of(&r), shape);
            }
        }
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
