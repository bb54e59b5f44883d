//! What the rest of the gateway asks of the cluster, behind one small trait: the single-node
//! implementation answers locally, the cluster's (`cluster::AdapterView`) asks the Redis
//! adapter. Built once, in the composition root (`server::serve`), and held by `Gateway`.
use futures_util::future::BoxFuture;

/// Every socket of the cluster in some rooms, flagged partial when a node did not answer.
pub type PresenceResult = Result<
    sio_redis_adapter::Collected<sio_redis_adapter::FetchedSocket>,
    sio_redis_adapter::Error,
>;

pub trait ClusterView: Send + Sync {
    /// Resolves once the adapter follows the namespace's local rooms (joins are acknowledged
    /// after this, so a message published right after reaches the new member from any node).
    fn sync_rooms(&self, nsp: String) -> BoxFuture<'static, ()>;

    /// Like `sync_rooms` for rooms a local socket just joined, at the cost of those rooms
    /// only (a join or connection must not cost O(local sockets)).
    fn ensure_rooms(&self, nsp: String, rooms: Vec<String>) -> BoxFuture<'static, ()>;

    /// Local membership of `nsp` changed without `ensure_rooms` (a socket's own-id room at
    /// connection, a leave, a disconnection): the adapter reconciles its room channels on its
    /// next tick. O(1), no I/O. Every such change must be reported: without a report the
    /// adapter reconciles only every `ROOM_FULL_SYNC` (cluster/mod.rs), its safety net.
    fn rooms_changed(&self, nsp: &str);

    /// Presence straight from the adapter, Node.js peers' sockets included (socketioxide's
    /// `fetch_sockets` cannot hold their 20-character ids). `None` on a single node, where
    /// socketioxide answers.
    fn presence(
        &self,
        nsp: String,
        rooms: Vec<String>,
    ) -> Option<BoxFuture<'static, PresenceResult>>;
}

/// A node without `--redis`: nothing to wait for, presence is socketioxide's.
pub struct SingleNode;

impl ClusterView for SingleNode {
    fn sync_rooms(&self, _nsp: String) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    fn ensure_rooms(&self, _nsp: String, _rooms: Vec<String>) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    fn rooms_changed(&self, _nsp: &str) {}

    fn presence(
        &self,
        _nsp: String,
        _rooms: Vec<String>,
    ) -> Option<BoxFuture<'static, PresenceResult>> {
        None
    }
}

/// The HTTP API's cluster socket listings (`GET /api/v1/sockets`), shared by concurrent
/// requests: one listing per namespace and rooms at a time, its answer reused by requests that
/// arrive within [`LISTING_FRESH`] of its start. Each listing asks every node for every socket
/// of those rooms (a limit cannot travel in the Node protocol's request), so an API key holder
/// asking 8 at a time made every node walk its sockets continuously: with 5,000 sockets on 3
/// nodes, honest publish-to-delivery p99 went from 11 ms to 1.6 s (review 7). Not for the
/// gateway's own checks (the own-id room check asks [`ClusterView::presence`] itself: it needs
/// an answer from now).
#[derive(Default)]
pub struct Listings(std::sync::Mutex<std::collections::HashMap<(String, Vec<String>), Listing>>);

/// How long a listing's answer serves later requests for the same namespace and rooms.
pub const LISTING_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// A listing shared by requests ([`Listings`]).
pub type SharedListing =
    futures_util::future::Shared<BoxFuture<'static, std::sync::Arc<PresenceResult>>>;

struct Listing {
    started: tokio::time::Instant,
    answer: SharedListing,
}

impl Listings {
    /// The listing of `rooms` in `nsp`: one running or fresh, else `start`ed.
    pub fn get(
        &self,
        nsp: String,
        rooms: Vec<String>,
        start: impl FnOnce() -> BoxFuture<'static, PresenceResult>,
    ) -> SharedListing {
        use futures_util::FutureExt;
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (nsp, rooms);
        let usable = |l: &Listing| l.answer.peek().is_none() || l.started.elapsed() < LISTING_FRESH;
        if let Some(l) = map.get(&key).filter(|l| usable(l)) {
            return l.answer.clone();
        }
        map.retain(|_, l| usable(l));
        let answer = start().map(std::sync::Arc::new).boxed().shared();
        map.insert(
            key,
            Listing {
                started: tokio::time::Instant::now(),
                answer: answer.clone(),
            },
        );
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    fn counting(started: &Arc<AtomicUsize>) -> impl FnOnce() -> BoxFuture<'static, PresenceResult> {
        let started = started.clone();
        move || {
            started.fetch_add(1, Ordering::Relaxed);
            Box::pin(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Ok(sio_redis_adapter::Collected {
                    items: Vec::new(),
                    expected: 2,
                    received: 2,
                })
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_and_fresh_requests_share_one_listing() {
        let l = Listings::default();
        let started = Arc::new(AtomicUsize::new(0));
        let key = || ("/".to_owned(), vec!["r".to_owned()]);
        let a = l.get(key().0, key().1, counting(&started));
        let b = l.get(key().0, key().1, counting(&started));
        let (a, b) = futures_util::join!(a, b);
        assert!(Arc::ptr_eq(&a, &b), "both requests got the one answer");
        // Another namespace or rooms: a listing of its own.
        l.get("/".into(), vec![], counting(&started)).await;
        assert_eq!(started.load(Ordering::Relaxed), 2);
        // Within LISTING_FRESH of its start the answer is reused; after, a new listing runs.
        l.get(key().0, key().1, counting(&started)).await;
        assert_eq!(started.load(Ordering::Relaxed), 2);
        tokio::time::sleep(LISTING_FRESH).await;
        l.get(key().0, key().1, counting(&started)).await;
        assert_eq!(started.load(Ordering::Relaxed), 3);
    }
}
