//! Per-namespace state that does not depend on socketioxide's emitter type: channel names, the
//! pending requests, the inbound queue, the room-channel subscriptions, and the request
//! operations (allRooms, fetchSockets, serverSideEmit) shared by the `CoreAdapter` methods and
//! the [`RedisAdapterHandle`](crate::RedisAdapterHandle).

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex, OnceLock, Weak,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
};

use bytes::Bytes;
use socketioxide_core::{Sid, adapter::Room};
use tokio::{sync::mpsc, task::AbortHandle};

use crate::{
    config::AdapterConfig,
    error::Error,
    foreign::as_sid,
    mode::{PubSubMode, SubscriptionMode, room_has_channel},
    pubsub::PubSub,
    requests::{Collected, Pending, collect},
    rooms::{BATCH, RoomDiff, RoomSubscriptions},
    sharded,
    stats::MsgType,
};
use sio_wire::{
    ChannelKind, ClusterMessage, FetchedSocket, NamespaceChannels, Request, Response, RoomsOpts,
};

/// Which kind of channel an inbound message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InKind {
    Broadcast,
    Request,
    Response,
    /// Sharded mode: a ClusterAdapter message on the main or a room channel.
    Cluster,
    /// Sharded mode: a ClusterAdapter message on this node's own response channel.
    ClusterResponse,
}

/// One message waiting in a namespace's inbound queue.
pub(crate) struct Inbound {
    pub(crate) kind: InKind,
    pub(crate) payload: Bytes,
}

impl Inbound {
    pub(crate) fn new(kind: InKind, payload: Bytes) -> Self {
        Self { kind, payload }
    }
}

/// What the namespace needs from the socketioxide-typed adapter.
pub(crate) trait LocalOps: Send + Sync {
    /// Local sockets matching `opts`, in the fetchSockets answer form.
    fn fetch_local(&self, opts: &RoomsOpts) -> Vec<FetchedSocket>;
    /// Every room with a local member, socket-id rooms included (Node's `rooms.keys()`).
    fn local_rooms(&self) -> Vec<String>;
    /// Rooms and socket ids whose channels this node must be subscribed to.
    fn wanted(&self) -> (HashSet<Room>, HashSet<Sid>);
    /// Whether `sid` is a socket of this node (O(1)).
    fn is_local(&self, sid: Sid) -> bool;
}

/// Subscribed room channels: rooms by name, socket ids as `Sid`.
#[derive(Default)]
struct Subscriptions {
    rooms: RoomSubscriptions<Room>,
    sids: RoomSubscriptions<Sid>,
}

/// Applies one diff in batched SUBSCRIBE/UNSUBSCRIBE commands, recording what succeeded.
async fn apply<K: std::hash::Hash + Eq + Clone + Ord>(
    pubsub: &PubSub,
    subs: &mut RoomSubscriptions<K>,
    diff: RoomDiff<K>,
    channel: impl Fn(&K) -> String,
) -> Result<(), Error> {
    for batch in diff.subscribe.chunks(BATCH) {
        let chans: Vec<String> = batch.iter().map(&channel).collect();
        pubsub.subscribe(chans).await?;
        subs.added(batch);
        pubsub.stats.add_room_channels(batch.len(), 0);
    }
    for batch in diff.unsubscribe.chunks(BATCH) {
        let chans: Vec<String> = batch.iter().map(&channel).collect();
        pubsub.unsubscribe(chans).await?;
        subs.removed(batch);
        pubsub.stats.add_room_channels(0, batch.len());
    }
    Ok(())
}

pub(crate) struct NsShared {
    pub(crate) nsp: String,
    /// This node's uid on the wire for this namespace.
    pub(crate) uid: String,
    pub(crate) channels: NamespaceChannels,
    /// This node's own response channel: classic `key-response#nsp#<uid>#` (where Node peers
    /// with `publishOnSpecificResponseChannel` answer), sharded `key#nsp#<uid>#`.
    pub(crate) specific_response: String,
    /// Classic or sharded.
    pub(crate) mode: PubSubMode,
    pub(crate) pending: Arc<Pending>,
    pub(crate) inbound: mpsc::Sender<Inbound>,
    pub(crate) inbound_rx: Mutex<Option<mpsc::Receiver<Inbound>>>,
    subs: tokio::sync::Mutex<Subscriptions>,
    pub(crate) ops: OnceLock<Weak<dyn LocalOps>>,
    pub(crate) tasks: Mutex<Vec<AbortHandle>>,
    /// A room sync is already scheduled (debounces syncs after remote join/leave).
    pub(crate) sync_scheduled: AtomicBool,
    /// How many more ticks of the room sync task reconcile because local membership was
    /// reported changed (a socket's own join, leave, disconnection; see
    /// [`RedisAdapterHandle::rooms_changed`](crate::RedisAdapterHandle::rooms_changed)). Two:
    /// a report may come just before the change itself (socketioxide leaves a disconnected
    /// socket's rooms after its disconnect handler has run), and a tick may fall in between.
    rooms_changed: AtomicU8,
    /// [`NsState`] as a number.
    state: AtomicU8,
}

/// Where an instance of a namespace is in its life. socketioxide may make several instances of
/// one dynamic namespace when CONNECTs to a new path arrive together: each runs `init`, and the
/// last to call its `on_success` is the one socketioxide keeps (its map insert overwrites). The
/// others are superseded: never closed by socketioxide, so the adapter retires them itself
/// ([`crate::registry::Registry::hand_over`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum NsState {
    Initializing = 0,
    /// Handed to socketioxide (`on_success` called).
    Active = 1,
    /// Replaced by a later instance at the same path: its tasks are stopped and its
    /// subscriptions (shared channel names) belong to the replacement.
    Superseded = 2,
}

impl NsShared {
    pub(crate) fn new(config: &AdapterConfig, nsp: &str, uid: String) -> Self {
        let (tx, rx) = mpsc::channel(config.inbound_queue.max(1));
        let channels = NamespaceChannels::new(&config.key, nsp);
        let specific_response = match config.pubsub {
            PubSubMode::Classic => channels.specific_response(&uid),
            PubSubMode::Sharded(_) => channels.room(&uid),
        };
        Self {
            specific_response,
            mode: config.pubsub,
            channels,
            nsp: nsp.to_owned(),
            uid,
            pending: Arc::new(Pending::default()),
            inbound: tx,
            inbound_rx: Mutex::new(Some(rx)),
            subs: tokio::sync::Mutex::new(Subscriptions::default()),
            ops: OnceLock::new(),
            tasks: Mutex::new(Vec::new()),
            sync_scheduled: AtomicBool::new(false),
            rooms_changed: AtomicU8::new(0),
            state: AtomicU8::new(NsState::Initializing as u8),
        }
    }

    pub(crate) fn state(&self) -> NsState {
        match self.state.load(Ordering::Acquire) {
            0 => NsState::Initializing,
            1 => NsState::Active,
            _ => NsState::Superseded,
        }
    }

    pub(crate) fn set_state(&self, state: NsState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Stops the inbound and room sync tasks.
    pub(crate) fn abort_tasks(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Takes over the subscriptions `old` (a superseded instance at the same path, on the same
    /// connection) recorded, and reconciles them on the next tick: the channels its sockets'
    /// rooms needed and this instance does not are unsubscribed then.
    pub(crate) async fn absorb(&self, old: &NsShared) {
        let mut theirs = old.subs.lock().await;
        let mut ours = self.subs.lock().await;
        ours.rooms.absorb(&mut theirs.rooms);
        ours.sids.absorb(&mut theirs.sids);
        drop((ours, theirs));
        self.mark_rooms_changed();
    }

    /// Records that local membership changed (see `rooms_changed`); O(1), no I/O.
    pub(crate) fn mark_rooms_changed(&self) {
        self.rooms_changed.store(2, Ordering::Release);
    }

    /// Ticks still owed to reported changes: the sync task reconciles while this is not 0.
    pub(crate) fn rooms_changed_ticks(&self) -> u8 {
        self.rooms_changed.load(Ordering::Acquire)
    }

    /// One owed tick was spent (after its reconciliation, so that a test seeing 0 knows both
    /// have run, and a report made meanwhile still gets its tick).
    pub(crate) fn spend_rooms_changed_tick(&self) {
        let _ = self
            .rooms_changed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// What a message received on `channel` is for this namespace (`None`: not its channel).
    pub(crate) fn classify(&self, channel: &str) -> Option<InKind> {
        let kind = self.channels.classify(channel)?;
        Some(match (self.mode, kind) {
            // Classic room channels carry the same message as the namespace channel; the room
            // is also in opts.rooms, so it is not kept.
            (PubSubMode::Classic, ChannelKind::Broadcast | ChannelKind::Room(_)) => {
                InKind::Broadcast
            }
            (PubSubMode::Classic, ChannelKind::Request) => InKind::Request,
            (PubSubMode::Classic, ChannelKind::Response | ChannelKind::SpecificResponse(_)) => {
                InKind::Response
            }
            (PubSubMode::Sharded(_), ChannelKind::Broadcast) => InKind::Cluster,
            (PubSubMode::Sharded(_), ChannelKind::Room(_)) => {
                if channel == self.specific_response {
                    InKind::ClusterResponse
                } else {
                    InKind::Cluster
                }
            }
            (PubSubMode::Sharded(_), _) => return None,
        })
    }

    /// The channel whose subscribers are the nodes serving this namespace (`PUBSUB NUMSUB` of
    /// the request channel, sharded: `PUBSUB SHARDNUMSUB` of the main channel).
    pub(crate) fn count_channel(&self) -> &str {
        match self.mode {
            PubSubMode::Classic => self.channels.request(),
            PubSubMode::Sharded(_) => self.channels.broadcast(),
        }
    }

    /// Publishes a request to the other nodes: classic on the request channel, sharded as a
    /// ClusterAdapter message on the main channel.
    pub(crate) async fn publish_request(
        &self,
        pubsub: &PubSub,
        t: MsgType,
        req: Request,
    ) -> Result<(), Error> {
        let (chan, payload) = match self.mode {
            PubSubMode::Classic => (self.channels.request().to_owned(), req.encode()?),
            PubSubMode::Sharded(_) => {
                let body = sharded::request_body(req)
                    .ok_or(Error::Unsupported("request without a sharded equivalent"))?;
                let msg = ClusterMessage {
                    uid: self.uid.clone(),
                    nsp: self.nsp.clone(),
                    body,
                };
                (self.channels.broadcast().to_owned(), msg.encode()?)
            }
        };
        pubsub.publish(chan, payload).await?;
        pubsub.stats.published(t);
        Ok(())
    }

    /// An answer to `requester`'s request, as the channel and bytes to publish: classic on the
    /// shared response channel, sharded on the requester's own channel.
    pub(crate) fn encode_response(
        &self,
        requester: &str,
        resp: Response,
    ) -> Result<(String, Vec<u8>), Error> {
        match self.mode {
            PubSubMode::Classic => Ok((self.channels.response().to_owned(), resp.encode()?)),
            PubSubMode::Sharded(_) => {
                let body = sharded::response_body(resp)
                    .ok_or(Error::Unsupported("response without a sharded equivalent"))?;
                let msg = ClusterMessage {
                    uid: self.uid.clone(),
                    nsp: self.nsp.clone(),
                    body,
                };
                Ok((self.channels.room(requester), msg.encode()?))
            }
        }
    }

    fn ops(&self) -> Option<Arc<dyn LocalOps>> {
        self.ops.get().and_then(Weak::upgrade)
    }

    /// The fixed channels: namespace broadcast, requests, responses (shared and specific);
    /// sharded: the main channel and this node's response channel.
    pub(crate) fn base_channels(&self) -> Vec<String> {
        if self.mode != PubSubMode::Classic {
            return vec![
                self.channels.broadcast().to_owned(),
                self.specific_response.clone(),
            ];
        }
        vec![
            self.channels.broadcast().to_owned(),
            self.channels.request().to_owned(),
            self.channels.response().to_owned(),
            self.specific_response.clone(),
        ]
    }

    /// Subscribes to the channels of rooms (and socket ids) that gained local members and
    /// unsubscribes from those that emptied, in batches. A failure leaves the namespace marked
    /// changed, so the next tick of the sync task tries again.
    pub(crate) async fn sync_rooms(&self, pubsub: &PubSub) -> Result<(), Error> {
        let res = self.reconcile(pubsub).await;
        if res.is_err() {
            self.mark_rooms_changed();
        }
        res
    }

    async fn reconcile(&self, pubsub: &PubSub) -> Result<(), Error> {
        let Some(ops) = self.ops() else {
            return Ok(());
        };
        let mut subs = self.subs.lock().await;
        let (mut rooms, sids) = ops.wanted();
        drop(ops);
        // A room named like one of our socket ids shares that socket's channel: keep it in one
        // set only, so leaving the room never unsubscribes the socket's channel.
        rooms.retain(|r| as_sid(r).is_none_or(|id| !sids.contains(&id)));
        // Sharded: only the rooms publishers address on a channel of their own (Node's
        // `computeChannel`); `static` subscribes none.
        let (rooms, sids) = match self.mode.sharded() {
            None => (rooms, sids),
            Some(m) => (
                rooms
                    .into_iter()
                    .filter(|r| room_has_channel(m, r))
                    .collect(),
                // socketioxide ids have 16 characters: never taken for a Node socket id.
                if m == SubscriptionMode::Static {
                    HashSet::new()
                } else {
                    sids
                },
            ),
        };
        let room_diff = subs.rooms.diff(&rooms);
        let sid_diff = subs.sids.diff(&sids);
        if room_diff.is_empty() && sid_diff.is_empty() {
            return Ok(());
        }
        apply(pubsub, &mut subs.rooms, room_diff, |r| {
            self.channels.room(r)
        })
        .await?;
        apply(pubsub, &mut subs.sids, sid_diff, |id| {
            self.channels.room(&id.to_string())
        })
        .await
    }

    /// Subscribes the channels of `rooms` that local sockets just joined (a socket's own id
    /// counts as its socket channel), those not subscribed yet, without listing the namespace:
    /// O(rooms), so a join or a connection costs the same at any number of local sockets
    /// (the full [`sync_rooms`](Self::sync_rooms) is O(local memberships), and a join storm of
    /// N sockets that ran it per join was O(N²)). Unsubscribing emptied rooms is left to the
    /// periodic reconciliation. Same rules as `sync_rooms`: a room named like a local socket id
    /// is that socket's channel; sharded modes subscribe only rooms with a channel of their own.
    pub(crate) async fn ensure_rooms(
        &self,
        pubsub: &PubSub,
        rooms: &[String],
    ) -> Result<(), Error> {
        let res = self.subscribe_joined(pubsub, rooms).await;
        if res.is_err() {
            // The periodic reconciliation subscribes what is missing on its next tick.
            self.mark_rooms_changed();
        }
        res
    }

    async fn subscribe_joined(&self, pubsub: &PubSub, rooms: &[String]) -> Result<(), Error> {
        let Some(ops) = self.ops() else {
            return Ok(());
        };
        let sharded = self.mode.sharded();
        let mut subs = self.subs.lock().await;
        let mut new_rooms: Vec<Room> = Vec::new();
        let mut new_sids: Vec<Sid> = Vec::new();
        for r in rooms {
            match as_sid(r).filter(|id| ops.is_local(*id)) {
                Some(id) => {
                    if sharded != Some(SubscriptionMode::Static)
                        && !subs.sids.contains(&id)
                        && !new_sids.contains(&id)
                    {
                        new_sids.push(id);
                    }
                }
                None => {
                    let room = Room::from(r.clone());
                    if sharded.is_none_or(|m| room_has_channel(m, r))
                        && !subs.rooms.contains(&room)
                        && !new_rooms.contains(&room)
                    {
                        new_rooms.push(room);
                    }
                }
            }
        }
        drop(ops);
        apply(pubsub, &mut subs.rooms, RoomDiff::adding(new_rooms), |r| {
            self.channels.room(r)
        })
        .await?;
        apply(pubsub, &mut subs.sids, RoomDiff::adding(new_sids), |id| {
            self.channels.room(&id.to_string())
        })
        .await
    }

    /// Room and socket-id channels currently subscribed.
    pub(crate) async fn subscribed_rooms(&self) -> usize {
        let subs = self.subs.lock().await;
        subs.rooms.len() + subs.sids.len()
    }

    /// Unsubscribes everything of this namespace (adapter close).
    pub(crate) async fn unsubscribe_all(&self, pubsub: &PubSub) -> Result<(), Error> {
        let (rooms, sids) = {
            let mut subs = self.subs.lock().await;
            (subs.rooms.clear(), subs.sids.clear())
        };
        pubsub.stats.add_room_channels(0, rooms.len() + sids.len());
        let mut chans: Vec<String> = rooms.iter().map(|r| self.channels.room(r)).collect();
        chans.extend(sids.iter().map(|id| self.channels.room(&id.to_string())));
        chans.extend(self.base_channels());
        for batch in chans.chunks(BATCH) {
            pubsub.unsubscribe(batch.to_vec()).await?;
        }
        Ok(())
    }

    /// Other nodes listening on this namespace (`PUBSUB NUMSUB` minus this one).
    pub(crate) async fn remote_count(&self, pubsub: &PubSub) -> Result<usize, Error> {
        Ok(pubsub
            .server_count(self.count_channel())
            .await?
            .saturating_sub(1))
    }

    /// allRooms across the cluster (local rooms included). Sharded: the ClusterAdapter has no
    /// allRooms message, so the rooms are those of every socket fetchSockets returns (each
    /// socket's own-id room included, as Node's `rooms.keys()` has it).
    pub(crate) async fn all_rooms(&self, pubsub: &PubSub) -> Result<Collected<String>, Error> {
        let local = self.ops().map(|o| o.local_rooms()).unwrap_or_default();
        let mut out = if self.mode != PubSubMode::Classic {
            let c = self.fetch(pubsub, &RoomsOpts::default(), false).await?;
            Collected {
                items: c.items.into_iter().flat_map(|s| s.rooms).collect(),
                expected: c.expected,
                received: c.received,
            }
        } else {
            let expected = self.remote_count(pubsub).await?;
            if expected == 0 {
                Collected {
                    items: Vec::new(),
                    expected: 0,
                    received: 0,
                }
            } else {
                let mut guard = self.pending.register(expected + 1);
                let req = Request::AllRooms {
                    uid: Some(self.uid.clone()),
                    request_id: guard.id.clone(),
                };
                self.publish_request(pubsub, MsgType::AllRooms, req).await?;
                let c = collect(
                    &mut guard,
                    expected,
                    pubsub.config.request_timeout,
                    |r| match r {
                        Response::AllRooms { rooms, .. } => Some(rooms),
                        _ => None,
                    },
                )
                .await;
                if !c.complete() {
                    pubsub.stats.request_timeout(MsgType::AllRooms);
                }
                c
            }
        };
        let mut seen: HashSet<String> = local.into_iter().collect();
        seen.extend(out.items.drain(..));
        out.items = seen.into_iter().collect();
        out.items.sort_unstable();
        Ok(out)
    }

    /// fetchSockets across the cluster (local sockets first).
    pub(crate) async fn fetch(
        &self,
        pubsub: &PubSub,
        opts: &RoomsOpts,
        include_local: bool,
    ) -> Result<Collected<FetchedSocket>, Error> {
        let local = if include_local {
            self.ops().map(|o| o.fetch_local(opts)).unwrap_or_default()
        } else {
            Vec::new()
        };
        let expected = self.remote_count(pubsub).await?;
        if expected == 0 {
            return Ok(Collected {
                items: local,
                expected: 0,
                received: 0,
            });
        }
        let mut guard = self.pending.register(expected + 1);
        let req = Request::FetchSockets {
            uid: Some(self.uid.clone()),
            request_id: guard.id.clone(),
            opts: opts.clone(),
        };
        self.publish_request(pubsub, MsgType::FetchSockets, req)
            .await?;
        let mut c = collect(
            &mut guard,
            expected,
            pubsub.config.request_timeout,
            |r| match r {
                Response::FetchSockets { sockets, .. } => Some(sockets),
                _ => None,
            },
        )
        .await;
        if !c.complete() {
            pubsub.stats.request_timeout(MsgType::FetchSockets);
        }
        let mut items = local;
        items.append(&mut c.items);
        c.items = items;
        Ok(c)
    }

    /// serverSideEmit without ack.
    pub(crate) async fn server_side_emit(
        &self,
        pubsub: &PubSub,
        data: &[serde_json::Value],
    ) -> Result<(), Error> {
        let req = Request::ServerSideEmit {
            uid: Some(self.uid.clone()),
            request_id: None,
            data: data.iter().map(sio_wire::json::from_serde).collect(),
        };
        self.publish_request(pubsub, MsgType::ServerSideEmit, req)
            .await
    }

    /// serverSideEmit with ack: one answer per other node, until the request timeout.
    pub(crate) async fn server_side_emit_with_ack(
        &self,
        pubsub: &PubSub,
        data: &[serde_json::Value],
    ) -> Result<Collected<serde_json::Value>, Error> {
        let expected = self.remote_count(pubsub).await?;
        if expected == 0 {
            return Ok(Collected {
                items: Vec::new(),
                expected: 0,
                received: 0,
            });
        }
        let mut guard = self.pending.register(expected + 1);
        let req = Request::ServerSideEmit {
            uid: Some(self.uid.clone()),
            request_id: Some(guard.id.clone()),
            data: data.iter().map(sio_wire::json::from_serde).collect(),
        };
        self.publish_request(pubsub, MsgType::ServerSideEmit, req)
            .await?;
        let c = collect(
            &mut guard,
            expected,
            pubsub.config.request_timeout,
            |r| match r {
                Response::ServerSideEmitAck { data, .. } => {
                    Some(vec![sio_wire::json::to_serde(&data)])
                }
                _ => None,
            },
        )
        .await;
        if !c.complete() {
            pubsub.stats.request_timeout(MsgType::ServerSideEmit);
        }
        Ok(c)
    }
}
