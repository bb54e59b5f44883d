//! A small socketioxide server on the Redis adapter, used by the cross-process tests in
//! `tests/js/adapter-*.test.mjs` to prove interoperability with Node.js socket.io nodes and
//! `@socket.io/redis-emitter`. Test-only hooks are socket events (see `on_connect`); `GET /stats`
//! serves the adapter counters and health as JSON.
//!
//! Run: `cargo run -p sio-redis-adapter --example test-node -- --port 3001 --redis redis://127.0.0.1:6379`

use std::time::Duration;

use axum::{Json, Router, extract::State as AxState, routing::get};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sio_redis_adapter::{
    AdapterConfig, PubSubMode, RedisAdapter, RedisAdapterCtr, RedisAdapterHandle, SubscriptionMode,
};
use socketioxide::{
    SocketIo,
    adapter::Emitter,
    extract::{AckSender, Data, SocketRef, State},
};

type A = RedisAdapter<Emitter>;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 3000)]
    port: u16,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Request timeout in milliseconds (fetchSockets, allRooms, serverSideEmit).
    #[arg(long, default_value_t = 5000)]
    request_timeout: u64,
    /// Room-channel reconciliation interval in milliseconds.
    #[arg(long, default_value_t = 200)]
    room_sync_ms: u64,
    /// `classic`, or `sharded` with a subscription mode: `sharded` (dynamic),
    /// `sharded-dynamic-private`, `sharded-static`.
    #[arg(long, default_value = "classic")]
    pubsub: String,
}

fn str_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn on_connect(socket: SocketRef<A>) {
    socket.on(
        "join",
        async |s: SocketRef<A>,
               Data(room): Data<String>,
               State(h): State<RedisAdapterHandle>,
               ack: AckSender<A>| {
            s.join(room);
            let ok = h.sync_rooms(s.ns()).await.is_ok();
            let _ = ack.send(&json!({ "ok": ok }));
        },
    );
    socket.on(
        "leave",
        async |s: SocketRef<A>,
               Data(room): Data<String>,
               State(h): State<RedisAdapterHandle>,
               ack: AckSender<A>| {
            s.leave(room);
            let ok = h.sync_rooms(s.ns()).await.is_ok();
            let _ = ack.send(&json!({ "ok": ok }));
        },
    );
    socket.on("rooms", async |s: SocketRef<A>, ack: AckSender<A>| {
        let rooms: Vec<String> = s.rooms().into_iter().map(|r| r.to_string()).collect();
        let _ = ack.send(&rooms);
    });
    // {room?, except?: [..], event, data, fromSocket?: bool}
    socket.on(
        "to-room",
        async |s: SocketRef<A>, io: SocketIo<A>, Data(v): Data<Value>, ack: AckSender<A>| {
            let event = v["event"].as_str().unwrap_or("msg").to_owned();
            let data = v["data"].clone();
            let except = str_list(&v, "except");
            let res = if v["fromSocket"].as_bool() == Some(true) {
                let mut op = s.broadcast();
                if let Some(room) = v["room"].as_str() {
                    op = op.to(room.to_owned());
                }
                op.except(except).emit(&event, &data).await
            } else {
                let mut op = io.broadcast();
                if let Some(room) = v["room"].as_str() {
                    op = op.to(room.to_owned());
                }
                op.except(except).emit(&event, &data).await
            };
            let _ =
                ack.send(&json!({ "ok": res.is_ok(), "error": res.err().map(|e| e.to_string()) }));
        },
    );
    // {room?} -> { ids (all nodes, via the handle), sioIds (io.fetch_sockets()), complete }
    socket.on(
        "fetch",
        async |s: SocketRef<A>,
               io: SocketIo<A>,
               Data(v): Data<Value>,
               State(h): State<RedisAdapterHandle>,
               ack: AckSender<A>| {
            let rooms: Vec<String> = v["room"]
                .as_str()
                .map(|r| vec![r.to_owned()])
                .unwrap_or_default();
            let all = h.fetch_sockets(s.ns(), &rooms, &[]).await;
            let op = match rooms.first() {
                Some(r) => io.to(r.clone()),
                None => io.broadcast(),
            };
            // Real ids (a Node peer's socket comes back under a stand-in Sid).
            let sio: Vec<String> = op
                .fetch_sockets()
                .await
                .map(|v| v.into_iter().map(|r| h.socket_id(r.data().id)).collect())
                .unwrap_or_default();
            let _ = match all {
                Ok(c) => ack.send(&json!({
                    "ids": c.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
                    "rooms": c.items.iter().map(|s| s.rooms.clone()).collect::<Vec<_>>(),
                    "sioIds": sio,
                    "complete": c.complete(),
                })),
                Err(e) => ack.send(&json!({ "error": e.to_string() })),
            };
        },
    );
    socket.on("all-rooms", async |io: SocketIo<A>, ack: AckSender<A>| {
        let rooms: Vec<String> = io
            .broadcast()
            .rooms()
            .await
            .map(|r| r.into_iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        let _ = ack.send(&rooms);
    });
    // [event, ...args] -> { responses, complete }
    socket.on(
        "server-side-emit",
        async |s: SocketRef<A>,
               Data(v): Data<Vec<Value>>,
               State(h): State<RedisAdapterHandle>,
               ack: AckSender<A>| {
            let _ = match h.server_side_emit_with_ack(s.ns(), &v).await {
                Ok(c) => ack.send(&json!({ "responses": c.items, "complete": c.complete() })),
                Err(e) => ack.send(&json!({ "error": e.to_string() })),
            };
        },
    );
    // {event, data, timeoutMs, room?} -> [ack values]
    socket.on(
        "broadcast-ack",
        async |io: SocketIo<A>, Data(v): Data<Value>, ack: AckSender<A>| {
            let event = v["event"].as_str().unwrap_or("ask").to_owned();
            let timeout = Duration::from_millis(v["timeoutMs"].as_u64().unwrap_or(2000));
            let mut op = io.broadcast().timeout(timeout);
            if let Some(room) = v["room"].as_str() {
                op = op.to(room.to_owned());
            }
            match op.emit_with_ack::<_, Value>(&event, &v["data"]).await {
                Ok(stream) => {
                    let acks: Vec<Value> = stream.filter_map(async |(_, r)| r.ok()).collect().await;
                    let _ = ack.send(&acks);
                }
                Err(e) => {
                    let _ = ack.send(&json!({ "error": e.to_string() }));
                }
            }
        },
    );
    // {room, from?} : socketsJoin(room) on the sockets of `from` (or all)
    socket.on(
        "join-all",
        async |io: SocketIo<A>, Data(v): Data<Value>, ack: AckSender<A>| {
            let room = v["room"].as_str().unwrap_or("joined").to_owned();
            let op = match v["from"].as_str() {
                Some(f) => io.to(f.to_owned()),
                None => io.broadcast(),
            };
            let res = op.join(room).await;
            let _ = ack.send(&json!({ "ok": res.is_ok() }));
        },
    );
    // {room, from?} : socketsLeave(room) on the sockets of `from` (or all)
    socket.on(
        "leave-all",
        async |io: SocketIo<A>, Data(v): Data<Value>, ack: AckSender<A>| {
            let room = v["room"].as_str().unwrap_or("joined").to_owned();
            let op = match v["from"].as_str() {
                Some(f) => io.to(f.to_owned()),
                None => io.broadcast(),
            };
            let res = op.leave(room).await;
            let _ = ack.send(&json!({ "ok": res.is_ok() }));
        },
    );
    // Broadcast a binary payload to everyone: [bytes 1,2,3, "text"].
    socket.on("bin-all", async |io: SocketIo<A>, ack: AckSender<A>| {
        let data = (bytes::Bytes::from_static(&[1, 2, 3]), "text");
        let res = io.broadcast().emit("bin", &data).await;
        let _ = ack.send(&json!({ "ok": res.is_ok() }));
    });
    // {target, room?, disconnect?}: RemoteSocket operations on a socket of another node,
    // found with io.fetch_sockets() -> { found, rooms }
    socket.on(
        "remote-ops",
        async |io: SocketIo<A>,
               Data(v): Data<Value>,
               State(h): State<RedisAdapterHandle>,
               ack: AckSender<A>| {
            let target = v["target"].as_str().unwrap_or_default().to_owned();
            let sockets = io.fetch_sockets().await.unwrap_or_default();
            let Some(remote) = sockets
                .into_iter()
                .find(|s| h.socket_id(s.data().id) == target)
            else {
                let _ = ack.send(&json!({ "found": false }));
                return;
            };
            let _ = remote.emit("remote-hello", &"hi").await;
            if let Some(room) = v["room"].as_str() {
                let _ = remote.join(room.to_owned()).await;
            }
            let rooms: Vec<String> = remote
                .rooms()
                .await
                .map(|r| r.into_iter().map(|r| r.to_string()).collect())
                .unwrap_or_default();
            if v["disconnect"].as_bool() == Some(true) {
                let _ = remote.disconnect().await;
            }
            let _ = ack.send(&json!({ "found": true, "rooms": rooms }));
        },
    );
    // {room?} : disconnectSockets
    socket.on(
        "disconnect-all",
        async |io: SocketIo<A>, Data(v): Data<Value>, ack: AckSender<A>| {
            let op = match v["room"].as_str() {
                Some(r) => io.to(r.to_owned()),
                None => io.broadcast(),
            };
            let res = op.disconnect().await;
            let _ = ack.send(&json!({ "ok": res.is_ok() }));
        },
    );
}

async fn stats(AxState(h): AxState<RedisAdapterHandle>) -> Json<Value> {
    Json(json!({
        "stats": h.stats().snapshot(),
        "redisUp": h.redis_up(),
        "subscriberAlive": h.subscriber_alive(),
        "roomChannels": h.subscribed_room_count("/").await.unwrap_or(0),
        "shardSubscriptions": h.shard_subscriptions().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = AdapterConfig {
        request_timeout: Duration::from_millis(args.request_timeout),
        room_sync_interval: Duration::from_millis(args.room_sync_ms.max(1)),
        pubsub: match args.pubsub.as_str() {
            "classic" => PubSubMode::Classic,
            "sharded" => PubSubMode::Sharded(SubscriptionMode::Dynamic),
            "sharded-dynamic-private" => PubSubMode::Sharded(SubscriptionMode::DynamicPrivate),
            "sharded-static" => PubSubMode::Sharded(SubscriptionMode::Static),
            other => anyhow::bail!("unknown --pubsub {other}"),
        },
        ..Default::default()
    };
    let ctr = RedisAdapterCtr::connect(&args.redis, config).await?;
    let handle = ctr.handle();
    let (layer, io) = SocketIo::builder()
        // The tests send bursts (2,000 emitter messages) to one client at once; with
        // socketioxide's default queue of 128 packets a client slowed down by a loaded machine
        // would lose the tail, and the tests check the adapter, not the client's queue.
        .max_buffer_size(4096)
        .with_state(handle.clone())
        .with_adapter::<A>(ctr)
        .build_layer();
    {
        // serverSideEmit from other nodes: relay it to local clients as "sse" and answer.
        let io = io.clone();
        let port = args.port;
        handle.on_server_side_emit(move |e| {
            let io = io.clone();
            let data = e.data.clone();
            tokio::spawn(async move {
                let _ = io.local().emit("sse", &data).await;
            });
            Some(json!({ "port": port, "echo": e.data }))
        });
    }
    io.ns("/", on_connect).await?;
    let closer = io.clone();
    let app = Router::new()
        .route("/stats", get(stats))
        .with_state(handle)
        // Test hook: close socketioxide (and so the adapter) while the process keeps running.
        .route(
            "/close",
            get(async move || {
                closer.close().await;
                "closed"
            }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on {}", args.port);
    // SIGTERM/SIGINT: stop serving, then close socketioxide, which closes the adapter
    // (unsubscribes every channel of this node).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    io.close().await;
    println!("closed");
    Ok(())
}
