//! Per-connection and per-node limits that socketioxide does not enforce itself.
//!
//! * [`TokenBucket`]: the per-connection event rate (`--event-rate`, `--event-burst`).
//!   Excess events are dropped by the relay, counted and answered with an error ack.
//! * [`ConnectionLimit`]: the node-wide cap on Socket.IO connections (`--max-connections`),
//!   checked in the connect middleware so a refused client gets a `connect_error`.
//!
//! Payload size limits are socketioxide/engineioxide settings; see `server::build_socketio`.
use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

/// A classic token bucket: `rate` tokens per second, at most `burst` stored.
///
/// Lives inside one connection's context; only that connection's handlers touch it, so the
/// mutex is uncontended (a few ns) and keeps the refill arithmetic simple and exact.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// `rate == 0` means unlimited.
    pub fn new(rate: f64, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Take one token if available.
    pub fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        // A poisoned lock only means another handler panicked mid-update; the numbers are
        // still usable, so recover rather than propagate the panic.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = *st;
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let tokens = (tokens + elapsed * self.rate).min(self.burst);
        if tokens >= 1.0 {
            *st = (tokens - 1.0, now);
            true
        } else {
            *st = (tokens, now);
            false
        }
    }
}

/// Node-wide count of live Socket.IO connections against `--max-connections`.
///
/// The check (in the connect middleware) and the increment (in the connect handler) are not
/// one atomic step, so a burst of simultaneous connects may overshoot the cap by the number
/// of handshakes in flight; the cap is a memory guard, not an exact quota.
#[derive(Debug, Default)]
pub struct ConnectionLimit {
    max: usize,
    current: AtomicUsize,
}

impl ConnectionLimit {
    /// `max == 0` means unlimited.
    pub fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit {
            max,
            current: AtomicUsize::new(0),
        }
    }

    pub fn is_full(&self) -> bool {
        self.max != 0 && self.current.load(Ordering::Relaxed) >= self.max
    }

    pub fn opened(&self) {
        self.current.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self) {
        // Saturating: never wrap even if a close is reported twice.
        let _ = self
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
    }

    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let b = TokenBucket::new(10.0, 3);
        let t0 = Instant::now();
        assert!(b.try_take_at(t0));
        assert!(b.try_take_at(t0));
        assert!(b.try_take_at(t0));
        assert!(!b.try_take_at(t0), "burst exhausted");
        // 10/s: one token after 100 ms, not before.
        assert!(!b.try_take_at(t0 + Duration::from_millis(50)));
        assert!(b.try_take_at(t0 + Duration::from_millis(110)));
        assert!(!b.try_take_at(t0 + Duration::from_millis(110)));
        // Long idle refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert!(b.try_take_at(later));
        assert!(b.try_take_at(later));
        assert!(b.try_take_at(later));
        assert!(!b.try_take_at(later));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let b = TokenBucket::new(0.0, 1);
        for _ in 0..10_000 {
            assert!(b.try_take());
        }
    }

    #[test]
    fn connection_limit() {
        let l = ConnectionLimit::new(2);
        assert!(!l.is_full());
        l.opened();
        l.opened();
        assert!(l.is_full());
        l.closed();
        assert!(!l.is_full());
        l.closed();
        l.closed();
        assert_eq!(l.current(), 0);
        assert!(!ConnectionLimit::new(0).is_full());
    }
}
