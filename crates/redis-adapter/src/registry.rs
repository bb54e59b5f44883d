//! The namespaces of one adapter instance, and the dispatch of every message a driver receives
//! to the namespace whose channel it came on.

use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::{
    namespace::{Inbound, NsShared, NsState},
    stats::{AdapterStats, DropReason},
    warn_limit::LogLimiter,
};

/// The namespaces using this adapter instance.
pub(crate) struct Registry {
    namespaces: RwLock<Vec<Arc<NsShared>>>,
    /// Serializes [`Registry::hand_over`].
    handover: Mutex<()>,
    stats: Arc<AdapterStats>,
    log: Arc<LogLimiter>,
    /// Longest message accepted ([`AdapterConfig::max_inbound_bytes`](crate::AdapterConfig::max_inbound_bytes)).
    max_inbound: usize,
}

impl Registry {
    pub(crate) fn new(stats: Arc<AdapterStats>, log: Arc<LogLimiter>, max_inbound: usize) -> Self {
        Self {
            namespaces: RwLock::new(Vec::new()),
            handover: Mutex::new(()),
            stats,
            log,
            max_inbound,
        }
    }

    pub(crate) fn add(&self, ns: Arc<NsShared>) {
        self.namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(ns);
    }

    pub(crate) fn remove(&self, ns: &Arc<NsShared>) {
        self.namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| !Arc::ptr_eq(n, ns));
    }

    /// Hands `ns` to socketioxide (its `init` succeeded: `on_success` inserts it in
    /// socketioxide's map): it becomes the namespace at its path, and every other handed-over
    /// instance at that path is superseded, as that insert overwrites them. Returns those, out
    /// of the registry and marked; their tasks are the caller's to stop and their subscriptions
    /// to absorb. Instances still initializing stay: each supersedes the others when handed
    /// over. Handovers are serialized (`handover`) with `on_success` inside, so the instance
    /// socketioxide keeps is the one marked active here whatever their interleaving. Not under
    /// the namespace list's lock: socketioxide's `delete_ns` holds its map's lock while it
    /// closes an adapter (which takes that lock), and `on_success` takes the map's lock.
    pub(crate) fn hand_over(
        &self,
        ns: &Arc<NsShared>,
        on_success: impl FnOnce(),
    ) -> Vec<Arc<NsShared>> {
        let _serial = self.handover.lock().unwrap_or_else(|e| e.into_inner());
        let mut old = Vec::new();
        self.namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| {
                let replaced =
                    !Arc::ptr_eq(n, ns) && n.nsp == ns.nsp && n.state() == NsState::Active;
                if replaced {
                    n.set_state(NsState::Superseded);
                    old.push(n.clone());
                }
                !replaced
            });
        ns.set_state(NsState::Active);
        on_success();
        old
    }

    pub(crate) fn get(&self, nsp: &str) -> Option<Arc<NsShared>> {
        self.namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|n| n.nsp == nsp)
            .cloned()
    }

    /// Routes a message received on `channel` to the namespace it belongs to, without
    /// blocking: each namespace has a bounded queue, a full queue drops (and counts) the
    /// message. Messages on channels of no namespace are ignored, and messages longer than
    /// `max_inbound` are dropped and counted (`too_large`) before anything reads them: anyone
    /// who can PUBLISH on the channels sends them, and a decoded message takes up to ~40 times
    /// its bytes (a msgpack `nil` is one byte, a decoded value 32), one 20 MB message cost a
    /// node 900 MB and 3 s of its namespace's inbound work (review 6).
    pub(crate) fn dispatch(&self, channel: &str, payload: Bytes) {
        if payload.len() > self.max_inbound {
            self.stats.dropped(DropReason::TooLarge, 1);
            if self.log.allow() {
                tracing::warn!(
                    channel,
                    bytes = payload.len(),
                    limit = self.max_inbound,
                    "redis adapter: message over the size limit, dropped"
                );
            }
            return;
        }
        // Read lock per message: uncontended (written only when a namespace is created or
        // closed), and it keeps routing correct while namespaces come and go.
        // Every namespace whose channels match gets it, not only the first: a channel can be
        // two namespaces' (`socket.io#/t#r#` is room `r` of `/t` and the namespace channel of
        // `/t#r`, as in the Node adapter), and each checks the message's namespace itself. With
        // the first only, a `/t#r` made on a node before `/t` black-holed room `r` there
        // (review 8).
        let namespaces = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        for ns in namespaces.iter() {
            // `Inbound` keeps only the channel kind; classification borrows the name.
            if let Some(kind) = ns.classify(channel) {
                let inbound = Inbound::new(kind, payload.clone());
                if ns.inbound.try_send(inbound).is_err() {
                    self.stats.dropped(DropReason::QueueFull, 1);
                    if self.log.allow() {
                        tracing::warn!(nsp = %ns.nsp, "redis adapter inbound queue full, dropping");
                    }
                }
            }
        }
    }
}
