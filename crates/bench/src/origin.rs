//! The broadcast sources of `fanout`, paced at a fixed rate on their own thread.
//!
//! - emitter: a backend `PUBLISH`ing the @socket.io/redis-emitter packet;
//! - client: one extra Socket.IO client sending `publish {room?, event, data}`
//!   (the gateway's relay; bench/node-server.mjs implements the same);
//! - http: `POST /api/v1/emit {nsp, rooms, except, event, data}`.
//!
//! Each message carries its send time (`"bts":"<ns since epoch>"`). The sender
//! runs on a separate OS thread with its own runtime so a saturated receive
//! loop cannot delay the offered load (which would hide loss as latency).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use fred::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::conn::{SioConn, SioWriter};
use crate::http1::{HttpClient, Target};
use crate::pool::connect_opts;
use crate::report::now_ns;
use crate::{FanoutArgs, Origin, emitter, frame};

/// What one paced run of the sender did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SendStats {
    pub sent: u64,
    pub seconds: f64,
    pub errors: u64,
    pub first_error: Option<String>,
}

struct Job {
    rate: f64,
    duration: f64,
    reply: oneshot::Sender<SendStats>,
}

/// Handle to the sender thread.
pub struct Sender {
    jobs: mpsc::UnboundedSender<Job>,
}

/// Configuration copied out of the CLI for the sender thread.
struct Cfg {
    origin: Origin,
    target: Target,
    conn: crate::ConnArgs,
    nsp: String,
    redis: Option<String>,
    room: Option<String>,
    rooms: usize,
    sharded: bool,
    event: String,
    pad: usize,
    api_key: Option<String>,
}

enum Sink {
    Emitter {
        client: Client,
        /// One (channel, rooms) target per room, used in turn (one for a single room or none).
        targets: Vec<(String, Vec<String>)>,
    },
    Client {
        w: SioWriter,
        pings: mpsc::UnboundedReceiver<()>,
        /// `{"room":"r",` or `{` — the fixed start of the publish argument.
        head: Vec<u8>,
    },
    Http {
        c: HttpClient,
        head: Vec<u8>,
    },
}

impl Sender {
    /// Start the sender thread and set up its connection. `Ok(None)` means the
    /// origin is not available on this server (HTTP API answered 404): skip it.
    pub fn start(a: &FanoutArgs) -> Result<Option<Sender>> {
        let cfg = Cfg {
            origin: a.origin,
            target: Target::parse(&a.conn.urls[0])?,
            conn: a.conn.clone(),
            nsp: connect_opts(&a.conn).nsp,
            redis: a.redis.clone(),
            room: a.room.clone(),
            rooms: a.rooms.max(1),
            sharded: a.sharded,
            event: a.event.clone(),
            pad: a.payload_bytes,
            api_key: a.api_key.clone(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<bool>>();
        let (jobs, mut job_rx) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("sender".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    let mut sink = match Sink::open(&cfg).await {
                        Ok(Some(s)) => s,
                        Ok(None) => {
                            let _ = ready_tx.send(Ok(false));
                            return;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(true));
                    let mut buf = Vec::with_capacity(1024);
                    let mut seq = 0u64;
                    loop {
                        tokio::select! {
                            job = job_rx.recv() => {
                                let Some(job) = job else { break };
                                let st = sink
                                    .paced(&cfg, job.rate, job.duration, &mut buf, &mut seq)
                                    .await;
                                let _ = job.reply.send(st);
                            }
                            // Between runs the client sender still answers heartbeats.
                            () = sink.ping() => {
                                let _ = sink.pong().await;
                            }
                        }
                    }
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok(true)) => Ok(Some(Sender { jobs })),
            Ok(Ok(false)) => Ok(None),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("sender thread ended during setup"),
        }
    }

    /// Send at `rate` per second for `duration` seconds; resolves when done.
    pub async fn run(&self, rate: f64, duration: f64) -> Result<SendStats> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                rate,
                duration,
                reply,
            })
            .map_err(|_| anyhow!("sender thread is gone"))?;
        rx.await.map_err(|_| anyhow!("sender thread is gone"))
    }
}

impl Sink {
    async fn open(cfg: &Cfg) -> Result<Option<Sink>> {
        let rooms: Vec<String> = cfg.room.iter().cloned().collect();
        let nsp = &cfg.nsp;
        match cfg.origin {
            Origin::Emitter => {
                let url = cfg
                    .redis
                    .as_deref()
                    .ok_or_else(|| anyhow!("--origin emitter needs --redis URL"))?;
                let client = Builder::from_config(Config::from_url(url)?).build()?;
                client.init().await.context("connecting to Redis")?;
                let targets = (0..cfg.rooms)
                    .map(|i| {
                        let rooms: Vec<String> =
                            crate::pool::room_of(cfg.room.as_deref(), cfg.rooms, i)
                                .into_iter()
                                .collect();
                        (emitter::channel(nsp, &rooms), rooms)
                    })
                    .collect();
                Ok(Some(Sink::Emitter { client, targets }))
            }
            Origin::Client => {
                let c = SioConn::connect(&cfg.target, &connect_opts(&cfg.conn))
                    .await
                    .context("connecting the sender socket")?;
                let (w, pings) = c.split();
                let mut head = b"{".to_vec();
                if let Some(r) = &cfg.room {
                    head.extend_from_slice(b"\"room\":");
                    head.extend_from_slice(serde_json::to_string(r)?.as_bytes());
                    head.push(b',');
                }
                head.extend_from_slice(b"\"event\":");
                head.extend_from_slice(serde_json::to_string(&cfg.event)?.as_bytes());
                head.extend_from_slice(b",\"data\":");
                Ok(Some(Sink::Client { w, pings, head }))
            }
            Origin::Http => {
                let head = format!(
                    "{{\"nsp\":{},\"rooms\":{},\"except\":[],\"event\":{},\"data\":",
                    serde_json::to_string(nsp)?,
                    serde_json::to_string(&rooms)?,
                    serde_json::to_string(&cfg.event)?
                )
                .into_bytes();
                let mut c = HttpClient::new(cfg.target.clone(), cfg.api_key.clone());
                // Probe once with an event nobody listens to, to a room nobody is in:
                // 404 means there is no API on this server.
                let probe = format!(
                    "{{\"nsp\":{},\"rooms\":[\"sio-bench-probe\"],\"except\":[],\
                     \"event\":\"sio-bench-probe\",\"data\":null}}",
                    serde_json::to_string(nsp)?
                );
                let (status, body) = c.post_json("/api/v1/emit", probe.as_bytes()).await?;
                match status {
                    200..=299 => Ok(Some(Sink::Http { c, head })),
                    404 => Ok(None),
                    s => bail!("POST /api/v1/emit answered {s}: {body}"),
                }
            }
        }
    }

    /// Resolves when the server pinged the client sender; never for other origins
    /// or once the sender socket is closed.
    async fn ping(&mut self) {
        match self {
            Sink::Client { pings, .. } => {
                if pings.recv().await.is_none() {
                    std::future::pending::<()>().await
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }

    async fn pong(&mut self) -> Result<()> {
        match self {
            Sink::Client { w, .. } => w.pong().await,
            _ => Ok(()),
        }
    }

    async fn send_one(&mut self, cfg: &Cfg, buf: &mut Vec<u8>, seq: u64) -> Result<()> {
        let ts = now_ns();
        buf.clear();
        match self {
            Sink::Emitter { client, targets } => {
                let (channel, rooms) = &targets[(seq as usize) % targets.len()];
                let write = |o: &mut Vec<u8>| emitter::write_payload(o, ts, seq, cfg.pad);
                if cfg.sharded {
                    emitter::encode_sharded_broadcast(buf, &cfg.nsp, rooms, &cfg.event, 1, write);
                } else {
                    emitter::encode_broadcast(buf, &cfg.nsp, rooms, &cfg.event, 1, write);
                }
                // fred takes ownership of the bytes; one copy per broadcast (not per delivery).
                let payload = bytes::Bytes::copy_from_slice(buf);
                let _: i64 = if cfg.sharded {
                    client.spublish(channel.as_str(), payload).await?
                } else {
                    client.publish(channel.as_str(), payload).await?
                };
            }
            Sink::Client { w, head, .. } => {
                w.emit_with(|o| {
                    o.extend_from_slice(b"[\"publish\",");
                    o.extend_from_slice(head);
                    frame::write_payload(o, ts, seq, cfg.pad);
                    o.extend_from_slice(b"}]");
                })
                .await?;
            }
            Sink::Http { c, head } => {
                buf.extend_from_slice(head);
                frame::write_payload(buf, ts, seq, cfg.pad);
                buf.push(b'}');
                let (status, body) = c.post_json("/api/v1/emit", buf).await?;
                if !(200..300).contains(&status) {
                    bail!("POST /api/v1/emit answered {status}: {body}");
                }
            }
        }
        Ok(())
    }

    /// Send `rate × duration` messages, each at its due time (catching up in a
    /// burst if behind), answering heartbeats of the client sender in between.
    async fn paced(
        &mut self,
        cfg: &Cfg,
        rate: f64,
        duration: f64,
        buf: &mut Vec<u8>,
        seq: &mut u64,
    ) -> SendStats {
        let total = (rate * duration).round().max(1.0) as u64;
        let start = Instant::now();
        let mut st = SendStats::default();
        let mut i = 0u64;
        while i < total {
            let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
            while i < due {
                *seq += 1;
                i += 1;
                match self.send_one(cfg, buf, *seq).await {
                    Ok(()) => st.sent += 1,
                    Err(e) => {
                        st.errors += 1;
                        st.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            if i >= total {
                break;
            }
            let next_at =
                tokio::time::Instant::from_std(start) + Duration::from_secs_f64(i as f64 / rate);
            if let Sink::Client { w, pings, .. } = self {
                tokio::select! {
                    biased;
                    Some(()) = pings.recv() => {
                        if let Err(e) = w.pong().await {
                            st.errors += 1;
                            st.first_error.get_or_insert_with(|| format!("pong: {e:#}"));
                        }
                    }
                    _ = tokio::time::sleep_until(next_at) => {}
                }
            } else {
                tokio::time::sleep_until(next_at).await;
            }
        }
        st.seconds = start.elapsed().as_secs_f64();
        st
    }
}
