//! Warnings that input from outside can set off, logged at most once per interval with the
//! count of the ones held back in between: a client (or a misconfigured backend) repeating the
//! same bad request must not turn the log into its amplifier.
use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

#[derive(Debug)]
pub struct WarnLimit {
    every: Duration,
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl WarnLimit {
    pub const fn new(every: Duration) -> WarnLimit {
        WarnLimit {
            every,
            last: Mutex::new(None),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(how many were held back since the last one)` when a warning may be logged now.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.saturating_duration_since(t) < self.every) {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_with_the_count_held_back() {
        let w = WarnLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(w.allow_at(t0), Some(0));
        assert_eq!(w.allow_at(t0 + Duration::from_secs(1)), None);
        assert_eq!(w.allow_at(t0 + Duration::from_secs(9)), None);
        assert_eq!(w.allow_at(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(w.allow_at(t0 + Duration::from_secs(11)), None);
    }
}
