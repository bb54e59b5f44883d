//! Smoke test: the sio-bench binary against the real Node.js comparison server
//! (bench/node-server.mjs: socket.io 4.8 + @socket.io/redis-adapter 8.3) and a
//! private redis-server, for a few seconds. It proves the generator speaks the
//! protocol (handshake, join with ack, heartbeats), that the hand-encoded
//! emitter packet is accepted by the Node adapter, and that the relay-origin
//! messages are counted: no loss, every delivery has a latency sample.
//! The second test does the same against `sio-bench floor-server`, the reference
//! server the benchmark's figures are read against.
//! Not a performance test: nothing here asserts a rate or a latency.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child on drop, so a failing assertion leaves nothing running.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Wait until `probe` succeeds (bounded).
fn wait_for(what: &str, mut probe: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if probe() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} not ready within 20 s");
}

fn http_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

fn redis_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"PING\r\n");
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sio-bench"))
        .args(["--json", "--quiet"])
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run sio-bench");
    assert!(
        out.status.success(),
        "sio-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("sio-bench prints JSON")
}

/// A fan-out step sent without errors and every expected delivery arrived with a latency sample.
fn assert_lossless(step: &serde_json::Value, expected: u64, what: &str, r: &serde_json::Value) {
    assert_eq!(step["send"]["errors"], 0, "{what}: {r}");
    assert_eq!(step["expected"], expected, "{what}: {r}");
    assert_eq!(step["received"], step["expected"], "{what}: {r}");
    assert_eq!(step["latency"]["count"], step["received"], "{what}: {r}");
}

/// `sio-bench fanout` with `receivers` receivers, 20 broadcasts/s for 1 s, plus `extra`.
fn fanout(url: &str, pid: &str, receivers: u32, extra: &[&str]) -> serde_json::Value {
    let receivers = receivers.to_string();
    let mut args = vec![
        "fanout",
        "--url",
        url,
        "--pid",
        pid,
        "--receivers",
        &receivers,
    ];
    args.extend(["--rate", "20", "--duration", "1", "--warmup", "0.5"]);
    args.extend(extra);
    bench(&args)
}

/// `sio-bench idle` with 50 connections: all connect and the server's RSS is read.
fn idle_50(url: &str, pid: &str) {
    let idle = bench(&[
        "idle",
        "--url",
        url,
        "--connections",
        "50",
        "--pid",
        pid,
        "--settle",
        "0",
    ]);
    assert_eq!(idle["connected"], 50, "{idle}");
    assert!(idle["rss_after_bytes"].as_u64().unwrap_or(0) > 0, "{idle}");
}

#[test]
fn sio_bench_drives_the_node_comparison_server() {
    let root = root();
    let bench_dir = root.join("bench");
    if !bench_dir.join("node_modules/socket.io").exists() {
        // Installed from bench/package-lock.json, as bench/compare.sh does.
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&bench_dir)
            .status()
            .expect("npm");
        assert!(st.success(), "npm ci in bench/ failed");
    }

    let rport = free_port();
    let _redis = Proc(
        Command::new("redis-server")
            .args(["--port", &rport.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    wait_for("redis", || redis_ok(rport));
    let redis_url = format!("redis://127.0.0.1:{rport}");

    let nport = free_port();
    let node = Proc(
        Command::new("node")
            .arg(bench_dir.join("node-server.mjs"))
            .args(["--port", &nport.to_string(), "--redis", &redis_url])
            .stdout(Stdio::null())
            .spawn()
            .expect("node"),
    );
    wait_for("node-server", || http_ok(nport));
    let url = format!("http://127.0.0.1:{nport}");
    let pid = node.0.id().to_string();

    for origin in ["emitter", "client", "http"] {
        let r = fanout(
            &url,
            &pid,
            20,
            &["--origin", origin, "--redis", &redis_url, "--room", "smoke"],
        );
        assert_eq!(r["connected"], 20, "{origin}: {r}");
        assert!(r["skipped"].is_null(), "{origin}: {r}");
        let step = &r["steps"][0];
        assert_lossless(step, 20 * 20, origin, &r);
        assert!(
            step["server_cpu_s"].as_f64().is_some(),
            "{origin}: CPU sampled: {r}"
        );
    }

    idle_50(&url, &pid);

    let conn = bench(&[
        "connect",
        "--url",
        &url,
        "--count",
        "30",
        "--concurrency",
        "5",
    ]);
    assert_eq!(conn["ok"], 30, "{conn}");
    assert_eq!(conn["latency"]["count"], 30, "{conn}");
}

#[test]
fn sio_bench_drives_its_floor_server() {
    // Writing at once, and batching every 20 ms.
    for coalesce in ["0", "20"] {
        let port = free_port();
        let floor = Proc(
            Command::new(env!("CARGO_BIN_EXE_sio-bench"))
                .args([
                    "floor-server",
                    "--quiet",
                    "--coalesce-ms",
                    coalesce,
                    "--listen",
                ])
                .arg(format!("127.0.0.1:{port}"))
                .spawn()
                .expect("floor-server"),
        );
        wait_for("floor-server", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let url = format!("http://127.0.0.1:{port}");
        let pid = floor.0.id().to_string();
        // In a room and namespace-wide, and with the spinning receive loop: every receiver
        // gets every broadcast once.
        for (room, busy) in [(Some("smoke"), false), (None, false), (Some("smoke"), true)] {
            let mut args = vec!["--origin", "client"];
            if let Some(r) = room {
                args.extend(["--room", r]);
            }
            if busy {
                args.push("--busy-poll");
            }
            let r = fanout(&url, &pid, 20, &args);
            assert_eq!(r["connected"], 20, "{room:?}: {r}");
            let what = format!("coalesce={coalesce} room={room:?} busy={busy}");
            assert_lossless(&r["steps"][0], 20 * 20, &what, &r);
        }
        idle_50(&url, &pid);
    }
}
