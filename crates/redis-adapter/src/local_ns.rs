//! One namespace on this node: socketioxide's local adapter next to the namespace's shared
//! state. The outbound side ([`RedisAdapter`](crate::RedisAdapter)) and the inbound side
//! ([`crate::inbound`]) both work on it; here is what they share: who a cluster operation
//! targets locally, and the answers the namespace's requests need ([`LocalOps`]).

use std::{collections::HashSet, sync::Arc};

use serde_json::json;
use socketioxide_core::{
    Sid,
    adapter::{BroadcastFlags, BroadcastOptions, CoreLocalAdapter, Room, SocketEmitter},
};

use crate::{
    namespace::{LocalOps, NsShared},
    room_watch::{self, RoomWatch},
    shared::Core,
    targets::{self, Targets, all_opts},
};
use sio_wire::{FetchedSocket, RoomsOpts};

/// A namespace's local adapter with the adapter instance's and the namespace's shared state.
pub(crate) struct LocalNs<E> {
    pub(crate) local: CoreLocalAdapter<E>,
    pub(crate) core: Arc<Core>,
    pub(crate) ns: Arc<NsShared>,
}

impl<E: SocketEmitter> LocalNs<E> {
    pub(crate) fn targets(&self, rooms: &[String], except: &[String], volatile: bool) -> Targets {
        targets::resolve(&self.local, rooms, except, volatile)
    }

    /// Options selecting one socket.
    pub(crate) fn single(sid: Sid, volatile: bool) -> BroadcastOptions {
        let mut o = BroadcastOptions::new(sid);
        if volatile {
            o.add_flag(BroadcastFlags::Volatile);
        }
        o
    }

    pub(crate) fn is_local_socket(&self, sid: Sid) -> bool {
        targets::is_local_socket(&self.local, sid)
    }

    fn watch(&self) -> Option<&dyn RoomWatch> {
        self.core.room_watch.get().map(|w| &**w)
    }

    /// The matching local sockets join `rooms` (told to the application's [`RoomWatch`]).
    pub(crate) fn add_sockets(&self, opts: BroadcastOptions, rooms: Vec<Room>) {
        room_watch::apply_add(&self.local, self.watch(), opts, rooms);
    }

    /// The matching local sockets leave `rooms` (told to the application's [`RoomWatch`]).
    pub(crate) fn del_sockets(&self, opts: BroadcastOptions, rooms: Vec<Room>) {
        room_watch::apply_del(&self.local, self.watch(), opts, rooms);
    }

    /// Local socket `sid` joins `rooms` (told to the application's [`RoomWatch`]).
    pub(crate) fn add_one(&self, sid: Sid, rooms: Vec<Room>) {
        room_watch::apply_add_one(&self.local, self.watch(), sid, rooms);
    }

    /// Local socket `sid` leaves `rooms` (told to the application's [`RoomWatch`]).
    pub(crate) fn del_one(&self, sid: Sid, rooms: Vec<Room>) {
        room_watch::apply_del_one(&self.local, self.watch(), sid, rooms);
    }
}

impl<E: SocketEmitter> LocalOps for LocalNs<E> {
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
                // socketioxide does not expose the handshake or socket data to adapters: the
                // application's hook may (see `socket_info`); else a Node-shaped minimal
                // handshake keeps Node's RemoteSocket working.
                let info = self
                    .core
                    .socket_info
                    .get()
                    .and_then(|s| s.socket_info(self.local.path(), sid));
                let (handshake, data) = match info {
                    Some(i) => (i.handshake, i.data),
                    None => (handshake.clone(), sio_wire::Value::Map(Vec::new())),
                };
                FetchedSocket {
                    handshake,
                    data: Some(data),
                    id,
                    rooms,
                    node: self.core.pubsub.config.node_name.clone(),
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

    fn is_local(&self, sid: Sid) -> bool {
        self.is_local_socket(sid)
    }

    fn wanted(&self) -> (HashSet<Room>, HashSet<Sid>) {
        // O(local memberships) per reconciliation, without allocating a string per socket
        // (see AdapterConfig::room_sync_interval).
        let rooms = self.local.rooms(all_opts());
        let sids = self.local.sockets(all_opts()).into_iter().collect();
        (rooms, sids)
    }
}
