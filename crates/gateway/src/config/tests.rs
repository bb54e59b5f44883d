//! Unit tests of the configuration: parsing, precedence, defaults, validation, output.
use std::time::Duration;

use clap::Parser;

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
    let c = Config::resolve(cli(&[
        "--auth",
        "jwt",
        "--jwt-secret",
        "s3cret-s3cret-s3cret",
    ]))
    .unwrap();
    assert!(c.can_join.is_empty() && c.can_publish.is_empty());
    assert!(!c.can_join.allows("lobby", Some("u1")));
    let c = Config::resolve(cli(&[
        "--auth",
        "jwt",
        "--jwt-secret",
        "s3cret-s3cret-s3cret",
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
    let err = toml::from_str::<Options>("listen = \"127.0.0.1:1\"\nlisten_typo = 3\n").unwrap_err();
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
fn advertise_is_an_origin_only() {
    let c = Config::resolve(cli(&["--advertise", "http://gw-1.internal:3000/"])).unwrap();
    assert_eq!(c.advertise, "http://gw-1.internal:3000");
    let c = Config::resolve(cli(&["--listen", "127.0.0.1:4100"])).unwrap();
    assert_eq!(c.advertise, "http://127.0.0.1:4100");
    for bad in [
        "http://127.0.0.1:31420/internal/admin/secrets?x=",
        "http://gw-1:3000/prefix",
        "http://gw-1:3000?a=",
        "http://u:p@gw-1:3000",
        "gw-1:3000",
    ] {
        let e = Config::resolve(cli(&["--advertise", bad]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("advertise") && e.contains("no path"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn idle_timeout_outlasts_the_heartbeat_or_is_off() {
    let c = Config::resolve(cli(&[])).unwrap();
    assert_eq!(c.idle_timeout, Duration::from_secs(120));
    let e = Config::resolve(cli(&["--ping-interval", "25s", "--idle-timeout", "45s"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("idle_timeout") && e.contains("longer than"),
        "{e}"
    );
    let c = Config::resolve(cli(&["--idle-timeout", "0"])).unwrap();
    assert!(c.idle_timeout.is_zero(), "0 = never");
}

#[test]
fn namespace_patterns() {
    assert_eq!(
        NamespaceSpec::parse("/a/*/b-*").unwrap(),
        NamespaceSpec::Pattern("/a/{p0}/b-{p1}".into())
    );
    assert!(NamespaceSpec::parse("/a**").is_err());
    assert!(NamespaceSpec::parse("/t-acme#x").is_err());
    assert!(NamespaceSpec::parse("/t-*#").is_err());
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

// ---- each option declared once: README table, --help, defaults, effective configuration ----

use super::defaults::Shown;

/// One row of a README table `| flag | env | TOML key | default | meaning |`.
#[derive(Debug)]
struct ReadmeRow {
    flag: String,
    env: String,
    key: String,
    default: String,
}

/// The rows of every README table with the configuration header, backticks removed.
fn readme_rows() -> Vec<ReadmeRow> {
    // Read at run time, not `include_str!`: the image build copies only `crates/`, and nothing
    // under it may point outside (tests/js/deploy-image.test.mjs).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    const HEADER: &str = "| flag | env | TOML key | default | meaning |";
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in readme.lines() {
        if line.trim() == HEADER {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().replace('`', ""))
            .collect();
        assert!(
            cells.len() >= 5,
            "README row with fewer than 5 cells: {line}"
        );
        rows.push(ReadmeRow {
            flag: cells[0].clone(),
            env: cells[1].clone(),
            key: cells[2].clone(),
            default: cells[3].clone(),
        });
    }
    rows
}

/// The options as clap knows them (every field of `Options`), without help/version.
fn option_args() -> Vec<clap::Arg> {
    use clap::CommandFactory;
    Cli::command()
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .cloned()
        .collect()
}

#[test]
fn every_field_is_a_flag() {
    let ids: Vec<String> = option_args()
        .iter()
        .map(|a| a.get_id().to_string())
        .collect();
    assert_eq!(ids, Options::KEYS, "clap arguments = Options fields");
}

#[test]
fn readme_table_lists_every_option_with_its_env_key_and_default() {
    let rows = readme_rows();
    let mut problems = Vec::new();
    for arg in option_args() {
        let id = arg.get_id().as_str();
        let flag = format!("--{}", arg.get_long().unwrap_or_default());
        let Some(row) = rows.iter().find(|r| r.flag == flag) else {
            problems.push(format!("{flag}: no row in the README configuration tables"));
            continue;
        };
        let env = arg
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        if row.env != env {
            problems.push(format!("{flag}: README env `{}`, code `{env}`", row.env));
        }
        let key = if id == "config" { "–" } else { id };
        if row.key != key {
            problems.push(format!(
                "{flag}: README TOML key `{}`, code `{key}`",
                row.key
            ));
        }
        let shown = Options::shown_default(id).and_then(|s| s.help());
        let shown = shown.as_deref().unwrap_or("–");
        if row.default != shown {
            problems.push(format!(
                "{flag}: README default `{}`, code `{shown}`",
                row.default
            ));
        }
    }
    for row in &rows {
        if !option_args()
            .iter()
            .any(|a| format!("--{}", a.get_long().unwrap_or_default()) == row.flag)
        {
            problems.push(format!("README row {}: no such option", row.flag));
        }
    }
    assert!(
        problems.is_empty(),
        "README vs code:\n{}",
        problems.join("\n")
    );
}

#[test]
fn help_shows_every_option_with_its_env_and_default() {
    use clap::CommandFactory;
    let help = Cli::command().render_long_help().to_string();
    for arg in option_args() {
        let id = arg.get_id().as_str();
        let flag = format!("--{}", arg.get_long().unwrap_or_default());
        assert!(!arg.is_hide_set(), "{flag} hidden from --help");
        assert!(help.contains(&format!("{flag} ")), "{flag} in --help");
        let env = arg
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            env.starts_with("SIO_GATEWAY_")
                && (help.contains(&format!("[env: {env}="))
                    || help.contains(&format!("[env: {env}]"))),
            "{flag}: env {env} in --help"
        );
        if let Some(shown) = Options::shown_default(id).and_then(|s| s.help()) {
            assert!(
                help.contains(&format!("[default: {shown}]")),
                "{flag}: [default: {shown}] in --help"
            );
        }
    }
}

#[test]
fn value_defaults_are_what_resolve_uses() {
    // Giving an option its documented default value changes nothing.
    let default = Config::resolve(Options::default()).unwrap().to_toml();
    let mut values = 0;
    for arg in option_args() {
        let id = arg.get_id().as_str();
        let Some(Shown::Value { value, .. }) = Options::shown_default(id) else {
            continue;
        };
        values += 1;
        let flag = format!("--{}", arg.get_long().unwrap_or_default());
        let given = Config::resolve(cli(&[&flag, &value]))
            .unwrap_or_else(|e| panic!("{flag} {value}: {e}"))
            .to_toml();
        assert_eq!(given, default, "{flag} {value} is not the default");
    }
    assert!(values >= 20, "only {values} value defaults");
}

/// A configuration setting every option but `webhook_ca_file` (its file is read and must be a
/// CA certificate; the node test covers it) away from its default, secrets left out.
const EVERYTHING: &str = r#"
listen = "127.0.0.1:4000"
redis = "redis://127.0.0.1:6390/0"
node_id = "gw-7"
advertise = "http://gw-7.internal:4000"
metrics_listen = "127.0.0.1:9100"
namespace = ["/", "/chat", "/tenant-*", "/org/{id}"]
ping_interval = "2s"
ping_timeout = 3
connect_timeout = "4s"
max_pending_sessions = 77
idle_timeout = "30s"
max_payload = 5000
max_connections = 10
max_buffer = 64
ws_read_buffer = 2048
heap_huge_pages = false
max_rooms = 7
max_namespaces = 9
admin_ui = "readonly"
admin_ui_namespace = "/ops"
admin_ui_user = "ops"
admin_ui_password_hash = "$2b$04$y8Uuy18aR0ciulVx1pbYhed9YaQlZKHhGZ8NloPl3ee1TJRbDhM2e"
admin_ui_events = true
conn_rate_per_ip = 2.5
max_conns_per_ip = 50
event_rate = 10
event_burst = 3
cors_origin = ["https://app.example", "*"]
log_format = "json"
log_level = "info,sio_gateway=debug"
drain_period = "1500ms"
can_join = ["public:*", "user:{sub}"]
can_publish = []
history = ["chat:*=200/10m", "news=5"]
history_max_bytes = 2097152
sticky_cookie = "gw"
allow_demo_secrets = true
cluster_heartbeat = "500ms"
cluster_node_ttl = "3s"
client_js = "/opt/socket.io.min.js"
auth = "jwt"
jwt_public_key = "/etc/gw/jwt.pem"
jwt_jwks = "/etc/gw/jwks.json"
jwt_alg = "ES256"
jwt_issuer = "https://issuer.example"
jwt_audience = "chat"
jwt_leeway = "1s"
auth_expiry = "ignore"
auth_webhook = "https://auth.internal/check"
auth_webhook_timeout = "2s"
auth_webhook_concurrency = 8
upstream = "redis-stream"
upstream_stream = "events"
upstream_maxlen = 1000
upstream_max_event_bytes = 4096
upstream_redis = "rediss://upstream.internal:6380"
upstream_webhook = "http://backend.internal/events"
upstream_webhook_timeout = "750ms"
upstream_webhook_concurrency = 16
pysio_channel = "socketio"
"#;

fn effective(toml_text: &str) -> String {
    let o: Options = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    Config::resolve(o)
        .unwrap_or_else(|e| panic!("{e}\n{toml_text}"))
        .to_toml()
}

#[test]
fn effective_config_reads_back_as_the_same_config() {
    for text in [
        "",
        EVERYTHING,
        "auth = \"webhook\"\nauth_webhook = \"http://a/b\"\nupstream = \"webhook\"\nupstream_webhook = \"http://c/d\"\n",
    ] {
        let first = effective(text);
        assert!(!first.starts_with("# cannot render"), "{first}");
        assert_eq!(effective(&first), first, "from:\n{text}");
    }
}

#[test]
fn effective_config_writes_every_key() {
    let with_secrets = format!(
        "{EVERYTHING}api_key = [\"0123456789\"]\ncluster_secret = \"0123456789abcdef\"\njwt_secret = \"s3cret-s3cret-s3cret\"\njwt_alg = \"HS256\"\n"
    )
    .replace("jwt_alg = \"ES256\"\n", "");
    let table: toml::Table = toml::from_str(&effective(&with_secrets)).unwrap();
    let mut missing: Vec<&str> = Options::KEYS
        .iter()
        .copied()
        .filter(|k| !table.contains_key(*k))
        .collect();
    missing.sort_unstable();
    assert_eq!(missing, ["config", "webhook_ca_file"], "keys not printed");
    for key in table.keys() {
        assert!(Options::KEYS.contains(&key.as_str()), "unknown key {key}");
    }
}

#[test]
fn redacted_secrets_are_refused_with_the_key_named() {
    for (text, key) in [
        ("api_key = [\"0123456789\"]\n", "api_key"),
        ("cluster_secret = \"0123456789abcdef\"\n", "cluster_secret"),
        (
            "auth = \"jwt\"\njwt_secret = \"s3cret-s3cret-s3cret\"\n",
            "jwt_secret",
        ),
    ] {
        let printed = effective(text);
        assert!(printed.contains(REDACTED), "{printed}");
        let o: Options = toml::from_str(&printed).unwrap();
        let e = Config::resolve(o).unwrap_err().to_string();
        assert!(
            e.contains(&format!("`{key}`")) && e.contains("placeholder"),
            "{e}"
        );
    }
}

#[test]
fn published_placeholder_secrets_are_refused_unless_allowed() {
    // The values docker-compose.yml and deploy/k8s/secret.example.yaml ship, and any other
    // value marked `change-me`, for every secret option.
    let jwt = |s: &str| format!("auth = \"jwt\"\njwt_secret = \"{s}\"\n");
    for secret in SHIPPED_DEMO_SECRETS
        .iter()
        .copied()
        .chain(["our-CHANGE-ME-cluster-key", "changeme-0123456789abcdef"])
    {
        for (text, key) in [
            (
                format!("api_key = [\"0123456789\", \"{secret}\"]\n"),
                "api_key",
            ),
            (format!("cluster_secret = \"{secret}\"\n"), "cluster_secret"),
            (jwt(secret), "jwt_secret"),
        ] {
            let o: Options = toml::from_str(&text).unwrap();
            let e = Config::resolve(o).unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{key}`"))
                    && e.contains("published demo placeholder")
                    && e.contains("--allow-demo-secrets"),
                "{text}: {e}"
            );
            let allowed: Options =
                toml::from_str(&format!("{text}allow_demo_secrets = true\n")).unwrap();
            let c = Config::resolve(allowed).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(c.demo_secrets(), [key], "{text}");
        }
    }
    // The environment variables the deploy files set, and the flag.
    let c = Config::resolve(cli(&[
        "--api-key",
        "change-me-api-key",
        "--allow-demo-secrets",
        "true",
    ]))
    .unwrap();
    assert!(c.allow_demo_secrets);
    let e = Config::resolve(cli(&["--cluster-secret", "change-me-cluster-secret"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`cluster_secret`"), "{e}");
    // Real secrets: nothing to say.
    let c = Config::resolve(cli(&[
        "--api-key",
        "k3y-0123456789",
        "--cluster-secret",
        "0123456789abcdef",
    ]))
    .unwrap();
    assert!(c.demo_secrets().is_empty());
}

#[test]
fn secrets_have_a_minimum_length() {
    for (text, key) in [
        ("api_key = [\"1234567\"]\n", "api_key"),
        ("cluster_secret = \"0123456789abcde\"\n", "cluster_secret"),
        (
            "auth = \"jwt\"\njwt_secret = \"0123456789abcde\"\n",
            "jwt_secret",
        ),
    ] {
        let o: Options = toml::from_str(text).unwrap();
        let e = Config::resolve(o).unwrap_err().to_string();
        assert!(
            e.contains(&format!("`{key}`")) && e.contains("at least"),
            "{e}"
        );
    }
    for text in [
        "api_key = [\"12345678\"]\n",
        "cluster_secret = \"0123456789abcdef\"\n",
        "auth = \"jwt\"\njwt_secret = \"0123456789abcdef\"\n",
    ] {
        let o: Options = toml::from_str(text).unwrap();
        Config::resolve(o).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

#[test]
fn cross_field_checks_are_made_by_resolve() {
    let bad = [
        ("pysio_channel = \"socketio\"\n", "pysio_channel"),
        (
            "auth = \"jwt\"\njwt_secret = \"s3cret-s3cret-s3cret\"\njwt_alg = \"RS256\"\n",
            "jwt_alg",
        ),
        (
            "auth = \"jwt\"\njwt_public_key = \"/k.pem\"\njwt_alg = \"HS512\"\n",
            "jwt_alg",
        ),
        (
            "auth = \"jwt\"\njwt_jwks = \"/k.json\"\njwt_alg = \"XX1\"\n",
            "jwt_alg",
        ),
        ("upstream = \"redis-stream\"\n", "upstream"),
        ("auth = \"jwt\"\n", "auth"),
    ];
    for (text, key) in bad {
        let o: Options = toml::from_str(text).unwrap();
        let e = Config::resolve(o).unwrap_err().to_string();
        assert!(e.contains(&format!("`{key}`")), "{text}: {e}");
    }
    // Satisfied: Redis through --upstream-redis is enough for --pysio-channel.
    effective("pysio_channel = \"s\"\nupstream_redis = \"redis://127.0.0.1:1\"\n");
}

#[test]
fn redis_pubsub_modes_and_their_checks() {
    let c = Config::resolve(Options::default()).unwrap();
    assert_eq!(c.redis_pubsub, RedisPubSub::Classic);
    assert_eq!(c.redis_subscription_mode, RedisSubscriptionMode::Dynamic);
    let c = Config::resolve(cli(&[
        "--redis",
        "redis-cluster://h:1",
        "--redis-pubsub",
        "sharded",
        "--redis-subscription-mode",
        "dynamic-private",
    ]))
    .unwrap();
    assert_eq!(c.redis_pubsub, RedisPubSub::Sharded);
    assert_eq!(
        c.redis_subscription_mode,
        RedisSubscriptionMode::DynamicPrivate
    );
    // A single Redis (>= 7, checked at start) is accepted too.
    let o: Options = toml::from_str(
        "redis = \"redis://h:1\"\nredis_pubsub = \"sharded\"\nredis_subscription_mode = \"static\"\n",
    )
    .unwrap();
    assert_eq!(
        Config::resolve(o).unwrap().redis_subscription_mode,
        RedisSubscriptionMode::Static
    );
    let e = Config::resolve(cli(&["--redis-pubsub", "sharded"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`redis_pubsub`") && e.contains("Redis >= 7"),
        "{e}"
    );
    let e = Config::resolve(cli(&[
        "--redis",
        "redis://h:1",
        "--redis-subscription-mode",
        "static",
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("`redis_subscription_mode`"), "{e}");
    assert!(
        Cli::try_parse_from(["sio-gateway", "--redis-pubsub", "shard"]).is_err(),
        "unknown values are refused by the parser"
    );
}

#[test]
fn redis_scheme_error_names_the_four_schemes() {
    let e = Config::resolve(cli(&["--redis", "http://x"]))
        .unwrap_err()
        .to_string();
    for scheme in [
        "redis://",
        "rediss://",
        "redis-sentinel://",
        "redis-cluster://",
    ] {
        assert!(e.contains(scheme), "{e}");
    }
    for ok in [
        "redis://h:1",
        "rediss://h:1",
        "redis-sentinel://h:1",
        "redis-cluster://h:1",
    ] {
        Config::resolve(cli(&["--redis", ok])).unwrap();
    }
}

#[test]
fn check_config_takes_the_file_or_config() {
    for args in [
        &["sio-gateway", "check-config", "a.toml"][..],
        &["sio-gateway", "check-config", "--config", "a.toml"][..],
    ] {
        let c = Cli::try_parse_from(args).unwrap();
        let file = c.command.as_ref().and_then(Command::check_config_file);
        assert_eq!(file, Some(std::path::Path::new("a.toml")));
    }
    assert!(Cli::try_parse_from(["sio-gateway", "check-config"]).is_err());
}

#[test]
fn admin_ui_needs_a_hash_or_an_explicit_no_auth() {
    let err = |toml: &str| {
        Config::resolve(toml::from_str::<Options>(toml).expect("parses"))
            .expect_err("refused")
            .to_string()
    };
    assert!(err("admin_ui = \"full\"\n").contains("bcrypt"));
    assert!(
        err("admin_ui = \"full\"\nadmin_ui_password_hash = \"plain\"\n")
            .contains("not a bcrypt hash")
    );
    assert!(
        err("admin_ui = \"full\"\nadmin_ui_no_auth = true\nadmin_ui_password_hash = \"$2b$04$y8Uuy18aR0ciulVx1pbYhed9YaQlZKHhGZ8NloPl3ee1TJRbDhM2e\"\n")
            .contains("not both")
    );
    assert!(
        err("admin_ui = \"readonly\"\nadmin_ui_no_auth = true\nnamespace = [\"/admin\"]\n")
            .contains("client namespace")
    );
    assert!(
        err("admin_ui = \"readonly\"\nadmin_ui_no_auth = true\nnamespace = [\"/*\"]\n")
            .contains("client namespace")
    );
    let ok = Config::resolve(
        toml::from_str::<Options>(
            "admin_ui = \"readonly\"\nadmin_ui_no_auth = true\nnamespace = [\"/tenant-*\"]\n",
        )
        .expect("parses"),
    )
    .expect("valid");
    assert_eq!(ok.admin_ui_namespace, "/admin");
}

#[test]
fn history_rules_resolve_round_trip_and_refuse_bad_values() {
    let c = Config::resolve(cli(&["--history", "chat:*=200/10m", "--history", "news=5"])).unwrap();
    assert_eq!(c.history.len(), 2);
    assert_eq!(c.history[0].size, 200);
    assert_eq!(c.history[0].ttl, Some(Duration::from_secs(600)));
    assert_eq!(c.history[1].ttl, None);
    // check-config's output holds the rules and parses back to the same ones.
    let out = c.to_toml();
    assert!(
        out.contains("history = [\"chat:*=200/600000ms\", \"news=5\"]"),
        "{out}"
    );
    let again: Options = toml::from_str(&out).unwrap();
    assert_eq!(Config::resolve(again).unwrap().history, c.history);
    for (bad, why) in [
        ("chat:*", "expected GLOB=SIZE"),
        ("chat:*=0", "SIZE must be"),
        ("chat:*=10/never", "TTL"),
    ] {
        let e = Config::resolve(cli(&["--history", bad]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("history") && e.contains(why), "{bad}: {e}");
    }
    let c = Config::resolve(cli(&[
        "--history",
        "a=1",
        "--redis",
        "redis://127.0.0.1:6379",
    ]))
    .unwrap();
    assert_eq!(c.history.len(), 1, "cluster mode keeps histories in Redis");
}

#[test]
fn history_max_bytes_default_sources_and_minimum() {
    let c = Config::resolve(Options::default()).unwrap();
    assert_eq!(c.history_max_bytes, 64 * 1024 * 1024);
    assert!(c.to_toml().contains("history_max_bytes = 67108864"));
    let c = Config::resolve(cli(&["--history-max-bytes", "2097152"])).unwrap();
    assert_eq!(c.history_max_bytes, 2 * 1024 * 1024);
    let file: Options = toml::from_str("history_max_bytes = 4194304\n").unwrap();
    assert_eq!(Config::resolve(file).unwrap().history_max_bytes, 4 << 20);
    let e = Config::resolve(cli(&["--history-max-bytes", "1000"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("history_max_bytes") && e.contains("1 MiB"),
        "{e}"
    );
    // The env var, as every option has one.
    let arg = option_args()
        .into_iter()
        .find(|a| a.get_id() == "history_max_bytes")
        .expect("declared");
    assert_eq!(
        arg.get_env().map(|e| e.to_string_lossy().into_owned()),
        Some("SIO_GATEWAY_HISTORY_MAX_BYTES".into())
    );
}
