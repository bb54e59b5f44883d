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
