//! The server side of the official Socket.IO Admin UI (`@socket.io/admin-ui` 0.5), as its
//! `instrument()` speaks it to the UI, over the gateway's own Socket.IO server.
//!
//! * A namespace of its own (`--admin-ui-namespace`, default `/admin`), behind
//!   [`auth`]: the user name and bcrypt hash `instrument()` takes, or nothing when the operator
//!   opted out. Ordinary clients never see it: it is refused without credentials, and nothing
//!   of it is in their namespaces.
//! * On connect the UI gets `config` (the features: commands only with `--admin-ui full`),
//!   `all_sockets` (every namespace's sockets, cluster-wide through the adapter's presence
//!   request, Node.js peers' included) and `server_stats`.
//! * Every 2 s, `server_stats` is broadcast in the admin namespace. In cluster mode the Redis
//!   adapter carries it to the admin namespace of every node, Node.js servers under
//!   `instrument()` included, and theirs reach ours: a UI connected to any node lists every
//!   server. The same holds for the lifecycle events: `socket_connected`,
//!   `socket_disconnected`, `room_joined`, `room_left`, reported by the relay for a client's
//!   own events, and for the joins and leaves broadcast operators apply to this node's sockets
//!   (the HTTP API, Admin UI commands from any node, Node peers' `socketsJoin`/`socketsLeave`,
//!   python-socketio's `close_room`) by the adapter's room watch ([`RoomWatch`], implemented
//!   here); python-socketio's `enter_room`/`leave_room` by `pysio`.
//! * `event_received` (a client's event that goes upstream) and `event_sent` (a message the
//!   gateway sends to one socket: the history's replays) only with `--admin-ui-events`, one
//!   broadcast each. Broadcasts to rooms are not reported per recipient (`instrument()` does).
//! * Commands (`emit`, `join`, `leave`, `_disconnect`) act through socketioxide's broadcast
//!   operators, so they reach sockets on every node. In `readonly` mode they are refused and
//!   counted (`admin_ui_commands_total{result="refused"}`).
//!
//! Cost when no admin is connected: the lifecycle reports are one broadcast per connect,
//! disconnect, join and leave, spawned off the client's path; nothing per message unless
//! `--admin-ui-events`. Without `--admin-ui` nothing of this runs.
pub mod auth;
pub mod serialize;
pub mod timestamp;

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use prometheus::IntCounterVec;
use serde_json::{Value, json};
use sio_redis_adapter::RoomWatch;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{Data, SocketRef, State, TryData},
    handler::{ConnectHandler, Value as HandlerValue},
    socket::Socket,
};

use crate::{
    adapter::GatewayAdapter,
    args::Args,
    cluster_view::ClusterView,
    config::{AdminUi, Config},
    event_rate::{Door, EventRate, Gate},
    limits::TokenBucket,
    listener::ConnInfo,
    metrics::Metrics,
    warn_limit::WarnLimit,
};
pub use auth::{AdminAuth, AdminAuthError};

/// The UI's static build inside the npm package (see [`crate::installed`]).
const UI_INDEX: &str = "node_modules/@socket.io/admin-ui/ui/dist/index.html";

/// The path the UI's static build is served at, when installed.
pub const UI_PATH: &str = "/admin-ui";

/// The directory of the UI's static build, if the npm package is installed; logged either way.
pub fn ui_dir() -> Option<std::path::PathBuf> {
    match crate::installed::find(UI_INDEX).and_then(|p| p.parent().map(|d| d.to_owned())) {
        Some(dir) => {
            tracing::info!(path = %dir.display(), "admin UI served at {UI_PATH}/");
            Some(dir)
        }
        None => {
            tracing::info!(
                "admin UI page not installed (npm ci --prefix web): use the hosted one, https://admin.socket.io, with this node's URL"
            );
            None
        }
    }
}

/// How often `server_stats` goes out (as `instrument()`).
const STATS_EVERY: Duration = Duration::from_secs(2);

/// The Admin UI service of this node (built once, only with `--admin-ui`).
pub struct Admin {
    mode: AdminUi,
    events: bool,
    namespace: String,
    auth: AdminAuth,
    node_id: String,
    hostname: String,
    started: Instant,
    metrics: Arc<Metrics>,
    cluster: Arc<dyn ClusterView>,
    commands: IntCounterVec,
    /// Counter values at the previous `server_stats`, for its per-interval `aggregatedEvents`.
    last: Mutex<Totals>,
    /// (namespace, socket id) of the sockets that were on long-polling at the last tick: one
    /// found on websocket since has upgraded (`socket_updated`). socketioxide has no upgrade
    /// hook; the tick that sends `server_stats` walks the sockets anyway.
    polling: Mutex<std::collections::HashSet<(String, socketioxide::socket::Sid)>>,
    /// Sends a report in the admin namespace; set by [`register`], which has the server.
    emitter: std::sync::OnceLock<Emitter>,
    /// No `--redis`: no other node can have an admin connected, so with none here nothing is
    /// reported (see [`Admin::listened`]).
    single_node: bool,
    /// Admin connections on this node.
    admins_here: std::sync::atomic::AtomicUsize,
    /// Reports dropped because the queue to Redis was full (see [`register`]).
    reports_dropped: prometheus::IntCounter,
    /// `--event-rate`: an admin connection's commands take tokens from its session's bucket,
    /// as a client's events do (see [`Commands`]).
    event_rate: Arc<EventRate>,
}

/// Reports waiting to be published at most (a report is a few hundred bytes; with
/// `--admin-ui-events` up to a message's size).
const REPORT_QUEUE: usize = 4096;

/// `(event, args)` broadcast in the admin namespace, cluster-wide, off the caller's path and in
/// order.
type Emitter = Box<dyn Fn(&'static str, Vec<Value>) + Send + Sync>;

/// In a socket's extensions with `--admin-ui-events`: what [`replayed`] reports through.
#[derive(Clone)]
pub struct EventsSent(pub Arc<Admin>);

/// A message sent to one socket `s` by the gateway itself (the history's replay): reported as
/// `event_sent` when `--admin-ui-events` put [`EventsSent`] in the socket's extensions.
/// `data` is the message's arguments, spread (a tuple, as the replay sends them).
pub fn replayed<A: Adapter, T: serde::Serialize + ?Sized>(s: &SocketRef<A>, event: &str, data: &T) {
    if let Some(EventsSent(admin)) = s.extensions.get::<EventsSent>()
        && admin.listened()
    {
        let mut args = vec![Value::from(event)];
        match serde_json::to_value(data) {
            Ok(Value::Array(spread)) => args.extend(spread),
            Ok(one) => args.push(one),
            Err(_) => {}
        }
        admin.event_sent(s.ns(), s.id.as_str(), args);
    }
}

#[derive(Default, Clone, Copy)]
struct Totals {
    connections: u64,
    received: u64,
    sent: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Admin {
    /// The service, when `--admin-ui` is on.
    pub fn new(
        config: &Config,
        metrics: Arc<Metrics>,
        cluster: Arc<dyn ClusterView>,
        event_rate: Arc<EventRate>,
    ) -> Option<Arc<Admin>> {
        if config.admin_ui == AdminUi::None {
            return None;
        }
        let auth = match &config.admin_ui_password_hash {
            Some(hash) if !config.admin_ui_no_auth => {
                AdminAuth::basic(config.admin_ui_user.clone(), hash.clone())
            }
            _ => {
                tracing::warn!(
                    namespace = %config.admin_ui_namespace,
                    "admin UI without authentication (--admin-ui-no-auth): anyone who reaches this node sees every socket{}",
                    if config.admin_ui == AdminUi::Full { " and can act on them" } else { "" }
                );
                AdminAuth::Open
            }
        };
        let commands = IntCounterVec::new(
            prometheus::Opts::new(
                "admin_ui_commands_total",
                "Admin UI commands (emit, join, leave, disconnect), by result",
            )
            .namespace("sio_gateway"),
            &["result"],
        )
        .expect("static metric definition");
        if let Err(e) = metrics.registry().register(Box::new(commands.clone())) {
            tracing::warn!(error = %e, "admin_ui_commands_total not registered");
        }
        let reports_dropped = prometheus::IntCounter::with_opts(
            prometheus::Opts::new(
                "admin_ui_reports_dropped_total",
                "Admin UI reports dropped because the queue to Redis was full",
            )
            .namespace("sio_gateway"),
        )
        .expect("static metric definition");
        if let Err(e) = metrics
            .registry()
            .register(Box::new(reports_dropped.clone()))
        {
            tracing::warn!(error = %e, "admin_ui_reports_dropped_total not registered");
        }
        Some(Arc::new(Admin {
            mode: config.admin_ui,
            events: config.admin_ui_events,
            namespace: config.admin_ui_namespace.clone(),
            auth,
            node_id: config.node_id.clone(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| config.node_id.clone()),
            started: Instant::now(),
            metrics,
            cluster,
            commands,
            last: Mutex::new(Totals::default()),
            polling: Mutex::default(),
            emitter: std::sync::OnceLock::new(),
            single_node: config.redis.is_none(),
            admins_here: std::sync::atomic::AtomicUsize::new(0),
            reports_dropped,
            event_rate,
        }))
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The features the UI offers (`instrument()`'s names).
    fn features(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.mode == AdminUi::Full {
            f.extend([
                "EMIT",
                "JOIN",
                "LEAVE",
                "DISCONNECT",
                "MJOIN",
                "MLEAVE",
                "MDISCONNECT",
            ]);
        }
        // ALL_EVENTS makes the UI show its Sockets, Rooms, Clients and Events pages: the
        // lifecycle events always come; the per-message ones only with --admin-ui-events.
        f.extend(["AGGREGATED_EVENTS", "ALL_EVENTS"]);
        f
    }

    /// Whether `event_received` / `event_sent` are reported (`--admin-ui-events`).
    pub fn events(&self) -> bool {
        self.events
    }

    /// Whether a report can reach anyone: an admin connected here, or, in cluster mode, maybe
    /// on another node (gateway or Node.js under `instrument()`: this node cannot know, and
    /// reports as `instrument()` does). Checked before anything is serialized.
    fn listened(&self) -> bool {
        !self.single_node || self.admins_here.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    /// Broadcast `event` with `args` (spread) in the admin namespace, cluster-wide; off the
    /// caller's path. Before [`register`] (no admin can be connected yet) nothing is sent.
    fn report(&self, event: &'static str, args: Vec<Value>) {
        if let Some(emit) = self.emitter.get() {
            emit(event, args);
        }
    }

    pub fn socket_connected<A: Adapter>(&self, s: &SocketRef<A>) {
        if s.ns() == self.namespace || !self.listened() {
            return;
        }
        let socket = serialize::local(s, s.ns());
        if s.transport_type() == socketioxide::TransportType::Polling {
            // Seen again at the next tick: on websocket by then, it has upgraded.
            self.polling
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((s.ns().to_owned(), s.id));
        }
        self.report("socket_connected", vec![socket, timestamp::now().into()]);
    }

    pub fn socket_disconnected(&self, nsp: &str, id: &str, reason: &str) {
        if nsp == self.namespace || !self.listened() {
            return;
        }
        let at = timestamp::now().into();
        self.report(
            "socket_disconnected",
            vec![nsp.into(), id.into(), reason.into(), at],
        );
    }

    pub fn room_joined(&self, nsp: &str, room: &str, id: &str) {
        if nsp == self.namespace || !self.listened() {
            return;
        }
        let at = timestamp::now().into();
        self.report("room_joined", vec![nsp.into(), room.into(), id.into(), at]);
    }

    pub fn room_left(&self, nsp: &str, room: &str, id: &str) {
        if nsp == self.namespace || !self.listened() {
            return;
        }
        let at = timestamp::now().into();
        self.report("room_left", vec![nsp.into(), room.into(), id.into(), at]);
    }

    /// Only with `--admin-ui-events`: `[event, ...args]` a client sent.
    pub fn event_received(&self, nsp: &str, id: &str, event: &str, data: &Value) {
        if !self.events || !self.listened() {
            return;
        }
        let args = json!([event, data]);
        let at = timestamp::now().into();
        self.report("event_received", vec![nsp.into(), id.into(), args, at]);
    }

    /// Only with `--admin-ui-events`: `[event, ...args]` sent to socket `id` (see [`replayed`]).
    pub fn event_sent(&self, nsp: &str, id: &str, args: Vec<Value>) {
        if !self.events || nsp == self.namespace || !self.listened() {
            return;
        }
        let at = timestamp::now().into();
        self.report("event_sent", vec![nsp.into(), id.into(), args.into(), at]);
    }

    /// The sockets that left long-polling for websocket since the last call.
    fn upgraded<A: Adapter>(&self, io: &SocketIo<A>) -> Vec<(String, socketioxide::socket::Sid)> {
        let mut now_polling = std::collections::HashSet::new();
        let mut now_ws = Vec::new();
        for ns in io.nsps() {
            let path = ns.ns_path().to_owned();
            for s in ns.sockets() {
                match s.transport_type() {
                    socketioxide::TransportType::Polling => {
                        now_polling.insert((path.clone(), s.id));
                    }
                    socketioxide::TransportType::Websocket => now_ws.push((path.clone(), s.id)),
                }
            }
        }
        let before = std::mem::replace(
            &mut *self.polling.lock().unwrap_or_else(|e| e.into_inner()),
            now_polling,
        );
        now_ws.retain(|k| before.contains(k));
        now_ws
    }

    /// This node's `server_stats` (`instrument()`'s shape).
    fn stats<A: Adapter>(&self, io: &SocketIo<A>) -> Value {
        let mut namespaces = Vec::new();
        let mut sessions = std::collections::HashSet::new();
        let mut polling = 0;
        for ns in io.nsps() {
            let path = ns.ns_path().to_owned();
            let sockets = ns.sockets();
            for s in &sockets {
                if sessions.insert(s.id)
                    && s.transport_type() == socketioxide::TransportType::Polling
                {
                    polling += 1;
                }
            }
            namespaces.push(json!({ "name": path, "socketsCount": sockets.len() }));
        }
        let m = &self.metrics;
        let now = Totals {
            connections: m.connections_total.get(),
            received: m.events_received_total.get(),
            sent: m.events_sent_total.get(),
            bytes_in: m.bytes_received_total.get(),
            bytes_out: m.bytes_sent_total.get(),
        };
        let before = std::mem::replace(
            &mut *self.last.lock().unwrap_or_else(|e| e.into_inner()),
            now,
        );
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() * 1000);
        let mut aggregated = Vec::new();
        for (kind, n) in [
            (
                "rawConnection",
                now.connections.saturating_sub(before.connections),
            ),
            ("packetsIn", now.received.saturating_sub(before.received)),
            ("packetsOut", now.sent.saturating_sub(before.sent)),
            ("bytesIn", now.bytes_in.saturating_sub(before.bytes_in)),
            ("bytesOut", now.bytes_out.saturating_sub(before.bytes_out)),
        ] {
            if n > 0 {
                aggregated.push(json!({ "timestamp": second, "type": kind, "count": n }));
            }
        }
        json!({
            "serverId": self.node_id,
            "hostname": self.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": sessions.len(),
            "pollingClientsCount": polling,
            "aggregatedEvents": aggregated,
            "namespaces": namespaces,
        })
    }

    /// Every socket of every namespace, cluster-wide.
    async fn all_sockets<A: Adapter>(&self, io: &SocketIo<A>) -> Vec<Value> {
        let mut out = Vec::new();
        for ns in io.nsps() {
            let path = ns.ns_path().to_owned();
            let local: Vec<Value> = ns
                .sockets()
                .iter()
                .map(|s| serialize::local(s, &path))
                .collect();
            match self.cluster.presence(path.clone(), Vec::new()) {
                Some(presence) => match presence.await {
                    Ok(found) => {
                        let here: std::collections::HashSet<String> = local
                            .iter()
                            .filter_map(|s| s["id"].as_str().map(str::to_owned))
                            .collect();
                        out.extend(local);
                        out.extend(
                            found
                                .items
                                .iter()
                                .filter(|s| !here.contains(&s.id))
                                .map(|s| serialize::remote(s, &path)),
                        );
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, ns = %path, "admin UI: cluster presence failed, this node's sockets only");
                        out.extend(local);
                    }
                },
                None => out.extend(local),
            }
        }
        out
    }
}

/// Joins and leaves applied to this node's sockets by broadcast operators (see
/// `sio_redis_adapter::RoomWatch`; the adapter of either mode calls it).
impl RoomWatch for Admin {
    fn joined(&self, nsp: &str, sid: socketioxide::socket::Sid, room: &str) {
        self.room_joined(nsp, room, sid.as_str());
    }
    fn left(&self, nsp: &str, sid: socketioxide::socket::Sid, room: &str) {
        self.room_left(nsp, room, sid.as_str());
    }
}

/// Register the admin namespace and start its stats ticker.
pub async fn register<A: GatewayAdapter>(
    io: &SocketIo<A>,
    admin: &Arc<Admin>,
) -> anyhow::Result<()> {
    A::init_namespace(io.ns(
        admin.namespace.clone(),
        on_connect::<A>.with(authenticate::<A>),
    ))
    .await?;
    // One task sends the reports, in the order they were made (as `instrument()` emits them);
    // a task per report let them overtake each other on the way to Redis. Bounded: clients
    // make reports (connects, joins, leaves, events with `--admin-ui-events`) faster than one
    // PUBLISH at a time drains them when Redis is slow or stalled, and in cluster mode they
    // are made whether or not an admin is connected anywhere. Past REPORT_QUEUE, a report is
    // dropped and counted (`admin_ui_reports_dropped_total`): the Admin UI's view is a
    // monitor, and its next `server_stats` and a page reload resync it.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(&'static str, Vec<Value>)>(REPORT_QUEUE);
    let (reports, namespace) = (io.clone(), admin.namespace.clone());
    tokio::spawn(async move {
        while let Some((event, args)) = rx.recv().await {
            let Some(ns) = reports.of(namespace.as_str()) else {
                continue;
            };
            if let Err(e) = ns.emit(event, &Args(&args)).await {
                tracing::debug!(event, error = %e, "admin UI report not sent");
            }
        }
    });
    let dropped = admin.reports_dropped.clone();
    let _ = admin.emitter.set(Box::new(move |event, args| {
        if tx.try_send((event, args)).is_err() {
            dropped.inc();
        }
    }));
    let (io, admin) = (io.clone(), admin.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !admin.listened() {
                continue;
            }
            let stats = admin.stats(&io);
            admin.report("server_stats", vec![stats]);
            for (nsp, id) in admin.upgraded(&io) {
                let update = json!({ "id": id.to_string(), "nsp": nsp, "transport": "websocket" });
                admin.report("socket_updated", vec![update]);
            }
        }
    });
    Ok(())
}

/// A login session handed out by [`authenticate`], sent to the UI on connect.
#[derive(Clone)]
struct Session(String);

async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    State(admin): State<Arc<Admin>>,
    TryData(auth): TryData<Value>,
) -> Result<(), AdminAuthError> {
    let remote: Option<IpAddr> = s
        .req_parts()
        .extensions
        .get::<axum::extract::ConnectInfo<ConnInfo>>()
        .map(|c| c.0.remote.ip());
    let auth = auth.unwrap_or(Value::Null);
    match admin.auth.check(&auth, remote).await {
        Ok(session) => {
            if let Some(id) = session {
                s.extensions.insert(Session(id));
            }
            Ok(())
        }
        Err(e) => {
            admin
                .metrics
                .auth_failures_total
                .with_label_values(&[e.reason()])
                .inc();
            // Wrong credentials are throttled per connection, not per node: one line per
            // interval, each refusal counted.
            static LOG: WarnLimit = WarnLimit::new(Duration::from_secs(10));
            if let Some(held_back) = LOG.allow() {
                tracing::info!(remote = ?remote, error = %e, held_back, "admin UI connect refused (each is counted in auth_failures_total; logged at most every 10 s)");
            }
            Err(e)
        }
    }
}

async fn on_connect<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, State(admin): State<Arc<Admin>>) {
    use std::sync::atomic::Ordering::Relaxed;
    admin.admins_here.fetch_add(1, Relaxed);
    let gone = admin.clone();
    s.on_disconnect(move |_: SocketRef<A>| {
        gone.admins_here.fetch_sub(1, Relaxed);
        std::future::ready(())
    });
    if let Some(Session(id)) = s.extensions.get::<Session>() {
        let _ = s.emit("session", &id);
    }
    let _ = s.emit("config", &json!({ "supportedFeatures": admin.features() }));
    let _ = s.emit("server_stats", &admin.stats(&io));
    let door = Arc::new(Commands {
        bucket: admin.event_rate.bucket(s.id),
        counted: admin.commands.clone(),
    });
    for event in ["emit", "join", "leave", "_disconnect"] {
        let admin = admin.clone();
        s.on(
            event,
            Gate::new(
                door.clone(),
                move |io: SocketIo<A>, Data(Spread(args)): Data<Spread>| async move {
                    admin.command(&io, event, args).await;
                },
            ),
        );
    }
    let sockets = admin.all_sockets(&io).await;
    let _ = s.emit("all_sockets", &sockets);
}

/// An admin connection's commands behind `--event-rate` ([`Gate`]). Each command is a task of
/// socketioxide's and most are a broadcast operator reaching every node: a logged-in admin (even
/// a `readonly` one, whose commands are refused) sent them at any rate (review 7: 100,000
/// `emit` commands cost 1.75 s of CPU in 5 s). Over the rate, a command is counted
/// (`admin_ui_commands_total{result="rate_limited"}`), logged at most once per 10 s, and not run.
struct Commands {
    bucket: Arc<TokenBucket>,
    counted: IntCounterVec,
}

impl Door for Commands {
    fn admit(&self) -> bool {
        self.bucket.try_take()
    }

    fn refuse<A: Adapter>(&self, s: Arc<Socket<A>>, _: HandlerValue, _: Option<i64>) {
        self.counted.with_label_values(&["rate_limited"]).inc();
        static LOG: WarnLimit = WarnLimit::new(Duration::from_secs(10));
        if let Some(held_back) = LOG.allow() {
            tracing::info!(
                sid = %s.id,
                held_back,
                "admin UI command over --event-rate, not run (each is counted in admin_ui_commands_total{{result=\"rate_limited\"}}; logged at most every 10 s)"
            );
        }
    }
}

/// Every argument of an event. socketioxide hands a handler the first argument only, unless
/// its data type deserializes as a tuple: this one does, of any length.
struct Spread(Vec<Value>);

impl<'de> serde::Deserialize<'de> for Spread {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Spread, D::Error> {
        struct Seq;
        impl<'de> serde::de::Visitor<'de> for Seq {
            type Value = Spread;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Spread, S::Error> {
                let mut v = Vec::new();
                // The UI's commands have at most 4 arguments plus an emit's own; a cap keeps a
                // hostile admin connection from making this grow without bound.
                while v.len() < 64 {
                    match seq.next_element::<Value>()? {
                        Some(x) => v.push(x),
                        None => break,
                    }
                }
                Ok(Spread(v))
            }
        }
        d.deserialize_tuple(64, Seq)
    }
}

impl Admin {
    /// One UI command, with the arguments the UI sent.
    async fn command<A: Adapter>(&self, io: &SocketIo<A>, event: &str, args: Vec<Value>) {
        if self.mode != AdminUi::Full {
            self.commands.with_label_values(&["refused"]).inc();
            // One line per interval: a logged-in admin can send commands as fast as it likes
            // (review 7: 100,000 in 5 s were as many INFO lines). Each is counted.
            static LOG: WarnLimit = WarnLimit::new(Duration::from_secs(10));
            if let Some(held_back) = LOG.allow() {
                tracing::info!(
                    event,
                    held_back,
                    "admin UI command refused: --admin-ui readonly (each is counted in admin_ui_commands_total{{result=\"refused\"}}; logged at most every 10 s)"
                );
            }
            return;
        }
        let text = |i: usize| args.get(i).and_then(Value::as_str).map(str::to_owned);
        let Some(nsp) = text(0) else {
            self.commands.with_label_values(&["invalid"]).inc();
            return;
        };
        let Some(op) = io.of(nsp.as_str()) else {
            self.commands.with_label_values(&["invalid"]).inc();
            return;
        };
        let res = match event {
            "emit" => {
                // (nsp, filter, event, ...args)
                let Some(ev) = text(2).filter(|e| crate::names::valid_len(e)) else {
                    self.commands.with_label_values(&["invalid"]).inc();
                    return;
                };
                let op = match text(1) {
                    Some(room) => op.to(room),
                    None => op.broadcast(),
                };
                op.emit(&ev, &Args(args.get(3..).unwrap_or_default()))
                    .await
                    .map_err(|e| e.to_string())
            }
            "join" | "leave" => {
                // (nsp, room, filter?)
                let Some(room) = text(1) else {
                    self.commands.with_label_values(&["invalid"]).inc();
                    return;
                };
                let op = match text(2) {
                    Some(filter) => op.within(filter),
                    None => op.broadcast(),
                };
                if event == "join" {
                    op.join(room).await.map_err(|e| e.to_string())
                } else {
                    op.leave(room).await.map_err(|e| e.to_string())
                }
            }
            _ => {
                // "_disconnect": (nsp, close, filter?)
                let op = match text(2) {
                    Some(filter) => op.within(filter),
                    None => op.broadcast(),
                };
                op.disconnect().await.map_err(|e| e.to_string())
            }
        };
        match res {
            Ok(()) => self.commands.with_label_values(&["ok"]).inc(),
            Err(e) => {
                self.commands.with_label_values(&["failed"]).inc();
                static LOG: WarnLimit = WarnLimit::new(Duration::from_secs(10));
                if let Some(held_back) = LOG.allow() {
                    tracing::info!(event, error = %e, held_back, "admin UI command failed (each is counted; logged at most every 10 s)");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, atomic::Ordering::Relaxed};

    use super::Admin;
    use crate::config::{AdminUi, Config, Options};

    fn admin(redis: Option<&str>) -> Arc<Admin> {
        let o = Options {
            admin_ui: Some(AdminUi::Readonly),
            admin_ui_no_auth: Some(true),
            redis: redis.map(str::to_owned),
            ..Options::default()
        };
        let config = Config::resolve(o).expect("valid options");
        let metrics = Arc::new(crate::metrics::Metrics::new(&config.node_id));
        Admin::new(
            &config,
            metrics,
            Arc::new(crate::cluster_view::SingleNode),
            Arc::new(crate::event_rate::EventRate::new(0.0, 1)),
        )
        .expect("on")
    }

    #[test]
    fn a_single_node_reports_only_while_an_admin_is_connected_here() {
        let a = admin(None);
        assert!(!a.listened(), "nobody can hear it: nothing is serialized");
        a.admins_here.fetch_add(1, Relaxed);
        assert!(a.listened());
        a.admins_here.fetch_sub(1, Relaxed);
        assert!(!a.listened());
    }

    #[test]
    fn a_cluster_node_always_reports() {
        // An admin may be connected to another node (gateway or Node.js): as instrument().
        assert!(admin(Some("redis://127.0.0.1:6379")).listened());
    }
}
