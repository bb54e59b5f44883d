//! The in-memory history of one room (single node): a ring of the last SIZE messages with
//! their offsets (1, 2, 3, ... within an epoch), trimmed by size and by TTL.
//!
//! A ring idle for longer than its TTL is lost as a whole: the next use starts a new one with a
//! new epoch, so an offset of the old one is never taken for a position in the new one. The
//! ring also keeps the sum of its entries' `bytes`, what it counts against
//! `--history-max-bytes` (see `history::budget`), which may trim it further from the oldest.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::{
    epoch::Epoch,
    message::{Args, Entry},
};

/// Why the messages after an offset cannot be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Some were dropped to keep the history within SIZE.
    Trimmed,
    /// Some outlived the TTL.
    Expired,
}

impl Miss {
    /// The `reason` of a `recovered:false` ack, and the label of the recoveries metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Miss::Trimmed => "trimmed",
            Miss::Expired => "expired",
        }
    }
}

/// An offset this history never handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ahead {
    #[error("offset {asked} is ahead of this history (last offset {last})")]
    Ahead { asked: u64, last: u64 },
    #[error("not an offset of this history")]
    NotAnOffset,
}

#[derive(Debug)]
pub struct Ring {
    epoch: Epoch,
    size: usize,
    ttl: Option<Duration>,
    entries: VecDeque<Entry>,
    /// Offset of the next message (the first is 1; 0 means "before the first").
    next: u64,
    /// Was the newest removed message removed by the TTL (else by SIZE or the byte budget)?
    last_removal_expired: bool,
    last_write: Instant,
    /// The sum of the entries' `bytes`.
    bytes: u64,
}

impl Ring {
    pub fn new(size: usize, ttl: Option<Duration>, now: Instant) -> Ring {
        Ring {
            epoch: super::epoch::random(),
            size,
            ttl,
            // Grows with use: a room with 3 messages does not hold SIZE slots.
            entries: VecDeque::new(),
            next: 1,
            last_removal_expired: false,
            last_write: now,
            bytes: 0,
        }
    }

    /// The sum of the entries' `bytes`.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many messages are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Is no message held?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Start over: no message, a new epoch (the history was lost or evicted).
    pub fn renew(&mut self, now: Instant) {
        *self = Ring::new(self.size, self.ttl, now);
    }

    /// A write this ring does not hold (cluster mode: the message went to the room's stream):
    /// the history is not idle.
    pub fn touch(&mut self, now: Instant) {
        self.last_write = now;
    }

    fn pop_oldest(&mut self, expired: bool) -> bool {
        let Some(e) = self.entries.pop_front() else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(e.bytes);
        self.last_removal_expired = expired;
        true
    }

    /// Drop the oldest messages until at least `bytes` are freed or none is left; returns the
    /// bytes freed. A recovery from before them answers [`Miss::Trimmed`].
    pub fn trim_oldest(&mut self, bytes: u64) -> u64 {
        let before = self.bytes;
        while before - self.bytes < bytes && self.pop_oldest(false) {}
        before - self.bytes
    }

    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// The last offset handed out (0 before the first message).
    pub fn last(&self) -> u64 {
        self.next - 1
    }

    /// Idle for longer than the TTL: this history counts as lost.
    pub fn is_lost(&self, now: Instant) -> bool {
        self.ttl
            .is_some_and(|t| now.saturating_duration_since(self.last_write) >= t)
    }

    /// Start over with a new epoch if this history was lost; true when it was.
    pub fn renew_if_lost(&mut self, now: Instant) -> bool {
        if self.is_lost(now) {
            self.renew(now);
            return true;
        }
        false
    }

    /// Drop the messages older than the TTL.
    pub fn expire(&mut self, now: Instant) {
        let Some(ttl) = self.ttl else { return };
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) >= ttl)
        {
            self.pop_oldest(true);
        }
    }

    /// Make room for one more message: drop the expired ones, and the oldest if SIZE are held.
    /// [`Ring::push`] follows.
    pub fn make_room(&mut self, now: Instant) {
        self.expire(now);
        if self.entries.len() >= self.size {
            self.pop_oldest(false);
        }
    }

    /// Append one message that counts `bytes` (after [`Ring::make_room`]); returns it, with
    /// the epoch it belongs to.
    pub fn push(
        &mut self,
        event: String,
        args: Args,
        bytes: u64,
        now: Instant,
    ) -> (&Entry, &Epoch) {
        let offset = self.next;
        self.next += 1;
        self.last_write = now;
        self.bytes += bytes;
        self.entries.push_back(Entry {
            offset,
            at: now,
            event,
            args,
            bytes,
        });
        // Just pushed: the deque is not empty.
        (&self.entries[self.entries.len() - 1], &self.epoch)
    }

    /// [`Ring::make_room`] then [`Ring::push`].
    pub fn append(
        &mut self,
        event: String,
        args: Args,
        bytes: u64,
        now: Instant,
    ) -> (&Entry, &Epoch) {
        self.make_room(now);
        self.push(event, args, bytes, now)
    }

    /// The messages after `offset`, oldest first; `Ok(Err(miss))` when some of them are gone.
    /// Call [`Ring::expire`] first.
    pub fn after(&self, offset: u64) -> Result<Result<impl Iterator<Item = &Entry>, Miss>, Ahead> {
        if offset > self.last() {
            return Err(Ahead::Ahead {
                asked: offset,
                last: self.last(),
            });
        }
        let oldest = self.entries.front().map_or(self.next, |e| e.offset);
        if offset + 1 < oldest {
            return Ok(Err(if self.last_removal_expired {
                Miss::Expired
            } else {
                Miss::Trimmed
            }));
        }
        // Offsets are consecutive: the first wanted one is at a known index.
        let skip = (offset + 1 - oldest) as usize;
        Ok(Ok(self.entries.iter().skip(skip)))
    }

    /// Up to `limit` messages after `offset` (the HTTP API's read), and the miss if some are gone.
    /// Call [`Ring::expire`] first.
    pub fn read(&self, offset: u64, limit: usize) -> Result<(Vec<&Entry>, Option<Miss>), Ahead> {
        if offset > self.last() {
            return Err(Ahead::Ahead {
                asked: offset,
                last: self.last(),
            });
        }
        let oldest = self.entries.front().map_or(self.next, |e| e.offset);
        let miss = (offset + 1 < oldest).then_some(if self.last_removal_expired {
            Miss::Expired
        } else {
            Miss::Trimmed
        });
        let skip = offset.saturating_add(1).saturating_sub(oldest) as usize;
        Ok((self.entries.iter().skip(skip).take(limit).collect(), miss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(r: &mut Ring, n: usize, now: Instant) {
        for i in 0..n {
            r.append(
                format!("e{i}"),
                Args::One(rmpv::Value::from(i as u64)),
                10,
                now,
            );
        }
    }

    fn offsets(r: &mut Ring, after: u64, now: Instant) -> Result<Vec<u64>, Miss> {
        r.expire(now);
        match r.after(after).unwrap() {
            Ok(it) => Ok(it.map(|e| e.offset).collect()),
            Err(m) => Err(m),
        }
    }

    #[test]
    fn replays_exactly_what_follows_an_offset() {
        let now = Instant::now();
        let mut r = Ring::new(10, None, now);
        assert_eq!(r.last(), 0);
        assert_eq!(offsets(&mut r, 0, now), Ok(vec![]));
        push(&mut r, 5, now);
        assert_eq!(r.last(), 5);
        assert_eq!(offsets(&mut r, 0, now), Ok(vec![1, 2, 3, 4, 5]));
        assert_eq!(offsets(&mut r, 3, now), Ok(vec![4, 5]));
        assert_eq!(offsets(&mut r, 5, now), Ok(vec![]));
        assert_eq!(
            r.after(6).err(),
            Some(Ahead::Ahead { asked: 6, last: 5 }),
            "an offset never handed out"
        );
    }

    #[test]
    fn trimmed_by_size() {
        let now = Instant::now();
        let mut r = Ring::new(3, None, now);
        push(&mut r, 7, now);
        // Kept: 5, 6, 7. After 4 is complete; after 3 misses 4.
        assert_eq!(offsets(&mut r, 4, now), Ok(vec![5, 6, 7]));
        assert_eq!(offsets(&mut r, 3, now), Err(Miss::Trimmed));
        assert_eq!(offsets(&mut r, 0, now), Err(Miss::Trimmed));
    }

    #[test]
    fn expired_by_ttl_then_lost() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut r = Ring::new(100, Some(ttl), t0);
        push(&mut r, 2, t0);
        let t1 = t0 + Duration::from_secs(6);
        push(&mut r, 1, t1);
        let t2 = t0 + Duration::from_secs(11);
        assert_eq!(offsets(&mut r, 2, t2), Ok(vec![3]));
        assert_eq!(offsets(&mut r, 1, t2), Err(Miss::Expired));
        let epoch = r.epoch().clone();
        assert!(!r.renew_if_lost(t2));
        let t3 = t1 + ttl;
        assert!(r.renew_if_lost(t3), "idle past the TTL: lost");
        assert_ne!(*r.epoch(), epoch, "a new epoch");
        assert_eq!(r.last(), 0);
    }

    #[test]
    fn counts_bytes_and_trims_oldest_for_the_budget() {
        let now = Instant::now();
        let mut r = Ring::new(3, None, now);
        push(&mut r, 5, now);
        assert_eq!(r.bytes(), 30, "3 kept of 10 bytes each");
        assert_eq!(r.trim_oldest(15), 20, "whole entries, oldest first");
        assert_eq!((r.len(), r.bytes()), (1, 10));
        assert_eq!(offsets(&mut r, 4, now), Ok(vec![5]));
        assert_eq!(offsets(&mut r, 3, now), Err(Miss::Trimmed));
        assert_eq!(r.trim_oldest(100), 10);
        assert_eq!(r.trim_oldest(100), 0, "nothing left");
        let epoch = r.epoch().clone();
        r.renew(now);
        assert_ne!(*r.epoch(), epoch);
        assert_eq!((r.last(), r.bytes()), (0, 0));
    }

    #[test]
    fn read_pages() {
        let now = Instant::now();
        let mut r = Ring::new(4, None, now);
        push(&mut r, 6, now);
        r.expire(now);
        let (page, miss) = r.read(0, 2).unwrap();
        assert_eq!(page.iter().map(|e| e.offset).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(miss, Some(Miss::Trimmed));
        let (page, miss) = r.read(4, 10).unwrap();
        assert_eq!(page.iter().map(|e| e.offset).collect::<Vec<_>>(), [5, 6]);
        assert_eq!(miss, None);
        assert!(r.read(7, 10).is_err());
    }
}
