//! Wiring: socketioxide on axum, the HTTP routes, tower layers, listeners, signals.
//!
//! [`serve`] is generic over the adapter type so the same server runs with the in-memory
//! adapter (single node) or a cluster adapter; see [`crate::adapter`].
//!
//! Layer order, outermost first: the response fix-ups axum's router made when it wrapped the
//! stack (`TopLevel`) → websocket origin check (`origin`, around the cluster's forwarding too;
//! it reads the Engine.IO query once for all, `engine_io::Shape`) → [cluster mode: the cluster's `/socket.io/` layer, which records and
//! forwards sessions by their session key, see `cluster::sessions::Routing`] → credentials strip →
//! CORS → tracing → HTTP metrics → session key (sid: secret key -> socket id, see
//! [`crate::session_key`]) → per-IP handshake rate → engine guard (drain) → sticky cookie →
//! request head trimming → socketioxide (`/socket.io/`) → axum routes. Everything from the
//! engine guard inward sees the socket id as `sid`; everything outside the session-key layer
//! sees the key.
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context as _;
use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus::IntCounter;
use socketioxide::{
    ParserConfig, SocketIo, adapter::Adapter, handler::ConnectHandler, layer::SocketIoLayer,
};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, layer::util::Stack, util::MapResponseLayer};
use tower_http::{classify::StatusInRangeAsFailures, cors::CorsLayer, trace::TraceLayer};

use crate::{
    adapter::GatewayAdapter,
    chat,
    config::{Config, NamespaceSpec},
    drain, health,
    health::ReadyCheck,
    hook::{Finish, HookLayer, HookService, Step},
    limits::{self, IpRateLimit},
    listener::{ConnInfo, TrackedListener},
    metrics::Metrics,
    relay,
    state::{AppState, Gateway},
    sticky,
};

/// Build the Socket.IO layer and handle with the configured limits and timings.
pub fn build_socketio<A: Adapter>(
    gw: &Arc<Gateway>,
    adapter_state: A::State,
) -> (SocketIoLayer<A>, SocketIo<A>) {
    let c = &gw.config;
    // One limit, three enforcement points: polling bodies (max_payload), websocket messages
    // and frames, and the total of a packet's binary attachments.
    let max = usize::try_from(c.max_payload).unwrap_or(usize::MAX);
    let mut builder = SocketIo::builder();
    if let Some(admin) = &gw.admin {
        builder = builder.with_state(admin.clone());
    }
    builder
        .ping_interval(c.ping_interval)
        .ping_timeout(c.ping_timeout)
        .connect_timeout(c.connect_timeout)
        .max_buffer_size(c.max_buffer)
        // Kept per connection for its whole life; see `config::DEFAULT_WS_READ_BUFFER`.
        .ws_read_buffer_size(c.ws_read_buffer)
        .max_payload(c.max_payload)
        .ws_max_message_size(max)
        .ws_max_frame_size(max)
        .with_parser(ParserConfig::common().max_incoming_binary_buf_size(max))
        // socketioxide states, by type: the relay takes the gateway; authentication only its
        // three services.
        .with_state(gw.clone())
        .with_state(gw.auth.clone())
        .with_state(gw.metrics.clone())
        .with_state(gw.namespaces.clone())
        .with_adapter::<A>(adapter_state)
        .build_layer()
}

/// Register `specs` on `io` with the relay's connect handler.
pub async fn register<A: GatewayAdapter>(
    io: &SocketIo<A>,
    specs: &[NamespaceSpec],
) -> anyhow::Result<()> {
    for spec in specs {
        // Middlewares run last-added first: admit (drain, capacity) before authentication.
        // socketioxide runs the last `.with` first: admit, then authenticate, then install.
        let handler = relay::on_connect::<A>
            .with(relay::install::<A>)
            .with(crate::auth::authenticate::<A>)
            .with(relay::admit::<A>);
        match spec {
            NamespaceSpec::Exact(path) => {
                A::init_namespace(io.ns(path.clone(), handler))
                    .await
                    .with_context(|| format!("initialising namespace {path}"))?;
            }
            NamespaceSpec::Pattern(pat) => io
                .dyn_ns(pat.clone(), handler)
                .with_context(|| format!("invalid namespace pattern {pat}"))?,
        }
    }
    Ok(())
}

/// The `route` label values of `http_requests_total`, indexed by [`route_class`].
const ROUTES: [&str; 9] = [
    "engine.io",
    "page",
    "client_js",
    "healthz",
    "readyz",
    "metrics",
    "admin_ui",
    "api",
    "other",
];

/// The route class of `path`: an index into [`ROUTES`].
fn route_class(path: &str) -> usize {
    match path {
        p if crate::engine_io::is_engine_io(p) => 0,
        "/" => 1,
        "/socket.io.min.js" | "/history-client.js" => 2,
        "/healthz" => 3,
        "/readyz" => 4,
        "/metrics" => 5,
        p if p.starts_with(crate::admin::UI_PATH) => 6,
        p if p.starts_with("/api/") => 7,
        _ => 8,
    }
}

/// The statuses whose `http_requests_total` handles [`HttpMetrics`] keeps (others are looked
/// up by their labels each time).
const CACHED_STATUSES: [u16; 9] = [101, 200, 204, 304, 400, 403, 404, 429, 503];

/// `http_requests_total{route, status}` for every request (a [`Hook`](crate::hook::Hook)).
///
/// `with_label_values` hashes the label values and takes the vector's lock on every call
/// (~350 instructions per websocket handshake, callgrind, BENCHMARKS.md issue 18): the handles
/// of the common route and status pairs are kept once made. Made on first use, as before, so
/// `/metrics` shows the same series.
#[derive(Clone)]
struct HttpMetrics {
    metrics: Arc<Metrics>,
    /// `[route][status]`, by [`ROUTES`] and [`CACHED_STATUSES`].
    handles: Arc<[[OnceLock<IntCounter>; CACHED_STATUSES.len()]; ROUTES.len()]>,
}

impl HttpMetrics {
    fn new(metrics: Arc<Metrics>) -> HttpMetrics {
        HttpMetrics {
            metrics,
            handles: Arc::new(Default::default()),
        }
    }
}

impl crate::hook::Hook for HttpMetrics {
    type Carry = usize;

    fn before(&self, req: &mut Request) -> Step<usize> {
        Step::Continue(route_class(req.uri().path()))
    }

    fn after(&self, route: usize, resp: Response) -> Finish {
        let status = resp.status();
        let labels = || [ROUTES[route], status.as_str()];
        let total = &self.metrics.http_requests_total;
        match CACHED_STATUSES.iter().position(|&s| s == status.as_u16()) {
            Some(i) => self.handles[route][i]
                .get_or_init(|| total.with_label_values(&labels()))
                .inc(),
            None => total.with_label_values(&labels()).inc(),
        }
        Finish::Done(resp)
    }
}

/// A request's method, as far as [`TopLevel`] cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Head,
    Connect,
    Other,
}

/// What axum's router did to every response when the stack was its fallback service
/// (`Router::new().fallback_service(stack)`, its `RouteFuture` at the top level), done here
/// instead: `Content-Length` from an exact body size unless set, no body for `HEAD`, none for
/// a successful `CONNECT` (a [`Hook`](crate::hook::Hook), outermost).
///
/// The router did nothing else for the stack, which serves every path anyway (the routes are
/// a router of their own inside it, which sets `OriginalUri` and its path parameters itself);
/// but matching the fallback's catch-all route, its path parameters and `OriginalUri` in the
/// extensions, the boxed clone of the stack and its boxed future cost ~3k instructions per
/// websocket handshake (callgrind, BENCHMARKS.md issue 18).
#[derive(Clone)]
struct TopLevel;

impl crate::hook::Hook for TopLevel {
    type Carry = Verb;

    fn before(&self, req: &mut Request) -> Step<Verb> {
        Step::Continue(match *req.method() {
            Method::HEAD => Verb::Head,
            Method::CONNECT => Verb::Connect,
            _ => Verb::Other,
        })
    }

    fn after(&self, verb: Verb, mut res: Response) -> Finish {
        use axum::body::{Body, HttpBody as _};
        use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
        if verb == Verb::Connect && res.status().is_success() {
            // RFC 9110: no Transfer-Encoding or Content-Length in a 2xx answer to CONNECT.
            if res.headers().contains_key(CONTENT_LENGTH)
                || res.headers().contains_key(TRANSFER_ENCODING)
                || res.body().size_hint().lower() != 0
            {
                tracing::error!("response to CONNECT with nonempty body");
                res = res.map(|_| Body::empty());
            }
            return Finish::Done(res);
        }
        if !res.headers().contains_key(CONTENT_LENGTH)
            && let Some(size) = res.body().size_hint().exact()
        {
            let value = if size == 0 {
                HeaderValue::from_static("0")
            } else {
                HeaderValue::from(size)
            };
            res.headers_mut().insert(CONTENT_LENGTH, value);
        }
        if verb == Verb::Head {
            *res.body_mut() = Body::empty();
        }
        Finish::Done(res)
    }
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    use tower_http::cors::{AllowHeaders, AllowOrigin, Any};
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new().allow_methods([axum::http::Method::GET, axum::http::Method::POST]);
    Some(if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any).allow_headers(Any)
    } else {
        // Validated in config; invalid ones cannot get here, skip defensively.
        let list: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
        // Credentials (the sticky cookie) are allowed for listed origins; the CORS spec then
        // forbids `Allow-Headers: *`, so the requested headers are mirrored instead.
        layer
            .allow_origin(AllowOrigin::list(list))
            .allow_credentials(true)
            .allow_headers(AllowHeaders::mirror_request())
    })
}

/// The client-facing service: the routes (and `/metrics` unless it has its own listener), with
/// every cross-cutting layer put once around the finished router, in the order of the module
/// doc, outermost first.
///
/// Not with `Router::layer`: that wraps every route in its own boxed service per layer, and
/// axum's `from_fn` clones its inner service on each request, so each request deep-cloned the
/// boxed stack below each layer (O(layers²) allocations and copies per request: ~18k of the
/// ~65k instructions a websocket handshake cost more than on plain socketioxide; BENCHMARKS.md,
/// issue 18). Around the router, those clones are reference counts.
pub fn app<A: Adapter>(
    st: AppState<A>,
    layer: SocketIoLayer<A>,
    cluster: Option<&Arc<crate::cluster::Cluster>>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let gw = st.gw.clone();
    let mut r = Router::new()
        .route("/", get(chat::page))
        .route("/socket.io.min.js", get(chat::client_js))
        .route("/history-client.js", get(chat::history_js))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if gw.config.metrics_listen.is_none() {
        r = r.route("/metrics", get(crate::metrics::handler::<A>));
    }
    if gw.admin.is_some()
        && let Some(dir) = crate::admin::ui_dir()
    {
        let ui = crate::admin::UI_PATH;
        r = r
            .route(
                ui,
                get(|| async { axum::response::Redirect::permanent("/admin-ui/") }),
            )
            .nest_service(&format!("{ui}/"), tower_http::services::ServeDir::new(dir));
    }
    let mut routes = r
        .nest("/api/v1", crate::api::router::<A>(&gw))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .with_state(st);
    if let Some(c) = cluster {
        routes = c.api_routes(&gw).merge(routes);
    }

    // 503 is the gateway's expected answer while it drains or is not ready (every balancer
    // probe of `/readyz`, refused handshakes): not a failure to log per request; `health` logs
    // readiness changes once. The gateway answers no 504+ itself, so 500-502 are the failures.
    let failures = StatusInRangeAsFailures::new(500..=502).into_make_classifier();
    let ip_limit = Arc::new(IpRateLimit::new(gw.config.conn_rate_per_ip));
    let cors = cors_layer(&gw.config.cors_origin).map(|cors| {
        // Credentials are stripped outside CORS.
        Stack::new(cors, HookLayer(crate::origin::StripCredentials))
    });
    let stack = ServiceBuilder::new()
        // A websocket from a foreign origin is refused before it is forwarded anywhere.
        .layer(HookLayer(crate::origin::Guard {
            metrics: gw.metrics.clone(),
            policy: Arc::new(crate::origin::OriginPolicy::from_config(
                &gw.config.cors_origin,
            )),
            skip_signed_forwards: cluster.is_some(),
        }))
        // Cluster mode: records and forwards `/socket.io/` sessions by their session key.
        .option_layer(cluster.map(|c| HookLayer(crate::cluster::sessions::Routing(c.clone()))))
        .option_layer(cors)
        // One response type whichever optional layers are there (the router's, as before).
        .layer(MapResponseLayer::new(IntoResponse::into_response))
        .layer(TraceLayer::new(failures))
        .layer(HookLayer(HttpMetrics::new(gw.metrics.clone())))
        // Session keys: outside the drain guard (which marks sessions by socket id), inside the
        // HTTP metrics (refusals are counted as 400s) and CORS (refusals carry CORS headers).
        .layer(HookLayer(crate::session_key::KeyGuard {
            keys: gw.session_keys.clone(),
            polling: gw.polling.clone(),
        }))
        // Inside the HTTP metrics layer so refusals are counted as 503s; outside the per-IP
        // rate, so a handshake that rate refuses is not counted as pending.
        .layer(HookLayer(crate::pending_sessions::PendingCap {
            sessions: gw.pending_sessions.clone(),
            refused: gw
                .metrics
                .connections_refused_total
                .with_label_values(&["pending_sessions"]),
        }))
        // Inside the HTTP metrics layer so refusals are counted as 429s.
        .option_layer(ip_limit.enabled().then(|| {
            HookLayer(limits::HandshakeRate {
                metrics: gw.metrics.clone(),
                limit: ip_limit,
            })
        }))
        .layer(HookLayer(drain::EngineGuard {
            drain: gw.drain.clone(),
            metrics: gw.metrics.clone(),
        }))
        // Inside the drain guard: a session it closes takes no post, and `sid` is the socket id.
        .layer(HookLayer(crate::polling_body::PostLimits {
            max_payload: usize::try_from(gw.config.max_payload).unwrap_or(usize::MAX),
            drain: gw.drain.clone(),
            conns: gw.conns.clone(),
            refused: gw
                .metrics
                .dropped_messages_total
                .with_label_values(&["polling_body"]),
        }))
        .layer(HookLayer(sticky::Stamp(gw.sticky.clone())))
        // Outside the Socket.IO layer, so the parts engineioxide keeps are already detached
        // and trimmed; inside every layer that reads other request headers.
        .layer(HookLayer(crate::request_head::OwnHead(gw.auth.clone())))
        .layer(layer)
        .service(routes);
    // The stack is the service itself: see `TopLevel`.
    HookService::new(TopLevel, stack)
}

fn metrics_router<A: Adapter>(st: AppState<A>) -> Router {
    Router::new()
        .route("/metrics", get(crate::metrics::handler::<A>))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(st)
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what})"))
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Cut client connections whose writes have stalled for longer than the heartbeat allows
/// (`--ping-interval` + `--ping-timeout`): a client that stops reading; and those that sent
/// nothing for `--idle-timeout` (see `listener`; every live client sends within the heartbeat,
/// which the configuration checks the timeout outlasts).
fn spawn_stall_sweeper(gw: Arc<Gateway>) {
    let stall = gw.config.ping_interval + gw.config.ping_timeout;
    let idle = match gw.config.idle_timeout {
        d if d.is_zero() => Duration::MAX,
        d => d,
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            // A closing session's posts are refused, so its heartbeat ends it within `stall`.
            gw.drain.sweep_closing(stall * 2);
            let cut = gw.conns.sweep(stall, idle);
            if cut.stalled > 0 {
                gw.metrics
                    .connections_closed_stalled_total
                    .inc_by(cut.stalled as u64);
                tracing::info!(node_id = %gw.node_id(), connections = cut.stalled, "closed clients that stopped reading");
            }
            if cut.idle > 0 {
                gw.metrics
                    .connections_closed_idle_total
                    .inc_by(cut.idle as u64);
                tracing::debug!(node_id = %gw.node_id(), connections = cut.idle, "closed connections that sent nothing");
            }
        }
    });
}

/// Say at start-up, loudly, when a secret is a published demo placeholder (accepted only with
/// `--allow-demo-secrets`).
fn log_demo_secrets(c: &Config) {
    let keys = c.demo_secrets();
    if !keys.is_empty() {
        tracing::warn!(
            keys = ?keys,
            "demo secrets: this node runs with a published placeholder secret (--allow-demo-secrets): \
             anyone who knows it can use the HTTP API or forge forwarded requests; set random \
             secrets (e.g. `openssl rand -hex 32`) before exposing this node"
        );
    }
}

/// Say at start-up what clients may do with rooms, loudly when it is the open demo default.
fn log_room_rules(c: &Config) {
    let open = c.can_join.is_open() || c.can_publish.is_open();
    let authenticated = c.auth.mode != crate::config::AuthMode::None;
    if open && !authenticated {
        tracing::warn!(
            can_join = %c.can_join,
            can_publish = %c.can_publish,
            "demo room rules: without --auth any client may join and publish to any room (`*`), \
             except personal `user:` rooms and other sockets' own-id rooms; set --auth and \
             --can-join/--can-publish for production"
        );
    } else if open {
        tracing::warn!(
            "room rules contain `*`: any authenticated client may join or publish to any room \
             except personal `user:` rooms and other sockets' own-id rooms"
        );
    } else if authenticated && c.can_join.is_empty() && c.can_publish.is_empty() {
        tracing::info!(
            "no room rules configured: clients may join and publish only to rooms their \
             credentials grant (can_join / can_publish claims)"
        );
    }
}

/// Say at start-up when nothing limits what one client address may open: right behind a load
/// balancer (which should cap per address), not when clients reach the node directly.
fn log_address_limits(c: &Config) {
    if c.conn_rate_per_ip == 0.0 || c.max_conns_per_ip == 0 {
        tracing::info!(
            conn_rate_per_ip = c.conn_rate_per_ip,
            max_conns_per_ip = c.max_conns_per_ip,
            "per-address limits off (0 = unlimited): right behind a load balancer that caps \
             connections per client address; set --conn-rate-per-ip and --max-conns-per-ip when \
             clients reach this node directly"
        );
    }
}

/// Run a gateway node with adapter `A` until it has drained after SIGTERM/SIGINT.
pub async fn serve<A: GatewayAdapter>(
    config: Config,
    adapter_state: A::State,
    ready_checks: Vec<Arc<dyn ReadyCheck>>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> anyhow::Result<()> {
    // The composition root: every service is built once, here, then put together.
    let services = crate::state::Services {
        ready_checks,
        auth: crate::auth::Authenticator::from_config(&config)?,
        upstream: crate::upstream::Sink::from_config(&config).await?,
        cluster: match &cluster {
            Some(c) => c.view(),
            None => Arc::new(crate::cluster_view::SingleNode),
        },
        history_store: match (&cluster, &config.redis) {
            (Some(_), Some(url)) if !config.history.is_empty() => Some(
                crate::history::stream::StreamStore::connect(url, config.max_payload)
                    .await
                    .context("connecting the history's Redis client")?,
            ),
            _ => None,
        },
    };
    let gw = Arc::new(Gateway::new(config, services));
    let cfg = gw.config.clone();
    if let Some(admin) = &gw.admin {
        A::set_room_watch(&adapter_state, admin.clone());
    }
    let (layer, io) = build_socketio::<A>(&gw, adapter_state);
    register(&io, &cfg.namespace).await?;
    if let Some(admin) = &gw.admin {
        crate::admin::register(&io, admin).await?;
    }
    if let Some(c) = &cluster {
        c.start(&gw, &io).await;
        c.handle
            .set_socket_info(Arc::new(crate::cluster::socket_info::GatewaySockets {
                io: io.clone(),
            }));
        if gw.history.is_enabled() {
            c.handle.set_delivery_filter(gw.history.holdback.clone());
        }
    }
    crate::pysio::start(&gw, &io).await?;
    if gw.history.is_enabled() {
        // Histories idle past their TTL are forgotten, not kept for rooms used once; in cluster
        // mode, rooms evicted for the memory budget while others were created have their
        // streams deleted.
        let history = gw.history.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                history.sweep();
                history.flush_evictions().await;
            }
        });
    }
    tokio::spawn(crate::session_key::sweep_forever(
        gw.session_keys.clone(),
        gw.polling.clone(),
        io.clone(),
    ));
    let st = AppState {
        gw: gw.clone(),
        io: io.clone(),
    };

    let listener = bind(cfg.listen, "--listen").await?;
    let local = listener.local_addr()?;
    let app = app(st.clone(), layer, cluster.as_ref());
    let tracked = TrackedListener::new(listener, gw.conns.clone());
    spawn_stall_sweeper(gw.clone());
    tokio::spawn(crate::auth::expiry::sweep_forever(
        gw.expiries.clone(),
        io.clone(),
        gw.drain.clone(),
        gw.conns.clone(),
        gw.metrics.clone(),
    ));
    let server = axum::serve(
        tracked,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<ConnInfo>(app),
    );
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "client listener failed");
        }
    });
    if let Some(maddr) = cfg.metrics_listen {
        let ml = bind(maddr, "--metrics-listen").await?;
        let mrouter = metrics_router(st.clone());
        tracing::info!(addr = %ml.local_addr()?, "metrics listening");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(ml, mrouter).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    tracing::info!(
        node_id = %cfg.node_id,
        addr = %local,
        advertise = %cfg.advertise,
        mode = if cluster.is_some() { "cluster" } else { "single node (in-memory adapter)" },
        redis = %cfg.redis.as_deref().map_or_else(|| "none".to_owned(), crate::config::url_for_log),
        pubsub = if cluster.is_some() { "classic PUBLISH/SUBSCRIBE" } else { "none" },
        redis_answered = cluster.as_ref().map(|c| c.handle.redis_up()),
        namespaces = ?cfg.namespace,
        client_js = if gw.chat.serves_client() { "local" } else { chat::CDN_URL },
        // python-socketio's RedisManager reaches clients only through a channel named here.
        pysio = cfg.pysio_channel.as_deref().unwrap_or("none (--pysio-channel not set: python-socketio RedisManager emits reach no client)"),
        "sio-gateway listening"
    );

    log_demo_secrets(&cfg);
    log_room_rules(&cfg);
    log_address_limits(&cfg);

    shutdown_signal().await;
    tracing::info!(node_id = %cfg.node_id, "signal received, draining");
    // A second signal skips the rest of the drain.
    let forced = tokio::spawn(async {
        shutdown_signal().await;
        tracing::warn!("second signal: exiting without completing the drain");
        std::process::exit(1);
    });
    if let Some(c) = &cluster {
        c.leave().await;
    }
    drain::run(
        &gw.drain,
        &gw.conns,
        &gw.metrics,
        gw.config.drain_period,
        gw.node_id(),
        io,
    )
    .await;
    forced.abort();
    Ok(())
}
