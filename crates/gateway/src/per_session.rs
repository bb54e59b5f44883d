//! One value per Engine.IO session, shared by every namespace socket of it.
//!
//! What a connection is allowed must not grow with the namespaces it opens: its events per
//! second (`--event-rate`, [`crate::relay`]) and its upstream events in flight
//! ([`crate::upstream::Sessions`]). socketioxide gives a session one id in every namespace
//! (docs/upstream.md S1), so the namespace sockets of one client find the same value by their
//! id. Looked up once per namespace connect, never per event; a value lives as long as one of
//! the session's sockets holds it.
use std::sync::{Arc, Mutex, Weak};

use socketioxide::socket::Sid;

use crate::id_hash::IdMap;

#[derive(Debug)]
pub struct PerSession<T>(Mutex<IdMap<Sid, Weak<T>>>);

impl<T> Default for PerSession<T> {
    fn default() -> Self {
        PerSession(Mutex::new(IdMap::default()))
    }
}

impl<T> PerSession<T> {
    /// Session `sid`'s value, made by `make` if no namespace socket of it holds one.
    pub fn get_or(&self, sid: Sid, make: impl FnOnce() -> T) -> Arc<T> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get(&sid).and_then(Weak::upgrade) {
            return v;
        }
        // Sessions that went leave dead entries; drop them whenever the map doubles.
        if map.len() >= 1024 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let v = Arc::new(make());
        map.insert(sid, Arc::downgrade(&v));
        v
    }

    /// Entries, live or dead (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_session_while_a_socket_holds_it() {
        let m = PerSession::<u32>::default();
        let (a, b) = (Sid::new(), Sid::new());
        let a1 = m.get_or(a, || 1);
        let a2 = m.get_or(a, || 2);
        assert!(Arc::ptr_eq(&a1, &a2), "namespaces of one session share it");
        assert_eq!(*m.get_or(b, || 3), 3, "another session has its own");
        drop((a1, a2));
        assert_eq!(*m.get_or(a, || 4), 4, "made again once nothing held it");
    }

    #[test]
    fn dead_entries_are_dropped_as_the_map_grows() {
        let m = PerSession::<u32>::default();
        for _ in 0..5000 {
            drop(m.get_or(Sid::new(), || 0));
        }
        assert!(m.len() < 2048, "{} entries", m.len());
    }
}
