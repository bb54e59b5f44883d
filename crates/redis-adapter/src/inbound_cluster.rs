//! The inbound side of a namespace in sharded mode: socket.io-adapter `ClusterAdapter` messages
//! (what Node's `createShardedAdapter` sends) received on the main channel, a room channel or
//! this node's response channel, applied with the same local operations as the classic ones.
//!
//! As in `ClusterAdapter.onMessage`: a node ignores its own messages (the sender applies
//! join/leave/disconnect itself), answers go to the requester's own channel, and answer types
//! received on the main channel are treated as answers.

use std::sync::Arc;

use socketioxide_core::adapter::SocketEmitter;

use crate::{
    local_ns::LocalNs,
    namespace::LocalOps,
    packets::{is_event, to_sio_packet},
    requests::Dispatch,
    sharded::{Received, as_response, msg_type, rooms_of},
    stats::{DropReason, MsgType},
};
use sio_wire::{ClusterBody, ClusterMessage, Response, WireError};

impl<E: SocketEmitter> LocalNs<E> {
    /// One ClusterAdapter message; `on_own_channel`: it came on this node's response channel.
    pub(crate) fn on_cluster(self: &Arc<Self>, payload: &[u8], on_own_channel: bool) {
        let msg = match ClusterMessage::decode(payload) {
            Ok(m) => m,
            // Node ignores message types it does not know; so do we (counted, not an error).
            Err(WireError::UnknownType(_)) => return self.core.stats.received(MsgType::Unknown),
            Err(e) => return self.decode_error("sharded message", &e),
        };
        if msg.uid == self.ns.uid {
            return;
        }
        self.core.stats.received(msg_type(&msg.body));
        if msg.nsp != self.ns.nsp && !on_own_channel {
            return;
        }
        let body = match as_response(msg.body) {
            Received::Answer(resp) => return self.on_cluster_answer(resp),
            Received::Message(body) => body,
        };
        if on_own_channel {
            // Node's onResponse ignores anything but answers on the response channel.
            return;
        }
        let requester = msg.uid;
        match body {
            ClusterBody::Broadcast {
                packet,
                request_id: None,
                opts,
            } => {
                if packet.nsp() != self.ns.nsp || !is_event(&packet) {
                    return;
                }
                match to_sio_packet(&self.ns.nsp, packet) {
                    Ok(p) => self.deliver(p, &opts),
                    Err(e) => self.decode_error("broadcast data", &e),
                }
            }
            ClusterBody::Broadcast {
                packet,
                request_id: Some(request_id),
                opts,
            } => self.answer_broadcast_with_ack(&requester, request_id, packet, opts),
            ClusterBody::SocketsJoin { opts, rooms } => {
                self.apply_join(&rooms_of(opts), rooms, false)
            }
            ClusterBody::SocketsLeave { opts, rooms } => {
                self.apply_join(&rooms_of(opts), rooms, true)
            }
            ClusterBody::DisconnectSockets { opts, .. } => self.apply_disconnect(&rooms_of(opts)),
            ClusterBody::FetchSockets { opts, request_id } => {
                let opts = rooms_of(opts);
                if opts.rooms.is_empty() && !self.may_answer("fetchSockets") {
                    return;
                }
                let sockets = self.fetch_local(&opts);
                self.respond_listing(
                    &requester,
                    Response::FetchSockets {
                        request_id,
                        sockets,
                    },
                    "fetchSockets",
                );
            }
            ClusterBody::ServerSideEmit { request_id, packet } => {
                let data = self.server_side_emit(&packet, request_id.is_some());
                if let Some(request_id) = request_id {
                    self.respond(&requester, Response::ServerSideEmitAck { request_id, data });
                }
            }
            // Heartbeats and close notices belong to heartbeat adapters; answers were routed above.
            _ => {}
        }
    }

    fn on_cluster_answer(&self, resp: Response) {
        match self.ns.pending.dispatch(resp) {
            Dispatch::Delivered | Dispatch::Unknown => {}
            Dispatch::Full => self.core.stats.dropped(DropReason::QueueFull, 1),
        }
    }
}
