//! `connect`: handshake rate. Each handshake is a TCP connect, the WebSocket
//! upgrade, the Engine.IO open packet and the Socket.IO namespace connect ack;
//! the connection is then dropped. `--concurrency` handshakes run at once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::ConnectArgs;
use crate::conn::SioConn;
use crate::pool::{connect_opts, targets};
use crate::report::{Latency, Progress, fmt_lat, new_histogram, output, print_table};

#[derive(Serialize)]
struct ConnectResult {
    mode: &'static str,
    urls: Vec<String>,
    count: usize,
    concurrency: usize,
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    seconds: f64,
    handshakes_per_s: f64,
    latency: Latency,
}

pub async fn run(a: ConnectArgs, json: bool, quiet: bool) -> Result<()> {
    let t = Rc::new(targets(&a.conn)?);
    let opts = Rc::new(connect_opts(&a.conn));
    let next = Rc::new(Cell::new(0usize));
    let ok = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0u64));
    let first_error: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let hist = Rc::new(RefCell::new(new_histogram()));
    let timeout = Duration::from_secs(a.conn.connect_timeout);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..a.conn.concurrency.max(1).min(a.count.max(1)) {
        let (t, opts, next, ok, failed, fe, hist) = (
            t.clone(),
            opts.clone(),
            next.clone(),
            ok.clone(),
            failed.clone(),
            first_error.clone(),
            hist.clone(),
        );
        let count = a.count;
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let i = next.get();
                if i >= count {
                    break;
                }
                next.set(i + 1);
                let target = &t[i % t.len()];
                let t0 = Instant::now();
                match tokio::time::timeout(timeout, SioConn::connect(target, &opts)).await {
                    Ok(Ok(conn)) => {
                        hist.borrow_mut()
                            .saturating_record(t0.elapsed().as_micros().max(1) as u64);
                        ok.set(ok.get() + 1);
                        drop(conn);
                    }
                    Ok(Err(e)) => {
                        failed.set(failed.get() + 1);
                        fe.borrow_mut().get_or_insert_with(|| format!("{e:#}"));
                    }
                    Err(_) => {
                        failed.set(failed.get() + 1);
                        fe.borrow_mut()
                            .get_or_insert_with(|| "handshake timed out".into());
                    }
                }
            }
        }));
    }
    let mut p = Progress::new(quiet);
    while workers.iter().any(|w| !w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        p.tick(|| format!("handshakes: {} ok, {} failed", ok.get(), failed.get()));
    }
    let seconds = start.elapsed().as_secs_f64();
    let r = ConnectResult {
        mode: "connect",
        urls: a.conn.urls.clone(),
        count: a.count,
        concurrency: a.conn.concurrency,
        ok: ok.get(),
        failed: failed.get(),
        first_error: first_error.borrow().clone(),
        seconds,
        handshakes_per_s: ok.get() as f64 / seconds,
        latency: Latency::from_us(&hist.borrow()),
    };
    output(json, &r, |r| {
        print_table(
            "connection rate",
            &[
                ("handshakes", format!("{} ok, {} failed", r.ok, r.failed)),
                ("rate", format!("{:.0} /s", r.handshakes_per_s)),
                ("latency", fmt_lat(&r.latency)),
                (
                    "first error",
                    r.first_error.clone().unwrap_or_else(|| "-".into()),
                ),
            ],
        )
    })
}
