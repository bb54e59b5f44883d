//! Long-polling requests that ride through a dying forwarder: a newer poll takes over a held
//! one, a retried poll gets the answer its first try lost, a retried post is not applied twice.
//!
//! # Why
//!
//! Behind a round-robin balancer a poll reaches the session's owner through whichever node the
//! balancer picked (`cluster/forward.rs`). When that forwarder dies (SIGKILL, crash), three
//! things went wrong for clients whose own node is alive (measured by
//! `tests/js/faults-node.test.mjs`, before this module: "transport error" disconnects and lost
//! messages):
//!
//! 1. **A held poll.** The owner still serves the poll that came through the dead node (its HTTP
//!    server does not notice that the forwarder's connection went away while the handler
//!    waits). The client's next poll, or the balancer's retry of the dead one, then finds the
//!    session busy, and engineioxide closes a session that gets two concurrent polls.
//! 2. **A lost answer.** The owner answered the poll, with packets it took out of the session,
//!    and the forwarder died before passing them on. The balancer retries the poll
//!    (`retry-on empty-response`), and the packets are gone: Engine.IO has no retransmission.
//! 3. **A retried post.** The balancer may retry a `POST` the owner already applied; its
//!    packets (a `publish`, say) would be applied twice.
//!
//! # How
//!
//! Engine.IO clients send a fresh cache-busting `t` with every request (engine.io-client's
//! `timestampRequests`, python-engineio likewise), and a balancer's retry repeats the request
//! as it was, `t` included. So, per polling session on its owner:
//!
//! * a slot: an async mutex held by the poll the engine is serving, and a generation counter
//!   bumped by every new poll. A new poll bumps the generation, wakes the holder and waits for
//!   the mutex. The holder races the engine against "the generation moved"; when it moved
//!   first, the holder drops the engine's future (engineioxide waits on a channel receive,
//!   which loses nothing when cancelled, and its session lock goes with the future) and answers
//!   a NOOP packet (`6`), which a client that is still there ignores. A response the engine
//!   already produced always wins (biased select). (1)
//! * the last answered poll's `t` and body: a poll presenting that `t` again is a retry of it,
//!   and gets the same body again instead of new packets. The body is kept until the next poll
//!   with another `t` shows the client has it. (2)
//! * the last posted `t`: a post presenting it again is answered `ok` without reaching the
//!   engine. (3)
//!
//! A stock client never sends two concurrent polls or repeats a `t`; only a holder of the
//! session's secret key can (see [`crate::session_key`]), so none of this touches anyone else.
//! A client that sends no `t` gets (1) only.
//!
//! Cost: polling requests only (never websockets, never the broadcast path): one short map lock
//! per request, and per polling session a small entry plus, between a poll and the next, its
//! body (a reference-counted buffer the engine already built). Entries of ended sessions go
//! with their session keys ([`crate::session_key::sweep_forever`]).
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use socketioxide::socket::Sid;
use tokio::sync::Notify;

/// The last poll the engine answered for a session.
struct Answered {
    t: String,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

#[derive(Default)]
struct Session {
    /// Held by the poll being served; holds the last answered poll.
    serving: tokio::sync::Mutex<Option<Answered>>,
    /// Bumped by every poll that arrives.
    generation: AtomicU64,
    /// Wakes the holder when the generation moves.
    moved: Notify,
    /// `t` of the last post passed to the engine.
    last_post: Mutex<Option<String>>,
    /// Bytes of the poll answers the engine gave (a retried poll's repeat and a NOOP not
    /// counted): what a replay measures as delivered ([`PollingSessions::progress`]).
    delivered: AtomicU64,
}

/// The bytes of poll answers served so far for one polling session
/// ([`PollingSessions::progress`]).
#[derive(Clone)]
pub struct Polled(Arc<Session>);

impl Polled {
    /// Bytes of the poll answers the engine gave this session so far.
    pub fn bytes(&self) -> u64 {
        self.0.delivered.load(Ordering::Relaxed)
    }

    /// Is this the same session's as `other`'s?
    pub fn same(&self, other: &Polled) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The polling sessions of this node (the ones whose requests carried a session key).
#[derive(Default)]
pub struct PollingSessions {
    sessions: Mutex<HashMap<Sid, Arc<Session>>>,
}

/// Recover a guard from a poisoned lock: every critical section here is a single insert,
/// remove or replace, which a panic cannot leave half done.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PollingSessions {
    fn session(&self, sid: Sid) -> Arc<Session> {
        lock(&self.sessions).entry(sid).or_default().clone()
    }

    /// Number of sessions tracked (tests, debugging).
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of poll answers served so far for session `sid` (its entry is made if it has
    /// none yet; ended sessions' entries go with [`PollingSessions::retain`]). One map lock: a
    /// replay resolves it once per wait round, never per message.
    pub fn progress(&self, sid: Sid) -> Polled {
        Polled(self.session(sid))
    }

    /// Forget the sessions for which `alive` is false.
    pub fn retain(&self, alive: impl Fn(Sid) -> bool) {
        lock(&self.sessions).retain(|sid, _| alive(*sid));
    }

    /// Serve a polling `GET` of session `sid` carrying cache-buster `t`: wait for an older
    /// poll of the session to give way, replay the last answer if `t` repeats it, else run
    /// `serve` (the engine) until it answers or a newer poll arrives.
    pub async fn get<F>(&self, sid: Sid, t: Option<&str>, serve: F) -> Response
    where
        F: Future<Output = Response>,
    {
        let t = cache_buster(t);
        let session = self.session(sid);
        let generation = session.generation.fetch_add(1, Ordering::AcqRel) + 1;
        session.moved.notify_waiters();
        let mut last = session.serving.lock().await;
        if session.generation.load(Ordering::Acquire) != generation {
            // A newer poll arrived while this one waited: it is the one the client waits for.
            return noop();
        }
        if let (Some(t), Some(a)) = (t, last.as_ref())
            && a.t == t
        {
            tracing::debug!(%sid, "a retried poll gets the answer its first try lost");
            return answer(a.content_type.clone(), a.body.clone());
        }
        // A poll with another `t`: the client has the previous answer.
        *last = None;
        let resp = tokio::select! {
            biased;
            resp = serve => resp,
            () = superseded(&session, generation) => {
                tracing::debug!(%sid, "a newer poll of the session took over from this one");
                return noop();
            }
        };
        if resp.status() != StatusCode::OK {
            return resp;
        }
        let Some(t) = t else {
            // engineioxide's answers are whole buffers: their size is known without reading.
            let n = axum::body::HttpBody::size_hint(resp.body()).lower();
            session.delivered.fetch_add(n, Ordering::Relaxed);
            return resp;
        };
        let (parts, body) = resp.into_parts();
        // engineioxide's poll answers are in memory already (bounded by its `max_payload`):
        // collecting one takes its buffer, and cannot fail.
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%sid, error = %e, "cannot read a poll answer");
                return crate::engine_io::error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    500,
                    "poll answer unreadable",
                );
            }
        };
        session
            .delivered
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        *last = Some(Answered {
            t: t.to_owned(),
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body: body.clone(),
        });
        Response::from_parts(parts, Body::from(body))
    }

    /// Is this polling `POST` of `sid` a retry of the last one (same `t`)? If not, it is
    /// remembered as the last one.
    pub fn post_is_retry(&self, sid: Sid, t: Option<&str>) -> bool {
        let Some(t) = cache_buster(t) else {
            return false;
        };
        let session = self.session(sid);
        let mut last = lock(&session.last_post);
        if last.as_deref() == Some(t) {
            tracing::debug!(%sid, "a retried post, applied already");
            return true;
        }
        *last = Some(t.to_owned());
        false
    }
}

/// Resolves once a newer poll of the session has arrived.
async fn superseded(session: &Session, generation: u64) {
    loop {
        let moved = session.moved.notified();
        tokio::pin!(moved);
        // Registered before the check, so a bump between the check and the await wakes us.
        moved.as_mut().enable();
        if session.generation.load(Ordering::Acquire) != generation {
            return;
        }
        moved.await;
    }
}

fn answer(content_type: Option<HeaderValue>, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    if let Some(ct) = content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp
}

/// An Engine.IO NOOP packet: the answer a replaced poll gets.
fn noop() -> Response {
    answer(
        Some(HeaderValue::from_static("text/plain; charset=UTF-8")),
        Bytes::from_static(b"6"),
    )
}

/// The answer to a retried post: what engineioxide answers a post it applied.
pub fn post_ok() -> Response {
    answer(
        Some(HeaderValue::from_static("text/plain; charset=UTF-8")),
        Bytes::from_static(b"ok"),
    )
}

/// Longest `t` kept for retries: engine.io-client's are 7-8 characters (a yeast id), other
/// stock clients send a millisecond timestamp. A longer one is used as none (no retry
/// replay): a session would otherwise keep whatever its client sends, up to hyper's header
/// limit, twice (review 8).
const MAX_CACHE_BUSTER: usize = 64;

fn cache_buster(t: Option<&str>) -> Option<&str> {
    t.filter(|t| t.len() <= MAX_CACHE_BUSTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn text(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 100).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    async fn reply(s: &'static str) -> Response {
        Response::new(Body::from(s))
    }

    #[tokio::test]
    async fn a_newer_poll_takes_over_a_held_one() {
        let polls = Arc::new(PollingSessions::default());
        let s = Sid::new();
        // The first poll waits forever (its path is gone).
        let first = tokio::spawn({
            let polls = polls.clone();
            async move {
                let r = polls.get(s, Some("a"), std::future::pending()).await;
                text(r).await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = polls.get(s, Some("b"), reply("4hi"));
        let second = tokio::time::timeout(Duration::from_secs(2), second)
            .await
            .expect("the second poll is served");
        assert_eq!(text(second).await, "4hi");
        let first = tokio::time::timeout(Duration::from_secs(2), first)
            .await
            .expect("the first poll gave way")
            .unwrap();
        assert_eq!(first, "6");
    }

    #[tokio::test]
    async fn a_retried_poll_gets_the_lost_answer_again() {
        let polls = PollingSessions::default();
        let s = Sid::new();
        assert_eq!(
            text(polls.get(s, Some("a"), reply("4one")).await).await,
            "4one"
        );
        // The retry (same t) must not reach the engine: its answer would be new packets.
        let engine_reached = std::sync::atomic::AtomicBool::new(false);
        let retry = polls
            .get(s, Some("a"), async {
                engine_reached.store(true, Ordering::Relaxed);
                Response::new(Body::from("4two"))
            })
            .await;
        assert_eq!(text(retry).await, "4one");
        assert!(!engine_reached.load(Ordering::Relaxed));
        // The next poll (new t) gets new packets, and the kept answer is dropped.
        assert_eq!(
            text(polls.get(s, Some("b"), reply("4two")).await).await,
            "4two"
        );
        assert_eq!(
            text(polls.get(s, Some("b"), reply("4x")).await).await,
            "4two"
        );
        // Without t: nothing is replayed.
        assert_eq!(text(polls.get(s, None, reply("4y")).await).await, "4y");
        assert_eq!(text(polls.get(s, None, reply("4z")).await).await, "4z");
        // A `t` longer than a cache buster is not kept: nothing is replayed for it either.
        let long = "x".repeat(MAX_CACHE_BUSTER + 1);
        assert_eq!(
            text(polls.get(s, Some(&long), reply("4v")).await).await,
            "4v"
        );
        assert_eq!(
            text(polls.get(s, Some(&long), reply("4w")).await).await,
            "4w"
        );
        assert!(!polls.post_is_retry(s, Some(&long)));
        assert!(
            !polls.post_is_retry(s, Some(&long)),
            "not kept, so never a retry"
        );
    }

    #[tokio::test]
    async fn sessions_are_independent_and_ended_ones_go() {
        let polls = PollingSessions::default();
        let (a, b) = (Sid::new(), Sid::new());
        let held = polls.get(b, Some("1"), std::future::pending());
        tokio::pin!(held);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), held.as_mut())
                .await
                .is_err()
        );
        assert_eq!(text(polls.get(a, Some("1"), reply("x")).await).await, "x");
        assert_eq!(polls.len(), 2);
        polls.retain(|sid| sid == b);
        assert_eq!(polls.len(), 1);
    }

    #[tokio::test]
    async fn a_ready_answer_wins_over_the_take_over() {
        let polls = Arc::new(PollingSessions::default());
        let s = Sid::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let polls = polls.clone();
            async move {
                let r = polls
                    .get(s, Some("a"), async move {
                        let _ = rx.await;
                        Response::new(Body::from("4data"))
                    })
                    .await;
                text(r).await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The engine's answer becomes ready and a newer poll arrives before the first poll runs
        // again (a current-thread runtime: nothing else runs until we await).
        tx.send(()).unwrap();
        let session = polls.session(s);
        session.generation.fetch_add(1, Ordering::AcqRel);
        session.moved.notify_waiters();
        assert_eq!(first.await.unwrap(), "4data");
    }

    #[test]
    fn a_retried_post_is_recognised() {
        let polls = PollingSessions::default();
        let s = Sid::new();
        assert!(!polls.post_is_retry(s, Some("a")));
        assert!(polls.post_is_retry(s, Some("a")));
        assert!(!polls.post_is_retry(s, Some("b")));
        assert!(!polls.post_is_retry(s, None));
        assert!(!polls.post_is_retry(s, None));
    }
}
