//! The raw option layer: every option declared once, for clap (flag + env var) and serde (TOML
//! key) alike, with the default `--help` shows for it; and its merge across sources.
//!
//! [`Options`] is all-optional so that "not given" can fall through to the next source:
//! clap fills it from flags and env vars (flag > env is clap's own rule), serde from the TOML
//! file, and [`Options::or`] lays the first over the second. Defaults are applied later, by
//! [`Config::resolve`](super::Config::resolve).
//!
//! The `options!` macro takes the struct as written (doc comment = help text, `#[arg]`,
//! `#[serde]`) plus, after each field, `= <Shown default>`, and generates from that one list:
//! the struct, [`Options::or`], [`Options::KEYS`] and [`Options::shown_default`]. Adding an
//! option is one entry here (its default value in [`defaults`](super::defaults)), one field of
//! [`Config`](super::Config) and its line in [`Config::resolve`](super::Config::resolve), and a
//! README row (the `readme_table` test names what is missing).
//!
//! Why not clap's `default_value`: it would make every option "given" on the command line, so
//! a file could never set it; the default would also be written a second time for resolution.
use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::{Arg, Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use super::{
    ConfigError,
    defaults::{self as D, Shown},
};

/// Command line of `sio-gateway`.
#[derive(Debug, Parser)]
#[command(
    name = "sio-gateway",
    version,
    about = "Horizontally scalable Socket.IO gateway",
    long_about = "Horizontally scalable Socket.IO gateway.\n\nEvery option can also be set with an \
environment variable (shown as [env: ...]) or a key of the TOML file given with --config \
(the option name with underscores, e.g. max_payload = 1000000). Precedence: flag > env > file > default.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a TOML config file; print the effective configuration (exit 0) or name the bad key (exit 2).
    ///
    /// The effective configuration printed after the `OK` line is itself a valid config file
    /// (secrets redacted): checking it prints the same configuration again.
    CheckConfig {
        /// The TOML file to check.
        #[arg(required_unless_present = "config", conflicts_with = "config")]
        file: Option<PathBuf>,
        /// The TOML file to check, named as for a node (`--config FILE`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

impl Command {
    /// The file `check-config` checks.
    pub fn check_config_file(&self) -> Option<&std::path::Path> {
        match self {
            Command::CheckConfig { file, config } => file.as_deref().or(config.as_deref()),
        }
    }
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What `/readyz` makes of Redis in cluster mode (see docs/operations.md, "Readiness").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// Redis is shared by every node: while it is unreachable the node stays ready (degraded,
    /// serving its own clients); only a fault of this node's own subscriber (Redis answers,
    /// the node does not receive) makes it unready.
    #[default]
    Local,
    /// Unready whenever Redis is unreachable or the subscriber probe fails.
    Strict,
}

/// What the Socket.IO Admin UI may do (see docs/operations.md, "Admin UI").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdminUi {
    /// No admin namespace: a connect to it is refused like any unknown namespace.
    #[default]
    None,
    /// The UI sees servers, sockets, rooms and stats; its commands are refused.
    Readonly,
    /// The UI may also emit, make sockets join or leave rooms, and disconnect them.
    Full,
}

/// A duration written as `250ms`, `10s`, `2m` or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        sio_wire::duration::parse_duration(s).map(Dur)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&sio_wire::duration::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Dur(Duration::from_secs(s))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// `--auth`: how a namespace connection is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    None,
    Jwt,
    Webhook,
}

/// `--auth-expiry`: what happens to a connection when its credentials expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthExpiry {
    /// Cut the session at the expiry; stock clients reconnect and authenticate again.
    #[default]
    Close,
    /// Credentials are checked at CONNECT only (Node.js's behaviour).
    Ignore,
}

/// `--redis-pubsub`: the adapter's Redis pub/sub protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RedisPubSub {
    #[default]
    Classic,
    Sharded,
}

/// `--redis-subscription-mode`: which rooms get a sharded channel of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RedisSubscriptionMode {
    #[default]
    Dynamic,
    DynamicPrivate,
    Static,
}

/// `--upstream`: where other client events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamMode {
    #[default]
    None,
    RedisStream,
    Webhook,
}

/// How a higher-precedence source's value combines with a lower one's: the higher wins when
/// it is given (`Some`, or a non-empty list: clap gives an empty list for an absent flag).
trait Merge {
    fn merge(self, lower: Self) -> Self;
}

impl<T> Merge for Option<T> {
    fn merge(self, lower: Self) -> Self {
        self.or(lower)
    }
}

impl<T> Merge for Vec<T> {
    fn merge(self, lower: Self) -> Self {
        if self.is_empty() { lower } else { self }
    }
}

/// Declares [`Options`] from one list of fields (see the module doc).
macro_rules! options {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident : $ty:ty = $shown:expr,
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// Every option's name as a TOML key (= the field, = clap's argument id), in
            /// declaration order. `config` is not a TOML key (`#[serde(skip)]`).
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Fill every unset field of `self` from `lower` (a lower-precedence source).
            pub fn or(self, lower: $name) -> $name {
                $name { $( $field: Merge::merge(self.$field, lower.$field), )* }
            }

            /// The default `--help` and the README show for option `key` (a TOML key).
            pub fn shown_default(key: &str) -> Option<Shown> {
                match key {
                    $( stringify!($field) => Some($shown), )*
                    _ => None,
                }
            }
        }
    };
}

options! {
/// The raw option layer, shared by clap (flags + env) and serde (TOML file).
/// Everything is optional here so that "not given" can fall through to the next source.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
// After all the arguments are added: `[default: ...]` from each `Shown`.
#[command(mut_args = with_shown_default)]
pub struct Options {
    /// Client-facing listen address
    #[arg(long, env = "SIO_GATEWAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr> = Shown::value(D::LISTEN),

    /// Redis URL for the cluster adapter: redis://, rediss://, redis-sentinel:// or
    /// redis-cluster://
    #[arg(long, env = "SIO_GATEWAY_REDIS", value_name = "URL")]
    pub redis: Option<String> = Shown::Text("none (single node, in memory)"),

    /// Redis pub/sub of the cluster adapter: classic (PUBLISH/SUBSCRIBE, Node's createAdapter)
    /// or sharded (SPUBLISH/SSUBSCRIBE, Node's createShardedAdapter; Redis >= 7, made for
    /// redis-cluster://)
    #[arg(long, env = "SIO_GATEWAY_REDIS_PUBSUB", value_enum)]
    pub redis_pubsub: Option<RedisPubSub> = Shown::choice(RedisPubSub::default()),

    /// Which rooms get their own channel with --redis-pubsub sharded (Node's
    /// subscriptionMode): dynamic (public rooms), dynamic-private (every room, socket ids
    /// included) or static (none: everything on the namespace channel)
    #[arg(long, env = "SIO_GATEWAY_REDIS_SUBSCRIPTION_MODE", value_enum)]
    pub redis_subscription_mode: Option<RedisSubscriptionMode> = Shown::choice(RedisSubscriptionMode::default()),

    /// This node's id (sticky cookie value, logs, metrics)
    #[arg(long, env = "SIO_GATEWAY_NODE_ID", value_name = "ID")]
    pub node_id: Option<String> = Shown::Text("hostname, else random"),

    /// URL other nodes use to reach this node
    #[arg(long, env = "SIO_GATEWAY_ADVERTISE", value_name = "URL")]
    pub advertise: Option<String> = Shown::Text("http://<listen> (hostname if unspecified IP)"),

    /// TOML config file (keys = option names with underscores)
    #[arg(long, env = "SIO_GATEWAY_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf> = Shown::Text("none"),

    /// Key(s) for the HTTP API; repeat or comma-separate
    #[arg(
        long = "api-key",
        env = "SIO_GATEWAY_API_KEY",
        value_name = "KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(default)]
    pub api_key: Vec<String> = Shown::Text("none (API disabled)"),

    /// Separate listen address for /metrics (then not served on --listen)
    #[arg(long, env = "SIO_GATEWAY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr> = Shown::Text("same as --listen"),

    /// Namespace to serve; repeat or comma-separate. `*` matches within a path segment
    /// (`/tenant-*`), `{name}`/`{*rest}` are passed to the router as is
    #[arg(
        long = "namespace",
        env = "SIO_GATEWAY_NAMESPACE",
        value_name = "NSP",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub namespace: Vec<String> = Shown::value(D::NAMESPACE),

    /// Engine.IO ping interval
    #[arg(long, env = "SIO_GATEWAY_PING_INTERVAL", value_name = "DURATION")]
    pub ping_interval: Option<Dur> = Shown::dur(D::PING_INTERVAL),

    /// Engine.IO ping timeout
    #[arg(long, env = "SIO_GATEWAY_PING_TIMEOUT", value_name = "DURATION")]
    pub ping_timeout: Option<Dur> = Shown::dur(D::PING_TIMEOUT),

    /// How long a new Engine.IO session may stay without a namespace CONNECT before it is
    /// closed
    #[arg(long, env = "SIO_GATEWAY_CONNECT_TIMEOUT", value_name = "DURATION")]
    pub connect_timeout: Option<Dur> = Shown::dur(D::CONNECT_TIMEOUT),

    /// Most Engine.IO sessions on this node handshaken in the last `--connect-timeout` and not
    /// connected to a namespace yet, 0 = unlimited; further handshakes get HTTP 503 with
    /// Retry-After
    #[arg(long, env = "SIO_GATEWAY_MAX_PENDING_SESSIONS", value_name = "N")]
    pub max_pending_sessions: Option<usize> = Shown::value(D::MAX_PENDING_SESSIONS),

    /// Client connections that send nothing for this long are closed (no request, a request
    /// head never finished, an idle keep-alive); must be longer than ping interval + timeout
    /// (every live client sends within that); 0 = never
    #[arg(long, env = "SIO_GATEWAY_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<Dur> = Shown::dur(D::IDLE_TIMEOUT),

    /// Largest accepted message in bytes (one websocket message, one polling request body,
    /// all binary attachments of one packet)
    #[arg(long, env = "SIO_GATEWAY_MAX_PAYLOAD", value_name = "BYTES")]
    pub max_payload: Option<u64> = Shown::value(D::MAX_PAYLOAD),

    /// Most Socket.IO connections on this node, 0 = unlimited; more are refused with a
    /// connect_error
    #[arg(long, env = "SIO_GATEWAY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize> = Shown::value(D::MAX_CONNECTIONS).note("unlimited"),

    /// Packets queued per connection for sending; when a slow client's queue is full, further
    /// messages to it are dropped (memory stays bounded)
    #[arg(long, env = "SIO_GATEWAY_MAX_BUFFER", value_name = "PACKETS")]
    pub max_buffer: Option<usize> = Shown::value(D::MAX_BUFFER),

    /// Bytes one websocket read(2) may take; every connection keeps a read buffer of this
    /// size for its whole life, so it is most of a websocket's idle memory that the gateway
    /// controls. Larger messages still work (the buffer grows for them), they only take one
    /// read per this many bytes
    #[arg(long, env = "SIO_GATEWAY_WS_READ_BUFFER", value_name = "BYTES")]
    pub ws_read_buffer: Option<usize> = Shown::value(D::WS_READ_BUFFER),

    /// Put the heap on transparent huge pages (glibc: the binary re-execs itself once at start
    /// with `glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1` in `GLIBC_TUNABLES`); 10-38 %
    /// less CPU per delivery at thousands of sockets, same memory
    #[arg(long, env = "SIO_GATEWAY_HEAP_HUGE_PAGES", value_name = "BOOL")]
    pub heap_huge_pages: Option<bool> = Shown::value(D::HEAP_HUGE_PAGES),

    /// Most rooms one connection may be in through `join`, 0 = unlimited; further joins get an
    /// error ack (rooms joined by auth on connect are not limited)
    #[arg(long, env = "SIO_GATEWAY_MAX_ROOMS", value_name = "N")]
    pub max_rooms: Option<usize> = Shown::value(D::MAX_ROOMS),

    /// Most namespaces created from `--namespace` patterns (`/tenant-*`) that may exist at once
    /// on this node, 0 = unlimited; a connect to a new one past the cap gets a `connect_error`.
    /// Empty ones are removed, with their Redis subscriptions
    #[arg(long, env = "SIO_GATEWAY_MAX_NAMESPACES", value_name = "N")]
    pub max_namespaces: Option<usize> = Shown::value(D::MAX_NAMESPACES),

    /// New Engine.IO sessions per second per client IP (token bucket, burst 2x), 0 = unlimited;
    /// more get HTTP 429. Behind a load balancer every client has its IP: enforce it there
    #[arg(long, env = "SIO_GATEWAY_CONN_RATE_PER_IP", value_name = "PER_SEC")]
    pub conn_rate_per_ip: Option<f64> = Shown::value(D::CONN_RATE_PER_IP).note("unlimited"),

    /// TCP connections one client IP (an IPv6 /64) may hold open at once on the client
    /// listener, 0 = unlimited; more are closed as soon as they are accepted. Behind a load
    /// balancer every client has its IP: cap there instead
    #[arg(long, env = "SIO_GATEWAY_MAX_CONNS_PER_IP", value_name = "N")]
    pub max_conns_per_ip: Option<u32> = Shown::value(D::MAX_CONNS_PER_IP).note("unlimited"),

    /// Events per second a connection may send (token bucket), 0 = unlimited; excess events are
    /// dropped, counted, and answered with an error ack
    #[arg(long, env = "SIO_GATEWAY_EVENT_RATE", value_name = "PER_SEC")]
    pub event_rate: Option<f64> = Shown::value(D::EVENT_RATE),

    /// Burst size of the per-connection event bucket
    #[arg(long, env = "SIO_GATEWAY_EVENT_BURST", value_name = "N")]
    pub event_burst: Option<u32> = Shown::Text("2 × --event-rate, at least 1"),

    /// Allowed CORS origin for browsers; repeat or comma-separate; `*` = any
    #[arg(
        long = "cors-origin",
        env = "SIO_GATEWAY_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub cors_origin: Vec<String> = Shown::Text("none (same origin only)"),

    /// Log format
    #[arg(long, env = "SIO_GATEWAY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat> = Shown::choice(LogFormat::default()),

    /// Cluster mode: `local` keeps /readyz 200 while Redis is down for every node (degraded),
    /// unready only when this node's own subscriber fails; `strict` is unready whenever Redis
    /// is unreachable
    #[arg(long, env = "SIO_GATEWAY_READINESS", value_enum)]
    pub readiness: Option<Readiness> = Shown::choice(Readiness::default()),

    /// The official Socket.IO Admin UI (`@socket.io/admin-ui` 0.5) on this node: `readonly`
    /// shows the whole cluster, `full` also lets it act on sockets
    #[arg(long, env = "SIO_GATEWAY_ADMIN_UI", value_enum)]
    pub admin_ui: Option<AdminUi> = Shown::choice(AdminUi::default()),

    /// The Admin UI's namespace
    #[arg(long, env = "SIO_GATEWAY_ADMIN_UI_NAMESPACE", value_name = "PATH")]
    pub admin_ui_namespace: Option<String> = Shown::value(D::ADMIN_UI_NAMESPACE),

    /// The Admin UI's user name (basic authentication, as `instrument()` takes it)
    #[arg(long, env = "SIO_GATEWAY_ADMIN_UI_USER", value_name = "NAME")]
    pub admin_ui_user: Option<String> = Shown::value(D::ADMIN_UI_USER),

    /// bcrypt hash of the Admin UI's password (`$2a$`/`$2b$`/`$2y$`, as `instrument()` takes it);
    /// required with `--admin-ui` unless `--admin-ui-no-auth`
    #[arg(long, env = "SIO_GATEWAY_ADMIN_UI_PASSWORD_HASH", value_name = "BCRYPT")]
    pub admin_ui_password_hash: Option<String> = Shown::Text("none"),

    /// Let the Admin UI in without credentials (anyone who reaches the node sees and, with
    /// `full`, acts on every socket); logged as a warning at start
    #[arg(long, env = "SIO_GATEWAY_ADMIN_UI_NO_AUTH", value_name = "BOOL")]
    pub admin_ui_no_auth: Option<bool> = Shown::value(false),

    /// Report every client event (`join`, `leave`, `publish` and those bound upstream) and
    /// messages sent to one socket (history replays) to the Admin UI (its Events page); costs
    /// a broadcast per event while on, so it is off unless asked for
    #[arg(long, env = "SIO_GATEWAY_ADMIN_UI_EVENTS", value_name = "BOOL")]
    pub admin_ui_events: Option<bool> = Shown::value(false),

    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `sio_gateway=debug`)
    #[arg(long, env = "SIO_GATEWAY_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String> = Shown::Text("RUST_LOG, else info"),

    /// On SIGTERM/SIGINT, close clients spread over this period, then exit
    #[arg(long, env = "SIO_GATEWAY_DRAIN_PERIOD", value_name = "DURATION")]
    pub drain_period: Option<Dur> = Shown::dur(D::DRAIN_PERIOD),

    /// Room glob a client may join (`*`, `?`, `{sub}` = the authenticated subject); repeat or
    /// comma-separate. Personal rooms (`user:...`) are reached only by rules written with that
    /// prefix (`user:{sub}`)
    #[arg(
        long = "can-join",
        env = "SIO_GATEWAY_CAN_JOIN",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub can_join: Option<Vec<String>> = Shown::Text("* without --auth (demo, logged as a warning); none with --auth"),

    /// Room glob a client may publish to; a publish without a room is checked against the
    /// namespace path; repeat or comma-separate; an empty value forbids publishing
    #[arg(
        long = "can-publish",
        env = "SIO_GATEWAY_CAN_PUBLISH",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub can_publish: Option<Vec<String>> = Shown::Text("* without --auth (demo, logged as a warning); none with --auth"),

    /// Room history: rooms matching GLOB keep their last SIZE messages (for TTL, if given) with
    /// offsets, so a client can rejoin with `since` and get what it missed
    /// (`GLOB=SIZE[/TTL]`, e.g. `chat:*=200/10m`); repeat or comma-separate; first match wins
    #[arg(
        long = "history",
        env = "SIO_GATEWAY_HISTORY",
        value_name = "GLOB=SIZE[/TTL]",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub history: Vec<String> = Shown::Text("none (no room keeps a history)"),

    /// Memory budget of every room history of this node together (single node: the messages
    /// held; cluster mode: what this node appended to Redis Streams, estimated), at least 1 MiB.
    /// Past it, the least recently written rooms are evicted whole (their clients recover with
    /// reason `epoch`), then a room alone over it loses its oldest messages (reason `trimmed`)
    #[arg(long, env = "SIO_GATEWAY_HISTORY_MAX_BYTES", value_name = "BYTES")]
    pub history_max_bytes: Option<u64> = Shown::value(D::HISTORY_MAX_BYTES).note("64 MiB"),

    /// Shared secret of the cluster's nodes: forwarded polling requests and WebSocket upgrades
    /// are signed with it (HMAC-SHA256); without it a node never forwards, and refuses (403)
    /// any request claiming to be forwarded
    #[arg(
        long,
        env = "SIO_GATEWAY_CLUSTER_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub cluster_secret: Option<String> = Shown::Text("none (never forward)"),

    /// Start even when a secret (--api-key, --cluster-secret, --jwt-secret) is a published
    /// placeholder (one shipped in docker-compose.yml or deploy/k8s/secret.example.yaml, or any
    /// value containing `change-me`), which is otherwise refused; for demos only, logged as a
    /// warning at start
    #[arg(long, env = "SIO_GATEWAY_ALLOW_DEMO_SECRETS", value_name = "BOOL")]
    pub allow_demo_secrets: Option<bool> = Shown::value(false),

    /// How often this node refreshes its entry in the Redis node registry (--redis)
    #[arg(long, env = "SIO_GATEWAY_CLUSTER_HEARTBEAT", value_name = "DURATION")]
    pub cluster_heartbeat: Option<Dur> = Shown::dur(D::CLUSTER_HEARTBEAT),

    /// Lifetime of the registry entry without a heartbeat: a node that died silently leaves
    /// the registry after this (--redis)
    #[arg(long, env = "SIO_GATEWAY_CLUSTER_NODE_TTL", value_name = "DURATION")]
    pub cluster_node_ttl: Option<Dur> = Shown::Text("3 × --cluster-heartbeat"),

    /// Name of the sticky-session cookie set on the handshake
    #[arg(long, env = "SIO_GATEWAY_STICKY_COOKIE", value_name = "NAME")]
    pub sticky_cookie: Option<String> = Shown::value(D::STICKY_COOKIE),

    /// Path of socket.io.min.js served at /socket.io.min.js for the chat page
    #[arg(long, env = "SIO_GATEWAY_CLIENT_JS", value_name = "FILE")]
    pub client_js: Option<PathBuf> = Shown::Text("search node_modules/socket.io-client near the binary and cwd, else a CDN"),

    /// How clients authenticate on connect: none, jwt or webhook
    #[arg(long, env = "SIO_GATEWAY_AUTH", value_enum)]
    pub auth: Option<AuthMode> = Shown::choice(AuthMode::default()),

    /// HMAC secret for HS256/384/512 tokens (--auth jwt)
    #[arg(
        long,
        env = "SIO_GATEWAY_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String> = Shown::Nothing,

    /// PEM public key (RSA, EC or Ed25519) for RS*/PS*/ES*/EdDSA tokens (--auth jwt)
    #[arg(long, env = "SIO_GATEWAY_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf> = Shown::Nothing,

    /// JWKS file (keys picked by `kid`), re-read when it changes or on SIGHUP (--auth jwt)
    #[arg(long, env = "SIO_GATEWAY_JWT_JWKS", value_name = "FILE")]
    pub jwt_jwks: Option<PathBuf> = Shown::Nothing,

    /// The only accepted JWT algorithm (HS256, RS256, ES256, EdDSA, ...); tokens with another
    /// `alg` (or `none`) are refused
    #[arg(long, env = "SIO_GATEWAY_JWT_ALG", value_name = "ALG")]
    pub jwt_alg: Option<String> = Shown::Text("HS256 with --jwt-secret, else RS256"),

    /// Required `iss` claim
    #[arg(long, env = "SIO_GATEWAY_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String> = Shown::Text("not checked"),

    /// Required `aud` claim
    #[arg(long, env = "SIO_GATEWAY_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String> = Shown::Text("not checked"),

    /// Clock leeway for `exp`/`nbf`
    #[arg(long, env = "SIO_GATEWAY_JWT_LEEWAY", value_name = "DURATION")]
    pub jwt_leeway: Option<Dur> = Shown::dur(D::JWT_LEEWAY),

    /// What happens to a connection when its credentials expire (JWT `exp` + --jwt-leeway, an
    /// auth webhook answer's `exp`): close cuts its session (stock clients reconnect and
    /// authenticate again), ignore keeps it until it ends
    #[arg(long, env = "SIO_GATEWAY_AUTH_EXPIRY", value_enum)]
    pub auth_expiry: Option<AuthExpiry> = Shown::choice(AuthExpiry::default()),

    /// Backend URL (http:// or https://) the handshake is POSTed to (--auth webhook)
    #[arg(long, env = "SIO_GATEWAY_AUTH_WEBHOOK", value_name = "URL")]
    pub auth_webhook: Option<String> = Shown::Nothing,

    /// Timeout of one auth webhook call
    #[arg(
        long,
        env = "SIO_GATEWAY_AUTH_WEBHOOK_TIMEOUT",
        value_name = "DURATION"
    )]
    pub auth_webhook_timeout: Option<Dur> = Shown::dur(D::AUTH_WEBHOOK_TIMEOUT),

    /// Most auth webhook calls in flight; more connections wait for a slot
    #[arg(long, env = "SIO_GATEWAY_AUTH_WEBHOOK_CONCURRENCY", value_name = "N")]
    pub auth_webhook_concurrency: Option<usize> = Shown::value(D::AUTH_WEBHOOK_CONCURRENCY),

    /// Where client events other than join/leave/publish go: none, redis-stream or webhook
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM", value_enum)]
    pub upstream: Option<UpstreamMode> = Shown::choice(UpstreamMode::default()),

    /// Redis Stream key the events are added to (--upstream redis-stream)
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM_STREAM", value_name = "NAME")]
    pub upstream_stream: Option<String> = Shown::value(D::UPSTREAM_STREAM),

    /// Approximate cap of the stream (XADD MAXLEN ~ N)
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM_MAXLEN", value_name = "N")]
    pub upstream_maxlen: Option<u64> = Shown::value(D::UPSTREAM_MAXLEN),

    /// Largest event sent upstream, in bytes (event name + its data as JSON); a larger one is
    /// refused with an error ack and counted (dropped_messages_total{reason="upstream_too_large"});
    /// 0 = only --max-payload
    #[arg(
        long,
        env = "SIO_GATEWAY_UPSTREAM_MAX_EVENT_BYTES",
        value_name = "BYTES"
    )]
    pub upstream_max_event_bytes: Option<u64> = Shown::value(D::UPSTREAM_MAX_EVENT_BYTES),

    /// Redis URL for the upstream stream
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM_REDIS", value_name = "URL")]
    pub upstream_redis: Option<String> = Shown::Text("--redis"),

    /// Backend URL (http:// or https://) events are POSTed to; the response body is the ack
    /// (--upstream webhook)
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM_WEBHOOK", value_name = "URL")]
    pub upstream_webhook: Option<String> = Shown::Nothing,

    /// Timeout of one upstream webhook call
    #[arg(
        long,
        env = "SIO_GATEWAY_UPSTREAM_WEBHOOK_TIMEOUT",
        value_name = "DURATION"
    )]
    pub upstream_webhook_timeout: Option<Dur> = Shown::dur(D::UPSTREAM_WEBHOOK_TIMEOUT),

    /// Most upstream webhook calls in flight on this node; more events wait for a slot up to
    /// half the call's timeout, then are refused with `backend busy`
    #[arg(
        long,
        env = "SIO_GATEWAY_UPSTREAM_WEBHOOK_CONCURRENCY",
        value_name = "N"
    )]
    pub upstream_webhook_concurrency: Option<usize> =
        Shown::value(D::UPSTREAM_WEBHOOK_CONCURRENCY),

    /// python-socketio Redis manager channel to obey (e.g. `socketio`); needs --redis
    #[arg(long, env = "SIO_GATEWAY_PYSIO_CHANNEL", value_name = "CHANNEL")]
    pub pysio_channel: Option<String> = Shown::Text("none"),

    /// PEM file of extra CA certificates trusted for https:// webhooks (--auth-webhook,
    /// --upstream-webhook), in addition to the system's trust store
    #[arg(long, env = "SIO_GATEWAY_WEBHOOK_CA_FILE", value_name = "FILE")]
    pub webhook_ca_file: Option<PathBuf> = Shown::Text("none (system trust store only)"),}
}

/// Append `[default: ...]` to an option's help, from its declaration's [`Shown`] default.
fn with_shown_default(arg: Arg) -> Arg {
    let Some(shown) = Options::shown_default(arg.get_id().as_str()).and_then(|s| s.help()) else {
        return arg;
    };
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    let arg = arg.help(format!("{help} [default: {shown}]"));
    match arg.get_long_help().map(ToString::to_string) {
        Some(long) => arg.long_help(format!("{long}\n\n[default: {shown}]")),
        None => arg,
    }
}

impl Options {
    /// Parse a TOML file into the option layer. Unknown keys are rejected.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Options, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            // toml points at the offending value; name its key in words too.
            let key = e.span().and_then(|span| key_at(&text, span.start));
            let message = match key {
                Some(k) => format!("key `{k}`: {}", e.message()),
                None => e.to_string(),
            };
            ConfigError::Parse {
                path: path.to_owned(),
                message,
            }
        })
    }
}

/// The `key` of the `key = value` line containing byte offset `pos`, if any.
fn key_at(text: &str, pos: usize) -> Option<String> {
    let pos = pos.min(text.len());
    let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_owned())
}
