//! The namespaces of each Engine.IO session: how many of its namespace sockets are live, so the
//! gateway knows two things socketioxide does not tell it.
//!
//! 1. **Is this CONNECT the session's first?** socketioxide gives a session one id in every
//!    namespace (Node.js gives each namespace socket its own), and every socket is in the room
//!    named after that id (direct messages from backends). Once a session's id is public (it is
//!    the `socket.id` of its first namespace), a client could join the room of that id in a
//!    namespace the session has *not* connected yet; when it connects there, it would share its
//!    own-id room with the squatter. So a session's later CONNECTs clear the room first
//!    (`relay::install`); a first CONNECT's id was never public and needs nothing.
//! 2. **Did the session leave every namespace?** A client that sends DISCONNECT (`41`) for its
//!    last namespace keeps its Engine.IO session: socketioxide closes only the namespace socket,
//!    and its connect timeout ran out at the first CONNECT. Such a session counts against no
//!    limit (`--max-connections` counts namespace sockets) and would keep its TCP connection and
//!    ~17 KB forever by answering pings. Stock clients close the session themselves when their
//!    last namespace goes (socket.io-client's `Manager`, python-socketio), so the gateway closes
//!    a session left with no namespace after a grace (`ping_interval + ping_timeout`, as
//!    socketioxide's connect timeout), unless it connects one again meanwhile.
//! 3. **How many CONNECTs is it trying?** socketioxide runs every CONNECT of a session at once,
//!    each through authentication (a JWT check, or a webhook call sharing `--auth-webhook`'s
//!    concurrency with every other client). One websocket sending 10,000 CONNECTs to
//!    `/tenant-0` … `/tenant-9999` (or again and again to one namespace, refused) queued
//!    honest clients' authentications behind its own. A session may have [`MAX_PENDING`]
//!    CONNECTs in progress at once (more are refused at the door, no authentication run) and
//!    [`MAX_REFUSED`] refused in its life (then its transport is cut: a new session costs a
//!    handshake, which `--conn-rate-per-ip` limits).
//!
//! Cost: two short mutex-held map updates per namespace connect (admission and install), one
//! per disconnect (not per message); one entry (~48 bytes) per live session.
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus::IntCounter;
use socketioxide::{
    TransportType,
    adapter::Adapter,
    socket::{DisconnectReason, Sid, Socket},
};

use crate::{drain::Drain, id_hash::IdMap, listener::ConnRegistry};

/// CONNECTs one session may have in progress (admitted, not yet installed or refused).
pub const MAX_PENDING: u32 = 16;
/// Refused CONNECTs after which a session's transport is cut.
pub const MAX_REFUSED: u32 = 32;
/// CONNECTs a session may make after its first (each asks every node to clear its own-id
/// room: `relay::install`), in a burst, then [`LATER_CONNECT_RATE`] per second: a CONNECT and
/// DISCONNECT loop would otherwise make the cluster do a round of requests each time.
pub const LATER_CONNECT_BURST: f32 = 16.0;
pub const LATER_CONNECT_RATE: f32 = 1.0;

#[derive(Debug)]
pub struct EngineSessions {
    map: Mutex<IdMap<Sid, Entry>>,
    closer: Closer,
    /// Origin of `Entry::later_at_ms`.
    epoch: Instant,
}

/// What closing a session takes (built once with the node's services).
#[derive(Debug)]
pub struct Closer {
    /// How long a session may stay with no namespace (`ping_interval + ping_timeout`).
    pub grace: Duration,
    pub drain: Arc<Drain>,
    pub conns: Arc<ConnRegistry>,
    /// `sessions_closed_no_namespace_total`.
    pub closed: IntCounter,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Live namespace sockets.
    live: u32,
    /// CONNECTs admitted and not yet installed or refused.
    pending: u32,
    /// CONNECTs refused in the session's life.
    refused: u32,
    /// A namespace socket was installed once: the session's id is public.
    public: bool,
    /// Later CONNECTs' token bucket, as the tokens taken (0: full), and when last taken
    /// (milliseconds since `EngineSessions::epoch`).
    later_debt: f32,
    later_at_ms: u32,
    /// Bumped whenever the session is left with nothing (no namespace, no CONNECT in
    /// progress): only the latest grace may close it.
    generation: u64,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.live == 0 && self.pending == 0
    }
}

/// What a namespace disconnect leaves.
#[derive(Debug, PartialEq, Eq)]
pub enum Left {
    /// Other namespaces of the session are still connected (or connecting).
    Others,
    /// The session itself ended (transport closed, heartbeat, server closing): forget it.
    Ended,
    /// The session is open with no namespace: it is closed after the grace unless it connects
    /// one again ([`EngineSessions::close_if_still_empty`] with this generation).
    Empty(u64),
}

/// Why a CONNECT is refused at the door ([`EngineSessions::attempt`]).
#[derive(Debug, PartialEq, Eq)]
pub enum TooMany {
    /// [`MAX_PENDING`] CONNECTs of the session are in progress.
    AtOnce,
    /// [`MAX_REFUSED`] were refused: cut the session's transport.
    Refused,
    /// CONNECTs after the session's first come faster than [`LATER_CONNECT_RATE`].
    TooFast,
}

/// The transport facts [`Drain::cut_session`] needs, read while a socket of the session is at
/// hand.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub kind: TransportType,
    pub websocket_handshake: Option<u64>,
}

impl Transport {
    pub fn of<A: Adapter>(s: &Socket<A>) -> Transport {
        Transport {
            kind: s.transport_type(),
            websocket_handshake: crate::drain::websocket_handshake_conn(s.req_parts()),
        }
    }
}

/// One admitted CONNECT in progress, kept in the socket's extensions until `relay::install`
/// takes it ([`Pending::installed`]). Dropped with the socket when a later middleware refuses
/// the CONNECT: that counts the refusal.
#[derive(Debug)]
pub struct Pending {
    sessions: Arc<EngineSessions>,
    sid: Sid,
    transport: Transport,
    installed: AtomicBool,
}

impl Pending {
    /// Has a namespace socket of this session been installed before (its id is public)?
    pub fn session_is_public(&self) -> bool {
        self.sessions
            .lock()
            .get(&self.sid)
            .is_some_and(|e| e.public)
    }

    /// The CONNECT became a namespace socket: true when it is the session's first (its id
    /// was not public before).
    pub fn installed(&self) -> bool {
        self.installed.store(true, Ordering::Relaxed);
        self.sessions.installed(self.sid)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.installed.load(Ordering::Relaxed)
            && let Some(generation) = self.sessions.refused(self.sid)
        {
            self.sessions
                .close_if_still_empty(self.sid, generation, self.transport);
        }
    }
}

impl EngineSessions {
    pub fn new(closer: Closer) -> EngineSessions {
        EngineSessions {
            map: Mutex::default(),
            closer,
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdMap<Sid, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A CONNECT of `sid` arrives (first connect middleware): admitted as [`Pending`] unless the
    /// session has too many in progress or refused.
    pub fn attempt(self: &Arc<Self>, sid: Sid, transport: Transport) -> Result<Pending, TooMany> {
        let mut map = self.lock();
        let e = map.entry(sid).or_default();
        if e.refused >= MAX_REFUSED {
            return Err(TooMany::Refused);
        }
        if e.pending >= MAX_PENDING {
            e.refused += 1;
            return Err(TooMany::AtOnce);
        }
        if e.public {
            let now = u32::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u32::MAX);
            let elapsed = now.saturating_sub(e.later_at_ms) as f32 / 1000.0;
            let debt = (e.later_debt - elapsed * LATER_CONNECT_RATE).max(0.0) + 1.0;
            if debt > LATER_CONNECT_BURST {
                e.refused += 1;
                return Err(TooMany::TooFast);
            }
            (e.later_debt, e.later_at_ms) = (debt, now);
        }
        e.pending += 1;
        Ok(Pending {
            sessions: self.clone(),
            sid,
            transport,
            installed: AtomicBool::new(false),
        })
    }

    fn installed(&self, sid: Sid) -> bool {
        let mut map = self.lock();
        let e = map.entry(sid).or_default();
        e.pending = e.pending.saturating_sub(1);
        e.live += 1;
        !std::mem::replace(&mut e.public, true)
    }

    /// An admitted CONNECT was refused; `Some(generation)` when that left the session empty.
    fn refused(&self, sid: Sid) -> Option<u64> {
        let mut map = self.lock();
        let e = map.get_mut(&sid)?;
        e.pending = e.pending.saturating_sub(1);
        e.refused += 1;
        e.is_empty().then(|| {
            e.generation += 1;
            e.generation
        })
    }

    /// A namespace socket of `sid` disconnected for `reason`.
    pub fn disconnected(&self, sid: Sid, reason: DisconnectReason) -> Left {
        let mut map = self.lock();
        let Some(e) = map.get_mut(&sid) else {
            return Left::Ended;
        };
        e.live = e.live.saturating_sub(1);
        let namespace_only = matches!(
            reason,
            DisconnectReason::ClientNSDisconnect | DisconnectReason::ServerNSDisconnect
        );
        if !namespace_only {
            // The whole session goes: its other namespaces disconnect with the same reason.
            if e.live == 0 {
                map.remove(&sid);
            }
            return Left::Ended;
        }
        if !e.is_empty() {
            return Left::Others;
        }
        e.generation += 1;
        Left::Empty(e.generation)
    }

    /// The grace of generation `generation` ran out: true (and forgotten) when the session
    /// is still empty, so it must be closed.
    fn expire(&self, sid: Sid, generation: u64) -> bool {
        let mut map = self.lock();
        match map.get(&sid) {
            Some(e) if e.is_empty() && e.generation == generation => {
                map.remove(&sid);
                true
            }
            _ => false,
        }
    }

    /// Close `sid` after the grace unless it connects a namespace again meanwhile
    /// (`generation` from [`Left::Empty`]).
    pub fn close_if_still_empty(self: &Arc<Self>, sid: Sid, generation: u64, t: Transport) {
        let me = self.clone();
        tokio::spawn(async move {
            let c = &me.closer;
            tokio::time::sleep(c.grace).await;
            if !me.expire(sid, generation) {
                return;
            }
            let id = sid.to_string();
            tracing::debug!(sid = %id, "session with no namespace closed");
            c.closed.inc();
            c.drain
                .cut_session(&c.conns, id.clone(), t.kind, t.websocket_handshake);
            // A polling session's CLOSE waits for its next poll; its posts are refused from now
            // on (`drain::EngineGuard`), so its heartbeat ends it within one grace: its next
            // ping goes unanswered. Forgotten after two, so that it is not let in again before.
            tokio::time::sleep(c.grace * 2).await;
            c.drain.forget(&id);
        });
    }

    /// Sessions known.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(grace: Duration) -> Arc<EngineSessions> {
        Arc::new(EngineSessions::new(Closer {
            grace,
            drain: Arc::default(),
            conns: Arc::default(),
            closed: IntCounter::new("c", "c").expect("a counter"),
        }))
    }

    const WS: Transport = Transport {
        kind: TransportType::Websocket,
        websocket_handshake: None,
    };

    fn connect(s: &Arc<EngineSessions>, sid: Sid) -> bool {
        s.attempt(sid, WS).expect("admitted").installed()
    }

    #[test]
    fn first_connect_later_connects_and_an_emptied_session() {
        let s = sessions(Duration::from_secs(60));
        let sid = Sid::new();
        assert!(connect(&s, sid), "first namespace of the session");
        assert!(!connect(&s, sid), "a second namespace");
        assert_eq!(
            s.disconnected(sid, DisconnectReason::ClientNSDisconnect),
            Left::Others
        );
        let Left::Empty(g) = s.disconnected(sid, DisconnectReason::ClientNSDisconnect) else {
            panic!("its last namespace left")
        };
        // Connecting again within the grace: not the first, and the grace does not close it.
        assert!(!connect(&s, sid));
        assert!(!s.expire(sid, g));
        let Left::Empty(g2) = s.disconnected(sid, DisconnectReason::ServerNSDisconnect) else {
            panic!("emptied again")
        };
        assert!(!s.expire(sid, g), "a stale grace closes nothing");
        assert!(s.expire(sid, g2));
        assert_eq!(s.len(), 0, "forgotten once closed");
    }

    #[test]
    fn a_session_that_ends_is_forgotten() {
        let s = sessions(Duration::from_secs(60));
        let sid = Sid::new();
        connect(&s, sid);
        connect(&s, sid);
        assert_eq!(
            s.disconnected(sid, DisconnectReason::TransportClose),
            Left::Ended
        );
        assert_eq!(s.len(), 1, "its other namespace is still to disconnect");
        assert_eq!(
            s.disconnected(sid, DisconnectReason::TransportClose),
            Left::Ended
        );
        assert_eq!(s.len(), 0);
        assert_eq!(
            s.disconnected(sid, DisconnectReason::HeartbeatTimeout),
            Left::Ended,
            "unknown: nothing to do"
        );
    }

    #[tokio::test]
    async fn connects_in_progress_and_refused_are_capped_per_session() {
        let s = sessions(Duration::from_secs(60));
        let sid = Sid::new();
        let pending: Vec<_> = (0..MAX_PENDING)
            .map(|_| s.attempt(sid, WS).expect("admitted"))
            .collect();
        assert_eq!(s.attempt(sid, WS).err(), Some(TooMany::AtOnce));
        assert!(
            s.attempt(Sid::new(), WS).is_ok(),
            "another session is not affected"
        );
        drop(pending); // refused by a later middleware (dropped with their sockets)
        let mut refused = MAX_PENDING + 1;
        while refused < MAX_REFUSED {
            drop(s.attempt(sid, WS).expect("admitted"));
            refused += 1;
        }
        assert_eq!(s.attempt(sid, WS).err(), Some(TooMany::Refused));
        // An installed CONNECT is no refusal.
        let other = Sid::new();
        for _ in 0..=LATER_CONNECT_BURST as usize {
            let p = s.attempt(other, WS).expect("admitted");
            p.installed();
            drop(p);
            s.disconnected(other, DisconnectReason::ClientNSDisconnect);
        }
        assert_eq!(s.lock()[&other].refused, 0);
    }

    #[test]
    fn connects_after_the_first_are_rate_limited() {
        let s = sessions(Duration::from_secs(60));
        let sid = Sid::new();
        connect(&s, sid); // the first: free
        let mut admitted = 0;
        while s.attempt(sid, WS).map(|p| p.installed()).is_ok() {
            admitted += 1;
            assert!(admitted <= 100, "never limited");
        }
        assert_eq!(admitted, LATER_CONNECT_BURST as usize);
        assert_eq!(s.attempt(sid, WS).err(), Some(TooMany::TooFast));
        // A new session's first CONNECT is not limited.
        assert!(connect(&s, Sid::new()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_refused_and_left_with_nothing_is_closed_after_the_grace() {
        let grace = Duration::from_secs(45);
        let s = sessions(grace);
        let sid = Sid::new();
        drop(s.attempt(sid, WS).expect("admitted")); // refused
        assert_eq!(s.len(), 1);
        tokio::time::sleep(grace + Duration::from_secs(1)).await;
        assert_eq!(s.len(), 0, "forgotten after the grace");
        assert_eq!(s.closer.closed.get(), 1);
    }
}
