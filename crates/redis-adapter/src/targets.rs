//! Who a cluster operation applies to on this node: translation between the Node adapter's
//! room semantics and socketioxide's local adapter.
//!
//! On Node every socket is a member of a room named after its id; in socketioxide it is not.
//! Node peers and emitters address a single socket as the room `<sid>` (and `except: [<sid>]`
//! for `socket.broadcast`), so a room name that is one of our socket ids is resolved to that
//! socket here. Only then is the slower explicit-id path taken; plain rooms go straight to
//! `CoreLocalAdapter`.

use std::collections::HashSet;

use sio_wire::{BroadcastOptions as WireOpts, Flag, RoomsOpts};

use crate::foreign::{ForeignIds, as_sid};
use socketioxide_core::{
    Sid,
    adapter::{BroadcastFlags, BroadcastOptions, CoreLocalAdapter, Room, SocketEmitter},
};

/// Options selecting every local socket.
pub(crate) fn all_opts() -> BroadcastOptions {
    let mut o = BroadcastOptions::default();
    o.add_flag(BroadcastFlags::Broadcast);
    o
}

/// Who a cluster operation applies to locally.
#[derive(Debug)]
pub(crate) enum Targets {
    /// Plain room semantics, handled by `CoreLocalAdapter`.
    Opts(Box<BroadcastOptions>),
    /// Explicit local socket ids (some rooms were socket ids).
    Sids(Vec<Sid>),
}

/// Is `sid` a socket of this node? (The emitter's `get_remote_sockets` filters unknown ids.)
pub(crate) fn is_local_socket<E: SocketEmitter>(local: &CoreLocalAdapter<E>, sid: Sid) -> bool {
    !local.fetch_sockets(BroadcastOptions::new(sid)).is_empty()
}

/// Resolves wire `rooms`/`except` to local targets.
pub(crate) fn resolve<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    rooms: &[String],
    except: &[String],
    volatile: bool,
) -> Targets {
    // Only ids of this node's sockets need the socket-by-socket path. An id of a socket
    // elsewhere selects nobody here and excludes nobody, exactly as a room of that name with
    // no local members does: the commonest case, a client's publish from another node
    // (`except: [sender]`), keeps the room path. (It took the slow path, which encodes the
    // packet once per recipient: ~10 % more CPU per delivery on every receiving node, and
    // loss at ~1M deliveries/s that broadcasts without an `except` did not have; issue 18.)
    let has_sid = rooms
        .iter()
        .chain(except)
        .any(|r| as_sid(r).is_some_and(|id| is_local_socket(local, id)));
    if !has_sid {
        // Fast path: pure room semantics.
        let mut o = all_opts();
        o.rooms.extend(rooms.iter().map(|r| Room::Owned(r.clone())));
        o.except
            .extend(except.iter().map(|r| Room::Owned(r.clone())));
        if volatile {
            o.add_flag(BroadcastFlags::Volatile);
        }
        return Targets::Opts(Box::new(o));
    }
    let mut set: HashSet<Sid> = if rooms.is_empty() {
        local.sockets(all_opts()).into_iter().collect()
    } else {
        let mut o = all_opts();
        o.rooms.extend(rooms.iter().map(|r| Room::Owned(r.clone())));
        let mut s: HashSet<Sid> = local.sockets(o).into_iter().collect();
        s.extend(
            rooms
                .iter()
                .filter_map(|r| as_sid(r))
                .filter(|id| is_local_socket(local, *id)),
        );
        s
    };
    if !except.is_empty() {
        let mut o = all_opts();
        o.rooms
            .extend(except.iter().map(|r| Room::Owned(r.clone())));
        for sid in local.sockets(o) {
            set.remove(&sid);
        }
        for sid in except.iter().filter_map(|r| as_sid(r)) {
            set.remove(&sid);
        }
    }
    let mut v: Vec<Sid> = set.into_iter().collect();
    v.sort_unstable();
    Targets::Sids(v)
}

/// socketioxide options -> wire `opts`.
/// Stand-in ids of Node peers' sockets (from `fetch_sockets`) become their real ids again.
pub(crate) fn to_wire_opts(opts: &BroadcastOptions, foreign: &ForeignIds) -> WireOpts {
    let mut rooms: Vec<String> = opts.rooms.iter().map(|r| foreign.wire_id(r)).collect();
    let mut except: Vec<String> = opts.except.iter().map(|r| foreign.wire_id(r)).collect();
    let broadcast = opts.has_flag(BroadcastFlags::Broadcast);
    if let Some(sid) = opts.sid {
        if broadcast {
            // socket.broadcast(): everyone but the sender.
            except.push(foreign.wire_id(sid.as_str()));
        } else if rooms.is_empty() {
            // A single (remote) socket: its id is its room on the wire.
            rooms.push(foreign.wire_id(sid.as_str()));
        }
    }
    let mut w = WireOpts {
        rooms,
        except,
        ..Default::default()
    };
    if opts.has_flag(BroadcastFlags::Volatile) {
        w.flags.set(Flag::Volatile, 1);
    }
    w
}

/// The `{rooms, except}` part of broadcast options (join/leave/disconnect/fetch requests).
pub(crate) fn rooms_opts(w: WireOpts) -> RoomsOpts {
    RoomsOpts {
        rooms: w.rooms,
        except: w.except,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use socketioxide_core::Str;

    use super::*;
    use crate::test_support::Sockets;

    fn sid(s: &str) -> Sid {
        Sid::from_str(s).unwrap()
    }

    /// Three local sockets; s1 and s2 in "red", s3 in "blue".
    fn local() -> (CoreLocalAdapter<Sockets>, [Sid; 3]) {
        let ids = [
            sid("AAAAAAAAAAAAAAA1"),
            sid("AAAAAAAAAAAAAAA2"),
            sid("AAAAAAAAAAAAAAA3"),
        ];
        let l = CoreLocalAdapter::new(Sockets(ids.to_vec(), Str::from("/")));
        l.add_all(ids[0], "red");
        l.add_all(ids[1], "red");
        l.add_all(ids[2], "blue");
        (l, ids)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn sids(t: Targets, l: &CoreLocalAdapter<Sockets>) -> Vec<Sid> {
        let mut v = match t {
            Targets::Opts(o) => l.sockets(*o),
            Targets::Sids(s) => s,
        };
        v.sort_unstable();
        v
    }

    #[test]
    fn plain_rooms_take_the_fast_path() {
        let (l, ids) = local();
        let t = resolve(&l, &strings(&["red"]), &[], true);
        match &t {
            Targets::Opts(o) => assert!(o.has_flag(BroadcastFlags::Volatile)),
            Targets::Sids(_) => panic!("expected the room path"),
        }
        assert_eq!(sids(t, &l), vec![ids[0], ids[1]]);
        let t = resolve(&l, &[], &strings(&["red"]), false);
        assert_eq!(sids(t, &l), vec![ids[2]]);
    }

    #[test]
    fn socket_id_rooms_resolve_to_local_sockets_only() {
        let (l, ids) = local();
        let remote = "BBBBBBBBBBBBBBB9";
        let rooms = vec![ids[2].to_string(), remote.to_string()];
        let t = resolve(&l, &rooms, &[], false);
        assert!(matches!(t, Targets::Sids(_)));
        assert_eq!(sids(t, &l), vec![ids[2]]);
        // A remote socket id alone selects nobody here (not "everyone").
        let t = resolve(&l, &strings(&[remote]), &[], false);
        assert_eq!(sids(t, &l), Vec::<Sid>::new());
    }

    #[test]
    fn except_socket_id_and_union_of_rooms() {
        let (l, ids) = local();
        let t = resolve(&l, &[], &[ids[0].to_string()], false);
        assert_eq!(sids(t, &l), vec![ids[1], ids[2]]);
        let t = resolve(&l, &strings(&["red", "blue"]), &[ids[1].to_string()], false);
        assert_eq!(sids(t, &l), vec![ids[0], ids[2]]);
    }

    #[test]
    fn ids_of_other_nodes_sockets_keep_the_room_path() {
        let (l, ids) = local();
        // A publish from a client of another node: `except: [sender]`.
        let remote = "BBBBBBBBBBBBBBB9";
        let t = resolve(&l, &strings(&["red"]), &strings(&[remote]), false);
        assert!(matches!(t, Targets::Opts(_)), "room path");
        assert_eq!(sids(t, &l), vec![ids[0], ids[1]]);
        // A Node peer's (20-character) socket id too, and with no rooms.
        let node_id = "abcdefghijABCDEFGHIJ";
        let t = resolve(&l, &[], &strings(&[node_id]), false);
        assert!(matches!(t, Targets::Opts(_)), "room path");
        assert_eq!(sids(t, &l), ids.to_vec());
        // A local socket's id still excludes that socket.
        let t = resolve(&l, &strings(&["red"]), &[ids[0].to_string()], false);
        assert!(matches!(t, Targets::Sids(_)));
        assert_eq!(sids(t, &l), vec![ids[1]]);
    }

    #[test]
    fn wire_opts_from_socketioxide_opts() {
        let s = sid("AAAAAAAAAAAAAAA1");
        // socket.broadcast().to("red"): the sender is excluded by id.
        let mut o = BroadcastOptions::new(s);
        o.add_flag(BroadcastFlags::Broadcast);
        o.rooms.push(Room::Borrowed("red"));
        let w = to_wire_opts(&o, &ForeignIds::default());
        assert_eq!(w.rooms, strings(&["red"]));
        assert_eq!(w.except, vec![s.to_string()]);
        assert_eq!(w.flags.volatile, None);
        // A single remote socket: its id is the room.
        let mut o = BroadcastOptions::new(s);
        o.add_flag(BroadcastFlags::Volatile);
        let w = to_wire_opts(&o, &ForeignIds::default());
        assert_eq!(w.rooms, vec![s.to_string()]);
        assert_eq!(w.flags.volatile, Some(true));
        let r = rooms_opts(w);
        assert_eq!(r.rooms, vec![s.to_string()]);
    }

    #[test]
    fn sid_shape() {
        assert!(as_sid("AAAAAAAAAAAAAAA1").is_some());
        assert!(as_sid("room").is_none());
        assert!(as_sid("AAAAAAAAAAAAAAAAAAA1").is_none()); // 20-char Node id
        assert!(as_sid("AAAAAAAAAAAAAA#1").is_none());
    }
}
