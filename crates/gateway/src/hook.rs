//! Request/response hooks as tower layers, for the cross-cutting concerns that decide on the
//! request and at most touch the response's head: the websocket origin check, the HTTP
//! metrics, the per-IP handshake rate, the sticky cookie, the request-head trimming and the
//! CORS credentials strip.
//!
//! Why not axum's `middleware::from_fn`: on every request it clones its inner service, boxes
//! that clone as `Next`, and boxes the middleware's future (two allocations and a copy of the
//! future per layer and request). On a websocket handshake each such layer cost ~2.3k
//! instructions (callgrind, BENCHMARKS.md, issue 18). A [`HookLayer`] calls its inner service in
//! place and returns an unboxed future: no clone, no allocation. Middlewares that await
//! something of their own (the session key's handshake rewrite, the drain guard's race with a
//! closing poll, the cluster's forwarding) stay `from_fn`.
use std::{
    convert::Infallible,
    future::Future,
    ops::ControlFlow,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{
    extract::Request,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use tower::{Layer, Service};

/// One cross-cutting concern: [`before`](Hook::before) sees the request first and either
/// passes it on (`Continue`, with what [`after`](Hook::after) needs to know) or answers it
/// itself (`Break`); `after` sees the inner service's response.
pub trait Hook: Clone + Send + Sync + 'static {
    /// What `before` hands to `after` (`()` when `after` needs nothing).
    type Carry: Send + 'static;

    /// `Continue` passes the request on, `Break` answers it without calling the inner service.
    fn before(&self, req: &mut Request) -> ControlFlow<Response, Self::Carry>;

    /// Runs on the inner service's response (not on `before`'s own answers).
    fn after(&self, _carry: Self::Carry, _resp: &mut Response) {}
}

/// The tower layer of a [`Hook`].
#[derive(Clone)]
pub struct HookLayer<H>(pub H);

impl<H: Clone, S> Layer<S> for HookLayer<H> {
    type Service = HookService<H, S>;

    fn layer(&self, inner: S) -> Self::Service {
        HookService {
            hook: self.0.clone(),
            inner,
        }
    }
}

/// The service of a [`HookLayer`].
#[derive(Clone)]
pub struct HookService<H, S> {
    hook: H,
    inner: S,
}

impl<H, S> Service<Request> for HookService<H, S>
where
    H: Hook,
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HookFuture<H, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match self.hook.before(&mut req) {
            ControlFlow::Continue(carry) => HookFuture::Inner {
                fut: self.inner.call(req),
                // A reference count for the hooks with state; the hooks are small.
                after: Some((self.hook.clone(), carry)),
            },
            ControlFlow::Break(resp) => HookFuture::Answered { resp: Some(resp) },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`HookService`].
    #[project = HookProj]
    pub enum HookFuture<H: Hook, F> {
        Inner { #[pin] fut: F, after: Option<(H, H::Carry)> },
        Answered { resp: Option<Response> },
    }
}

impl<H, F, R> Future for HookFuture<H, F>
where
    H: Hook,
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            HookProj::Inner { fut, after } => {
                let Ok(inner) = ready!(fut.poll(cx));
                let mut resp = inner.into_response();
                if let Some((hook, carry)) = after.take() {
                    hook.after(carry, &mut resp);
                }
                Poll::Ready(Ok(resp))
            }
            // Polled again after it completed: a caller's bug, answered rather than panicking.
            HookProj::Answered { resp } => Poll::Ready(Ok(resp
                .take()
                .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use axum::{body::Body, http::HeaderValue};
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;

    /// Refuses `/no`, tags requests and responses, and counts the inner service's calls.
    #[derive(Clone)]
    struct Tag(&'static str);

    impl Hook for Tag {
        type Carry = bool;

        fn before(&self, req: &mut Request) -> ControlFlow<Response, bool> {
            if req.uri().path() == "/no" {
                return ControlFlow::Break((StatusCode::FORBIDDEN, self.0).into_response());
            }
            req.headers_mut()
                .append("x-before", HeaderValue::from_static(self.0));
            ControlFlow::Continue(req.uri().path() == "/stamp")
        }

        fn after(&self, stamp: bool, resp: &mut Response) {
            if stamp {
                resp.headers_mut()
                    .append("x-after", HeaderValue::from_static(self.0));
            }
        }
    }

    fn service(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<Request, Response = Response, Error = Infallible> + Clone {
        ServiceBuilder::new()
            .layer(HookLayer(Tag("outer")))
            .layer(HookLayer(Tag("inner")))
            .service_fn(move |req: Request| {
                calls.fetch_add(1, Ordering::Relaxed);
                // The order the request's hooks ran in, as the response's body.
                let seen: Vec<_> = req
                    .headers()
                    .get_all("x-before")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .collect();
                async move { Ok::<_, Infallible>(seen.join(",")) }
            })
    }

    async fn body(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn hooks_run_outermost_first_on_the_way_in_and_last_on_the_way_out() {
        let calls = Arc::new(AtomicUsize::new(0));
        let resp = service(calls.clone())
            .oneshot(Request::get("/stamp").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let after: Vec<_> = resp
            .headers()
            .get_all("x-after")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(after, ["inner", "outer"]);
        assert_eq!(body(resp).await, "outer,inner");
        assert_eq!(calls.load(Ordering::Relaxed), 1);

        // `after` gets what `before` carried: no stamp here.
        let resp = service(calls.clone())
            .oneshot(Request::get("/plain").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(resp.headers().get("x-after").is_none());
    }

    #[tokio::test]
    async fn an_answer_from_before_skips_the_inner_service_and_the_after_hooks() {
        let calls = Arc::new(AtomicUsize::new(0));
        let resp = service(calls.clone())
            .oneshot(Request::get("/no").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        // The outer hook answered: the inner hook and the service never saw the request.
        assert_eq!(body(resp).await, "outer");
        assert_eq!(calls.load(Ordering::Relaxed), 0);
    }
}
