//! A fast hasher for the maps keyed by ids this node makes itself: Engine.IO session ids
//! (socketioxide's `Sid`, 16 random characters) and the listener's connection ids (a counter).
//!
//! std's `HashMap` hashes with SipHash-1-3, whose per-key cost (~100–150 instructions for a
//! `Sid`) buys resistance to hash flooding: keys an attacker chooses so that they collide. No
//! client chooses these keys (a session's id is drawn by engineioxide at random, a connection id
//! is the listener's counter; a client's own `sid` only ever *looks up* an entry made with a
//! server-drawn one), so the gateway's per-handshake maps (connection registry, engine
//! sessions, per-session values, the drain's websocket connections) use this one instead: one
//! multiply and add per 8 bytes (the FxHash construction, as `rustc-hash` 2 has it). Never use
//! it for keys a client picks (IP addresses, room names, header values).
use std::hash::{BuildHasherDefault, Hasher};

/// The `BuildHasher` of [`IdHasher`] (for `HashMap::with_hasher` / `HashMap::default`).
pub type IdBuild = BuildHasherDefault<IdHasher>;

/// A `HashMap` keyed by server-made ids (see the module documentation).
pub type IdMap<K, V> = std::collections::HashMap<K, V, IdBuild>;

/// A `HashSet` of server-made ids (see the module documentation).
pub type IdSet<K> = std::collections::HashSet<K, IdBuild>;

/// The FxHash-style hasher of the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

/// rustc-hash's multiplier (an odd constant with well-spread bits).
const K: u64 = 0xf135_7aea_2e62_a9c5;

impl IdHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = self.0.wrapping_add(word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps `ab` and `ab\0` apart.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves its entropy in the high bits; hashbrown takes the bucket from the
        // low ones (and its 7-bit tag from the top): rotate some of it down (as rustc-hash does).
        self.0.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use socketioxide::socket::Sid;

    use super::*;

    #[test]
    fn maps_work_and_spread_sequential_and_random_keys() {
        let mut conns: IdMap<u64, u64> = IdMap::default();
        for i in 0..10_000 {
            conns.insert(i, i * 2);
        }
        assert_eq!(conns.get(&4321), Some(&8642));
        assert_eq!(conns.remove(&17), Some(34));
        assert_eq!(conns.len(), 9_999);

        let sids: Vec<Sid> = (0..10_000).map(|_| Sid::new()).collect();
        let mut sessions: IdMap<Sid, usize> = IdMap::default();
        for (i, s) in sids.iter().enumerate() {
            sessions.insert(*s, i);
        }
        assert!(sids.iter().enumerate().all(|(i, s)| sessions[s] == i));

        // Sequential ids land in distinct low bits (the bucket) and varied top bits (the tag).
        let b = IdBuild::default();
        let low: std::collections::HashSet<u64> =
            (0..1024u64).map(|i| b.hash_one(i) & 1023).collect();
        assert!(low.len() > 600, "{} distinct buckets of 1024", low.len());
        let tags: std::collections::HashSet<u64> =
            (0..1024u64).map(|i| b.hash_one(i) >> 57).collect();
        assert!(tags.len() > 64, "{} distinct tags", tags.len());
    }

    #[test]
    fn strings_of_different_lengths_differ() {
        let b = IdBuild::default();
        assert_ne!(b.hash_one("ab"), b.hash_one("ab\0"));
        assert_ne!(b.hash_one("abcdefgh"), b.hash_one("abcdefgh\0"));
        let mut set: IdSet<String> = IdSet::default();
        set.insert("x".into());
        assert!(set.contains("x") && !set.contains("y"));
    }
}
