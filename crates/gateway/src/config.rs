//! All of the gateway's configuration, in one place.
//!
//! Every option exists three times over: a command-line flag, an environment variable
//! (`SIO_GATEWAY_` + the flag name in upper case, dashes as underscores) and a key in the TOML
//! file given with `--config` (the flag name with underscores). Precedence is
//! flag > env > file > built-in default. clap resolves flag vs env; the file is merged here.
//!
//! [`Options`] is the raw, all-optional layer (the same struct is parsed by clap and by serde,
//! so flags and TOML keys cannot drift apart); [`Config`] is the validated, defaulted result
//! that the rest of the gateway reads.
use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::rules::{Pattern, RuleSet};

/// Errors from reading or validating configuration. Each names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Default `ws_read_buffer`. tungstenite (under engineioxide) allocates the websocket read
/// buffer at this size when the connection opens and keeps it until it closes, zero-filled (so
/// resident); engineioxide's own default, 4096, is ~4 KiB of every idle connection. Socket.IO
/// events are mostly far below 1 KiB, so 1024 costs them nothing; a larger message takes one
/// read(2) per KiB (a 1 MB payload ~1,000 reads instead of ~250, about a millisecond).
pub const DEFAULT_WS_READ_BUFFER: usize = 1024;
/// Below this, reads become absurdly small (tungstenite itself accepts down to 14 bytes).
pub const MIN_WS_READ_BUFFER: usize = 128;

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
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
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

/// A duration written as `250ms`, `10s`, `2m` or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
            (n, 1u64)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, 1000)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, 60_000)
        } else {
            (s, 1000)
        };
        let n: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a duration (examples: 500ms, 10s, 2m)"))?;
        if !n.is_finite() || n < 0.0 {
            return Err(format!("`{s}` is not a positive duration"));
        }
        Ok(Dur(Duration::from_millis(
            (n * mult_ms as f64).round() as u64
        )))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
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

/// The raw option layer, shared by clap (flags + env) and serde (TOML file).
/// Everything is optional here so that "not given" can fall through to the next source.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Client-facing listen address [default: 0.0.0.0:3000]
    #[arg(long, env = "SIO_GATEWAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Redis URL for the cluster adapter (redis://, rediss://). [default: none, single node in memory]
    #[arg(long, env = "SIO_GATEWAY_REDIS", value_name = "URL")]
    pub redis: Option<String>,

    /// This node's id (sticky cookie value, logs, metrics) [default: hostname, else random]
    #[arg(long, env = "SIO_GATEWAY_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,

    /// URL other nodes use to reach this node [default: derived from --listen]
    #[arg(long, env = "SIO_GATEWAY_ADVERTISE", value_name = "URL")]
    pub advertise: Option<String>,

    /// TOML config file (keys = option names with underscores)
    #[arg(long, env = "SIO_GATEWAY_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Key(s) for the HTTP API; repeat or comma-separate [default: none, API disabled]
    #[arg(
        long = "api-key",
        env = "SIO_GATEWAY_API_KEY",
        value_name = "KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(default)]
    pub api_key: Vec<String>,

    /// Separate listen address for /metrics (then not served on --listen) [default: same as --listen]
    #[arg(long, env = "SIO_GATEWAY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Namespace to serve; repeat or comma-separate. `*` matches within a path segment
    /// (`/tenant-*`), `{name}`/`{*rest}` are passed to the router as is [default: /]
    #[arg(
        long = "namespace",
        env = "SIO_GATEWAY_NAMESPACE",
        value_name = "NSP",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub namespace: Vec<String>,

    /// Engine.IO ping interval [default: 25s]
    #[arg(long, env = "SIO_GATEWAY_PING_INTERVAL", value_name = "DURATION")]
    pub ping_interval: Option<Dur>,

    /// Engine.IO ping timeout [default: 20s]
    #[arg(long, env = "SIO_GATEWAY_PING_TIMEOUT", value_name = "DURATION")]
    pub ping_timeout: Option<Dur>,

    /// Largest accepted message in bytes (one websocket message, one polling request body,
    /// all binary attachments of one packet) [default: 1000000]
    #[arg(long, env = "SIO_GATEWAY_MAX_PAYLOAD", value_name = "BYTES")]
    pub max_payload: Option<u64>,

    /// Most Socket.IO connections on this node, 0 = unlimited; more are refused with a
    /// connect_error [default: 0]
    #[arg(long, env = "SIO_GATEWAY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Packets queued per connection for sending; when a slow client's queue is full, further
    /// messages to it are dropped (memory stays bounded) [default: 128]
    #[arg(long, env = "SIO_GATEWAY_MAX_BUFFER", value_name = "PACKETS")]
    pub max_buffer: Option<usize>,

    /// Bytes one websocket read(2) may take; every connection keeps a read buffer of this
    /// size for its whole life, so it is most of a websocket's idle memory that the gateway
    /// controls. Larger messages still work (the buffer grows for them), they only take one
    /// read per this many bytes [default: 1024]
    #[arg(long, env = "SIO_GATEWAY_WS_READ_BUFFER", value_name = "BYTES")]
    pub ws_read_buffer: Option<usize>,

    /// Put the heap on transparent huge pages (glibc: the binary re-execs itself once at start
    /// with `glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1` in `GLIBC_TUNABLES`); 10-38 %
    /// less CPU per delivery at thousands of sockets, same memory [default: true]
    #[arg(long, env = "SIO_GATEWAY_HEAP_HUGE_PAGES", value_name = "BOOL")]
    pub heap_huge_pages: Option<bool>,

    /// Most rooms one connection may be in through `join`, 0 = unlimited; further joins get an
    /// error ack (rooms joined by auth on connect are not limited) [default: 1000]
    #[arg(long, env = "SIO_GATEWAY_MAX_ROOMS", value_name = "N")]
    pub max_rooms: Option<usize>,

    /// Most namespaces created from `--namespace` patterns (`/tenant-*`) that may exist at once
    /// on this node, 0 = unlimited; a connect to a new one past the cap gets a `connect_error`.
    /// Empty ones are removed, with their Redis subscriptions [default: 1000]
    #[arg(long, env = "SIO_GATEWAY_MAX_NAMESPACES", value_name = "N")]
    pub max_namespaces: Option<usize>,

    /// New Engine.IO sessions per second per client IP (token bucket, burst 2x), 0 = unlimited;
    /// more get HTTP 429. Behind a load balancer every client has its IP: enforce it there
    /// [default: 0]
    #[arg(long, env = "SIO_GATEWAY_CONN_RATE_PER_IP", value_name = "PER_SEC")]
    pub conn_rate_per_ip: Option<f64>,

    /// Events per second a connection may send (token bucket), 0 = unlimited; excess events are
    /// dropped, counted, and answered with an error ack [default: 100]
    #[arg(long, env = "SIO_GATEWAY_EVENT_RATE", value_name = "PER_SEC")]
    pub event_rate: Option<f64>,

    /// Burst size of the per-connection event bucket [default: 2 x --event-rate, at least 1]
    #[arg(long, env = "SIO_GATEWAY_EVENT_BURST", value_name = "N")]
    pub event_burst: Option<u32>,

    /// Allowed CORS origin for browsers; repeat or comma-separate; `*` = any [default: none, same-origin only]
    #[arg(
        long = "cors-origin",
        env = "SIO_GATEWAY_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub cors_origin: Vec<String>,

    /// Log format [default: text]
    #[arg(long, env = "SIO_GATEWAY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Cluster mode: `local` keeps /readyz 200 while Redis is down for every node (degraded),
    /// unready only when this node's own subscriber fails; `strict` is unready whenever Redis
    /// is unreachable [default: local]
    #[arg(long, env = "SIO_GATEWAY_READINESS", value_enum)]
    pub readiness: Option<Readiness>,

    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `sio_gateway=debug`) [default: RUST_LOG, else info]
    #[arg(long, env = "SIO_GATEWAY_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// On SIGTERM/SIGINT, close clients spread over this period, then exit [default: 10s]
    #[arg(long, env = "SIO_GATEWAY_DRAIN_PERIOD", value_name = "DURATION")]
    pub drain_period: Option<Dur>,

    /// Room glob a client may join (`*`, `?`, `{sub}` = the authenticated subject); repeat or
    /// comma-separate. Personal rooms (`user:...`) are reached only by rules written with that
    /// prefix (`user:{sub}`) [default: * without --auth, none with --auth]
    #[arg(
        long = "can-join",
        env = "SIO_GATEWAY_CAN_JOIN",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub can_join: Option<Vec<String>>,

    /// Room glob a client may publish to; a publish without a room is checked against the
    /// namespace path; repeat or comma-separate; an empty value forbids publishing
    /// [default: * without --auth, none with --auth]
    #[arg(
        long = "can-publish",
        env = "SIO_GATEWAY_CAN_PUBLISH",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub can_publish: Option<Vec<String>>,

    /// Shared secret of the cluster's nodes: forwarded polling requests and WebSocket upgrades
    /// are signed with it (HMAC-SHA256); without it a node never forwards, and refuses (403)
    /// any request claiming to be forwarded [default: none]
    #[arg(
        long,
        env = "SIO_GATEWAY_CLUSTER_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub cluster_secret: Option<String>,

    /// How often this node refreshes its entry in the Redis node registry (--redis) [default: 2s]
    #[arg(long, env = "SIO_GATEWAY_CLUSTER_HEARTBEAT", value_name = "DURATION")]
    pub cluster_heartbeat: Option<Dur>,

    /// Lifetime of the registry entry without a heartbeat: a node that died silently leaves
    /// the registry after this (--redis) [default: 3 x --cluster-heartbeat]
    #[arg(long, env = "SIO_GATEWAY_CLUSTER_NODE_TTL", value_name = "DURATION")]
    pub cluster_node_ttl: Option<Dur>,

    /// Name of the sticky-session cookie set on the handshake [default: sio_node]
    #[arg(long, env = "SIO_GATEWAY_STICKY_COOKIE", value_name = "NAME")]
    pub sticky_cookie: Option<String>,

    /// Path of socket.io.min.js served at /socket.io.min.js for the chat page
    /// [default: search node_modules/socket.io-client near the binary and cwd, else a CDN]
    #[arg(long, env = "SIO_GATEWAY_CLIENT_JS", value_name = "FILE")]
    pub client_js: Option<PathBuf>,

    /// How clients authenticate on connect: none, jwt or webhook [default: none]
    #[arg(long, env = "SIO_GATEWAY_AUTH", value_enum)]
    pub auth: Option<AuthMode>,

    /// HMAC secret for HS256/384/512 tokens (--auth jwt)
    #[arg(
        long,
        env = "SIO_GATEWAY_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,

    /// PEM public key (RSA, EC or Ed25519) for RS*/PS*/ES*/EdDSA tokens (--auth jwt)
    #[arg(long, env = "SIO_GATEWAY_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,

    /// JWKS file (keys picked by `kid`), re-read when it changes or on SIGHUP (--auth jwt)
    #[arg(long, env = "SIO_GATEWAY_JWT_JWKS", value_name = "FILE")]
    pub jwt_jwks: Option<PathBuf>,

    /// The only accepted JWT algorithm (HS256, RS256, ES256, EdDSA, ...); tokens with another
    /// `alg` (or `none`) are refused [default: HS256 with --jwt-secret, RS256 otherwise]
    #[arg(long, env = "SIO_GATEWAY_JWT_ALG", value_name = "ALG")]
    pub jwt_alg: Option<String>,

    /// Required `iss` claim [default: not checked]
    #[arg(long, env = "SIO_GATEWAY_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim [default: not checked]
    #[arg(long, env = "SIO_GATEWAY_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String>,

    /// Clock leeway for `exp`/`nbf` [default: 5s]
    #[arg(long, env = "SIO_GATEWAY_JWT_LEEWAY", value_name = "DURATION")]
    pub jwt_leeway: Option<Dur>,

    /// Backend URL (http:// or https://) the handshake is POSTed to (--auth webhook)
    #[arg(long, env = "SIO_GATEWAY_AUTH_WEBHOOK", value_name = "URL")]
    pub auth_webhook: Option<String>,

    /// Timeout of one auth webhook call [default: 5s]
    #[arg(
        long,
        env = "SIO_GATEWAY_AUTH_WEBHOOK_TIMEOUT",
        value_name = "DURATION"
    )]
    pub auth_webhook_timeout: Option<Dur>,

    /// Most auth webhook calls in flight; more connections wait for a slot [default: 64]
    #[arg(long, env = "SIO_GATEWAY_AUTH_WEBHOOK_CONCURRENCY", value_name = "N")]
    pub auth_webhook_concurrency: Option<usize>,

    /// Where client events other than join/leave/publish go: none, redis-stream or webhook [default: none]
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM", value_enum)]
    pub upstream: Option<UpstreamMode>,

    /// Redis Stream key the events are added to (--upstream redis-stream) [default: sio:upstream]
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM_STREAM", value_name = "NAME")]
    pub upstream_stream: Option<String>,

    /// Approximate cap of the stream (XADD MAXLEN ~ N) [default: 100000]
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM_MAXLEN", value_name = "N")]
    pub upstream_maxlen: Option<u64>,

    /// Redis URL for the upstream stream [default: --redis]
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM_REDIS", value_name = "URL")]
    pub upstream_redis: Option<String>,

    /// Backend URL (http:// or https://) events are POSTed to; the response body is the ack
    /// (--upstream webhook)
    #[arg(long, env = "SIO_GATEWAY_UPSTREAM_WEBHOOK", value_name = "URL")]
    pub upstream_webhook: Option<String>,

    /// Timeout of one upstream webhook call [default: 5s]
    #[arg(
        long,
        env = "SIO_GATEWAY_UPSTREAM_WEBHOOK_TIMEOUT",
        value_name = "DURATION"
    )]
    pub upstream_webhook_timeout: Option<Dur>,

    /// python-socketio Redis manager channel to obey (e.g. `socketio`); needs --redis [default: none]
    #[arg(long, env = "SIO_GATEWAY_PYSIO_CHANNEL", value_name = "CHANNEL")]
    pub pysio_channel: Option<String>,

    /// PEM file of extra CA certificates trusted for https:// webhooks (--auth-webhook,
    /// --upstream-webhook), in addition to the system's trust store [default: system store only]
    #[arg(long, env = "SIO_GATEWAY_WEBHOOK_CA_FILE", value_name = "FILE")]
    pub webhook_ca_file: Option<PathBuf>,
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

/// `--upstream`: where other client events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamMode {
    #[default]
    None,
    RedisStream,
    Webhook,
}

impl Options {
    /// Fill every unset field of `self` from `lower` (a lower-precedence source).
    pub fn or(self, lower: Options) -> Options {
        fn vec(a: Vec<String>, b: Vec<String>) -> Vec<String> {
            if a.is_empty() { b } else { a }
        }
        Options {
            listen: self.listen.or(lower.listen),
            redis: self.redis.or(lower.redis),
            node_id: self.node_id.or(lower.node_id),
            advertise: self.advertise.or(lower.advertise),
            config: self.config.or(lower.config),
            api_key: vec(self.api_key, lower.api_key),
            metrics_listen: self.metrics_listen.or(lower.metrics_listen),
            namespace: vec(self.namespace, lower.namespace),
            ping_interval: self.ping_interval.or(lower.ping_interval),
            ping_timeout: self.ping_timeout.or(lower.ping_timeout),
            max_payload: self.max_payload.or(lower.max_payload),
            max_connections: self.max_connections.or(lower.max_connections),
            max_buffer: self.max_buffer.or(lower.max_buffer),
            ws_read_buffer: self.ws_read_buffer.or(lower.ws_read_buffer),
            heap_huge_pages: self.heap_huge_pages.or(lower.heap_huge_pages),
            max_rooms: self.max_rooms.or(lower.max_rooms),
            max_namespaces: self.max_namespaces.or(lower.max_namespaces),
            conn_rate_per_ip: self.conn_rate_per_ip.or(lower.conn_rate_per_ip),
            event_rate: self.event_rate.or(lower.event_rate),
            event_burst: self.event_burst.or(lower.event_burst),
            cors_origin: vec(self.cors_origin, lower.cors_origin),
            log_format: self.log_format.or(lower.log_format),
            readiness: self.readiness.or(lower.readiness),
            log_level: self.log_level.or(lower.log_level),
            drain_period: self.drain_period.or(lower.drain_period),
            can_join: self.can_join.or(lower.can_join),
            can_publish: self.can_publish.or(lower.can_publish),
            sticky_cookie: self.sticky_cookie.or(lower.sticky_cookie),
            cluster_secret: self.cluster_secret.or(lower.cluster_secret),
            cluster_heartbeat: self.cluster_heartbeat.or(lower.cluster_heartbeat),
            cluster_node_ttl: self.cluster_node_ttl.or(lower.cluster_node_ttl),
            client_js: self.client_js.or(lower.client_js),
            auth: self.auth.or(lower.auth),
            jwt_secret: self.jwt_secret.or(lower.jwt_secret),
            jwt_public_key: self.jwt_public_key.or(lower.jwt_public_key),
            jwt_jwks: self.jwt_jwks.or(lower.jwt_jwks),
            jwt_alg: self.jwt_alg.or(lower.jwt_alg),
            jwt_issuer: self.jwt_issuer.or(lower.jwt_issuer),
            jwt_audience: self.jwt_audience.or(lower.jwt_audience),
            jwt_leeway: self.jwt_leeway.or(lower.jwt_leeway),
            auth_webhook: self.auth_webhook.or(lower.auth_webhook),
            auth_webhook_timeout: self.auth_webhook_timeout.or(lower.auth_webhook_timeout),
            auth_webhook_concurrency: self
                .auth_webhook_concurrency
                .or(lower.auth_webhook_concurrency),
            upstream: self.upstream.or(lower.upstream),
            upstream_stream: self.upstream_stream.or(lower.upstream_stream),
            upstream_maxlen: self.upstream_maxlen.or(lower.upstream_maxlen),
            upstream_redis: self.upstream_redis.or(lower.upstream_redis),
            upstream_webhook: self.upstream_webhook.or(lower.upstream_webhook),
            upstream_webhook_timeout: self
                .upstream_webhook_timeout
                .or(lower.upstream_webhook_timeout),
            pysio_channel: self.pysio_channel.or(lower.pysio_channel),
            webhook_ca_file: self.webhook_ca_file.or(lower.webhook_ca_file),
        }
    }

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

/// How a configured namespace is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "lowercase")]
pub enum NamespaceSpec {
    /// A fixed path, created at start-up.
    Exact(String),
    /// A router pattern (socketioxide dynamic namespace); children are created on first connect.
    Pattern(String),
}

impl NamespaceSpec {
    /// Parse `/chat`, `/tenant-*` or a raw router pattern `/org/{id}`.
    pub fn parse(s: &str) -> Result<NamespaceSpec, String> {
        if !s.starts_with('/') {
            return Err(format!("namespace `{s}` must start with `/`"));
        }
        if s.contains('{') {
            return Ok(NamespaceSpec::Pattern(s.to_owned()));
        }
        if !s.contains('*') {
            return Ok(NamespaceSpec::Exact(s.to_owned()));
        }
        // `*` becomes a named router parameter; the router allows one per segment.
        let mut out = String::with_capacity(s.len() + 8);
        let mut n = 0;
        for (i, seg) in s.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            match seg.matches('*').count() {
                0 => out.push_str(seg),
                1 => {
                    out.push_str(&seg.replace('*', &format!("{{p{n}}}")));
                    n += 1;
                }
                _ => return Err(format!("namespace `{s}`: at most one `*` per path segment")),
            }
        }
        Ok(NamespaceSpec::Pattern(out))
    }
}

/// The validated, defaulted configuration the gateway runs with.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub redis: Option<String>,
    pub node_id: String,
    pub advertise: String,
    #[serde(serialize_with = "redact")]
    pub api_key: Vec<String>,
    pub metrics_listen: Option<SocketAddr>,
    pub namespace: Vec<NamespaceSpec>,
    #[serde(serialize_with = "ser_dur")]
    pub ping_interval: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub ping_timeout: Duration,
    pub max_payload: u64,
    pub max_connections: usize,
    pub max_buffer: usize,
    pub ws_read_buffer: usize,
    pub heap_huge_pages: bool,
    pub max_rooms: usize,
    pub max_namespaces: usize,
    pub conn_rate_per_ip: f64,
    pub event_rate: f64,
    pub event_burst: u32,
    pub cors_origin: Vec<String>,
    pub log_format: LogFormat,
    pub readiness: Readiness,
    pub log_level: Option<String>,
    #[serde(serialize_with = "ser_dur")]
    pub drain_period: Duration,
    pub can_join: RuleSet,
    pub can_publish: RuleSet,
    pub sticky_cookie: String,
    #[serde(serialize_with = "redact_opt")]
    pub cluster_secret: Option<String>,
    #[serde(serialize_with = "ser_dur")]
    pub cluster_heartbeat: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub cluster_node_ttl: Duration,
    pub client_js: Option<PathBuf>,
    pub auth: AuthConfig,
    pub upstream: UpstreamConfig,
    pub pysio_channel: Option<String>,
    /// Extra CA certificates (PEM) for https:// webhooks, on top of the system store.
    pub webhook_ca_file: Option<PathBuf>,
}

/// Resolved `--auth*` / `--jwt-*` options (keys are read by `auth` at start-up).
#[derive(Debug, Clone, Serialize)]
pub struct AuthConfig {
    pub mode: AuthMode,
    #[serde(serialize_with = "redact_opt")]
    pub jwt_secret: Option<String>,
    pub jwt_public_key: Option<PathBuf>,
    pub jwt_jwks: Option<PathBuf>,
    pub jwt_alg: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    #[serde(serialize_with = "ser_dur")]
    pub jwt_leeway: Duration,
    pub webhook: Option<String>,
    #[serde(serialize_with = "ser_dur")]
    pub webhook_timeout: Duration,
    pub webhook_concurrency: usize,
}

/// Resolved `--upstream*` options.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamConfig {
    pub mode: UpstreamMode,
    pub stream: String,
    pub maxlen: u64,
    /// `--upstream-redis`, else `--redis`.
    pub redis: Option<String>,
    pub webhook: Option<String>,
    #[serde(serialize_with = "ser_dur")]
    pub webhook_timeout: Duration,
}

/// A URL fit for a log line: no userinfo (`user:password@` may hold a credential), no query.
pub fn url_for_log(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let rest = match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    };
    let authority = rest.0.rsplit_once('@').map_or(rest.0, |(_, host)| host);
    let path = rest.1.map(|p| format!("/{p}")).unwrap_or_default();
    if scheme.is_empty() {
        format!("{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}")
    }
}

fn redact_opt<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// A webhook URL must be `http://` or `https://` with a host.
fn http_url(key: &'static str, v: &Option<String>) -> Result<(), ConfigError> {
    match v {
        Some(u) => crate::webhook_client::parse_url(u)
            .map(|_| ())
            .map_err(|e| invalid(key, e.to_string())),
        None => Ok(()),
    }
}

impl AuthConfig {
    fn resolve(o: &Options) -> Result<AuthConfig, ConfigError> {
        let mode = o.auth.unwrap_or_default();
        if mode == AuthMode::Jwt
            && o.jwt_secret.is_none()
            && o.jwt_public_key.is_none()
            && o.jwt_jwks.is_none()
        {
            return Err(invalid(
                "auth",
                "--auth jwt needs --jwt-secret, --jwt-public-key or --jwt-jwks",
            ));
        }
        if mode == AuthMode::Webhook && o.auth_webhook.is_none() {
            return Err(invalid("auth", "--auth webhook needs --auth-webhook URL"));
        }
        http_url("auth_webhook", &o.auth_webhook)?;
        let webhook_concurrency = o.auth_webhook_concurrency.unwrap_or(64);
        if webhook_concurrency == 0 {
            return Err(invalid("auth_webhook_concurrency", "must be >= 1"));
        }
        Ok(AuthConfig {
            mode,
            jwt_secret: o.jwt_secret.clone(),
            jwt_public_key: o.jwt_public_key.clone(),
            jwt_jwks: o.jwt_jwks.clone(),
            jwt_alg: o.jwt_alg.clone(),
            jwt_issuer: o.jwt_issuer.clone(),
            jwt_audience: o.jwt_audience.clone(),
            jwt_leeway: o.jwt_leeway.map_or(Duration::from_secs(5), |d| d.0),
            webhook: o.auth_webhook.clone(),
            webhook_timeout: o
                .auth_webhook_timeout
                .map_or(Duration::from_secs(5), |d| d.0),
            webhook_concurrency,
        })
    }
}

impl UpstreamConfig {
    fn resolve(o: &Options) -> Result<UpstreamConfig, ConfigError> {
        let mode = o.upstream.unwrap_or_default();
        let redis = o.upstream_redis.clone().or_else(|| o.redis.clone());
        if mode == UpstreamMode::RedisStream && redis.is_none() {
            return Err(invalid(
                "upstream",
                "--upstream redis-stream needs --upstream-redis URL or --redis URL",
            ));
        }
        if mode == UpstreamMode::Webhook && o.upstream_webhook.is_none() {
            return Err(invalid(
                "upstream",
                "--upstream webhook needs --upstream-webhook URL",
            ));
        }
        http_url("upstream_webhook", &o.upstream_webhook)?;
        let stream = o
            .upstream_stream
            .clone()
            .unwrap_or_else(|| "sio:upstream".into());
        if stream.is_empty() {
            return Err(invalid("upstream_stream", "must not be empty"));
        }
        Ok(UpstreamConfig {
            mode,
            stream,
            maxlen: o.upstream_maxlen.unwrap_or(100_000),
            redis,
            webhook: o.upstream_webhook.clone(),
            webhook_timeout: o
                .upstream_webhook_timeout
                .map_or(Duration::from_secs(5), |d| d.0),
        })
    }
}

fn redact<S: serde::Serializer>(keys: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(keys.iter().map(|_| "<redacted>"))
}

fn ser_dur<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&Dur(*d).to_string())
}

impl Config {
    /// Resolve the final configuration from the command line/env layer, reading `--config` if given.
    pub fn load(cli: Options) -> Result<Config, ConfigError> {
        let merged = match &cli.config {
            Some(path) => {
                let file = Options::from_toml_file(path)?;
                cli.or(file)
            }
            None => cli,
        };
        Config::resolve(merged)
    }

    /// Apply defaults and validate.
    pub fn resolve(o: Options) -> Result<Config, ConfigError> {
        // Before the fields below are moved out of `o`.
        let auth = AuthConfig::resolve(&o)?;
        let upstream = UpstreamConfig::resolve(&o)?;
        let listen = o
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 3000)));
        let node_id = match o.node_id {
            Some(id) if id.trim().is_empty() => {
                return Err(invalid("node_id", "must not be empty"));
            }
            Some(id) => id,
            None => default_node_id(),
        };
        if !node_id
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | '"' | '\\'))
        {
            return Err(invalid(
                "node_id",
                "must be printable ASCII without spaces, `;`, `,`, `\"` or `\\` (it is a cookie value)",
            ));
        }
        let max_buffer = o.max_buffer.unwrap_or(128);
        if max_buffer == 0 {
            return Err(invalid("max_buffer", "must be >= 1"));
        }
        let ws_read_buffer = o.ws_read_buffer.unwrap_or(DEFAULT_WS_READ_BUFFER);
        if ws_read_buffer < MIN_WS_READ_BUFFER {
            return Err(invalid(
                "ws_read_buffer",
                format!("must be at least {MIN_WS_READ_BUFFER} bytes"),
            ));
        }
        let conn_rate_per_ip = o.conn_rate_per_ip.unwrap_or(0.0);
        if !conn_rate_per_ip.is_finite() || conn_rate_per_ip < 0.0 {
            return Err(invalid("conn_rate_per_ip", "must be a number >= 0"));
        }
        let advertise = o.advertise.unwrap_or_else(|| {
            if listen.ip().is_unspecified() {
                format!(
                    "http://{}:{}",
                    local_hostname().unwrap_or_else(|| "127.0.0.1".into()),
                    listen.port()
                )
            } else {
                format!("http://{listen}")
            }
        });
        let namespace = if o.namespace.is_empty() {
            vec![NamespaceSpec::Exact("/".into())]
        } else {
            o.namespace
                .iter()
                .map(|n| NamespaceSpec::parse(n.trim()).map_err(|m| invalid("namespace", m)))
                .collect::<Result<Vec<_>, _>>()?
        };
        let ping_interval = o.ping_interval.map_or(Duration::from_secs(25), |d| d.0);
        let ping_timeout = o.ping_timeout.map_or(Duration::from_secs(20), |d| d.0);
        if ping_interval.is_zero() {
            return Err(invalid("ping_interval", "must be > 0"));
        }
        if ping_timeout.is_zero() {
            return Err(invalid("ping_timeout", "must be > 0"));
        }
        let max_payload = o.max_payload.unwrap_or(1_000_000);
        if max_payload < 64 {
            return Err(invalid("max_payload", "must be at least 64 bytes"));
        }
        let event_rate = o.event_rate.unwrap_or(100.0);
        if !event_rate.is_finite() || event_rate < 0.0 {
            return Err(invalid("event_rate", "must be a number >= 0"));
        }
        let event_burst = o
            .event_burst
            .unwrap_or_else(|| ((event_rate * 2.0).ceil() as u32).max(1));
        if event_burst == 0 {
            return Err(invalid("event_burst", "must be >= 1"));
        }
        for origin in &o.cors_origin {
            if origin != "*" && axum::http::HeaderValue::from_str(origin).is_err() {
                return Err(invalid(
                    "cors_origin",
                    format!("`{origin}` is not a valid origin"),
                ));
            }
        }
        // The open demo rules (`*`) are the default only without authentication; with `--auth`
        // the default grants nothing beyond what each connection's credentials grant.
        let open_by_default = auth.mode == AuthMode::None;
        let rules = |key: &'static str, v: Option<Vec<String>>| -> Result<RuleSet, ConfigError> {
            let v = v.unwrap_or_else(|| {
                if open_by_default {
                    vec!["*".into()]
                } else {
                    Vec::new()
                }
            });
            let pats = v
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| Pattern::parse(s).map_err(|m| invalid(key, m)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RuleSet::new(pats))
        };
        let can_join = rules("can_join", o.can_join)?;
        let can_publish = rules("can_publish", o.can_publish)?;
        let sticky_cookie = o.sticky_cookie.unwrap_or_else(|| "sio_node".into());
        if sticky_cookie.is_empty()
            || !sticky_cookie
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                "sticky_cookie",
                "must be a non-empty token of [A-Za-z0-9_-]",
            ));
        }
        if let Some(level) = &o.log_level
            && tracing_subscriber::EnvFilter::try_new(level).is_err()
        {
            return Err(invalid(
                "log_level",
                format!("`{level}` is not a valid log filter"),
            ));
        }
        for key in &o.api_key {
            if key.len() < 8 {
                return Err(invalid("api_key", "API keys must be at least 8 characters"));
            }
        }
        if let Some(url) = &o.redis
            && !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis-sentinel://")
                || url.starts_with("redis-cluster://"))
        {
            return Err(invalid(
                "redis",
                format!("`{url}` is not a redis:// or rediss:// URL"),
            ));
        }
        if o.cluster_secret.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(invalid("cluster_secret", "must be at least 16 characters"));
        }
        let cluster_heartbeat = o.cluster_heartbeat.map_or(Duration::from_secs(2), |d| d.0);
        if cluster_heartbeat < Duration::from_millis(100) {
            return Err(invalid("cluster_heartbeat", "must be at least 100ms"));
        }
        let cluster_node_ttl = o.cluster_node_ttl.map_or(cluster_heartbeat * 3, |d| d.0);
        if cluster_node_ttl <= cluster_heartbeat || cluster_node_ttl < Duration::from_secs(1) {
            return Err(invalid(
                "cluster_node_ttl",
                "must be longer than --cluster-heartbeat and at least 1s",
            ));
        }
        if let Some(path) = &o.webhook_ca_file {
            crate::webhook_client::load_ca_file(path)
                .map_err(|e| invalid("webhook_ca_file", e.to_string()))?;
        }
        Ok(Config {
            auth,
            upstream,
            pysio_channel: o.pysio_channel,
            webhook_ca_file: o.webhook_ca_file,
            listen,
            redis: o.redis,
            node_id,
            advertise,
            api_key: o.api_key,
            metrics_listen: o.metrics_listen,
            namespace,
            ping_interval,
            ping_timeout,
            max_payload,
            max_connections: o.max_connections.unwrap_or(0),
            max_buffer,
            ws_read_buffer,
            heap_huge_pages: o.heap_huge_pages.unwrap_or(true),
            max_rooms: o.max_rooms.unwrap_or(1000),
            max_namespaces: o.max_namespaces.unwrap_or(1000),
            conn_rate_per_ip,
            event_rate,
            event_burst,
            cors_origin: o.cors_origin,
            log_format: o.log_format.unwrap_or_default(),
            readiness: o.readiness.unwrap_or_default(),
            log_level: o.log_level,
            drain_period: o.drain_period.map_or(Duration::from_secs(10), |d| d.0),
            can_join,
            can_publish,
            sticky_cookie,
            cluster_secret: o.cluster_secret,
            cluster_heartbeat,
            cluster_node_ttl,
            client_js: o.client_js,
        })
    }

    /// The effective configuration as TOML (API keys redacted), for `check-config` and logs.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

fn local_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

fn default_node_id() -> String {
    local_hostname()
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        })
        .unwrap_or_else(|| format!("node-{:08x}", rand::random::<u32>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Options {
        let mut v = vec!["sio-gateway"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).expect("parse").options
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(Options::default()).unwrap();
        assert_eq!(c.listen, "0.0.0.0:3000".parse().unwrap());
        assert_eq!(c.namespace, vec![NamespaceSpec::Exact("/".into())]);
        assert_eq!(c.sticky_cookie, "sio_node");
        assert_eq!(c.max_payload, 1_000_000);
        assert_eq!(c.event_burst, 200);
        assert!(c.can_join.allows("anything", None));
        assert!(!c.node_id.is_empty());
    }

    #[test]
    fn urls_for_logs_hide_credentials() {
        assert_eq!(
            url_for_log("redis://:s3cret@redis.internal:6379/0?password=x"),
            "redis://redis.internal:6379/0"
        );
        assert_eq!(url_for_log("rediss://user:pw@a:1,b:2"), "rediss://a:1,b:2");
        assert_eq!(
            url_for_log("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn open_room_rules_are_the_default_only_without_auth() {
        let c = Config::resolve(cli(&[])).unwrap();
        assert!(c.can_join.is_open() && c.can_publish.is_open());
        let c = Config::resolve(cli(&["--auth", "jwt", "--jwt-secret", "s3cret-s3cret"])).unwrap();
        assert!(c.can_join.is_empty() && c.can_publish.is_empty());
        assert!(!c.can_join.allows("lobby", Some("u1")));
        let c = Config::resolve(cli(&[
            "--auth",
            "jwt",
            "--jwt-secret",
            "s3cret-s3cret",
            "--can-join",
            "*",
        ]))
        .unwrap();
        assert!(c.can_join.allows("lobby", Some("u1")));
        assert!(!c.can_join.allows("user:u2", Some("u1")), "personal rooms");
    }

    #[test]
    fn flag_beats_file_and_file_beats_default() {
        let file: Options = toml::from_str(
            "listen = \"127.0.0.1:9000\"\nnode_id = \"from-file\"\nmax_payload = 5000\n",
        )
        .unwrap();
        let merged = cli(&["--node-id", "from-flag"]).or(file);
        let c = Config::resolve(merged).unwrap();
        assert_eq!(c.node_id, "from-flag");
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.max_payload, 5000);
        assert_eq!(c.ping_interval, Duration::from_secs(25));
    }

    #[test]
    fn heap_huge_pages_default_flag_and_file() {
        assert!(Config::resolve(Options::default()).unwrap().heap_huge_pages);
        let c = Config::resolve(cli(&["--heap-huge-pages", "false"])).unwrap();
        assert!(!c.heap_huge_pages);
        let file: Options = toml::from_str("heap_huge_pages = false\n").unwrap();
        assert!(!Config::resolve(file).unwrap().heap_huge_pages);
        let e = Cli::try_parse_from(["sio-gateway", "--heap-huge-pages", "maybe"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--heap-huge-pages"), "{e}");
    }

    #[test]
    fn ws_read_buffer_default_file_and_minimum() {
        let c = Config::resolve(Options::default()).unwrap();
        assert_eq!(c.ws_read_buffer, DEFAULT_WS_READ_BUFFER);
        let file: Options = toml::from_str("ws_read_buffer = 4096\n").unwrap();
        assert_eq!(Config::resolve(file).unwrap().ws_read_buffer, 4096);
        let c = Config::resolve(cli(&["--ws-read-buffer", "512"])).unwrap();
        assert_eq!(c.ws_read_buffer, 512);
        let e = Config::resolve(cli(&["--ws-read-buffer", "100"])).unwrap_err();
        assert!(e.to_string().contains("ws_read_buffer"), "{e}");
    }

    #[test]
    fn lists_and_durations() {
        let o = cli(&[
            "--namespace",
            "/,/chat",
            "--namespace",
            "/tenant-*",
            "--drain-period",
            "1500ms",
            "--ping-interval",
            "2",
            "--can-join",
            "user:{sub},public:*",
        ]);
        let c = Config::resolve(o).unwrap();
        assert_eq!(
            c.namespace,
            vec![
                NamespaceSpec::Exact("/".into()),
                NamespaceSpec::Exact("/chat".into()),
                NamespaceSpec::Pattern("/tenant-{p0}".into())
            ]
        );
        assert_eq!(c.drain_period, Duration::from_millis(1500));
        assert_eq!(c.ping_interval, Duration::from_secs(2));
        assert!(c.can_join.allows("public:x", None));
        assert!(c.can_join.allows("user:42", Some("42")));
        assert!(!c.can_join.allows("user:42", Some("43")));
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            toml::from_str::<Options>("listen = \"127.0.0.1:1\"\nlisten_typo = 3\n").unwrap_err();
        assert!(err.to_string().contains("listen_typo"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let o: Options = toml::from_str("event_rate = -1.0\n").unwrap();
        let e = Config::resolve(o).unwrap_err().to_string();
        assert!(e.contains("event_rate"), "{e}");
        let o: Options = toml::from_str("namespace = [\"chat\"]\n").unwrap();
        assert!(
            Config::resolve(o)
                .unwrap_err()
                .to_string()
                .contains("namespace")
        );
        let e = toml::from_str::<Options>("drain_period = \"soon\"\n").unwrap_err();
        assert!(e.to_string().contains("drain_period"), "{e}");
    }

    #[test]
    fn namespace_patterns() {
        assert_eq!(
            NamespaceSpec::parse("/a/*/b-*").unwrap(),
            NamespaceSpec::Pattern("/a/{p0}/b-{p1}".into())
        );
        assert!(NamespaceSpec::parse("/a**").is_err());
        assert_eq!(
            NamespaceSpec::parse("/org/{id}").unwrap(),
            NamespaceSpec::Pattern("/org/{id}".into())
        );
    }

    #[test]
    fn webhook_urls_and_ca_file() {
        let c = Config::resolve(cli(&[
            "--auth",
            "webhook",
            "--auth-webhook",
            "https://auth.internal/check",
            "--upstream",
            "webhook",
            "--upstream-webhook",
            "http://127.0.0.1:9/events",
        ]))
        .unwrap();
        assert_eq!(
            c.auth.webhook.as_deref(),
            Some("https://auth.internal/check")
        );
        let e = Config::resolve(cli(&[
            "--upstream",
            "webhook",
            "--upstream-webhook",
            "ftp://x/y",
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("upstream_webhook") && e.contains("unsupported scheme `ftp`"),
            "{e}"
        );
        // Flag and TOML key; a missing file is refused with the key named.
        let e = Config::resolve(cli(&["--webhook-ca-file", "/nonexistent/ca.pem"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("webhook_ca_file") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let o: Options = toml::from_str("webhook_ca_file = \"/nonexistent/ca.pem\"\n").unwrap();
        assert!(
            Config::resolve(o)
                .unwrap_err()
                .to_string()
                .contains("webhook_ca_file")
        );
    }

    #[test]
    fn effective_config_redacts_keys() {
        let c = Config::resolve(cli(&["--api-key", "supersecret1"])).unwrap();
        let t = c.to_toml();
        assert!(!t.contains("supersecret1"));
        assert!(t.contains("<redacted>"));
    }
}
