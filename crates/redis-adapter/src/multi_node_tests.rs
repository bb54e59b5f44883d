//! Multi-node flows in one process: three adapter instances ("nodes") share a
//! [`MemoryBus`](crate::memory_driver::MemoryBus) the way they would share Redis, each with a
//! namespace of recording sockets ([`RecordingNs`]). Every test checks what each socket
//! received (or which rooms it is in, or whether it was disconnected), not only that no call
//! failed.

use std::{
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use serde_json::json;
use socketioxide_core::{
    Sid, Value,
    adapter::{BroadcastFlags, BroadcastOptions, CoreAdapter, CoreLocalAdapter, Room},
    packet::Packet,
    parser::Parse,
};

use crate::{
    AdapterConfig, DropReason, MsgType, PubSubMode, RedisAdapter, RedisAdapterCtr,
    RedisAdapterHandle, SubscriptionMode,
    memory_driver::{MemoryBus, MemoryControl},
    pubsub::PubSub,
    registry::Registry,
    shared::Core,
    stats::AdapterStats,
    test_support::RecordingNs,
    warn_limit::LogLimiter,
};

/// Short enough to keep the node-loss tests quick, long enough for an idle test machine.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

struct Node {
    handle: RedisAdapterHandle,
    adapter: Arc<RedisAdapter<RecordingNs>>,
    ns: RecordingNs,
    control: MemoryControl,
    /// The node's sockets, named `n<node>s<index>` (padded to socketioxide's 16 characters).
    sids: Vec<Sid>,
}

fn sid(node: usize, i: usize) -> Sid {
    Sid::from_str(&format!("n{node}s{i:0>13}")).expect("16 url-safe characters")
}

/// A node on `bus` with `sockets` sockets.
async fn node(bus: &MemoryBus, id: usize, sockets: usize, mode: PubSubMode) -> Node {
    let config = AdapterConfig {
        request_timeout: REQUEST_TIMEOUT,
        pubsub: mode,
        ..AdapterConfig::default()
    };
    node_with(bus, id, sockets, config).await
}

/// A node's adapter constructor on `bus` (no namespace yet), and its bus controls.
fn ctr_with(bus: &MemoryBus, config: AdapterConfig) -> (RedisAdapterCtr, MemoryControl) {
    let stats = Arc::new(AdapterStats::default());
    let log = Arc::new(LogLimiter::default());
    let registry = Arc::new(Registry::new(
        stats.clone(),
        log.clone(),
        config.max_inbound_bytes,
    ));
    let (driver, control) = bus.connect(&registry);
    let pubsub = PubSub::new(config, stats, log, Arc::new(driver));
    let ctr = RedisAdapterCtr {
        core: Core::new(pubsub, registry),
    };
    (ctr, control)
}

/// A node on `bus` with `sockets` sockets and this configuration.
async fn node_with(bus: &MemoryBus, id: usize, sockets: usize, config: AdapterConfig) -> Node {
    let (ctr, control) = ctr_with(bus, config);
    let sids: Vec<Sid> = (0..sockets).map(|i| sid(id, i)).collect();
    let ns = RecordingNs::new("/", &sids);
    let adapter = Arc::new(RedisAdapter::new(&ctr, CoreLocalAdapter::new(ns.clone())));
    adapter
        .clone()
        .init(|| {})
        .await
        .expect("init on the memory bus");
    let handle = ctr.handle();
    // Socket-id channels, so single sockets can be addressed across nodes.
    handle.sync_rooms("/").await.expect("room sync");
    Node {
        handle,
        adapter,
        ns,
        control,
        sids,
    }
}

/// Three nodes speaking `mode`: n0 with 2 sockets, n1 with 2, n2 with 1.
async fn cluster(mode: PubSubMode) -> (MemoryBus, [Node; 3]) {
    let bus = MemoryBus::default();
    let nodes = [
        node(&bus, 0, 2, mode).await,
        node(&bus, 1, 2, mode).await,
        node(&bus, 2, 1, mode).await,
    ];
    (bus, nodes)
}

impl Node {
    fn local(&self) -> &CoreLocalAdapter<RecordingNs> {
        self.adapter.get_local()
    }
    /// Local join, then subscribe the room's channel at once (what the gateway does).
    async fn join(&self, sid: Sid, room: &'static str) {
        self.local().add_all(sid, room);
        self.handle.sync_rooms("/").await.expect("room sync");
    }
    fn rooms_of(&self, sid: Sid) -> Vec<String> {
        let mut r: Vec<String> = self
            .local()
            .socket_rooms(sid)
            .into_iter()
            .map(|r| r.to_string())
            .collect();
        r.sort();
        r
    }
}

fn event(text: &str) -> Packet {
    Packet::event(
        "/",
        Value::Str(format!("[\"msg\",\"{text}\"]").into(), None),
    )
}

/// What a recording socket holds after receiving `event(text)`.
fn sent(text: &str) -> String {
    match socketioxide_parser_common::CommonParser.encode(event(text)) {
        Value::Str(s, _) => s.to_string(),
        Value::Bytes(_) => unreachable!("the common parser makes text"),
    }
}

/// `io.emit` (every socket of every node).
fn to_all() -> BroadcastOptions {
    let mut o = BroadcastOptions::default();
    o.add_flag(BroadcastFlags::Broadcast);
    o
}

/// `io.to(rooms).except(except)`.
fn to_rooms(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
    let mut o = to_all();
    o.rooms
        .extend(rooms.iter().map(|r| Room::Owned(r.to_string())));
    o.except
        .extend(except.iter().map(|r| Room::Owned(r.to_string())));
    o
}

/// Waits until `cond` holds (deliveries on other nodes are asynchronous).
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends a marker to every socket from `from` and waits until every connected socket has it:
/// anything
/// published before it (on the same bus, so in the same order) has been applied everywhere.
async fn settle(nodes: &[Node], from: usize, marker: &str) {
    nodes[from]
        .adapter
        .broadcast(event(marker), to_all())
        .await
        .expect("marker broadcast");
    for n in nodes {
        let gone = n.ns.disconnected();
        for s in n.sids.iter().filter(|s| !gone.contains(s)) {
            eventually(marker, || n.ns.sent_to(*s).contains(&sent(marker))).await;
        }
    }
}

/// Messages (other than markers) each socket of each node received, in node/socket order.
fn received(nodes: &[Node]) -> Vec<Vec<Vec<String>>> {
    nodes
        .iter()
        .map(|n| {
            n.sids
                .iter()
                .map(|s| {
                    n.ns.sent_to(*s)
                        .into_iter()
                        .filter(|p| !p.contains("marker"))
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// What each socket received after `before` was taken.
fn since(before: &[Vec<Vec<String>>], now: &[Vec<Vec<String>>]) -> Vec<Vec<Vec<String>>> {
    before
        .iter()
        .zip(now)
        .map(|(b, n)| {
            b.iter()
                .zip(n)
                .map(|(b, n)| n[b.len()..].to_vec())
                .collect()
        })
        .collect()
}

async fn broadcasts_reach_exactly_the_addressed_sockets(mode: PubSubMode) {
    let (_bus, nodes) = cluster(mode).await;
    let [n0, n1, n2] = &nodes;
    // red: n0s0, n1s0; blue: n1s1, n2s0.
    n0.join(n0.sids[0], "red").await;
    n1.join(n1.sids[0], "red").await;
    n1.join(n1.sids[1], "blue").await;
    n2.join(n2.sids[0], "blue").await;

    // To everyone, from n1.
    n1.adapter.broadcast(event("all"), to_all()).await.unwrap();
    settle(&nodes, 1, "marker-1").await;
    let all = vec![sent("all")];
    assert_eq!(
        received(&nodes),
        vec![
            vec![all.clone(), all.clone()],
            vec![all.clone(), all.clone()],
            vec![all.clone()]
        ]
    );

    // To a room, from a node with no member in it (room channel routing).
    n2.adapter
        .broadcast(event("red"), to_rooms(&["red"], &[]))
        .await
        .unwrap();
    // To two rooms except a room, from n0: red ∪ blue minus red = blue.
    n0.adapter
        .broadcast(event("blue"), to_rooms(&["red", "blue"], &["red"]))
        .await
        .unwrap();
    settle(&nodes, 0, "marker-2").await;
    let r = received(&nodes);
    assert_eq!(r[0][0], vec![sent("all"), sent("red")]);
    assert_eq!(r[0][1], vec![sent("all")]);
    assert_eq!(r[1][0], vec![sent("all"), sent("red")]);
    assert_eq!(r[1][1], vec![sent("all"), sent("blue")]);
    assert_eq!(r[2][0], vec![sent("all"), sent("blue")]);

    // socket.broadcast() from n0s0: everyone but the sender; except by socket id: n1s1.
    let before = received(&nodes);
    let mut o = BroadcastOptions::new(n0.sids[0]);
    o.add_flag(BroadcastFlags::Broadcast);
    o.except.push(Room::Owned(n1.sids[1].to_string()));
    n0.adapter.broadcast(event("others"), o).await.unwrap();
    // A single socket of another node, addressed by its id (as Node peers and emitters do).
    n1.adapter
        .broadcast(event("only-n2s0"), to_rooms(&[n2.sids[0].as_str()], &[]))
        .await
        .unwrap();
    settle(&nodes, 2, "marker-3").await;
    let new = since(&before, &received(&nodes));
    let o = vec![sent("others")];
    assert_eq!(
        new,
        vec![
            vec![vec![], o.clone()],
            vec![o.clone(), vec![]],
            vec![vec![sent("others"), sent("only-n2s0")]],
        ]
    );
    assert_eq!(n0.handle.stats().published_count(MsgType::Broadcast), 3);
    assert_eq!(n2.handle.stats().received_count(MsgType::Broadcast), 6);
}

async fn fetch_sockets_and_all_rooms_collect_every_node(mode: PubSubMode) {
    let (_bus, nodes) = cluster(mode).await;
    let [n0, n1, n2] = &nodes;
    n0.join(n0.sids[1], "red").await;
    n2.join(n2.sids[0], "red").await;
    n1.join(n1.sids[0], "green").await;

    assert_eq!(n0.adapter.server_count().await.unwrap(), 3);

    // socketioxide's fetchSockets: local sockets, then the others' (ids of our nodes kept).
    let mut ids: Vec<Sid> = n1
        .adapter
        .fetch_sockets(to_rooms(&["red"], &[]))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.sort();
    assert_eq!(ids, vec![n0.sids[1], n2.sids[0]]);

    // The handle's fetchSockets: real ids and rooms, with the count of answers.
    let c = n2
        .handle
        .fetch_sockets("/", &[], &["red".into()])
        .await
        .unwrap();
    assert!(c.complete());
    assert_eq!((c.expected, c.received), (2, 2));
    let mut got: Vec<(String, Vec<String>)> = c
        .items
        .into_iter()
        .map(|s| {
            let mut rooms = s.rooms;
            rooms.sort();
            (s.id, rooms)
        })
        .collect();
    got.sort();
    let id = |s: Sid| s.to_string();
    assert_eq!(
        got,
        vec![
            (id(n0.sids[0]), vec![id(n0.sids[0])]),
            (id(n1.sids[0]), vec!["green".into(), id(n1.sids[0])]),
            (id(n1.sids[1]), vec![id(n1.sids[1])]),
        ]
    );

    // allRooms: named rooms of every node plus every socket's own-id room.
    let c = n0.handle.all_rooms("/").await.unwrap();
    assert!(c.complete());
    let mut want: Vec<String> = nodes
        .iter()
        .flat_map(|n| n.sids.iter().map(|s| s.to_string()))
        .chain(["red".to_string(), "green".to_string()])
        .collect();
    want.sort();
    assert_eq!(c.items, want);

    // socketioxide's rooms() without a filter is allRooms too.
    let mut rooms: Vec<String> = n1
        .adapter
        .rooms(to_all())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    rooms.sort();
    assert_eq!(rooms, want);
    if mode == PubSubMode::Classic {
        // n0's request and n1's own (every node sees its requests come back; not answered).
        assert_eq!(n1.handle.stats().received_count(MsgType::AllRooms), 2);
    } else {
        // No allRooms message in the sharded protocol: fetchSockets, own messages ignored.
        assert_eq!(n1.handle.stats().received_count(MsgType::AllRooms), 0);
        assert_eq!(n1.handle.stats().received_count(MsgType::FetchSockets), 2);
    }
}

async fn server_side_emit_reaches_the_other_nodes_and_collects_their_acks(mode: PubSubMode) {
    let (_bus, nodes) = cluster(mode).await;
    // (receiving node, data, wants_ack) of every serverSideEmit a handler saw.
    type Seen = Vec<(usize, Vec<serde_json::Value>, bool)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    for (i, n) in nodes.iter().enumerate() {
        let seen = seen.clone();
        n.handle.on_server_side_emit(move |e| {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, e.data, e.wants_ack));
            Some(json!(format!("answer-from-{i}")))
        });
    }
    let c = nodes[0]
        .handle
        .server_side_emit_with_ack("/", &[json!("ping"), json!(1)])
        .await
        .unwrap();
    assert!(c.complete());
    let mut answers = c.items;
    answers.sort_by_key(|v| v.to_string());
    assert_eq!(
        answers,
        vec![json!("answer-from-1"), json!("answer-from-2")]
    );

    nodes[2]
        .handle
        .server_side_emit("/", &[json!("no-ack")])
        .await
        .unwrap();
    eventually("serverSideEmit without ack on n0 and n1", || {
        seen.lock().unwrap_or_else(|e| e.into_inner()).len() == 4
    })
    .await;
    let mut got = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    got.sort_by_key(|(i, d, _)| (d.len(), *i));
    assert_eq!(
        got,
        vec![
            (0, vec![json!("no-ack")], false),
            (1, vec![json!("no-ack")], false),
            (1, vec![json!("ping"), json!(1)], true),
            (2, vec![json!("ping"), json!(1)], true),
        ],
        "the sender's own handler is never called"
    );
}

async fn sockets_join_leave_and_disconnect_apply_on_every_node(mode: PubSubMode) {
    let (_bus, nodes) = cluster(mode).await;
    let [n0, n1, n2] = &nodes;
    n0.join(n0.sids[0], "red").await;
    n1.join(n1.sids[1], "red").await;
    n2.join(n2.sids[0], "red").await;

    // io.in("red").socketsJoin("green"), from n1: every red member, the sender's included.
    n1.adapter
        .add_sockets(to_rooms(&["red"], &[]), "green")
        .await
        .unwrap();
    for (n, s) in [(n0, 0), (n1, 1), (n2, 0)] {
        let s = n.sids[s];
        eventually("join applied", || n.rooms_of(s).contains(&"green".into())).await;
    }
    assert_eq!(n0.rooms_of(n0.sids[1]), Vec::<String>::new());
    assert_eq!(n1.rooms_of(n1.sids[0]), Vec::<String>::new());
    // The new members are subscribed to green on their own (room sync after a remote join):
    // a broadcast to green from n0 reaches exactly them.
    eventually("green subscribed on n2", || {
        let h = n2.handle.clone();
        futures_util::FutureExt::now_or_never(h.subscribed_room_count("/"))
            .is_some_and(|r| r.is_ok_and(|n| n == 3))
    })
    .await;
    n0.adapter
        .broadcast(event("green"), to_rooms(&["green"], &[]))
        .await
        .unwrap();
    settle(&nodes, 0, "marker-1").await;
    let r = received(&nodes);
    let g = vec![sent("green")];
    assert_eq!(
        r,
        vec![vec![g.clone(), vec![]], vec![vec![], g.clone()], vec![g]]
    );

    // A remote socket leaves by id (io.in(<sid>).socketsLeave("red")), from n0.
    n0.adapter
        .del_sockets(to_rooms(&[n2.sids[0].as_str()], &[]), "red")
        .await
        .unwrap();
    eventually("leave applied on n2", || {
        n2.rooms_of(n2.sids[0]) == vec!["green".to_string()]
    })
    .await;
    assert_eq!(n1.rooms_of(n1.sids[1]), vec!["green", "red"]);

    // io.in("red").disconnectSockets(), from n2: n0s0 and n1s1 go, nobody else.
    n2.adapter
        .disconnect_socket(to_rooms(&["red"], &[]))
        .await
        .unwrap();
    eventually("disconnects", || {
        n0.ns.disconnected() == vec![n0.sids[0]] && n1.ns.disconnected() == vec![n1.sids[1]]
    })
    .await;
    settle(&nodes, 2, "marker-2").await;
    assert_eq!(n2.ns.disconnected(), Vec::<Sid>::new());
    assert_eq!(n0.ns.disconnected(), vec![n0.sids[0]]);
    assert_eq!(n1.ns.disconnected(), vec![n1.sids[1]]);
}

async fn broadcast_with_ack_collects_every_clients_ack(mode: PubSubMode) {
    let (_bus, nodes) = cluster(mode).await;
    let started = Instant::now();
    let stream = nodes[0]
        .adapter
        .broadcast_with_ack(event("ack-me"), to_all(), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let acks: Vec<(Sid, String)> = stream
        .map(|(sid, v)| match v {
            Ok(Value::Str(s, _)) => (sid, s.to_string()),
            other => panic!("unexpected ack {other:?}"),
        })
        .collect()
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "ends once every node counted and acked, not at the deadline"
    );
    // Local acks carry the socket id; remote ones Sid::ZERO (the Node protocol has no id).
    let mut got = acks.clone();
    got.sort();
    let mut want: Vec<(Sid, String)> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            n.sids.iter().map(move |s| {
                let from = if i == 0 { *s } else { Sid::ZERO };
                (from, format!("[\"ack:{s}\"]"))
            })
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    // Every socket got the packet once.
    for n in &nodes {
        for s in &n.sids {
            assert_eq!(n.ns.sent_to(*s).len(), 1);
        }
    }
    assert_eq!(
        nodes[0]
            .handle
            .stats()
            .request_timeout_count(MsgType::BroadcastWithAck),
        0
    );
}

async fn a_node_that_stops_answering_bounds_requests_by_their_timeout(mode: PubSubMode) {
    let (_bus, nodes) = cluster(mode).await;
    let [n0, n1, n2] = &nodes;
    n2.control.set_deaf(true); // still subscribed (counted), never answers
    for n in &nodes {
        n.handle.on_server_side_emit(|_| Some(json!("pong")));
    }

    let started = Instant::now();
    let c = n0.handle.fetch_sockets("/", &[], &[]).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= REQUEST_TIMEOUT && waited < REQUEST_TIMEOUT * 4,
        "{waited:?}"
    );
    assert!(!c.complete());
    assert_eq!((c.expected, c.received), (2, 1));
    let mut ids: Vec<String> = c.items.into_iter().map(|s| s.id).collect();
    ids.sort();
    let mut want: Vec<String> = n0
        .sids
        .iter()
        .chain(&n1.sids)
        .map(|s| s.to_string())
        .collect();
    want.sort();
    assert_eq!(ids, want, "what the live nodes answered");

    let c = n1.handle.all_rooms("/").await.unwrap();
    assert_eq!((c.expected, c.received), (2, 1));
    assert!(!c.items.contains(&n2.sids[0].to_string()));

    let c = n0
        .handle
        .server_side_emit_with_ack("/", &[json!("ping")])
        .await
        .unwrap();
    assert_eq!(c.items, vec![json!("pong")]);
    assert!(!c.complete());

    let started = Instant::now();
    let acks: Vec<_> = n1
        .adapter
        .broadcast_with_ack(event("ack-me"), to_all(), Some(REQUEST_TIMEOUT))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(started.elapsed() >= REQUEST_TIMEOUT);
    assert_eq!(acks.len(), 4, "n0's two and n1's two; n2 never counted");
    assert_eq!(n2.ns.sent_to(n2.sids[0]), Vec::<String>::new());

    let stats = n0.handle.stats();
    assert_eq!(stats.request_timeout_count(MsgType::FetchSockets), 1);
    assert_eq!(stats.request_timeout_count(MsgType::ServerSideEmit), 1);
    assert_eq!(
        n1.handle
            .stats()
            .request_timeout_count(MsgType::BroadcastWithAck),
        1
    );
}

async fn redis_down_fails_fast_and_still_delivers_locally(mode: PubSubMode) {
    let (_bus, nodes) = cluster(mode).await;
    let [n0, n1, _] = &nodes;
    n0.control.set_down(true);
    assert!(!n0.handle.redis_up());
    let started = Instant::now();
    assert!(n0.adapter.broadcast(event("down"), to_all()).await.is_err());
    assert!(n0.handle.fetch_sockets("/", &[], &[]).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "refused at once"
    );
    assert_eq!(n0.ns.sent_to(n0.sids[0]), vec![sent("down")]);
    assert_eq!(
        n0.handle.stats().dropped_count(DropReason::PublishFailed),
        1
    );

    n0.control.set_down(false);
    n0.adapter.broadcast(event("up"), to_all()).await.unwrap();
    eventually("delivery after recovery", || {
        n1.ns.sent_to(n1.sids[0]) == vec![sent("up")]
    })
    .await;
}

/// What a [`crate::RoomWatch`] was told: `(+|-, sid, room)`.
#[derive(Default)]
struct Watched(Mutex<Vec<(char, String, String)>>);

impl crate::RoomWatch for Watched {
    fn joined(&self, nsp: &str, sid: Sid, room: &str) {
        assert_eq!(nsp, "/");
        let mut w = self.0.lock().unwrap();
        w.push(('+', sid.to_string(), room.to_owned()));
    }
    fn left(&self, nsp: &str, sid: Sid, room: &str) {
        assert_eq!(nsp, "/");
        let mut w = self.0.lock().unwrap();
        w.push(('-', sid.to_string(), room.to_owned()));
    }
}

impl Watched {
    fn take(&self) -> Vec<(char, String, String)> {
        let mut w = std::mem::take(&mut *self.0.lock().unwrap());
        w.sort();
        w
    }
}

/// The room watch hears every operator join and leave applied to a node's own sockets, once,
/// wherever the operator ran; only actual changes; not a socket's own join.
async fn a_room_watch_hears_operator_joins_and_leaves_applied_here(mode: PubSubMode) {
    let (_bus, nodes) = cluster(mode).await;
    let [n0, n1, n2] = &nodes;
    let watches: Vec<Arc<Watched>> = nodes
        .iter()
        .map(|n| {
            let w = Arc::new(Watched::default());
            assert!(n.handle.set_room_watch(w.clone()));
            w
        })
        .collect();
    n0.join(n0.sids[0], "red").await; // a socket's own join: the application's to report
    n1.join(n1.sids[1], "red").await;
    n2.join(n2.sids[0], "red").await;
    n2.join(n2.sids[0], "green").await;
    // io.in("red").socketsJoin("green"), from n1.
    n1.adapter
        .add_sockets(to_rooms(&["red"], &[]), "green")
        .await
        .unwrap();
    eventually("joins applied", || {
        n0.rooms_of(n0.sids[0]).contains(&"green".into())
            && n1.rooms_of(n1.sids[1]).contains(&"green".into())
    })
    .await;
    settle(&nodes, 1, "marker-w1").await;
    let plus = |n: &Node, i: usize, room: &str| ('+', n.sids[i].to_string(), room.to_owned());
    let minus = |n: &Node, i: usize, room: &str| ('-', n.sids[i].to_string(), room.to_owned());
    assert_eq!(watches[0].take(), vec![plus(n0, 0, "green")]);
    assert_eq!(
        watches[1].take(),
        vec![plus(n1, 1, "green")],
        "once on the sender"
    );
    assert_eq!(watches[2].take(), vec![], "n2s0 was in green already");
    // A remote socket leaves by id, from n0; a room it is not in is not reported.
    n0.adapter
        .del_sockets(to_rooms(&[n2.sids[0].as_str()], &[]), vec!["red", "blue"])
        .await
        .unwrap();
    eventually("leave applied on n2", || {
        n2.rooms_of(n2.sids[0]) == vec!["green".to_string()]
    })
    .await;
    settle(&nodes, 0, "marker-w2").await;
    assert_eq!(watches[2].take(), vec![minus(n2, 0, "red")]);
    assert_eq!(watches[0].take(), vec![]);
    assert_eq!(watches[1].take(), vec![]);
    // A local-only operator (io.local().in(..).socketsLeave): applied and heard here only.
    let mut local = to_rooms(&["green"], &[]);
    local.add_flag(BroadcastFlags::Local);
    n1.adapter.del_sockets(local, "green").await.unwrap();
    assert_eq!(watches[1].take(), vec![minus(n1, 1, "green")]);
}

/// What other nodes' requests may cost a node is bounded (see `peer_budget`): past its answer
/// budget a node does not answer (a flood of 74-byte fetchSockets requests asked every node
/// for every socket it has, on the response channel every node reads), and past its awaited
/// acks a peer's broadcast-with-ack is delivered without acks and answered with a count of 0.
async fn what_peers_requests_cost_a_node_is_bounded(mode: PubSubMode) {
    let bus = MemoryBus::default();
    let n0 = node(&bus, 0, 1, mode).await;
    // n1: an answer budget of 1 byte/s (the first answer overdraws it), 1 awaited ack.
    let tight = AdapterConfig {
        request_timeout: REQUEST_TIMEOUT,
        pubsub: mode,
        peer_answer_rate: 1.0,
        max_peer_acks: 1,
        ..AdapterConfig::default()
    };
    let n1 = node_with(&bus, 1, 2, tight).await;
    let refused = |n: &Node| n.handle.stats().dropped_count(DropReason::RequestRefused);

    let c = n0.handle.fetch_sockets("/", &[], &[]).await.unwrap();
    assert!(c.complete(), "the first request is answered");
    assert_eq!(c.items.len(), 3);
    let c = n0.handle.fetch_sockets("/", &[], &[]).await.unwrap();
    assert_eq!(
        (c.expected, c.received),
        (1, 0),
        "the next is not: the budget is spent"
    );
    assert_eq!(c.items.len(), 1, "only n0's own socket");
    assert_eq!(refused(&n1), 1);
    // A request for one socket's room gets its small answer all the same.
    let one = n1.sids[0].to_string();
    let c = n0
        .handle
        .fetch_sockets("/", std::slice::from_ref(&one), &[])
        .await
        .unwrap();
    assert!(
        c.complete(),
        "a small answer is sent while the budget is spent"
    );
    assert_eq!(
        c.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![one]
    );
    assert_eq!(refused(&n1), 1);

    // n1's two sockets would need two awaited acks: delivered without, counted 0.
    let acks: Vec<_> = n0
        .adapter
        .broadcast_with_ack(event("ack-me"), to_all(), Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(acks.len(), 1, "n0's own socket's ack only");
    for s in &n1.sids {
        assert_eq!(n1.ns.sent_to(*s), vec![sent("ack-me")], "still delivered");
    }
    assert_eq!(refused(&n1), 2);
    assert_eq!(refused(&n0), 0);
}

/// Messages on the adapter's channels longer than `max_inbound_bytes` are dropped before
/// anything decodes them (anyone who can PUBLISH there sends them; decoding takes up to ~40
/// times their bytes), counted as `too_large`; shorter ones go on being delivered.
async fn messages_over_the_size_limit_are_dropped_undecoded(mode: PubSubMode) {
    let bus = MemoryBus::default();
    let n0 = node(&bus, 0, 1, mode).await;
    let small = AdapterConfig {
        request_timeout: REQUEST_TIMEOUT,
        pubsub: mode,
        max_inbound_bytes: 4096,
        ..AdapterConfig::default()
    };
    let n1 = node_with(&bus, 1, 1, small).await;
    n1.join(n1.sids[0], "red").await;
    let big = "x".repeat(8192);
    n0.adapter
        .broadcast(event(&big), to_rooms(&["red"], &[]))
        .await
        .unwrap();
    n0.adapter
        .broadcast(event("small"), to_rooms(&["red"], &[]))
        .await
        .unwrap();
    eventually("the small broadcast delivered", || {
        !n1.ns.sent_to(n1.sids[0]).is_empty()
    })
    .await;
    assert_eq!(n1.ns.sent_to(n1.sids[0]), vec![sent("small")]);
    assert_eq!(n1.handle.stats().dropped_count(DropReason::TooLarge), 1);
    assert_eq!(n1.handle.stats().decode_error_count(), 0, "never decoded");
}

/// Each flow above, in classic mode and in sharded mode (`dynamic`, Node's default).
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod classic {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::PubSubMode::Classic).await
            })*
        }
        mod sharded {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::PubSubMode::Sharded(super::SubscriptionMode::Dynamic)).await
            })*
        }
    };
}

in_both_modes!(
    broadcasts_reach_exactly_the_addressed_sockets,
    fetch_sockets_and_all_rooms_collect_every_node,
    server_side_emit_reaches_the_other_nodes_and_collects_their_acks,
    sockets_join_leave_and_disconnect_apply_on_every_node,
    a_room_watch_hears_operator_joins_and_leaves_applied_here,
    broadcast_with_ack_collects_every_clients_ack,
    a_node_that_stops_answering_bounds_requests_by_their_timeout,
    redis_down_fails_fast_and_still_delivers_locally,
    ensure_rooms_subscribes_just_the_joined_rooms,
    the_room_sync_runs_after_reported_changes_only,
    a_namespace_made_twice_at_once_keeps_the_instance_handed_over_last,
    what_peers_requests_cost_a_node_is_bounded,
    messages_over_the_size_limit_are_dropped_undecoded
);

/// socketioxide makes one instance of a dynamic namespace per CONNECT that arrives before the
/// first is in its map; the last `on_success` wins the path and the others are never closed.
/// The adapter must route the path's messages to the winner (they went to the first instance
/// made, whose sockets socketioxide no longer reaches) and retire the others: their room
/// channels stayed subscribed after the winner was deleted.
async fn a_namespace_made_twice_at_once_keeps_the_instance_handed_over_last(mode: PubSubMode) {
    let bus = MemoryBus::default();
    let config = AdapterConfig {
        request_timeout: REQUEST_TIMEOUT,
        pubsub: mode,
        room_sync_interval: Duration::from_millis(20),
        ..AdapterConfig::default()
    };
    let (ctr, control) = ctr_with(&bus, config);
    let (first_sid, last_sid) = (sid(0, 0), sid(0, 1));
    let first_ns = RecordingNs::new("/", &[first_sid]);
    let last_ns = first_ns.sibling(&[last_sid]);
    // Both made before either is handed over, as two CONNECTs at once.
    let first = Arc::new(RedisAdapter::new(
        &ctr,
        CoreLocalAdapter::new(first_ns.clone()),
    ));
    let last = Arc::new(RedisAdapter::new(
        &ctr,
        CoreLocalAdapter::new(last_ns.clone()),
    ));
    first.clone().init(|| {}).await.expect("init");
    // The first instance's socket joined a room before it was replaced.
    first.get_local().add_all(first_sid, "red");
    ctr.handle().sync_rooms("/").await.expect("room sync");
    let red = "socket.io#/#red#".to_string();
    assert!(control.channels().contains(&red));
    last.clone().init(|| {}).await.expect("init");
    last.get_local().add_all(last_sid, "blue");
    ctr.handle().sync_rooms("/").await.expect("room sync");

    // Another node broadcasts: the instance socketioxide kept receives it, once.
    let other = node(&bus, 1, 1, mode).await;
    other
        .adapter
        .broadcast(event("all"), to_all())
        .await
        .unwrap();
    eventually("the broadcast at the kept instance", || {
        last_ns.sent_to(last_sid) == vec![sent("all")]
    })
    .await;
    assert!(
        first_ns.sent_to(first_sid).is_empty(),
        "the replaced instance is retired"
    );
    // The replaced instance's room is reconciled away; the kept one's stays.
    eventually("the replaced instance's room channel dropped", || {
        !control.channels().contains(&red)
    })
    .await;
    assert!(
        control
            .channels()
            .contains(&"socket.io#/#blue#".to_string())
    );
    // Deleting the namespace (socketioxide closes the kept instance) leaves no channel of it.
    last.close().await.expect("close");
    eventually("every channel of the namespace unsubscribed", || {
        control
            .channels()
            .iter()
            .all(|c| !c.starts_with("socket.io#/#"))
    })
    .await;
}

/// With a long `room_full_sync_interval`, the periodic reconciliation lists the local
/// memberships only after a change was reported (`rooms_changed`, or a local socketsJoin /
/// socketsLeave the adapter applied itself): an unreported join stays unlisted (at every tick,
/// that listing was ~6 % of a gateway node's CPU at 10 broadcasts/s to its 1,000 sockets), and
/// a reported join or leave is reconciled within a tick.
async fn the_room_sync_runs_after_reported_changes_only(mode: PubSubMode) {
    let bus = MemoryBus::default();
    let config = AdapterConfig {
        request_timeout: REQUEST_TIMEOUT,
        pubsub: mode,
        room_sync_interval: Duration::from_millis(20),
        room_full_sync_interval: Duration::from_secs(3600),
        ..AdapterConfig::default()
    };
    let n = node_with(&bus, 0, 2, config).await;
    let has = |room: &str| {
        n.control
            .channels()
            .contains(&format!("socket.io#/#{room}#"))
    };
    n.local().add_all(n.sids[0], "red");
    tokio::time::sleep(Duration::from_millis(300)).await; // ~15 ticks
    assert!(!has("red"), "an unreported join is not listed by the ticks");
    n.handle.rooms_changed("/");
    eventually("the reported join's channel", || has("red")).await;
    // A report counts for two ticks (it may come just before the change): let both run.
    eventually("the report's ticks spent", || {
        n.handle.rooms_changed_ticks("/") == 0
    })
    .await;

    n.local().del(n.sids[0], vec![Room::Borrowed("red")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(has("red"), "an unreported leave waits for the safety net");
    n.handle.rooms_changed("/");
    eventually("the reported leave's channel gone", || !has("red")).await;

    // The adapter's own local joins and leaves report themselves.
    let mut mine = BroadcastOptions::new(n.sids[1]);
    mine.server_id = Some(n.local().server_id());
    n.adapter.add_sockets(mine.clone(), "blue").await.unwrap();
    eventually("a local socketsJoin's channel", || has("blue")).await;
    n.adapter.del_sockets(mine, "blue").await.unwrap();
    eventually("a local socketsLeave's channel gone", || !has("blue")).await;
}

const DYNAMIC: PubSubMode = PubSubMode::Sharded(SubscriptionMode::Dynamic);

/// A room name of 20 characters: Node takes it for a socket id.
const ID_LIKE: &str = "ABCDEFGHIJKLMNOPQRST";

/// A join subscribes the joined room's channel only, without the full reconciliation (which
/// lists every local membership: per join, a join storm of N sockets was O(N²)); the full one
/// later agrees with it, and a room named like a local socket id stays that socket's channel.
async fn ensure_rooms_subscribes_just_the_joined_rooms(mode: PubSubMode) {
    let bus = MemoryBus::default();
    let quiet = AdapterConfig {
        request_timeout: REQUEST_TIMEOUT,
        pubsub: mode,
        // No periodic reconciliation during the test: what is subscribed is ensure's doing.
        room_sync_interval: Duration::from_secs(3600),
        ..AdapterConfig::default()
    };
    let n0 = node_with(&bus, 0, 2, quiet).await;
    let n1 = node(&bus, 1, 1, mode).await;
    let red = "socket.io#/#red#".to_string();
    let blue = "socket.io#/#blue#".to_string();
    let own = format!("socket.io#/#{}#", n0.sids[0]);
    assert!(n0.control.channels().contains(&own), "initial sync");
    n0.local().add_all(n0.sids[0], "red");
    n0.local().add_all(n0.sids[1], "blue");
    let before = n0.handle.subscribed_room_count("/").await.unwrap();
    let rooms = vec!["red".to_string(), "red".to_string(), n0.sids[0].to_string()];
    n0.handle.ensure_rooms("/", &rooms).await.unwrap();
    let chans = n0.control.channels();
    assert!(chans.contains(&red), "the joined room is subscribed");
    assert!(
        !chans.contains(&blue),
        "a room not named is left to the reconciliation"
    );
    assert_eq!(
        n0.handle.subscribed_room_count("/").await.unwrap(),
        before + 1,
        "red once; the own-id room is the socket's channel, already there"
    );
    // From another node, the joined room is reached at once.
    n1.adapter
        .broadcast(event("to-red"), to_rooms(&["red"], &[]))
        .await
        .unwrap();
    eventually("delivery to the joined room", || {
        n0.ns.sent_to(n0.sids[0]) == vec![sent("to-red")]
    })
    .await;
    // The full reconciliation then adds blue and takes nothing away.
    n0.handle.sync_rooms("/").await.unwrap();
    let chans = n0.control.channels();
    assert!(chans.contains(&red) && chans.contains(&blue) && chans.contains(&own));
}

#[tokio::test]
async fn sharded_room_channels_follow_the_subscription_mode() {
    let bus = MemoryBus::default();
    let mut seen = Vec::new();
    for (i, m) in [
        SubscriptionMode::Static,
        SubscriptionMode::Dynamic,
        SubscriptionMode::DynamicPrivate,
    ]
    .into_iter()
    .enumerate()
    {
        let n = node(&bus, i, 1, PubSubMode::Sharded(m)).await;
        n.join(n.sids[0], "red").await;
        n.join(n.sids[0], ID_LIKE).await;
        let uid = n.adapter.node_uid();
        let mut chans: Vec<String> = n
            .control
            .channels()
            .into_iter()
            .filter(|c| c.starts_with("socket.io#/#"))
            .map(|c| {
                c.replace(&uid, "<uid>")
                    .replace(n.sids[0].to_string().as_str(), "<sid>")
            })
            .collect();
        chans.sort();
        seen.push(chans);
        // Leaving the last room unsubscribes its channel.
        n.local().del(n.sids[0], vec![Room::Borrowed("red")]);
        n.handle.sync_rooms("/").await.expect("room sync");
        assert!(
            !n.control
                .channels()
                .contains(&"socket.io#/#red#".to_string())
        );
    }
    let base = ["socket.io#/#", "socket.io#/#<uid>#"];
    let with = |extra: &[&str]| {
        let mut v: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(
        seen[0],
        with(&[]),
        "static: main and response channels only"
    );
    assert_eq!(
        seen[1],
        with(&["socket.io#/#red#", "socket.io#/#<sid>#"]),
        "dynamic: public rooms and our (16-char) ids, not 20-char names"
    );
    assert_eq!(
        seen[2],
        with(&[
            "socket.io#/#red#",
            "socket.io#/#<sid>#",
            &format!("socket.io#/#{ID_LIKE}#")
        ]),
        "dynamic-private: every room"
    );
}

#[tokio::test]
async fn sharded_a_node_without_members_receives_nothing_for_the_room() {
    let (_bus, nodes) = cluster(DYNAMIC).await;
    let [n0, n1, n2] = &nodes;
    n1.join(n1.sids[0], "red").await;
    let before = n2.handle.stats().received_count(MsgType::Broadcast);
    for i in 0..10 {
        n0.adapter
            .broadcast(event(&format!("red-{i}")), to_rooms(&["red"], &[]))
            .await
            .unwrap();
    }
    settle(&nodes, 0, "marker-1").await;
    assert_eq!(n1.ns.sent_to(n1.sids[0]).len(), 11, "10 + the marker");
    assert_eq!(
        n2.handle.stats().received_count(MsgType::Broadcast),
        before + 1,
        "n2 got the marker only"
    );
}

#[tokio::test]
async fn sharded_node_messages_and_bad_input_on_a_room_channel() {
    use crate::driver::Driver;
    let (bus, nodes) = cluster(DYNAMIC).await;
    let [n0, n1, _] = &nodes;
    n0.join(n0.sids[0], "red").await;
    n1.join(n1.sids[0], "blue").await;
    // A raw connection to the bus, publishing what Node's createShardedAdapter would.
    let stats = Arc::new(AdapterStats::default());
    let log = Arc::new(LogLimiter::default());
    let registry = Arc::new(Registry::new(stats, log, crate::config::MAX_INBOUND_BYTES));
    let (raw, _) = bus.connect(&registry);
    let node_msg = |room: &str, ev: &str| {
        bytes::Bytes::from(format!(
            r#"{{"type":3,"data":{{"packet":{{"type":2,"data":["{ev}","world"],"nsp":"/"}},"opts":{{"rooms":["{room}"],"except":[],"flags":{{}}}}}},"uid":"0123456789abcdef","nsp":"/"}}"#
        ))
    };
    raw.publish("socket.io#/#red#".into(), node_msg("red", "hello"))
        .await
        .unwrap();
    eventually("Node's broadcast delivered", || {
        n0.ns.sent_to(n0.sids[0]) == vec![r#"2["hello","world"]"#.to_string()]
    })
    .await;
    // Garbage, another version's type, a truncated message: counted, nothing delivered.
    for bad in [
        &b"\x00\x01garbage"[..],
        br#"{"type":99,"uid":"x","nsp":"/"}"#,
        br#"{"type":3,"data":{"packet""#,
    ] {
        raw.publish("socket.io#/#red#".into(), bytes::Bytes::from_static(bad))
            .await
            .unwrap();
    }
    // Other rooms (and this one) go on.
    raw.publish("socket.io#/#blue#".into(), node_msg("blue", "still"))
        .await
        .unwrap();
    raw.publish("socket.io#/#red#".into(), node_msg("red", "again"))
        .await
        .unwrap();
    eventually("later messages delivered", || {
        n1.ns.sent_to(n1.sids[0]) == vec![r#"2["still","world"]"#.to_string()]
            && n0.ns.sent_to(n0.sids[0]).len() == 2
    })
    .await;
    assert_eq!(n0.handle.stats().decode_error_count(), 2);
    assert_eq!(n0.handle.stats().received_count(MsgType::Unknown), 1);
}

/// Leaves one socket out of every broadcast into `room`, and records what it was shown.
struct LeaveOut {
    room: &'static str,
    sid: Sid,
    seen: Mutex<Vec<(String, Vec<String>, String)>>,
}

impl crate::DeliveryFilter for LeaveOut {
    fn before_deliver(&self, nsp: &str, rooms: &[String], data: &Value) -> Vec<String> {
        let text = match data {
            Value::Str(t, _) => t.to_string(),
            Value::Bytes(_) => String::new(),
        };
        self.seen
            .lock()
            .unwrap()
            .push((nsp.to_owned(), rooms.to_vec(), text));
        if rooms.iter().any(|r| r == self.room) {
            vec![self.sid.to_string()]
        } else {
            Vec::new()
        }
    }
}

#[tokio::test]
async fn a_delivery_filter_leaves_sockets_out_of_other_nodes_broadcasts() {
    let (_bus, nodes) = cluster(PubSubMode::Classic).await;
    let [n0, n1, _n2] = &nodes;
    n0.join(n0.sids[0], "red").await;
    n1.join(n1.sids[0], "red").await;
    n1.join(n1.sids[1], "red").await;
    let filter = Arc::new(LeaveOut {
        room: "red",
        sid: n1.sids[0],
        seen: Mutex::default(),
    });
    assert!(n1.handle.set_delivery_filter(filter.clone()));
    assert!(!n1.handle.set_delivery_filter(filter.clone()), "set once");
    n0.adapter
        .broadcast(event("red"), to_rooms(&["red"], &[]))
        .await
        .unwrap();
    settle(&nodes, 0, "marker-f").await;
    let r = received(&nodes);
    assert_eq!(
        r[0][0],
        vec![sent("red")],
        "the origin node is not filtered"
    );
    assert_eq!(r[1][0], Vec::<String>::new(), "left out by the filter");
    assert_eq!(r[1][1], vec![sent("red")]);
    let seen = filter.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, "/");
    assert_eq!(seen[0].1, vec!["red".to_owned()]);
    assert_eq!(seen[0].2, "[\"msg\",\"red\"]");
}
