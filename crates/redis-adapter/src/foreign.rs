//! Stand-in socketioxide ids for sockets of Node.js peers.
//!
//! socketioxide's `Sid` holds exactly 16 url-safe base64 characters; Node socket ids are 20
//! (`base64id`). So that `io.fetch_sockets()` can return a Node peer's sockets as
//! `RemoteSocket`s (and `emit`, `join`, `leave`, `disconnect` on them work), each foreign id is
//! given a stand-in `Sid` made of [`PREFIX`] and 13 random characters, remembered here, and
//! turned back into the real id whenever an operation goes out on the wire.
//!
//! The table is bounded ([`CAPACITY`]; the oldest entries go first). A `RemoteSocket` kept
//! longer than that many later foreign ids stops resolving: operations on it then reach
//! nobody, as they would for a socket that has left. The lock is only taken by
//! `fetch_sockets` and by operations naming a stand-in id (recognised by its prefix without a
//! lock), never on the plain broadcast path.
//!
//! [`as_sid`] (is this room name one of socketioxide's socket ids?) lives here too: it is the
//! other half of telling our ids from foreign ones.

use std::{
    collections::{HashMap, VecDeque},
    str::FromStr,
    sync::{Arc, Mutex},
};

use sio_wire::socket_id::SOCKETIOXIDE_ID_LEN;
use socketioxide_core::Sid;

/// A room name that has the shape of a socketioxide socket id (16 url-safe base64 chars).
pub(crate) fn as_sid(room: &str) -> Option<Sid> {
    if room.len() == SOCKETIOXIDE_ID_LEN {
        Sid::from_str(room).ok()
    } else {
        None
    }
}

/// First characters of every stand-in id. A random socketioxide id starts with it once in
/// 64³ = 262,144 ids; such an id simply misses the table and is used as it is.
pub(crate) const PREFIX: &str = "_-_";

/// Most foreign ids remembered.
pub(crate) const CAPACITY: usize = 100_000;

#[derive(Default)]
struct Table {
    by_sid: HashMap<Sid, Arc<str>>,
    by_id: HashMap<Arc<str>, Sid>,
    order: VecDeque<Sid>,
}

/// Foreign socket id <-> stand-in `Sid`.
#[derive(Default)]
pub(crate) struct ForeignIds {
    table: Mutex<Table>,
}

/// Could `s` be a stand-in id? (No lock.)
pub(crate) fn is_stand_in(s: &str) -> bool {
    s.len() == SOCKETIOXIDE_ID_LEN && s.starts_with(PREFIX)
}

impl ForeignIds {
    /// The `Sid` for a socket id seen on the wire: the id itself when it is a socketioxide id,
    /// a (stable) stand-in otherwise. `None` for an empty id.
    pub(crate) fn sid_for(&self, id: &str) -> Option<Sid> {
        if !id.starts_with(PREFIX)
            && let Some(sid) = as_sid(id)
        {
            return Some(sid);
        }
        if id.is_empty() {
            return None;
        }
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sid) = t.by_id.get(id) {
            return Some(*sid);
        }
        let sid = loop {
            let random = Sid::new();
            let candidate = format!("{PREFIX}{}", &random.as_str()[PREFIX.len()..]);
            // Sid::new() is url-safe base64 and so is PREFIX: from_str cannot fail here, but
            // a failure would only mean another draw.
            if let Ok(sid) = Sid::from_str(&candidate)
                && !t.by_sid.contains_key(&sid)
            {
                break sid;
            }
        };
        if t.order.len() >= CAPACITY
            && let Some(old) = t.order.pop_front()
            && let Some(old_id) = t.by_sid.remove(&old)
        {
            t.by_id.remove(&old_id);
        }
        let id: Arc<str> = Arc::from(id);
        t.by_sid.insert(sid, id.clone());
        t.by_id.insert(id, sid);
        t.order.push_back(sid);
        Some(sid)
    }

    /// The wire id of a socket or room name: a stand-in id becomes the foreign id it stands for;
    /// anything else is returned as it is.
    pub(crate) fn wire_id(&self, s: &str) -> String {
        if is_stand_in(s)
            && let Ok(sid) = Sid::from_str(s)
            && let Some(id) = self
                .table
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .by_sid
                .get(&sid)
        {
            return id.to_string();
        }
        s.to_owned()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .order
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ids_pass_through() {
        let f = ForeignIds::default();
        let own = Sid::new();
        if !own.as_str().starts_with(PREFIX) {
            assert_eq!(f.sid_for(own.as_str()), Some(own));
            assert_eq!(f.wire_id(own.as_str()), own.as_str());
        }
        assert_eq!(f.len(), 0);
        assert_eq!(f.wire_id("room"), "room");
        assert_eq!(f.sid_for(""), None);
    }

    #[test]
    fn node_ids_get_stable_stand_ins() {
        let f = ForeignIds::default();
        let node_id = "Xz3_k9-abcdefghijklm"; // 20 chars, as base64id makes them
        let sid = f.sid_for(node_id).unwrap();
        assert!(is_stand_in(sid.as_str()));
        assert_eq!(f.sid_for(node_id), Some(sid));
        assert_eq!(f.wire_id(sid.as_str()), node_id);
        let other = f.sid_for("another-node-socket1").unwrap();
        assert_ne!(other, sid);
        // An unknown stand-in is left as it is.
        assert_eq!(f.wire_id("_-_AAAAAAAAAAAAA"), "_-_AAAAAAAAAAAAA");
    }

    #[test]
    fn bounded_oldest_first() {
        let f = ForeignIds::default();
        let first = f.sid_for("first-foreign-id-000").unwrap();
        for i in 0..CAPACITY {
            f.sid_for(&format!("foreign-id-{i:09}")).unwrap();
        }
        assert_eq!(f.len(), CAPACITY);
        // The first entry went: its stand-in no longer resolves.
        assert_eq!(f.wire_id(first.as_str()), first.as_str());
        assert_eq!(
            f.wire_id(f.sid_for("foreign-id-000000099").unwrap().as_str()),
            "foreign-id-000000099"
        );
    }
}
