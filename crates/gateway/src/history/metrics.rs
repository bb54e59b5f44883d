//! The history's metrics (registered in the gateway's registry, prefix `sio_gateway_`).
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// `recovered` or why not (`trimmed`, `expired`, `epoch`, `skipped`, `no_history`, `invalid`).
pub mod outcome {
    pub const RECOVERED: &str = "recovered";
    /// Cluster mode: entries of the stream were left out of the replay (`history_skipped_total`).
    pub const SKIPPED: &str = "skipped";
    pub const EPOCH: &str = "epoch";
    pub const NO_HISTORY: &str = "no_history";
    pub const INVALID: &str = "invalid";
}

/// Why the memory budget (`--history-max-bytes`) took history away.
pub mod evicted {
    /// A whole room, the least recently appended, evicted for another's append or creation.
    pub const LRU: &str = "lru";
    /// A room alone over the budget (or with every other busy) lost its own oldest messages.
    pub const SELF_TRIM: &str = "self_trim";
}

pub struct HistoryMetrics {
    /// Messages appended to a history.
    pub appends: IntCounter,
    /// Joins with `since`, by outcome.
    pub recoveries: IntCounterVec,
    /// Messages sent to recovering clients.
    pub replayed: IntCounter,
    /// Time to read a history (the replay's read, the HTTP API's).
    pub read_seconds: Histogram,
    /// Messages that reached a history room without passing the history (Node peers,
    /// `@socket.io/redis-emitter`): delivered without a mark, not recoverable.
    pub bypassed: IntCounter,
    /// Histories taken away by the memory budget, by reason ([`evicted`]).
    pub evicted: IntCounterVec,
    /// Cluster mode: entries of a room's stream left out of a read, by reason
    /// (`history::stream::Skipped`: `oversized`, `malformed`).
    pub skipped: IntCounterVec,
    /// The bytes the histories count against the memory budget.
    pub held_bytes: IntGauge,
    /// The bytes running replays have queued and not yet seen delivered (`history::flow`).
    pub replay_outstanding_bytes: IntGauge,
    /// Cluster mode: the bytes of live messages held back for recovering joins
    /// (`history::holdback`).
    pub holdback_bytes: IntGauge,
}

const NS: &str = "sio_gateway";

impl HistoryMetrics {
    pub fn new(registry: &Registry) -> HistoryMetrics {
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
        let appends = reg!(IntCounter::with_opts(opts(
            "history_appends_total",
            "Messages appended to a room history (--history)"
        )));
        let recoveries = reg!(IntCounterVec::new(
            opts(
                "history_recoveries_total",
                "Joins with `since`, by outcome (recovered, trimmed, expired, epoch, skipped, no_history, invalid, failed)"
            ),
            &["outcome"]
        ));
        for o in [
            outcome::RECOVERED,
            "trimmed",
            "expired",
            outcome::EPOCH,
            outcome::SKIPPED,
            outcome::NO_HISTORY,
            outcome::INVALID,
        ] {
            recoveries.with_label_values(&[o]);
        }
        let replayed = reg!(IntCounter::with_opts(opts(
            "history_replayed_messages_total",
            "Messages replayed to recovering clients"
        )));
        let read_seconds = reg!(Histogram::with_opts(
            HistogramOpts::new(
                "history_read_seconds",
                "Time to read a room history (recovery or HTTP API)"
            )
            .namespace(NS)
            .buckets(crate::metrics::LATENCY_BUCKETS.to_vec())
        ));
        let bypassed = reg!(IntCounter::with_opts(opts(
            "history_bypassed_total",
            "Broadcasts into a history room that did not pass the history (Node.js peers, @socket.io/redis-emitter, sio-emit without --history, python-socketio), counted by each node that delivers them: delivered without offset"
        )));
        let evicted = reg!(IntCounterVec::new(
            opts(
                "history_evicted_total",
                "Histories taken away to stay within --history-max-bytes: rooms evicted whole, least recently appended first (reason lru; their clients recover with reason epoch), and rooms alone over the budget trimmed of their oldest messages (reason self_trim)"
            ),
            &["reason"]
        ));
        for r in [evicted::LRU, evicted::SELF_TRIM] {
            evicted.with_label_values(&[r]);
        }
        let skipped = reg!(IntCounterVec::new(
            opts(
                "history_skipped_total",
                "Cluster mode: entries of a room's Redis Stream left out of a replay or an HTTP API read because no gateway or emitter wrote them so (written to Redis by someone else): larger than 4 x --max-payload (reason oversized, never sent over the wire by Redis), or a field missing, arguments not a JSON array, a _placeholder object, an event name no client may publish (reason malformed); their clients are told recovered:false, reason skipped"
            ),
            &["reason"]
        ));
        for r in [
            super::stream::Skipped::Oversized,
            super::stream::Skipped::Malformed,
        ] {
            skipped.with_label_values(&[r.as_str()]);
        }
        let held_bytes = reg!(IntGauge::with_opts(opts(
            "history_held_bytes",
            "Bytes the room histories count against --history-max-bytes (single node: held in memory; cluster mode: this node's appends still in Redis Streams, estimated), rooms' own overhead included"
        )));
        let replay_outstanding_bytes = reg!(IntGauge::with_opts(opts(
            "history_replay_outstanding_bytes",
            "Bytes that running replays (recovering joins) have queued for their sockets and not yet seen delivered, estimated from below; at most 1 MiB per replay and --history-max-bytes in all, besides one message per replay"
        )));
        let holdback_bytes = reg!(IntGauge::with_opts(opts(
            "history_holdback_bytes",
            "Cluster mode: bytes of live messages kept for sockets whose recovering join is still replaying, counted once per socket they are kept for; at most 1 MiB per recovering join (past it the join fails: recovered:false, reason failed)"
        )));
        HistoryMetrics {
            skipped,
            holdback_bytes,
            replay_outstanding_bytes,
            evicted,
            held_bytes,
            appends,
            recoveries,
            replayed,
            read_seconds,
            bypassed,
        }
    }
}
