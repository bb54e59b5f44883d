//! Cluster mode: live messages held back from a socket while it is replayed what it missed, so
//! it gets them after the replay, in order, and none twice.
//!
//! A recovering join (see `relay`) registers the socket here *before* it joins the room and
//! reads the stream (both under the room's lock, which this node's publishes into the room
//! take too). From then on, each broadcast into that room leaves the socket out and is kept
//! here: another node's (seen by the Redis adapter's [`DeliveryFilter`] hook, in arrival
//! order) and this node's own ([`HoldBack::leave_out`], called by each append point under
//! the room's lock, in offset order). So the join need not hold the room's lock while the
//! replay waits for room in the socket's queue: a client that stops reading holds up only
//! its own recovery, not the room's publishers. After the replay, the join takes what was kept, drops what the replay already
//! held (offset <= the replay's last) and sends the rest in offset order, until nothing is left; the socket
//! then gets live messages directly. For [`GRACE`] after that, a late arrival the replay already
//! held (written to the stream before the read, published after) is still left out.
//!
//! Cost: broadcasts into rooms without history pay one glob test; history rooms pay a parse of
//! the message's JSON to find its mark (the offset), and, only while some socket of this node
//! recovers, a lock of the registry. This node's own publishes into a history room pay one
//! atomic load; only while a socket of this node recovers, a lock of the registry, and, when
//! one recovers in that very room, the message's packet as JSON text (one copy, shared by the
//! sockets it is kept for).
//!
//! Bounded: at most [`MAX_HELD`] bytes are kept per recovering join (the replay window). A
//! join whose client does not read its replay while the room is busy passes it: what was
//! kept for it is dropped, the socket is still left out of the room's messages (it must not
//! get them before its replay), nothing more is kept, and [`HoldBack::take`] answers
//! [`Overflowed`]: the join fails (`recovered:false`, reason `failed`) and the client
//! recovers again. What is kept is exported as `history_holdback_bytes`. Earlier, a stalled
//! replay kept a copy of every message into the room for up to `replay::DEADLINE`: four raw
//! websockets whose joins stalled grew a node by 205 MB while 171 MB was published.
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus::{IntCounter, IntGauge};
use sio_redis_adapter::DeliveryFilter;
use socketioxide::{adapter::Adapter, operators::BroadcastOperators, socket::Sid};
use socketioxide_core::Value;

use super::Appended;
use crate::config::HistorySpec;
use sio_wire::history::{StreamId, mark_offset};

/// How long after its replay a socket still has late duplicates left out.
pub const GRACE: Duration = Duration::from_secs(10);

/// Most bytes kept for one recovering join: the replay window (`flow::WINDOW`, 1 MiB).
pub const MAX_HELD: usize = super::flow::WINDOW as usize;

/// More than [`MAX_HELD`] bytes arrived for a recovering join while it replayed: what was kept
/// for it is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "more than {} bytes were published into the room while the client read its replay",
    MAX_HELD
)]
pub struct Overflowed;

struct Recovering {
    sid: String,
    /// The replay's last offset, once known; messages up to it are never delivered again.
    upto: Option<StreamId>,
    /// Still replaying: later messages are kept in `held`.
    holding: bool,
    /// One copy of each message, shared by every socket it is held for.
    held: Vec<(StreamId, Arc<str>)>,
    /// The bytes of `held` (counted in `gauge`).
    held_bytes: usize,
    /// More than [`MAX_HELD`] arrived: `held` was dropped and nothing more is kept.
    overflowed: bool,
    until: Option<Instant>,
    gauge: IntGauge,
}

impl Recovering {
    /// Drop what is held, taken off the gauge.
    fn forget(&mut self) -> Vec<(StreamId, Arc<str>)> {
        self.gauge
            .sub(i64::try_from(self.held_bytes).unwrap_or(i64::MAX));
        self.held_bytes = 0;
        std::mem::take(&mut self.held)
    }
}

impl Drop for Recovering {
    fn drop(&mut self) {
        self.forget();
    }
}

pub struct HoldBack {
    specs: Vec<HistorySpec>,
    bypassed: IntCounter,
    /// `history_holdback_bytes`.
    gauge: IntGauge,
    /// Registrations, by namespace and room.
    rooms: Mutex<HashMap<String, HashMap<String, Vec<Recovering>>>>,
    active: AtomicUsize,
}

impl HoldBack {
    pub fn new(specs: Vec<HistorySpec>, bypassed: IntCounter, gauge: IntGauge) -> HoldBack {
        HoldBack {
            specs,
            bypassed,
            gauge,
            rooms: Mutex::default(),
            active: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Vec<Recovering>>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hold back `sid`'s messages of `room` from now on.
    pub fn start(&self, nsp: &str, room: &str, sid: Sid) {
        let mut rooms = self.lock();
        let list = rooms
            .entry(nsp.to_owned())
            .or_default()
            .entry(room.to_owned())
            .or_default();
        list.retain(|r| r.sid != sid.as_str());
        list.push(Recovering {
            sid: sid.to_string(),
            upto: None,
            holding: true,
            held: Vec::new(),
            held_bytes: 0,
            overflowed: false,
            until: None,
            gauge: self.gauge.clone(),
        });
        self.active.store(count(&rooms), Ordering::Release);
    }

    /// What was held for `sid` after `upto` (in offset order), removed from here. When nothing is
    /// left, the socket gets live messages directly from now on (late duplicates up to `upto`
    /// still left out for [`GRACE`]). [`Overflowed`] when more than [`MAX_HELD`] bytes arrived
    /// for it: the recovery failed (the caller abandons it).
    pub fn take(
        &self,
        nsp: &str,
        room: &str,
        sid: Sid,
        upto: Option<StreamId>,
    ) -> Result<Vec<(StreamId, Arc<str>)>, Overflowed> {
        let mut rooms = self.lock();
        let Some(r) = rooms
            .get_mut(nsp)
            .and_then(|m| m.get_mut(room))
            .and_then(|l| l.iter_mut().find(|r| r.sid == sid.as_str()))
        else {
            return Ok(Vec::new());
        };
        if r.overflowed {
            return Err(Overflowed);
        }
        r.upto = upto;
        let mut held = r.forget();
        held.retain(|(id, _)| upto.is_none_or(|u| *id > u));
        // Kept in arrival order, which is not offset order across nodes: this node's own
        // publishes are kept at their append, another node's when its PUBLISH arrives, and an
        // earlier one of those can still be on its way (a subscriber's queue) when this node
        // appends the next. Sent after the replay in offset order, as the replay itself.
        held.sort_by_key(|(id, _)| *id);
        if held.is_empty() {
            r.holding = false;
            r.until = Some(Instant::now() + GRACE);
        }
        Ok(held)
    }

    /// This node's own broadcast of `a` into its room, about to be delivered by `op`: the
    /// sockets recovering in that room are left out, and it is kept for them (dropped for those
    /// whose replay already held it). Call it under the room's lock, between the append and the
    /// delivery (see the module doc). Nobody recovering on this node: one atomic load.
    pub fn leave_out<A: Adapter>(
        &self,
        op: BroadcastOperators<A>,
        nsp: &str,
        a: &Appended,
    ) -> BroadcastOperators<A> {
        if self.active.load(Ordering::Acquire) == 0 {
            return op;
        }
        let out = self.hold(nsp, &a.room, a.id, || a.delivery().packet_json());
        if out.is_empty() { op } else { op.except(out) }
    }

    /// The registered sockets of `room` a broadcast with offset `id` must leave out; its copy
    /// (`text`, made at most once) is kept for those still replaying, within [`MAX_HELD`] each.
    fn hold(
        &self,
        nsp: &str,
        room: &str,
        id: StreamId,
        text: impl FnOnce() -> String,
    ) -> Vec<String> {
        let mut all = self.lock();
        let Some(list) = all.get_mut(nsp).and_then(|m| m.get_mut(room)) else {
            return Vec::new();
        };
        let now = Instant::now();
        list.retain(|r| r.until.is_none_or(|u| now < u));
        let mut out = Vec::new();
        let mut holding = Vec::new();
        for (i, r) in list.iter().enumerate() {
            if r.upto.is_some_and(|u| id <= u) {
                out.push(r.sid.clone());
            } else if r.holding {
                // Left out even past the cap: it must not get live messages before its replay.
                if !r.overflowed {
                    holding.push(i);
                }
                out.push(r.sid.clone());
            }
        }
        if !holding.is_empty() {
            let text: Arc<str> = text().into();
            let n = text.len();
            for i in holding {
                let r = &mut list[i];
                if r.held_bytes.saturating_add(n) > MAX_HELD {
                    r.forget();
                    r.overflowed = true;
                    continue;
                }
                r.held.push((id, text.clone()));
                r.held_bytes += n;
                r.gauge.add(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        prune(&mut all);
        self.active.store(count(&all), Ordering::Release);
        out
    }

    /// Forget `sid` in `room` (its join failed or it left).
    pub fn abandon(&self, nsp: &str, room: &str, sid: Sid) {
        let mut rooms = self.lock();
        if let Some(l) = rooms.get_mut(nsp).and_then(|m| m.get_mut(room)) {
            l.retain(|r| r.sid != sid.as_str());
        }
        prune(&mut rooms);
        self.active.store(count(&rooms), Ordering::Release);
    }
}

fn count(rooms: &HashMap<String, HashMap<String, Vec<Recovering>>>) -> usize {
    rooms.values().flat_map(|m| m.values()).map(Vec::len).sum()
}

fn prune(rooms: &mut HashMap<String, HashMap<String, Vec<Recovering>>>) {
    for m in rooms.values_mut() {
        m.retain(|_, l| !l.is_empty());
    }
    rooms.retain(|_, m| !m.is_empty());
}

impl DeliveryFilter for HoldBack {
    fn before_deliver(&self, nsp: &str, rooms: &[String], data: &Value) -> Vec<String> {
        let [room] = rooms else { return Vec::new() };
        if !self.specs.iter().any(|s| s.matches(room)) {
            return Vec::new();
        }
        let Value::Str(text, _) = data else {
            return Vec::new();
        };
        let Some(id) = mark_offset(text.as_str(), room) else {
            // Into a history room without a mark: a Node.js peer, @socket.io/redis-emitter, an
            // emitter not given the history rules. (sio-emitter / sio-emit given them append
            // and mark their broadcasts like a node.)
            self.bypassed.inc();
            return Vec::new();
        };
        if self.active.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        self.hold(nsp, room, id, || text.as_str().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: &str, id: &str) -> Value {
        Value::Str(
            format!(r#"["msg",{{"n":1}},{{"room":"{room}","offset":"{id}","epoch":"e"}}]"#).into(),
            None,
        )
    }

    /// Another node's message can arrive after this node appended a later one (it was still in
    /// the subscriber's queue): what is taken after the replay is in offset order all the same.
    #[test]
    fn what_was_held_is_taken_in_offset_order() {
        let spec = HistorySpec::parse("chat:*=100").unwrap();
        let hb = HoldBack::new(
            vec![spec],
            IntCounter::new("b", "b").unwrap(),
            IntGauge::new("g", "g").unwrap(),
        );
        let sid = Sid::new();
        hb.start("/", "chat:a", sid);
        hold(&hb, sid, &["5-0", "9-0", "7-0", "8-0"]);
        assert_eq!(taken(&hb, sid, "6-0"), ["7-0", "8-0", "9-0"]);
    }

    /// Each of `ids` into `chat:a`, left out for `sid` (recovering).
    fn hold(hb: &HoldBack, sid: Sid, ids: &[&str]) {
        let rooms = ["chat:a".to_owned()];
        for id in ids {
            assert_eq!(
                hb.before_deliver("/", &rooms, &msg("chat:a", id)),
                [sid.to_string()]
            );
        }
    }

    /// The offsets `take` hands over after a replay up to `upto`.
    fn taken(hb: &HoldBack, sid: Sid, upto: &str) -> Vec<String> {
        hb.take("/", "chat:a", sid, StreamId::parse(upto))
            .expect("within the cap")
            .iter()
            .map(|(id, _)| id.to_string())
            .collect()
    }

    #[test]
    fn holds_then_hands_over_without_duplicates() {
        let spec = HistorySpec::parse("chat:*=100").unwrap();
        let hb = HoldBack::new(
            vec![spec],
            IntCounter::new("b", "b").unwrap(),
            IntGauge::new("g", "g").unwrap(),
        );
        let rooms = vec!["chat:a".to_owned()];
        let sid = Sid::new();
        // Nobody recovering: nothing left out.
        assert!(
            hb.before_deliver("/", &rooms, &msg("chat:a", "1-0"))
                .is_empty()
        );
        hb.start("/", "chat:a", sid);
        hold(&hb, sid, &["5-0", "6-0", "7-0"]);
        // The replay went up to 6-0: only 7-0 is still to send.
        assert_eq!(taken(&hb, sid, "6-0"), ["7-0"]);
        assert!(taken(&hb, sid, "6-0").is_empty());
        // Live again; a late duplicate of the replay is still left out.
        assert!(
            hb.before_deliver("/", &rooms, &msg("chat:a", "8-0"))
                .is_empty()
        );
        assert_eq!(
            hb.before_deliver("/", &rooms, &msg("chat:a", "6-0")),
            [sid.to_string()]
        );
        // Unmarked messages into a history room are counted; other rooms are not looked at.
        let plain = Value::Str(r#"["msg",1]"#.to_owned().into(), None);
        assert!(hb.before_deliver("/", &rooms, &plain).is_empty());
        assert_eq!(hb.bypassed.get(), 1);
        assert!(hb.before_deliver("/", &["lobby".into()], &plain).is_empty());
        assert_eq!(hb.bypassed.get(), 1);
        hb.abandon("/", "chat:a", sid);
        assert!(
            hb.before_deliver("/", &rooms, &msg("chat:a", "6-0"))
                .is_empty()
        );
    }

    /// A recovering join is kept at most [`MAX_HELD`] bytes: past it, what was kept is dropped
    /// (the gauge falls back to 0), the socket is still left out, and `take` fails.
    #[test]
    fn holds_at_most_max_held_bytes_per_join() {
        let spec = HistorySpec::parse("chat:*=100").unwrap();
        let gauge = IntGauge::new("g", "g").unwrap();
        let hb = HoldBack::new(
            vec![spec],
            IntCounter::new("b", "b").unwrap(),
            gauge.clone(),
        );
        let rooms = ["chat:a".to_owned()];
        let (stalled, honest) = (Sid::new(), Sid::new());
        hb.start("/", "chat:a", stalled);
        let big = |id: u64| {
            Value::Str(
                format!(
                    r#"["msg","{}",{{"room":"chat:a","offset":"{id}-0","epoch":"e"}}]"#,
                    "x".repeat(100_000)
                )
                .into(),
                None,
            )
        };
        let mut id = 1;
        while gauge.get() + 100_100 <= MAX_HELD as i64 {
            assert_eq!(
                hb.before_deliver("/", &rooms, &big(id)),
                [stalled.to_string()]
            );
            id += 1;
        }
        assert!(gauge.get() > 0);
        // The message past the cap: all dropped, still left out.
        assert_eq!(
            hb.before_deliver("/", &rooms, &big(id)),
            [stalled.to_string()]
        );
        assert_eq!(gauge.get(), 0);
        // Another join in the room still has its own cap.
        hb.start("/", "chat:a", honest);
        for _ in 0..3 {
            id += 1;
            let out = hb.before_deliver("/", &rooms, &big(id));
            assert_eq!(out.len(), 2, "both left out");
        }
        assert!(
            gauge.get() > 300_000 && gauge.get() < 400_000,
            "only the honest join's"
        );
        assert_eq!(hb.take("/", "chat:a", stalled, None), Err(Overflowed));
        hb.abandon("/", "chat:a", stalled);
        assert_eq!(
            hb.take("/", "chat:a", honest, StreamId::parse("1-0"))
                .expect("within the cap")
                .len(),
            3
        );
        assert_eq!(gauge.get(), 0, "taken: off the gauge");
    }
}
