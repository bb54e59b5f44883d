//! Graceful drain on SIGTERM/SIGINT.
//!
//! 1. Readiness flips to 503 and new Engine.IO handshakes are refused with HTTP 503.
//! 2. Existing clients are closed at the *transport* level, one at a time, evenly spread over
//!    `--drain-period`, so standard clients see "transport close" and reconnect by themselves
//!    (to another node) without a reconnect storm. A Socket.IO DISCONNECT packet would be wrong
//!    here: clients treat "io server disconnect" as final and do not reconnect.
//!    * websocket sessions: the TCP connection carrying the websocket is cut
//!      ([`ConnRegistry::kill`](crate::listener::ConnRegistry::kill)); socketioxide has no
//!      public per-socket transport close.
//!    * long-polling sessions: the pending (or next) poll of that session is answered by
//!      [`EngineGuard`] with an Engine.IO CLOSE packet, which the client reports as
//!      "transport close" (python-engineio clients get a failed poll instead, see
//!      `drained_poll_response`). Its POSTs are refused from then on (400, "session closed"),
//!      so that its heartbeat ends it in the engine: a client that never reads could otherwise
//!      keep the session alive for good with blind pongs.
//! 3. Whatever is left is closed with `SocketIo::close()` (Engine.IO close for every session),
//!    remaining TCP connections are cut, and the process exits 0.
//!
//! To find the websocket of a session, [`EngineGuard`] remembers on which TCP connection a
//! `transport=websocket&sid=...` upgrade arrived; a websocket-only session's handshake request
//! (kept by socketioxide as the socket's request parts) carries it directly.
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use socketioxide::{SocketIo, TransportType, adapter::Adapter, socket::Socket};
use tokio::{sync::watch, time::Instant};

use crate::{
    engine_io::{self, query_param},
    hook::{Finish, Hook, Step},
};

use crate::{
    id_hash::IdMap,
    listener::{ConnInfo, ConnRegistry},
    metrics::Metrics,
};

#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    /// Polling sessions whose next poll must be answered with CLOSE, with when each was marked
    /// (entries of sessions that ended without a socket to forget them go with
    /// [`Drain::sweep_closing`]).
    closing: Mutex<IdMap<String, Instant>>,
    /// A session is marked outside a drain ([`Drain::cut_transport`]): polls look `closing`
    /// up (otherwise only while draining, so an ordinary poll takes no lock). Set and reset
    /// under `closing`'s lock: true whenever it holds an entry.
    cut_any: AtomicBool,
    /// Wakes pending polls whenever `closing` grows.
    wake: watch::Sender<u64>,
    /// sid -> TCP connection id of the websocket the session upgraded to.
    /// Written once per upgrade, removed on disconnect: never touched per message.
    ws_conns: Mutex<IdMap<String, u64>>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: AtomicBool::new(false),
            closing: Mutex::default(),
            cut_any: AtomicBool::new(false),
            wake: watch::Sender::new(0),
            ws_conns: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start(&self) {
        self.draining.store(true, Ordering::Release);
    }

    fn note_ws(&self, sid: &str, conn: u64) {
        lock(&self.ws_conns).insert(sid.to_owned(), conn);
    }

    /// Forget a session (called when its socket disconnects).
    pub fn forget(&self, sid: &str) {
        // Most sessions never upgraded (websocket-only ones are not recorded): no hashing then.
        let mut ws = lock(&self.ws_conns);
        if !ws.is_empty() {
            ws.remove(sid);
        }
        drop(ws);
        if self.marks_sessions() {
            let mut closing = lock(&self.closing);
            closing.remove(sid);
            if closing.is_empty() {
                self.cut_any.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Forget the sessions marked closing longer than `older_than` ago. A session the gateway
    /// closes without a namespace socket (a polling body refused before its first CONNECT, a
    /// session left with none) has no disconnection to forget it; its heartbeat has ended it in
    /// the engine by then (its posts are refused). Review 10: one client cutting such sessions
    /// in a loop grew the set by ~200 bytes each, for good, and every poll of every client
    /// then looked it up.
    pub fn sweep_closing(&self, older_than: Duration) {
        if !self.cut_any.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut closing = lock(&self.closing);
        closing.retain(|_, at| now.saturating_duration_since(*at) < older_than);
        if closing.is_empty() {
            self.cut_any.store(false, Ordering::Relaxed);
        }
    }

    /// The TCP connection carrying an upgraded session's websocket, if one was recorded.
    pub fn ws_conn(&self, sid: &str) -> Option<u64> {
        lock(&self.ws_conns).get(sid).copied()
    }

    fn mark_closing(&self, sid: String) {
        let mut closing = lock(&self.closing);
        closing.insert(sid, Instant::now());
        self.cut_any.store(true, Ordering::Relaxed);
        drop(closing);
        self.wake.send_modify(|g| *g = g.wrapping_add(1));
    }

    fn is_closing(&self, sid: &str) -> bool {
        self.marks_sessions() && lock(&self.closing).contains_key(sid)
    }

    fn marks_sessions(&self) -> bool {
        self.is_draining() || self.cut_any.load(Ordering::Relaxed)
    }

    /// End one client's Engine.IO session so that it looks lost, not closed: standard clients
    /// then reconnect by themselves (they take a Socket.IO DISCONNECT as final). A websocket's
    /// TCP connection is cut; a long-polling session's pending (or next) poll is answered with
    /// CLOSE. Every namespace of that client goes with it. False when a websocket's connection
    /// is not known (its heartbeat ends it).
    pub fn cut_transport<A: Adapter>(&self, conns: &ConnRegistry, s: &Socket<A>) -> bool {
        self.cut_session(
            conns,
            s.id.to_string(),
            s.transport_type(),
            websocket_handshake_conn(s.req_parts()),
        )
    }

    /// [`Drain::cut_transport`] for a session known by its id: `transport` is its transport
    /// when last seen, `websocket_handshake` the connection of its handshake if that was a
    /// websocket ([`websocket_handshake_conn`]). A session that upgraded since is cut by its
    /// recorded websocket connection.
    pub fn cut_session(
        &self,
        conns: &ConnRegistry,
        sid: String,
        transport: TransportType,
        websocket_handshake: Option<u64>,
    ) -> bool {
        if let Some(c) = self.ws_conn(&sid).or(websocket_handshake) {
            return conns.kill(c);
        }
        match transport {
            // Its connection was not recorded: its heartbeat ends it.
            TransportType::Websocket => false,
            TransportType::Polling => {
                self.mark_closing(sid);
                true
            }
        }
    }

    /// Resolves once `sid` is marked for closing.
    async fn closed(&self, sid: &str) {
        let mut rx = self.wake.subscribe();
        loop {
            if self.is_closing(sid) {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// An Engine.IO v4 polling payload holding a single CLOSE packet.
///
/// python-engineio treats a CLOSE packet as a deliberate shutdown and does not reconnect, but it
/// does reconnect after a failed poll; so its polls (recognised by the `t` cache-buster, a float
/// of seconds there, an alphanumeric id in JavaScript clients) get a 503 instead. A client
/// mistaken for python sees "transport error" instead of "transport close" and still reconnects.
fn drained_poll_response(python_client: bool) -> Response {
    if python_client {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "server is draining",
        )
            .into_response();
    }
    close_packet_response()
}

fn close_packet_response() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; charset=UTF-8")
        .body(Body::from("1"))
        .unwrap_or_else(|_| StatusCode::OK.into_response())
}

/// In front of the Socket.IO service (only `/socket.io/` paths are inspected; a [`Hook`]):
/// refuses handshakes while draining, records websocket upgrades, and answers the polls of
/// sessions being drained with CLOSE.
#[derive(Clone)]
pub struct EngineGuard {
    pub drain: Arc<Drain>,
    pub metrics: Arc<Metrics>,
}

impl Hook for EngineGuard {
    /// A websocket request's session and TCP connection, recorded once the engine upgraded it.
    type Carry = Option<(String, u64)>;

    fn before(&self, req: &mut Request) -> Step<Self::Carry> {
        let shape = engine_io::Shape::of(req);
        if !shape.engine_io {
            return Step::Continue(None);
        }
        let query = req.uri().query().unwrap_or("");
        let sid = if shape.has_sid {
            engine_io::session_sid(req)
        } else {
            None
        };
        let Some(sid) = sid else {
            if self.drain.is_draining() {
                self.metrics
                    .connections_refused_total
                    .with_label_values(&["draining"])
                    .inc();
                return Step::Answer(engine_io::retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server is draining",
                ));
            }
            return Step::Continue(None);
        };
        match shape.transport {
            // Recorded only once the engine answered 101: a `transport=websocket` request
            // without `Upgrade` is answered 400 and its connection stays plain HTTP, which
            // behind a balancer is a pooled one carrying other clients' requests (recorded at
            // the request, the session's end cut it: review 7).
            engine_io::Named::Websocket => Step::Continue(
                req.extensions()
                    .get::<ConnectInfo<ConnInfo>>()
                    .and_then(|ConnectInfo(c)| c.id)
                    .map(|conn| (sid.to_owned(), conn)),
            ),
            engine_io::Named::Polling if req.method() == Method::GET => {
                let python_client = query_param(query, "t").is_some_and(|t| t.contains('.'));
                if self.drain.is_closing(sid) {
                    return Step::Answer(drained_poll_response(python_client));
                }
                // Dropping socketioxide's pending poll is safe: it only releases the session's
                // receive lock; packets are taken from the queue only when the response is
                // built. Closing is looked at first: a session marked closing and then sent a
                // packet (an expired socket's server-side DISCONNECT, `auth::expiry`) answers
                // CLOSE, never that packet, so its client still reconnects.
                let (drain, sid) = (self.drain.clone(), sid.to_owned());
                Step::Detour(Box::new(move |req, next| {
                    Box::pin(async move {
                        tokio::select! {
                            biased;
                            _ = drain.closed(&sid) => drained_poll_response(python_client),
                            resp = next.run(req) => resp,
                        }
                    })
                }))
            }
            // A session marked closing takes nothing more: the engine would keep it alive on
            // pongs posted blind (GETs answered CLOSE), and run the events posted with them.
            engine_io::Named::Polling
                if req.method() == Method::POST && self.drain.is_closing(sid) =>
            {
                Step::Answer(engine_io::error_response(
                    StatusCode::BAD_REQUEST,
                    engine_io::UNKNOWN_SID,
                    "session closed",
                ))
            }
            _ => Step::Continue(None),
        }
    }

    fn after(&self, upgrade: Self::Carry, resp: Response) -> Finish {
        if let Some((sid, conn)) = upgrade
            && resp.status() == StatusCode::SWITCHING_PROTOCOLS
        {
            self.drain.note_ws(&sid, conn);
        }
        Finish::Done(resp)
    }
}

/// One Engine.IO session to close.
struct Session {
    transport: TransportType,
    websocket_handshake: Option<u64>,
}

/// The listener's id of the TCP connection that carried a session's handshake (for a
/// websocket-only session, the connection of its websocket).
fn handshake_conn(parts: &axum::http::request::Parts) -> Option<u64> {
    parts
        .extensions
        .get::<ConnectInfo<ConnInfo>>()
        .and_then(|c| c.0.id)
}

/// `handshake_conn` when the handshake was a websocket (then it is the session's own
/// connection), else `None`: a polling handshake's connection may since carry other requests,
/// other clients' too behind a balancer that pools its upstream connections, so it is never
/// cut for one session.
pub fn websocket_handshake_conn(parts: &axum::http::request::Parts) -> Option<u64> {
    // The shape the outermost layer stashed in the handshake's extensions: no query scan.
    (engine_io::Shape::of_parts(parts).transport == engine_io::Named::Websocket)
        .then(|| handshake_conn(parts))
        .flatten()
}

/// Run the drain to completion (see the module doc). Returns when every client is closed.
pub async fn run<A: Adapter>(
    drain: &Drain,
    conns: &ConnRegistry,
    metrics: &Metrics,
    period: Duration,
    node_id: &str,
    io: SocketIo<A>,
) {
    drain.start();
    metrics.draining.set(1);

    // socketioxide uses the Engine.IO sid for every namespace socket of a client, so dedupe
    // by sid: one transport close ends all of that client's namespaces.
    let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
    for ns in io.nsps() {
        for s in ns.sockets() {
            sessions.entry(s.id.to_string()).or_insert_with(|| Session {
                transport: s.transport_type(),
                websocket_handshake: websocket_handshake_conn(s.req_parts()),
            });
        }
    }
    let n = sessions.len();
    tracing::info!(
        node_id,
        sessions = n,
        period_ms = period.as_millis() as u64,
        "draining: closing clients at the transport level"
    );
    let start = Instant::now();
    let step = if n > 0 {
        period / n as u32
    } else {
        Duration::ZERO
    };
    for (i, (sid, s)) in sessions.into_iter().enumerate() {
        tokio::time::sleep_until(start + step * i as u32).await;
        if !drain.cut_session(conns, sid.clone(), s.transport, s.websocket_handshake) {
            tracing::debug!(%sid, "websocket connection not found; closed at the end");
        }
    }
    // Let the last closes reach their clients before the final sweep (no wait when idle).
    if n > 0 {
        tokio::time::sleep_until(start + step * n as u32 + Duration::from_millis(100)).await;
    }
    if tokio::time::timeout(Duration::from_secs(5), io.close())
        .await
        .is_err()
    {
        tracing::warn!("timed out closing remaining sessions");
    }
    conns.kill_all();
    tracing::info!(node_id, "drain complete");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = "EIO=4&transport=polling&sid=abc&t=x";
        assert_eq!(query_param(q, "sid"), Some("abc"));
        assert_eq!(query_param(q, "transport"), Some("polling"));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(query_param("", "sid"), None);
    }

    /// Only a websocket handshake's connection is the session's own: a polling handshake's
    /// may be a balancer's pooled connection carrying other clients' requests since.
    #[test]
    fn a_polling_handshake_connection_is_never_the_one_to_cut() {
        let parts = |uri: &str| {
            let (mut p, ()) = axum::http::Request::builder()
                .uri(uri)
                .body(())
                .expect("valid request")
                .into_parts();
            p.extensions.insert(ConnectInfo(ConnInfo {
                id: Some(7),
                remote: "127.0.0.1:1".parse().expect("an address"),
            }));
            p
        };
        let ws = parts("/socket.io/?EIO=4&transport=websocket");
        assert_eq!(websocket_handshake_conn(&ws), Some(7));
        // As the outermost layer leaves it: the shape stashed in the extensions.
        let mut stashed = axum::http::Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .body(axum::body::Body::empty())
            .expect("valid request");
        engine_io::Shape::stash(&mut stashed);
        let (mut stashed, _) = stashed.into_parts();
        stashed.extensions.insert(ConnectInfo(ConnInfo {
            id: Some(8),
            remote: "127.0.0.1:1".parse().expect("an address"),
        }));
        assert_eq!(websocket_handshake_conn(&stashed), Some(8));
        let polling = parts("/socket.io/?EIO=4&transport=polling");
        assert_eq!(handshake_conn(&polling), Some(7));
        assert_eq!(websocket_handshake_conn(&polling), None);
        // An upgraded session without a recorded websocket is not cut through its handshake.
        let d = Drain::default();
        let conns = ConnRegistry::new(
            prometheus::IntCounter::new("r", "r").expect("a counter"),
            prometheus::IntCounter::new("s", "s").expect("a counter"),
        );
        assert!(!d.cut_session(&conns, "x".into(), TransportType::Websocket, None));
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_cut_without_a_socket_are_forgotten_and_the_lookups_stop() {
        let d = Drain::default();
        let conns = ConnRegistry::default();
        // A polling session cut outside a drain (no socket will `forget` it: review 10).
        assert!(d.cut_session(&conns, "s1".into(), TransportType::Polling, None));
        assert!(d.is_closing("s1") && d.marks_sessions());
        d.sweep_closing(Duration::from_secs(10));
        assert!(d.is_closing("s1"), "kept while younger than the age given");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(d.cut_session(&conns, "s2".into(), TransportType::Polling, None));
        tokio::time::advance(Duration::from_secs(5)).await;
        d.sweep_closing(Duration::from_secs(10));
        assert!(
            !d.is_closing("s1") && d.is_closing("s2"),
            "the older one forgotten"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        d.sweep_closing(Duration::from_secs(10));
        assert!(!d.is_closing("s2"));
        assert!(!d.marks_sessions(), "no entry left: polls stop looking");
    }

    #[tokio::test]
    async fn closing_wakes_waiters() {
        let d = Arc::new(Drain::default());
        d.start();
        let d2 = d.clone();
        let waiter = tokio::spawn(async move { d2.closed("s1").await });
        tokio::task::yield_now().await;
        d.mark_closing("other".into());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        d.mark_closing("s1".into());
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("no panic");
    }
}
