//! Per-connection and per-node limits that socketioxide does not enforce itself.
//!
//! * [`TokenBucket`]: the per-connection event rate (`--event-rate`, `--event-burst`).
//!   Excess events are dropped by the relay, counted and answered with an error ack.
//! * [`ConnectionLimit`]: the node-wide cap on Socket.IO connections (`--max-connections`),
//!   checked in the connect middleware so a refused client gets a `connect_error`.
//! * [`IpRateLimit`] + [`HandshakeRate`]: new Engine.IO sessions per client IP
//!   (`--conn-rate-per-ip`), a tower layer answering 429 before any session exists.
//!
//! Payload size limits are socketioxide/engineioxide settings; see `server::build_socketio`.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, Request},
    http::StatusCode,
};

use crate::{
    hook::{Hook, Step},
    listener::ConnInfo,
    metrics::Metrics,
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

/// Token buckets keyed by client IP, for new sessions only.
///
/// One mutex for the map: it is taken once per Engine.IO handshake, never per message.
/// Memory is bounded by pruning buckets that have refilled completely (an idle IP costs
/// nothing once its bucket is full again) whenever the map grows past `PRUNE_AT`.
#[derive(Debug)]
pub struct IpRateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

const PRUNE_AT: usize = 10_000;

impl IpRateLimit {
    /// `rate == 0` means unlimited. The burst is twice the rate, at least 1.
    pub fn new(rate: f64) -> IpRateLimit {
        IpRateLimit {
            rate,
            burst: (rate * 2.0).ceil().max(1.0),
            buckets: Mutex::default(),
        }
    }

    /// `rate` per second with an explicit burst (at least 1).
    pub fn with_burst(rate: f64, burst: u32) -> IpRateLimit {
        IpRateLimit {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    pub fn try_take(&self, ip: IpAddr) -> bool {
        self.try_take_at(ip, Instant::now())
    }

    fn try_take_at(&self, ip: IpAddr, now: Instant) -> bool {
        if !self.enabled() {
            return true;
        }
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PRUNE_AT {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, (tokens, last)| {
                *tokens + now.saturating_duration_since(*last).as_secs_f64() * rate < burst
            });
        }
        let (tokens, last) = map.entry(ip).or_insert((self.burst, now));
        let refilled = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * self.rate)
            .min(self.burst);
        *last = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            true
        } else {
            *tokens = refilled;
            false
        }
    }
}

/// Refuses a new Engine.IO session (a `/socket.io/` request without `sid`) with 429 when its
/// IP is over `--conn-rate-per-ip` (a [`Hook`]). Requests of existing sessions pass.
#[derive(Clone)]
pub struct HandshakeRate {
    pub metrics: Arc<Metrics>,
    pub limit: Arc<IpRateLimit>,
}

impl Hook for HandshakeRate {
    type Carry = ();
    const AFTER: bool = false;

    fn before(&self, req: &mut Request) -> Step<()> {
        let new_session = crate::engine_io::is_handshake(req);
        if new_session
            && let Some(ConnectInfo(ConnInfo { remote, .. })) =
                req.extensions().get::<ConnectInfo<ConnInfo>>()
            && !self.limit.try_take(remote.ip())
        {
            self.metrics
                .connections_refused_total
                .with_label_values(&["ip_rate"])
                .inc();
            return Step::Answer(crate::engine_io::retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                "too many new connections from this address",
            ));
        }
        Step::Continue(())
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
    fn ip_rate_is_per_ip_and_refills() {
        let l = IpRateLimit::new(1.0); // burst 2
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(l.try_take_at(a, t0));
        assert!(l.try_take_at(a, t0));
        assert!(!l.try_take_at(a, t0));
        assert!(l.try_take_at(b, t0), "another IP has its own bucket");
        assert!(l.try_take_at(a, t0 + Duration::from_millis(1100)));
        assert!(!IpRateLimit::new(0.0).enabled());
    }

    #[test]
    fn ip_rate_prunes_idle_buckets() {
        let l = IpRateLimit::new(10.0);
        let t0 = Instant::now();
        for i in 0..PRUNE_AT as u32 {
            assert!(l.try_take_at(IpAddr::from(i.to_be_bytes()), t0));
        }
        // Much later every bucket is full again: the next insert prunes them all.
        assert!(l.try_take_at("192.0.2.1".parse().unwrap(), t0 + Duration::from_secs(60)));
        assert_eq!(l.buckets.lock().unwrap().len(), 1);
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
