//! Messages encoded by sio-wire, written to `tests/fixtures/wire/rust-vectors.json` for the
//! reverse check: `tests/js/wire-rust-vectors.test.mjs` decodes them with notepack.io and
//! feeds them to a real socket.io server with `@socket.io/redis-adapter`.
//!
//! This test fails when the committed file is not what sio-wire produces today; regenerate with
//! `SIO_WIRE_WRITE_VECTORS=1 cargo test -p sio-wire --test rust_vectors`.

use std::collections::VecDeque;
use std::path::PathBuf;

use bytes::Bytes;
use sio_wire::{
    BroadcastMessage, BroadcastOptions, ClusterBody, ClusterMessage, Flag, NamespaceChannels,
    OptsLayout, Packet, Request, Response, SubscriptionMode, Value, msgpack, request::RoomsOpts,
};

/// `expect`: the JS value notepack/JSON.parse must produce, with binary as `{"$bin": hex}` and
/// Dates as `{"$date": ms}` (the Node test maps decoded values to the same form).
fn expect_of(v: &Value) -> serde_json::Value {
    use serde_json::json;
    match v {
        Value::Nil => json!(null),
        Value::Boolean(b) => json!(b),
        Value::Integer(i) => i
            .as_i64()
            .map(|n| json!(n))
            .unwrap_or_else(|| json!(i.as_u64())),
        Value::F32(f) => json!(f),
        Value::F64(f) => json!(f),
        Value::String(s) => json!(s.as_str()),
        Value::Binary(b) => json!({ "$bin": hex(b) }),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(expect_of).collect()),
        Value::Map(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), expect_of(v)))
                .collect(),
        ),
        Value::Ext(-1, d) => json!({ "$date": msgpack::timestamp_millis(d) }),
        Value::Ext(t, d) => json!([t, { "$bin": hex(d) }]),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn vector(name: &str, channel: &str, bytes: &[u8], expect: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "name": name, "channel": channel, "hex": hex(bytes), "expect": expect })
}

fn build() -> serde_json::Value {
    let root = NamespaceChannels::new(sio_wire::DEFAULT_KEY, "/");
    let mut out = Vec::new();
    let mut broadcast = |name: &str, msg: BroadcastMessage, nsp: &NamespaceChannels| {
        let bytes = msg.encode();
        let decoded = msgpack::decode(&bytes).expect("own bytes decode");
        out.push(vector(
            name,
            &nsp.broadcast_channel(&msg.opts.rooms),
            &bytes,
            expect_of(&decoded),
        ));
    };

    let args = vec![
        Value::from("world"),
        Value::from(1),
        Value::from(300),
        Value::from(-5),
        Value::F64(1.5),
        Value::Nil,
        Value::Boolean(true),
        Value::Map(vec![(
            Value::from("a"),
            Value::Array(vec![Value::from(1), Value::from(2)]),
        )]),
        Value::Binary(vec![1, 2, 3]),
        Value::from("é€😀"),
        Value::from("x".repeat(40)),
        msgpack::date_value(1_700_000_000_123),
    ];
    broadcast(
        "broadcast_all",
        BroadcastMessage {
            uid: "rustnode".into(),
            packet: Packet::event("/", "hello", args),
            opts: BroadcastOptions::default(),
        },
        &root,
    );
    broadcast(
        "broadcast_room",
        BroadcastMessage {
            uid: "rustnode".into(),
            packet: Packet::event("/", "to-room", vec![Value::from("r1")]),
            opts: BroadcastOptions {
                rooms: vec!["room1".into()],
                ..Default::default()
            },
        },
        &root,
    );
    let mut opts = BroadcastOptions {
        rooms: vec!["room1".into(), "room2".into()],
        except: vec!["skip".into()],
        layout: OptsLayout::Emitter,
        ..Default::default()
    };
    opts.flags.set(Flag::Volatile, 1);
    opts.flags.set(Flag::Compress, 0);
    broadcast(
        "broadcast_rooms_except_flags",
        BroadcastMessage {
            uid: "emitter".into(),
            packet: Packet::event("/", "multi", vec![Value::from(2)]),
            opts,
        },
        &root,
    );
    // socketioxide form → Node packet: what a gateway node publishes for a client's binary emit.
    let att: VecDeque<Bytes> = VecDeque::from([Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef])]);
    let data = sio_wire::from_placeholder_json(
        r#"["bin",{"file":{"_placeholder":true,"num":0}},"t"]"#,
        &att,
    )
    .expect("placeholder json");
    broadcast(
        "broadcast_from_socketioxide_binary",
        BroadcastMessage {
            uid: "rustnode".into(),
            packet: Packet::with_data("/", data),
            opts: BroadcastOptions::default(),
        },
        &root,
    );
    let admin = NamespaceChannels::new(sio_wire::DEFAULT_KEY, "/admin");
    broadcast(
        "broadcast_admin",
        BroadcastMessage {
            uid: "rustnode".into(),
            packet: Packet::event("/admin", "adm", vec![]),
            opts: BroadcastOptions::default(),
        },
        &admin,
    );

    let mut request = |name: &str, r: Request| {
        let bytes = r.encode().expect("encode");
        let decoded = sio_wire::request::decode_any(&bytes).expect("own bytes decode");
        out.push(vector(name, root.request(), &bytes, expect_of(&decoded)));
    };
    request(
        "request_sockets_join",
        Request::SocketsJoin {
            uid: Some("rustnode".into()),
            opts: RoomsOpts {
                rooms: vec!["room1".into()],
                except: vec![],
            },
            rooms: vec!["joined".into()],
        },
    );
    request(
        "request_server_side_emit",
        Request::ServerSideEmit {
            uid: Some("rustnode".into()),
            request_id: None,
            data: vec![
                Value::from("sse"),
                Value::from(1),
                Value::Map(vec![(Value::from("k"), Value::from("v"))]),
            ],
        },
    );
    request(
        "request_fetch_sockets",
        Request::FetchSockets {
            uid: Some("rustnode".into()),
            request_id: "rq0001".into(),
            opts: RoomsOpts::default(),
        },
    );
    request(
        "request_broadcast_with_ack",
        Request::BroadcastWithAck {
            uid: "rustnode".into(),
            request_id: "rq0002".into(),
            packet: Packet::event("/", "ask", vec![Value::from(7)]),
            opts: {
                let mut o = BroadcastOptions::default();
                o.flags.set(Flag::Timeout, 3000);
                o
            },
        },
    );
    let resp = Response::BroadcastAck {
        request_id: "rq0003".into(),
        packet: Value::Map(vec![(Value::from("ok"), Value::Binary(vec![5, 6]))]),
    };
    let bytes = resp.encode().expect("encode");
    out.push(vector(
        "response_broadcast_ack",
        root.response(),
        &bytes,
        expect_of(&msgpack::decode(&bytes).expect("decode")),
    ));

    // Sharded adapter (ClusterAdapter) messages, published with SPUBLISH by the Node test.
    let mut sharded = |name: &str, m: ClusterMessage| {
        let bytes = m.encode().expect("encode");
        let channel = sio_wire::sharded_publish_channel(&root, &m, SubscriptionMode::Dynamic);
        let decoded = sio_wire::request::decode_any(&bytes).expect("own bytes decode");
        let mut v = vector(name, &channel, &bytes, expect_of(&decoded));
        v["sharded"] = serde_json::Value::Bool(true);
        out.push(v);
    };
    let uid = "0123456789abcdef".to_owned();
    let cm = |body| ClusterMessage {
        uid: uid.clone(),
        nsp: "/".into(),
        body,
    };
    sharded(
        "sharded_broadcast_room",
        cm(ClusterBody::Broadcast {
            packet: Packet::event("/", "s-room", vec![Value::from("r1")]),
            request_id: None,
            opts: BroadcastOptions {
                rooms: vec!["room1".into()],
                ..Default::default()
            },
        }),
    );
    sharded(
        "sharded_broadcast_binary",
        cm(ClusterBody::Broadcast {
            packet: Packet::event("/", "s-bin", vec![Value::Binary(vec![9, 9])]),
            request_id: None,
            opts: BroadcastOptions {
                except: vec!["skip".into()],
                ..Default::default()
            },
        }),
    );
    sharded(
        "sharded_sockets_join",
        cm(ClusterBody::SocketsJoin {
            opts: BroadcastOptions {
                rooms: vec!["room1".into()],
                ..Default::default()
            },
            rooms: vec!["s-joined".into()],
        }),
    );
    sharded(
        "sharded_server_side_emit",
        cm(ClusterBody::ServerSideEmit {
            request_id: None,
            packet: vec![Value::from("sse"), Value::from(3)],
        }),
    );
    sharded(
        "sharded_fetch_sockets",
        cm(ClusterBody::FetchSockets {
            opts: BroadcastOptions::default(),
            request_id: "rq0004".into(),
        }),
    );

    serde_json::json!({
        "generator": "crates/wire/tests/rust_vectors.rs (SIO_WIRE_WRITE_VECTORS=1 to rewrite)",
        "vectors": out,
    })
}

#[test]
fn rust_vectors_file_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/wire/rust-vectors.json");
    let text = serde_json::to_string_pretty(&build()).expect("json") + "\n";
    if std::env::var_os("SIO_WIRE_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &text).expect("write vectors");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is stale: run SIO_WIRE_WRITE_VECTORS=1 cargo test -p sio-wire --test rust_vectors",
        path.display()
    );
}
