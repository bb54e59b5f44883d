//! The socketioxide `CoreAdapter` implementation: local delivery through `CoreLocalAdapter`,
//! cluster traffic in the `@socket.io/redis-adapter` format, and the namespace task that applies
//! broadcasts and answers requests arriving from other nodes (Node or Rust).

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::{Arc, Weak, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};

use fred::interfaces::PubsubInterface;
use futures_util::{StreamExt, future::BoxFuture};
use serde_json::json;
use socketioxide_core::{
    Sid, Uid, Value,
    adapter::{
        BroadcastFlags, BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter,
        RemoteSocketData, Room, RoomParam, SocketEmitter, Spawnable,
        errors::{AdapterError, BroadcastError},
    },
    packet::{Packet, PacketData},
};

use crate::{
    Error, RedisAdapterCtr,
    ack_stream::{AckStream, RemoteAcks},
    connection::{Core, ServerSideEmit},
    namespace::{InKind, Inbound, LocalOps, NsShared},
    requests::Dispatch,
    stats::{DropReason, MsgType},
    targets::{self, Targets, all_opts, as_sid, rooms_opts, to_wire_opts},
};
use sio_wire::{
    BroadcastMessage, BroadcastOptions as WireOpts, FetchedSocket, Flag, Packet as WirePacket,
    Request, Response, RoomsOpts, WireError, packet_type,
};

/// Attachments of a text event without binaries.
static NO_ATTACHMENTS: std::collections::VecDeque<bytes::Bytes> = std::collections::VecDeque::new();

/// A socketioxide adapter speaking the `@socket.io/redis-adapter` 8.x protocol over fred.
/// One instance per namespace; build it with
/// `SocketIo::builder().with_adapter::<RedisAdapter<_>>(ctr)`.
pub struct RedisAdapter<E> {
    local: CoreLocalAdapter<E>,
    core: Arc<Core>,
    ns: Arc<NsShared>,
    uid: Uid,
}

impl<E> DefinedAdapter for RedisAdapter<E> {}

/// Future returned by `init`: subscribes the namespace's channels and starts its tasks.
/// socketioxide awaits it (`io.ns(..).await`) or spawns it.
pub struct InitRes(BoxFuture<'static, Result<(), Error>>);

impl Future for InitRes {
    type Output = Result<(), Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl Spawnable for InitRes {
    fn spawn(self) {
        tokio::spawn(async move {
            if let Err(e) = self.0.await {
                tracing::error!("redis adapter init failed: {e}");
            }
        });
    }
}

/// socketioxide packet -> Node packet. Only text-parser events can be carried.
fn to_node_packet(packet: &Packet) -> Result<WirePacket, Error> {
    match &packet.inner {
        PacketData::Event(Value::Str(text, bins), _)
        | PacketData::BinaryEvent(Value::Str(text, bins), _) => Ok(WirePacket::with_data(
            packet.ns.as_str(),
            sio_wire::from_placeholder_json(text, bins.as_ref().unwrap_or(&NO_ATTACHMENTS))?,
        )),
        _ => Err(Error::Unsupported(
            "only events of the common (text) parser",
        )),
    }
}

/// Node packet -> socketioxide event packet.
fn to_sio_packet(nsp: &str, p: WirePacket) -> Result<Packet, WireError> {
    let (text, bins) = sio_wire::into_placeholder_json(p.data)?.attachments_opt();
    Ok(Packet::event(nsp.to_owned(), Value::Str(text.into(), bins)))
}

fn is_event(p: &WirePacket) -> bool {
    p.packet_type == packet_type::EVENT || p.packet_type == packet_type::BINARY_EVENT
}

impl<E: SocketEmitter> RedisAdapter<E> {
    fn targets(&self, rooms: &[String], except: &[String], volatile: bool) -> Targets {
        targets::resolve(&self.local, rooms, except, volatile)
    }

    fn single(sid: Sid, volatile: bool) -> BroadcastOptions {
        let mut o = BroadcastOptions::new(sid);
        if volatile {
            o.add_flag(BroadcastFlags::Volatile);
        }
        o
    }

    fn deliver(&self, packet: Packet, opts: &WireOpts) {
        let volatile = opts.flags.volatile == Some(true);
        let failed = match self.targets(&opts.rooms, &opts.except, volatile) {
            Targets::Opts(o) => self
                .local
                .broadcast(packet, *o)
                .err()
                .map_or(0, |e| e.len()),
            Targets::Sids(sids) => sids
                .into_iter()
                .filter_map(|sid| {
                    self.local
                        .broadcast(packet.clone(), Self::single(sid, volatile))
                        .err()
                })
                .map(|e| e.len())
                .sum(),
        };
        if failed > 0 {
            self.core
                .stats
                .dropped(DropReason::LocalDelivery, failed as u64);
        }
    }

    fn decode_error(&self, what: &str, e: &dyn std::fmt::Display) {
        let n = self.core.stats.decode_error();
        if self.core.warn_allowed() {
            tracing::warn!(nsp = %self.ns.nsp, total = n, "redis adapter: undecodable {what}: {e}");
        }
    }

    /// The namespace task: applies every inbound message in order.
    async fn run(self: Arc<Self>, mut rx: tokio::sync::mpsc::Receiver<Inbound>) {
        while let Some(msg) = rx.recv().await {
            match msg.kind {
                InKind::Broadcast => self.on_broadcast(&msg.payload),
                InKind::Request => self.on_request(&msg.payload),
                InKind::Response => self.on_response(&msg.payload),
            }
        }
    }

    fn on_broadcast(&self, payload: &[u8]) {
        if sio_wire::peek_broadcast_uid(payload) == Some(self.ns.uid.as_str()) {
            return;
        }
        let m = match BroadcastMessage::decode(payload) {
            Ok(m) => m,
            Err(e) => return self.decode_error("broadcast", &e),
        };
        if m.uid == self.ns.uid {
            return;
        }
        self.core.stats.received(MsgType::Broadcast);
        if m.packet.nsp() != self.ns.nsp || !is_event(&m.packet) {
            return;
        }
        match to_sio_packet(&self.ns.nsp, m.packet) {
            Ok(packet) => self.deliver(packet, &m.opts),
            Err(e) => self.decode_error("broadcast data", &e),
        }
    }

    fn on_response(&self, payload: &[u8]) {
        let r = match Response::decode(payload) {
            Ok(r) => r,
            Err(e) => return self.decode_error("response", &e),
        };
        self.core.stats.received(MsgType::Response);
        match self.ns.pending.dispatch(r) {
            Dispatch::Delivered | Dispatch::Unknown => {}
            Dispatch::Full => self.core.stats.dropped(DropReason::QueueFull, 1),
        }
    }

    fn respond(&self, resp: Response) {
        let payload = match resp.encode() {
            Ok(p) => p,
            Err(e) => return self.decode_error("own response", &e),
        };
        let core = self.core.clone();
        let chan = self.ns.channels.response().to_owned();
        tokio::spawn(async move {
            if core.publish(chan, payload).await.is_ok() {
                core.stats.published(MsgType::Response);
            }
        });
    }

    fn on_request(self: &Arc<Self>, payload: &[u8]) {
        let req = match Request::decode(payload) {
            Ok(r) => r,
            // Node ignores request types it does not know; so do we (counted, not an error).
            Err(WireError::UnknownType(_)) => {
                return self.core.stats.received(MsgType::Unknown);
            }
            Err(e) => return self.decode_error("request", &e),
        };
        let stats = &self.core.stats;
        let own = |uid: &Option<String>| uid.as_deref() == Some(self.ns.uid.as_str());
        match req {
            Request::Sockets {
                uid,
                request_id,
                rooms,
            } => {
                stats.received(MsgType::FetchSockets);
                if own(&uid) || self.ns.pending.is_pending(&request_id) {
                    return;
                }
                let opts = RoomsOpts {
                    rooms,
                    except: Vec::new(),
                };
                let sockets = self.fetch_local(&opts).into_iter().map(|s| s.id).collect();
                self.respond(Response::Sockets {
                    request_id,
                    sockets,
                });
            }
            Request::AllRooms { uid, request_id } => {
                stats.received(MsgType::AllRooms);
                if own(&uid) || self.ns.pending.is_pending(&request_id) {
                    return;
                }
                let rooms = self.local_rooms();
                self.respond(Response::AllRooms { request_id, rooms });
            }
            // Applied by every node, the sender included (Node semantics).
            Request::SocketsJoin { opts, rooms, .. } => {
                stats.received(MsgType::SocketsJoin);
                self.apply_join(&opts, rooms, false);
            }
            Request::SocketsLeave { opts, rooms, .. } => {
                stats.received(MsgType::SocketsLeave);
                self.apply_join(&opts, rooms, true);
            }
            Request::RemoteJoin {
                request_id,
                sid,
                room,
                ..
            } => {
                stats.received(MsgType::SocketsJoin);
                self.legacy_join(request_id, &sid, room, false);
            }
            Request::RemoteLeave {
                request_id,
                sid,
                room,
                ..
            } => {
                stats.received(MsgType::SocketsLeave);
                self.legacy_join(request_id, &sid, room, true);
            }
            Request::DisconnectSockets { opts, .. } => {
                stats.received(MsgType::DisconnectSockets);
                self.apply_disconnect(&opts);
            }
            Request::RemoteDisconnect {
                request_id, sid, ..
            } => {
                stats.received(MsgType::DisconnectSockets);
                if let Some(id) = as_sid(&sid).filter(|id| self.is_local_socket(*id)) {
                    let _ = self.local.disconnect_socket(BroadcastOptions::new(id));
                    if let Some(request_id) = request_id {
                        self.respond(Response::Done { request_id });
                    }
                }
            }
            Request::FetchSockets {
                uid,
                request_id,
                opts,
            } => {
                stats.received(MsgType::FetchSockets);
                if own(&uid) || self.ns.pending.is_pending(&request_id) {
                    return;
                }
                let sockets = self.fetch_local(&opts);
                self.respond(Response::FetchSockets {
                    request_id,
                    sockets,
                });
            }
            Request::ServerSideEmit {
                uid,
                request_id,
                data,
            } => {
                stats.received(MsgType::ServerSideEmit);
                if own(&uid) {
                    return;
                }
                let handler = self
                    .core
                    .sse_handler
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let answer = handler.and_then(|h| {
                    h(ServerSideEmit {
                        nsp: self.ns.nsp.clone(),
                        data: data.iter().map(sio_wire::json::to_serde).collect(),
                        wants_ack: request_id.is_some(),
                    })
                });
                if let Some(request_id) = request_id {
                    // Always answer, so a Node peer's serverSideEmit never waits on us.
                    let data = answer
                        .as_ref()
                        .map(sio_wire::json::from_serde)
                        .unwrap_or(sio_wire::Value::Nil);
                    self.respond(Response::ServerSideEmitAck { request_id, data });
                }
            }
            Request::BroadcastWithAck {
                uid,
                request_id,
                packet,
                opts,
            } => {
                stats.received(MsgType::BroadcastWithAck);
                if uid == self.ns.uid {
                    return;
                }
                self.answer_broadcast_with_ack(request_id, packet, opts);
            }
        }
    }

    /// Legacy single-socket join/leave `{sid, room}`: the owner applies it and confirms.
    fn legacy_join(
        self: &Arc<Self>,
        request_id: Option<String>,
        sid: &str,
        room: String,
        leave: bool,
    ) {
        if let Some(id) = as_sid(sid).filter(|id| self.is_local_socket(*id)) {
            let opts = RoomsOpts {
                rooms: vec![id.to_string()],
                except: Vec::new(),
            };
            self.apply_join(&opts, vec![room], leave);
            if let Some(request_id) = request_id {
                self.respond(Response::Done { request_id });
            }
        }
    }

    fn is_local_socket(&self, sid: Sid) -> bool {
        targets::is_local_socket(&self.local, sid)
    }

    fn apply_join(self: &Arc<Self>, opts: &RoomsOpts, rooms: Vec<String>, leave: bool) {
        let rooms: Vec<Room> = rooms.into_iter().map(Room::Owned).collect();
        match self.targets(&opts.rooms, &opts.except, false) {
            Targets::Opts(o) if leave => self.local.del_sockets(*o, rooms),
            Targets::Opts(o) => self.local.add_sockets(*o, rooms),
            Targets::Sids(sids) => {
                for sid in sids {
                    if leave {
                        self.local.del(sid, rooms.clone());
                    } else {
                        self.local.add_all(sid, rooms.clone());
                    }
                }
            }
        }
        self.kick_room_sync();
    }

    fn apply_disconnect(&self, opts: &RoomsOpts) {
        match self.targets(&opts.rooms, &opts.except, false) {
            Targets::Opts(o) => {
                let _ = self.local.disconnect_socket(*o);
            }
            Targets::Sids(sids) => {
                for sid in sids {
                    let _ = self.local.disconnect_socket(BroadcastOptions::new(sid));
                }
            }
        }
    }

    /// Broadcasts a peer's packet with acks to local clients, reports the client count (type 8)
    /// and forwards each client's first ack argument (type 9).
    fn answer_broadcast_with_ack(
        self: &Arc<Self>,
        request_id: String,
        packet: WirePacket,
        opts: WireOpts,
    ) {
        let sio = match to_sio_packet(&self.ns.nsp, packet) {
            Ok(p) => p,
            Err(e) => return self.decode_error("broadcast-with-ack data", &e),
        };
        let timeout = opts
            .flags
            .timeout
            .map(Duration::from_millis)
            .or(Some(self.local.ack_timeout()));
        let (stream, count) = match self.targets(&opts.rooms, &opts.except, false) {
            Targets::Opts(o) => {
                let (s, c) = self.local.broadcast_with_ack(sio, *o, timeout);
                (s.boxed(), c)
            }
            Targets::Sids(sids) => {
                let mut streams = Vec::new();
                let mut count = 0;
                for sid in sids {
                    let (s, c) = self.local.broadcast_with_ack(
                        sio.clone(),
                        BroadcastOptions::new(sid),
                        timeout,
                    );
                    count += c;
                    streams.push(s.boxed());
                }
                (futures_util::stream::select_all(streams).boxed(), count)
            }
        };
        let core = self.core.clone();
        let chan = self.ns.channels.response().to_owned();
        tokio::spawn(async move {
            let publish = async |resp: Response| {
                let Ok(msg) = resp.encode() else { return false };
                let ok = core.publish(chan.clone(), msg).await.is_ok();
                if ok {
                    core.stats.published(MsgType::Response);
                }
                ok
            };
            let count = Response::BroadcastClientCount {
                request_id: request_id.clone(),
                client_count: u64::from(count),
            };
            if !publish(count).await {
                return;
            }
            let mut stream = stream;
            while let Some((_sid, res)) = stream.next().await {
                let Ok(Value::Str(text, bins)) = res else {
                    continue;
                };
                let att = bins.as_ref().unwrap_or(&NO_ATTACHMENTS);
                // Node forwards the first ack argument only.
                let first = match sio_wire::from_placeholder_json(&text, att) {
                    Ok(sio_wire::Value::Array(mut a)) if !a.is_empty() => a.swap_remove(0),
                    Ok(sio_wire::Value::Array(_)) => sio_wire::Value::Nil,
                    Ok(other) => other,
                    Err(_) => continue,
                };
                publish(Response::BroadcastAck {
                    request_id: request_id.clone(),
                    packet: first,
                })
                .await;
            }
        });
    }

    /// Runs a room sync soon (after a remote join/leave changed local membership).
    /// A burst of join/leave requests schedules one sync, not one per request.
    fn kick_room_sync(self: &Arc<Self>) {
        if self.ns.sync_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let core = self.core.clone();
        let ns = self.ns.clone();
        tokio::spawn(async move {
            // Cleared before computing, so a change made during this sync schedules another.
            ns.sync_scheduled.store(false, Ordering::Release);
            if let Err(e) = ns.sync_rooms(&core).await
                && core.warn_allowed()
            {
                tracing::warn!(nsp = %ns.nsp, "redis adapter room sync failed: {e}");
            }
        });
    }

    async fn publish_request(&self, t: MsgType, payload: Vec<u8>) -> Result<(), Error> {
        self.core
            .publish(self.ns.channels.request().to_owned(), payload)
            .await?;
        self.core.stats.published(t);
        Ok(())
    }
}

impl<E: SocketEmitter> LocalOps for RedisAdapter<E> {
    fn fetch_local(&self, opts: &RoomsOpts) -> Vec<FetchedSocket> {
        let sids = match self.targets(&opts.rooms, &opts.except, false) {
            Targets::Opts(o) => self.local.sockets(*o),
            Targets::Sids(s) => s,
        };
        let handshake = sio_wire::json::from_serde(&json!({
            "headers": {}, "time": "", "address": "", "xdomain": false,
            "secure": false, "issued": 0, "url": "", "query": {}, "auth": {}
        }));
        sids.into_iter()
            .map(|sid| {
                let id = sid.to_string();
                let mut rooms: Vec<String> = self
                    .local
                    .socket_rooms(sid)
                    .into_iter()
                    .map(|r| r.to_string())
                    .collect();
                // Node lists a socket's own-id room; socketioxide sockets are in it only when
                // their server joins it (the gateway does).
                if !rooms.contains(&id) {
                    rooms.push(id.clone());
                }
                FetchedSocket {
                    // socketioxide does not expose the handshake or socket data to adapters;
                    // a Node-shaped minimal handshake keeps Node's RemoteSocket working.
                    handshake: handshake.clone(),
                    data: Some(sio_wire::Value::Map(Vec::new())),
                    id,
                    rooms,
                }
            })
            .collect()
    }

    fn local_rooms(&self) -> Vec<String> {
        // A set: sockets may also be in a room named after their id (the gateway joins it).
        let mut rooms: HashSet<String> = self
            .local
            .rooms(all_opts())
            .into_iter()
            .map(|r| r.to_string())
            .collect();
        rooms.extend(
            self.local
                .sockets(all_opts())
                .into_iter()
                .map(|s| s.to_string()),
        );
        rooms.into_iter().collect()
    }

    fn wanted(&self) -> (HashSet<Room>, HashSet<Sid>) {
        // O(local memberships) per reconciliation, without allocating a string per socket
        // (see AdapterConfig::room_sync_interval).
        let rooms = self.local.rooms(all_opts());
        let sids = self.local.sockets(all_opts()).into_iter().collect();
        (rooms, sids)
    }
}

impl<E: SocketEmitter> CoreAdapter<E> for RedisAdapter<E> {
    type Error = Error;
    type State = RedisAdapterCtr;
    type AckStream = AckStream<E>;
    type InitRes = InitRes;

    fn new(state: &Self::State, local: CoreLocalAdapter<E>) -> Self {
        let core = state.core.clone();
        let uid = local.server_id();
        let ns = Arc::new(NsShared::new(&core, local.path(), uid.to_string()));
        core.namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(ns.clone());
        Self {
            local,
            core,
            ns,
            uid,
        }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) -> Self::InitRes {
        InitRes(Box::pin(async move {
            let weak: Weak<dyn LocalOps> = Arc::downgrade(&self) as Weak<dyn LocalOps>;
            let _ = self.ns.ops.set(weak);
            self.core
                .subscriber
                .subscribe(self.ns.base_channels())
                .await?;
            let rx = self
                .ns
                .inbound_rx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(rx) = rx {
                let run = tokio::spawn(self.clone().run(rx));
                let core = self.core.clone();
                let ns = self.ns.clone();
                let sync = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(core.config.room_sync_interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        if let Err(e) = ns.sync_rooms(&core).await
                            && core.warn_allowed()
                        {
                            tracing::warn!(nsp = %ns.nsp, "redis adapter room sync failed: {e}");
                        }
                    }
                });
                let mut tasks = self.ns.tasks.lock().unwrap_or_else(|e| e.into_inner());
                tasks.push(run.abort_handle());
                tasks.push(sync.abort_handle());
            }
            on_success();
            Ok(())
        }))
    }

    async fn close(&self) -> Result<(), Self::Error> {
        for t in self
            .ns
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.core
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| !Arc::ptr_eq(n, &self.ns));
        self.ns.unsubscribe_all(&self.core).await
    }

    async fn server_count(&self) -> Result<u16, Self::Error> {
        let n = self.core.numsub(self.ns.channels.request()).await?;
        Ok(u16::try_from(n).unwrap_or(u16::MAX))
    }

    async fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), BroadcastError> {
        let remote = if opts.is_local(self.uid) {
            None
        } else {
            match to_node_packet(&packet) {
                Ok(p) => Some((p, to_wire_opts(&opts, &self.core.foreign))),
                Err(e) => {
                    self.core.stats.dropped(DropReason::Unsupported, 1);
                    return Err(AdapterError::from(e).into());
                }
            }
        };
        // Allocations per broadcast, each needed once per message (not per socket): the wire
        // options copy the room names (the packet keeps its own), the Node packet is the JSON
        // text re-parsed into msgpack values (the two formats differ), and PUBLISH needs owned
        // bytes and channel name.
        // Local delivery first: it does not depend on Redis being up.
        let local = self.local.broadcast(packet, opts);
        if let Some((p, wopts)) = remote {
            let chan = self.ns.channels.broadcast_channel(&wopts.rooms);
            let msg = BroadcastMessage {
                uid: self.ns.uid.clone(),
                packet: p,
                opts: wopts,
            }
            .encode();
            self.core
                .publish(chan, msg)
                .await
                .map_err(AdapterError::from)?;
            self.core.stats.published(MsgType::Broadcast);
        }
        local.map_err(BroadcastError::from)
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Self::Error> {
        if opts.is_local(self.uid) {
            let (local, _) = self.local.broadcast_with_ack(packet, opts, timeout);
            return Ok(AckStream::new(local, None));
        }
        let node_packet = to_node_packet(&packet)?;
        let ack_timeout = timeout.unwrap_or(self.local.ack_timeout());
        let mut wopts = to_wire_opts(&opts, &self.core.foreign);
        wopts
            .flags
            .set(Flag::Timeout, ack_timeout.as_millis() as u64);
        let remote = match self.ns.remote_count(&self.core).await {
            Ok(0) => None,
            Ok(n) => {
                let guard = self
                    .ns
                    .pending
                    .register(self.core.config.response_queue + n);
                let msg = Request::BroadcastWithAck {
                    uid: self.ns.uid.clone(),
                    request_id: guard.id.clone(),
                    packet: node_packet,
                    opts: wopts,
                }
                .encode()?;
                self.publish_request(MsgType::BroadcastWithAck, msg).await?;
                Some(RemoteAcks {
                    guard,
                    servers_left: n,
                    acks_left: 0,
                    deadline: Box::pin(tokio::time::sleep(ack_timeout)),
                    stats: self.core.stats.clone(),
                })
            }
            Err(e) => return Err(e),
        };
        let (local, _) = self.local.broadcast_with_ack(packet, opts, timeout);
        Ok(AckStream::new(local, remote))
    }

    async fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), Self::Error> {
        if opts.is_local(self.uid) {
            self.local.add_sockets(opts, rooms);
            return Ok(());
        }
        // Applied when the request comes back through Redis, here too (like Node).
        let rooms: Vec<String> = rooms.into_room_iter().map(|r| r.to_string()).collect();
        let msg = Request::SocketsJoin {
            uid: Some(self.ns.uid.clone()),
            opts: rooms_opts(to_wire_opts(&opts, &self.core.foreign)),
            rooms,
        }
        .encode()?;
        self.publish_request(MsgType::SocketsJoin, msg).await
    }

    async fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), Self::Error> {
        if opts.is_local(self.uid) {
            self.local.del_sockets(opts, rooms);
            return Ok(());
        }
        let rooms: Vec<String> = rooms.into_room_iter().map(|r| r.to_string()).collect();
        let msg = Request::SocketsLeave {
            uid: Some(self.ns.uid.clone()),
            opts: rooms_opts(to_wire_opts(&opts, &self.core.foreign)),
            rooms,
        }
        .encode()?;
        self.publish_request(MsgType::SocketsLeave, msg).await
    }

    async fn disconnect_socket(&self, opts: BroadcastOptions) -> Result<(), BroadcastError> {
        if opts.is_local(self.uid) {
            return self
                .local
                .disconnect_socket(opts)
                .map_err(BroadcastError::Socket);
        }
        let msg = Request::DisconnectSockets {
            uid: Some(self.ns.uid.clone()),
            opts: rooms_opts(to_wire_opts(&opts, &self.core.foreign)),
            close: false,
        }
        .encode()
        .map_err(|e| AdapterError::from(Error::from(e)))?;
        self.publish_request(MsgType::DisconnectSockets, msg)
            .await
            .map_err(AdapterError::from)?;
        Ok(())
    }

    async fn rooms(&self, opts: BroadcastOptions) -> Result<Vec<Room>, Self::Error> {
        if opts.is_local(self.uid) {
            return Ok(self.local.rooms(opts).into_iter().collect());
        }
        let unfiltered = opts.rooms.is_empty() && opts.except.is_empty() && opts.sid.is_none();
        if unfiltered {
            // allRooms (type 1), what Node's `io.of(nsp).adapter.allRooms()` sends.
            let c = self.ns.all_rooms(&self.core).await?;
            return Ok(c.items.into_iter().map(Room::Owned).collect());
        }
        // Rooms of the matching sockets only (e.g. a RemoteSocket's rooms): Node's allRooms has
        // no filter, so ask fetchSockets (type 5) and take the union of the sockets' rooms,
        // leaving out each socket's own id room as socketioxide does.
        let wopts = rooms_opts(to_wire_opts(&opts, &self.core.foreign));
        let mut rooms: HashSet<Room> = self.local.rooms(opts);
        let c = self.ns.fetch(&self.core, &wopts, false).await?;
        for s in c.items {
            rooms.extend(s.rooms.into_iter().filter(|r| *r != s.id).map(Room::Owned));
        }
        Ok(rooms.into_iter().collect())
    }

    async fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> Result<Vec<RemoteSocketData>, Self::Error> {
        if opts.is_local(self.uid) {
            return Ok(self.local.fetch_sockets(opts));
        }
        let wopts = rooms_opts(to_wire_opts(&opts, &self.core.foreign));
        let mut out = self.local.fetch_sockets(opts);
        let c = self.ns.fetch(&self.core, &wopts, false).await?;
        // Sockets of Node peers have 20-char ids that socketioxide's `Sid` cannot hold: they
        // get stand-in ids (crate::foreign), turned back into theirs on the wire. The Node
        // protocol does not say which node owns a socket: remote sockets get `Uid::ZERO`, so
        // operations on them go through Redis.
        out.extend(c.items.into_iter().filter_map(|s| {
            Some(RemoteSocketData {
                id: self.core.foreign.sid_for(&s.id)?,
                server_id: Uid::ZERO,
                ns: self.local.path().clone(),
            })
        }));
        Ok(out)
    }

    fn get_local(&self) -> &CoreLocalAdapter<E> {
        &self.local
    }
}

#[cfg(test)]
mod tests {
    use sio_wire::{EMITTER_UID, Value as V};

    use super::*;
    use crate::ack_stream::remote_ack_value;

    fn map(kv: Vec<(&str, V)>) -> V {
        V::Map(kv.into_iter().map(|(k, v)| (V::from(k), v)).collect())
    }
    fn ph(num: i64) -> V {
        map(vec![("_placeholder", V::from(true)), ("num", V::from(num))])
    }

    /// A broadcast as `@socket.io/redis-emitter` puts it on Redis, read back the way
    /// `on_broadcast` reads it.
    fn from_redis(args: Vec<V>) -> Result<Packet, WireError> {
        let bytes = BroadcastMessage {
            uid: EMITTER_UID.into(),
            packet: WirePacket::event("/", "e", args),
            opts: WireOpts::default(),
        }
        .encode();
        let m = BroadcastMessage::decode(&bytes)?;
        to_sio_packet("/", m.packet)
    }

    #[test]
    fn broadcasts_with_placeholder_shaped_data_are_not_delivered() {
        // The forged forms of issue 13: out of range beside a real binary, a fake aliasing
        // the real one, and a placeholder object without any binary.
        for args in [
            vec![map(vec![("a", V::Binary(vec![1])), ("b", ph(3))])],
            vec![V::Binary(vec![1]), ph(0)],
            vec![V::from("x"), map(vec![("deep", V::Array(vec![ph(0)]))])],
        ] {
            assert!(
                matches!(from_redis(args), Err(WireError::PlaceholderInData)),
                "refused before any socket sees it"
            );
        }
        // A Buffer from an emitter still becomes exactly one attachment.
        let p = from_redis(vec![map(vec![("file", V::Binary(vec![7, 8]))])]).unwrap();
        match p.inner {
            PacketData::BinaryEvent(Value::Str(text, Some(bins)), _) => {
                assert_eq!(&*text, r#"["e",{"file":{"_placeholder":true,"num":0}}]"#);
                assert_eq!(bins.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn outgoing_and_ack_paths_refuse_placeholder_objects_too() {
        // socketioxide's form: its own placeholders resolve, any other object with a
        // `_placeholder` key is refused before local delivery or PUBLISH.
        let bins: std::collections::VecDeque<bytes::Bytes> =
            [bytes::Bytes::from_static(b"x")].into();
        let event =
            |text: &'static str| Packet::event("/", Value::Str(text.into(), Some(bins.clone())));
        assert!(to_node_packet(&event(r#"["e",{"_placeholder":true,"num":0}]"#)).is_ok());
        for text in [
            r#"["e",{"x":{"_placeholder":false}}]"#,
            r#"["e",{"_placeholder":true,"num":1}]"#,
        ] {
            assert!(to_node_packet(&event(text)).is_err(), "{text}");
        }
        // A peer's ack argument shaped like a placeholder is not handed to the emitter.
        assert!(remote_ack_value(ph(0)).is_none());
        assert!(remote_ack_value(V::Binary(vec![1])).is_some());
    }
}
