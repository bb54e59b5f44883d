//! The client conventions sio-bench drives, as plain socketioxide handlers (the same as
//! bench/node-server.mjs and the gateway's relay):
//! - `join(room, ack)` / `leave(room, ack)`: this socket joins / leaves `room`; ack `{ok:true}`;
//! - `publish({room?, event, data})`: `event` with `data` to the room (or the namespace),
//!   cluster-wide through the adapter, the sender excluded.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Data, SocketRef, TryData};

/// The `publish` argument.
#[derive(Debug, Deserialize)]
pub struct Publish {
    #[serde(default)]
    room: Option<String>,
    event: String,
    #[serde(default)]
    data: Value,
}

/// Connect handler of the served namespace: installs the three events.
pub async fn on_connect<A: Adapter>(s: SocketRef<A>) {
    s.on("join", join::<A>);
    s.on("leave", leave::<A>);
    s.on("publish", publish::<A>);
}

async fn join<A: Adapter>(s: SocketRef<A>, TryData(room): TryData<String>, ack: AckSender<A>) {
    let answer = match room {
        Ok(room) => {
            s.join(room);
            json!({ "ok": true })
        }
        Err(_) => json!({ "ok": false, "error": "room must be a string" }),
    };
    // A client that asked for no ack, or went away: nothing to answer.
    let _ = ack.send(&answer);
}

async fn leave<A: Adapter>(s: SocketRef<A>, TryData(room): TryData<String>, ack: AckSender<A>) {
    if let Ok(room) = room {
        s.leave(room);
    }
    let _ = ack.send(&json!({ "ok": true }));
}

async fn publish<A: Adapter>(s: SocketRef<A>, Data(p): Data<Publish>) {
    let op = match p.room.as_deref() {
        Some(room) if !room.is_empty() => s.to(room.to_owned()),
        _ => s.broadcast(),
    };
    // Fails when the adapter cannot publish (Redis gone) or when local members' queues are
    // full (socketioxide drops the packet for them: sio-bench counts it as loss). The sender
    // gets no answer either way, as with Node's `socket.to(room).emit`. Logged once: a line
    // per failure would cost the overloaded server core more.
    if let Err(e) = op.emit(&p.event, &p.data).await
        && !FAILED.swap(true, Ordering::Relaxed)
    {
        eprintln!("socketioxide-peer: broadcast failed (further failures are not logged): {e}");
    }
}

static FAILED: AtomicBool = AtomicBool::new(false);
