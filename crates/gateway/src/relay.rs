//! The built-in relay: what a connected client may do.
//!
//! * `join` (room) / `leave` (room): ack `{ok:true}` or `{ok:false,error}`; `join` is checked
//!   against the `can_join` rules.
//! * `publish` `{room?, event, data}`: `event` is emitted to the room (or the whole namespace)
//!   with the sender excluded, if the `can_publish` rules allow; reserved event names are refused.
//! * any other event would go upstream to a sink; with no sink configured it is dropped,
//!   counted (`dropped_messages_total{reason="no_sink"}`) and answered with an error ack.
//!
//! Every client event first takes a token from the connection's bucket (`--event-rate`).
//! Payloads are carried as `rmpv::Value`, which keeps binary attachments binary end to end.
use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::json;
use sio_wire::history::StreamId;
use socketioxide::{
    BroadcastError, ParserError, SocketIo,
    adapter::Adapter,
    extract::{Event, SocketRef, State, TryData},
    handler::{FromMessageParts, Value},
    socket::{DisconnectReason, Sid, Socket},
};

use crate::{
    ack::Ack,
    engine_sessions::{Left, Pending, TooMany, Transport},
    event_rate::Gate,
    history::{
        Recovery, RoomHistory,
        message::{Args, Delivery, Mark, Offset},
        metrics::outcome,
        replay::{self, ReplayError},
        since::{self, JoinArg, JoinArgError, Since},
        stream::{Page, Read, StoreError, StreamStore},
    },
    limits::TokenBucket,
    namespaces::EnterError,
    state::Gateway,
    warn_limit::WarnLimit,
};

/// Why a namespace connection is refused; the text reaches the client as its
/// `connect_error` message.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("namespace paths may not contain `#`")]
    NamespaceName,
    #[error("server is draining, reconnect later")]
    Draining,
    #[error("server full: max connections reached")]
    Full,
    #[error(transparent)]
    TooManyNamespaces(#[from] crate::namespaces::TooMany),
    #[error(transparent)]
    Namespace(#[from] EnterError),
    #[error(transparent)]
    TooManyHere(#[from] crate::namespaces::TooManyHere),
    #[error("too many connection attempts on this session at once; retry after the others")]
    AttemptsAtOnce,
    #[error("too many refused connection attempts on this session")]
    AttemptsRefused,
    #[error("namespaces connected again too often on this session; slow down")]
    AttemptsTooFast,
    #[error("the cluster cannot be reached to check this connection; retry later")]
    ClusterUnavailable,
}

/// Connect middleware: refuse while draining, when the node is full, or past
/// `--max-namespaces`. A refused connect to a pattern namespace releases it (see `namespaces`).
pub async fn admit<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(gw): State<Arc<Gateway>>,
) -> Result<(), Refusal> {
    let res = admit_check(&s, &gw);
    if res.is_err() {
        gw.namespaces.release(&io, s.ns());
    }
    res
}

fn admit_check<A: Adapter>(s: &SocketRef<A>, gw: &Gateway) -> Result<(), Refusal> {
    let refused = |reason: &str| {
        gw.metrics
            .connections_refused_total
            .with_label_values(&[reason])
            .inc()
    };
    // `#` separates a namespace from a room in the Redis adapter's channels and in history
    // keys: `/t-a#r` would be room `r` of `/t-a` there (review 8). Patterns match it, so it is
    // refused here, before anything uses the name (socketioxide made the namespace before this
    // middleware: `admit` releases it at once).
    if s.ns().contains('#') {
        refused("namespace_name");
        return Err(Refusal::NamespaceName);
    }
    if gw.drain.is_draining() {
        refused("draining");
        return Err(Refusal::Draining);
    }
    if gw.conn_limit.is_full() {
        refused("max_connections");
        return Err(Refusal::Full);
    }
    if let Err(e) = gw.namespaces.check(s.ns()) {
        refused("max_namespaces");
        return Err(e.into());
    }
    // Last: an admitted CONNECT is in progress until `install` takes it (or it is refused).
    match gw.engine_sessions.attempt(s.id, Transport::of(s)) {
        Ok(pending) => {
            s.extensions.insert(Arc::new(pending));
            Ok(())
        }
        Err(TooMany::AtOnce) => {
            refused("connect_attempts");
            Err(Refusal::AttemptsAtOnce)
        }
        Err(TooMany::TooFast) => {
            refused("connect_attempts");
            Err(Refusal::AttemptsTooFast)
        }
        Err(TooMany::Refused) => {
            refused("connect_attempts");
            tracing::debug!(node_id = %gw.node_id(), sid = %s.id, "too many refused CONNECTs: session cut");
            gw.drain.cut_transport(&gw.conns, s);
            Err(Refusal::AttemptsRefused)
        }
    }
}

/// Per-connection context captured by the socket's handlers.
struct Conn {
    gw: Arc<Gateway>,
    /// The session's `--event-rate` bucket, shared by all its namespace sockets.
    bucket: Arc<TokenBucket>,
    /// This socket's place among its session's pattern namespaces: given back at its
    /// disconnection (socketioxide may keep a disconnected socket, and so this state, until
    /// its session ends).
    namespace_place: std::sync::Mutex<Option<crate::namespaces::SessionPlace>>,
    /// Authenticated subject (`{sub}` in room rules).
    sub: Option<String>,
    /// What the credentials grant beyond the configured rules (see `auth`).
    ident: Option<Arc<crate::auth::Identity>>,
    /// Makes `--max-rooms`' check and the join one step: handlers of one connection run
    /// concurrently (on any worker), and two joins checked before either joined would both
    /// pass. Taken once per join, never across an await.
    join_step: std::sync::Mutex<()>,
    /// This connection's recovering joins (`join {room, since}`) run one at a time, in turn
    /// (see [`Conn::begin_recovery`]).
    recovery_turn: tokio::sync::Mutex<()>,
    /// Recovering joins of this connection running or waiting for their turn.
    recoveries: AtomicU32,
    /// Acks waiting for room in this connection's queue (see `ack`).
    replies: crate::ack::Replies,
    /// This session's events at the upstream sink (capped by the webhook sink; shared by the
    /// session's namespace sockets).
    upstream: Arc<crate::upstream::InFlight>,
    /// When the credentials expire and the session is cut (taken back at disconnection).
    expiry: Option<crate::auth::expiry::Scheduled>,
}

/// Recovering joins one connection may have running or waiting; more are refused.
const MAX_RECOVERIES: u32 = 8;

/// A connection's recovering join while it runs: its turn, and its place in the count.
struct Recovering<'a> {
    _turn: tokio::sync::MutexGuard<'a, ()>,
    count: &'a AtomicU32,
}

impl Drop for Recovering<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Deserialize)]
struct Publish {
    #[serde(default)]
    room: Option<String>,
    event: String,
    #[serde(default = "nil")]
    data: rmpv::Value,
}

fn nil() -> rmpv::Value {
    rmpv::Value::Nil
}

/// The `publish` argument: `TryData<Publish>`, after replacing lone UTF-16 surrogate escapes
/// in the event's JSON text with `\ufffd` (a cut emoji, `"\ud83d"`, which serde_json and so
/// socketioxide refuse). Relaying the exact text is not possible without carrying raw JSON
/// past socketioxide's serializer and the cluster's msgpack (UTF-8 both), so only the lone
/// surrogate changes; see [`sio_wire::json::replace_lone_surrogates`].
/// Cost: one scan of the text for backslashes; a copy of it only when a lone surrogate is in it.
struct PublishArg(Result<Publish, ParserError>);

impl<A: Adapter> FromMessageParts<A> for PublishArg {
    type Error = std::convert::Infallible;
    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        if let Value::Str(text, _) = v
            && let Some(fixed) = sio_wire::json::replace_lone_surrogates(text.as_str())
        {
            *text = fixed.into();
        }
        let TryData(p) = TryData::<Publish>::from_message_parts(s, v, ack_id)?;
        Ok(PublishArg(p))
    }
}

fn ok() -> serde_json::Value {
    json!({ "ok": true })
}

fn err(msg: impl std::fmt::Display) -> serde_json::Value {
    json!({ "ok": false, "error": msg.to_string() })
}

/// The `extra` of a tracked join whose `since` is not a position of this history (malformed,
/// forged, ahead of it): joined without recovery. A position is what the client last received,
/// which another client may have forged (review 8): it never keeps a socket out of a room.
fn invalid_since(why: impl std::fmt::Display) -> serde_json::Value {
    json!({ "recovered": false, "reason": outcome::INVALID, "detail": why.to_string() })
}

/// The ack of a tracked join: `{ok:true, epoch, offset}` (the history's position), plus `extra`.
fn position(
    epoch: &str,
    last: impl std::fmt::Display,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut v = json!({ "ok": true, "epoch": epoch, "offset": last.to_string() });
    if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
    v
}

/// Cluster mode: the stream entries a recovering join reads at a time (one `EVAL` each), at
/// most, and the bytes (events' and arguments' text; a page ends with the entry that reaches
/// them, at least one). Each page is sent before the next is read, so a replay holds one page,
/// not the whole stream: with the replay's window of bytes not yet delivered
/// (`history::flow::WINDOW`), about 1.25 MiB plus two messages per replay.
const REPLAY_PAGE: usize = 256;
const REPLAY_PAGE_BYTES: usize = 256 * 1024;

/// How a cluster replay ended (when it did not fail).
enum End {
    /// Everything that followed `since` was sent.
    Recovered,
    /// What followed `since`, or the last offset sent, was trimmed from the stream.
    Trimmed,
    /// The history was lost and started over (another epoch).
    Epoch,
    /// Everything that followed `since` was looked at, but entries no gateway or emitter
    /// wrote (oversized, malformed: `history::stream::Skipped`) were left out.
    Skipped,
    /// `since` is ahead of the history (forged): joined without recovery.
    Invalid(String),
}

/// Refusal of a client's join of another socket's own-id room, or leave of its own.
const SOCKET_ID_ROOM: &str =
    "a socket's own room (named after its id) can be neither joined nor left";

/// Refusal of a recovering join while [`MAX_RECOVERIES`] of the same connection run or wait.
const TOO_MANY_RECOVERIES: &str =
    "too many recovering joins in progress on this connection (8): wait for their answers";

/// Refusal of a client's publish into a socket's own-id room (backends' direct messages).
const SOCKET_ID_ROOM_PUBLISH: &str = "a socket's own room (named after its id) is for direct messages from backends: clients cannot publish to it";

use crate::names::valid_len as valid_name;

/// A client event over `--event-rate`: counted, and refused in its ack if it has one (see
/// [`crate::event_rate::Gate`]).
impl crate::event_rate::Door for Conn {
    fn admit(&self) -> bool {
        self.admit_event()
    }

    fn refuse<A: Adapter>(&self, s: Arc<Socket<A>>, mut v: Value, ack_id: Option<i64>) {
        let Ok(ack) = Ack::from_message_parts(&s, &mut v, &ack_id);
        ack.rate_limited(&self.gw, &self.replies);
    }
}

impl Conn {
    /// Wait for this connection's turn to run a recovering join; `None` (refused) when
    /// [`MAX_RECOVERIES`] already run or wait. One at a time, in turn: each may wait up to
    /// `replay::DEADLINE` on a client that does not read, and handlers run concurrently, so a
    /// client could otherwise keep any number going; an app rejoining its rooms at once after a
    /// reconnect has them answered one after the other. The cap bounds what a client that
    /// never reads can queue (each waiting join is a task).
    async fn begin_recovery(&self) -> Option<Recovering<'_>> {
        if self.recoveries.fetch_add(1, Ordering::AcqRel) >= MAX_RECOVERIES {
            self.recoveries.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Recovering {
            _turn: self.recovery_turn.lock().await,
            count: &self.recoveries,
        })
    }

    /// Count the event and take a token; false (and counted) when over the rate.
    fn admit_event(&self) -> bool {
        self.gw.metrics.events_received_total.inc();
        if self.bucket.try_take() {
            true
        } else {
            self.gw.metrics.dropped_rate_limited.inc();
            false
        }
    }

    /// Is `room` the id of a connected socket, of any namespace here or of this namespace on
    /// any node? Only names with the shape of a socket id are looked up: locally in every
    /// namespace (socketioxide gives a session one id in all of them, so the id of a session's
    /// socket in `/chat` is its own-id room in `/` once it connects there; one map lookup per
    /// namespace), then, in cluster mode, with one fetchSockets request to every node (Node.js
    /// peers included). When the cluster cannot answer, the join is refused rather than risked.
    /// A session of another node that has not connected this namespace yet is not seen: its
    /// CONNECT here empties the room first (`install`, `engine_sessions`).
    async fn is_socket_id_room<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        s: &SocketRef<A>,
        room: &str,
    ) -> bool {
        if !sio_wire::socket_id::is_socket_id_shaped(room) {
            return false;
        }
        if let Ok(sid) = room.parse::<Sid>()
            && io.nsps().iter().any(|ns| ns.get_socket(sid).is_some())
        {
            return true;
        }
        match self
            .gw
            .cluster
            .presence(s.ns().to_owned(), vec![room.to_owned()])
        {
            None => false,
            Some(presence) => match presence.await {
                Ok(found) => found.items.iter().any(|f| f.id == room),
                Err(e) => {
                    tracing::debug!(?room, error = %e, "socket-id room check failed");
                    true
                }
            },
        }
    }

    /// Answer the client's ack (see `ack`: never dropped in silence, never waited on).
    async fn reply<A: Adapter>(&self, ack: Ack<A>, v: &serde_json::Value) {
        ack.send(&self.gw, &self.replies, v);
    }

    /// `handler`, behind this connection's event rate.
    fn gate<H>(self: &Arc<Self>, handler: H) -> Gate<Conn, H> {
        Gate::new(self.clone(), handler)
    }

    async fn join<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        s: &SocketRef<A>,
        arg: Result<serde_json::Value, ParserError>,
        ack: Ack<A>,
    ) {
        let hm = &self.gw.history.metrics;
        // Parsed and checked whole before anything is applied (see `history::since`).
        let arg = match arg.map_err(|_| JoinArgError::Shape).and_then(since::parse) {
            Ok(a) if valid_name(a.room()) => a,
            Ok(_) => {
                self.gw.metrics.dropped_invalid.inc();
                return self
                    .reply(ack, &err("join expects a room name (1-256 bytes)"))
                    .await;
            }
            Err(e) => {
                self.gw.metrics.dropped_invalid.inc();
                if !matches!(e, JoinArgError::Shape) {
                    hm.recoveries.with_label_values(&[outcome::INVALID]).inc();
                }
                return self.reply(ack, &err(e)).await;
            }
        };
        let room = arg.room();
        // The rules first: they cost nothing, and the id check below may ask every node.
        if !self.may(&self.gw.config.can_join, |i| &i.can_join, room) {
            self.gw.metrics.dropped_forbidden.inc();
            let v = err(format_args!("not allowed to join room `{room}`"));
            return self.reply(ack, &v).await;
        }
        if self.is_socket_id_room(io, s, room).await {
            // Every socket is in the room named after its id (as on Node.js): joining another
            // socket's would let a client read its direct messages.
            self.gw.metrics.dropped_forbidden.inc();
            return self.reply(ack, &err(SOCKET_ID_ROOM)).await;
        }
        let v = match &arg {
            JoinArg::Plain(room) => self.join_plain(s, room).await,
            JoinArg::Tracked {
                room,
                since: Some(Err(why)),
            } => {
                hm.recoveries.with_label_values(&[outcome::INVALID]).inc();
                let mut v = self.join_tracked(s, room, None).await;
                if let (true, Some(o), serde_json::Value::Object(extra)) =
                    (v["ok"] == true, v.as_object_mut(), invalid_since(why))
                {
                    o.extend(extra);
                }
                v
            }
            JoinArg::Tracked { room, since } => {
                let since = since.as_ref().and_then(|r| r.as_ref().ok());
                self.join_tracked(s, room, since).await
            }
        };
        if let Some(admin) = &self.gw.admin
            && v["ok"] == true
        {
            admin.room_joined(s.ns(), room, s.id.as_str());
        }
        self.reply(ack, &v).await;
    }

    /// The plain join: `{ok:true}` or the cap's refusal.
    async fn join_plain<A: Adapter>(&self, s: &SocketRef<A>, room: &str) -> serde_json::Value {
        if let Err(max) = self.join_capped(s, room) {
            return self.too_many_rooms(max);
        }
        // In cluster mode, subscribe the room's Redis channel before acknowledging, so a
        // broadcast sent from another node right after the ack is not missed.
        self.gw.ensure_rooms(s.ns(), vec![room.to_owned()]).await;
        ok()
    }

    fn too_many_rooms(&self, max: usize) -> serde_json::Value {
        self.gw.metrics.dropped_forbidden.inc();
        err(format_args!("too many rooms (max {max} per connection)"))
    }

    /// `join {room, since?}`: the join, plus the history's position (`epoch`, `offset`: the
    /// last one) and, with `since`, the replay of what followed it, then the join (see
    /// [`Conn::recover_single`]; cluster mode: [`Conn::join_tracked_cluster`]). A connection's
    /// recovering joins run one at a time, in turn ([`Conn::begin_recovery`]).
    async fn join_tracked<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        room: &str,
        since: Option<&Since>,
    ) -> serde_json::Value {
        let history = &self.gw.history;
        let hm = &history.metrics;
        let Some(rh) = history.room(s.ns(), room) else {
            if let Err(max) = self.join_capped(s, room) {
                return self.too_many_rooms(max);
            }
            self.gw.ensure_rooms(s.ns(), vec![room.to_owned()]).await;
            if since.is_none() {
                return ok();
            }
            hm.recoveries
                .with_label_values(&[outcome::NO_HISTORY])
                .inc();
            return json!({ "ok": true, "recovered": false, "reason": outcome::NO_HISTORY });
        };
        let _recovering = match since {
            None => None,
            Some(_) => match self.begin_recovery().await {
                Some(r) => Some(r),
                None => {
                    self.gw.metrics.dropped_invalid.inc();
                    return err(TOO_MANY_RECOVERIES);
                }
            },
        };
        if let Some(store) = history.store() {
            return self.join_tracked_cluster(s, room, since, store, &rh).await;
        }
        let Some(since) = since else {
            // The position and the join under the lock: what follows it is delivered live.
            let g = rh.lock(hm).await;
            if let Err(max) = self.join_capped(s, room) {
                return self.too_many_rooms(max);
            }
            return position(g.epoch().as_str(), g.last(), json!({}));
        };
        self.recover_single(s, room, since, &rh).await
    }

    /// A single node's recovering join, in rounds. Each round takes the room's lock, reads
    /// what followed the last offset sent, and sends what fits in the socket's queue without
    /// waiting; when all of it fits, the socket joins the room before the lock is let go, so
    /// each message is either in the replay or delivered live: no gap, no duplicate (see
    /// `history`). When the queue is full, the next message is copied out, the lock let go,
    /// and that message sent once the queue has room; then the next round. The room's
    /// publishers meanwhile append to the ring and do not reach the socket (it is not in the
    /// room yet), so the next round replays them: a client that does not read holds up only
    /// its own recovery. All rounds share `replay::DEADLINE`: a socket that has not read its
    /// replay by then is answered `failed` and does not join. A ring trimmed past the last
    /// offset sent (or lost) while the client was slow gives the same answer as at the start:
    /// `recovered:false` with the reason, joined.
    async fn recover_single<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        room: &str,
        since: &Since,
        rh: &RoomHistory,
    ) -> serde_json::Value {
        let hm = &self.gw.history.metrics;
        let started = Instant::now();
        let mut tx =
            replay::Sender::new(self.gw.transports(), &self.gw.history.replays, s, started);
        let mut from = since.clone();
        let mut sent = 0usize;
        let mut first = true;
        loop {
            let mut g = rh.lock(hm).await;
            let epoch = g.epoch().clone();
            let last = g.last();
            let recovery = match g.recover(&from) {
                Ok(r) => r,
                // Only in the first round: later ones ask from an offset this history gave.
                // Joined all the same (see `invalid_since`).
                Err(ahead) => {
                    if let Err(max) = self.join_capped(s, room) {
                        return self.too_many_rooms(max);
                    }
                    hm.recoveries.with_label_values(&[outcome::INVALID]).inc();
                    let extra = invalid_since(format_args!("`since.offset`: {ahead}"));
                    return position(epoch.as_str(), last, extra);
                }
            };
            if std::mem::take(&mut first)
                && let Some(max) = self.rooms_cap_reached(s, room)
            {
                return self.too_many_rooms(max);
            }
            let msgs = match recovery {
                Recovery::OtherEpoch => {
                    if let Err(max) = self.join_capped(s, room) {
                        return self.too_many_rooms(max);
                    }
                    hm.recoveries.with_label_values(&[outcome::EPOCH]).inc();
                    let extra = json!({ "recovered": false, "reason": outcome::EPOCH });
                    return position(epoch.as_str(), last, extra);
                }
                Recovery::Miss(miss) => {
                    if let Err(max) = self.join_capped(s, room) {
                        return self.too_many_rooms(max);
                    }
                    hm.recoveries.with_label_values(&[miss.as_str()]).inc();
                    let extra = json!({ "recovered": false, "reason": miss.as_str() });
                    return position(epoch.as_str(), last, extra);
                }
                Recovery::Replay(msgs) => msgs,
            };
            let mut next = None;
            for d in &msgs {
                match tx.try_send(d.event, d, d.wire_floor()) {
                    Ok(true) => sent += 1,
                    Ok(false) => {
                        // One copy per full queue or window (a round), not per message.
                        next = Some((d.event.to_owned(), d.args.clone(), d.mark.offset));
                        break;
                    }
                    Err(e) => return self.replay_failed(s, room, sent, e),
                }
            }
            let Some((event, args, offset)) = next else {
                // Everything sent: joined before the lock is let go.
                if let Err(max) = self.join_capped(s, room) {
                    return self.too_many_rooms(max);
                }
                self.recovered(sent);
                let extra = json!({ "recovered": true, "missed": sent });
                return position(epoch.as_str(), last, extra);
            };
            drop(msgs);
            drop(g);
            // Without the lock: the wait is the client's alone.
            let d = Delivery {
                event: &event,
                args: &args,
                mark: Mark {
                    room,
                    offset,
                    epoch: epoch.as_str(),
                },
            };
            if let Err(e) = tx.send(&event, &d, d.wire_floor()).await {
                return self.replay_failed(s, room, sent, e);
            }
            sent += 1;
            from.offset = offset.to_string();
        }
    }

    /// A recovery that ended with its replay delivered: counted.
    fn recovered(&self, sent: usize) {
        let hm = &self.gw.history.metrics;
        hm.recoveries.with_label_values(&[outcome::RECOVERED]).inc();
        hm.replayed.inc_by(sent as u64);
        self.gw.metrics.events_sent_total.inc_by(sent as u64);
    }

    /// The answer to a recovering join whose replay could not be delivered (the client closed,
    /// did not read within `replay::DEADLINE`, or more than `holdback::MAX_HELD` bytes were
    /// published into the room meanwhile); the socket is not in the room.
    fn replay_failed<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        room: &str,
        sent: usize,
        e: ReplayError,
    ) -> serde_json::Value {
        let hm = &self.gw.history.metrics;
        tracing::debug!(node_id = %self.gw.node_id(), sid = %s.id, ?room, sent, error = %e, "replay failed");
        hm.recoveries.with_label_values(&["failed"]).inc();
        hm.replayed.inc_by(sent as u64);
        self.gw.metrics.events_sent_total.inc_by(sent as u64);
        json!({
            "ok": false,
            "recovered": false,
            "reason": "failed",
            "error": format!("{e}; not joined"),
        })
    }

    /// Cluster mode's `join {room, since?}`: as [`Conn::join_tracked`], from the room's Redis
    /// Stream. The socket is registered with the hold-back and joins under the room's lock,
    /// which this node's publishes into it take too: from then on every message into the room,
    /// this node's or another's, is kept for it rather than delivered (see `history::holdback`).
    /// Then the room is subscribed (`ensure_rooms`) and the stream read, without the lock:
    /// every message is in the read or arrives after the subscription. The replay is sent,
    /// then what was held back after it, then live delivery resumes. Waiting for room in the
    /// socket's queue holds no lock: a client that does not read holds up only its own
    /// recovery; by `replay::DEADLINE` it is answered `failed` and leaves the room again.
    async fn join_tracked_cluster<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        room: &str,
        since: Option<&Since>,
        store: &StreamStore,
        rh: &RoomHistory,
    ) -> serde_json::Value {
        let history = &self.gw.history;
        let hm = &history.metrics;
        let ns = s.ns();
        let Some(spec) = history.spec(room) else {
            return err("no history rule for this room");
        };
        // A `since` that is no position of this history: joined without recovery (the answer
        // says `invalid`, see `invalid_since`).
        let mut bad = None;
        let since = match since.map(|sn| sn.stream_id().map(|id| (id, &sn.epoch))) {
            None => None,
            Some(Some(v)) => Some(v),
            Some(None) => {
                bad = Some("`since.offset` is not an offset of this history".to_owned());
                None
            }
        };
        let hb = &history.holdback;
        {
            // Registered and joined as one step for this node's publishes into the room: each
            // one either reached the socket before (it was not in the room yet) or is kept.
            let _g = rh.lock(hm).await;
            if since.is_some() {
                hb.start(ns, room, s.id);
            }
            if let Err(max) = self.join_capped(s, room) {
                hb.abandon(ns, room, s.id);
                return self.too_many_rooms(max);
            }
        }
        self.gw.ensure_rooms(ns, vec![room.to_owned()]).await;
        let started = Instant::now();
        let read = store
            .read(ns, room, spec, since, REPLAY_PAGE, REPLAY_PAGE_BYTES)
            .await;
        hm.read_seconds.observe(started.elapsed().as_secs_f64());
        // Not half-applied: a join whose history cannot be read or whose offset is bogus is undone.
        let undo = |e: serde_json::Value| {
            hb.abandon(ns, room, s.id);
            s.leave(room.to_owned());
            self.gw.rooms_changed(ns);
            e
        };
        let r = match read {
            Ok(r) => r,
            Err(e) => {
                return undo(err(format_args!(
                    "the room's history is unavailable, not joined: {e}"
                )));
            }
        };
        if let (Read::Miss, Some((id, _))) = (&r.read, since)
            && id > r.last
        {
            // Forged: joined all the same, what was held back for it delivered (as `Trimmed`).
            bad = Some(format!(
                "`since.offset`: offset {id} is ahead of this history (last offset {})",
                r.last
            ));
        }
        let epoch = r.epoch;
        // The position answered (the newest offset of the last read), and how the replay ended.
        let mut last = r.last;
        let (mut page, mut end) = match r.read {
            Read::Position => {
                let extra = match bad {
                    Some(why) => {
                        hm.recoveries.with_label_values(&[outcome::INVALID]).inc();
                        invalid_since(why)
                    }
                    None => json!({}),
                };
                return position(epoch.as_str(), last, extra);
            }
            Read::OtherEpoch => (Page::default(), End::Epoch),
            Read::Miss if bad.is_some() => (Page::default(), End::Invalid(bad.unwrap_or_default())),
            Read::Miss => (Page::default(), End::Trimmed),
            Read::Replay(page) => (page, End::Recovered),
        };
        // The last offset replayed or left out: the hold-back drops what it kept up to it.
        let mut upto = match end {
            End::Recovered => Some(since.map_or(StreamId::ZERO, |s| s.0)),
            _ => None,
        };
        let started = Instant::now();
        let mut tx = replay::Sender::new(self.gw.transports(), &history.replays, s, started);
        let mut sent = 0usize;
        let mut skipped = 0u64;
        let mut res = Ok(());
        // A page at a time, each sent before the next is read: what the replay holds is one page.
        'pages: loop {
            skipped += page.count_skipped(&self.gw.history.metrics.skipped);
            for m in &page.entries {
                // Not as a gateway writes them (written to Redis by someone else): left out.
                let args = match m.checked_args() {
                    Ok(a) => Args::Many(a),
                    Err(why) => {
                        hm.skipped.with_label_values(&[why.as_str()]).inc();
                        skipped += 1;
                        continue;
                    }
                };
                let d = Delivery {
                    event: &m.event,
                    args: &args,
                    mark: Mark {
                        room,
                        offset: Offset::Id(m.id),
                        epoch: epoch.as_str(),
                    },
                };
                res = tx.send(&m.event, &d, d.wire_floor()).await;
                if res.is_err() {
                    break 'pages;
                }
                sent += 1;
                upto = Some(m.id);
            }
            if upto.is_some() {
                // Past what was left out too (the next page starts there).
                upto = upto.max(Some(page.cursor));
            }
            if !page.more {
                break;
            }
            let Some(after) = upto else { break };
            let t = Instant::now();
            let next = store
                .read(
                    ns,
                    room,
                    spec,
                    Some((after, &epoch)),
                    REPLAY_PAGE,
                    REPLAY_PAGE_BYTES,
                )
                .await;
            hm.read_seconds.observe(t.elapsed().as_secs_f64());
            let next = match next {
                Ok(n) => n,
                Err(e) => {
                    res = Err(ReplayError::Unavailable(e.to_string()));
                    break;
                }
            };
            last = next.last;
            page = match next.read {
                Read::Replay(p) => p,
                // Trimmed past the last offset sent (or lost) while the client read the pages
                // before: answered as at the start (the client has a part of the replay).
                Read::Miss | Read::Position => {
                    end = End::Trimmed;
                    break;
                }
                Read::OtherEpoch => {
                    end = End::Epoch;
                    break;
                }
            };
        }
        if skipped > 0 && matches!(end, End::Recovered) {
            end = End::Skipped;
        }
        // Then what other nodes published meanwhile, until nothing is held any more.
        while res.is_ok() {
            // Past `holdback::MAX_HELD` for this join: what was kept is gone, so it failed.
            let held = match hb.take(ns, room, s.id, upto) {
                Ok(h) => h,
                Err(e) => {
                    res = Err(ReplayError::HeldBack(e));
                    break;
                }
            };
            if held.is_empty() {
                break;
            }
            for (_, text) in held {
                let Ok(mut parts) = serde_json::from_str::<Vec<serde_json::Value>>(&text) else {
                    continue;
                };
                if parts.is_empty() {
                    continue;
                }
                let event = match parts.remove(0) {
                    serde_json::Value::String(e) => e,
                    _ => continue,
                };
                let bytes = event.len() as u64
                    + parts
                        .iter()
                        .map(crate::history::message::json_wire_floor)
                        .sum::<u64>();
                res = tx.send(&event, &replay::Spread(&parts), bytes).await;
                if res.is_err() {
                    break;
                }
            }
        }
        drop(tx);
        if let Err(e) = res {
            return undo(self.replay_failed(s, room, sent, e));
        }
        match end {
            End::Epoch => {
                hm.recoveries.with_label_values(&[outcome::EPOCH]).inc();
                let extra = json!({ "recovered": false, "reason": outcome::EPOCH });
                position(epoch.as_str(), last, extra)
            }
            End::Invalid(why) => {
                hm.recoveries.with_label_values(&[outcome::INVALID]).inc();
                position(epoch.as_str(), last, invalid_since(why))
            }
            End::Trimmed => {
                hm.recoveries.with_label_values(&["trimmed"]).inc();
                hm.replayed.inc_by(sent as u64);
                self.gw.metrics.events_sent_total.inc_by(sent as u64);
                let extra = json!({ "recovered": false, "reason": "trimmed" });
                position(epoch.as_str(), last, extra)
            }
            End::Skipped => {
                // The gap is told, not silent: the client resyncs (see docs/delivery.md).
                hm.recoveries.with_label_values(&[outcome::SKIPPED]).inc();
                hm.replayed.inc_by(sent as u64);
                self.gw.metrics.events_sent_total.inc_by(sent as u64);
                let extra = json!({
                    "recovered": false,
                    "reason": outcome::SKIPPED,
                    "missed": sent,
                    "skipped": skipped,
                });
                position(epoch.as_str(), upto.unwrap_or(last), extra)
            }
            End::Recovered => {
                self.recovered(sent);
                let extra = json!({ "recovered": true, "missed": sent });
                position(epoch.as_str(), upto.unwrap_or(last), extra)
            }
        }
    }

    /// Join `room` unless that takes the socket past `--max-rooms` (the socket's own-id room
    /// does not count; re-joining a room one is in never counts twice). Check and join are one
    /// step under `join_step`, so concurrent joins cannot overshoot the cap.
    fn join_capped<A: Adapter>(&self, s: &SocketRef<A>, room: &str) -> Result<(), usize> {
        let _step = self.join_step.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(max) = self.rooms_cap_reached(s, room) {
            return Err(max);
        }
        tracing::debug!(node_id = %self.gw.node_id(), sid = %s.id, ns = s.ns(), ?room, "join");
        s.join(room.to_owned());
        Ok(())
    }

    /// Would joining `room` take the socket past `--max-rooms`? `Some(max)` when it would. Alone
    /// (not under `join_step`) it only tells a recovering join not to start a replay that could
    /// not end in a join; [`Conn::join_capped`] decides.
    fn rooms_cap_reached<A: Adapter>(&self, s: &SocketRef<A>, room: &str) -> Option<usize> {
        let max_rooms = self.gw.config.max_rooms;
        if max_rooms == 0 {
            return None;
        }
        // Lists the socket's rooms (an allocation per join, not per message).
        let rooms = s.rooms();
        (rooms.len() > max_rooms && !rooms.iter().any(|r| *r == room)).then_some(max_rooms)
    }

    async fn leave<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        room: Result<String, ParserError>,
        ack: Ack<A>,
    ) {
        let v = match room {
            Ok(r) if r == s.id.as_str() => {
                self.gw.metrics.dropped_forbidden.inc();
                err(SOCKET_ID_ROOM)
            }
            Ok(r) if valid_name(&r) => {
                tracing::debug!(node_id = %self.gw.node_id(), sid = %s.id, ns = s.ns(), room = ?r, "leave");
                // Reported only when the socket was in it: a leave of any name costs nothing
                // beyond the event's token.
                if let Some(admin) = &self.gw.admin
                    && s.rooms().iter().any(|x| **x == *r)
                {
                    admin.room_left(s.ns(), &r, s.id.as_str());
                }
                s.leave(r);
                self.gw.rooms_changed(s.ns());
                ok()
            }
            _ => {
                self.gw.metrics.dropped_invalid.inc();
                err("leave expects a room name (1-256 bytes)")
            }
        };
        self.reply(ack, &v).await;
    }

    async fn publish<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        s: &SocketRef<A>,
        p: Result<Publish, ParserError>,
        ack: Ack<A>,
    ) {
        let v = self.try_publish(io, s, p).await;
        self.reply(ack, &v).await;
    }

    /// The publish itself; returns the ack to send.
    async fn try_publish<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        s: &SocketRef<A>,
        p: Result<Publish, ParserError>,
    ) -> serde_json::Value {
        let m = &self.gw.metrics;
        let p = match p {
            Ok(p) => p,
            Err(_) => {
                m.dropped_invalid.inc();
                return err("publish expects {room?, event, data}");
            }
        };
        if !valid_name(&p.event) || p.room.as_deref().is_some_and(|r| !valid_name(r)) {
            m.dropped_invalid.inc();
            return err(format_args!(
                "event and room names must be 1-{} bytes",
                crate::names::MAX_NAME_LEN
            ));
        }
        if crate::names::is_reserved(&p.event) {
            m.dropped_invalid.inc();
            return err(format_args!("event name `{}` is reserved", p.event));
        }
        // socketioxide gave each placeholder it could resolve the next attachment (re-encoded
        // in order on emit, so always well-formed) and left any other as a plain object, which
        // receivers would read as an attachment reference (out of range: the JS client drops
        // the connection; in range: a duplicate of another binary). The one check lives in
        // sio-wire; it walks the value the client just sent once, without allocating.
        if let Err(e) = sio_wire::check_no_placeholders(&p.data) {
            m.dropped_invalid.inc();
            return err(e);
        }
        let target = p.room.as_deref().unwrap_or(s.ns());
        if !self.may(&self.gw.config.can_publish, |i| &i.can_publish, target) {
            m.dropped_forbidden.inc();
            return err(format_args!("not allowed to publish to `{target}`"));
        }
        // A socket's own-id room is where backends send it direct messages: a client writing
        // there would speak as the backend. Only names with an id's shape are looked up.
        if let Some(room) = &p.room
            && self.is_socket_id_room(io, s, room).await
        {
            m.dropped_forbidden.inc();
            return err(SOCKET_ID_ROOM_PUBLISH);
        }
        let started = Instant::now();
        // socketioxide's broadcast does not report how many sockets it reached, so the local
        // recipients are listed once more to count deliveries; this allocates a Vec per
        // publish, O(room members) like the broadcast itself.
        let history = match &p.room {
            Some(room) => self.gw.history.room(s.ns(), room),
            None => None,
        };
        let (delivered, res) = match (p.room, history) {
            (Some(room), Some(rh)) => {
                // A history room: appended, then delivered with its mark, under the room's
                // lock (see `history`: the lock orders offsets with deliveries and joins).
                let history = &self.gw.history;
                let mut g = rh.lock(&history.metrics).await;
                let n = s.to(room.clone()).sockets().len();
                match history.store() {
                    None => {
                        let d = g.append(p.event, Args::One(p.data));
                        (n, s.to(room).emit(d.event, &d).await)
                    }
                    Some(store) => {
                        let appended = history
                            .append_cluster(&mut g, store, p.event, Args::One(p.data))
                            .await;
                        match appended {
                            Ok(a) => {
                                // Sockets recovering in the room get it after their replay.
                                let op = history.holdback.leave_out(s.to(room), s.ns(), &a);
                                (n, op.emit(&a.event, &a.delivery()).await)
                            }
                            Err(e @ StoreError::TooLarge(..)) => {
                                m.dropped_invalid.inc();
                                return err(format_args!("not published: {e}"));
                            }
                            Err(e) => {
                                // Not delivered either: a message of a history room always
                                // has an offset. The publisher may retry.
                                m.dropped_cluster_unreachable.inc();
                                return err(format_args!(
                                    "not published: the room's history is unavailable ({e})"
                                ));
                            }
                        }
                    }
                }
            }
            (Some(room), None) => {
                let n = s.to(room.clone()).sockets().len();
                (n, s.to(room).emit(&p.event, &p.data).await)
            }
            (None, _) => {
                let n = s.broadcast().sockets().len();
                (n, s.broadcast().emit(&p.event, &p.data).await)
            }
        };
        m.broadcast_fanout_seconds
            .observe(started.elapsed().as_secs_f64());
        match res {
            Ok(()) => {
                m.broadcasts_client.inc();
                m.events_sent_total.inc_by(delivered as u64);
                ok()
            }
            Err(BroadcastError::Socket(errs)) => {
                // Everyone else got it; the listed recipients had a full send queue (slow
                // clients, `--max-buffer`) or were closing. Their loss, not the sender's.
                let missed = errs.len();
                m.broadcasts_client.inc();
                m.events_sent_total
                    .inc_by(delivered.saturating_sub(missed) as u64);
                m.dropped_slow_client.inc_by(missed as u64);
                ok()
            }
            Err(BroadcastError::Adapter(e)) => {
                // Local delivery ran first and does not depend on Redis; only the other nodes
                // were not reached. The ack says exactly that, so a client does not retry into
                // duplicates here, and knows the rest of the cluster missed it.
                m.broadcasts_client.inc();
                m.events_sent_total.inc_by(delivered as u64);
                m.dropped_cluster_unreachable.inc();
                tracing::debug!(node_id = %self.gw.node_id(), sid = %s.id, error = %e, "publish reached this node only");
                json!({
                    "ok": true,
                    "local": delivered,
                    "cluster": false,
                    "error": format!("delivered on this node; delivery to other nodes not confirmed: {e}"),
                })
            }
            Err(e) => {
                m.dropped_send_failed.inc();
                tracing::debug!(node_id = %self.gw.node_id(), sid = %s.id, error = %e, "publish failed");
                err(format_args!("publish failed: {e}"))
            }
        }
    }

    /// `event_received` for the Admin UI (only with `--admin-ui-events`; `data` is built only
    /// then): the relay's own events, as `instrument()` reports every incoming event. An
    /// argument that did not parse is not reported (the client gets its error ack).
    fn report_received<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        event: &str,
        data: impl FnOnce() -> Option<serde_json::Value>,
    ) {
        if let Some(admin) = self.gw.admin.as_ref().filter(|a| a.events())
            && let Some(d) = data()
        {
            admin.event_received(s.ns(), s.id.as_str(), event, &d);
        }
    }

    /// Room rules: the configured ones, or the identity's extra grants.
    fn may(
        &self,
        rules: &crate::rules::RuleSet,
        grant: fn(&crate::auth::Identity) -> &crate::rules::RuleSet,
        room: &str,
    ) -> bool {
        let sub = self.sub.as_deref();
        rules.allows(room, sub)
            || self
                .ident
                .as_ref()
                .is_some_and(|i| grant(i).allows(room, sub))
    }

    /// Any other event goes to the upstream sink (see `upstream`); its ack comes back.
    async fn other<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        event: &str,
        data: Result<serde_json::Value, ParserError>,
        ack: Ack<A>,
    ) {
        let data = data.unwrap_or(serde_json::Value::Null);
        let sid = s.id.to_string();
        let ev = crate::upstream::UpstreamEvent {
            node: self.gw.node_id(),
            nsp: s.ns(),
            sid: &sid,
            user: self.sub.as_deref(),
            event,
            data: &data,
        };
        let max = self.gw.config.upstream.max_event_bytes;
        let v =
            crate::upstream::forward(&self.gw.upstream, &self.gw.metrics, &self.upstream, max, ev)
                .await;
        self.reply(ack, &v).await;
    }
}

fn reason_label(r: DisconnectReason) -> &'static str {
    REASONS[reason_index(r)]
}

/// The `reason` labels of `disconnections_total`, by [`reason_index`].
const REASONS: [&str; 8] = [
    "transport_close",
    "multiple_http_polling",
    "packet_parsing_error",
    "transport_error",
    "heartbeat_timeout",
    "client_disconnect",
    "server_disconnect",
    "closing_server",
];

fn reason_index(r: DisconnectReason) -> usize {
    use DisconnectReason::*;
    match r {
        TransportClose => 0,
        MultipleHttpPollingError => 1,
        PacketParsingError => 2,
        TransportError => 3,
        HeartbeatTimeout => 4,
        ClientNSDisconnect => 5,
        ServerNSDisconnect => 6,
        ClosingServer => 7,
    }
}

/// The last connect middleware (after `admit` and auth): count the connection and install the
/// relay's handlers.
///
/// This is a middleware rather than part of the connect handler on purpose: socketioxide
/// awaits middlewares *before* it sends CONNECT to the client, but runs the connect handler in
/// a task spawned *after*, so handlers registered there could miss a client's first event.
pub async fn install<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(gw): State<Arc<Gateway>>,
) -> Result<(), Refusal> {
    let young = match gw.namespaces.enter(&io, s.ns()) {
        Ok(young) => young,
        Err(e) => {
            let reason = match e {
                EnterError::TooMany(_) => "max_namespaces",
                EnterError::Closed => "namespace_closed",
            };
            gw.metrics
                .connections_refused_total
                .with_label_values(&[reason])
                .inc();
            gw.namespaces.release(&io, s.ns());
            return Err(e.into());
        }
    };
    // `admit` put it there (without it, never, the id counts as public).
    let pending = s.extensions.remove::<Arc<Pending>>();
    // A pattern namespace takes one of the session's places (see `namespaces`).
    let namespace_place = if gw.namespaces.is_dynamic(s.ns()) {
        match gw.session_namespaces.get_or(s.id, Default::default).take() {
            Some(place) => Some(place),
            None => {
                gw.metrics
                    .connections_refused_total
                    .with_label_values(&["session_namespaces"])
                    .inc();
                gw.namespaces.left(&io, s.ns());
                return Err(crate::namespaces::TooManyHere.into());
            }
        }
    } else {
        None
    };
    // The session's id is public since its first namespace: empty the room of anyone who
    // joined it here meanwhile, on every node, before the socket is in it (see
    // `engine_sessions`). A first CONNECT's id was never shown to anyone.
    if pending.as_ref().is_none_or(|p| p.session_is_public())
        && let Err(e) = clear_own_id_room(&gw, &io, &s).await
    {
        // Clients can repeat it while Redis is away: counted each time, warned once per 10 s.
        static WARN: WarnLimit = WarnLimit::new(Duration::from_secs(10));
        if let Some(held_back) = WARN.allow() {
            tracing::warn!(node_id = %gw.node_id(), sid = %s.id, ns = s.ns(), error = %e, held_back, "could not check the socket's own-id room across the cluster: connect refused (each is counted in connections_refused_total{{reason=\"cluster_unreachable\"}})");
        }
        gw.metrics
            .connections_refused_total
            .with_label_values(&["cluster_unreachable"])
            .inc();
        gw.namespaces.left(&io, s.ns());
        return Err(Refusal::ClusterUnavailable);
    }
    if let Some(p) = pending
        && p.installed()
    {
        // The session's first namespace: it no longer waits for a CONNECT; a polling one waits
        // for its first poll (`pending_sessions`).
        match s.transport_type() {
            socketioxide::TransportType::Polling => gw.pending_sessions.connected_unpolled(s.id),
            socketioxide::TransportType::Websocket => gw.pending_sessions.connected(),
        }
    }
    if young {
        crate::namespaces::watch_replaced(
            io.clone(),
            s.clone(),
            gw.drain.clone(),
            gw.conns.clone(),
        );
    }
    gw.conn_limit.opened();
    gw.metrics.connections_total.inc();
    // Every socket is in the room named after its id, as on Node.js: backends (HTTP API,
    // emitters, Node peers) address one socket with `rooms: [id]` or leave it out with
    // `except: [id]`. ~200 bytes per connection in socketioxide's room map.
    // The id's text as is (`to_string` goes through the formatter).
    s.join(s.id.as_str().to_owned());
    // Joins `user:<sub>` and the credentials' rooms.
    let ident = crate::auth::on_connected(&s);
    // The own-id room's channel is subscribed on the adapter's next tick, with the other
    // connections of that tick in one command (`on_connect` subscribes the credentials' rooms
    // before any client event).
    gw.rooms_changed(s.ns());
    // Credentials that expire cut the session then (`auth::expiry`).
    let expiry = ident
        .as_ref()
        .and_then(|i| i.expires_at)
        .filter(|_| gw.config.auth.expiry == crate::config::AuthExpiry::Close)
        .map(|at| {
            gw.expiries.schedule(
                at,
                crate::auth::expiry::Target {
                    ns: s.ns().to_owned(),
                    sid: s.id,
                    transport: crate::engine_sessions::Transport::of(&s),
                },
            )
        });
    let conn = Arc::new(Conn {
        bucket: gw.event_rate.bucket(s.id),
        namespace_place: std::sync::Mutex::new(namespace_place),
        sub: ident.as_ref().and_then(|i| i.sub.clone()),
        ident,
        gw: gw.clone(),
        join_step: std::sync::Mutex::new(()),
        recovery_turn: tokio::sync::Mutex::new(()),
        recoveries: AtomicU32::new(0),
        replies: Default::default(),
        upstream: gw.upstream_sessions.for_socket(&gw.upstream, s.id),
        expiry,
    });

    let c = conn.clone();
    s.on(
        "join",
        conn.gate(
            move |s: SocketRef<A>,
                  io: SocketIo<A>,
                  TryData(arg): TryData<serde_json::Value>,
                  ack: Ack<A>| {
                let c = c.clone();
                async move {
                    c.report_received(&s, "join", || arg.as_ref().ok().cloned());
                    c.join(&io, &s, arg, ack).await
                }
            },
        ),
    );
    let c = conn.clone();
    s.on(
        "leave",
        conn.gate(
            move |s: SocketRef<A>, TryData(room): TryData<String>, ack: Ack<A>| {
                let c = c.clone();
                async move {
                    c.report_received(&s, "leave", || room.as_ref().ok().map(|r| json!(r)));
                    c.leave(&s, room, ack).await
                }
            },
        ),
    );
    let c = conn.clone();
    s.on(
        "publish",
        conn.gate(
            move |s: SocketRef<A>, io: SocketIo<A>, PublishArg(p): PublishArg, ack: Ack<A>| {
                let c = c.clone();
                async move {
                    c.report_received(&s, "publish", || {
                        p.as_ref().ok().map(|p| {
                            json!({"room": p.room, "event": p.event,
                               "data": sio_wire::json::to_serde(&p.data)})
                        })
                    });
                    c.publish(&io, &s, p, ack).await
                }
            },
        ),
    );
    let c = conn.clone();
    s.on_fallback(conn.gate(
        move |s: SocketRef<A>,
              Event(event): Event,
              TryData(data): TryData<serde_json::Value>,
              ack: Ack<A>| {
            let c = c.clone();
            async move {
                if let (Some(admin), Ok(d)) = (&c.gw.admin, &data) {
                    admin.event_received(s.ns(), s.id.as_str(), &event, d);
                }
                c.other(&s, &event, data, ack).await
            }
        },
    ));
    if let Some(admin) = &gw.admin {
        admin.socket_connected(&s);
        if admin.events() {
            s.extensions.insert(crate::admin::EventsSent(admin.clone()));
        }
    }
    s.on_disconnect(move |s: SocketRef<A>, io: SocketIo<A>, reason: DisconnectReason| {
        let gw = &conn.gw;
        if let Some(admin) = &gw.admin {
            admin.socket_disconnected(s.ns(), s.id.as_str(), reason_label(reason));
        }
        gw.conn_limit.closed();
        if let Some(key) = conn.expiry {
            gw.expiries.cancel(key);
        }
        gw.metrics
            .count_disconnection(reason_index(reason), reason_label(reason));
        match gw.engine_sessions.disconnected(s.id, reason) {
            Left::Others => {}
            Left::Ended => gw.drain.forget(s.id.as_str()),
            Left::Empty(generation) => {
                gw.engine_sessions
                    .close_if_still_empty(s.id, generation, Transport::of(&s))
            }
        }
        gw.namespaces.left(&io, s.ns());
        drop(
            conn.namespace_place
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        // Its rooms are left by socketioxide after this handler: the adapter's next tick
        // unsubscribes those that emptied.
        gw.rooms_changed(s.ns());
        tracing::debug!(node_id = %gw.node_id(), sid = %s.id, ns = s.ns(), ?reason, "disconnected");
        std::future::ready(())
    });
    Ok(())
}

/// Take every socket but `s` out of the room named after `s`'s id, on every node: each one by
/// its own id, so the request that comes back through Redis to this node (applied by every
/// node, the sender included) cannot take `s` out of it after it joined. In cluster mode the
/// members are listed by the adapter itself, which says whether every node answered: a node
/// that did not (Redis slow, or a node refusing answers under a flood of requests) fails the
/// check rather than letting it pass unchecked there.
async fn clear_own_id_room<A: Adapter>(
    gw: &Gateway,
    io: &SocketIo<A>,
    s: &SocketRef<A>,
) -> Result<(), String> {
    let Some(ns) = io.of(s.ns()) else {
        return Ok(());
    };
    let own = s.id.to_string();
    let members: Vec<String> = match gw.cluster.presence(s.ns().to_owned(), vec![own.clone()]) {
        Some(asked) => {
            let c = asked.await.map_err(|e| e.to_string())?;
            if !c.complete() {
                return Err(format!(
                    "{} of {} other nodes answered",
                    c.received, c.expected
                ));
            }
            c.items.into_iter().map(|m| m.id).collect()
        }
        None => ns
            .clone()
            .to(own.clone())
            .fetch_sockets()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|m| m.data().id.to_string())
            .collect(),
    };
    for squatter in members.into_iter().filter(|m| *m != own) {
        ns.clone()
            .to(squatter)
            .leave(own.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Connect handler for every served namespace (runs after CONNECT was sent; see [`install`]).
pub async fn on_connect<A: Adapter>(s: SocketRef<A>, State(gw): State<Arc<Gateway>>) {
    tracing::debug!(node_id = %gw.node_id(), sid = %s.id, ns = s.ns(), transport = ?s.transport_type(), "connected");
    // Cluster mode: the rooms joined on connect (user:<sub>, token rooms) are subscribed
    // before a backend can expect to reach them. Here, so no client event waits on it.
    if s.extensions.get::<Arc<crate::auth::Identity>>().is_some() {
        let rooms = s.rooms().into_iter().map(|r| r.to_string()).collect();
        gw.ensure_rooms(s.ns(), rooms).await;
    }
}
