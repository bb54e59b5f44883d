//! The inbound side of a namespace: the task that applies, in order, every message other
//! nodes (Node or Rust) sent on its channels: broadcasts are delivered to local sockets,
//! requests are answered or applied (join/leave/disconnect), responses are routed to the
//! request waiting for them.

use std::sync::{Arc, atomic::Ordering};

use futures_util::StreamExt;
use socketioxide_core::{
    Value,
    adapter::{BroadcastOptions, Room, SocketEmitter},
    packet::{Packet, PacketData},
};

use crate::{
    foreign::as_sid,
    local_ns::LocalNs,
    namespace::{InKind, Inbound, LocalOps},
    packets::{first_ack_arg, is_event, to_sio_packet},
    requests::Dispatch,
    server_side_emit::ServerSideEmit,
    stats::{DropReason, MsgType},
    targets::Targets,
};
use sio_wire::{
    BroadcastMessage, BroadcastOptions as WireOpts, Packet as WirePacket, Request, Response,
    RoomsOpts, WireError,
};

/// The requester of a classic request: answers go to the shared response channel.
const CLASSIC: &str = "";

impl<E: SocketEmitter> LocalNs<E> {
    /// Hands another node's serverSideEmit to the application's handler; returns what to
    /// answer when an ack is wanted (`Nil` without a handler or an answer: a requester is
    /// always answered, so a Node peer's serverSideEmit never waits on us). Both protocols.
    pub(crate) fn server_side_emit(
        &self,
        data: &[sio_wire::Value],
        wants_ack: bool,
    ) -> sio_wire::Value {
        let handler = self
            .core
            .sse_handler
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        handler
            .and_then(|h| {
                h(ServerSideEmit {
                    nsp: self.ns.nsp.clone(),
                    data: data.iter().map(sio_wire::json::to_serde).collect(),
                    wants_ack,
                })
            })
            .as_ref()
            .map(sio_wire::json::from_serde)
            .unwrap_or(sio_wire::Value::Nil)
    }

    pub(crate) fn deliver(&self, packet: Packet, opts: &WireOpts) {
        let volatile = opts.flags.volatile == Some(true);
        // The application's hook may leave some sockets out (see `delivery_filter`); without
        // one, or when it changes nothing, the options are used as they came.
        let extra = match (self.core.delivery_filter.get(), &packet.inner) {
            (Some(f), PacketData::Event(v, _)) => f.before_deliver(&self.ns.nsp, &opts.rooms, v),
            _ => Vec::new(),
        };
        let except: std::borrow::Cow<'_, [String]> = if extra.is_empty() {
            std::borrow::Cow::Borrowed(&opts.except)
        } else {
            std::borrow::Cow::Owned(opts.except.iter().cloned().chain(extra).collect())
        };
        let (targeted, failed) = match self.targets(&opts.rooms, &except, volatile) {
            Targets::Opts(o) => {
                // `CoreLocalAdapter::broadcast` does not say how many sockets it wrote to, so
                // they are listed once more to count deliveries (`events_sent_total`): one Vec
                // of ids per broadcast, O(recipients) like the broadcast itself.
                let targeted = self.local.sockets((*o).clone()).len();
                let failed = self
                    .local
                    .broadcast(packet, *o)
                    .err()
                    .map_or(0, |e| e.len());
                (targeted, failed)
            }
            Targets::Sids(sids) => {
                let targeted = sids.len();
                let failed = sids
                    .into_iter()
                    .filter_map(|sid| {
                        self.local
                            .broadcast(packet.clone(), Self::single(sid, volatile))
                            .err()
                    })
                    .map(|e| e.len())
                    .sum();
                (targeted, failed)
            }
        };
        self.core
            .stats
            .delivered(targeted.saturating_sub(failed) as u64);
        if failed > 0 {
            self.core
                .stats
                .dropped(DropReason::LocalDelivery, failed as u64);
        }
    }

    pub(crate) fn decode_error(&self, what: &str, e: &dyn std::fmt::Display) {
        let n = self.core.stats.decode_error();
        if self.core.warn_allowed() {
            tracing::warn!(nsp = %self.ns.nsp, total = n, "redis adapter: undecodable {what}: {e}");
        }
    }

    /// The namespace task: applies every inbound message in order.
    pub(crate) async fn run(self: Arc<Self>, mut rx: tokio::sync::mpsc::Receiver<Inbound>) {
        while let Some(msg) = rx.recv().await {
            match msg.kind {
                InKind::Broadcast => self.on_broadcast(&msg.payload),
                InKind::Request => self.on_request(&msg.payload),
                InKind::Response => self.on_response(&msg.payload),
                InKind::Cluster => self.on_cluster(&msg.payload, false),
                InKind::ClusterResponse => self.on_cluster(&msg.payload, true),
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

    /// Publishes an answer to `requester`'s request (in a task: the inbound queue never waits).
    /// Its size is taken from the answer budget (see `peer_budget`).
    pub(crate) fn respond(&self, requester: &str, resp: Response) {
        self.respond_within(requester, resp, None);
    }

    /// [`Self::respond`] for an answer listing this node's sockets: one over
    /// [`SMALL_ANSWER`](crate::peer_budget::SMALL_ANSWER) bytes is not sent while the answer
    /// budget is spent (`what` names the request in the warning). Small ones always are: a
    /// flood of whole-node requests must not starve the targeted ones (the gateway's check of a
    /// socket's own-id room asks every node for one room).
    pub(crate) fn respond_listing(&self, requester: &str, resp: Response, what: &str) {
        self.respond_within(requester, resp, Some(what));
    }

    fn respond_within(&self, requester: &str, resp: Response, listing: Option<&str>) {
        let (chan, payload) = match self.ns.encode_response(requester, resp) {
            Ok(p) => p,
            Err(e) => return self.decode_error("own response", &e),
        };
        if let Some(what) = listing
            && payload.len() > crate::peer_budget::SMALL_ANSWER
            && !self.may_answer(what)
        {
            return;
        }
        self.core.peer_budget.answered(payload.len());
        let core = self.core.clone();
        tokio::spawn(async move {
            if core.publish(chan, payload).await.is_ok() {
                core.stats.published(MsgType::Response);
            }
        });
    }

    /// May a request whose answer lists this node's sockets or rooms be answered now? When the
    /// answer budget is spent it is not (counted, warned at most once a second).
    pub(crate) fn may_answer(&self, what: &str) -> bool {
        if self.core.peer_budget.may_answer() {
            return true;
        }
        self.core.stats.dropped(DropReason::RequestRefused, 1);
        if self.core.warn_allowed() {
            tracing::warn!(nsp = %self.ns.nsp, request = what, "redis adapter: a peer's request not answered: answers passed their budget of {} bytes/s (a flood of requests?)", self.core.pubsub.config.peer_answer_rate);
        }
        false
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
                if own(&uid)
                    || self.ns.pending.is_pending(&request_id)
                    || (rooms.is_empty() && !self.may_answer("sockets"))
                {
                    return;
                }
                let opts = RoomsOpts {
                    rooms,
                    except: Vec::new(),
                };
                let sockets = self.fetch_local(&opts).into_iter().map(|s| s.id).collect();
                self.respond_listing(
                    CLASSIC,
                    Response::Sockets {
                        request_id,
                        sockets,
                    },
                    "sockets",
                );
            }
            Request::AllRooms { uid, request_id } => {
                stats.received(MsgType::AllRooms);
                if own(&uid)
                    || self.ns.pending.is_pending(&request_id)
                    || !self.may_answer("allRooms")
                {
                    return;
                }
                let rooms = self.local_rooms();
                self.respond(CLASSIC, Response::AllRooms { request_id, rooms });
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
                        self.respond(CLASSIC, Response::Done { request_id });
                    }
                }
            }
            Request::FetchSockets {
                uid,
                request_id,
                opts,
            } => {
                stats.received(MsgType::FetchSockets);
                if own(&uid)
                    || self.ns.pending.is_pending(&request_id)
                    || (opts.rooms.is_empty() && !self.may_answer("fetchSockets"))
                {
                    return;
                }
                let sockets = self.fetch_local(&opts);
                self.respond_listing(
                    CLASSIC,
                    Response::FetchSockets {
                        request_id,
                        sockets,
                    },
                    "fetchSockets",
                );
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
                let data = self.server_side_emit(&data, request_id.is_some());
                if let Some(request_id) = request_id {
                    self.respond(CLASSIC, Response::ServerSideEmitAck { request_id, data });
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
                self.answer_broadcast_with_ack(&uid, request_id, packet, opts);
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
                self.respond(CLASSIC, Response::Done { request_id });
            }
        }
    }

    pub(crate) fn apply_join(self: &Arc<Self>, opts: &RoomsOpts, rooms: Vec<String>, leave: bool) {
        let rooms: Vec<Room> = rooms.into_iter().map(Room::Owned).collect();
        match self.targets(&opts.rooms, &opts.except, false) {
            Targets::Opts(o) if leave => self.del_sockets(*o, rooms),
            Targets::Opts(o) => self.add_sockets(*o, rooms),
            Targets::Sids(sids) => {
                for sid in sids {
                    if leave {
                        self.del_one(sid, rooms.clone());
                    } else {
                        self.add_one(sid, rooms.clone());
                    }
                }
            }
        }
        self.kick_room_sync();
    }

    pub(crate) fn apply_disconnect(&self, opts: &RoomsOpts) {
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
    pub(crate) fn answer_broadcast_with_ack(
        self: &Arc<Self>,
        requester: &str,
        request_id: String,
        packet: WirePacket,
        opts: WireOpts,
    ) {
        let sio = match to_sio_packet(&self.ns.nsp, packet) {
            Ok(p) => p,
            Err(e) => return self.decode_error("broadcast-with-ack data", &e),
        };
        let timeout = Some(crate::peer_budget::ack_timeout(
            opts.flags.timeout,
            self.local.ack_timeout(),
        ));
        let targets = self.targets(&opts.rooms, &opts.except, false);
        let recipients = match &targets {
            Targets::Opts(o) => self.local.sockets((**o).clone()).len(),
            Targets::Sids(sids) => sids.len(),
        };
        let Some(places) = self.core.peer_budget.take_acks(recipients as u64) else {
            // Over the awaited-acks budget: delivered without acks, and the requester told
            // not to wait for any from here.
            self.core.stats.dropped(DropReason::RequestRefused, 1);
            if self.core.warn_allowed() {
                tracing::warn!(nsp = %self.ns.nsp, recipients, "redis adapter: a peer's broadcast-with-ack delivered without acks: up to {} acks are awaited for peers already (a flood of requests?)", self.core.pubsub.config.max_peer_acks);
            }
            self.deliver(sio, &opts);
            self.respond(
                requester,
                Response::BroadcastClientCount {
                    request_id,
                    client_count: 0,
                },
            );
            return;
        };
        let (stream, count) = match targets {
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
        let ns = self.ns.clone();
        let requester = requester.to_owned();
        tokio::spawn(async move {
            // Given back when the acks are all in or timed out.
            let _places = places;
            let publish = async |resp: Response| {
                let Ok((chan, msg)) = ns.encode_response(&requester, resp) else {
                    return false;
                };
                // Clients' ack data: counted in the answer budget like every answer.
                core.peer_budget.answered(msg.len());
                let ok = core.publish(chan, msg).await.is_ok();
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
                // Node forwards the first ack argument only.
                let Some(first) = first_ack_arg(&text, bins.as_ref()) else {
                    continue;
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
    pub(crate) fn kick_room_sync(self: &Arc<Self>) {
        if self.ns.sync_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let core = self.core.clone();
        let ns = self.ns.clone();
        tokio::spawn(async move {
            // Cleared before computing, so a change made during this sync schedules another.
            ns.sync_scheduled.store(false, Ordering::Release);
            if let Err(e) = ns.sync_rooms(&core.pubsub).await
                && core.warn_allowed()
            {
                tracing::warn!(nsp = %ns.nsp, "redis adapter room sync failed: {e}");
            }
        });
    }
}
