//! Request/response hooks as tower layers, for the cross-cutting concerns that decide on the
//! request and at most touch the response's head: the websocket origin check, the HTTP
//! metrics, the per-IP handshake rate, the sticky cookie, the request-head trimming and the
//! CORS credentials strip.
//!
//! Why not axum's `middleware::from_fn`: on every request it clones its inner service, boxes
//! that clone as `Next`, and boxes the middleware's future (two allocations and a copy of the
//! future per layer and request). On a websocket handshake each such layer cost ~2.3k
//! instructions (callgrind, BENCHMARKS.md, issue 18). A [`HookLayer`] calls its inner service in
//! place and returns an unboxed future: no clone, no allocation.
//!
//! A concern that must await something on some paths (the session key's rewrite of a polling
//! handshake's body, the drain guard's race with a closing poll, the cluster's session records
//! and forwards) takes a [`Step::Detour`] there, or finishes with [`Finish::Then`]: those paths
//! pay what `from_fn` paid on every request (a clone of the rest of the stack as [`Next`], a
//! boxed future); the others pay nothing. Being boxed, a detour's future (fred's are ~14 KB)
//! is never part of the future every request moves: with `from_fn`, the cluster's middleware
//! made a 15 KB future copied on each request (~16k instructions of a handshake).
use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{
    extract::Request,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use futures_util::future::BoxFuture;
use tower::{Layer, Service, ServiceExt, util::BoxCloneSyncService};

/// One cross-cutting concern: [`before`](Hook::before) sees the request first and passes it
/// on (with what [`after`](Hook::after) needs to know), answers it itself, or takes it on an
/// async detour; `after` sees the inner service's response.
pub trait Hook: Clone + Send + Sync + 'static {
    /// What `before` hands to `after` (`()` when `after` needs nothing).
    type Carry: Send + 'static;

    /// Does this hook have an [`after`](Hook::after)? `false` for those that keep the default:
    /// their service then keeps no clone of the hook for the response.
    const AFTER: bool = true;

    /// What to do with the request.
    fn before(&self, req: &mut Request) -> Step<Self::Carry>;

    /// Runs on the inner service's response (not on `before`'s own answers or detours).
    fn after(&self, _carry: Self::Carry, resp: Response) -> Finish {
        Finish::Done(resp)
    }
}

/// What [`Hook::before`] decided.
pub enum Step<C> {
    /// Pass the request on; `after` gets the carried value.
    Continue(C),
    /// Answer without calling the inner service.
    Answer(Response),
    /// An async path: gets the request and the rest of the stack, and answers.
    Detour(Detour),
}

/// An async path of a [`Hook`] (boxed: for the rare paths that await something of their own).
pub type Detour = Box<dyn FnOnce(Request, Next) -> BoxFuture<'static, Response> + Send>;

/// What [`Hook::after`] decided.
pub enum Finish {
    /// The response to send.
    Done(Response),
    /// An async rewrite of the response (boxed: rare paths only).
    Then(BoxFuture<'static, Response>),
}

/// The rest of the stack, for a [`Step::Detour`] (what axum's `Next` is to `from_fn`).
pub struct Next(BoxCloneSyncService<Request, Response, Infallible>);

impl Next {
    fn new<S>(inner: S) -> Next
    where
        S: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        Next(BoxCloneSyncService::new(
            inner.map_response(IntoResponse::into_response),
        ))
    }

    /// Run the rest of the stack on `req`.
    pub async fn run(self, req: Request) -> Response {
        match self.0.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }
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

impl<H, S> HookService<H, S> {
    /// `hook` around `inner` (what `HookLayer(hook).layer(inner)` makes).
    pub fn new(hook: H, inner: S) -> Self {
        HookService { hook, inner }
    }
}

impl<H, S> Service<Request> for HookService<H, S>
where
    H: Hook,
    S: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HookFuture<H, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match self.hook.before(&mut req) {
            Step::Continue(carry) => HookFuture::Inner {
                fut: self.inner.call(req),
                // A reference count for the hooks with state; the hooks are small.
                after: H::AFTER.then(|| (self.hook.clone(), carry)),
            },
            Step::Answer(resp) => HookFuture::Answered { resp: Some(resp) },
            Step::Detour(detour) => {
                // The service made ready is the one handed on; a clone stays for later calls.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                HookFuture::Boxed {
                    fut: detour(req, Next::new(ready)),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`HookService`].
    #[project = HookProj]
    pub enum HookFuture<H: Hook, F> {
        Inner { #[pin] fut: F, after: Option<(H, H::Carry)> },
        Boxed { fut: BoxFuture<'static, Response> },
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

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                HookProj::Inner { fut, after } => {
                    let Ok(inner) = ready!(fut.poll(cx));
                    let resp = inner.into_response();
                    let Some((hook, carry)) = after.take() else {
                        return Poll::Ready(Ok(resp));
                    };
                    match hook.after(carry, resp) {
                        Finish::Done(resp) => return Poll::Ready(Ok(resp)),
                        Finish::Then(fut) => self.set(HookFuture::Boxed { fut }),
                    }
                }
                HookProj::Boxed { fut } => return fut.as_mut().poll(cx).map(Ok),
                // Polled again after it completed: a caller's bug, answered rather than panicking.
                HookProj::Answered { resp } => {
                    return Poll::Ready(Ok(resp
                        .take()
                        .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())));
                }
            }
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
        /// The request's path, for `after`.
        type Carry = String;

        fn before(&self, req: &mut Request) -> Step<String> {
            match req.uri().path() {
                "/no" => return Step::Answer((StatusCode::FORBIDDEN, self.0).into_response()),
                // The detour runs the rest of the stack, then tags the response itself.
                "/detour" => {
                    let tag = self.0;
                    return Step::Detour(Box::new(move |req, next| {
                        Box::pin(async move {
                            let mut resp = next.run(req).await;
                            resp.headers_mut()
                                .append("x-detour", HeaderValue::from_static(tag));
                            resp
                        })
                    }));
                }
                _ => {}
            }
            req.headers_mut()
                .append("x-before", HeaderValue::from_static(self.0));
            Step::Continue(req.uri().path().to_owned())
        }

        fn after(&self, path: String, mut resp: Response) -> Finish {
            let tag = HeaderValue::from_static(self.0);
            match path.as_str() {
                "/stamp" => resp.headers_mut().append("x-after", tag),
                // An async rewrite: the body replaced once the inner body is read.
                "/then" => {
                    return Finish::Then(Box::pin(async move {
                        let inner = body(resp).await;
                        format!("{inner}+{}", tag.to_str().unwrap_or("?")).into_response()
                    }));
                }
                _ => false,
            };
            Finish::Done(resp)
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

    #[tokio::test]
    async fn detours_and_async_rewrites_run_the_rest_of_the_stack_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        // Both hooks detour: each runs what is inside it itself (no `x-before` was added).
        let resp = service(calls.clone())
            .oneshot(Request::get("/detour").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let tags: Vec<_> = resp
            .headers()
            .get_all("x-detour")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(tags, ["inner", "outer"]);
        assert_eq!(body(resp).await, "");
        assert_eq!(calls.load(Ordering::Relaxed), 1);

        // `Finish::Then`: the inner hook's rewrite, then the outer's, each once.
        let resp = service(calls.clone())
            .oneshot(Request::get("/then").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(body(resp).await, "outer,inner+inner+outer");
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }
}
