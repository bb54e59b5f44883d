//! `fanout`: broadcast throughput, loss, latency and server CPU per delivery.
//!
//! N receivers connect (spread over the URLs) and optionally join a room; the
//! sender thread offers broadcasts at a fixed rate; each step is measured
//! separately: deliveries are those whose timestamp is not older than the step
//! start, loss is `sent × receivers − received` after a drain wait, and the
//! server CPU is the utime+stime delta of the given PIDs over the step.
//! `--ramp` repeats steps with a growing rate until a step loses messages.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::origin::{SendStats, Sender};
use crate::pool::{PoolState, spawn_receivers, targets, wait_connected};
use crate::procstat::{cpu_seconds, total_cpu};
use crate::report::{Latency, Progress, fmt_lat, now_ns, output, print_table};
use crate::{FanoutArgs, Origin};

#[derive(Serialize, Clone)]
struct Step {
    offered_rate: f64,
    send: SendStats,
    expected: u64,
    received: u64,
    lost: i64,
    loss_ratio: f64,
    deliveries_per_s: f64,
    latency: Latency,
    server_cpu_s: Option<f64>,
    server_cpu_us_per_delivery: Option<f64>,
    /// The generator's own CPU seconds over the step: near the step's
    /// wall time means the generator, not the server, was the limit.
    generator_cpu_s: f64,
    wall_s: f64,
}

#[derive(Serialize)]
struct FanoutResult {
    mode: &'static str,
    origin: Origin,
    urls: Vec<String>,
    room: Option<String>,
    receivers: usize,
    connected: u64,
    connect_failed: u64,
    /// Joins that got no ack and were re-sent (a server-side race, see conn.rs).
    join_retries: u64,
    closed_during_run: u64,
    first_error: Option<String>,
    /// Set when the origin does not exist on this server (e.g. no HTTP API).
    skipped: Option<String>,
    steps: Vec<Step>,
    highest_lossless_rate: Option<f64>,
    highest_lossless_deliveries_per_s: Option<f64>,
    /// The p99 bound of `--max-p99-ms`, and the highest step that was lossless within it.
    max_p99_ms: Option<f64>,
    highest_within_p99_rate: Option<f64>,
    highest_within_p99_deliveries_per_s: Option<f64>,
}

pub async fn run(a: FanoutArgs, json: bool, quiet: bool) -> Result<()> {
    let t = targets(&a.conn)?;
    if a.busy_poll {
        // A task that is always ready: tokio's current-thread scheduler then polls the IO
        // driver with a zero timeout between rounds instead of blocking in epoll_wait.
        tokio::task::spawn_local(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
    }
    let rooms = a.rooms.max(1);
    if rooms > 1 {
        if a.room.is_none() || a.origin != Origin::Emitter {
            bail!("--rooms needs --room (the prefix) and --origin emitter");
        }
        if !a.receivers.is_multiple_of(rooms) {
            bail!("--receivers must be a multiple of --rooms");
        }
    }
    let st = PoolState::new();
    spawn_receivers(&t, a.receivers, &a.conn, a.room.clone(), rooms, &st);
    wait_connected(&st, a.receivers, quiet).await;
    let mut r = FanoutResult {
        mode: "fanout",
        origin: a.origin,
        urls: a.conn.urls.clone(),
        room: a.room.clone(),
        receivers: a.receivers,
        connected: st.connected.get(),
        connect_failed: st.failed.get(),
        join_retries: st.join_retries.get(),
        closed_during_run: 0,
        first_error: st.first_error.borrow().clone(),
        skipped: None,
        steps: Vec::new(),
        highest_lossless_rate: None,
        highest_lossless_deliveries_per_s: None,
        max_p99_ms: a.max_p99_ms,
        highest_within_p99_rate: None,
        highest_within_p99_deliveries_per_s: None,
    };
    if st.connected.get() == 0 {
        bail!(
            "no receiver connected: {}",
            r.first_error.unwrap_or_default()
        );
    }
    let sender = match Sender::start(&a)? {
        Some(s) => s,
        None => {
            r.skipped = Some("origin not available on this server (HTTP 404)".into());
            return print(json, &r);
        }
    };
    if a.warmup > 0.0 {
        let rate = a.rate.min(100.0);
        sender.run(rate, a.warmup).await?;
        drain(
            &st,
            (rate * a.warmup).round() as u64 * st.connected.get() / rooms as u64,
            2.0,
            quiet,
        )
        .await;
    }
    let mut rate = a.rate;
    loop {
        let step = measure(&a, &st, &sender, rate, quiet).await?;
        let lossy = step.loss_ratio > a.loss_threshold;
        let sender_limited = step.send.seconds > a.duration * 1.25 + 0.5;
        if !quiet {
            eprintln!(
                "step: offered {:.0}/s -> {:.0} deliveries/s, loss {:.4}%, {}",
                rate,
                step.deliveries_per_s,
                step.loss_ratio * 100.0,
                fmt_lat(&step.latency)
            );
        }
        if !lossy {
            r.highest_lossless_rate = Some(rate);
            r.highest_lossless_deliveries_per_s = Some(step.deliveries_per_s);
            if a.max_p99_ms.is_some_and(|m| step.latency.p99_ms <= m) {
                r.highest_within_p99_rate = Some(rate);
                r.highest_within_p99_deliveries_per_s = Some(step.deliveries_per_s);
            }
        }
        r.steps.push(step);
        if !a.ramp || lossy || sender_limited || rate * a.ramp_factor > a.ramp_max {
            break;
        }
        rate *= a.ramp_factor;
    }
    r.closed_during_run = st.closed.get();
    r.first_error = st.first_error.borrow().clone();
    if !a.ramp {
        r.highest_lossless_rate = None;
        r.highest_lossless_deliveries_per_s = None;
        r.highest_within_p99_rate = None;
        r.highest_within_p99_deliveries_per_s = None;
    }
    print(json, &r)
}

/// One measured step at `rate`.
async fn measure(
    a: &FanoutArgs,
    st: &PoolState,
    sender: &Sender,
    rate: f64,
    quiet: bool,
) -> Result<Step> {
    let receivers = st.connected.get() - st.closed.get().min(st.connected.get());
    let step_start = now_ns();
    st.reset_step(step_start);
    let cpu0 = total_cpu(&a.pids).ok();
    let me = std::process::id();
    let gen0 = cpu_seconds(me).unwrap_or(0.0);
    let wall = Instant::now();
    let send = sender.run(rate, a.duration);
    tokio::pin!(send);
    // Progress while the sender runs.
    let mut p = Progress::new(quiet);
    let send = loop {
        tokio::select! {
            s = &mut send => break s?,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                p.tick(|| format!(
                    "rate {rate:.0}/s: received {} deliveries, {} stale",
                    st.received.get(), st.stale.get()
                ));
            }
        }
    };
    // Each broadcast reaches the receivers of one room.
    let expected = send.sent * receivers / a.rooms.max(1) as u64;
    drain(st, expected, a.drain_timeout, quiet).await;
    let wall_s = wall.elapsed().as_secs_f64();
    let cpu1 = total_cpu(&a.pids).ok();
    let generator_cpu_s = cpu_seconds(me).unwrap_or(0.0) - gen0;
    let received = st.received.get();
    let lost = expected as i64 - received as i64;
    let server_cpu_s = match (cpu0, cpu1) {
        (Some(c0), Some(c1)) if !a.pids.is_empty() => Some(c1 - c0),
        _ => None,
    };
    Ok(Step {
        offered_rate: rate,
        expected,
        received,
        lost,
        loss_ratio: if expected > 0 {
            lost.max(0) as f64 / expected as f64
        } else {
            0.0
        },
        // Over the sending time, or until the last delivery if the server lagged
        // behind: a server that queues must not look faster than it delivers.
        deliveries_per_s: received as f64
            / send
                .seconds
                .max(a.duration)
                .max(st.last_rx_ns.get().saturating_sub(step_start) as f64 / 1e9)
                .max(1e-9),
        latency: Latency::from_us(&st.hist.borrow()),
        server_cpu_us_per_delivery: server_cpu_s
            .filter(|_| received > 0)
            .map(|c| c * 1e6 / received as f64),
        server_cpu_s,
        generator_cpu_s,
        wall_s,
        send,
    })
}

/// Wait until `expected` deliveries arrived, nothing arrived for a second, or
/// `timeout` seconds passed.
async fn drain(st: &PoolState, expected: u64, timeout: f64, quiet: bool) {
    let end = Instant::now() + Duration::from_secs_f64(timeout);
    let mut last = st.received.get() + st.stale.get();
    let mut last_change = Instant::now();
    let mut p = Progress::new(quiet);
    while st.received.get() < expected && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = st.received.get() + st.stale.get();
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(1) {
            break;
        }
        p.tick(|| format!("draining: {} of {expected}", st.received.get()));
    }
}

fn print(json: bool, r: &FanoutResult) -> Result<()> {
    output(json, r, |r| {
        let mut rows = vec![
            (
                "receivers",
                format!(
                    "{} connected of {} ({} failed, {} closed, {} join retries)",
                    r.connected, r.receivers, r.connect_failed, r.closed_during_run, r.join_retries
                ),
            ),
            ("origin", format!("{:?}", r.origin).to_lowercase()),
        ];
        if let Some(s) = &r.skipped {
            rows.push(("skipped", s.clone()));
        }
        for s in &r.steps {
            rows.push((
                "step",
                format!(
                    "offered {:.0}/s: {:.0} deliveries/s, lost {} of {} ({:.4}%), {}, server CPU {}",
                    s.offered_rate,
                    s.deliveries_per_s,
                    s.lost,
                    s.expected,
                    s.loss_ratio * 100.0,
                    fmt_lat(&s.latency),
                    s.server_cpu_us_per_delivery
                        .map(|c| format!("{c:.2} µs/delivery"))
                        .unwrap_or_else(|| "n/a".into())
                ),
            ));
        }
        if let Some(h) = r.highest_lossless_deliveries_per_s {
            rows.push(("highest lossless", format!("{h:.0} deliveries/s")));
        }
        if let (Some(m), Some(h)) = (r.max_p99_ms, r.highest_within_p99_deliveries_per_s) {
            rows.push((
                "lossless, p99 in bound",
                format!("{h:.0} deliveries/s (p99 <= {m} ms)"),
            ));
        }
        if let Some(e) = &r.first_error {
            rows.push(("first error", e.clone()));
        }
        print_table("fan-out", &rows);
    })
}
