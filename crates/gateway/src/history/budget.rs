//! The node's memory budget for room history (`--history-max-bytes`): what every history of
//! this node holds, counted in bytes, kept under one bound that clients cannot move.
//!
//! Without it, SIZE (entries per room) was the only bound: a client publishing large messages
//! to ever new room names matching a rule grew the node (or Redis, in cluster mode) without
//! limit. Now each room counts a fixed [`room_bytes`] while it exists and each stored message
//! its [`entry_bytes`] (single node: the event, the arguments as held in memory, a fixed
//! overhead) or [`stream_entry_bytes`] (cluster mode: an estimate of what the message takes in
//! the room's Redis Stream, tracked by the node that appended it). When an append or a new room
//! would take the total over the budget:
//!
//! 1. whole other rooms are evicted, least recently appended first (the [`Index`]'s LRU, a
//!    `BTreeMap` keyed by a sequence number taken at each append: O(log n) per eviction). A room
//!    whose lock is held (an append, a replay) is skipped this round. An evicted room starts
//!    over with a new epoch, so a client recovering from it is answered `recovered: false,
//!    reason: "epoch"` rather than silently missing messages. In cluster mode its stream is
//!    deleted (`DEL`, see [`sio_wire::history::stream::EVICT`]) once the lock of the index is
//!    released, and the next write or read makes a new epoch;
//! 2. if that is not enough (the room being written alone is over the budget, or the others are
//!    busy), the room's own oldest messages go: recovering from before them answers
//!    `reason: "trimmed"`. The message being appended always stays (it is delivered from the
//!    history), so the total may exceed the budget by at most that one message.
//!
//! Locks: the index is a `std::sync::Mutex`, held for map and LRU updates only, never across an
//! await; under it a room's async lock is only ever *tried* (`try_lock`), so no task waits on a
//! room while holding the index. A room's own bytes are counted under its own lock (the lock
//! the append already holds), so the total is exact for what this node holds.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, atomic::Ordering},
    time::{Duration, Instant},
};

use prometheus::{IntCounterVec, IntGauge};

use super::{
    RoomHistory,
    message::{Args, Entry},
    metrics::{HistoryMetrics, evicted},
    ring::Ring,
};

/// What a room counts while it exists: its `RoomHistory` (the lock, the ring's bookkeeping, the
/// two copies of its name), its entries in the index's maps and LRU and, in cluster mode, the
/// meta hash beside its stream in Redis. Measured ~300 bytes; rounded up.
pub const ROOM_OVERHEAD: u64 = 512;

/// What a message counts besides its event name and its arguments' footprint: its `Entry` in
/// the ring's buffer and the allocator's headers of its strings.
pub const ENTRY_OVERHEAD: u64 = std::mem::size_of::<Entry>() as u64 + 32;

/// What a message counts in a Redis Stream besides its event name and its arguments as JSON:
/// the stream id, the field names, the listpack's per-entry headers (and the node's 4 bytes
/// that track it here).
pub const STREAM_ENTRY_OVERHEAD: u64 = 64;

/// At most one warning line per this period (an attacker must not be able to flood the log);
/// the line sums up what happened since the last one.
pub const WARN_EVERY: Duration = Duration::from_secs(5);

/// Cluster mode: most evicted rooms waiting for their keys to be deleted (evictions made while
/// creating a room, which cannot wait on Redis); past it, new rooms evict nothing until the next
/// append or the periodic flush deletes them.
const MAX_PENDING: usize = 10_000;

/// What room `room` of namespace `ns` counts while it exists.
pub fn room_bytes(ns: &str, room: &str) -> u64 {
    ROOM_OVERHEAD + 2 * (ns.len() + room.len()) as u64
}

/// What a message held in memory counts.
pub fn entry_bytes(event: &str, args: &Args) -> u64 {
    ENTRY_OVERHEAD + event.len() as u64 + args.footprint()
}

/// What a message appended to a room's stream counts.
pub fn stream_entry_bytes(event: &str, args_json: &str) -> u64 {
    STREAM_ENTRY_OVERHEAD + (event.len() + args_json.len()) as u64
}

/// A room's history state, under the room's async lock.
#[derive(Debug)]
pub struct Slot {
    pub ring: Ring,
    /// This room's bytes as counted in the index's total (entries only; the room's own
    /// [`room_bytes`] are counted by the index).
    accounted: u64,
    /// Cluster mode: the bytes of each message this node appended to the room's stream, oldest
    /// first, at most SIZE (the stream keeps about as many, `XADD MAXLEN ~ SIZE`).
    stream: VecDeque<u32>,
    stream_bytes: u64,
}

impl Slot {
    pub fn new(ring: Ring) -> Slot {
        Slot {
            ring,
            accounted: 0,
            stream: VecDeque::new(),
            stream_bytes: 0,
        }
    }

    /// The bytes this room's messages count now.
    pub fn bytes(&self) -> u64 {
        self.ring.bytes() + self.stream_bytes
    }

    /// Does the total count this room at what it holds?
    pub fn is_settled(&self) -> bool {
        self.accounted == self.bytes()
    }

    /// Start over with a new epoch (lost or evicted): no message, in memory or tracked in Redis.
    pub fn renew(&mut self, now: Instant) {
        self.ring.renew(now);
        self.forget_stream();
    }

    /// Cluster mode: forget what this node appended (the stream expired or was deleted).
    pub fn forget_stream(&mut self) {
        self.stream.clear();
        self.stream_bytes = 0;
    }

    /// Cluster mode: a message of `bytes` was appended to the stream of a rule of SIZE `size`.
    pub fn push_stream(&mut self, bytes: u64, size: usize, now: Instant) {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.ring.touch(now);
        self.stream.push_back(bytes);
        self.stream_bytes += u64::from(bytes);
        while self.stream.len() > size {
            self.pop_stream();
        }
    }

    fn pop_stream(&mut self) -> u64 {
        let b = self.stream.pop_front().map_or(0, u64::from);
        self.stream_bytes -= b;
        b
    }

    /// Drop the oldest messages until `over` bytes are freed (the newest stays); returns the
    /// bytes freed.
    fn trim_own(&mut self, over: u64) -> u64 {
        let mut freed = self.ring.trim_oldest(over);
        while freed < over && self.stream.len() > 1 {
            freed += self.pop_stream();
        }
        freed
    }
}

/// Cluster mode: a room whose keys this node must delete (it evicted the room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    pub ns: String,
    pub room: String,
    /// This node appended to it: delete the stream. Otherwise only a meta hash left by a read.
    pub wrote: bool,
}

/// Cluster mode: the Redis work an append leaves, done after the index is released.
#[derive(Debug, Default)]
pub struct Settled {
    pub victims: Vec<Victim>,
    /// The room alone was over the budget: keep only this many newest messages of its stream.
    pub trim_stream_to: Option<usize>,
}

/// Evictions of one round, for the metrics and the log.
#[derive(Default)]
struct Round {
    rooms: u64,
    trims: u64,
}

/// Every history of the node, with the LRU and the total (under [`Budget::lock`]).
#[derive(Default)]
pub struct Index {
    /// By namespace, then room.
    pub map: HashMap<String, HashMap<String, Arc<RoomHistory>>>,
    /// Every room of `map`, by the sequence number of its last append (or creation).
    lru: BTreeMap<u64, Arc<RoomHistory>>,
    next: u64,
    /// What every room and message counts (this node's share of Redis in cluster mode).
    held: u64,
    /// Cluster mode: evicted rooms whose keys are still to delete.
    pending: Vec<Victim>,
    last_warn: Option<Instant>,
    unlogged: Round,
}

/// References to a room's `Arc` held by the index itself (`map` and `lru`): a room with no
/// other is not in use.
const INDEX_REFS: usize = 2;

impl Index {
    fn bump(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// `h` was just appended to: it becomes the most recent.
    fn touch(&mut self, h: &RoomHistory) {
        let old = h.seq.load(Ordering::Relaxed);
        if old == self.next {
            return;
        }
        if let Some(arc) = self.lru.remove(&old) {
            let seq = self.bump();
            h.seq.store(seq, Ordering::Relaxed);
            self.lru.insert(seq, arc);
        }
    }

    /// Forget `h` (its entries' bytes are already uncounted).
    fn remove(&mut self, h: &RoomHistory) {
        if let Some(m) = self.map.get_mut(&h.ns) {
            m.remove(&h.room);
            if m.is_empty() {
                self.map.remove(&h.ns);
            }
        }
        self.lru.remove(&h.seq.load(Ordering::Relaxed));
        self.held = self.held.saturating_sub(room_bytes(&h.ns, &h.room));
    }

    /// The bytes counted (tests, the gauge).
    pub fn held(&self) -> u64 {
        self.held
    }
}

/// The budget and the index of every history of the node.
pub struct Budget {
    max: u64,
    /// Cluster mode: evicted rooms' keys are deleted from Redis.
    cluster: bool,
    index: Mutex<Index>,
    evicted: IntCounterVec,
    held: IntGauge,
}

impl Budget {
    pub fn new(max: u64, cluster: bool, metrics: &HistoryMetrics) -> Budget {
        Budget {
            max,
            cluster,
            index: Mutex::default(),
            evicted: metrics.evicted.clone(),
            held: metrics.held_bytes.clone(),
        }
    }

    /// The index, for a short update (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The history of `room` in `ns`, created (and counted, evicting others if needed) on first
    /// use with `make` (given the budget's handle).
    pub fn room(
        self: &Arc<Self>,
        ns: &str,
        room: &str,
        make: impl FnOnce(u64) -> RoomHistory,
    ) -> Arc<RoomHistory> {
        let mut idx = self.lock();
        if let Some(h) = idx.map.get(ns).and_then(|m| m.get(room)) {
            return h.clone();
        }
        let seq = idx.bump();
        let h = Arc::new(make(seq));
        idx.map
            .entry(ns.to_owned())
            .or_default()
            .insert(room.to_owned(), h.clone());
        idx.lru.insert(seq, h.clone());
        idx.held += room_bytes(ns, room);
        let mut round = Round::default();
        self.evict_others(&mut idx, &h, &mut round, Instant::now());
        self.report(&mut idx, round);
        h
    }

    /// Evict whole rooms other than `keep`, least recently appended first, while over budget.
    fn evict_others(&self, idx: &mut Index, keep: &RoomHistory, round: &mut Round, now: Instant) {
        let mut from = 0;
        while idx.held > self.max {
            if self.cluster && idx.pending.len() >= MAX_PENDING {
                break;
            }
            let Some((seq, v)) = idx.lru.range(from..).next().map(|(s, v)| (*s, v.clone())) else {
                break;
            };
            from = seq + 1;
            if std::ptr::eq(&*v, keep) {
                continue;
            }
            // Busy (an append or a replay holds it): skipped this round.
            let Ok(mut slot) = v.slot.try_lock() else {
                continue;
            };
            // Someone holds it between `History::room` and its lock: emptied, not forgotten
            // (it must stay the one history of its room).
            let unused = Arc::strong_count(&v) == INDEX_REFS + 1;
            if slot.accounted == 0 && !unused {
                continue;
            }
            let wrote = !slot.stream.is_empty();
            idx.held = idx.held.saturating_sub(slot.accounted);
            slot.accounted = 0;
            slot.renew(now);
            drop(slot);
            if unused {
                idx.remove(&v);
            }
            round.rooms += 1;
            if self.cluster {
                idx.pending.push(Victim {
                    ns: v.ns.clone(),
                    room: v.room.clone(),
                    wrote,
                });
            }
        }
    }

    /// Count room `h` at what it holds plus `incoming` bytes about to be stored (its lock is
    /// held: `slot`); after an append (`appended`) it becomes the most recent. Over budget,
    /// other rooms are evicted, then its own oldest messages trimmed.
    pub fn settle(
        &self,
        h: &RoomHistory,
        slot: &mut Slot,
        incoming: u64,
        appended: bool,
        now: Instant,
    ) -> Settled {
        let mut idx = self.lock();
        let target = slot.bytes() + incoming;
        idx.held = idx.held.saturating_sub(slot.accounted) + target;
        slot.accounted = target;
        if appended {
            idx.touch(h);
        }
        let mut round = Round::default();
        let mut out = Settled::default();
        if idx.held > self.max {
            self.evict_others(&mut idx, h, &mut round, now);
        }
        if idx.held > self.max {
            let freed = slot.trim_own(idx.held - self.max);
            if freed > 0 {
                slot.accounted -= freed;
                idx.held -= freed;
                round.trims += 1;
                if self.cluster {
                    out.trim_stream_to = Some(slot.stream.len());
                }
            }
        }
        if self.cluster {
            out.victims = std::mem::take(&mut idx.pending);
        }
        self.report(&mut idx, round);
        out
    }

    /// Count room `h` at what it holds (messages expired, the history lost): no eviction.
    pub fn adjust(&self, slot: &mut Slot) {
        let mut idx = self.lock();
        idx.held = idx.held.saturating_sub(slot.accounted) + slot.bytes();
        slot.accounted = slot.bytes();
        self.held.set(i64::try_from(idx.held).unwrap_or(i64::MAX));
    }

    /// Forget the histories that were lost (idle past their TTL) and are not in use; returns
    /// how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut idx = self.lock();
        let lost: Vec<Arc<RoomHistory>> = idx
            .lru
            .values()
            .filter(|h| {
                Arc::strong_count(h) == INDEX_REFS
                    && h.slot.try_lock().is_ok_and(|s| s.ring.is_lost(now))
            })
            .cloned()
            .collect();
        for h in &lost {
            if let Ok(slot) = h.slot.try_lock() {
                idx.held = idx.held.saturating_sub(slot.accounted);
            }
            idx.remove(h);
        }
        self.held.set(i64::try_from(idx.held).unwrap_or(i64::MAX));
        lost.len()
    }

    /// Cluster mode: the evicted rooms whose keys are still to delete.
    pub fn take_pending(&self) -> Vec<Victim> {
        std::mem::take(&mut self.lock().pending)
    }

    /// Forget every room (the index and the rooms point at each other).
    pub fn clear(&self) {
        let mut idx = self.lock();
        idx.map.clear();
        idx.lru.clear();
    }

    /// The gauge, the eviction counters, and at most one warning per [`WARN_EVERY`].
    fn report(&self, idx: &mut Index, round: Round) {
        self.held.set(i64::try_from(idx.held).unwrap_or(i64::MAX));
        if round.rooms == 0 && round.trims == 0 {
            return;
        }
        self.evicted
            .with_label_values(&[evicted::LRU])
            .inc_by(round.rooms);
        self.evicted
            .with_label_values(&[evicted::SELF_TRIM])
            .inc_by(round.trims);
        idx.unlogged.rooms += round.rooms;
        idx.unlogged.trims += round.trims;
        let now = Instant::now();
        if idx
            .last_warn
            .is_some_and(|t| now.saturating_duration_since(t) < WARN_EVERY)
        {
            return;
        }
        idx.last_warn = Some(now);
        let Round { rooms, trims } = std::mem::take(&mut idx.unlogged);
        tracing::warn!(
            evicted_rooms = rooms,
            trimmed_rooms = trims,
            held_bytes = idx.held,
            max_bytes = self.max,
            "room history over its memory budget (--history-max-bytes): least recently written rooms evicted (their clients recover with reason \"epoch\"), rooms alone over it trimmed (reason \"trimmed\"); at most one such line per {}s",
            WARN_EVERY.as_secs()
        );
    }
}
