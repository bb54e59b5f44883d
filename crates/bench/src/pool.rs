//! A pool of receiving connections and the state they share.
//!
//! Every connection is one task on the generator's single thread, so the shared
//! counters and the latency histogram live in an `Rc` with `Cell`/`RefCell`:
//! recording a delivery is a few non-atomic adds, no lock and no allocation.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

use crate::ConnArgs;
use crate::conn::{ConnectOpts, Event, SioConn};
use crate::frame::extract_ts;
use crate::http1::Target;
use crate::report::{new_histogram, now_ns};

/// Counters shared by all receivers.
pub struct PoolState {
    pub connected: Cell<u64>,
    pub failed: Cell<u64>,
    /// `join`s re-sent because no ack came (see [`SioConn::join`]).
    pub join_retries: Cell<u64>,
    /// Connections the server closed after they were established.
    pub closed: Cell<u64>,
    /// Deliveries with a timestamp at or after `min_ts` (the current step's).
    pub received: Cell<u64>,
    /// Deliveries sent before the current step (warm-up or a previous step).
    pub stale: Cell<u64>,
    /// Events without our timestamp marker.
    pub foreign: Cell<u64>,
    pub min_ts: Cell<u64>,
    /// Receive time (ns) of the last counted delivery of the current step.
    pub last_rx_ns: Cell<u64>,
    /// Latency in µs of the current step's deliveries.
    pub hist: RefCell<Histogram<u64>>,
    pub first_error: RefCell<Option<String>>,
}

impl PoolState {
    pub fn new() -> Rc<Self> {
        Rc::new(Self {
            connected: Cell::new(0),
            failed: Cell::new(0),
            join_retries: Cell::new(0),
            closed: Cell::new(0),
            received: Cell::new(0),
            stale: Cell::new(0),
            foreign: Cell::new(0),
            min_ts: Cell::new(0),
            last_rx_ns: Cell::new(0),
            hist: RefCell::new(new_histogram()),
            first_error: RefCell::new(None),
        })
    }

    fn error(&self, e: impl std::fmt::Display) {
        let mut f = self.first_error.borrow_mut();
        if f.is_none() {
            *f = Some(e.to_string());
        }
    }

    /// Start a new measurement: deliveries sent before `ts` no longer count.
    pub fn reset_step(&self, ts: u64) {
        self.min_ts.set(ts);
        self.received.set(0);
        self.stale.set(0);
        self.last_rx_ns.set(ts);
        self.hist.borrow_mut().reset();
    }

    fn on_event(&self, frame: &[u8]) {
        match extract_ts(frame) {
            Some(ts) if ts >= self.min_ts.get() => {
                let now = now_ns();
                let lat_us = now.saturating_sub(ts) / 1000;
                self.last_rx_ns.set(now);
                self.received.set(self.received.get() + 1);
                // Out-of-range values are clamped rather than dropped.
                self.hist.borrow_mut().saturating_record(lat_us.max(1));
            }
            Some(_) => self.stale.set(self.stale.get() + 1),
            None => self.foreign.set(self.foreign.get() + 1),
        }
    }
}

pub fn targets(c: &ConnArgs) -> anyhow::Result<Vec<Target>> {
    c.urls.iter().map(|u| Target::parse(u)).collect()
}

pub fn connect_opts(c: &ConnArgs) -> ConnectOpts {
    ConnectOpts {
        nsp: if c.nsp.starts_with('/') {
            c.nsp.clone()
        } else {
            format!("/{}", c.nsp)
        },
        auth: c.auth.clone(),
    }
}

/// The room of receiver (or broadcast) `i`: `room`, or `<room>-<i mod rooms>` for several.
pub fn room_of(room: Option<&str>, rooms: usize, i: usize) -> Option<String> {
    match room {
        Some(r) if rooms > 1 => Some(format!("{r}-{}", i % rooms)),
        r => r.map(str::to_owned),
    }
}

/// Spawn `n` receivers spread round-robin over `targets`, at most `concurrency`
/// handshakes at a time; each joins `room` (if any; with `rooms` > 1, receiver i joins
/// `<room>-<i mod rooms>`) and then counts deliveries until the server closes it. Returns
/// immediately; watch `state.connected`/`failed`.
pub fn spawn_receivers(
    targets: &[Target],
    n: usize,
    c: &ConnArgs,
    room: Option<String>,
    rooms: usize,
    state: &Rc<PoolState>,
) {
    let sem = Rc::new(Semaphore::new(c.concurrency.max(1)));
    let opts = Rc::new(connect_opts(c));
    let timeout = Duration::from_secs(c.connect_timeout);
    for i in 0..n {
        let t = targets[i % targets.len()].clone();
        let room = Rc::new(room_of(room.as_deref(), rooms, i));
        let (sem, opts, st) = (sem.clone(), opts.clone(), state.clone());
        tokio::task::spawn_local(async move {
            let Ok(permit) = sem.acquire().await else {
                return;
            };
            let stage = Cell::new("handshake");
            let setup = async {
                let mut c = SioConn::connect(&t, &opts).await?;
                if let Some(r) = room.as_deref() {
                    stage.set("join ack");
                    let n = c.join(r, Duration::from_secs(2)).await?;
                    st.join_retries.set(st.join_retries.get() + u64::from(n));
                }
                anyhow::Ok(c)
            };
            let mut c = match tokio::time::timeout(timeout, setup).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    st.failed.set(st.failed.get() + 1);
                    st.error(format!("{}: {} failed: {e:#}", t.host, stage.get()));
                    return;
                }
                Err(_) => {
                    st.failed.set(st.failed.get() + 1);
                    st.error(format!("{}: {} timed out", t.host, stage.get()));
                    return;
                }
            };
            drop(permit);
            st.connected.set(st.connected.get() + 1);
            loop {
                match c.next_event().await {
                    Ok(Event::Delivery(f)) => st.on_event(f),
                    Ok(Event::Closed) => break,
                    Ok(_) => {}
                    Err(e) => {
                        st.error(format!("{}: {e}", t.host));
                        break;
                    }
                }
            }
            st.closed.set(st.closed.get() + 1);
        });
    }
}

/// Wait until every receiver is either connected or failed, printing progress.
pub async fn wait_connected(state: &PoolState, n: usize, quiet: bool) {
    let mut p = crate::report::Progress::new(quiet);
    while ((state.connected.get() + state.failed.get()) as usize) < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
        p.tick(|| {
            format!(
                "connecting: {} ok, {} failed of {n}",
                state.connected.get(),
                state.failed.get()
            )
        });
    }
}
