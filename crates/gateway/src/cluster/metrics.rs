//! Cluster metrics: the adapter's counters as Prometheus families, and forwarding results.
//!
//! The adapter counts with relaxed atomics on its hot path ([`sio_redis_adapter::AdapterStats`]);
//! [`AdapterCollector`] copies them into Prometheus families only when `/metrics` is scraped, so
//! a broadcast costs nothing extra for being observable. `redis_up` is owned by the gateway's
//! [`Metrics`] (always exported, 0 on a single node); in cluster mode the collector takes that
//! gauge over and sets it from the adapter's health at scrape time.
//!
//! Messages the adapter could not deliver are never silent: every adapter drop reason is
//! exported as `adapter_dropped_total{reason}`, and the ones that are a client's loss join
//! `dropped_messages_total` (which the `SioGatewayDroppedMessages` alert watches): a remote
//! broadcast a local socket's full queue refused is `slow_client`, as for a local publish; a
//! broadcast lost before fan-out (the subscriber lagged, a namespace's inbound queue full) is
//! `adapter_lagged` / `adapter_queue_full`.
use std::sync::Mutex;

use prometheus::{
    IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use sio_redis_adapter::{DropReason, MsgType, RedisAdapterHandle};

use crate::metrics::Metrics;

const NS: &str = "sio_gateway";

/// Label values of `polling_forwards_total{result}`.
pub mod result {
    pub const OK: &str = "ok";
    pub const NO_OWNER: &str = "no_owner";
    pub const OWNER_DOWN: &str = "owner_down";
    pub const REFUSED: &str = "refused";
    pub const ERROR: &str = "error";
    /// A registry entry or session record read from Redis and ignored (see `registry`).
    pub const UNTRUSTED: &str = "untrusted";
    pub const ALL: [&str; 6] = [OK, NO_OWNER, OWNER_DOWN, REFUSED, ERROR, UNTRUSTED];
}

/// `polling_forwards_total{result}` with one pre-resolved child per result.
pub struct ForwardMetrics {
    pub ok: IntCounter,
    pub no_owner: IntCounter,
    pub owner_down: IntCounter,
    pub refused: IntCounter,
    pub error: IntCounter,
    /// Counted per entry read, not per request: a forged entry left in Redis counts at every
    /// heartbeat's listing of the registry.
    pub untrusted: IntCounter,
}

impl ForwardMetrics {
    pub fn register(registry: &Registry) -> ForwardMetrics {
        let vec = IntCounterVec::new(
            Opts::new(
                "polling_forwards_total",
                "Engine.IO requests (polls and upgrades) for sessions of another node, by result; \
                 refused = a forged or invalid forwarding header; untrusted = a registry entry \
                 or session record read from Redis and ignored (unsigned, bad signature, or an \
                 advertise URL that is not an origin)",
            )
            .namespace(NS),
            &["result"],
        )
        .expect("static metric definition");
        if let Err(e) = registry.register(Box::new(vec.clone())) {
            tracing::warn!(error = %e, "polling_forwards_total not registered");
        }
        let c = |r: &str| vec.with_label_values(&[r]);
        ForwardMetrics {
            ok: c(result::OK),
            no_owner: c(result::NO_OWNER),
            owner_down: c(result::OWNER_DOWN),
            refused: c(result::REFUSED),
            error: c(result::ERROR),
            untrusted: c(result::UNTRUSTED),
        }
    }
}

/// Reads [`sio_redis_adapter::AdapterStats`] at scrape time.
pub struct AdapterCollector {
    handle: RedisAdapterHandle,
    published: IntCounterVec,
    received: IntCounterVec,
    timeouts: IntCounterVec,
    decode_errors: IntCounter,
    /// Channels subscribed, per primary (`shard` = host:port) in sharded mode, `classic` else.
    shard_subscriptions: IntGaugeVec,
    resubscriptions: IntCounter,
    redis_up: IntGauge,
    /// The relay's own count of local deliveries (still incremented by the relay, no longer
    /// registered); exported as `events_sent_total` with the adapter's deliveries for other
    /// nodes' broadcasts added, so each delivery counts on the node that writes it.
    events_sent_local: IntCounter,
    events_sent: IntCounter,
    /// Every adapter drop, by reason.
    adapter_dropped: IntCounterVec,
    /// The gateway's `dropped_messages_total` (still incremented by the gateway, no longer
    /// registered): exported here with the adapter's client-visible drops added (see the
    /// module doc).
    dropped_local: IntCounterVec,
    /// Serialises scrapes: each one rewrites the shadow counters before reading them.
    lock: Mutex<()>,
}

impl AdapterCollector {
    /// Register on the gateway's registry, taking over its `redis_up` gauge.
    pub fn install(metrics: &Metrics, handle: RedisAdapterHandle) {
        let by_type = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help).namespace(NS), &["type"])
                .expect("static metric definition")
        };
        let c = AdapterCollector {
            handle,
            published: by_type(
                "adapter_messages_published_total",
                "Messages the Redis adapter published, by type",
            ),
            received: by_type(
                "adapter_messages_received_total",
                "Messages the Redis adapter received and decoded, by type",
            ),
            timeouts: by_type(
                "adapter_request_timeouts_total",
                "Cluster requests that did not get every answer in time, by type",
            ),
            decode_errors: IntCounter::with_opts(
                Opts::new(
                    "adapter_decode_errors_total",
                    "Messages on the adapter's channels that could not be decoded",
                )
                .namespace(NS),
            )
            .expect("static metric definition"),
            shard_subscriptions: IntGaugeVec::new(
                Opts::new(
                    "adapter_shard_subscriptions",
                    "Pub/sub channels this node is subscribed to: per Redis Cluster primary with \
                     --redis-pubsub sharded (shard = host:port of the slot owner), all under \
                     shard=\"classic\" in classic mode",
                )
                .namespace(NS),
                &["shard"],
            )
            .expect("static metric definition"),
            resubscriptions: IntCounter::with_opts(
                Opts::new(
                    "adapter_resubscriptions_total",
                    "Times every sharded subscription was re-issued after a Redis Cluster \
                     topology change (fail-over, slot migration)",
                )
                .namespace(NS),
            )
            .expect("static metric definition"),
            redis_up: metrics.redis_up.clone(),
            events_sent_local: metrics.events_sent_total.clone(),
            events_sent: IntCounter::with_opts(
                Opts::new("events_sent_total", crate::metrics::EVENTS_SENT_HELP).namespace(NS),
            )
            .expect("static metric definition"),
            adapter_dropped: IntCounterVec::new(
                Opts::new(
                    "adapter_dropped_total",
                    "Messages or actions the Redis adapter dropped, by reason",
                )
                .namespace(NS),
                &["reason"],
            )
            .expect("static metric definition"),
            dropped_local: metrics.dropped_messages_total.clone(),
            lock: Mutex::new(()),
        };
        let registry = metrics.registry();
        // These are re-exported by this collector; a second registration would collide.
        let _ = registry.unregister(Box::new(metrics.redis_up.clone()));
        let _ = registry.unregister(Box::new(metrics.events_sent_total.clone()));
        let _ = registry.unregister(Box::new(metrics.dropped_messages_total.clone()));
        if let Err(e) = registry.register(Box::new(c)) {
            tracing::warn!(error = %e, "adapter metrics not registered");
        }
    }
}

impl Collector for AdapterCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = Vec::new();
        d.extend(self.published.desc());
        d.extend(self.received.desc());
        d.extend(self.timeouts.desc());
        d.extend(self.decode_errors.desc());
        d.extend(self.shard_subscriptions.desc());
        d.extend(self.resubscriptions.desc());
        d.extend(self.redis_up.desc());
        d.extend(self.events_sent.desc());
        d.extend(self.adapter_dropped.desc());
        d.extend(self.dropped_local.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let stats = self.handle.stats();
        // Counters only go up; resetting the shadow copy and adding the current total is the
        // way to *set* a prometheus counter. Every type is exported, zeros included.
        let set = |v: &IntCounterVec, t: MsgType, n: u64| {
            let c = v.with_label_values(&[t.as_str()]);
            c.reset();
            c.inc_by(n);
        };
        for t in MsgType::ALL {
            set(&self.published, t, stats.published_count(t));
            set(&self.received, t, stats.received_count(t));
            set(&self.timeouts, t, stats.request_timeout_count(t));
        }
        self.decode_errors.reset();
        self.decode_errors.inc_by(stats.decode_error_count());
        // Shards come and go with the topology: only the current ones are exported.
        self.shard_subscriptions.reset();
        for (shard, n) in self.handle.shard_subscriptions() {
            self.shard_subscriptions
                .with_label_values(&[shard.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.resubscriptions.reset();
        self.resubscriptions.inc_by(stats.resubscription_count());
        let up = self.handle.health().redis_up && self.handle.redis_up();
        self.redis_up.set(i64::from(up));
        self.events_sent.reset();
        self.events_sent
            .inc_by(self.events_sent_local.get() + stats.delivered_count());
        for r in DropReason::ALL {
            let c = self.adapter_dropped.with_label_values(&[r.as_str()]);
            c.reset();
            c.inc_by(stats.dropped_count(r));
        }
        let mut out = Vec::with_capacity(8);
        out.extend(self.published.collect());
        out.extend(self.received.collect());
        out.extend(self.timeouts.collect());
        out.extend(self.decode_errors.collect());
        out.extend(self.shard_subscriptions.collect());
        out.extend(self.resubscriptions.collect());
        out.extend(self.redis_up.collect());
        out.extend(self.events_sent.collect());
        out.extend(self.adapter_dropped.collect());
        out.extend(self.dropped_with_adapter(stats));
        out
    }
}

/// `dropped_messages_total` reasons the adapter's client-visible drops are added to.
const FOLDED: [(DropReason, &str); 4] = [
    (
        DropReason::LocalDelivery,
        crate::metrics::drop_reason::SLOW_CLIENT,
    ),
    (DropReason::SubscriberLagged, "adapter_lagged"),
    (DropReason::QueueFull, "adapter_queue_full"),
    (DropReason::TooLarge, "adapter_too_large"),
];

impl AdapterCollector {
    /// The gateway's `dropped_messages_total` with the adapter's drops of [`FOLDED`] added
    /// (the gateway's own counters are read, never changed).
    fn dropped_with_adapter(&self, stats: &sio_redis_adapter::AdapterStats) -> Vec<MetricFamily> {
        for (_, reason) in FOLDED {
            // Makes the child exist (at its current value) so the family lists it.
            let _ = self.dropped_local.with_label_values(&[reason]);
        }
        let mut families = self.dropped_local.collect();
        for family in &mut families {
            for m in family.metric.iter_mut() {
                let Some(reason) = m.label.iter().find(|l| l.name() == "reason") else {
                    continue;
                };
                let add: u64 = FOLDED
                    .iter()
                    .filter(|(_, r)| *r == reason.value())
                    .map(|(d, _)| stats.dropped_count(*d))
                    .sum();
                if add > 0 {
                    let c = m.counter.mut_or_insert_default();
                    c.set_value(c.value() + add as f64);
                }
            }
        }
        families
    }
}
