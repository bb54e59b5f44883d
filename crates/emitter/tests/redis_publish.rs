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
