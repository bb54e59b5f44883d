//! The resolved configuration: defaults applied, every value and every combination of
//! values checked.
//!
//! All checks live here, those spanning several options included (`--auth jwt` and its key,
//! `--jwt-alg` and the key kind, `--upstream` and its target, `--pysio-channel` and Redis), so
//! `check-config` refuses whatever start-up would. Defaults come from [`defaults`](super::defaults).
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Serialize;

use super::{
    AdminUi, AuthExpiry, AuthMode, ConfigError, LogFormat, Options, Readiness, RedisPubSub,
    RedisSubscriptionMode, UpstreamMode, defaults as D, effective, invalid,
};
use crate::rules::{Pattern, RuleSet};

/// How a configured namespace is served.
/// Printed in the effective configuration as its path (`/tenant-*` as `/tenant-{p0}`), which
/// parses back to the same spec.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        // `#` separates namespace and room in Redis channels and history keys (see
        // `relay::admit_check`, which refuses such paths at CONNECT too).
        if s.contains('#') {
            return Err(format!("namespace `{s}` may not contain `#`"));
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

    /// The path or router pattern.
    pub fn as_str(&self) -> &str {
        match self {
            NamespaceSpec::Exact(p) | NamespaceSpec::Pattern(p) => p,
        }
    }
}

/// Would the router pattern `pattern` (`/tenant-{p0}`, `/org/{id}`) route `path`? A segment
/// with a `{param}` matches any non-empty text between its literal prefix and suffix.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (p, q): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == q.len()
        && p.iter()
            .zip(&q)
            .all(|(ps, qs)| match (ps.find('{'), ps.rfind('}')) {
                (Some(a), Some(b)) if a < b => {
                    let (pre, suf) = (&ps[..a], &ps[b + 1..]);
                    qs.len() > pre.len() + suf.len() && qs.starts_with(pre) && qs.ends_with(suf)
                }
                _ => ps == qs,
            })
}

/// The validated, defaulted configuration the gateway runs with.
///
/// Serialized (by [`Config::to_toml`]) with the TOML keys of [`Options`]: a field is named
/// after its option, or renamed to it.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub redis: Option<String>,
    pub redis_pubsub: RedisPubSub,
    pub redis_subscription_mode: RedisSubscriptionMode,
    pub node_id: String,
    pub advertise: String,
    #[serde(serialize_with = "effective::redact")]
    pub api_key: Vec<String>,
    pub metrics_listen: Option<SocketAddr>,
    pub namespace: Vec<NamespaceSpec>,
    #[serde(serialize_with = "effective::dur")]
    pub ping_interval: Duration,
    #[serde(serialize_with = "effective::dur")]
    pub ping_timeout: Duration,
    #[serde(serialize_with = "effective::dur")]
    pub connect_timeout: Duration,
    /// Zero: unlimited.
    pub max_pending_sessions: usize,
    /// Zero: never (`--idle-timeout 0`).
    #[serde(serialize_with = "effective::dur")]
    pub idle_timeout: Duration,
    pub max_payload: u64,
    pub max_connections: usize,
    pub max_buffer: usize,
    pub ws_read_buffer: usize,
    pub heap_huge_pages: bool,
    pub max_rooms: usize,
    pub max_namespaces: usize,
    pub conn_rate_per_ip: f64,
    /// TCP connections per client IP on the client listener, 0 = unlimited.
    pub max_conns_per_ip: u32,
    pub event_rate: f64,
    pub event_burst: u32,
    pub cors_origin: Vec<String>,
    pub log_format: LogFormat,
    pub readiness: Readiness,
    pub admin_ui: AdminUi,
    pub admin_ui_namespace: String,
    pub admin_ui_user: String,
    pub admin_ui_password_hash: Option<String>,
    pub admin_ui_no_auth: bool,
    pub admin_ui_events: bool,
    pub log_level: Option<String>,
    #[serde(serialize_with = "effective::dur")]
    pub drain_period: Duration,
    pub can_join: RuleSet,
    pub can_publish: RuleSet,
    /// `--history` rules, in the order given (the first match wins).
    pub history: Vec<super::HistorySpec>,
    /// `--history-max-bytes`: the budget of every history of the node together.
    pub history_max_bytes: u64,
    pub sticky_cookie: String,
    #[serde(serialize_with = "effective::redact_opt")]
    pub cluster_secret: Option<String>,
    /// `--allow-demo-secrets`: a published placeholder secret is accepted (and warned about).
    pub allow_demo_secrets: bool,
    #[serde(serialize_with = "effective::dur")]
    pub cluster_heartbeat: Duration,
    #[serde(serialize_with = "effective::dur")]
    pub cluster_node_ttl: Duration,
    pub client_js: Option<PathBuf>,
    #[serde(flatten)]
    pub auth: AuthConfig,
    #[serde(flatten)]
    pub upstream: UpstreamConfig,
    pub pysio_channel: Option<String>,
    /// Extra CA certificates (PEM) for https:// webhooks, on top of the system store.
    pub webhook_ca_file: Option<PathBuf>,
}

/// Resolved `--auth*` / `--jwt-*` options (keys are read by `auth` at start-up).
#[derive(Debug, Clone, Serialize)]
pub struct AuthConfig {
    #[serde(rename = "auth")]
    pub mode: AuthMode,
    #[serde(serialize_with = "effective::redact_opt")]
    pub jwt_secret: Option<String>,
    pub jwt_public_key: Option<PathBuf>,
    pub jwt_jwks: Option<PathBuf>,
    pub jwt_alg: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    #[serde(serialize_with = "effective::dur")]
    pub jwt_leeway: Duration,
    #[serde(rename = "auth_expiry")]
    pub expiry: AuthExpiry,
    #[serde(rename = "auth_webhook")]
    pub webhook: Option<String>,
    #[serde(rename = "auth_webhook_timeout", serialize_with = "effective::dur")]
    pub webhook_timeout: Duration,
    #[serde(rename = "auth_webhook_concurrency")]
    pub webhook_concurrency: usize,
}

/// Resolved `--upstream*` options.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamConfig {
    #[serde(rename = "upstream")]
    pub mode: UpstreamMode,
    #[serde(rename = "upstream_stream")]
    pub stream: String,
    #[serde(rename = "upstream_maxlen")]
    pub maxlen: u64,
    /// `--upstream-max-event-bytes` (0: no cap but `--max-payload`).
    #[serde(rename = "upstream_max_event_bytes")]
    pub max_event_bytes: u64,
    /// `--upstream-redis`, else `--redis`.
    #[serde(rename = "upstream_redis")]
    pub redis: Option<String>,
    #[serde(rename = "upstream_webhook")]
    pub webhook: Option<String>,
    #[serde(rename = "upstream_webhook_timeout", serialize_with = "effective::dur")]
    pub webhook_timeout: Duration,
    #[serde(rename = "upstream_webhook_concurrency")]
    pub webhook_concurrency: usize,
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
        check_secret(
            "jwt_secret",
            o.jwt_secret.as_deref(),
            D::MIN_JWT_SECRET_LEN,
            o.allow_demo_secrets.unwrap_or(false),
        )?;
        if mode == AuthMode::Jwt {
            jwt_alg_fits_key(o)?;
        }
        http_url("auth_webhook", &o.auth_webhook)?;
        let webhook_concurrency = o
            .auth_webhook_concurrency
            .unwrap_or(D::AUTH_WEBHOOK_CONCURRENCY);
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
            jwt_leeway: o.jwt_leeway.map_or(D::JWT_LEEWAY, |d| d.0),
            expiry: o.auth_expiry.unwrap_or_default(),
            webhook: o.auth_webhook.clone(),
            webhook_timeout: o
                .auth_webhook_timeout
                .map_or(D::AUTH_WEBHOOK_TIMEOUT, |d| d.0),
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
            .unwrap_or_else(|| D::UPSTREAM_STREAM.into());
        if stream.is_empty() {
            return Err(invalid("upstream_stream", "must not be empty"));
        }
        let webhook_concurrency = o
            .upstream_webhook_concurrency
            .unwrap_or(D::UPSTREAM_WEBHOOK_CONCURRENCY);
        if webhook_concurrency == 0 {
            return Err(invalid("upstream_webhook_concurrency", "must be >= 1"));
        }
        Ok(UpstreamConfig {
            mode,
            stream,
            maxlen: o.upstream_maxlen.unwrap_or(D::UPSTREAM_MAXLEN),
            max_event_bytes: o
                .upstream_max_event_bytes
                .unwrap_or(D::UPSTREAM_MAX_EVENT_BYTES),
            redis,
            webhook: o.upstream_webhook.clone(),
            webhook_timeout: o
                .upstream_webhook_timeout
                .map_or(D::UPSTREAM_WEBHOOK_TIMEOUT, |d| d.0),
            webhook_concurrency,
        })
    }
}

/// The placeholder secrets this repository ships (`docker-compose.yml`,
/// `deploy/k8s/secret.example.yaml`). Published, so they authenticate nobody.
pub const SHIPPED_DEMO_SECRETS: &[&str] = &[
    "compose-demo-secret-change-me",
    "compose-demo-api-key-change-me",
    "change-me-api-key",
    "change-me-cluster-secret",
];

/// Is `secret` a published placeholder: one of [`SHIPPED_DEMO_SECRETS`], or marked as one
/// (`change-me`, any case, `-`, `_` or nothing between the words)?
pub fn is_demo_secret(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    SHIPPED_DEMO_SECRETS.contains(&secret)
        || ["change-me", "change_me", "changeme"]
            .iter()
            .any(|m| lower.contains(m))
}

/// Every secret option is checked here, and only here: it is not the placeholder the
/// effective configuration prints for it, it has at least `min_len` characters, and it is not
/// a published demo placeholder ([`is_demo_secret`]) unless `--allow-demo-secrets`.
fn check_secret(
    key: &'static str,
    secret: Option<&str>,
    min_len: usize,
    allow_demo: bool,
) -> Result<(), ConfigError> {
    let Some(secret) = secret else {
        return Ok(());
    };
    if secret == effective::REDACTED {
        return Err(invalid(
            key,
            format!(
                "`{}` is the placeholder check-config prints for a secret: write the secret itself",
                effective::REDACTED
            ),
        ));
    }
    if secret.len() < min_len {
        return Err(invalid(
            key,
            format!("must be at least {min_len} characters"),
        ));
    }
    if is_demo_secret(secret) && !allow_demo {
        return Err(invalid(
            key,
            "a published demo placeholder (it contains `change-me`, as the values shipped in \
             docker-compose.yml and deploy/k8s/secret.example.yaml do): anyone who read them can \
             use it. Set a random secret (e.g. `openssl rand -hex 32`), or pass \
             --allow-demo-secrets true to run a demo with it (logged as a warning)",
        ));
    }
    Ok(())
}

/// `--jwt-alg` names an algorithm, of the kind of the key given (an HMAC one for
/// `--jwt-secret`, not an HMAC one for `--jwt-public-key`). The secret wins over the other
/// keys, as in `auth::jwt`; a JWKS may hold keys of any kind.
fn jwt_alg_fits_key(o: &Options) -> Result<(), ConfigError> {
    use jsonwebtoken::Algorithm;
    let Some(name) = &o.jwt_alg else {
        return Ok(());
    };
    let alg: Algorithm = name.parse().map_err(|_| {
        invalid(
            "jwt_alg",
            format!("`{name}` is not a JWT algorithm (HS256, RS256, ES256, EdDSA, ...)"),
        )
    })?;
    let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
    if o.jwt_secret.is_some() && !hmac {
        return Err(invalid(
            "jwt_alg",
            format!("--jwt-secret needs an HMAC --jwt-alg (HS256/384/512), not {alg:?}"),
        ));
    }
    if o.jwt_secret.is_none() && o.jwt_public_key.is_some() && hmac {
        return Err(invalid(
            "jwt_alg",
            format!("--jwt-alg {alg:?} is an HMAC algorithm: use --jwt-secret, not a public key"),
        ));
    }
    Ok(())
}

impl Config {
    /// The longest message a node accepts from Redis pub/sub (the adapter's channels, the
    /// python-socketio channel): the adapter's default (8 MiB), or room for twice a client's
    /// largest message (`--max-payload`, as its packet and the envelope's room lists) when that
    /// is larger, so the cluster never drops its own nodes' broadcasts. Anyone who can PUBLISH
    /// sends these, and decoding one takes up to ~40 times its bytes.
    pub fn max_redis_message(&self) -> usize {
        let payload = usize::try_from(self.max_payload).unwrap_or(usize::MAX);
        sio_redis_adapter::MAX_INBOUND_BYTES.max(payload.saturating_mul(2).saturating_add(64 << 10))
    }

    /// The options holding a published demo placeholder ([`is_demo_secret`]); only possible
    /// with `--allow-demo-secrets`, and said at start-up.
    pub fn demo_secrets(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.api_key.iter().any(|k| is_demo_secret(k)) {
            keys.push("api_key");
        }
        for (key, secret) in [
            ("cluster_secret", &self.cluster_secret),
            ("jwt_secret", &self.auth.jwt_secret),
        ] {
            if secret.as_deref().is_some_and(is_demo_secret) {
                keys.push(key);
            }
        }
        keys
    }

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
        let listen = o.listen.unwrap_or(D::LISTEN);
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
        let max_buffer = o.max_buffer.unwrap_or(D::MAX_BUFFER);
        if max_buffer == 0 {
            return Err(invalid("max_buffer", "must be >= 1"));
        }
        let ws_read_buffer = o.ws_read_buffer.unwrap_or(D::WS_READ_BUFFER);
        if ws_read_buffer < D::MIN_WS_READ_BUFFER {
            return Err(invalid(
                "ws_read_buffer",
                format!("must be at least {} bytes", D::MIN_WS_READ_BUFFER),
            ));
        }
        let conn_rate_per_ip = o.conn_rate_per_ip.unwrap_or(D::CONN_RATE_PER_IP);
        if !conn_rate_per_ip.is_finite() || conn_rate_per_ip < 0.0 {
            return Err(invalid("conn_rate_per_ip", "must be a number >= 0"));
        }
        let advertise = o.advertise.unwrap_or_else(|| {
            if listen.ip().is_unspecified() {
                format!(
                    "http://{}:{}",
                    local_hostname()
                        .filter(|h| is_host_name(h))
                        .unwrap_or_else(|| "127.0.0.1".into()),
                    listen.port()
                )
            } else {
                format!("http://{listen}")
            }
        });
        // Peers append a client's path and query to it: an origin only (see `config::advertise`).
        let advertise = super::advertise::normalize(&advertise).map_err(|e| {
            invalid(
                "advertise",
                format!("{}: {e} (got {advertise:?})", super::advertise::RULE),
            )
        })?;
        let namespace = if o.namespace.is_empty() {
            vec![NamespaceSpec::Exact(D::NAMESPACE.into())]
        } else {
            o.namespace
                .iter()
                .map(|n| NamespaceSpec::parse(n.trim()).map_err(|m| invalid("namespace", m)))
                .collect::<Result<Vec<_>, _>>()?
        };
        let admin_ui = o.admin_ui.unwrap_or_default();
        let admin_ui_namespace = o
            .admin_ui_namespace
            .unwrap_or_else(|| D::ADMIN_UI_NAMESPACE.into());
        let admin_ui_no_auth = o.admin_ui_no_auth.unwrap_or(false);
        if admin_ui != AdminUi::None {
            check_admin_ui(
                &admin_ui_namespace,
                &namespace,
                o.admin_ui_password_hash.as_deref(),
                admin_ui_no_auth,
            )?;
        }
        let ping_interval = o.ping_interval.map_or(D::PING_INTERVAL, |d| d.0);
        let ping_timeout = o.ping_timeout.map_or(D::PING_TIMEOUT, |d| d.0);
        if ping_interval.is_zero() {
            return Err(invalid("ping_interval", "must be > 0"));
        }
        if ping_timeout.is_zero() {
            return Err(invalid("ping_timeout", "must be > 0"));
        }
        let connect_timeout = o.connect_timeout.map_or(D::CONNECT_TIMEOUT, |d| d.0);
        if connect_timeout.is_zero() {
            return Err(invalid("connect_timeout", "must be > 0"));
        }
        let idle_timeout = o.idle_timeout.map_or(D::IDLE_TIMEOUT, |d| d.0);
        if !idle_timeout.is_zero() && idle_timeout <= ping_interval + ping_timeout {
            return Err(invalid(
                "idle_timeout",
                "must be longer than ping_interval + ping_timeout (a live client may send nothing for that long), or 0 for never",
            ));
        }
        let max_payload = o.max_payload.unwrap_or(D::MAX_PAYLOAD);
        if max_payload < 64 {
            return Err(invalid("max_payload", "must be at least 64 bytes"));
        }
        let event_rate = o.event_rate.unwrap_or(D::EVENT_RATE);
        if !event_rate.is_finite() || event_rate < 0.0 {
            return Err(invalid("event_rate", "must be a number >= 0"));
        }
        let event_burst = o.event_burst.unwrap_or_else(|| D::event_burst(event_rate));
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
        let history = o
            .history
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| super::HistorySpec::parse(s).map_err(|m| invalid("history", m)))
            .collect::<Result<Vec<_>, _>>()?;
        let history_max_bytes = o.history_max_bytes.unwrap_or(D::HISTORY_MAX_BYTES);
        if history_max_bytes < D::MIN_HISTORY_MAX_BYTES {
            return Err(invalid(
                "history_max_bytes",
                format!(
                    "must be at least {} bytes (1 MiB)",
                    D::MIN_HISTORY_MAX_BYTES
                ),
            ));
        }
        let sticky_cookie = o.sticky_cookie.unwrap_or_else(|| D::STICKY_COOKIE.into());
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
        let allow_demo_secrets = o.allow_demo_secrets.unwrap_or(false);
        for key in &o.api_key {
            check_secret("api_key", Some(key), D::MIN_API_KEY_LEN, allow_demo_secrets)?;
        }
        if let Some(url) = &o.redis
            && !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis-sentinel://")
                || url.starts_with("redis-cluster://"))
        {
            return Err(invalid(
                "redis",
                format!(
                    "`{url}` is not a redis://, rediss://, redis-sentinel:// or redis-cluster:// URL"
                ),
            ));
        }
        let redis_pubsub = o.redis_pubsub.unwrap_or_default();
        if redis_pubsub == RedisPubSub::Sharded && o.redis.is_none() {
            return Err(invalid(
                "redis_pubsub",
                "--redis-pubsub sharded needs --redis (a Redis >= 7, usually a redis-cluster:// URL)",
            ));
        }
        // The default is accepted with classic too: the effective configuration lists it.
        if redis_pubsub == RedisPubSub::Classic
            && o.redis_subscription_mode
                .is_some_and(|m| m != RedisSubscriptionMode::default())
        {
            return Err(invalid(
                "redis_subscription_mode",
                "--redis-subscription-mode dynamic-private or static only applies to --redis-pubsub sharded",
            ));
        }
        check_secret(
            "cluster_secret",
            o.cluster_secret.as_deref(),
            D::MIN_CLUSTER_SECRET_LEN,
            allow_demo_secrets,
        )?;
        let cluster_heartbeat = o.cluster_heartbeat.map_or(D::CLUSTER_HEARTBEAT, |d| d.0);
        if cluster_heartbeat < Duration::from_millis(100) {
            return Err(invalid("cluster_heartbeat", "must be at least 100ms"));
        }
        let cluster_node_ttl = o
            .cluster_node_ttl
            .map_or(cluster_heartbeat * D::CLUSTER_NODE_TTL_HEARTBEATS, |d| d.0);
        if cluster_node_ttl <= cluster_heartbeat || cluster_node_ttl < Duration::from_secs(1) {
            return Err(invalid(
                "cluster_node_ttl",
                "must be longer than --cluster-heartbeat and at least 1s",
            ));
        }
        // Start-up reads the channel through `--redis`, else the upstream's Redis.
        if o.pysio_channel.is_some() && o.redis.is_none() && upstream.redis.is_none() {
            return Err(invalid(
                "pysio_channel",
                "--pysio-channel needs --redis (or --upstream-redis)",
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
            redis_pubsub,
            redis_subscription_mode: o.redis_subscription_mode.unwrap_or_default(),
            node_id,
            advertise,
            api_key: o.api_key,
            metrics_listen: o.metrics_listen,
            namespace,
            ping_interval,
            ping_timeout,
            connect_timeout,
            max_pending_sessions: o.max_pending_sessions.unwrap_or(D::MAX_PENDING_SESSIONS),
            idle_timeout,
            max_payload,
            max_connections: o.max_connections.unwrap_or(D::MAX_CONNECTIONS),
            max_buffer,
            ws_read_buffer,
            heap_huge_pages: o.heap_huge_pages.unwrap_or(D::HEAP_HUGE_PAGES),
            max_rooms: o.max_rooms.unwrap_or(D::MAX_ROOMS),
            max_namespaces: o.max_namespaces.unwrap_or(D::MAX_NAMESPACES),
            conn_rate_per_ip,
            max_conns_per_ip: o.max_conns_per_ip.unwrap_or(D::MAX_CONNS_PER_IP),
            event_rate,
            event_burst,
            cors_origin: o.cors_origin,
            log_format: o.log_format.unwrap_or_default(),
            readiness: o.readiness.unwrap_or_default(),
            admin_ui,
            admin_ui_namespace,
            admin_ui_user: o.admin_ui_user.unwrap_or_else(|| D::ADMIN_UI_USER.into()),
            admin_ui_password_hash: o.admin_ui_password_hash,
            admin_ui_no_auth,
            admin_ui_events: o.admin_ui_events.unwrap_or(false),
            log_level: o.log_level,
            drain_period: o.drain_period.map_or(D::DRAIN_PERIOD, |d| d.0),
            can_join,
            can_publish,
            history,
            history_max_bytes,
            sticky_cookie,
            cluster_secret: o.cluster_secret,
            allow_demo_secrets,
            cluster_heartbeat,
            cluster_node_ttl,
            client_js: o.client_js,
        })
    }
}

/// The Admin UI's options, when it is on: its own namespace (not one clients use), and exactly
/// one of a valid bcrypt hash or the explicit no-auth opt-in.
fn check_admin_ui(
    path: &str,
    namespaces: &[NamespaceSpec],
    hash: Option<&str>,
    no_auth: bool,
) -> Result<(), ConfigError> {
    let key = "admin_ui_namespace";
    if !path.starts_with('/') || path.len() < 2 {
        return Err(invalid(
            key,
            format!("`{path}` must start with `/` and name a namespace"),
        ));
    }
    if namespaces.iter().any(|n| match n {
        NamespaceSpec::Exact(p) => p == path,
        NamespaceSpec::Pattern(p) => pattern_matches(p, path),
    }) {
        return Err(invalid(
            key,
            format!("`{path}` is also a client namespace (--namespace): pick another path"),
        ));
    }
    match (hash, no_auth) {
        (Some(_), true) => Err(invalid(
            "admin_ui_no_auth",
            "give --admin-ui-password-hash or --admin-ui-no-auth, not both",
        )),
        (None, false) => Err(invalid(
            "admin_ui_password_hash",
            "--admin-ui needs a bcrypt hash of the password (e.g. `htpasswd -bnBC 10 \"\" PASSWORD | tr -d ':\\n'`), or --admin-ui-no-auth to let anyone in",
        )),
        (Some(h), false) => h.parse::<bcrypt::HashParts>().map(|_| ()).map_err(|e| {
            invalid(
                "admin_ui_password_hash",
                format!("not a bcrypt hash ($2a$/$2b$/$2y$, cost, 53 characters): {e}"),
            )
        }),
        (None, true) => Ok(()),
    }
}

fn local_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

fn is_host_name(h: &str) -> bool {
    h.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

fn default_node_id() -> String {
    local_hostname()
        .filter(|h| is_host_name(h))
        .unwrap_or_else(|| format!("node-{:08x}", rand::random::<u32>()))
}
