//! Obey python-socketio's Redis manager (`--pysio-channel`, e.g. `socketio`), so a Python
//! backend with `socketio.RedisManager(url, write_only=True)` reaches our clients.
//!
//! Every node subscribes to the channel and applies each message to its LOCAL sockets only
//! (python-socketio's own servers work the same way), so nothing is delivered twice across the
//! cluster. Messages are decoded by sio-wire (`decode_py_message`): `emit`, `enter_room`,
//! `leave_room`, `disconnect`, `close_room`; legacy pickle payloads are refused, never
//! unpickled, and counted in `dropped_messages_total{reason="pickle"}`; other undecodable ones
//! in `{reason="pysio_invalid"}`.
//!
//! Differences from python-socketio, by necessity: socketioxide has no per-socket room named
//! after the socket id, so a `room` or `skip_sid` that is a socket id is matched against local
//! socket ids here; `emit` `data` is one argument (python-socketio 5.14 semantics, `None` = no
//! argument); emits asking for a callback are delivered without it (the ack would have to
//! travel back to the Python host). An emit into a history room (`--history`) is delivered
//! without an offset and counted in `history_bypassed_total` (on each node, as each applies it).
use std::{str::FromStr, sync::Arc, time::Duration};

use anyhow::Context as _;
use fred::prelude::*;
use serde::{Serialize, ser::SerializeTuple};
use sio_wire::{PyManagerMessage, WireError, decode_py_message};
use socketioxide::{SocketIo, adapter::Adapter, extract::SocketRef, socket::Sid};
use tokio::sync::broadcast::error::RecvError;

use crate::{state::Gateway, warn_limit::WarnLimit};

/// Zero event arguments (`emit("event")`): socketioxide spreads tuples.
struct NoArgs;

impl Serialize for NoArgs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_tuple(0)?.end()
    }
}

/// Subscribe to `--pysio-channel` (if set) and apply its messages; returns once subscribed.
pub async fn start<A: Adapter>(gw: &Arc<Gateway>, io: &SocketIo<A>) -> anyhow::Result<()> {
    let Some(channel) = gw.config.pysio_channel.clone() else {
        return Ok(());
    };
    let url = gw
        .config
        .redis
        .clone()
        .or_else(|| gw.config.upstream.redis.clone())
        .context("--pysio-channel needs --redis (or --upstream-redis)")?;
    let sub =
        crate::redis_client::subscriber(&url).context("building the python-socketio subscriber")?;
    sub.init()
        .await
        .with_context(|| format!("connecting to Redis {url} for --pysio-channel"))?;
    // fred re-subscribes after a reconnection.
    sub.manage_subscriptions();
    let rx = sub.message_rx();
    sub.subscribe(channel.as_str())
        .await
        .with_context(|| format!("subscribing to {channel}"))?;
    tracing::info!(%channel, "obeying python-socketio manager messages");
    let (gw, io) = (gw.clone(), io.clone());
    tokio::spawn(async move {
        // Keeps the client (and its subscription) alive as long as the loop runs.
        let _sub = sub;
        run(gw, io, rx).await;
    });
    Ok(())
}

async fn run<A: Adapter>(
    gw: Arc<Gateway>,
    io: SocketIo<A>,
    mut rx: tokio::sync::broadcast::Receiver<fred::types::Message>,
) {
    let max_message = gw.config.max_redis_message();
    let dropped = |reason: &str| {
        gw.metrics
            .dropped_messages_total
            .with_label_values(&[reason])
            .inc()
    };
    loop {
        let msg = match rx.recv().await {
            Ok(m) => m,
            Err(RecvError::Lagged(n)) => {
                gw.metrics
                    .dropped_messages_total
                    .with_label_values(&["pysio_lagged"])
                    .inc_by(n);
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(bytes) = msg.value.as_bytes() else {
            dropped("pysio_invalid");
            continue;
        };
        // Before decoding: a Redis writer's 15 MB message cost each node ~300 MB (review 7).
        if bytes.len() > max_message {
            dropped("pysio_too_large");
            static WARN: WarnLimit = WarnLimit::new(Duration::from_secs(10));
            if let Some(held_back) = WARN.allow() {
                tracing::warn!(
                    bytes = bytes.len(),
                    limit = max_message,
                    held_back,
                    "python-socketio message over the size limit, dropped (counted in dropped_messages_total{{reason=\"pysio_too_large\"}}; warned at most every 10 s)"
                );
            }
            continue;
        }
        match decode_py_message(bytes) {
            Ok(m) => apply(&gw, &io, m).await,
            Err(WireError::Pickle) => {
                dropped("pickle");
                tracing::debug!("python-socketio pickle message refused (python-socketio < 5.14?)");
            }
            Err(e) => {
                dropped("pysio_invalid");
                tracing::debug!(error = %e, "undecodable python-socketio message");
            }
        }
    }
}

/// The local socket whose id is `s`, if any.
fn local_socket<A: Adapter>(
    ns: &socketioxide::operators::BroadcastOperators<A>,
    s: &str,
) -> Option<SocketRef<A>> {
    Sid::from_str(s).ok().and_then(|sid| ns.get_socket(sid))
}

async fn apply<A: Adapter>(gw: &Gateway, io: &SocketIo<A>, m: PyManagerMessage) {
    let ns_of = |nsp: &str| {
        let ns = io.of(nsp);
        if ns.is_none() {
            tracing::trace!(
                nsp,
                "python-socketio message for a namespace not served here"
            );
        }
        ns
    };
    match m {
        PyManagerMessage::Emit {
            event,
            data,
            namespace,
            room,
            skip_sid,
            callback,
            ..
        } => {
            let Some(ns) = ns_of(&namespace) else { return };
            if callback.is_some() {
                tracing::debug!(%event, "python-socketio emit with callback: delivered without ack");
            }
            // Rooms that are socket ids address that socket directly.
            let (mut direct, mut rooms) = (Vec::new(), Vec::new());
            for r in room.iter().flatten() {
                match local_socket(&ns, r) {
                    Some(s) => direct.push(s),
                    None => rooms.push(r.clone()),
                }
            }
            // Into a history room: delivered without an offset (python-socketio cannot append),
            // counted like the other broadcasts that bypass the history (see `history`).
            if rooms.iter().any(|r| gw.history.spec(r).is_some()) {
                gw.history.metrics.bypassed.inc();
            }
            let res = if skip_sid.is_empty() && direct.is_empty() {
                // The common case: one local broadcast.
                let op = ns.local();
                let op = match &room {
                    None => op,
                    Some(_) if rooms.is_empty() => return,
                    Some(_) => op.to(rooms),
                };
                match data {
                    rmpv::Value::Nil => op.emit(&event, &NoArgs).await,
                    d => op.emit(&event, &d).await,
                }
                .map(|_| ())
                .map_err(|e| e.to_string())
            } else {
                // Socket-level targeting: list the local recipients once (O(recipients)).
                let mut targets = match &room {
                    None => ns.local().sockets(),
                    Some(_) if rooms.is_empty() => Vec::new(),
                    Some(_) => ns.local().to(rooms).sockets(),
                };
                targets.extend(direct);
                targets.sort_by_key(|s| s.id);
                targets.dedup_by_key(|s| s.id);
                // Parsed once: linear in skip_sid + targets (a string per comparison made a
                // 200k-entry skip_sid from Redis cost ~10^9 allocations on 5k sockets). An
                // entry that is no socket id skips nobody.
                let skip: std::collections::HashSet<Sid> =
                    skip_sid.iter().filter_map(|k| k.parse().ok()).collect();
                let mut failed = 0usize;
                for s in targets.iter().filter(|s| !skip.contains(&s.id)) {
                    let r = match &data {
                        rmpv::Value::Nil => s.emit(&event, &NoArgs),
                        d => s.emit(&event, d),
                    };
                    if r.is_err() {
                        failed += 1;
                    }
                }
                if failed == 0 {
                    Ok(())
                } else {
                    Err(format!("{failed} local sockets could not take the event"))
                }
            };
            match res {
                Ok(()) => gw
                    .metrics
                    .broadcasts_total
                    .with_label_values(&["pysio"])
                    .inc(),
                Err(e) => {
                    gw.metrics.dropped_send_failed.inc();
                    tracing::debug!(error = %e, %event, "python-socketio emit not fully delivered");
                }
            }
        }
        PyManagerMessage::EnterRoom {
            sid,
            room,
            namespace,
            ..
        } => {
            if let Some(s) = ns_of(&namespace).and_then(|ns| local_socket(&ns, &sid)) {
                if let Some(admin) = &gw.admin
                    && !s.rooms().iter().any(|r| *r == room)
                {
                    admin.room_joined(&namespace, &room, s.id.as_str());
                }
                s.join(room.clone());
                gw.ensure_rooms(&namespace, vec![room]).await;
            }
        }
        PyManagerMessage::LeaveRoom {
            sid,
            room,
            namespace,
            ..
        } => {
            if let Some(s) = ns_of(&namespace).and_then(|ns| local_socket(&ns, &sid)) {
                if let Some(admin) = &gw.admin
                    && s.rooms().iter().any(|r| *r == room)
                {
                    admin.room_left(&namespace, &room, s.id.as_str());
                }
                s.leave(room);
                gw.rooms_changed(&namespace);
            }
        }
        PyManagerMessage::Disconnect { sid, namespace, .. } => {
            if let Some(s) = ns_of(&namespace).and_then(|ns| local_socket(&ns, &sid))
                && let Err(e) = s.disconnect()
            {
                tracing::debug!(error = %e, "python-socketio disconnect");
            }
        }
        PyManagerMessage::CloseRoom {
            room, namespace, ..
        } => {
            if let Some(ns) = ns_of(&namespace) {
                if let Err(e) = ns.local().leave(room).await {
                    tracing::debug!(error = %e, "python-socketio close_room");
                }
                gw.rooms_changed(&namespace);
            }
        }
        // Acks travelling between Python hosts: not ours.
        PyManagerMessage::Callback { .. } => {}
    }
}
