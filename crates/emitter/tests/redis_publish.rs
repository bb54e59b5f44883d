//! sio-emitter against a real, private redis-server: what a subscriber receives is exactly the
//! message the emitter built, and a Redis that is gone is reported as an error (not swallowed).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fred::prelude::*;
use sio_emitter::{Arg, EmitError, Emitter, EmitterOptions};

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child =
            Command::new(std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()))
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(url: &str) -> Client {
    let c = Builder::from_config(Config::from_url(url).expect("url"))
        .build()
        .expect("client");
    c.init().await.expect("connect");
    c
}

#[tokio::test]
async fn subscribers_receive_exactly_the_built_messages() {
    let redis = Redis::start();
    let sub = client(&redis.url()).await;
    let mut rx = sub.message_rx();
    sub.psubscribe("*").await.expect("psubscribe");
    let e = Emitter::new(client(&redis.url()).await, EmitterOptions::default());

    let expected = [
        e.to("room1")
            .emit_message("hello", [Arg::from("world"), Arg::binary([1u8, 2])])
            .expect("build"),
        e.of("admin")
            .except("x")
            .sockets_join_message("j")
            .expect("build"),
        e.server_side_emit_message("ping", [Arg::from(1i64)])
            .expect("build"),
    ];
    e.to("room1")
        .emit("hello", [Arg::from("world"), Arg::binary([1u8, 2])])
        .await
        .expect("emit");
    e.of("admin")
        .except("x")
        .sockets_join("j")
        .await
        .expect("join");
    e.server_side_emit("ping", [Arg::from(1i64)])
        .await
        .expect("sse");
    // One subscriber (the PSUBSCRIBE) counts.
    assert_eq!(
        e.publish_counted(expected[0].clone())
            .await
            .expect("publish"),
        1
    );

    for want in expected.iter().chain(std::iter::once(&expected[0])) {
        let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("message in time")
            .expect("rx");
        assert_eq!(&*msg.channel, want.channel.as_str());
        let got: Vec<u8> = msg.value.convert().expect("bytes");
        assert_eq!(got, want.payload);
    }
}

#[tokio::test]
async fn a_dead_redis_is_an_error() {
    let redis = Redis::start();
    let e = Emitter::new(client(&redis.url()).await, EmitterOptions::default());
    e.emit("before", [Arg::from(1i64)])
        .await
        .expect("emit while up");
    drop(redis);
    let r = tokio::time::timeout(Duration::from_secs(20), e.emit("after", [Arg::from(1i64)])).await;
    assert!(matches!(r, Ok(Err(EmitError::Publish(_)))), "got {r:?}");
    let detached = Emitter::detached(EmitterOptions::default());
    assert!(matches!(
        detached.emit("x", [Arg::from(1i64)]).await,
        Err(EmitError::Publish(_))
    ));
}

fn history_emitter(client: Client) -> Emitter {
    Emitter::new(
        client,
        EmitterOptions {
            history: vec![sio_wire::history::HistorySpec::parse("chat:*=100/10m").expect("rule")],
            ..EmitterOptions::default()
        },
    )
}

/// A history room's emit is appended to the room's stream (the gateway's format) before it is
/// published, and the published message carries that offset and epoch as its last argument.
#[tokio::test]
async fn history_rooms_are_appended_then_published_with_their_offset() {
    use sio_wire::history::{StreamId, stream};
    let redis = Redis::start();
    let sub = client(&redis.url()).await;
    let mut rx = sub.message_rx();
    sub.psubscribe("*").await.expect("psubscribe");
    let kv = client(&redis.url()).await;
    let e = history_emitter(client(&redis.url()).await);
    let [stream_key, meta_key] = stream::keys("/", "chat:a");

    for n in 0..2i64 {
        e.to("chat:a")
            .emit("msg", [Arg::from(serde_json::json!({ "n": n }))])
            .await
            .expect("emit");
    }
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = kv
        .xrange(&stream_key, "-", "+", None)
        .await
        .expect("xrange");
    assert_eq!(entries.len(), 2, "both appended");
    assert_eq!(entries[1].1["e"], "msg");
    assert_eq!(entries[1].1["a"], r#"[{"n":1}]"#);
    let epoch: String = kv.hget(&meta_key, "e").await.expect("epoch");
    let ttl: i64 = kv.pttl(&stream_key).await.expect("pttl");
    assert!(ttl > 0 && ttl <= 600_000, "the rule's TTL: {ttl}");

    for (id, _) in &entries {
        let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("message in time")
            .expect("rx");
        assert_eq!(&*msg.channel, "socket.io#/#chat:a#");
        let got: Vec<u8> = msg.value.convert().expect("bytes");
        let want = e
            .to("chat:a")
            .emit_message_appended(
                "msg",
                [Arg::from(
                    serde_json::json!({ "n": entries.iter().position(|x| &x.0 == id).unwrap() }),
                )],
                StreamId::parse(id).expect("id"),
                &sio_wire::history::Epoch::parse(&epoch).expect("epoch"),
            )
            .expect("build");
        assert_eq!(
            got, want.payload,
            "published with the stream's offset and epoch"
        );
    }

    // Other rooms are not appended; several rooms with a history room among them are refused,
    // and nothing is appended or published.
    e.to("lobby")
        .emit("msg", [Arg::from(1i64)])
        .await
        .expect("emit");
    let r = e
        .to(["chat:a", "lobby"])
        .emit("msg", [Arg::from(1i64)])
        .await;
    assert!(
        matches!(r, Err(EmitError::HistoryRoomWithOthers(ref room)) if room == "chat:a"),
        "{r:?}"
    );
    let n: u64 = kv.xlen(&stream_key).await.expect("xlen");
    assert_eq!(n, 2);
    let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("message in time")
        .expect("rx");
    assert_eq!(
        &*msg.channel, "socket.io#/#lobby#",
        "the refused emit was not published"
    );
    let lobby: bool = kv
        .exists(stream::keys("/", "lobby").to_vec())
        .await
        .expect("exists");
    assert!(!lobby, "no history for other rooms");

    // Redis gone: the append fails, nothing is published.
    drop(redis);
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        e.to("chat:a").emit("msg", [Arg::from(1i64)]),
    )
    .await;
    assert!(
        matches!(r, Ok(Err(EmitError::HistoryAppend(_)))),
        "got {r:?}"
    );
}
