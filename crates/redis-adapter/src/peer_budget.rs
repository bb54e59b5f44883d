//! What other nodes' requests may cost this node. Requests arrive from anyone who can PUBLISH
//! on the adapter's request channels, so the answers are bounded here, not by trust:
//!
//! * **Answers** (fetchSockets, allRooms, ...) are published on the response channel every
//!   node subscribes to, and a 74-byte request can ask for every local socket with its
//!   handshake: a flood of them multiplied into megabytes a second on every node's single
//!   subscriber, which lagged and lost other messages. Answers take from a byte budget,
//!   [`ANSWER_BYTES_PER_SEC`] per adapter instance by default (burst twice that,
//!   `AdapterConfig::peer_answer_rate`); a request that
//!   finds it spent is not answered (counted as `request_refused`; its requester times out as
//!   it would with a node gone). One answer may overdraw it, so a large legitimate answer always
//!   goes, and large answers stop until the budget has refilled; answers of at most
//!   [`SMALL_ANSWER`] bytes (a request for a room of a few sockets, such as a socket's own-id
//!   room) are always sent, and every answer, clients' acks included, counts in the budget.
//! * **Acks awaited for a peer's broadcast-with-ack** stay in each recipient's ack map until
//!   the timeout the request names. That timeout is capped at [`MAX_ACK_TIMEOUT`], and at most
//!   [`MAX_PEER_ACKS`] acks (`AdapterConfig::max_peer_acks`) may be awaited at once for peers
//!   (a request counts its recipients
//!   while its answer runs). A request over that is still delivered, without acks, and answered
//!   with a client count of 0, so its requester does not wait for this node (counted as
//!   `request_refused`).
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Longest a peer's broadcast-with-ack may keep local clients' acks awaited.
pub const MAX_ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// Default acks awaited at once for peers' broadcasts-with-ack (~2 KB each in socketioxide's
/// maps).
pub const MAX_PEER_ACKS: u64 = 100_000;
/// Answers up to this size are sent even while the budget is spent (they still count in it):
/// requests for a few sockets (a socket-id room) must not be starved by whole-node ones.
pub const SMALL_ANSWER: usize = 4096;
/// Default bytes of answers to peers' requests per second (the budget holds twice that).
pub const ANSWER_BYTES_PER_SEC: f64 = 10.0 * 1024.0 * 1024.0;

#[derive(Debug)]
pub(crate) struct PeerBudget {
    max_acks: u64,
    rate: f64,
    acks: Arc<AtomicU64>,
    // Locked once per answered request (not per broadcast).
    answers: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    bytes: f64,
    at: Instant,
}

impl Default for PeerBudget {
    fn default() -> Self {
        PeerBudget::new(MAX_PEER_ACKS, ANSWER_BYTES_PER_SEC)
    }
}

/// Places in the awaited-acks budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct AckPlaces {
    n: u64,
    acks: Arc<AtomicU64>,
}

impl Drop for AckPlaces {
    fn drop(&mut self) {
        self.acks.fetch_sub(self.n, Ordering::AcqRel);
    }
}

impl PeerBudget {
    pub(crate) fn new(max_acks: u64, rate: f64) -> PeerBudget {
        PeerBudget {
            max_acks,
            rate,
            acks: Arc::default(),
            answers: Mutex::new(Bucket {
                bytes: 2.0 * rate,
                at: Instant::now(),
            }),
        }
    }

    fn bucket(&self, now: Instant) -> std::sync::MutexGuard<'_, Bucket> {
        let mut b = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.bytes = (b.bytes + elapsed * self.rate).min(2.0 * self.rate);
        b.at = now;
        b
    }

    /// May a request be answered now (the answer budget is not overdrawn)?
    pub(crate) fn may_answer(&self) -> bool {
        self.may_answer_at(Instant::now())
    }

    fn may_answer_at(&self, now: Instant) -> bool {
        self.bucket(now).bytes > 0.0
    }

    /// An answer of `bytes` was published.
    pub(crate) fn answered(&self, bytes: usize) {
        self.answered_at(bytes, Instant::now());
    }

    fn answered_at(&self, bytes: usize, now: Instant) {
        self.bucket(now).bytes -= bytes as f64;
    }

    /// Take `n` places for awaited acks, or `None` when that would pass the cap.
    pub(crate) fn take_acks(&self, n: u64) -> Option<AckPlaces> {
        let mut cur = self.acks.load(Ordering::Acquire);
        loop {
            let next = cur.checked_add(n).filter(|v| *v <= self.max_acks)?;
            match self
                .acks
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Some(AckPlaces {
                        n,
                        acks: self.acks.clone(),
                    });
                }
                Err(v) => cur = v,
            }
        }
    }
}

/// A peer's ack timeout, capped at [`MAX_ACK_TIMEOUT`].
pub(crate) fn ack_timeout(requested_ms: Option<u64>, default: Duration) -> Duration {
    requested_ms
        .map_or(default, Duration::from_millis)
        .min(MAX_ACK_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_stop_when_the_budget_is_overdrawn_and_resume_as_it_refills() {
        let b = PeerBudget::default();
        let t0 = Instant::now();
        assert!(b.may_answer_at(t0));
        // One large answer overdraws it: it went; the next waits for the refill.
        b.answered_at((2.0 * ANSWER_BYTES_PER_SEC) as usize + 5 * 1024 * 1024, t0);
        assert!(!b.may_answer_at(t0));
        assert!(!b.may_answer_at(t0 + Duration::from_millis(400)));
        assert!(b.may_answer_at(t0 + Duration::from_millis(600)));
    }

    #[test]
    fn awaited_acks_are_capped_and_given_back() {
        let b = PeerBudget::default();
        let first = b.take_acks(MAX_PEER_ACKS - 10).unwrap();
        assert!(b.take_acks(11).is_none());
        let small = b.take_acks(10).unwrap();
        assert!(b.take_acks(1).is_none());
        drop(first);
        drop(small);
        assert!(b.take_acks(MAX_PEER_ACKS).is_some());
    }

    #[test]
    fn a_peer_ack_timeout_is_capped() {
        let d = Duration::from_secs(5);
        assert_eq!(ack_timeout(None, d), d);
        assert_eq!(ack_timeout(Some(2_000), d), Duration::from_secs(2));
        assert_eq!(ack_timeout(Some(100_000_000_000), d), MAX_ACK_TIMEOUT);
    }
}
