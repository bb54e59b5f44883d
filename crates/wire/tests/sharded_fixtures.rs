//! The sharded adapter's messages, recorded from the real `createShardedAdapter` of
//! `@socket.io/redis-adapter` 8.3.0 (socket.io-adapter 2.5.x ClusterAdapter) by
//! `tests/fixtures/wire/capture.mjs`: each decodes to the expected structure, re-encodes to the
//! recorded bytes, and [`sharded_publish_channel`] picks the channel Node picked.

use std::path::PathBuf;

use sio_wire::{
    ClusterBody, ClusterMessage, NamespaceChannels, SubscriptionMode, Value,
    sharded_publish_channel,
};

fn load() -> Vec<(String, String, Vec<u8>)> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wire/sharded.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let mut out = Vec::new();
    for c in doc["cases"].as_array().expect("cases") {
        for m in c["messages"].as_array().expect("messages") {
            let hex = m["hex"].as_str().expect("hex");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            out.push((
                c["name"].as_str().expect("name").to_owned(),
                m["channel"].as_str().expect("ch").to_owned(),
                bytes,
            ));
        }
    }
    out
}

#[test]
fn sharded_fixtures_decode_reencode_and_route_like_node() {
    let channels = NamespaceChannels::new("socket.io", "/");
    let msgs = load();
    assert!(msgs.len() >= 15);
    let mut requester = None;
    for (case, channel, bytes) in &msgs {
        let m = ClusterMessage::decode(bytes).unwrap_or_else(|e| panic!("{case}: {e}"));
        let again = m.encode().expect("encode");
        assert!(
            &again == bytes,
            "{case}: re-encoding differs\n ours: {}\n node: {}",
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(m.nsp, "/");
        if m.body.is_response() {
            // Responses go to the requester's own channel: key#nsp#<uid>#.
            assert_eq!(
                Some(channel.clone()),
                requester.as_ref().map(|u: &String| channels.room(u)),
                "{case}"
            );
        } else {
            assert_eq!(m.uid.len(), 16, "{case}: Node uids are 16 hex chars");
            requester = Some(m.uid.clone());
            assert_eq!(
                &sharded_publish_channel(&channels, &m, SubscriptionMode::Dynamic),
                channel,
                "{case}"
            );
        }
        match (case.as_str(), &m.body) {
            (
                "io_to_room_binary",
                ClusterBody::Broadcast {
                    packet,
                    request_id: None,
                    opts,
                },
            ) => {
                assert_eq!(bytes[0], 0x84, "binary broadcasts are msgpack");
                assert_eq!(
                    packet.data,
                    Value::Array(vec![Value::from("bin"), Value::Binary(vec![1, 2])])
                );
                assert_eq!(opts.rooms, ["r"]);
            }
            ("io_to_socket_id", ClusterBody::Broadcast { opts, .. }) => {
                assert!(sio_wire::cluster::looks_like_socket_id(&opts.rooms[0]));
            }
            ("io_to_rooms_except", ClusterBody::Broadcast { opts, .. }) => {
                assert_eq!(
                    (
                        opts.rooms.len(),
                        opts.except.as_slice(),
                        opts.flags.volatile
                    ),
                    (2, &["c".to_owned()][..], Some(true))
                );
            }
            ("server_side_emit", ClusterBody::ServerSideEmit { request_id, packet }) => {
                assert!(request_id.is_none());
                assert_eq!(packet, &vec![Value::from("ping"), Value::from(1)]);
            }
            ("server_side_emit_ack", ClusterBody::ServerSideEmit { request_id, .. }) => {
                assert!(request_id.is_some())
            }
            ("server_side_emit_ack", ClusterBody::ServerSideEmitResponse { packet, .. }) => {
                assert_eq!(
                    packet,
                    &Value::Map(vec![(Value::from("pong"), Value::from(2))])
                );
            }
            ("fetch_sockets", ClusterBody::FetchSockets { opts, .. }) => {
                assert_eq!(opts.rooms, ["r"])
            }
            ("fetch_sockets", ClusterBody::FetchSocketsResponse { sockets, .. }) => {
                assert_eq!(sockets.len(), 1);
                assert!(sockets[0].rooms.contains(&"r".to_owned()));
            }
            (
                "broadcast_with_ack",
                ClusterBody::Broadcast {
                    request_id, opts, ..
                },
            ) => {
                assert!(request_id.is_some());
                assert_eq!(opts.flags.timeout, Some(3000));
            }
            ("broadcast_with_ack", ClusterBody::BroadcastClientCount { client_count, .. }) => {
                assert_eq!(*client_count, 1)
            }
            ("broadcast_with_ack", ClusterBody::BroadcastAck { packet, .. }) => {
                assert_eq!(bytes[0], 0x84, "binary acks are msgpack");
                assert_eq!(
                    packet,
                    &Value::Map(vec![
                        (Value::from("ok"), Value::from(7)),
                        (Value::from("bin"), Value::Binary(vec![5, 6]))
                    ])
                );
            }
            ("sockets_join", ClusterBody::SocketsJoin { rooms, .. }) => {
                assert_eq!(rooms, &["j1", "j2"])
            }
            ("sockets_leave", ClusterBody::SocketsLeave { opts, .. }) => {
                assert_eq!(opts.except, ["x"])
            }
            ("disconnect_sockets", ClusterBody::DisconnectSockets { close, .. }) => assert!(*close),
            ("io_emit", ClusterBody::Broadcast { packet, .. }) => assert_eq!(packet.nsp, None),
            (case, body) => panic!("{case}: unexpected {body:?}"),
        }
    }
}

#[test]
fn truncated_sharded_messages_are_errors() {
    for (case, _, bytes) in load() {
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                ClusterMessage::decode(&bytes[..cut]).is_err(),
                "{case}: prefix {cut} decoded"
            );
        }
    }
}
