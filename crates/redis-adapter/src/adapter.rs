//! The socketioxide `CoreAdapter` implementation, outbound side: local delivery through
//! `CoreLocalAdapter`, then the same operation for the other nodes in the
//! `@socket.io/redis-adapter` format (broadcasts, requests and the collection of their
//! answers). What other nodes send is handled by [`crate::inbound`].

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::BoxFuture;
use socketioxide_core::{
    Uid,
    adapter::{
        BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter, RemoteSocketData, Room,
        RoomParam, SocketEmitter, Spawnable,
        errors::{AdapterError, BroadcastError},
    },
    packet::Packet,
};

use crate::{
    ack_stream::{AckStream, RemoteAcks},
    ctr::RedisAdapterCtr,
    error::Error,
    local_ns::LocalNs,
    mode::PubSubMode,
    namespace::{LocalOps, NsShared, NsState},
    packets::to_node_packet,
    stats::{DropReason, MsgType},
    targets::{rooms_opts, to_wire_opts},
};
use sio_wire::{BroadcastMessage, ClusterBody, ClusterMessage, Flag, Request};

/// A socketioxide adapter speaking the `@socket.io/redis-adapter` 8.x protocol over Redis.
/// One instance per namespace; build it with
/// `SocketIo::builder().with_adapter::<RedisAdapter<_>>(ctr)`.
pub struct RedisAdapter<E> {
    /// This namespace on this node, shared with its inbound task.
    node: Arc<LocalNs<E>>,
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

impl<E: SocketEmitter> RedisAdapter<E> {
    async fn publish_request(&self, t: MsgType, req: Request) -> Result<(), Error> {
        self.node
            .ns
            .publish_request(&self.node.core.pubsub, t, req)
            .await
    }

    /// This namespace's uid on the wire (tests).
    #[cfg(test)]
    pub(crate) fn node_uid(&self) -> String {
        self.node.ns.uid.clone()
    }

    /// Sharded mode: the sender applies join/leave/disconnect itself (ClusterAdapter nodes
    /// ignore their own messages); classic: it is applied when the request comes back.
    fn sharded(&self) -> bool {
        self.node.ns.mode != PubSubMode::Classic
    }

    /// The broadcast message and its channel, in the namespace's protocol.
    fn broadcast_message(
        &self,
        packet: sio_wire::Packet,
        opts: sio_wire::BroadcastOptions,
    ) -> Result<(String, Vec<u8>), Error> {
        let ns = &self.node.ns;
        match ns.mode {
            PubSubMode::Classic => {
                let chan = ns.channels.broadcast_channel(&opts.rooms);
                let msg = BroadcastMessage {
                    uid: ns.uid.clone(),
                    packet,
                    opts,
                }
                .encode();
                Ok((chan, msg))
            }
            PubSubMode::Sharded(mode) => {
                // The sharded encoder goes through a dynamic value tree (a few allocations per
                // broadcast, not per socket): it must choose JSON or msgpack by looking for
                // binary anywhere in the message, as Node does.
                let msg = ClusterMessage {
                    uid: ns.uid.clone(),
                    nsp: ns.nsp.clone(),
                    body: ClusterBody::Broadcast {
                        packet,
                        request_id: None,
                        opts,
                    },
                };
                let chan = sio_wire::sharded_publish_channel(&ns.channels, &msg, mode);
                Ok((chan, msg.encode()?))
            }
        }
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
        let ns = Arc::new(NsShared::new(
            &core.pubsub.config,
            local.path(),
            uid.to_string(),
        ));
        core.namespaces.add(ns.clone());
        Self {
            node: Arc::new(LocalNs { local, core, ns }),
            uid,
        }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) -> Self::InitRes {
        InitRes(Box::pin(async move {
            let node = &self.node;
            let weak: Weak<dyn LocalOps> = Arc::downgrade(node) as Weak<dyn LocalOps>;
            let _ = node.ns.ops.set(weak);
            if let Err(e) = node.core.pubsub.subscribe(node.ns.base_channels()).await {
                // Never handed over: nothing else would take it out of the registry.
                node.core.namespaces.remove(&node.ns);
                return Err(e);
            }
            let rx = node
                .ns
                .inbound_rx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(rx) = rx {
                // The inbound task (crate::inbound) holds the namespace's local adapter until
                // `close` aborts it.
                let run = tokio::spawn(node.clone().run(rx));
                let core = node.core.clone();
                let ns = node.ns.clone();
                let sync = tokio::spawn(async move {
                    let config = &core.pubsub.config;
                    let mut tick = tokio::time::interval(config.room_sync_interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    // The first tick completes at once: the namespace has just been set up,
                    // with nothing to reconcile yet.
                    let mut last_full = tick.tick().await;
                    loop {
                        let now = tick.tick().await;
                        // A reported change, or the safety net's turn (every tick by default).
                        let full = now.duration_since(last_full) >= config.room_full_sync_interval;
                        let owed = ns.rooms_changed_ticks() > 0;
                        if !owed && !full {
                            continue;
                        }
                        if full {
                            last_full = now;
                        }
                        if let Err(e) = ns.sync_rooms(&core.pubsub).await
                            && core.warn_allowed()
                        {
                            tracing::warn!(nsp = %ns.nsp, "redis adapter room sync failed: {e}");
                        }
                        if owed {
                            ns.spend_rooms_changed_tick();
                        }
                    }
                });
                let mut tasks = node.ns.tasks.lock().unwrap_or_else(|e| e.into_inner());
                tasks.push(run.abort_handle());
                tasks.push(sync.abort_handle());
            }
            // socketioxide keeps the instance whose `on_success` runs last at this path; an
            // earlier one handed over is retired here, as socketioxide never closes it (its
            // inbound task would keep receiving this path's messages, and its room channels
            // would stay subscribed for good).
            for old in node.core.namespaces.hand_over(&node.ns, on_success) {
                tracing::debug!(nsp = %old.nsp, "a concurrent instance of this namespace replaced an earlier one");
                old.abort_tasks();
                // Its base channels are this instance's too (same path, same server uid).
                node.ns.absorb(&old).await;
            }
            Ok(())
        }))
    }

    async fn close(&self) -> Result<(), Self::Error> {
        self.node.ns.abort_tasks();
        // A superseded instance's channels (the same names) are its replacement's now.
        if self.node.ns.state() == NsState::Superseded {
            return Ok(());
        }
        self.node.core.namespaces.remove(&self.node.ns);
        // socketioxide's `delete_ns` polls this future once (`now_or_never`) and drops it, so
        // the unsubscription runs in a task of its own: it completes all the same.
        let (ns, core) = (self.node.ns.clone(), self.node.core.clone());
        let done = tokio::spawn(async move { ns.unsubscribe_all(&core.pubsub).await });
        done.await.unwrap_or(Ok(()))
    }

    async fn server_count(&self) -> Result<u16, Self::Error> {
        let n = self
            .node
            .core
            .pubsub
            .server_count(self.node.ns.count_channel())
            .await?;
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
                Ok(p) => Some((p, to_wire_opts(&opts, &self.node.core.foreign))),
                Err(e) => {
                    self.node.core.stats.dropped(DropReason::Unsupported, 1);
                    return Err(AdapterError::from(e).into());
                }
            }
        };
        // Allocations per broadcast, each needed once per message (not per socket): the wire
        // options copy the room names (the packet keeps its own), the Node packet is the JSON
        // text re-parsed into msgpack values (the two formats differ), and PUBLISH needs owned
        // bytes and channel name.
        let publish = async {
            let Some((p, wopts)) = remote else {
                return Ok(());
            };
            let (chan, msg) = self.broadcast_message(p, wopts)?;
            self.node.core.publish(chan, msg).await?;
            self.node.core.stats.published(MsgType::Broadcast);
            Ok::<(), Error>(())
        };
        let mut publish = std::pin::pin!(publish);
        // Polled once before local delivery: that encodes the message and queues the PUBLISH
        // in the Redis client, whose own task writes it while this node delivers locally, so
        // the other nodes' fan-out runs alongside this one's instead of after it. Local
        // delivery never waits for Redis (it does not depend on Redis being up).
        let early = futures_util::poll!(publish.as_mut());
        let local = self.node.local.broadcast(packet, opts);
        let remote = match early {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => publish.await,
        };
        remote.map_err(AdapterError::from)?;
        local.map_err(BroadcastError::from)
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Self::Error> {
        if opts.is_local(self.uid) {
            let (local, _) = self.node.local.broadcast_with_ack(packet, opts, timeout);
            return Ok(AckStream::new(local, None));
        }
        let node_packet = to_node_packet(&packet)?;
        let ack_timeout = timeout.unwrap_or(self.node.local.ack_timeout());
        let mut wopts = to_wire_opts(&opts, &self.node.core.foreign);
        wopts
            .flags
            .set(Flag::Timeout, ack_timeout.as_millis() as u64);
        let remote = match self.node.ns.remote_count(&self.node.core.pubsub).await {
            Ok(0) => None,
            Ok(n) => {
                let guard = self
                    .node
                    .ns
                    .pending
                    .register(self.node.core.pubsub.config.response_queue + n);
                let msg = Request::BroadcastWithAck {
                    uid: self.node.ns.uid.clone(),
                    request_id: guard.id.clone(),
                    packet: node_packet,
                    opts: wopts,
                };
                self.publish_request(MsgType::BroadcastWithAck, msg).await?;
                Some(RemoteAcks {
                    guard,
                    servers_left: n,
                    acks_left: 0,
                    deadline: Box::pin(tokio::time::sleep(ack_timeout)),
                    stats: self.node.core.stats.clone(),
                })
            }
            Err(e) => return Err(e),
        };
        let (local, _) = self.node.local.broadcast_with_ack(packet, opts, timeout);
        Ok(AckStream::new(local, remote))
    }

    async fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), Self::Error> {
        if opts.is_local(self.uid) {
            self.node
                .add_sockets(opts, rooms.into_room_iter().collect());
            self.node.ns.mark_rooms_changed();
            return Ok(());
        }
        // Classic: applied when the request comes back through Redis, here too (like Node).
        let rooms: Vec<String> = rooms.into_room_iter().map(|r| r.to_string()).collect();
        let msg = Request::SocketsJoin {
            uid: Some(self.node.ns.uid.clone()),
            opts: rooms_opts(to_wire_opts(&opts, &self.node.core.foreign)),
            rooms: rooms.clone(),
        };
        if self.sharded() {
            self.node
                .add_sockets(opts, rooms.into_iter().map(Room::Owned).collect());
            self.node.kick_room_sync();
        }
        self.publish_request(MsgType::SocketsJoin, msg).await
    }

    async fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), Self::Error> {
        if opts.is_local(self.uid) {
            self.node
                .del_sockets(opts, rooms.into_room_iter().collect());
            self.node.ns.mark_rooms_changed();
            return Ok(());
        }
        let rooms: Vec<String> = rooms.into_room_iter().map(|r| r.to_string()).collect();
        let msg = Request::SocketsLeave {
            uid: Some(self.node.ns.uid.clone()),
            opts: rooms_opts(to_wire_opts(&opts, &self.node.core.foreign)),
            rooms: rooms.clone(),
        };
        if self.sharded() {
            self.node
                .del_sockets(opts, rooms.into_iter().map(Room::Owned).collect());
            self.node.kick_room_sync();
        }
        self.publish_request(MsgType::SocketsLeave, msg).await
    }

    async fn disconnect_socket(&self, opts: BroadcastOptions) -> Result<(), BroadcastError> {
        if opts.is_local(self.uid) {
            return self
                .node
                .local
                .disconnect_socket(opts)
                .map_err(BroadcastError::Socket);
        }
        let msg = Request::DisconnectSockets {
            uid: Some(self.node.ns.uid.clone()),
            opts: rooms_opts(to_wire_opts(&opts, &self.node.core.foreign)),
            close: false,
        };
        let local = if self.sharded() {
            self.node.local.disconnect_socket(opts)
        } else {
            Ok(())
        };
        self.publish_request(MsgType::DisconnectSockets, msg)
            .await
            .map_err(AdapterError::from)?;
        local.map_err(BroadcastError::Socket)
    }

    async fn rooms(&self, opts: BroadcastOptions) -> Result<Vec<Room>, Self::Error> {
        if opts.is_local(self.uid) {
            return Ok(self.node.local.rooms(opts).into_iter().collect());
        }
        let unfiltered = opts.rooms.is_empty() && opts.except.is_empty() && opts.sid.is_none();
        if unfiltered {
            // allRooms (type 1), what Node's `io.of(nsp).adapter.allRooms()` sends.
            let c = self.node.ns.all_rooms(&self.node.core.pubsub).await?;
            return Ok(c.items.into_iter().map(Room::Owned).collect());
        }
        // Rooms of the matching sockets only (e.g. a RemoteSocket's rooms): Node's allRooms has
        // no filter, so ask fetchSockets (type 5) and take the union of the sockets' rooms,
        // leaving out each socket's own id room as socketioxide does.
        let wopts = rooms_opts(to_wire_opts(&opts, &self.node.core.foreign));
        let mut rooms: HashSet<Room> = self.node.local.rooms(opts);
        let c = self
            .node
            .ns
            .fetch(&self.node.core.pubsub, &wopts, false)
            .await?;
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
            return Ok(self.node.local.fetch_sockets(opts));
        }
        let wopts = rooms_opts(to_wire_opts(&opts, &self.node.core.foreign));
        let mut out = self.node.local.fetch_sockets(opts);
        let c = self
            .node
            .ns
            .fetch(&self.node.core.pubsub, &wopts, false)
            .await?;
        // Sockets of Node peers have 20-char ids that socketioxide's `Sid` cannot hold: they
        // get stand-in ids (crate::foreign), turned back into theirs on the wire. The Node
        // protocol does not say which node owns a socket: remote sockets get `Uid::ZERO`, so
        // operations on them go through Redis.
        out.extend(c.items.into_iter().filter_map(|s| {
            Some(RemoteSocketData {
                id: self.node.core.foreign.sid_for(&s.id)?,
                server_id: Uid::ZERO,
                ns: self.node.local.path().clone(),
            })
        }));
        Ok(out)
    }

    fn get_local(&self) -> &CoreLocalAdapter<E> {
        &self.node.local
    }
}
