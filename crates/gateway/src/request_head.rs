//! Shrink the request head a session keeps, and detach it from hyper's read buffer.
//!
//! engineioxide keeps the session-opening request's parts (URI, headers, extensions) for the
//! whole life of the session (socketioxide's `req_parts()`); for a session upgraded from
//! polling, the upgrade request's parts live as long too (an argument of engineioxide's
//! websocket task). Two things make that expensive per idle connection:
//!
//! * hyper parses a request head in place: the URI and every header value are `Bytes` slices
//!   of the connection's read buffer (8–16 KiB), so a few hundred bytes of slices pin the
//!   whole buffer. heaptrack showed ~16 KiB of the ~30 KiB RSS per idle websocket was that
//!   buffer. The URI and the kept header values are therefore copied into allocations of
//!   their own, and the buffer goes as soon as hyper hands the connection over.
//! * every header the client sent stays: a browser's ~15–20 headers (user agent, cookies,
//!   `accept-*`, `sec-fetch-*`, ...) are 1–3 KiB per connection, a `HeaderMap` entry alone is
//!   ~100 bytes. Only the headers the gateway reads later are kept: those of the configured
//!   authenticator ([`Authenticator::headers_read`](crate::auth::Authenticator::headers_read))
//!   and `Sec-WebSocket-Key`, which engineioxide reads from the same request right after this
//!   layer. Everything else in the stack (CORS, tracing, metrics, sticky cookie, drain)
//!   sits outside this layer and has seen the full request already; socketioxide and
//!   engineioxide read no other header.
//!
//! The kept values and the URI share one allocation, so engineioxide's clone of the parts (for
//! hyper's upgrade) costs reference counts instead of one allocation per value.
//!
//! Only Engine.IO requests that can open a session or a websocket are touched (no `sid` in the
//! query, or an `Upgrade` header); polling requests of an open session and every other route
//! (the HTTP API reads its own headers) pass unchanged.
use std::sync::Arc;

use axum::{
    extract::{OriginalUri, Request},
    http::{HeaderMap, HeaderValue, Uri, header, uri::PathAndQuery},
};
use bytes::Bytes;

use crate::{
    auth::Authenticator,
    hook::{Hook, Step},
};

/// The request-head trimming of the module documentation, as a [`Hook`].
#[derive(Clone)]
pub struct OwnHead(pub Arc<Authenticator>);

impl Hook for OwnHead {
    type Carry = ();
    const AFTER: bool = false;

    fn before(&self, req: &mut Request) -> Step<()> {
        let shape = crate::engine_io::Shape::of(req);
        let opens_session = shape.is_handshake()
            || (shape.engine_io && req.headers().contains_key(header::UPGRADE));
        if opens_session {
            detach(req, self.0.headers_read());
        }
        Step::Continue(())
    }
}

/// Keep only `kept` (and `Sec-WebSocket-Key`) of the headers, copied out of hyper's buffer,
/// and give the URI its own allocation.
///
/// One allocation holds the kept values and the URI's path and query (sized first, then
/// filled): a copy per value and one for the URI, with the `Vec` of entries that sized them,
/// cost ~1k instructions more per websocket handshake (callgrind, BENCHMARKS.md issue 18).
fn detach(req: &mut Request, kept: &[&str]) {
    let keep = |name: &header::HeaderName| {
        name == header::SEC_WEBSOCKET_KEY || kept.iter().any(|k| name == *k)
    };
    let headers = std::mem::take(req.headers_mut());
    // A request line's URI is a path and query (origin form): copied as bytes, parsed as a path
    // and query only (formatting the URI and parsing it whole cost ~2k instructions per
    // handshake). Other forms go through their text.
    let uri = req.uri();
    let pq = match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, None, Some(pq)) => Some(pq.as_str()),
        _ => None,
    };
    let (mut count, mut len) = (0, pq.map_or(0, str::len));
    // `iter` yields repeated headers (two `cookie` lines) once per value.
    for (name, v) in &headers {
        if keep(name) {
            count += 1;
            len += v.len();
        }
    }
    let mut all = Vec::with_capacity(len);
    for (name, v) in &headers {
        if keep(name) {
            all.extend_from_slice(v.as_bytes());
        }
    }
    if let Some(pq) = pq {
        all.extend_from_slice(pq.as_bytes());
    }
    let origin_form = pq.is_some();
    let all = Bytes::from(all);
    let mut out = HeaderMap::with_capacity(count);
    let mut at = 0;
    for (name, v) in &headers {
        if !keep(name) {
            continue;
        }
        let len = v.len();
        // A slice of `all` is valid wherever the original value was; the copy arm only keeps
        // the original rather than unwrap.
        let mut owned =
            HeaderValue::from_maybe_shared(all.slice(at..at + len)).unwrap_or_else(|_| v.clone());
        owned.set_sensitive(v.is_sensitive());
        at += len;
        out.append(name.clone(), owned);
    }
    *req.headers_mut() = out;
    let owned = if origin_form {
        PathAndQuery::from_maybe_shared(all.slice(at..))
            .ok()
            .map(Uri::from)
    } else {
        // `Uri: TryFrom<String>` takes the string's own allocation.
        Uri::try_from(req.uri().to_string()).ok()
    };
    if let Some(owned) = owned {
        // axum's router stores a clone of the parsed URI (a slice of the buffer too) as
        // `OriginalUri`; no router wraps the Socket.IO service any more (`server::app`), so
        // this is only for a stack with one.
        if let Some(orig) = req.extensions_mut().get_mut::<OriginalUri>() {
            orig.0 = owned.clone();
        }
        *req.uri_mut() = owned;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request() -> Request {
        Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header("x-test", "value")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("authorization", "Bearer t")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Body::empty())
            .expect("valid request")
    }

    #[test]
    fn detached_head_keeps_the_uri_and_the_listed_headers() {
        let mut req = request();
        let uri = req.uri().clone();
        detach(&mut req, &["authorization", "cookie"]);
        assert_eq!(req.uri(), &uri);
        let h = req.headers();
        assert_eq!(h.len(), 4);
        assert_eq!(h["authorization"], "Bearer t");
        assert_eq!(h["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
        let cookies: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(!h.contains_key("x-test"));
    }

    #[test]
    fn without_authenticator_only_the_websocket_key_stays() {
        let mut req = request();
        detach(&mut req, &[]);
        assert_eq!(req.headers().len(), 1);
        assert!(req.headers().contains_key("sec-websocket-key"));
    }

    #[test]
    fn sensitive_flag_survives() {
        let mut v = HeaderValue::from_static("Bearer t");
        v.set_sensitive(true);
        let mut req = request();
        req.headers_mut().insert(header::AUTHORIZATION, v);
        detach(&mut req, &["authorization"]);
        assert!(req.headers()["authorization"].is_sensitive());
        assert!(!req.headers()["sec-websocket-key"].is_sensitive());
    }

    /// The owned URI and the kept values equal the originals and point into none of the buffer
    /// they came from (hyper's read buffer, here a `Bytes` they were parsed from in place),
    /// nor does an `OriginalUri` left in the extensions.
    #[test]
    fn the_kept_head_leaves_the_read_buffer() {
        for text in [
            "/socket.io/?EIO=4&transport=websocket&sid=abc",
            "/socket.io/",
            "http://gw.example:3000/socket.io/?EIO=4&transport=polling",
        ] {
            let buffer = Bytes::from(format!("{text} dGhlIHNhbXBsZSBub25jZQ==").into_bytes());
            let parsed = Uri::from_maybe_shared(buffer.slice(..text.len())).expect("valid uri");
            let key = HeaderValue::from_maybe_shared(buffer.slice(text.len() + 1..))
                .expect("valid value");
            let mut req = Request::builder()
                .uri(parsed.clone())
                .header("sec-websocket-key", key)
                .header("x-test", "value")
                .body(Body::empty())
                .expect("valid request");
            req.extensions_mut().insert(OriginalUri(parsed.clone()));
            detach(&mut req, &[]);
            assert_eq!(req.uri(), &parsed);
            assert_eq!(
                req.headers()["sec-websocket-key"],
                "dGhlIHNhbXBsZSBub25jZQ=="
            );
            assert_eq!(req.headers().len(), 1);
            let range = buffer.as_ptr_range();
            let at = req
                .uri()
                .path_and_query()
                .expect("a path")
                .as_str()
                .as_ptr();
            assert!(!range.contains(&at), "{text}: still a slice of the buffer");
            let orig = req.extensions().get::<OriginalUri>().expect("kept");
            assert_eq!(orig.0, parsed);
            let at = orig.0.path_and_query().expect("a path").as_str().as_ptr();
            assert!(
                !range.contains(&at),
                "{text}: OriginalUri still in the buffer"
            );
            let at = req.headers()["sec-websocket-key"].as_bytes().as_ptr();
            assert!(!range.contains(&at), "{text}: a value still in the buffer");
        }
    }
}
