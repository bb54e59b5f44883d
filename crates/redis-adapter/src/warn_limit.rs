//! Rate limiter for warnings on the message path (at most one line per second, shared by every
//! part of one adapter instance), so a flood of bad messages cannot flood the log.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

/// At most one warning per second.
pub(crate) struct LogLimiter {
    start: Instant,
    last: AtomicU64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl LogLimiter {
    /// True when a line may be logged now.
    pub(crate) fn allow(&self) -> bool {
        let now = self.start.elapsed().as_millis() as u64 + 1000;
        let last = self.last.load(Ordering::Relaxed);
        now >= last + 1000
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}
