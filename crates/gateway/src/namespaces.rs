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
//!   middleware) and when a socket of one disconnects: the namespace is deleted if it has no
//!   socket left (`SocketIo::delete_ns`, which closes its adapter: the Redis adapter then
//!   unsubscribes its channels), at once if nobody was ever admitted, else after [`GRACE`]. So
//!   refused connections leave no state behind.
//! * Exact namespaces (`--namespace /chat`) are never deleted.
//!
//! Race: a client connecting to a namespace that is being deleted got it from socketioxide just
//! before; `relay::install` then finds it gone from the registry and refuses with a clear,
//! retryable `connect_error` ("namespace was just closed, reconnect") instead of leaving the
//! socket in a detached namespace.
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use socketioxide::{SocketIo, adapter::Adapter};

use crate::config::NamespaceSpec;

/// How long an empty pattern namespace is kept: a client that reconnects at once (a page reload,
/// a transport upgrade) finds it still there, and a burst of refusals deletes once.
pub const GRACE: Duration = Duration::from_secs(2);

/// The served namespaces, as configured, and the pattern namespaces admitted so far.
#[derive(Debug, Clone)]
pub struct Namespaces {
    exact: Vec<String>,
    max: usize,
    /// Pattern namespaces a connect was admitted to and that were not deleted since. The cap
    /// counts these, not what socketioxide holds: it creates a namespace for every CONNECT
    /// before any middleware runs, so under a burst its registry briefly holds paths that will
    /// all be refused. A std mutex: held for a set lookup, never across an await; connects only.
    admitted: Arc<Mutex<HashSet<String>>>,
}

/// A connect refused because too many pattern namespaces exist.
#[derive(Debug, thiserror::Error)]
#[error("too many namespaces on this node (max {0}): try again later")]
pub struct TooMany(pub usize);

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

    fn admitted(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
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
        if admitted.len() >= self.max && !admitted.contains(path) {
            return Err(TooMany(self.max));
        }
        Ok(())
    }

    /// A socket passed every middleware into `path`: count the namespace (once), unless that
    /// would pass the cap (two new namespaces raced past [`Namespaces::check`]).
    pub fn enter<A: Adapter>(&self, io: &SocketIo<A>, path: &str) -> Result<(), EnterError> {
        if !self.is_dynamic(path) {
            return Ok(());
        }
        // Under the lock [`Namespaces::release`] deletes under, so the answer holds.
        let mut admitted = self.admitted();
        if io.of(path).is_none() {
            return Err(EnterError::Closed);
        }
        if admitted.contains(path) {
            return Ok(());
        }
        if self.max != 0 && admitted.len() >= self.max {
            return Err(TooMany(self.max).into());
        }
        admitted.insert(path.to_owned());
        Ok(())
    }

    /// A connect to `path` was refused or a socket of it left: delete it if it is a pattern
    /// namespace without sockets. A namespace a socket was admitted to is kept for [`GRACE`]
    /// first (reconnects find it); one nobody was admitted to goes at once, so a flood of
    /// refused connects holds no namespaces (nor, in cluster mode, Redis subscriptions).
    pub fn release<A: Adapter>(&self, io: &SocketIo<A>, path: &str) {
        if !self.is_dynamic(path) {
            return;
        }
        let (io, path, this) = (io.clone(), path.to_owned(), self.clone());
        tokio::spawn(async move {
            if this.admitted().contains(&path) {
                tokio::time::sleep(GRACE).await;
            }
            // Under the lock, so a connect entering meanwhile finds either the namespace kept
            // (it has a socket by then) or gone (`relay::install` refuses, retryably).
            let mut admitted = this.admitted();
            match io.of(&path).map(|ns| ns.sockets().is_empty()) {
                Some(false) => {}
                Some(true) => {
                    tracing::debug!(ns = %path, "removing an empty pattern namespace");
                    io.delete_ns(&path);
                    admitted.remove(&path);
                }
                None => {
                    admitted.remove(&path);
                }
            }
        });
    }
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
            "entered again: no new namespace"
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
        n.release(&io, "/t-a");
        n.release(&io, "/");
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
}
