//! The built-in defaults: the one place each default value is written.
//!
//! [`resolve`](super::resolve) falls back to these constants, and each option's declaration
//! in [`options`](super::options) names the same constant in its [`Shown`] default, from which
//! `--help` renders `[default: ...]`. The README's configuration table is tied to both by the
//! `readme_table` test: every option listed, with its flag, env var, TOML key and this default.
use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    time::Duration,
};

pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 3000));
/// The one namespace served when `--namespace` is not given.
pub const NAMESPACE: &str = "/";
pub const PING_INTERVAL: Duration = Duration::from_secs(25);
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Default `connect_timeout`: how long an Engine.IO session may stay without a namespace
/// CONNECT. socketioxide's (and Node's) 45 s let one client hold ~400,000 such sessions (~4 GB)
/// by handshaking in a loop (review 8); a stock client sends its CONNECT right after the
/// handshake's answer, so 10 s is plenty on any link that can run Socket.IO at all.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `max_pending_sessions`: Engine.IO sessions handshaken in the last `connect_timeout`
/// and not connected to a namespace yet, per node. Each costs ~7 KB (review 8: 543,139 in a
/// minute were 3.96 GB), so 10,000 bound them to ~70 MB; honest ones stay pending for one
/// round trip, so a node taking 10,000 handshakes per second with 100 ms round trips has
/// ~1,000.
pub const MAX_PENDING_SESSIONS: usize = 10_000;
/// Default `idle_timeout`: longer than the idle timeouts of common HTTP clients' and balancers'
/// keep-alive pools (Go 90 s, nginx upstream 60 s, undici 4 s), so they close an idle
/// connection first and never send a request into the gateway's close.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
pub const MAX_PAYLOAD: u64 = 1_000_000;
pub const MAX_CONNECTIONS: usize = 0;
/// Default `max_buffer`, packets queued per connection (engineioxide's channel). 512, not
/// socketioxide's 128: at ~1M deliveries/s from one client (334 broadcasts/s to 3,000 sockets
/// on 3 nodes, the server core full) the 128-packet queues overflowed whenever the fan-out fell
/// behind by 0.4 s, losing 0.006-0.7 % in 4 of 5 rounds; 512 lost nothing from a client in 5 of 5 (issue 18,
/// BENCHMARKS.md), with the same idle memory (the channel allocates slots as they fill). A
/// broadcast's packet is one shared buffer, so a full queue of them costs slots, not copies;
/// what a client that stops reading can pin is bounded by this times the messages sent to it
/// alone, until the stall sweeper cuts it.
pub const MAX_BUFFER: usize = 512;
/// Default `ws_read_buffer`. tungstenite (under engineioxide) allocates the websocket read
/// buffer at this size when the connection opens and keeps it until it closes, zero-filled (so
/// resident); engineioxide's own default, 4096, is ~4 KiB of every idle connection. Socket.IO
/// events are mostly far below 1 KiB, so 1024 costs them nothing; a larger message takes one
/// read(2) per KiB (a 1 MB payload ~1,000 reads instead of ~250, about a millisecond).
pub const WS_READ_BUFFER: usize = 1024;
/// Below this, reads become absurdly small (tungstenite itself accepts down to 14 bytes).
pub const MIN_WS_READ_BUFFER: usize = 128;
pub const HEAP_HUGE_PAGES: bool = true;
/// Default `history_max_bytes`: 64 MiB per node for every room history together. Without a
/// bound that clients cannot move, a client publishing large messages to ever new room names
/// grows the node (or Redis) without limit; 64 MiB is a small share of a node sized for
/// thousands of connections (~30 KiB each), yet holds e.g. 200 messages of 1 KB in ~300 rooms,
/// or 50 of 100 bytes in ~5,000: budget what the rules keep (rooms × SIZE × message size, see
/// docs/operations.md) and raise it when that is more. Past it the least recently written
/// rooms are evicted (their clients recover with `reason: "epoch"`), never the node's memory.
pub const HISTORY_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Below this a single large message (`max_payload`, 1 MB by default) would not fit.
pub const MIN_HISTORY_MAX_BYTES: u64 = 1024 * 1024;
pub const MAX_ROOMS: usize = 1000;
pub const MAX_NAMESPACES: usize = 1000;
/// Shortest accepted `--api-key` (each of them), `--cluster-secret` and `--jwt-secret`, in bytes.
pub const MIN_API_KEY_LEN: usize = 8;
pub const MIN_CLUSTER_SECRET_LEN: usize = 16;
pub const MIN_JWT_SECRET_LEN: usize = 16;
pub const ADMIN_UI_NAMESPACE: &str = "/admin";
pub const ADMIN_UI_USER: &str = "admin";
pub const CONN_RATE_PER_IP: f64 = 0.0;
pub const MAX_CONNS_PER_IP: u32 = 0;
pub const EVENT_RATE: f64 = 100.0;
pub const DRAIN_PERIOD: Duration = Duration::from_secs(10);
pub const STICKY_COOKIE: &str = "sio_node";
pub const CLUSTER_HEARTBEAT: Duration = Duration::from_secs(2);
/// `--cluster-node-ttl` is this many `--cluster-heartbeat`s.
pub const CLUSTER_NODE_TTL_HEARTBEATS: u32 = 3;
pub const JWT_LEEWAY: Duration = Duration::from_secs(5);
pub const AUTH_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
pub const AUTH_WEBHOOK_CONCURRENCY: usize = 64;
pub const UPSTREAM_STREAM: &str = "sio:upstream";
pub const UPSTREAM_MAXLEN: u64 = 100_000;
pub const UPSTREAM_MAX_EVENT_BYTES: u64 = 64 * 1024;
pub const UPSTREAM_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
pub const UPSTREAM_WEBHOOK_CONCURRENCY: usize = 64;

/// `--event-burst` when not given: twice `--event-rate`, at least 1.
pub fn event_burst(event_rate: f64) -> u32 {
    ((event_rate * 2.0).ceil() as u32).max(1)
}

/// What `--help` (`[default: ...]`) and the README table say an option defaults to.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    /// No default (the README shows `–`, `--help` shows nothing).
    Nothing,
    /// A value one could write: setting the option to it changes nothing. The note, if any,
    /// follows in parentheses (`0 (unlimited)`).
    Value {
        value: String,
        note: Option<&'static str>,
    },
    /// A default that depends on other options or on the machine, in words.
    Text(&'static str),
}

impl Shown {
    /// A value default (`Display` of the constant).
    pub fn value(v: impl fmt::Display) -> Shown {
        Shown::Value {
            value: v.to_string(),
            note: None,
        }
    }

    /// The default variant of a `ValueEnum` (the `#[default]` of its declaration), by its name
    /// on the command line.
    pub fn choice(v: impl clap::ValueEnum) -> Shown {
        let value = v
            .to_possible_value()
            .map_or_else(String::new, |p| p.get_name().to_owned());
        Shown::Value { value, note: None }
    }

    /// A duration default, written the way a user would (`25s`, `500ms`).
    pub fn dur(d: Duration) -> Shown {
        let value = if d.subsec_millis() == 0 {
            format!("{}s", d.as_secs())
        } else {
            format!("{}ms", d.as_millis())
        };
        Shown::Value { value, note: None }
    }

    /// The same value default with a note in parentheses.
    pub fn note(self, note: &'static str) -> Shown {
        match self {
            Shown::Value { value, .. } => Shown::Value {
                value,
                note: Some(note),
            },
            other => other,
        }
    }

    /// The value one could write, for value defaults.
    pub fn as_value(&self) -> Option<&str> {
        match self {
            Shown::Value { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The text after `[default: ` in `--help`; `None` for [`Shown::Nothing`].
    pub fn help(&self) -> Option<String> {
        match self {
            Shown::Nothing => None,
            Shown::Value { value, note: None } => Some(value.clone()),
            Shown::Value {
                value,
                note: Some(n),
            } => Some(format!("{value} ({n})")),
            Shown::Text(t) => Some((*t).to_owned()),
        }
    }
}
