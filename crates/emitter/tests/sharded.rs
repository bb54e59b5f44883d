//! The sharded mode of the emitter: the messages Node's `createShardedAdapter` nodes (and
//! sio-gateway `--redis-pubsub sharded`) read, on the channels they subscribe.

use serde_json::json;
use sio_emitter::{Arg, Emitter, EmitterOptions};
use sio_wire::{ClusterBody, ClusterMessage, SubscriptionMode};

fn emitter(mode: SubscriptionMode) -> Emitter {
    Emitter::detached(EmitterOptions {
        sharded: Some(mode),
        ..EmitterOptions::default()
    })
}

#[test]
fn broadcasts_go_on_the_room_channel_the_mode_gives() {
    let e = emitter(SubscriptionMode::Dynamic);
    let out = e
        .to("r1")
        .emit_message("news", [Arg::from(json!({"n": 1}))])
        .unwrap();
    assert_eq!(out.channel, "socket.io#/#r1#");
    assert_eq!(
        String::from_utf8(out.payload.clone()).unwrap(),
        r#"{"type":3,"data":{"packet":{"type":2,"data":["news",{"n":1}],"nsp":"/"},"opts":{"rooms":["r1"],"flags":{},"except":[]}},"uid":"emitter","nsp":"/"}"#
    );
    let m = ClusterMessage::decode(&out.payload).unwrap();
    assert_eq!((m.uid.as_str(), m.nsp.as_str()), ("emitter", "/"));
    // Several rooms, a Node socket id (dynamic), static mode: the namespace channel.
    let two = e.to(["a", "b"]).emit_message("x", [Arg::from(json!(1))]);
    assert_eq!(two.unwrap().channel, "socket.io#/#");
    let sid = e
        .to("PGj3_-L0xWV7s5J0AAAA")
        .emit_message("x", [Arg::from(json!(1))]);
    assert_eq!(sid.unwrap().channel, "socket.io#/#");
    let private = emitter(SubscriptionMode::DynamicPrivate)
        .to("PGj3_-L0xWV7s5J0AAAA")
        .emit_message("x", [Arg::from(json!(1))]);
    assert_eq!(
        private.unwrap().channel,
        "socket.io#/#PGj3_-L0xWV7s5J0AAAA#"
    );
    let fixed = emitter(SubscriptionMode::Static)
        .to("r1")
        .emit_message("x", [Arg::from(json!(1))]);
    assert_eq!(fixed.unwrap().channel, "socket.io#/#");
}

#[test]
fn join_leave_disconnect_and_server_side_emit_go_on_the_namespace_channel() {
    let e = emitter(SubscriptionMode::Dynamic).of("admin");
    let join = e.in_("r").except("x").sockets_join_message("j").unwrap();
    assert_eq!(join.channel, "socket.io#/admin#");
    let m = ClusterMessage::decode(&join.payload).unwrap();
    assert_eq!(m.nsp, "/admin");
    match m.body {
        ClusterBody::SocketsJoin { opts, rooms } => {
            assert_eq!(
                (opts.rooms, opts.except, rooms),
                (vec!["r".into()], vec!["x".into()], vec!["j".into()])
            );
        }
        other => panic!("{other:?}"),
    }
    let leave = e.in_("r").sockets_leave_message("j").unwrap();
    assert!(matches!(
        ClusterMessage::decode(&leave.payload).unwrap().body,
        ClusterBody::SocketsLeave { .. }
    ));
    let dc = e.in_("r").disconnect_sockets_message(true).unwrap();
    assert!(matches!(
        ClusterMessage::decode(&dc.payload).unwrap().body,
        ClusterBody::DisconnectSockets { close: true, .. }
    ));
    let sse = e
        .server_side_emit_message("ping", [Arg::from(json!(2))])
        .unwrap();
    assert_eq!(sse.channel, "socket.io#/admin#");
    assert_eq!(
        String::from_utf8(sse.payload).unwrap(),
        r#"{"type":9,"data":{"packet":["ping",2]},"uid":"emitter","nsp":"/admin"}"#
    );
}

/// A history room's broadcast is only built with its offset (after the append), in both
/// protocols; several rooms with a history room among them are refused.
#[test]
fn history_rooms_carry_the_mark_in_both_protocols() {
    use sio_emitter::EmitError;
    use sio_wire::history::{Epoch, HistorySpec, StreamId};
    let id = StreamId::parse("1733400000000-2").unwrap();
    let epoch = Epoch::from_bits(0xab);
    let mark = json!({"room": "chat:a", "offset": "1733400000000-2", "epoch": "00000000000000ab"});
    for sharded in [None, Some(SubscriptionMode::Dynamic)] {
        let e = Emitter::detached(EmitterOptions {
            sharded,
            history: vec![HistorySpec::parse("chat:*=10").unwrap()],
            ..EmitterOptions::default()
        });
        let unmarked = e.to("chat:a").emit_message("msg", [Arg::from(json!(1))]);
        assert!(
            matches!(unmarked, Err(EmitError::HistoryNeedsAppend(ref r)) if r == "chat:a"),
            "{unmarked:?}"
        );
        let out = e
            .to("chat:a")
            .except("muted")
            .emit_message_appended("msg", [Arg::from(json!(1))], id, &epoch)
            .unwrap();
        assert_eq!(out.channel, "socket.io#/#chat:a#");
        let data = if sharded.is_some() {
            let m = ClusterMessage::decode(&out.payload).unwrap();
            let ClusterBody::Broadcast { packet, .. } = m.body else {
                panic!("a broadcast")
            };
            packet.data
        } else {
            sio_wire::BroadcastMessage::decode(&out.payload)
                .unwrap()
                .packet
                .data
        };
        let data = sio_wire::json::to_serde(&data);
        assert_eq!(
            data,
            json!(["msg", 1, mark]),
            "the mark trails the arguments"
        );
        for two in [e.to(["chat:a", "lobby"]), e.to(["lobby", "chat:b"])] {
            let r = two.emit_message("msg", [Arg::from(json!(1))]);
            assert!(
                matches!(r, Err(EmitError::HistoryRoomWithOthers(_))),
                "{r:?}"
            );
            let r = two.emit_message_appended("msg", [Arg::from(json!(1))], id, &epoch);
            assert!(
                matches!(r, Err(EmitError::HistoryRoomWithOthers(_))),
                "{r:?}"
            );
        }
        // Other rooms, and the whole namespace, are not history rooms.
        assert!(
            e.to(["lobby", "news"])
                .emit_message("msg", [Arg::from(json!(1))])
                .is_ok()
        );
        assert!(e.emit_message("msg", [Arg::from(json!(1))]).is_ok());
        assert!(matches!(
            e.to("lobby")
                .emit_message_appended("msg", [Arg::from(json!(1))], id, &epoch),
            Err(EmitError::NotAHistoryRoom)
        ));
    }
}
