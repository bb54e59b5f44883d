//! Detach a session-opening request's head from hyper's read buffer.
//!
//! hyper parses a request head in place: the URI and every header value it hands out are
//! `Bytes` slices of the connection's read buffer (8–16 KiB). engineioxide keeps the opening
//! request's parts for the whole life of the session (socketioxide's `req_parts()`), so those
//! few hundred bytes of slices pin the entire buffer: heaptrack showed ~16 KiB of the ~30 KiB
//! RSS per idle websocket connection was that buffer. Copying the URI and the header values
//! into their own small allocations once per session-opening request lets the buffer go as
//! soon as hyper hands the connection over to the websocket.
//!
//! Only requests that can open a session or a websocket are copied (no `sid` in the query, or
//! an `Upgrade` header); ordinary polling requests of an open session pay nothing.
use axum::{
    extract::{OriginalUri, Request},
    http::{HeaderValue, Uri, header},
    middleware::Next,
    response::Response,
};

/// axum middleware: see the module documentation.
pub async fn own_head(mut req: Request, next: Next) -> Response {
    let opens_session = req.headers().contains_key(header::UPGRADE)
        || !req.uri().query().is_some_and(|q| q.contains("sid="));
    if opens_session {
        detach(&mut req);
    }
    next.run(req).await
}

fn detach(req: &mut Request) {
    for v in req.headers_mut().values_mut() {
        // `from_bytes` copies; a value that was valid stays valid, so the error arm is only
        // there to keep the original rather than unwrap.
        if let Ok(mut owned) = HeaderValue::from_bytes(v.as_bytes()) {
            owned.set_sensitive(v.is_sensitive());
            *v = owned;
        }
    }
    // `Uri: TryFrom<String>` takes the string's own allocation.
    if let Ok(owned) = Uri::try_from(req.uri().to_string()) {
        // axum's router stored a clone of the parsed URI (still a slice of the buffer) as
        // `OriginalUri` before this middleware ran.
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

    #[test]
    fn detached_head_is_equal() {
        let mut req = Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header("x-test", "value")
            .body(Body::empty())
            .expect("valid request");
        let before = (req.uri().clone(), req.headers().clone());
        detach(&mut req);
        assert_eq!(req.uri(), &before.0);
        assert_eq!(req.headers(), &before.1);
    }
}
