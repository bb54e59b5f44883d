//! Namespaces made from `--namespace` patterns (`/tenant-*`): bounded, and gone when unused.
//!
//! socketioxide creates such a namespace when a CONNECT names a new matching path, *before* any
//! connect middleware runs (in cluster mode its adapter also subscribes the namespace's Redis
//! channels), and never removes it. One unauthenticated client could so create thousands of
//! namespaces and Redis subscriptions. Here:
//! * A pattern namespace counts against `--max-namespaces` once a socket passed every middleware
//!   into it ([`Namespaces::enter`], from `relay::install`), so unauthenticated connects take no
//!   place. Past the cap a connect to a new one gets `connect_error` "too many namespaces" and
//!   `connections_refused_total{reason="max_namespaces"}` ([`Namespaces::check`] refuses early,
//!   before authentication; `enter` again for two that raced).
//! * [`Namespaces::release`] is called when a connect to a pattern namespace is refused (by any
//!   middleware), and [`Namespaces::left`] when an admitted socket of one disconnects: the
//!   namespace is deleted once no admitted socket is left (`SocketIo::delete_ns`, which closes
//!   its adapter: the Redis adapter then unsubscribes its channels), at once if nobody was ever
//!   admitted, else [`GRACE`] after the last one left. So refused connections leave no state
//!   behind.
//! * Sockets are counted here, at admission, not read from socketioxide's socket list: a socket
//!   enters that list only after the last middleware returned, so a deletion deciding on the list
//!   could close a namespace a socket had just been admitted to (it was disconnected right after
//!   its CONNECT). Each release carries a generation; only the latest one may delete, so a stale
//!   timer from an earlier tenant never removes a namespace made since.
//! * Exact namespaces (`--namespace /chat`) are never deleted.
//!
//! Race, upstream: socketioxide 0.18 makes one namespace per CONNECT to a new pattern path that
//! arrives before the first one is in its map (`client.rs`, `sock_connect`: look-up, then insert
//! after the adapter's init), and the last insert wins. The sockets of the others are orphans:
//! connected, but socketioxide routes neither their packets (their next one closes the session)
//! nor the namespace's broadcasts to them. Here 10 clients connecting to a new tenant at once
//! left 9 of 200 orphaned on one node, 42 of 200 with the Redis adapter (its init is a Redis
//! round trip). [`watch_replaced`] finds them in a young namespace and cuts their transport, so
//! standard clients reconnect (to the namespace that stayed); the Redis adapter retires the
//! replaced namespace instances itself.
//!
//! Race: a client connecting to a namespace that is being deleted got it from socketioxide just
//! before; `relay::install` then finds it gone from the registry and refuses with a clear,
//! retryable `connect_error` ("namespace was just closed, reconnect") instead of leaving the
//! socket in a detached namespace.
use std::collections::HashMap;
use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicUsize, Ordering},
};
use std::time::{Duration, Instant};

use socketioxide::{SocketIo, adapter::Adapter, extract::SocketRef};

use crate::{config::NamespaceSpec, drain::Drain, listener::ConnRegistry};

/// How long an empty pattern namespace is kept: a client that reconnects at once (a page reload,
/// a transport upgrade) finds it still there, and a burst of refusals deletes once.
pub const GRACE: Duration = Duration::from_secs(2);

/// How long after a pattern namespace was first admitted to its sockets are watched for having
/// been replaced ([`watch_replaced`]): a replacement comes from a CONNECT that arrived before
/// the namespace was in socketioxide's map, so within the adapter's init (a Redis round trip).
pub const YOUNG: Duration = Duration::from_secs(5);

/// The served namespaces, as configured, and the pattern namespaces admitted so far.
#[derive(Debug, Clone)]
pub struct Namespaces {
    exact: Vec<String>,
    max: usize,
    /// Pattern namespaces a connect was admitted to and that were not deleted since. The cap
    /// counts these, not what socketioxide holds: it creates a namespace for every CONNECT
    /// before any middleware runs, so under a burst its registry briefly holds paths that will
    /// all be refused. A std mutex: held for a map lookup, never across an await; connects and
    /// disconnects only.
    admitted: Arc<Mutex<HashMap<String, Admitted>>>,
}

/// One admitted pattern namespace.
#[derive(Debug)]
struct Admitted {
    /// Sockets admitted and not disconnected yet.
    live: usize,
    /// Bumped by every admission and release: a deletion timer acts only if it is still the
    /// latest event.
    generation: u64,
    /// The first admission.
    since: Instant,
}

impl Admitted {
    fn new() -> Self {
        Admitted {
            live: 0,
            generation: 0,
            since: Instant::now(),
        }
    }
}

/// A connect refused because too many pattern namespaces exist.
#[derive(Debug, thiserror::Error)]
#[error("too many namespaces on this node (max {0}): try again later")]
pub struct TooMany(pub usize);

/// Pattern namespaces one Engine.IO session may be in at once. `--max-namespaces` is the node's
/// pool: without a bound per connection, one client filled it (64 websockets × 16 namespaces
/// made all 1,000 in 214 ms) and every tenant with no namespace yet was refused (review 7).
pub const MAX_PER_SESSION: usize = 8;

/// How many pattern namespaces a session is in, shared by its namespace sockets
/// ([`PerSession`](crate::per_session::PerSession)).
#[derive(Debug, Default)]
pub struct SessionCount(AtomicUsize);

/// One place in a [`SessionCount`], given back when dropped (with the socket's relay state).
#[derive(Debug)]
pub struct SessionPlace(Arc<SessionCount>);

impl SessionCount {
    /// Take a place; `None` when the session is in [`MAX_PER_SESSION`] already.
    pub fn take(self: &Arc<Self>) -> Option<SessionPlace> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PER_SESSION).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionPlace(self.clone()))
    }
}

impl Drop for SessionPlace {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connect past [`MAX_PER_SESSION`].
#[derive(Debug, thiserror::Error)]
#[error("too many namespaces on this connection (max {MAX_PER_SESSION})")]
pub struct TooManyHere;

/// Why [`Namespaces::enter`] refused a socket.
#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error(transparent)]
    TooMany(#[from] TooMany),
    /// Deleted while the connect was in the middlewares: the socket would live in a namespace
    /// nobody can reach.
    #[error("namespace was just closed, reconnect")]
    Closed,
}

impl Namespaces {
    pub fn new(specs: &[NamespaceSpec], max: usize) -> Namespaces {
        Namespaces {
            exact: specs
                .iter()
                .filter_map(|s| match s {
                    NamespaceSpec::Exact(p) => Some(p.clone()),
                    NamespaceSpec::Pattern(_) => None,
                })
                .collect(),
            max,
            admitted: Arc::default(),
        }
    }

    /// Was `path` made from a pattern (and so may be removed)?
    pub fn is_dynamic(&self, path: &str) -> bool {
        !self.exact.iter().any(|e| e == path)
    }

    /// How many pattern namespaces exist in socketioxide (the `namespaces` gauge counts all).
    pub fn dynamic_count<A: Adapter>(&self, io: &SocketIo<A>) -> usize {
        io.nsps()
            .iter()
            .filter(|ns| self.is_dynamic(ns.ns_path()))
            .count()
    }

    fn admitted(&self) -> std::sync::MutexGuard<'_, HashMap<String, Admitted>> {
        // A panic while holding it cannot leave the set half-updated (single insert/remove).
        self.admitted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Early check, before authentication: refuse a connect to a new pattern namespace while
    /// `--max-namespaces` are admitted already. Nothing is counted here, so unauthenticated
    /// connects cannot take places from tenants (see [`Namespaces::enter`]).
    pub fn check(&self, path: &str) -> Result<(), TooMany> {
        if self.max == 0 || !self.is_dynamic(path) {
            return Ok(());
        }
        let admitted = self.admitted();
        if admitted.len() >= self.max && !admitted.contains_key(path) {
            return Err(TooMany(self.max));
        }
        Ok(())
    }

    /// A socket passed every middleware into `path`: count the namespace (once) and the socket,
    /// unless that would pass the cap (two new namespaces raced past [`Namespaces::check`]).
    /// Every `Ok` is to be matched by one [`Namespaces::left`]; `Ok(true)`: the namespace is
    /// young (see [`watch_replaced`]).
    pub fn enter<A: Adapter>(&self, io: &SocketIo<A>, path: &str) -> Result<bool, EnterError> {
        if !self.is_dynamic(path) {
            return Ok(false);
        }
        // Under the lock [`Namespaces::release`] deletes under, so the answer holds.
        let mut admitted = self.admitted();
        if io.of(path).is_none() {
            return Err(EnterError::Closed);
        }
        if !admitted.contains_key(path) && self.max != 0 && admitted.len() >= self.max {
            return Err(TooMany(self.max).into());
        }
        let entry = admitted
            .entry(path.to_owned())
            .or_insert_with(Admitted::new);
        entry.live += 1;
        entry.generation += 1;
        Ok(entry.since.elapsed() < YOUNG)
    }

    /// A connect to `path` was refused: delete it if it is a pattern namespace nobody was
    /// admitted to (at once, so a flood of refused connects holds no namespaces, nor, in cluster
    /// mode, Redis subscriptions). One with admitted sockets is left to [`Namespaces::left`].
    pub fn release<A: Adapter>(&self, io: &SocketIo<A>, path: &str) {
        if !self.is_dynamic(path) {
            return;
        }
        let generation = self.admitted().get(path).map(|a| a.generation);
        self.delete_later(io, path, generation);
    }

    /// An admitted socket of `path` disconnected: once none is left, the namespace is deleted
    /// after [`GRACE`] (a client reconnecting at once finds it), unless a socket is admitted
    /// meanwhile.
    pub fn left<A: Adapter>(&self, io: &SocketIo<A>, path: &str) {
        if !self.is_dynamic(path) {
            return;
        }
        let generation = {
            let mut admitted = self.admitted();
            let Some(a) = admitted.get_mut(path) else {
                return;
            };
            a.live = a.live.saturating_sub(1);
            a.generation += 1;
            a.generation
        };
        self.delete_later(io, path, Some(generation));
    }

    /// Delete `path` if no admitted socket is in it: at once if it was never admitted
    /// (`generation` None), else after [`GRACE`] if nothing was admitted or released since.
    fn delete_later<A: Adapter>(&self, io: &SocketIo<A>, path: &str, generation: Option<u64>) {
        let (io, path, this) = (io.clone(), path.to_owned(), self.clone());
        tokio::spawn(async move {
            if generation.is_some() {
                tokio::time::sleep(GRACE).await;
            }
            // Under the lock `enter` counts under, so a connect entering meanwhile is either
            // counted (the namespace is kept) or finds it gone (`relay::install` refuses,
            // retryably).
            let mut admitted = this.admitted();
            match (admitted.get(&path), generation) {
                // Admitted since this refusal, or a later admission or release: theirs to decide.
                (Some(_), None) => return,
                (Some(a), Some(g)) if a.generation != g || a.live > 0 => return,
                // Deleted by a later timer already (a namespace there now is a new one).
                (None, Some(_)) => return,
                _ => {}
            }
            admitted.remove(&path);
            if io.of(&path).is_some_and(|ns| ns.sockets().is_empty()) {
                tracing::debug!(ns = %path, "removing an empty pattern namespace");
                io.delete_ns(&path);
            }
        });
    }
}

/// A socket admitted to a young pattern namespace: if socketioxide replaced the namespace it
/// is in (see the module doc), cut its transport so that the client reconnects. Checked a few
/// times over [`YOUNG`] (a replacement may come after its connect); `connected` is set after the
/// socket is in its namespace, so a socket still connecting is never taken for an orphan.
pub fn watch_replaced<A: Adapter>(
    io: SocketIo<A>,
    s: SocketRef<A>,
    drain: Arc<Drain>,
    conns: Arc<ConnRegistry>,
) {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for at in [Duration::from_millis(50), Duration::from_secs(1), YOUNG] {
            tokio::time::sleep_until(start + at).await;
            if !s.connected() {
                // Still connecting (look again), or gone.
                if at > Duration::from_millis(50) {
                    return;
                }
                continue;
            }
            let kept = io
                .of(s.ns())
                .is_some_and(|ns| ns.get_socket(s.id).is_some());
            if !kept {
                tracing::info!(sid = %s.id, ns = s.ns(), transport = ?s.transport_type(), "the namespace this socket connected to was replaced by a concurrent connect: cutting its transport so that it reconnects");
                // socketioxide never runs an orphan's disconnect handler (it looks sockets up
                // in the namespace it kept), so nothing would count it gone nor free it.
                // `disconnect` runs it; its DISCONNECT packet (final for clients) goes to the
                // transport just cut: a websocket's TCP connection is shut, and a pending poll
                // is answered with CLOSE first (hence the pause).
                if drain.cut_transport(&conns, &s) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = s.clone().disconnect();
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_namespaces_are_never_dynamic() {
        let n = Namespaces::new(
            &[
                NamespaceSpec::Exact("/".into()),
                NamespaceSpec::Pattern("/tenant-{p0}".into()),
            ],
            2,
        );
        assert!(!n.is_dynamic("/"));
        assert!(n.is_dynamic("/tenant-a"));
    }

    #[tokio::test]
    async fn cap_and_release() {
        let (_layer, io) = SocketIo::new_layer();
        io.ns("/", async || ());
        io.dyn_ns("/t-{x}", async || ()).unwrap();
        let n = Namespaces::new(
            &[
                NamespaceSpec::Exact("/".into()),
                NamespaceSpec::Pattern("/t-{x}".into()),
            ],
            1,
        );
        assert!(n.check("/").is_ok() && n.enter(&io, "/").is_ok());
        assert_eq!(n.dynamic_count(&io), 0);
        // No client here: create children the way socketioxide does on CONNECT.
        io.ns("/t-a", async || ());
        io.ns("/t-b", async || ());
        assert!(
            n.check("/t-a").is_ok() && n.check("/t-b").is_ok(),
            "nothing counted yet"
        );
        assert!(n.enter(&io, "/t-a").is_ok());
        assert!(
            n.enter(&io, "/t-a").is_ok(),
            "entered again (a second socket): no new namespace"
        );
        assert!(n.check("/t-a").is_ok());
        assert!(n.check("/t-b").is_err(), "the early check sees the cap");
        assert_eq!(n.dynamic_count(&io), 2);
        // A refused, never admitted namespace goes at once.
        n.release(&io, "/t-b");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            io.of("/t-b").is_none(),
            "refused namespace removed without grace"
        );
        io.ns("/t-b", async || ());
        assert!(matches!(n.enter(&io, "/t-x"), Err(EnterError::Closed)));
        let e = n.enter(&io, "/t-b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "too many namespaces on this node (max 1): try again later"
        );
        // Entered twice: two sockets to leave.
        n.left(&io, "/t-a");
        tokio::time::sleep(GRACE + Duration::from_millis(10)).await;
        assert!(io.of("/t-a").is_some(), "one admitted socket left");
        n.left(&io, "/t-a");
        n.left(&io, "/");
        tokio::time::sleep(GRACE + Duration::from_millis(10)).await;
        tokio::task::yield_now().await;
        assert!(io.of("/t-a").is_none(), "empty pattern namespace removed");
        assert!(io.of("/").is_some(), "exact namespace kept");
        assert_eq!(n.dynamic_count(&io), 1);
        io.ns("/t-c", async || ());
        assert!(
            n.enter(&io, "/t-c").is_ok(),
            "a released namespace frees its place"
        );
    }

    /// The grace runs from the last socket to leave, and the deletion goes by what was
    /// admitted (a socket is in socketioxide's list only after the last middleware returned):
    /// two sockets leaving 100 ms apart, and one admitted 50 ms after the first one's grace ran
    /// out, keep the namespace. Before, the first timer deleted it, and the socket admitted at
    /// that moment was disconnected right after its CONNECT.
    #[tokio::test(start_paused = true)]
    async fn the_grace_runs_from_the_last_to_leave_and_admissions_keep_it() {
        let (_layer, io) = SocketIo::new_layer();
        io.dyn_ns("/t-{x}", async || ()).unwrap();
        let n = Namespaces::new(&[NamespaceSpec::Pattern("/t-{x}".into())], 0);
        io.ns("/t-a", async || ());
        n.enter(&io, "/t-a").unwrap();
        n.enter(&io, "/t-a").unwrap();
        n.left(&io, "/t-a");
        tokio::time::sleep(Duration::from_millis(100)).await;
        n.left(&io, "/t-a");
        tokio::time::sleep(GRACE - Duration::from_millis(50)).await;
        assert!(io.of("/t-a").is_some(), "within the last leaver's grace");
        n.enter(&io, "/t-a").unwrap();
        tokio::time::sleep(GRACE * 2).await;
        assert!(io.of("/t-a").is_some(), "kept for its admitted socket");
        // It leaves: deleted after the grace.
        n.left(&io, "/t-a");
        tokio::time::sleep(GRACE + Duration::from_millis(10)).await;
        assert!(io.of("/t-a").is_none(), "removed once empty");
    }
}
