//! Request/response bookkeeping: request ids, the map of pending requests, and collection of
//! answers with a hard deadline so a node that never answers cannot hang a caller.
//!
//! Node peers answer on the shared response channel, so every node sees every response; the
//! request id is the only thing that routes an answer to its waiter. Ids are 16 random
//! alphanumerics (Node uses 6) to make collisions between concurrent requesters negligible.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::{Rng, distr::Alphanumeric};
use tokio::sync::mpsc;

use sio_wire::Response;

/// A fresh random id (request ids, adapter uids).
pub(crate) fn random_id(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// What happened to a response handed to [`Pending::dispatch`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dispatch {
    Delivered,
    /// Nobody waits for this id (another node's request, or ours already finished).
    Unknown,
    /// The waiter's queue is full; the response is dropped.
    Full,
}

/// The pending requests of one namespace.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    map: Mutex<HashMap<String, mpsc::Sender<Response>>>,
}

impl Pending {
    /// Registers a new request; answers arrive on the returned guard until it is dropped.
    pub(crate) fn register(self: &Arc<Self>, capacity: usize) -> PendingGuard {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut id = random_id(16);
        while map.contains_key(&id) {
            id = random_id(16);
        }
        map.insert(id.clone(), tx);
        PendingGuard {
            id,
            rx,
            pending: self.clone(),
        }
    }

    /// Routes a response to its waiter without blocking.
    pub(crate) fn dispatch(&self, resp: Response) -> Dispatch {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(resp.request_id()) {
            None => Dispatch::Unknown,
            Some(tx) => match tx.try_send(resp) {
                Ok(()) => Dispatch::Delivered,
                Err(mpsc::error::TrySendError::Full(_)) => Dispatch::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => Dispatch::Unknown,
            },
        }
    }

    pub(crate) fn is_pending(&self, id: &str) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A registered request: its id and the queue of answers. Dropping it forgets the request,
/// so late answers are counted as late and never pile up.
#[derive(Debug)]
pub(crate) struct PendingGuard {
    pub(crate) id: String,
    pub(crate) rx: mpsc::Receiver<Response>,
    pending: Arc<Pending>,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// Answers collected from the other nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected<T> {
    /// Items from every answer received (plus local ones where the operation has them).
    pub items: Vec<T>,
    /// Answers expected (other nodes, from `PUBSUB NUMSUB` minus this node).
    pub expected: usize,
    /// Answers received before the deadline.
    pub received: usize,
}

impl<T> Collected<T> {
    /// All expected nodes answered. `false` means partial results after a timeout.
    pub fn complete(&self) -> bool {
        self.received >= self.expected
    }
}

/// Waits for `expected` answers accepted by `accept` (which returns the items of one answer, or
/// None for a response that does not count), or until `timeout`.
pub(crate) async fn collect<T>(
    guard: &mut PendingGuard,
    expected: usize,
    timeout: Duration,
    mut accept: impl FnMut(Response) -> Option<Vec<T>>,
) -> Collected<T> {
    let mut out = Collected {
        items: Vec::new(),
        expected,
        received: 0,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    while out.received < expected {
        match tokio::time::timeout_at(deadline, guard.rx.recv()).await {
            Ok(Some(resp)) => {
                if let Some(items) = accept(resp) {
                    out.received += 1;
                    out.items.extend(items);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(id: &str, r: &[&str]) -> Response {
        Response::AllRooms {
            request_id: id.into(),
            rooms: r.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn accept_rooms(r: Response) -> Option<Vec<String>> {
        match r {
            Response::AllRooms { rooms, .. } => Some(rooms),
            _ => None,
        }
    }

    #[tokio::test]
    async fn matches_by_request_id_and_completes() {
        let pending = Arc::new(Pending::default());
        let mut g = pending.register(8);
        assert_eq!(pending.dispatch(rooms("other", &["x"])), Dispatch::Unknown);
        assert_eq!(pending.dispatch(rooms(&g.id, &["a"])), Dispatch::Delivered);
        assert_eq!(pending.dispatch(rooms(&g.id, &["b"])), Dispatch::Delivered);
        let c = collect(&mut g, 2, Duration::from_secs(5), accept_rooms).await;
        assert!(c.complete());
        assert_eq!(c.items, vec!["a".to_string(), "b".to_string()]);
    }

    #[tokio::test]
    async fn times_out_with_partial_results() {
        let pending = Arc::new(Pending::default());
        let mut g = pending.register(8);
        pending.dispatch(rooms(&g.id, &["a"]));
        let c = collect(&mut g, 3, Duration::from_millis(200), accept_rooms).await;
        assert!(!c.complete());
        assert_eq!(c.received, 1);
        assert_eq!(c.expected, 3);
    }

    #[tokio::test]
    async fn wrong_kind_does_not_count() {
        let pending = Arc::new(Pending::default());
        let mut g = pending.register(8);
        pending.dispatch(Response::Done {
            request_id: g.id.clone(),
        });
        pending.dispatch(rooms(&g.id, &["a"]));
        let c = collect(&mut g, 1, Duration::from_secs(1), accept_rooms).await;
        assert_eq!(c.received, 1);
    }

    #[test]
    fn full_queue_and_drop_cleanup() {
        let pending = Arc::new(Pending::default());
        let g = pending.register(1);
        assert_eq!(pending.dispatch(rooms(&g.id, &[])), Dispatch::Delivered);
        assert_eq!(pending.dispatch(rooms(&g.id, &[])), Dispatch::Full);
        let id = g.id.clone();
        assert!(pending.is_pending(&id));
        drop(g);
        assert_eq!(pending.len(), 0);
        assert_eq!(pending.dispatch(rooms(&id, &[])), Dispatch::Unknown);
    }
}
