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
//! The kept values share one allocation, so engineioxide's clone of the parts (for hyper's
//! upgrade) costs reference counts instead of one allocation per value.
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
fn detach(req: &mut Request, kept: &[&str]) {
    let headers = std::mem::take(req.headers_mut());
    *req.headers_mut() = kept_headers(headers, kept);
    if let Some(owned) = owned_uri(req.uri()) {
        // axum's router stored a clone of the parsed URI (still a slice of the buffer) as
        // `OriginalUri` before this layer ran.
        if let Some(orig) = req.extensions_mut().get_mut::<OriginalUri>() {
            orig.0 = owned.clone();
        }
        *req.uri_mut() = owned;
    }
}

/// `uri` in an allocation of its own. A request line's URI is a path and query (origin form):
/// copied as bytes and parsed as a path and query only (formatting the URI to a `String` and
/// parsing it whole cost ~2k instructions per handshake, callgrind, BENCHMARKS.md issue 18).
/// Other forms go through their text.
fn owned_uri(uri: &Uri) -> Option<Uri> {
    match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, None, Some(pq)) => {
            PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(pq.as_str().as_bytes()))
                .ok()
                .map(Uri::from)
        }
        // `Uri: TryFrom<String>` takes the string's own allocation.
        _ => Uri::try_from(uri.to_string()).ok(),
    }
}

fn kept_headers(headers: HeaderMap, kept: &[&str]) -> HeaderMap {
    let keep = |name: &header::HeaderName| {
        name == header::SEC_WEBSOCKET_KEY || kept.iter().any(|k| name == *k)
    };
    // `iter` yields repeated headers (two `cookie` lines) once per value.
    let entries: Vec<_> = headers.iter().filter(|(n, _)| keep(n)).collect();
    let mut all = Vec::with_capacity(entries.iter().map(|(_, v)| v.len()).sum());
    for (_, v) in &entries {
        all.extend_from_slice(v.as_bytes());
    }
    let all = Bytes::from(all);
    let mut out = HeaderMap::with_capacity(entries.len());
    let mut at = 0;
    for (name, v) in entries {
        let len = v.len();
        // A slice of `all` is valid wherever the original value was; the copy arm only keeps
        // the original rather than unwrap.
        let mut owned =
            HeaderValue::from_maybe_shared(all.slice(at..at + len)).unwrap_or_else(|_| v.clone());
        owned.set_sensitive(v.is_sensitive());
        at += len;
        out.append(name.clone(), owned);
    }
    out
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
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v);
        let out = kept_headers(h, &["authorization"]);
        assert!(out["authorization"].is_sensitive());
    }

    /// The owned URI equals the original and points into none of the buffer it came from
    /// (hyper's read buffer, here a `Bytes` the URI was parsed from in place).
    #[test]
    fn owned_uri_leaves_the_read_buffer() {
        for text in [
            "/socket.io/?EIO=4&transport=websocket&sid=abc",
            "/socket.io/",
            "http://gw.example:3000/socket.io/?EIO=4&transport=polling",
        ] {
            let buffer = Bytes::copy_from_slice(text.as_bytes());
            let parsed = Uri::from_maybe_shared(buffer.clone()).expect("valid uri");
            let owned = owned_uri(&parsed).expect("an owned copy");
            assert_eq!(owned, parsed);
            let range = buffer.as_ptr_range();
            let at = owned.path_and_query().expect("a path").as_str().as_ptr();
            assert!(!range.contains(&at), "{text}: still a slice of the buffer");
        }
    }
}
