//! A hook the application may install to hear of the joins and leaves this adapter applies to
//! its local sockets on behalf of a broadcast operator (`io.in(x).socketsJoin(room)` and
//! `socketsLeave`, from this node or from any other node, Node.js peers included), as
//! socket.io-adapter's `join-room` / `leave-room` events tell Node's `instrument()`.
//!
//! Not called for a socket's own `socket.join` / `socket.leave`: socketioxide applies those
//! to the local adapter directly; the application knows of them already.
//!
//! Set once ([`RedisAdapterHandle::set_room_watch`](crate::RedisAdapterHandle::set_room_watch)).
//! Without a hook nothing changes; with one, an operator join or leave lists the matching
//! sockets and their rooms once more (never on the broadcast path). Only actual changes are
//! reported: a socket already in the room is not "joined" again, as in socket.io-adapter.
//! The `apply_*` functions are public so that a local-only adapter can report the same way.
use socketioxide_core::{
    Sid,
    adapter::{BroadcastOptions, CoreLocalAdapter, Room, SocketEmitter},
};

pub trait RoomWatch: Send + Sync + 'static {
    /// Socket `sid` of namespace `nsp` on this node joined `room`.
    fn joined(&self, nsp: &str, sid: Sid, room: &str);
    /// Socket `sid` of namespace `nsp` on this node left `room`.
    fn left(&self, nsp: &str, sid: Sid, room: &str);
}

/// `local.add_sockets(opts, rooms)`, reporting each socket's new rooms to `watch`.
pub fn apply_add<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    watch: Option<&dyn RoomWatch>,
    opts: BroadcastOptions,
    rooms: Vec<Room>,
) {
    match watch {
        None => local.add_sockets(opts, rooms),
        Some(w) => {
            for sid in local.sockets(opts) {
                apply_add_one(local, Some(w), sid, rooms.clone());
            }
        }
    }
}

/// `local.del_sockets(opts, rooms)`, reporting each socket's rooms left to `watch`.
pub fn apply_del<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    watch: Option<&dyn RoomWatch>,
    opts: BroadcastOptions,
    rooms: Vec<Room>,
) {
    match watch {
        None => local.del_sockets(opts, rooms),
        Some(w) => {
            for sid in local.sockets(opts) {
                apply_del_one(local, Some(w), sid, rooms.clone());
            }
        }
    }
}

/// `local.add_all(sid, rooms)`, reporting the rooms `sid` was not in yet.
pub fn apply_add_one<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    watch: Option<&dyn RoomWatch>,
    sid: Sid,
    rooms: Vec<Room>,
) {
    let Some(w) = watch else {
        return local.add_all(sid, rooms);
    };
    let before = local.socket_rooms(sid);
    let new: Vec<Room> = rooms
        .iter()
        .filter(|r| !before.contains(*r))
        .cloned()
        .collect();
    local.add_all(sid, rooms);
    for r in new {
        w.joined(local.path(), sid, &r);
    }
}

/// `local.del(sid, rooms)`, reporting the rooms `sid` was in.
pub fn apply_del_one<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    watch: Option<&dyn RoomWatch>,
    sid: Sid,
    rooms: Vec<Room>,
) {
    let Some(w) = watch else {
        return local.del(sid, rooms);
    };
    let before = local.socket_rooms(sid);
    let gone: Vec<Room> = rooms
        .iter()
        .filter(|r| before.contains(*r))
        .cloned()
        .collect();
    local.del(sid, rooms);
    for r in gone {
        w.left(local.path(), sid, &r);
    }
}
