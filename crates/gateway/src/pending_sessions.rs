//! Engine.IO sessions that were handshaken and have not connected a namespace yet, per node
//! (`--max-pending-sessions`, `--connect-timeout`).
//!
//! A handshake (`GET /socket.io/?EIO=4&transport=polling`, or a websocket without `sid`) makes a
//! session in engineioxide at once, ~7 KB, which lives until its first namespace CONNECT or
//! socketioxide's connect timeout. Nothing else counts such sessions: `--max-connections` counts
//! namespace sockets, `--max-conns-per-ip` TCP connections, `--conn-rate-per-ip` is off behind a
//! balancer. Review 8: one client handshaking in a loop over 4 keep-alive connections opened
//! 9,000 sessions a second and held a node at 3.96 GB (45 s timeout; 717 MB in 10 s with
//! `--max-connections 100 --max-conns-per-ip 10`). Now the timeout is `--connect-timeout` (10 s)
//! and a handshake is answered 503 (Retry-After) while `--max-pending-sessions` are pending
//! (`connections_refused_total{reason="pending_sessions"}`, gauge `sessions_pending`).
//!
//! The count is a sliding window of one-second slots over the connect timeout: handshakes the
//! engine answered (200 / 101) minus the sessions' first namespace connects (`relay::install`,
//! through [`crate::engine_sessions::Pending::installed`]). A session that goes away before
//! connecting counts until its handshake leaves the window, which is when socketioxide would
//! have closed it anyway; so the count never under-states what is held, and over-states it by
//! at most the sessions that closed early in the last `--connect-timeout`. Honest sessions
//! connect one round trip after their handshake, so they hardly count at all.
//!
//! A **polling** session stays pending after its first CONNECT until it polls (review 9): one
//! that posts its CONNECT and is abandoned never reads the answer, and lived as a connected
//! session until its heartbeat failed (45 s), counted against nothing: one client made 66,811
//! in 20 s (683 MB) whatever `--max-pending-sessions`. A live client polls one round trip after
//! its CONNECT, or upgrades to a websocket ([`PendingSessions::polled`], from [`PendingCap`]),
//! so it hardly counts longer.
//! Sessions still waiting for that poll when their handshake leaves the window are forgotten
//! with it (they are no longer counted, as a session that never CONNECTs is not).
//!
//! Cost: one short mutex-held update per handshake and per first namespace connect, and a
//! lookup in a (usually empty) map per polling GET (never per message).
use std::{
    collections::VecDeque,
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::Request,
    http::{Method, StatusCode},
    response::Response,
};
use prometheus::{IntCounter, IntGauge};
use socketioxide::socket::Sid;

use crate::{
    hook::{Finish, Hook, Step},
    warn_limit::WarnLimit,
};

#[derive(Debug)]
pub struct PendingSessions {
    /// 0: unlimited (still counted).
    max: usize,
    window_secs: u64,
    epoch: Instant,
    window: Mutex<Window>,
    gauge: IntGauge,
}

#[derive(Debug, Default)]
struct Window {
    /// Polling sessions connected and not polled since, with the second their CONNECT came.
    unpolled: crate::id_hash::IdMap<Sid, u64>,
    /// (second since `epoch`, handshakes, first connects), oldest first.
    slots: VecDeque<(u64, u64, u64)>,
    opened: u64,
    connected: u64,
}

impl Window {
    fn slide(&mut self, now: u64, window_secs: u64) {
        let mut slid = false;
        while let Some(&(sec, o, c)) = self.slots.front() {
            if sec + window_secs > now {
                break;
            }
            self.slots.pop_front();
            self.opened -= o;
            self.connected -= c;
            slid = true;
        }
        // Their handshakes left the window with those slots (a CONNECT comes after its handshake).
        if slid && !self.unpolled.is_empty() {
            self.unpolled.retain(|_, at| *at + window_secs > now);
        }
    }

    fn pending(&self) -> usize {
        usize::try_from(self.opened.saturating_sub(self.connected)).unwrap_or(usize::MAX)
    }

    fn add(&mut self, now: u64, opened: u64, connected: u64) {
        match self.slots.back_mut() {
            Some((sec, o, c)) if *sec == now => {
                *o += opened;
                *c += connected;
            }
            _ => self.slots.push_back((now, opened, connected)),
        }
        self.opened += opened;
        self.connected += connected;
    }
}

impl PendingSessions {
    pub fn new(max: usize, connect_timeout: Duration, gauge: IntGauge) -> PendingSessions {
        PendingSessions {
            max,
            // Whole seconds, rounded up: a session is counted at least as long as it can live.
            window_secs: connect_timeout.as_millis().div_ceil(1000).max(1) as u64,
            epoch: Instant::now(),
            window: Mutex::default(),
            gauge,
        }
    }

    fn update(&self, now: Instant, f: impl FnOnce(&mut Window, u64) -> bool) -> bool {
        let sec = now.saturating_duration_since(self.epoch).as_secs();
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.slide(sec, self.window_secs);
        let r = f(&mut w, sec);
        self.gauge
            .set(i64::try_from(w.pending()).unwrap_or(i64::MAX));
        r
    }

    /// May another session be handshaken now?
    fn has_room_at(&self, now: Instant) -> bool {
        self.max == 0 || self.update(now, |w, _| w.pending() < self.max)
    }

    /// The engine answered a handshake: a session is pending.
    fn opened_at(&self, now: Instant) {
        self.update(now, |w, sec| {
            w.add(sec, 1, 0);
            true
        });
    }

    /// Slide the window to now (the gauge, at scrape time).
    pub fn refresh(&self) {
        self.update(Instant::now(), |_, _| true);
    }

    /// A session connected its first namespace: no longer pending.
    pub fn connected(&self) {
        self.connected_at(Instant::now());
    }

    /// A polling session connected its first namespace: pending until it polls ([`Self::polled`]).
    pub fn connected_unpolled(&self, sid: Sid) {
        self.update(Instant::now(), |w, sec| {
            w.unpolled.insert(sid, sec);
            true
        });
    }

    /// A poll of session `sid`: if it connected and had not polled since, no longer pending.
    pub fn polled(&self, sid: Sid) {
        let now = Instant::now();
        let waited = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            !w.unpolled.is_empty() && w.unpolled.remove(&sid).is_some()
        };
        if waited {
            self.connected_at(now);
        }
    }

    fn connected_at(&self, now: Instant) {
        self.update(now, |w, sec| {
            w.add(sec, 0, 1);
            true
        });
    }
}

/// Counts the handshakes the engine answers and refuses new ones with 503 while the node holds
/// `--max-pending-sessions` (a [`Hook`]). Requests of existing sessions pass untouched.
#[derive(Clone)]
pub struct PendingCap {
    pub sessions: Arc<PendingSessions>,
    /// `connections_refused_total{reason="pending_sessions"}`.
    pub refused: IntCounter,
}

impl Hook for PendingCap {
    /// Whether the request is a handshake.
    type Carry = bool;

    fn before(&self, req: &mut Request) -> Step<bool> {
        let shape = crate::engine_io::Shape::of(req);
        // A poll, or the websocket upgrade a client reads from next.
        if shape.has_sid && req.method() == Method::GET {
            if let Some(sid) =
                crate::engine_io::session_sid(req).and_then(|s| Sid::from_str(s).ok())
            {
                self.sessions.polled(sid);
            }
            return Step::Continue(false);
        }
        if !shape.is_handshake() {
            return Step::Continue(false);
        }
        if self.sessions.has_room_at(Instant::now()) {
            return Step::Continue(true);
        }
        self.refused.inc();
        static LOG: WarnLimit = WarnLimit::new(Duration::from_secs(10));
        if let Some(held_back) = LOG.allow() {
            tracing::warn!(
                max = self.sessions.max,
                held_back,
                "handshake refused: --max-pending-sessions sessions are waiting for their first CONNECT (each refusal is counted in connections_refused_total{{reason=\"pending_sessions\"}}; logged at most every 10 s)"
            );
        }
        Step::Answer(crate::engine_io::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many new sessions waiting to connect: try again later",
        ))
    }

    fn after(&self, handshake: bool, resp: Response) -> Finish {
        if handshake
            && matches!(
                resp.status(),
                StatusCode::OK | StatusCode::SWITCHING_PROTOCOLS
            )
        {
            self.sessions.opened_at(Instant::now());
        }
        Finish::Done(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(max: usize, timeout_secs: u64) -> PendingSessions {
        let gauge = IntGauge::new("p", "p").expect("static");
        PendingSessions::new(max, Duration::from_secs(timeout_secs), gauge)
    }

    #[test]
    fn capped_while_pending_freed_by_connects_and_by_time() {
        let p = sessions(3, 10);
        let t0 = p.epoch;
        for _ in 0..3 {
            assert!(p.has_room_at(t0));
            p.opened_at(t0);
        }
        assert!(!p.has_room_at(t0), "3 pending of 3");
        assert_eq!(p.gauge.get(), 3);
        p.connected_at(t0 + Duration::from_millis(50));
        assert!(
            p.has_room_at(t0 + Duration::from_millis(60)),
            "one connected"
        );
        p.opened_at(t0 + Duration::from_secs(1));
        assert!(!p.has_room_at(t0 + Duration::from_secs(9)));
        // The first three handshakes (and the connect) leave the window after 10 s.
        assert!(p.has_room_at(t0 + Duration::from_secs(10)));
        assert_eq!(p.gauge.get(), 1, "the handshake at 1 s is still in it");
        assert!(p.has_room_at(t0 + Duration::from_secs(11)));
        assert_eq!(p.gauge.get(), 0);
    }

    #[test]
    fn a_polling_session_is_pending_until_it_polls_or_its_handshake_leaves_the_window() {
        let p = sessions(2, 10);
        let t0 = p.epoch;
        let (a, b) = (Sid::new(), Sid::new());
        p.opened_at(t0);
        p.opened_at(t0);
        p.update(t0, |w, sec| {
            w.unpolled.insert(a, sec);
            w.unpolled.insert(b, sec);
            true
        });
        assert!(!p.has_room_at(t0), "connected, not polled: still pending");
        p.polled(a);
        p.polled(a);
        assert_eq!(p.gauge.get(), 1, "a polled (once counts once)");
        assert!(p.has_room_at(t0));
        // b never polls: it leaves with its handshake's slot, and is forgotten.
        assert!(p.has_room_at(t0 + Duration::from_secs(10)));
        assert_eq!(p.gauge.get(), 0);
        assert!(p.window.lock().unwrap().unpolled.is_empty());
        p.polled(b);
        assert_eq!(p.gauge.get(), 0, "a late poll changes nothing");
    }

    #[test]
    fn unlimited_still_counts() {
        let p = sessions(0, 5);
        let t0 = p.epoch;
        for _ in 0..100 {
            assert!(p.has_room_at(t0));
            p.opened_at(t0);
        }
        assert_eq!(p.gauge.get(), 100);
    }

    #[test]
    fn more_connects_than_handshakes_count_as_none() {
        // A session handshaken just before the window connects inside it.
        let p = sessions(2, 10);
        let t0 = p.epoch;
        p.connected_at(t0);
        p.connected_at(t0);
        assert_eq!(p.gauge.get(), 0);
        p.opened_at(t0);
        p.opened_at(t0);
        p.opened_at(t0);
        assert!(p.has_room_at(t0), "3 handshakes - 2 connects = 1 pending");
    }
}
