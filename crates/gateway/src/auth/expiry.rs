//! Connections whose credentials expire (`--auth-expiry close`, the default).
//!
//! A socket authenticated with a JWT (whose `exp` is required) or by an auth webhook answer
//! carrying `exp` stays authenticated only until then: at the first second its credentials
//! would be refused at CONNECT (a JWT: past `exp` + `--jwt-leeway`; a webhook grant: at `exp`)
//! its Engine.IO session is cut the way a lost connection looks (`Drain::cut_session`), so
//! stock clients reconnect by themselves and authenticate again: one whose `auth` is a callback
//! presents a fresh token and resumes; one still holding the expired token is refused with
//! `connect_error` "invalid token: token expired". Every namespace of the session goes with it.
//! Before this, a socket stayed connected (and in its `user:<sub>` room, with its token's
//! grants) after its token expired, as on Node.js, where `auth` is read once.
//!
//! A websocket's TCP connection is shut, which ends the session in the engine at once. A polling
//! session's polls are answered CLOSE from then on, but the engine would keep the session (and
//! its socket, in its rooms) until its heartbeat fails, and its holder could keep it alive with
//! blind POSTs (pongs, events) without ever reading: so the namespace socket is also
//! disconnected on the server (its `41` is never seen: the session's polls get CLOSE first), and
//! a CONNECT on that session must authenticate again.
//!
//! One ordered map per node, `(instant, sequence) → session`, swept once a second by one task
//! ([`sweep_forever`]): an entry costs ~80 bytes per authenticated socket, no task or timer of
//! its own. A socket's entry is taken out when it disconnects ([`Expiries::cancel`]), so
//! credentials valid for years hold nothing after their connection ends.
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use socketioxide::{SocketIo, TransportType, adapter::Adapter, socket::Sid};

use crate::{drain::Drain, engine_sessions::Transport, listener::ConnRegistry, metrics::Metrics};

/// The session to cut when a socket's credentials expire (what [`Drain::cut_session`] needs),
/// and the namespace socket to disconnect.
#[derive(Debug, Clone)]
pub struct Target {
    pub ns: String,
    pub sid: Sid,
    pub transport: Transport,
}

/// A socket's place in [`Expiries`], to take it out when the socket disconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scheduled {
    /// Seconds since the Unix epoch.
    at: u64,
    seq: u64,
}

/// Every authenticated socket's expiry on this node.
#[derive(Default)]
pub struct Expiries {
    due: Mutex<BTreeMap<Scheduled, Target>>,
    seq: AtomicU64,
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Expiries {
    /// Cut `target` at `at` (seconds since the Unix epoch), unless cancelled before.
    pub fn schedule(&self, at: u64, target: Target) -> Scheduled {
        let key = Scheduled {
            at,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        self.lock().insert(key, target);
        key
    }

    /// The socket disconnected: nothing to cut any more.
    pub fn cancel(&self, key: Scheduled) {
        self.lock().remove(&key);
    }

    /// Take out every entry due at `now` or before.
    pub fn take_due(&self, now: u64) -> Vec<Target> {
        let mut due = self.lock();
        // Everything from the first key after `now` on stays.
        let later = due.split_off(&Scheduled {
            at: now.saturating_add(1),
            seq: 0,
        });
        std::mem::replace(&mut *due, later).into_values().collect()
    }

    /// Entries waiting (sockets with credentials that expire).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Scheduled, Target>> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Once a second, cut the sessions whose credentials expired, counting each in
/// `connections_closed_expired_total`.
pub async fn sweep_forever<A: Adapter>(
    expiries: Arc<Expiries>,
    io: SocketIo<A>,
    drain: Arc<Drain>,
    conns: Arc<ConnRegistry>,
    metrics: Arc<Metrics>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due = expiries.take_due(unix_now());
        for t in due {
            metrics.connections_closed_expired_total.inc();
            let sid = t.sid.to_string();
            let cut = drain.cut_session(
                &conns,
                sid.clone(),
                t.transport.kind,
                t.transport.websocket_handshake,
            );
            // Still polling (no websocket recorded since): the session is marked closing, so
            // its polls answer CLOSE before anything the disconnection queues.
            let polling =
                t.transport.kind == TransportType::Polling && drain.ws_conn(&sid).is_none();
            if polling && let Some(s) = io.of(t.ns.as_str()).and_then(|ns| ns.get_socket(t.sid)) {
                s.disconnect().ok();
            }
            tracing::debug!(sid = %t.sid, ns = %t.ns, cut, "credentials expired: session cut");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            ns: "/".into(),
            sid: Sid::new(),
            transport: Transport {
                kind: TransportType::Websocket,
                websocket_handshake: Some(7),
            },
        }
    }

    #[test]
    fn due_entries_are_taken_once_in_order_and_cancelled_ones_never() {
        let e = Expiries::default();
        let a = target();
        let b = target();
        let c = target();
        e.schedule(100, a.clone());
        let kb = e.schedule(100, b.clone());
        e.schedule(101, c.clone());
        e.cancel(kb);
        assert!(e.take_due(99).is_empty());
        let due: Vec<Sid> = e.take_due(100).into_iter().map(|t| t.sid).collect();
        assert_eq!(due, [a.sid]);
        assert!(e.take_due(100).is_empty(), "taken once");
        assert_eq!(e.len(), 1);
        let due: Vec<Sid> = e.take_due(u64::MAX).into_iter().map(|t| t.sid).collect();
        assert_eq!(due, [c.sid]);
        assert!(e.is_empty());
    }

    #[test]
    fn far_future_expiries_wait_and_are_cancelled_at_disconnect() {
        let e = Expiries::default();
        let k = e.schedule(u64::MAX, target());
        assert!(e.take_due(unix_now()).is_empty());
        e.cancel(k);
        assert!(e.is_empty());
    }
}
