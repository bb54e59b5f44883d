//! `idle`: memory a server spends per held, idle connection.
//!
//! RSS of the server PIDs is read before opening anything and again once all
//! connections are established and a settle time has passed; the difference
//! divided by the number of connections is the cost of one connection
//! (Engine.IO session, Socket.IO socket, WebSocket buffers, kernel-side socket
//! memory is not in RSS).

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::IdleArgs;
use crate::pool::{PoolState, spawn_receivers, targets, wait_connected};
use crate::procstat::total_rss;
use crate::report::{output, print_table};

#[derive(Serialize)]
struct IdleResult {
    mode: &'static str,
    urls: Vec<String>,
    requested: usize,
    connected: u64,
    failed: u64,
    first_error: Option<String>,
    connect_seconds: f64,
    pids: Vec<u32>,
    rss_before_bytes: u64,
    rss_after_bytes: u64,
    bytes_per_connection: Option<f64>,
    nofile_limit: u64,
}

pub async fn run(a: IdleArgs, nofile: u64, json: bool, quiet: bool) -> Result<()> {
    if (a.connections as u64) + 64 > nofile {
        eprintln!(
            "warning: {} connections need more fds than the open-files limit {nofile}",
            a.connections
        );
    }
    let t = targets(&a.conn)?;
    let rss_before = total_rss(&a.pids)?;
    let st = PoolState::new();
    let start = Instant::now();
    spawn_receivers(&t, a.connections, &a.conn, None, 1, &st);
    wait_connected(&st, a.connections, quiet).await;
    let connect_seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let rss_after = total_rss(&a.pids)?;
    let connected = st.connected.get() - st.closed.get().min(st.connected.get());
    let r = IdleResult {
        mode: "idle",
        urls: a.conn.urls.clone(),
        requested: a.connections,
        connected,
        failed: st.failed.get(),
        first_error: st.first_error.borrow().clone(),
        connect_seconds,
        pids: a.pids.clone(),
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        bytes_per_connection: (!a.pids.is_empty() && connected > 0)
            .then(|| (rss_after as f64 - rss_before as f64) / connected as f64),
        nofile_limit: nofile,
    };
    output(json, &r, |r| {
        print_table(
            "idle connections",
            &[
                ("connected", format!("{} of {}", r.connected, r.requested)),
                ("failed", r.failed.to_string()),
                ("connect time", format!("{:.1} s", r.connect_seconds)),
                (
                    "server RSS",
                    format!(
                        "{:.1} MiB -> {:.1} MiB",
                        r.rss_before_bytes as f64 / 1048576.0,
                        r.rss_after_bytes as f64 / 1048576.0
                    ),
                ),
                (
                    "per connection",
                    r.bytes_per_connection
                        .map(|b| format!("{:.0} bytes ({:.2} KB)", b, b / 1000.0))
                        .unwrap_or_else(|| "n/a (no --pid)".into()),
                ),
                (
                    "first error",
                    r.first_error.clone().unwrap_or_else(|| "-".into()),
                ),
            ],
        )
    })
}
