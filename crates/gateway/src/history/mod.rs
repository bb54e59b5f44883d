//! Room history (`--history GLOB=SIZE[/TTL]`): the last messages of matching rooms, with
//! offsets and an epoch, so a client that comes back (`join {room, since}`) gets what it
//! missed, in order, before live messages.
//!
//! The single append point is [`RoomGuard::append`] on a single node and
//! [`History::append_cluster`] in cluster mode: every broadcast into a history room (a
//! client's `publish`, the HTTP API's emit, on any node) takes the room's lock, appends, and
//! delivers while still holding it. `sio-emitter` / `sio-emit` given the same rules append
//! the same way (the format is `sio_wire::history`) and publish with the mark, so nodes treat
//! their broadcasts like another node's. Broadcasts that come through none of these (Node.js
//! peers, `@socket.io/redis-emitter`, python-socketio) bypass it and are counted ([`holdback`],
//! `pysio`). A recovering join takes the same lock, reads what followed its
//! offset, sends it to the socket and joins the room before letting go; a replay longer than
//! the socket's queue lets the lock go while it waits for room, never holding up the room's
//! publishers, and goes on from the last offset sent (`relay`, `replay`); it is also paced by
//! the bytes its client takes, at most a window queued and not delivered per replay and
//! `--history-max-bytes` for all of them together ([`flow`]). So a message is
//! either appended-and-delivered before the join (and then replayed) or after it (and then
//! delivered live): no gap and no duplicate at the boundary, in order.
//!
//! Cost: rooms without history pay one glob test per broadcast ([`History::room`], nothing
//! when `--history` is not given), no allocation and no lock. History rooms pay a map lookup
//! under a short lock (the map of rooms, held for the lookup only), the room's async lock
//! around append + delivery (their broadcasts are serialized: that is what orders offsets
//! with deliveries), and the stored copy of each message (held by the ring; delivery reads
//! it from there, so the publish path makes no second copy).
//!
//! Where this lives: on a single node, in memory ([`ring`]); in cluster mode, in a Redis Stream
//! per room ([`stream`]), appended under the same per-room lock (which then orders this node's
//! publishes), and live messages (other nodes', and this node's once the socket is registered)
//! are held back from a recovering socket by [`holdback`]. A lost history (idle past its TTL,
//! node restarted, Redis flushed, evicted for the memory budget) comes back with a new epoch
//! ([`epoch`]).
//!
//! Memory: every history of the node counts against one budget, `--history-max-bytes`
//! ([`budget`]); past it, the least recently appended rooms are evicted whole (and their streams
//! deleted in cluster mode), then a room alone over it loses its oldest messages.
pub mod budget;
pub mod epoch;
pub mod flow;
pub mod holdback;
pub mod message;
pub mod metrics;
pub mod replay;
pub mod ring;
pub mod since;
pub mod stream;

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Instant,
};

use prometheus::Registry;

use self::{
    budget::{Budget, Settled, Slot},
    epoch::Epoch,
    message::{Args, Delivery, Entry},
    metrics::HistoryMetrics,
    ring::{Ahead, Miss, Ring},
    since::Since,
};
use crate::config::HistorySpec;

/// The histories of this node's rooms, per namespace and room.
pub struct History {
    specs: Vec<HistorySpec>,
    /// The rooms, and what they count against `--history-max-bytes`.
    budget: Arc<Budget>,
    pub metrics: HistoryMetrics,
    /// Cluster mode: the Redis Streams (the rings then only serve as per-room locks).
    store: Option<stream::StreamStore>,
    /// Cluster mode: live messages held back from recovering sockets.
    pub holdback: Arc<holdback::HoldBack>,
    /// The bytes running replays may have queued and not delivered, all together
    /// (`--history-max-bytes` too; see [`flow`]).
    pub replays: flow::ReplayBudget,
}

/// The history of one room.
pub struct RoomHistory {
    ns: String,
    room: String,
    budget: Arc<Budget>,
    /// Its key in the budget's LRU (read and written under the budget's index lock only).
    seq: AtomicU64,
    /// The room's lock (see the module doc): its ring and what it counts.
    slot: tokio::sync::Mutex<Slot>,
}

/// A message written to a room's stream, ready to deliver.
pub struct Appended {
    pub room: String,
    pub event: String,
    pub args: Args,
    pub id: sio_wire::history::StreamId,
    pub epoch: Epoch,
}

impl Appended {
    pub fn delivery(&self) -> Delivery<'_> {
        Delivery {
            event: &self.event,
            args: &self.args,
            mark: message::Mark {
                room: &self.room,
                offset: message::Offset::Id(self.id),
                epoch: self.epoch.as_str(),
            },
        }
    }
}

/// What a recovering join gets: the messages to replay, or why they cannot be.
pub enum Recovery<'a> {
    Replay(Vec<Delivery<'a>>),
    Miss(Miss),
    /// The client's epoch is not this history's: it was lost and started over.
    OtherEpoch,
}

impl History {
    /// `max_bytes`: the budget of every history of the node (`--history-max-bytes`).
    pub fn new(
        specs: Vec<HistorySpec>,
        max_bytes: u64,
        store: Option<stream::StreamStore>,
        registry: &Registry,
    ) -> History {
        let metrics = HistoryMetrics::new(registry);
        History {
            budget: Arc::new(Budget::new(max_bytes, store.is_some(), &metrics)),
            replays: flow::ReplayBudget::new(max_bytes, metrics.replay_outstanding_bytes.clone()),
            holdback: Arc::new(holdback::HoldBack::new(
                specs.clone(),
                metrics.bypassed.clone(),
                metrics.holdback_bytes.clone(),
            )),
            specs,
            metrics,
            store,
        }
    }

    /// Cluster mode: the Redis Streams the histories are kept in.
    pub fn store(&self) -> Option<&stream::StreamStore> {
        self.store.as_ref()
    }

    /// Cluster mode's append point, under the room's lock `g` (see [`RoomHistory::lock`]): the
    /// message is written to the room's stream; deliver [`Appended::delivery`]. Over the memory
    /// budget, the evicted rooms' streams are deleted (and a room alone over it trimmed) before
    /// this returns.
    pub async fn append_cluster(
        &self,
        g: &mut RoomGuard<'_>,
        store: &stream::StreamStore,
        event: String,
        args: Args,
    ) -> Result<Appended, stream::StoreError> {
        let h = g.h;
        let (nsp, room) = (h.ns.as_str(), h.room.as_str());
        let spec = self
            .spec(room)
            .ok_or(stream::StoreError::Answer("no history rule"))?;
        let json = serde_json::to_string(&args.to_json()).unwrap_or_else(|_| "[]".into());
        let (id, epoch) = store.append(nsp, room, spec, &event, &json).await?;
        self.metrics.appends.inc();
        let now = Instant::now();
        g.slot
            .push_stream(budget::stream_entry_bytes(&event, &json), spec.size, now);
        let settled = h.budget.settle(h, &mut g.slot, 0, true, now);
        apply(store, nsp, room, settled).await;
        Ok(Appended {
            room: room.to_owned(),
            event,
            args,
            id,
            epoch,
        })
    }

    /// Is any `--history` rule configured?
    pub fn is_enabled(&self) -> bool {
        !self.specs.is_empty()
    }

    /// The rule `room` falls under (the first that matches).
    pub fn spec(&self, room: &str) -> Option<&HistorySpec> {
        self.specs.iter().find(|s| s.matches(room))
    }

    /// The history of `room` in `ns`, created on first use (counted against the memory
    /// budget, which may evict other rooms); `None` when no rule matches.
    pub fn room(&self, ns: &str, room: &str) -> Option<Arc<RoomHistory>> {
        let spec = self.spec(room)?;
        Some(self.budget.room(ns, room, |seq| RoomHistory {
            ns: ns.to_owned(),
            room: room.to_owned(),
            budget: self.budget.clone(),
            seq: AtomicU64::new(seq),
            slot: tokio::sync::Mutex::new(Slot::new(Ring::new(
                spec.size,
                spec.ttl,
                Instant::now(),
            ))),
        }))
    }

    /// Forget the histories that were lost (idle past their TTL) and are not in use; returns
    /// how many. Run periodically, so rooms that were used once do not stay in memory.
    pub fn sweep(&self) -> usize {
        self.budget.sweep(Instant::now())
    }

    /// Cluster mode: delete the keys of rooms evicted while creating others (creating a room
    /// cannot wait on Redis; appends delete them too). Run periodically.
    pub async fn flush_evictions(&self) {
        let Some(store) = &self.store else { return };
        for v in self.budget.take_pending() {
            evict(store, &v).await;
        }
    }
}

impl Drop for History {
    fn drop(&mut self) {
        // The rooms hold the budget and the budget the rooms.
        self.budget.clear();
    }
}

/// Cluster mode: the Redis side of an append's [`Settled`] (under the room's own lock only).
async fn apply(store: &stream::StreamStore, nsp: &str, room: &str, settled: Settled) {
    for v in &settled.victims {
        evict(store, v).await;
    }
    if let Some(keep) = settled.trim_stream_to
        && let Err(e) = store.trim(nsp, room, keep).await
    {
        tracing::debug!(%nsp, room = ?room, error = %e, "trimming a history stream over the memory budget failed");
    }
}

async fn evict(store: &stream::StreamStore, v: &budget::Victim) {
    if let Err(e) = store.evict(&v.ns, &v.room, v.wrote).await {
        // Forgotten here all the same; its keys expire on their own (the rule's TTL, else
        // `IDLE_EXPIRY_WITHOUT_TTL`).
        tracing::debug!(nsp = %v.ns, room = ?v.room, error = %e, "deleting an evicted history's stream failed");
    }
}

impl RoomHistory {
    /// Take the room's lock (see the module doc); a lost history starts over here.
    pub async fn lock<'a>(&'a self, metrics: &'a HistoryMetrics) -> RoomGuard<'a> {
        let mut slot = self.slot.lock().await;
        if slot.ring.renew_if_lost(Instant::now()) {
            // Cluster mode: the stream expired with it.
            slot.forget_stream();
        }
        RoomGuard {
            h: self,
            slot,
            metrics,
        }
    }
}

/// A room's history while its lock is held.
pub struct RoomGuard<'a> {
    h: &'a RoomHistory,
    slot: tokio::sync::MutexGuard<'a, Slot>,
    metrics: &'a HistoryMetrics,
}

/// What the room holds is counted again when its lock is let go (messages expired, a lost
/// history renewed): the budget's total stays exact whatever the holder did.
impl Drop for RoomGuard<'_> {
    fn drop(&mut self) {
        if !self.slot.is_settled() {
            self.h.budget.adjust(&mut self.slot);
        }
    }
}

impl RoomGuard<'_> {
    pub fn epoch(&self) -> &Epoch {
        self.slot.ring.epoch()
    }

    /// The last offset handed out (0 before the first message).
    pub fn last(&self) -> u64 {
        self.slot.ring.last()
    }

    /// The single append point: store the message and return it as it must be delivered.
    /// Counted against the memory budget first (which may evict other rooms, or this room's
    /// oldest messages), so the node holds at most the budget plus this one message.
    pub fn append(&mut self, event: String, args: Args) -> Delivery<'_> {
        self.metrics.appends.inc();
        let now = Instant::now();
        let h = self.h;
        let bytes = budget::entry_bytes(&event, &args);
        self.slot.ring.make_room(now);
        h.budget.settle(h, &mut self.slot, bytes, true, now);
        let (entry, epoch) = self.slot.ring.push(event, args, bytes, now);
        entry.delivery(&h.room, epoch.as_str())
    }

    /// What followed `since` in this history.
    pub fn recover(&mut self, since: &Since) -> Result<Recovery<'_>, Ahead> {
        if since.epoch != *self.slot.ring.epoch() {
            return Ok(Recovery::OtherEpoch);
        }
        let started = Instant::now();
        let room = self.h.room.as_str();
        self.slot.ring.expire(started);
        let ring = &self.slot.ring;
        let epoch = ring.epoch().as_str();
        let Some(offset) = since.seq() else {
            return Err(Ahead::NotAnOffset);
        };
        let res = match ring.after(offset)? {
            Err(miss) => Recovery::Miss(miss),
            Ok(it) => Recovery::Replay(it.map(|e| e.delivery(room, epoch)).collect()),
        };
        self.metrics
            .read_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(res)
    }

    /// Up to `limit` messages after `offset` (HTTP API), and whether some before them are gone.
    pub fn read(&mut self, offset: u64, limit: usize) -> Result<(Vec<Entry>, Option<Miss>), Ahead> {
        let started = Instant::now();
        self.slot.ring.expire(started);
        let (page, miss) = self.slot.ring.read(offset, limit)?;
        let page = page.into_iter().cloned().collect();
        self.metrics
            .read_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok((page, miss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(rules: &[&str]) -> History {
        history_max(rules, crate::config::defaults::HISTORY_MAX_BYTES)
    }

    fn history_max(rules: &[&str], max: u64) -> History {
        let specs = rules
            .iter()
            .map(|r| HistorySpec::parse(r).unwrap())
            .collect();
        History::new(specs, max, None, &Registry::new())
    }

    /// A message of `n` bytes of binary.
    fn blob(n: usize) -> Args {
        Args::One(rmpv::Value::Binary(vec![7; n]))
    }

    /// What a message `blob(n)` counts.
    fn cost(n: usize) -> u64 {
        budget::entry_bytes("m", &blob(n))
    }

    async fn put(h: &History, room: &str, n: usize) {
        let r = h.room("/", room).unwrap();
        let mut g = r.lock(&h.metrics).await;
        g.append("m".into(), blob(n));
    }

    fn held(h: &History) -> u64 {
        h.budget.lock().held()
    }

    fn has(h: &History, room: &str) -> bool {
        h.budget
            .lock()
            .map
            .get("/")
            .is_some_and(|m| m.contains_key(room))
    }

    fn evicted(h: &History, reason: &str) -> u64 {
        h.metrics.evicted.with_label_values(&[reason]).get()
    }

    /// The total recomputed from the rooms: what the budget must have counted.
    fn recount(h: &History) -> u64 {
        let idx = h.budget.lock();
        idx.map
            .iter()
            .flat_map(|(ns, m)| m.iter().map(move |(r, rh)| (ns, r, rh)))
            .map(|(ns, r, rh)| {
                budget::room_bytes(ns, r) + rh.slot.try_lock().map_or(0, |s| s.bytes())
            })
            .sum()
    }

    #[test]
    fn rooms_without_a_rule_have_no_history() {
        let h = history(&[]);
        assert!(!h.is_enabled());
        assert!(h.room("/", "chat:a").is_none());
        let h = history(&["chat:*=10"]);
        assert!(h.room("/", "news").is_none());
        assert!(h.budget.lock().map.is_empty(), "nothing made for them");
        assert_eq!(held(&h), 0);
    }

    #[tokio::test]
    async fn one_history_per_namespace_and_room() {
        let h = history(&["chat:*=10", "*=1"]);
        let a = h.room("/", "chat:a").unwrap();
        assert!(Arc::ptr_eq(&a, &h.room("/", "chat:a").unwrap()));
        let other_ns = h.room("/admin", "chat:a").unwrap();
        assert!(!Arc::ptr_eq(&a, &other_ns));
        // The first matching rule decides the size.
        let mut g = a.lock(&h.metrics).await;
        for i in 0..12 {
            g.append("e".into(), Args::One(rmpv::Value::from(i)));
        }
        let since = Since {
            offset: "2".into(),
            epoch: g.epoch().clone(),
        };
        assert!(matches!(g.recover(&since), Ok(Recovery::Replay(r)) if r.len() == 10));
        let since = Since {
            offset: "1".into(),
            ..since
        };
        assert!(matches!(
            g.recover(&since),
            Ok(Recovery::Miss(Miss::Trimmed))
        ));
        let other = Since {
            offset: "2".into(),
            epoch: epoch::random(),
        };
        assert!(matches!(g.recover(&other), Ok(Recovery::OtherEpoch)));
        assert_eq!(h.metrics.appends.get(), 12);
    }

    #[tokio::test]
    async fn sweep_keeps_live_histories() {
        let h = history(&["t:*=10/1s", "k:*=10"]);
        drop(h.room("/", "t:a"));
        drop(h.room("/", "k:a"));
        assert_eq!(h.sweep(), 0, "neither is idle yet");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let held = h.room("/", "t:b");
        assert_eq!(h.sweep(), 1, "t:a was idle past its TTL; k:a has none");
        assert!(has(&h, "k:a"));
        drop(held);
        assert_eq!(
            self::held(&h),
            budget::room_bytes("/", "k:a") + budget::room_bytes("/", "t:b"),
            "a swept room no longer counts"
        );
    }

    #[tokio::test]
    async fn evicts_the_least_recently_appended_other_rooms_first() {
        let room = budget::room_bytes("/", "c:a");
        // Room for three rooms of one message each, not four.
        let h = history_max(&["c:*=10"], 3 * (room + cost(30_000)) + cost(1_000) + 100);
        for r in ["c:a", "c:b", "c:c"] {
            put(&h, r, 30_000).await;
        }
        put(&h, "c:a", 1_000).await; // a is now the most recent
        assert_eq!(
            evicted(&h, metrics::evicted::LRU),
            0,
            "still within the budget"
        );
        put(&h, "c:d", 30_000).await;
        assert!(!has(&h, "c:b"), "b was the least recently appended");
        assert!(has(&h, "c:a") && has(&h, "c:c") && has(&h, "c:d"));
        put(&h, "c:e", 30_000).await;
        assert!(!has(&h, "c:c"), "then c");
        assert!(has(&h, "c:a") && has(&h, "c:d") && has(&h, "c:e"));
        assert_eq!(evicted(&h, metrics::evicted::LRU), 2);
        assert_eq!(held(&h), recount(&h));
        assert_eq!(h.metrics.held_bytes.get() as u64, held(&h));
    }

    #[tokio::test]
    async fn the_budget_holds_under_many_rooms_of_large_messages() {
        // The attack: ever new rooms, large messages. Before the budget this held 100 x 20 KB.
        let max = 200_000;
        let h = history_max(&["chat:*=200/10m"], max);
        for i in 0..100 {
            put(&h, &format!("chat:{i}"), 20_000).await;
            assert!(held(&h) <= max, "after room {i}: {} > {max}", held(&h));
            assert_eq!(held(&h), recount(&h), "after room {i}");
        }
        let rooms = h.budget.lock().map["/"].len();
        assert!(rooms < 10, "{rooms} rooms kept");
        assert!(evicted(&h, metrics::evicted::LRU) >= 90);
        assert_eq!(h.metrics.held_bytes.get() as u64, held(&h));
        // Rooms made without a message (joins, reads) count too, and are evicted as well.
        for i in 0..10_000 {
            drop(h.room("/", &format!("chat:join{i}")));
        }
        assert!(held(&h) <= max, "{}", held(&h));
        assert!(h.budget.lock().map["/"].len() < 400);
    }

    #[tokio::test]
    async fn a_busy_room_is_skipped_and_kept() {
        let room = budget::room_bytes("/", "c:a");
        let h = history_max(&["c:*=10"], 3 * (room + cost(30_000)) + 100);
        for r in ["c:a", "c:b", "c:c"] {
            put(&h, r, 30_000).await;
        }
        let a = h.room("/", "c:a").unwrap();
        let ga = a.lock(&h.metrics).await; // a replay or an append holds it
        put(&h, "c:d", 30_000).await;
        assert!(
            !has(&h, "c:b"),
            "the next least recently appended went instead"
        );
        assert!(has(&h, "c:a"));
        assert_eq!(ga.last(), 1, "a kept its message");
        drop(ga);
        drop(a);
        put(&h, "c:e", 30_000).await;
        assert!(!has(&h, "c:a"), "no longer busy: a goes now");
        assert_eq!(held(&h), recount(&h));
    }

    #[tokio::test]
    async fn an_evicted_room_answers_another_epoch() {
        let max = 2 * (budget::room_bytes("/", "c:xx") + cost(30_000)) + 100;
        let h = history_max(&["c:*=10"], max);
        put(&h, "c:a", 100).await;
        put(&h, "c:a", 100).await;
        let ra = h.room("/", "c:a").unwrap();
        let since = {
            let g = ra.lock(&h.metrics).await;
            Since {
                offset: "1".into(),
                epoch: g.epoch().clone(),
            }
        };
        // Held by a join between `room` and its lock: emptied in place, a new epoch.
        put(&h, "c:b", 30_000).await;
        put(&h, "c:c", 30_000).await;
        assert!(has(&h, "c:a"), "in use: kept, emptied");
        {
            let mut g = ra.lock(&h.metrics).await;
            assert_ne!(*g.epoch(), since.epoch);
            assert_eq!(g.last(), 0);
            assert!(matches!(g.recover(&since), Ok(Recovery::OtherEpoch)));
            g.append("m".into(), blob(10));
        }
        drop(ra);
        // Not in use: forgotten; it comes back with a new epoch.
        let since = {
            let ra = h.room("/", "c:a").unwrap();
            let g = ra.lock(&h.metrics).await;
            Since {
                offset: "1".into(),
                epoch: g.epoch().clone(),
            }
        };
        put(&h, "c:d", 30_000).await;
        put(&h, "c:e", 30_000).await;
        assert!(!has(&h, "c:a"));
        let ra = h.room("/", "c:a").unwrap();
        let mut g = ra.lock(&h.metrics).await;
        assert!(matches!(g.recover(&since), Ok(Recovery::OtherEpoch)));
        assert_eq!(g.last(), 0);
        drop(g);
        assert_eq!(held(&h), recount(&h));
    }

    #[tokio::test]
    async fn a_room_alone_over_the_budget_trims_its_own_oldest() {
        let max = budget::room_bytes("/", "c:big") + 3 * cost(30_000) + 100;
        let h = history_max(&["c:*=100"], max);
        for _ in 0..10 {
            put(&h, "c:big", 30_000).await;
            assert!(held(&h) <= max);
        }
        let r = h.room("/", "c:big").unwrap();
        let mut g = r.lock(&h.metrics).await;
        assert_eq!(g.last(), 10);
        let epoch = g.epoch().clone();
        let from = |offset: &str| Since {
            offset: offset.into(),
            epoch: epoch.clone(),
        };
        assert!(matches!(
            g.recover(&from("1")),
            Ok(Recovery::Miss(Miss::Trimmed))
        ));
        assert!(matches!(g.recover(&from("7")), Ok(Recovery::Replay(r)) if r.len() == 3));
        drop(g);
        assert!(evicted(&h, metrics::evicted::SELF_TRIM) >= 7);
        assert_eq!(evicted(&h, metrics::evicted::LRU), 0);
        // A message larger than the whole budget is still stored (it is delivered from
        // there), alone: the budget is exceeded by at most that one message.
        put(&h, "c:big", 200_000).await;
        let mut g = r.lock(&h.metrics).await;
        assert!(matches!(g.recover(&from("10")), Ok(Recovery::Replay(r)) if r.len() == 1));
        assert_eq!(held(&h), budget::room_bytes("/", "c:big") + cost(200_000));
        drop(g);
        put(&h, "c:big", 10).await;
        assert!(held(&h) <= max, "the next append trims it");
        assert_eq!(held(&h), recount(&h));
    }
}
