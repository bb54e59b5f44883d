//! An in-process [`Driver`] (tests): several adapter instances ("nodes") share one
//! [`MemoryBus`] the way they share a Redis server, so multi-node flows run in one process.
//!
//! Like Redis pub/sub, a publish reaches every node subscribed to the channel, each in publish
//! order, and the server count is the number of subscribers of a channel. A node can be made
//! *deaf* (still subscribed, so still counted, but receiving nothing: a node that stopped
//! answering) or *down* (its publishes and counts refused at once, as while Redis is away).

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::{driver::Driver, error::Error, registry::Registry};

struct Member {
    id: usize,
    registry: Weak<Registry>,
    channels: HashSet<String>,
    deaf: Arc<AtomicBool>,
}

/// The shared "server".
#[derive(Clone, Default)]
pub(crate) struct MemoryBus {
    members: Arc<Mutex<Vec<Member>>>,
}

/// One node's connection to a [`MemoryBus`].
pub(crate) struct MemoryDriver {
    bus: MemoryBus,
    id: usize,
    down: Arc<AtomicBool>,
}

/// Test controls of one node's connection.
#[derive(Clone)]
pub(crate) struct MemoryControl {
    deaf: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    bus: MemoryBus,
    id: usize,
}

impl MemoryControl {
    /// The channels the node is subscribed to, sorted.
    pub(crate) fn channels(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .bus
            .lock()
            .iter()
            .find(|m| m.id == self.id)
            .map(|m| m.channels.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
    /// The node stays subscribed (counted by `server_count`) but receives nothing.
    pub(crate) fn set_deaf(&self, deaf: bool) {
        self.deaf.store(deaf, Ordering::SeqCst);
    }
    /// Publishes and counts fail at once with [`Error::RedisDown`].
    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl MemoryBus {
    /// A new node on the bus, delivering to `registry`.
    pub(crate) fn connect(&self, registry: &Arc<Registry>) -> (MemoryDriver, MemoryControl) {
        let deaf = Arc::new(AtomicBool::new(false));
        let down = Arc::new(AtomicBool::new(false));
        let mut members = self.lock();
        let id = members.len();
        members.push(Member {
            id,
            registry: Arc::downgrade(registry),
            channels: HashSet::new(),
            deaf: deaf.clone(),
        });
        let control = MemoryControl {
            deaf,
            down: down.clone(),
            bus: self.clone(),
            id,
        };
        let driver = MemoryDriver {
            bus: self.clone(),
            id,
            down,
        };
        (driver, control)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, id: usize, f: impl FnOnce(&mut HashSet<String>)) {
        if let Some(m) = self.lock().iter_mut().find(|m| m.id == id) {
            f(&mut m.channels);
        }
    }
}

impl MemoryDriver {
    fn check_up(&self) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::RedisDown)
        } else {
            Ok(())
        }
    }
}

impl Driver for MemoryDriver {
    fn publish(&self, channel: String, payload: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.check_up()?;
            // Delivered under the bus lock so every node sees messages in one global order, as
            // from one Redis server; dispatch only queues, it never waits.
            let members = self.bus.lock();
            for m in members.iter() {
                if m.channels.contains(&channel)
                    && !m.deaf.load(Ordering::SeqCst)
                    && let Some(registry) = m.registry.upgrade()
                {
                    registry.dispatch(&channel, payload.clone());
                }
            }
            Ok(())
        })
    }

    fn subscribe(&self, channels: Vec<String>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.bus.update(self.id, |c| c.extend(channels));
            Ok(())
        })
    }

    fn unsubscribe(&self, channels: Vec<String>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.bus.update(self.id, |c| {
                for ch in &channels {
                    c.remove(ch);
                }
            });
            Ok(())
        })
    }

    fn server_count<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(async move {
            self.check_up()?;
            Ok(self
                .bus
                .lock()
                .iter()
                .filter(|m| m.channels.contains(channel) && m.registry.strong_count() > 0)
                .count())
        })
    }

    fn is_up(&self) -> bool {
        !self.down.load(Ordering::SeqCst)
    }
}

impl Drop for MemoryDriver {
    /// The node's connection closes: its subscriptions go.
    fn drop(&mut self) {
        self.bus.lock().retain(|m| m.id != self.id);
    }
}
