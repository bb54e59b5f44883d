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
//! publishers, and goes on from the last offset sent (`relay`, `replay`). So a message is
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
//! node restarted, Redis flushed) comes back with a new epoch ([`epoch`]).
pub mod epoch;
pub mod holdback;
pub mod message;
pub mod metrics;
pub mod replay;
pub mod ring;
pub mod since;
pub mod stream;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use prometheus::Registry;

use self::{
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
    rooms: Mutex<HashMap<String, HashMap<String, Arc<RoomHistory>>>>,
    pub metrics: HistoryMetrics,
    /// Cluster mode: the Redis Streams (the rings then only serve as per-room locks).
    store: Option<stream::StreamStore>,
    /// Cluster mode: live messages held back from recovering sockets.
    pub holdback: Arc<holdback::HoldBack>,
}

/// The history of one room.
pub struct RoomHistory {
    room: String,
    ring: tokio::sync::Mutex<Ring>,
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
    pub fn new(
        specs: Vec<HistorySpec>,
        store: Option<stream::StreamStore>,
        registry: &Registry,
    ) -> History {
        let metrics = HistoryMetrics::new(registry);
        History {
            holdback: Arc::new(holdback::HoldBack::new(
                specs.clone(),
                metrics.bypassed.clone(),
            )),
            specs,
            rooms: Mutex::default(),
            metrics,
            store,
        }
    }

    /// Cluster mode: the Redis Streams the histories are kept in.
    pub fn store(&self) -> Option<&stream::StreamStore> {
        self.store.as_ref()
    }

    /// Cluster mode's append point (call it under the room's lock, see [`RoomHistory::lock`]):
    /// the message is written to the room's stream; deliver [`Appended::delivery`].
    pub async fn append_cluster(
        &self,
        store: &stream::StreamStore,
        nsp: &str,
        room: &str,
        event: String,
        args: Args,
    ) -> Result<Appended, stream::StoreError> {
        let spec = self
            .spec(room)
            .ok_or(stream::StoreError::Answer("no history rule"))?;
        let json = serde_json::to_string(&args.to_json()).unwrap_or_else(|_| "[]".into());
        let (id, epoch) = store.append(nsp, room, spec, &event, &json).await?;
        self.metrics.appends.inc();
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

    /// The history of `room` in `ns`, created on first use; `None` when no rule matches.
    pub fn room(&self, ns: &str, room: &str) -> Option<Arc<RoomHistory>> {
        let spec = self.spec(room)?;
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = rooms.get(ns).and_then(|m| m.get(room)) {
            return Some(h.clone());
        }
        let h = Arc::new(RoomHistory {
            room: room.to_owned(),
            ring: tokio::sync::Mutex::new(Ring::new(spec.size, spec.ttl, Instant::now())),
        });
        rooms
            .entry(ns.to_owned())
            .or_default()
            .insert(room.to_owned(), h.clone());
        Some(h)
    }

    /// Forget the histories that were lost (idle past their TTL) and are not in use; returns
    /// how many. Run periodically, so rooms that were used once do not stay in memory.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        for m in rooms.values_mut() {
            m.retain(|_, h| {
                let lost =
                    Arc::strong_count(h) == 1 && h.ring.try_lock().is_ok_and(|r| r.is_lost(now));
                removed += usize::from(lost);
                !lost
            });
        }
        rooms.retain(|_, m| !m.is_empty());
        removed
    }
}

impl RoomHistory {
    /// Take the room's lock (see the module doc); a lost history starts over here.
    pub async fn lock<'a>(&'a self, metrics: &'a HistoryMetrics) -> RoomGuard<'a> {
        let mut ring = self.ring.lock().await;
        ring.renew_if_lost(Instant::now());
        RoomGuard {
            room: &self.room,
            ring,
            metrics,
        }
    }
}

/// A room's history while its lock is held.
pub struct RoomGuard<'a> {
    room: &'a str,
    ring: tokio::sync::MutexGuard<'a, Ring>,
    metrics: &'a HistoryMetrics,
}

impl RoomGuard<'_> {
    pub fn epoch(&self) -> &Epoch {
        self.ring.epoch()
    }

    /// The last offset handed out (0 before the first message).
    pub fn last(&self) -> u64 {
        self.ring.last()
    }

    /// The single append point: store the message and return it as it must be delivered.
    pub fn append(&mut self, event: String, args: Args) -> Delivery<'_> {
        self.metrics.appends.inc();
        let (entry, epoch) = self.ring.append(event, args, Instant::now());
        entry.delivery(self.room, epoch.as_str())
    }

    /// What followed `since` in this history.
    pub fn recover(&mut self, since: &Since) -> Result<Recovery<'_>, Ahead> {
        if since.epoch != *self.ring.epoch() {
            return Ok(Recovery::OtherEpoch);
        }
        let started = Instant::now();
        let room = self.room;
        self.ring.expire(started);
        let ring = &*self.ring;
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
        self.ring.expire(started);
        let (page, miss) = self.ring.read(offset, limit)?;
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
        let specs = rules
            .iter()
            .map(|r| HistorySpec::parse(r).unwrap())
            .collect();
        History::new(specs, None, &Registry::new())
    }

    #[test]
    fn rooms_without_a_rule_have_no_history() {
        let h = history(&[]);
        assert!(!h.is_enabled());
        assert!(h.room("/", "chat:a").is_none());
        let h = history(&["chat:*=10"]);
        assert!(h.room("/", "news").is_none());
        assert!(h.rooms.lock().unwrap().is_empty(), "nothing made for them");
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
        assert!(h.rooms.lock().unwrap()["/"].contains_key("k:a"));
        drop(held);
    }
}
