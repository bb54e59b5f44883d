//! `--event-rate`: how many events a connection may send per second, whatever it sends them to.
//!
//! * [`EventRate`]: one token bucket per Engine.IO session, shared by every namespace socket of
//!   it ([`PerSession`]): the relay's namespaces and the Admin UI's. A client that opens more
//!   namespaces gets no more events.
//! * [`Gate`]: a socketioxide event handler behind such a bucket. socketioxide runs every async
//!   handler in a task of its own, spawned for each event before the handler's first line; the
//!   rate limit used to be that first line. So an event over the rate still cost a task (~7 KB
//!   queued), and a client whose events arrive faster than the workers run tasks piled them up:
//!   a polling POST of 35,000 events is handed to the handlers in one synchronous loop, and two
//!   clients doing so in turn grew a node by 330 MB/s (review 6, docs/security.md). The gate
//!   takes the event's token in socketioxide's call, before any task: an event over the rate is
//!   refused there (its [`Door`] counts it and answers it if acked), and only admitted events
//!   reach the handler's task.
use std::sync::Arc;

use socketioxide::{
    adapter::Adapter,
    handler::{MessageHandler, Value},
    socket::{Sid, Socket},
};

use crate::{limits::TokenBucket, per_session::PerSession};

/// The node's `--event-rate` / `--event-burst`, and each session's bucket.
#[derive(Debug)]
pub struct EventRate {
    rate: f64,
    burst: u32,
    buckets: PerSession<TokenBucket>,
}

impl EventRate {
    /// `rate == 0` means unlimited.
    pub fn new(rate: f64, burst: u32) -> EventRate {
        EventRate {
            rate,
            burst,
            buckets: PerSession::default(),
        }
    }

    /// Session `sid`'s bucket (looked up once per namespace connect, never per event).
    pub fn bucket(&self, sid: Sid) -> Arc<TokenBucket> {
        self.buckets
            .get_or(sid, || TokenBucket::new(self.rate, self.burst))
    }
}

/// What a [`Gate`] asks: may this event go on, and what to do with one that may not.
pub trait Door: Send + Sync + 'static {
    /// Take the event's token; false when over the rate.
    fn admit(&self) -> bool;
    /// An event over the rate, with its ack id if the client asked for one: count it, and
    /// answer the ack. Runs in socketioxide's call: it must not block or await.
    fn refuse<A: Adapter>(&self, s: Arc<Socket<A>>, v: Value, ack_id: Option<i64>);
}

/// `handler` behind `door` (see the module doc).
pub struct Gate<D, H> {
    door: Arc<D>,
    handler: H,
}

impl<D, H> Gate<D, H> {
    pub fn new(door: Arc<D>, handler: H) -> Gate<D, H> {
        Gate { door, handler }
    }
}

impl<A, T, D, H> MessageHandler<A, T> for Gate<D, H>
where
    A: Adapter,
    T: Send + Sync + 'static,
    D: Door,
    H: MessageHandler<A, T>,
{
    fn call(&self, s: Arc<Socket<A>>, v: Value, ack_id: Option<i64>) {
        if self.door.admit() {
            self.handler.call(s, v, ack_id)
        } else {
            self.door.refuse(s, v, ack_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bucket_per_session() {
        let r = EventRate::new(1.0, 2);
        let (a, b) = (Sid::new(), Sid::new());
        let (a1, a2) = (r.bucket(a), r.bucket(a));
        assert!(
            Arc::ptr_eq(&a1, &a2),
            "the namespaces of one session share it"
        );
        assert!(a1.try_take() && a2.try_take(), "burst of 2");
        assert!(!a1.try_take(), "shared: the third is over");
        assert!(r.bucket(b).try_take(), "another session has its own");
    }
}
