//! Rough per-message cost of the two hot conversions of a gateway node (not a timed test; run
//! with `cargo run --release -p sio-wire --example throughput`):
//! - receive: Redis bytes → `BroadcastMessage::decode` → socketioxide's placeholder JSON;
//! - publish: socketioxide's placeholder JSON → `BroadcastMessage` → msgpack bytes.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use sio_wire::{BroadcastMessage, BroadcastOptions, Packet};

fn measure(name: &str, iters: u32, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(iters);
    println!("{name:<48} {ns:>10.0} ns/msg  {:>10.0} msg/s", 1e9 / ns);
}

fn main() {
    let cases: [(&str, &str, VecDeque<Bytes>); 2] = [
        (
            "chat message (~120 B JSON)",
            r#"["chat",{"user":"alice","room":"room1","text":"hello world, how is everyone today?","ts":1700000000000}]"#,
            VecDeque::new(),
        ),
        (
            "binary message (4 KiB attachment)",
            r#"["file",{"name":"a.bin","data":{"_placeholder":true,"num":0}}]"#,
            VecDeque::from([Bytes::from(vec![7u8; 4096])]),
        ),
    ];
    for (name, text, att) in cases {
        let data = sio_wire::from_placeholder_json(text, &att).expect("valid");
        let msg = BroadcastMessage {
            uid: "abc123".into(),
            packet: Packet::with_data("/", data),
            opts: BroadcastOptions {
                rooms: vec!["room1".into()],
                ..Default::default()
            },
        };
        let bytes = msg.encode();
        println!("{name}: {} bytes on the wire", bytes.len());
        measure("  receive: decode + to placeholder JSON", 200_000, || {
            let m = BroadcastMessage::decode(black_box(&bytes)).expect("decode");
            black_box(sio_wire::into_placeholder_json(m.packet.data).expect("json"));
        });
        measure(
            "    of which msgpack decode + message fields",
            200_000,
            || {
                black_box(BroadcastMessage::decode(black_box(&bytes)).expect("decode"));
            },
        );
        let mut out = Vec::with_capacity(bytes.len());
        measure("  publish: placeholder JSON + encode", 200_000, || {
            let data = sio_wire::from_placeholder_json(black_box(text), &att).expect("json");
            let m = BroadcastMessage {
                uid: "abc123".into(),
                packet: Packet::with_data("/", data),
                opts: BroadcastOptions {
                    rooms: vec!["room1".into()],
                    ..Default::default()
                },
            };
            out.clear();
            m.encode_into(&mut out);
            black_box(&out);
        });
    }
}
