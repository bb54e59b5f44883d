//! Per-room subscription bookkeeping: which room channels this node should be subscribed to
//! (rooms with local members, and every local socket id, since Node emitters address a single
//! socket through `key#nsp#<sid>#`) versus which it is subscribed to now.
//!
//! socketioxide changes room membership without calling the adapter, so the adapter computes
//! the wanted set from the local adapter and applies the difference in batched
//! SUBSCRIBE/UNSUBSCRIBE commands. The sets are generic so socket ids are kept as `Sid` (16
//! bytes, `Copy`) and rooms as socketioxide's `Room`: a reconciliation allocates channel names
//! only for what changed.

use std::{collections::HashSet, hash::Hash};

/// The keys (rooms or socket ids) whose channels are currently subscribed.
#[derive(Debug)]
pub(crate) struct RoomSubscriptions<K> {
    subscribed: HashSet<K>,
}

impl<K> Default for RoomSubscriptions<K> {
    fn default() -> Self {
        Self {
            subscribed: HashSet::new(),
        }
    }
}

/// Changes to apply to reach the wanted set.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RoomDiff<K> {
    pub(crate) subscribe: Vec<K>,
    pub(crate) unsubscribe: Vec<K>,
}

impl<K> RoomDiff<K> {
    /// Subscribe `keys`, unsubscribe nothing.
    pub(crate) fn adding(keys: Vec<K>) -> Self {
        RoomDiff {
            subscribe: keys,
            unsubscribe: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.subscribe.is_empty() && self.unsubscribe.is_empty()
    }
}

impl<K: Hash + Eq + Clone + Ord> RoomSubscriptions<K> {
    /// The difference between what is subscribed and `wanted`.
    pub(crate) fn diff(&self, wanted: &HashSet<K>) -> RoomDiff<K> {
        let mut subscribe: Vec<K> = wanted
            .iter()
            .filter(|r| !self.subscribed.contains(*r))
            .cloned()
            .collect();
        let mut unsubscribe: Vec<K> = self
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

    /// Records that `keys` were subscribed.
    pub(crate) fn added(&mut self, keys: &[K]) {
        self.subscribed.extend(keys.iter().cloned());
    }

    /// Takes over what `other` recorded as subscribed (the same connection's subscriptions,
    /// recorded by another instance of the namespace).
    pub(crate) fn absorb(&mut self, other: &mut RoomSubscriptions<K>) {
        self.subscribed.extend(other.subscribed.drain());
    }

    /// Records that `keys` were unsubscribed.
    pub(crate) fn removed(&mut self, keys: &[K]) {
        for k in keys {
            self.subscribed.remove(k);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.subscribed.len()
    }

    pub(crate) fn contains(&self, key: &K) -> bool {
        self.subscribed.contains(key)
    }

    /// Forgets everything (the adapter closed; channels were unsubscribed).
    pub(crate) fn clear(&mut self) -> Vec<K> {
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
        assert!(s.contains(&"c".to_string()) && !s.contains(&"a".to_string()));
    }

    #[test]
    fn empty_room_set_unsubscribes_everything() {
        let mut s = RoomSubscriptions::default();
        s.added(&["x".to_string(), "y".to_string()]);
        let d = s.diff(&HashSet::new());
        assert_eq!(d.unsubscribe, vec!["x", "y"]);
        assert_eq!(s.clear().len(), 2);
    }

    #[test]
    fn works_on_copy_keys() {
        let mut s = RoomSubscriptions::<u64>::default();
        let d = s.diff(&[3, 1].into_iter().collect());
        assert_eq!(d.subscribe, vec![1, 3]);
        s.added(&d.subscribe);
        assert_eq!(s.diff(&[3].into_iter().collect()).unsubscribe, vec![1]);
    }
}
