//! Per-room subscription bookkeeping: which room channels this node should be subscribed to
//! (rooms with local members, and every local socket id, since Node emitters address a single
//! socket through `key#nsp#<sid>#`) versus which it is subscribed to now.
//!
//! socketioxide changes room membership without calling the adapter, so the adapter computes
//! the wanted set from the local adapter and applies the difference in batched
//! SUBSCRIBE/UNSUBSCRIBE commands.

use std::collections::HashSet;

/// The room names whose channels are currently subscribed.
#[derive(Debug, Default)]
pub(crate) struct RoomSubscriptions {
    subscribed: HashSet<String>,
}

/// Changes to apply to reach the wanted set.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RoomDiff {
    pub(crate) subscribe: Vec<String>,
    pub(crate) unsubscribe: Vec<String>,
}

impl RoomDiff {
    pub(crate) fn is_empty(&self) -> bool {
        self.subscribe.is_empty() && self.unsubscribe.is_empty()
    }
}

impl RoomSubscriptions {
    /// The difference between what is subscribed and `wanted`.
    pub(crate) fn diff(&self, wanted: &HashSet<String>) -> RoomDiff {
        let mut subscribe: Vec<String> = wanted
            .iter()
            .filter(|r| !self.subscribed.contains(*r))
            .cloned()
            .collect();
        let mut unsubscribe: Vec<String> = self
            .subscribed
            .iter()
            .filter(|r| !wanted.contains(*r))
            .cloned()
            .collect();
        subscribe.sort_unstable();
        unsubscribe.sort_unstable();
        RoomDiff {
            subscribe,
            unsubscribe,
        }
    }

    /// Records that `rooms` were subscribed.
    pub(crate) fn added(&mut self, rooms: &[String]) {
        self.subscribed.extend(rooms.iter().cloned());
    }

    /// Records that `rooms` were unsubscribed.
    pub(crate) fn removed(&mut self, rooms: &[String]) {
        for r in rooms {
            self.subscribed.remove(r);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.subscribed.len()
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, room: &str) -> bool {
        self.subscribed.contains(room)
    }

    /// Forgets everything (the adapter closed; channels were unsubscribed).
    pub(crate) fn clear(&mut self) -> Vec<String> {
        self.subscribed.drain().collect()
    }
}

/// Splits commands into batches so one SUBSCRIBE never carries an unbounded argument list.
pub(crate) const BATCH: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn diff_adds_and_removes() {
        let mut s = RoomSubscriptions::default();
        let d = s.diff(&set(&["a", "b"]));
        assert_eq!(d.subscribe, vec!["a", "b"]);
        assert!(d.unsubscribe.is_empty());
        s.added(&d.subscribe);
        let d = s.diff(&set(&["b", "c"]));
        assert_eq!(d.subscribe, vec!["c"]);
        assert_eq!(d.unsubscribe, vec!["a"]);
        s.added(&d.subscribe);
        s.removed(&d.unsubscribe);
        assert!(s.diff(&set(&["b", "c"])).is_empty());
        assert_eq!(s.len(), 2);
        assert!(s.contains("c") && !s.contains("a"));
    }

    #[test]
    fn empty_room_set_unsubscribes_everything() {
        let mut s = RoomSubscriptions::default();
        s.added(&["x".to_string(), "y".to_string()]);
        let d = s.diff(&HashSet::new());
        assert_eq!(d.unsubscribe, vec!["x", "y"]);
        assert_eq!(s.clear().len(), 2);
    }
}
