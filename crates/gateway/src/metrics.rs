//! Prometheus metrics of the gateway: one registry, prefix `sio_gateway_`.
//!
//! Counters that are bumped per event keep pre-resolved children for their fixed label values
//! (`dropped_no_sink`, ...), so the hot path is one atomic add, never a label-map lookup.
//! The `connections{namespace,transport}` gauge is not maintained incrementally: it is
//! recomputed from socketioxide's own socket table at scrape time ([`handler`], the `/metrics`
//! endpoint), which keeps it exact across transport upgrades at zero cost per message. That
//! walk is O(local sockets), and `/metrics` is on the client port unless `--metrics-listen`
//! moves it, so anyone could make the node walk its whole socket table per request: recounts
//! are paced (`Recount`) to at most 1 % of one core, and scrapes in between serve the last
//! count.
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use socketioxide::{SocketIo, adapter::Adapter};

use crate::{
    config::{Config, NamespaceSpec},
    rules::Pattern,
};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Why a message was dropped (label values of `dropped_messages_total`).
pub mod drop_reason {
    pub const NO_SINK: &str = "no_sink";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const FORBIDDEN: &str = "forbidden";
    pub const INVALID: &str = "invalid";
    pub const SEND_FAILED: &str = "send_failed";
    /// A recipient's send queue was full (`--max-buffer`) or it was closing.
    pub const SLOW_CLIENT: &str = "slow_client";
    /// An ack found the client's queue full for `ack::ACK_DEADLINE`; the client was closed.
    pub const ACK_UNDELIVERABLE: &str = "ack_undeliverable";
    /// A client's publish reached this node's members but could not be sent to the other
    /// nodes (Redis down); its ack says so (`cluster: false`).
    pub const CLUSTER_UNREACHABLE: &str = "cluster_unreachable";
    /// An event the webhook sink had no room for (node slots taken for the whole timeout, or
    /// too many of the connection's events at the backend); its ack says `backend busy`.
    pub const UPSTREAM_BUSY: &str = "upstream_busy";
    /// The upstream sink failed (unreachable, timed out, refused the event).
    pub const UPSTREAM_FAILED: &str = "upstream_failed";
    /// An event bound upstream larger than `--upstream-max-event-bytes`; its ack says so.
    pub const UPSTREAM_TOO_LARGE: &str = "upstream_too_large";
}

/// Help of `events_sent_total`, also used where the cluster collector re-exports it.
pub const EVENTS_SENT_HELP: &str = "Events delivered to client sockets, one per receiving socket, counted on the node that writes it (deliveries of other nodes' and emitters' broadcasts included)";

/// Histogram buckets (seconds) of the gateway's short operations: 10 µs to 1 s.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
];

impl Metrics {
    /// `disconnections_total{reason=label}` once more; `index` is the reason's place (below
    /// 8) in a fixed order of the caller's. The handle is kept once made: `with_label_values`
    /// hashes the label and takes the vector's lock each time (~200 instructions per
    /// disconnection, callgrind, BENCHMARKS.md issue 18). Made on first use, as before, so
    /// `/metrics` shows the same series.
    pub fn count_disconnection(&self, index: usize, label: &str) {
        match self.disconnections.get(index) {
            Some(slot) => slot
                .get_or_init(|| self.disconnections_total.with_label_values(&[label]))
                .inc(),
            None => self.disconnections_total.with_label_values(&[label]).inc(),
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub connections: IntGaugeVec,
    pub connections_total: IntCounter,
    pub connections_refused_total: IntCounterVec,
    pub disconnections_total: IntCounterVec,
    /// `disconnections_total`'s handles by reason, made on first use (see
    /// [`Metrics::count_disconnection`]).
    disconnections: [std::sync::OnceLock<IntCounter>; 8],
    pub events_received_total: IntCounter,
    pub events_sent_total: IntCounter,
    /// Bytes read from / written to client connections (the client listener's TCP payload).
    pub bytes_received_total: IntCounter,
    pub bytes_sent_total: IntCounter,
    pub dropped_messages_total: IntCounterVec,
    pub dropped_no_sink: IntCounter,
    pub dropped_rate_limited: IntCounter,
    pub dropped_forbidden: IntCounter,
    pub dropped_invalid: IntCounter,
    pub dropped_send_failed: IntCounter,
    pub dropped_slow_client: IntCounter,
    pub dropped_ack_undeliverable: IntCounter,
    pub dropped_cluster_unreachable: IntCounter,
    pub dropped_upstream_busy: IntCounter,
    pub dropped_upstream_too_large: IntCounter,
    /// Acks that found the client's queue full and waited for room (see `ack`).
    pub acks_delayed_total: IntCounter,
    /// Connections cut because their writes made no progress (see `listener`).
    pub connections_closed_stalled_total: IntCounter,
    pub connections_closed_expired_total: IntCounter,
    /// Connections cut because they sent nothing for `--idle-timeout` (see `listener`).
    pub connections_closed_idle_total: IntCounter,
    /// Engine.IO sessions closed after leaving every namespace (see `engine_sessions`).
    pub sessions_closed_no_namespace_total: IntCounter,
    pub broadcasts_total: IntCounterVec,
    pub broadcasts_client: IntCounter,
    pub auth_failures_total: IntCounterVec,
    pub broadcast_fanout_seconds: Histogram,
    pub redis_up: IntGauge,
    /// Namespaces that exist on this node (exact and made from patterns), at scrape time.
    pub namespaces: IntGauge,
    /// Engine.IO sessions handshaken and not connected to a namespace yet (see
    /// `pending_sessions`).
    pub sessions_pending: IntGauge,
    pub draining: IntGauge,
    pub http_requests_total: IntCounterVec,
    /// Recounts of `connections` made by scrapes (see `Recount`).
    pub connections_recounts_total: IntCounter,
    recount: Recount,
}

/// Paces the scrape-time recount of the `connections` gauge by what the last one walked: a
/// recount is due [`Recount::PER_SOCKET`] × the sockets it walked after it ended (about 100 × what
/// walking them costs, so however fast `/metrics` is requested, recounting takes about 1 % of
/// one core), at most [`Recount::MAX_WAIT`]; a node of up to [`Recount::FREE`] sockets (a walk
/// costing about what rendering the metrics does) recounts at every scrape. Counted in sockets,
/// not in the walk's wall-clock time, so a walk that was preempted does not hold recounts off
/// for a hundred times as long. One scrape recounts at a time; scrapes meanwhile serve the last
/// count.
struct Recount {
    /// When the last recount ended, and how many sockets it walked.
    last: Mutex<Option<(Instant, usize)>>,
    walking: std::sync::atomic::AtomicBool,
}

impl Default for Recount {
    fn default() -> Self {
        Recount {
            last: Mutex::new(None),
            walking: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Recount {
    const FREE: usize = 1000;
    const PER_SOCKET: Duration = Duration::from_micros(100);
    const MAX_WAIT: Duration = Duration::from_secs(10);

    fn due(&self, now: Instant) -> bool {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            None => true,
            Some((ended, walked)) => {
                walked <= Self::FREE
                    || now.saturating_duration_since(ended)
                        >= (Self::PER_SOCKET * u32::try_from(walked).unwrap_or(u32::MAX))
                            .min(Self::MAX_WAIT)
            }
        }
    }

    /// Start a recount unless one is running: `None` when one is.
    fn begin(&self) -> Option<Walking<'_>> {
        self.walking
            .compare_exchange(
                false,
                true,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
            )
            .is_ok()
            .then_some(Walking(self))
    }

    fn done(&self, ended: Instant, walked: usize) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((ended, walked));
    }
}

/// A recount in progress; the next may start once it is dropped.
struct Walking<'a>(&'a Recount);

impl Drop for Walking<'_> {
    fn drop(&mut self) {
        self.0
            .walking
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

const NS: &str = "sio_gateway";

impl Metrics {
    pub fn new(node_id: &str) -> Metrics {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NS);
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("static metric definition");
                registry
                    .register(Box::new(m.clone()))
                    .expect("unique metric name");
                m
            }};
        }
        let connections = reg!(IntGaugeVec::new(
            opts("connections", "Live Socket.IO connections on this node"),
            &["namespace", "transport"]
        ));
        let connections_total = reg!(IntCounter::with_opts(opts(
            "connections_total",
            "Socket.IO connections accepted"
        )));
        let connections_refused_total = reg!(IntCounterVec::new(
            opts(
                "connections_refused_total",
                "Connections refused (handshake or namespace connect)"
            ),
            &["reason"]
        ));
        let disconnections_total = reg!(IntCounterVec::new(
            opts("disconnections_total", "Socket.IO disconnections by reason"),
            &["reason"]
        ));
        let events_received_total = reg!(IntCounter::with_opts(opts(
            "events_received_total",
            "Events received from clients"
        )));
        let events_sent_total = reg!(IntCounter::with_opts(opts(
            "events_sent_total",
            EVENTS_SENT_HELP
        )));
        let bytes_received_total = reg!(IntCounter::with_opts(opts(
            "bytes_received_total",
            "Bytes read from client connections (HTTP and WebSocket, TCP payload)"
        )));
        let bytes_sent_total = reg!(IntCounter::with_opts(opts(
            "bytes_sent_total",
            "Bytes written to client connections (HTTP and WebSocket, TCP payload)"
        )));
        let dropped_messages_total = reg!(IntCounterVec::new(
            opts("dropped_messages_total", "Messages dropped, by reason"),
            &["reason"]
        ));
        let acks_delayed_total = reg!(IntCounter::with_opts(opts(
            "acks_delayed_total",
            "Acks that found the client's send queue full and waited for room"
        )));
        let connections_closed_stalled_total = reg!(IntCounter::with_opts(opts(
            "connections_closed_stalled_total",
            "Client connections cut because the client stopped reading (writes stalled past ping interval + timeout)"
        )));
        let connections_closed_expired_total = reg!(IntCounter::with_opts(opts(
            "connections_closed_expired_total",
            "Client sessions cut because a socket's credentials expired (JWT exp + --jwt-leeway, or the auth webhook's exp; --auth-expiry close)"
        )));
        let connections_closed_idle_total = reg!(IntCounter::with_opts(opts(
            "connections_closed_idle_total",
            "Client connections cut because they sent nothing for --idle-timeout (no request, an unfinished request head, an idle keep-alive)"
        )));
        let sessions_closed_no_namespace_total = reg!(IntCounter::with_opts(opts(
            "sessions_closed_no_namespace_total",
            "Engine.IO sessions closed because they stayed connected to no namespace past ping interval + timeout"
        )));
        let broadcasts_total = reg!(IntCounterVec::new(
            opts("broadcasts_total", "Broadcasts by origin"),
            &["origin"]
        ));
        let auth_failures_total = reg!(IntCounterVec::new(
            opts("auth_failures_total", "Refused authentications, by reason"),
            &["reason"]
        ));
        let broadcast_fanout_seconds = reg!(Histogram::with_opts(
            HistogramOpts::new(
                "broadcast_fanout_seconds",
                "Time to hand one broadcast to the adapter (local fan-out included)"
            )
            .namespace(NS)
            .buckets(LATENCY_BUCKETS.to_vec())
        ));
        let redis_up = reg!(IntGauge::with_opts(opts(
            "redis_up",
            "1 if the Redis adapter is connected; always 0 on a single node without --redis"
        )));
        let namespaces = reg!(IntGauge::with_opts(opts(
            "namespaces",
            "Namespaces on this node, configured and made from --namespace patterns"
        )));
        let sessions_pending = reg!(IntGauge::with_opts(opts(
            "sessions_pending",
            "Engine.IO sessions handshaken in the last --connect-timeout and not connected to a namespace yet"
        )));
        let draining = reg!(IntGauge::with_opts(opts(
            "draining",
            "1 while the node drains before exiting"
        )));
        let connections_recounts_total = reg!(IntCounter::with_opts(opts(
            "connections_recounts_total",
            "Recounts of the connections gauge from the socket table, made by scrapes (paced to 1 % of a core)"
        )));
        let http_requests_total = reg!(IntCounterVec::new(
            opts(
                "http_requests_total",
                "HTTP requests by route class and status code"
            ),
            &["route", "status"]
        ));
        let info = reg!(IntGaugeVec::new(
            opts(
                "node_info",
                "Constant 1, labelled with this node's id and version"
            ),
            &["node_id", "version"]
        ));
        info.with_label_values(&[node_id, env!("CARGO_PKG_VERSION")])
            .set(1);

        use drop_reason::*;
        let dropped = |r: &str| dropped_messages_total.with_label_values(&[r]);
        // Pre-create the label values operators alert on, so they export as 0 from the start.
        for r in [
            "invalid_token",
            "missing_token",
            "webhook_refused",
            "webhook_error",
        ] {
            auth_failures_total.with_label_values(&[r]);
        }
        // The refusals a client can cause (the dashboard's "clients cut or refused" panel).
        for r in [
            "max_connections",
            "connect_attempts",
            "max_namespaces",
            "pending_sessions",
            "namespace_name",
        ] {
            connections_refused_total.with_label_values(&[r]);
        }
        Metrics {
            dropped_no_sink: dropped(NO_SINK),
            dropped_rate_limited: dropped(RATE_LIMITED),
            dropped_forbidden: dropped(FORBIDDEN),
            dropped_invalid: dropped(INVALID),
            dropped_send_failed: dropped(SEND_FAILED),
            dropped_slow_client: dropped(SLOW_CLIENT),
            dropped_ack_undeliverable: dropped(ACK_UNDELIVERABLE),
            dropped_cluster_unreachable: dropped(CLUSTER_UNREACHABLE),
            dropped_upstream_busy: dropped(UPSTREAM_BUSY),
            dropped_upstream_too_large: dropped(UPSTREAM_TOO_LARGE),
            acks_delayed_total,
            connections_closed_stalled_total,
            connections_closed_expired_total,
            connections_closed_idle_total,
            sessions_closed_no_namespace_total,
            broadcasts_client: broadcasts_total.with_label_values(&["client"]),
            registry,
            connections,
            connections_total,
            connections_refused_total,
            disconnections_total,
            disconnections: Default::default(),
            events_received_total,
            events_sent_total,
            bytes_received_total,
            bytes_sent_total,
            dropped_messages_total,
            broadcasts_total,
            auth_failures_total,
            broadcast_fanout_seconds,
            redis_up,
            namespaces,
            sessions_pending,
            draining,
            http_requests_total,
            connections_recounts_total,
            recount: Recount::default(),
        }
    }

    /// The registry, for other parts (adapter, API) to register their own metrics in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Render every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(8192);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// What the `/metrics` handler uses (taken from the app state by `FromRef`, in `state`).
pub struct MetricsState<A: Adapter> {
    pub metrics: Arc<Metrics>,
    pub io: SocketIo<A>,
    pub config: Arc<Config>,
    /// Its gauge is brought up to date at each scrape (it moves with handshakes otherwise).
    pub pending_sessions: Arc<crate::pending_sessions::PendingSessions>,
}

/// `GET /metrics`: refresh the scrape-time gauges when a recount is due, then render.
pub async fn handler<A: Adapter>(State(st): State<MetricsState<A>>) -> Response {
    let m = &st.metrics;
    st.pending_sessions.refresh();
    if m.recount.due(Instant::now())
        && let Some(_walking) = m.recount.begin()
    {
        let walked = recount_connections(&st);
        m.recount.done(Instant::now(), walked);
        m.connections_recounts_total.inc();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

/// Recount connections by namespace and transport from socketioxide's socket table: exact
/// across websocket upgrades, and free on the message path. O(local sockets), paced by
/// [`Recount`]. Children of a dynamic namespace are counted under its pattern (`/tenant-*`), so
/// the label's cardinality is that of the configuration, not of the tenants.
fn recount_connections<A: Adapter>(st: &MetricsState<A>) -> usize {
    let m = &st.metrics;
    let patterns = namespace_label_patterns(&st.config.namespace);
    let mut counts: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for ns in st.io.nsps() {
        let path = ns.ns_path();
        // Exact namespaces take precedence over patterns (as in socketioxide's router).
        let exact = st
            .config
            .namespace
            .iter()
            .any(|n| matches!(n, NamespaceSpec::Exact(e) if e == path));
        let label = patterns
            .iter()
            .find(|(pat, _)| !exact && pat.matches(path, None))
            .map_or_else(|| path.to_owned(), |(_, label)| label.clone());
        let entry = counts.entry(label).or_default();
        for s in ns.sockets() {
            match s.transport_type() {
                socketioxide::TransportType::Websocket => entry.0 += 1,
                socketioxide::TransportType::Polling => entry.1 += 1,
            }
        }
    }
    m.namespaces.set(st.io.nsps().len() as i64);
    m.connections.reset();
    let mut walked = 0;
    for (label, (ws, polling)) in &counts {
        m.connections
            .with_label_values(&[label, "websocket"])
            .set(*ws);
        m.connections
            .with_label_values(&[label, "polling"])
            .set(*polling);
        walked += usize::try_from(ws + polling).unwrap_or(0);
    }
    walked
}

/// Dynamic namespace patterns as globs (`/tenant-{p0}` -> `/tenant-*`), with that glob as the
/// metrics label.
fn namespace_label_patterns(specs: &[NamespaceSpec]) -> Vec<(Pattern, String)> {
    specs
        .iter()
        .filter_map(|spec| match spec {
            NamespaceSpec::Pattern(p) => {
                let mut glob = String::with_capacity(p.len());
                let mut in_brace = false;
                for c in p.chars() {
                    match c {
                        '{' => {
                            in_brace = true;
                            glob.push('*');
                        }
                        '}' => in_brace = false,
                        _ if !in_brace => glob.push(c),
                        _ => {}
                    }
                }
                Pattern::parse(&glob).ok().map(|pat| (pat, glob))
            }
            NamespaceSpec::Exact(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_prefix_and_zeroed_families() {
        let m = Metrics::new("n1");
        m.dropped_no_sink.inc();
        let text = m.render();
        assert!(text.contains("sio_gateway_dropped_messages_total{reason=\"no_sink\"} 1"));
        assert!(text.contains("sio_gateway_auth_failures_total{reason=\"invalid_token\"} 0"));
        assert!(text.contains("sio_gateway_node_info{node_id=\"n1\""));
    }

    #[test]
    fn recounts_are_paced_by_the_sockets_they_walked() {
        let r = Recount::default();
        let t0 = Instant::now();
        assert!(r.due(t0), "the first scrape recounts");
        let ms = Duration::from_millis;
        r.done(t0, 3000);
        assert!(!r.due(t0), "at once after walking 3,000 sockets");
        assert!(!r.due(t0 + ms(299)));
        assert!(r.due(t0 + ms(300)), "100 µs per socket walked later");
        r.done(t0, 10_000_000);
        assert!(!r.due(t0 + ms(9_999)));
        assert!(r.due(t0 + ms(10_000)), "never more than 10 s stale");
        // A small node is counted at every scrape.
        r.done(t0, 1000);
        assert!(r.due(t0));
        // One recount at a time.
        let w = r.begin().unwrap();
        assert!(r.begin().is_none());
        drop(w);
        assert!(r.begin().is_some());
    }
}
