//! Property tests: encode → decode is the identity for arbitrary values and messages in the
//! JS value model (what a Node peer can send), and no decoder panics on arbitrary bytes.

use std::collections::VecDeque;

use proptest::prelude::*;
use sio_wire::{
    BroadcastFlags, BroadcastMessage, BroadcastOptions, ClusterBody, ClusterMessage, Flag,
    OptsLayout, Packet, Request, Response, Value, msgpack, request::FetchedSocket,
    request::RoomsOpts,
};

fn key() -> impl Strategy<Value = String> {
    "[a-z0-9_é😀]{0,12}"
}

/// Values a Node peer can put in packet data (`json_only` = what survives JSON).
fn js_value(json_only: bool) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Non-integral finite floats: integral ones are ints in JS.
        any::<f64>()
            .prop_filter("non-integral finite", |f| f.is_finite() && f.floor() != *f)
            .prop_map(Value::F64),
        ".{0,40}".prop_map(Value::from),
        "[a-z]{30,300}".prop_map(Value::from),
    ];
    let leaf = if json_only {
        leaf.boxed()
    } else {
        prop_oneof![
            4 => leaf,
            1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Binary),
            1 => (0i64..4_000_000_000_000).prop_map(msgpack::date_value),
        ]
        .boxed()
    };
    leaf.prop_recursive(4, 64, 20, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..20).prop_map(|kv| {
                // JS objects have unique keys.
                let mut seen = std::collections::HashSet::new();
                Value::Map(
                    kv.into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .map(|(k, v)| (Value::from(k), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn rooms() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[a-zA-Z0-9:#_-]{1,20}", 0..5)
}

fn flags() -> impl Strategy<Value = BroadcastFlags> {
    proptest::collection::vec((0usize..7, 0u64..100_000), 0..7).prop_map(|sets| {
        let all = [
            Flag::Volatile,
            Flag::Compress,
            Flag::Local,
            Flag::Broadcast,
            Flag::Binary,
            Flag::Timeout,
            Flag::ExpectSingleResponse,
        ];
        let mut f = BroadcastFlags::default();
        for (i, v) in sets {
            f.set(all[i], if all[i] == Flag::Timeout { v } else { v % 2 });
        }
        f
    })
}

fn packet() -> impl Strategy<Value = Packet> {
    (
        "[a-z]{1,10}",
        proptest::collection::vec(js_value(false), 0..4),
        prop_oneof![Just(None), "/[a-z]{0,6}".prop_map(Some)],
        proptest::option::of(0i64..1_000_000),
    )
        .prop_map(|(ev, args, nsp, id)| {
            let mut p = Packet::event("/", ev, args);
            p.nsp = nsp;
            p.id = id;
            p
        })
}

fn opts() -> impl Strategy<Value = BroadcastOptions> {
    (rooms(), rooms(), flags(), any::<bool>()).prop_map(|(rooms, except, flags, em)| {
        BroadcastOptions {
            rooms,
            except,
            flags,
            layout: if em {
                OptsLayout::Emitter
            } else {
                OptsLayout::Adapter
            },
        }
    })
}

fn ropts() -> impl Strategy<Value = RoomsOpts> {
    (rooms(), rooms()).prop_map(|(rooms, except)| RoomsOpts { rooms, except })
}

fn request() -> impl Strategy<Value = Request> {
    let uid = proptest::option::of("[A-Za-z0-9_-]{6}");
    let rid = "[A-Za-z0-9_-]{6}";
    prop_oneof![
        (uid.clone(), rid, rooms()).prop_map(|(uid, request_id, rooms)| Request::Sockets {
            uid,
            request_id,
            rooms
        }),
        (uid.clone(), rid).prop_map(|(uid, request_id)| Request::AllRooms { uid, request_id }),
        (uid.clone(), ropts(), rooms()).prop_map(|(uid, opts, rooms)| Request::SocketsJoin {
            uid,
            opts,
            rooms
        }),
        (uid.clone(), ropts(), rooms()).prop_map(|(uid, opts, rooms)| Request::SocketsLeave {
            uid,
            opts,
            rooms
        }),
        (uid.clone(), ropts(), any::<bool>())
            .prop_map(|(uid, opts, close)| Request::DisconnectSockets { uid, opts, close }),
        (
            uid.clone(),
            proptest::option::of(rid),
            "[a-z]{5}",
            "[a-z]{3}"
        )
            .prop_map(|(uid, request_id, sid, room)| Request::RemoteJoin {
                uid,
                request_id,
                sid,
                room
            }),
        (
            uid.clone(),
            proptest::option::of(rid),
            "[a-z]{5}",
            any::<bool>()
        )
            .prop_map(|(uid, request_id, sid, close)| Request::RemoteDisconnect {
                uid,
                request_id,
                sid,
                close
            }),
        (uid.clone(), rid, ropts()).prop_map(|(uid, request_id, opts)| Request::FetchSockets {
            uid,
            request_id,
            opts
        }),
        (
            uid,
            proptest::option::of(rid),
            proptest::collection::vec(js_value(true), 0..4)
        )
            .prop_map(|(uid, request_id, data)| Request::ServerSideEmit {
                uid,
                request_id,
                data
            }),
        ("[a-z]{6}", rid, packet(), opts()).prop_map(|(uid, request_id, packet, opts)| {
            Request::BroadcastWithAck {
                uid,
                request_id,
                packet,
                opts,
            }
        }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let rid = "[A-Za-z0-9_-]{6}";
    let socket = (
        "[a-zA-Z0-9_-]{20}",
        js_value(true),
        rooms(),
        proptest::option::of(js_value(true)),
        proptest::option::of("[a-z0-9-]{1,12}"),
    )
        .prop_map(|(id, handshake, rooms, data, node)| FetchedSocket {
            id,
            handshake,
            rooms,
            data,
            node,
        });
    prop_oneof![
        (rid, rooms()).prop_map(|(request_id, rooms)| Response::AllRooms { request_id, rooms }),
        (rid, proptest::collection::vec(socket, 0..3)).prop_map(|(request_id, sockets)| {
            Response::FetchSockets {
                request_id,
                sockets,
            }
        }),
        rid.prop_map(|request_id| Response::Done { request_id }),
        (rid, js_value(true))
            .prop_map(|(request_id, data)| Response::ServerSideEmitAck { request_id, data }),
        (rid, any::<u32>()).prop_map(|(request_id, n)| Response::BroadcastClientCount {
            request_id,
            client_count: u64::from(n)
        }),
        (rid, js_value(false))
            .prop_map(|(request_id, packet)| Response::BroadcastAck { request_id, packet }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn msgpack_roundtrip(v in js_value(false)) {
        let bytes = msgpack::encode(&v);
        prop_assert_eq!(msgpack::decode(&bytes).unwrap(), v);
    }

    #[test]
    fn broadcast_roundtrip(uid in "[A-Za-z0-9]{1,8}", packet in packet(), opts in opts()) {
        let msg = BroadcastMessage { uid, packet, opts };
        let bytes = msg.encode();
        let back = BroadcastMessage::decode(&bytes).unwrap();
        // Flag order is remembered too: re-encoding is byte-identical.
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn request_roundtrip(r in request()) {
        let bytes = r.encode().unwrap();
        prop_assert_eq!(bytes[0] == b'{', !matches!(r, Request::BroadcastWithAck { .. }));
        prop_assert_eq!(Request::decode(&bytes).unwrap(), r);
    }

    #[test]
    fn response_roundtrip(r in response()) {
        let bytes = r.encode().unwrap();
        let back = Response::decode(&bytes).unwrap();
        // An empty fetch answer and an empty legacy sockets answer look the same on the wire.
        if let (Response::FetchSockets { sockets, .. }, Response::FetchSockets { .. }) = (&r, &back) {
            prop_assert!(sockets.is_empty() || back == r);
        } else {
            prop_assert_eq!(back, r);
        }
    }

    #[test]
    fn placeholder_json_roundtrip(args in proptest::collection::vec(js_value(false), 0..5)) {
        // Dates become ISO strings in JSON (as in Node); drop them from this identity check.
        fn has_ext(v: &Value) -> bool {
            match v {
                Value::Ext(..) => true,
                Value::Array(a) => a.iter().any(has_ext),
                Value::Map(m) => m.iter().any(|(_, v)| has_ext(v)),
                _ => false,
            }
        }
        let mut data = vec![Value::from("ev")];
        data.extend(args);
        let data = Value::Array(data);
        prop_assume!(!has_ext(&data));
        let pj = sio_wire::to_placeholder_json(&data).unwrap();
        prop_assert_eq!(sio_wire::from_placeholder_json(&pj.text, &pj.attachments).unwrap(), data.clone());
        prop_assert_eq!(sio_wire::into_placeholder_json(data).unwrap(), pj);
    }

    #[test]
    fn cluster_roundtrip(
        uid in "[0-9a-f]{16}", packet in packet(), opts in opts(), rid in proptest::option::of("[0-9a-f]{16}"),
        args in proptest::collection::vec(js_value(false), 0..3), rooms in rooms(), which in 0u8..4,
    ) {
        let opts = BroadcastOptions { layout: OptsLayout::Adapter, ..opts };
        let body = match which {
            0 => ClusterBody::Broadcast { packet, request_id: rid, opts },
            1 => ClusterBody::SocketsJoin { opts, rooms },
            2 => ClusterBody::ServerSideEmit { request_id: rid, packet: args },
            _ => ClusterBody::BroadcastAck { request_id: uid.clone(), packet: Value::Array(args) },
        };
        // JSON cannot carry Dates back as Dates (Node has the same limit): skip those.
        let msg = ClusterMessage { uid, nsp: "/".into(), body };
        let bytes = msg.encode().unwrap();
        prop_assume!(bytes[0] != b'{' || !format!("{msg:?}").contains("Ext("));
        prop_assert_eq!(ClusterMessage::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = msgpack::decode(&bytes);
        let _ = BroadcastMessage::decode(&bytes);
        let _ = Request::decode(&bytes);
        let _ = Response::decode(&bytes);
        let _ = sio_wire::decode_py_message(&bytes);
        let _ = sio_wire::ClusterMessage::decode(&bytes);
        let _ = std::str::from_utf8(&bytes).map(|t| sio_wire::from_placeholder_json(t, &VecDeque::new()));
    }

    #[test]
    fn mutated_messages_never_panic(
        packet in packet(), opts in opts(), idx in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let mut bytes = BroadcastMessage { uid: "u".into(), packet, opts }.encode();
        let i = idx.index(bytes.len());
        bytes[i] = byte;
        let _ = BroadcastMessage::decode(&bytes);
        let _ = Request::decode(&bytes);
    }
}
