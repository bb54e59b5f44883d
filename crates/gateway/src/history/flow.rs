//! Flow control of replays by bytes delivered: how much of a replay may be queued for a
//! socket but not yet delivered to its client.
//!
//! Each replayed message is encoded for its socket alone (a broadcast shares one encoding, a
//! replay cannot) and queued in engineioxide's per-socket queue, which is bounded in packets
//! (`--max-buffer`), not bytes: a client that asks for the replay of a room of big messages
//! and stops reading would pin `--max-buffer` of them. So a replay keeps, per socket:
//!
//! * a [`Window`]: the bytes it queued, less what the transport delivered since (bytes written
//!   on the websocket's TCP connection, or bytes of poll answers served), floored at 0 (what
//!   the client took of other traffic is no credit for later). At most [`WINDOW`] may be
//!   outstanding; one message is always allowed when nothing is, so a message larger than the
//!   window still goes, one at a time;
//! * a share of the node's [`ReplayBudget`]: the bytes outstanding across every running replay,
//!   at most `--history-max-bytes`. A replay reserves a message's size before sending it, gives
//!   back what was delivered, and the rest when it ends ([`Reservation`]'s drop); one with
//!   nothing outstanding may always send one message, so replays cannot deadlock each other.
//!
//! A message's size is estimated from below ([`super::message::Delivery::wire_floor`]): an
//! estimate above the bytes actually sent would leave the window looking full once all of it
//! was delivered, and the replay would wait for nothing until its deadline.
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::IntGauge;

/// Most bytes a replay may have queued but not yet delivered (besides one message when
/// nothing is outstanding).
pub const WINDOW: u64 = 1 << 20;

/// One replay's bytes queued and not yet delivered, by the transport's delivered count.
#[derive(Debug, Default)]
pub struct Window {
    outstanding: u64,
    /// The transport's delivered count when last looked at (`None`: not looked at yet).
    seen: Option<u64>,
}

impl Window {
    /// Bytes queued and not yet delivered.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// The transport's delivered count is now `now`: what it grew by since the last look is
    /// taken off what is outstanding (floored at 0). Returns the bytes taken off.
    pub fn delivered(&mut self, now: u64) -> u64 {
        let grew = self.seen.map_or(0, |s| now.saturating_sub(s));
        self.seen = Some(now);
        let acked = grew.min(self.outstanding);
        self.outstanding -= acked;
        acked
    }

    /// The transport changed (a polling session upgraded to a websocket): its count is a
    /// different one, taken from `now` on (`None`: from its next look). Call
    /// [`Window::delivered`] with the old one's count first.
    pub fn new_transport(&mut self, now: Option<u64>) {
        self.seen = now;
    }

    /// May a message of `n` bytes be queued now? Always when nothing is outstanding.
    pub fn fits(&self, n: u64) -> bool {
        self.outstanding == 0 || self.outstanding.saturating_add(n) <= WINDOW
    }

    /// A message of `n` bytes was queued.
    pub fn queued(&mut self, n: u64) {
        self.outstanding = self.outstanding.saturating_add(n);
    }

    /// A message of `n` bytes counted by [`Window::queued`] was not sent after all.
    pub fn unqueued(&mut self, n: u64) {
        self.outstanding = self.outstanding.saturating_sub(n);
    }
}

/// The bytes outstanding across every running replay of the node, at most `max`
/// (`--history-max-bytes`), exported as `history_replay_outstanding_bytes`.
#[derive(Debug)]
pub struct ReplayBudget {
    max: u64,
    used: AtomicU64,
    gauge: IntGauge,
}

impl ReplayBudget {
    pub fn new(max: u64, gauge: IntGauge) -> ReplayBudget {
        ReplayBudget {
            max,
            used: AtomicU64::new(0),
            gauge,
        }
    }

    /// Bytes reserved by running replays.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserve `n` bytes if they fit, or whatever the total when `force` (a replay with nothing
    /// outstanding). One atomic compare-and-swap loop per replayed message (replays only, never
    /// the broadcast path).
    fn reserve(&self, n: u64, force: bool) -> bool {
        let ok = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                let total = u.saturating_add(n);
                (force || total <= self.max).then_some(total)
            })
            .is_ok();
        if ok {
            self.gauge.add(gauge_value(n));
        }
        ok
    }

    fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.used.fetch_sub(n, Ordering::AcqRel);
        self.gauge.sub(gauge_value(n));
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One replay's [`Window`] and its share of the [`ReplayBudget`] (always equal to the window's
/// outstanding bytes), given back entirely when dropped: the replay ended, successful or not.
#[derive(Debug)]
pub struct Reservation<'a> {
    budget: &'a ReplayBudget,
    window: Window,
}

impl<'a> Reservation<'a> {
    pub fn new(budget: &'a ReplayBudget) -> Reservation<'a> {
        Reservation {
            budget,
            window: Window::default(),
        }
    }

    /// Bytes this replay has queued and not yet seen delivered.
    pub fn outstanding(&self) -> u64 {
        self.window.outstanding()
    }

    /// The transport's delivered count is now `now` (see [`Window::delivered`]); what was
    /// delivered goes back to the budget.
    pub fn delivered(&mut self, now: u64) {
        let acked = self.window.delivered(now);
        self.budget.release(acked);
    }

    /// See [`Window::new_transport`].
    pub fn new_transport(&mut self, now: Option<u64>) {
        self.window.new_transport(now);
    }

    /// Reserve `n` bytes for a message about to be queued, if the window and the budget allow
    /// (always when nothing is outstanding); false: wait for the client.
    pub fn admit(&mut self, n: u64) -> bool {
        let idle = self.window.outstanding() == 0;
        if !self.window.fits(n) || !self.budget.reserve(n, idle) {
            return false;
        }
        self.window.queued(n);
        true
    }

    /// The message [`Reservation::admit`] made room for was not queued after all.
    pub fn cancel(&mut self, n: u64) {
        self.window.unqueued(n);
        self.budget.release(n);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.release(self.window.outstanding());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max: u64) -> ReplayBudget {
        ReplayBudget::new(max, IntGauge::new("g", "g").unwrap())
    }

    #[test]
    fn the_window_counts_what_was_queued_less_what_was_delivered() {
        let mut w = Window::default();
        w.delivered(5_000); // the first look: no progress yet
        assert!(
            w.fits(WINDOW * 3),
            "nothing outstanding: one message always goes"
        );
        w.queued(600_000);
        assert!(w.fits(400_000));
        assert!(!w.fits(500_000), "over the window");
        w.queued(400_000);
        assert_eq!(w.outstanding(), 1_000_000);
        assert_eq!(w.delivered(5_000 + 300_000), 300_000);
        assert_eq!(w.outstanding(), 700_000);
        assert!(w.fits(300_000) && !w.fits(400_000));
        // Delivered beyond what was queued (other traffic): floored at 0, and no credit.
        assert_eq!(w.delivered(5_000 + 3_000_000), 700_000);
        assert_eq!(w.outstanding(), 0);
        w.queued(WINDOW);
        assert!(!w.fits(1), "the earlier surplus is no credit");
        // A counter that goes backwards (another transport, unnoticed) takes nothing off.
        assert_eq!(w.delivered(10), 0);
        assert_eq!(w.delivered(10 + 100), 100);
        w.unqueued(WINDOW);
        assert_eq!(w.outstanding(), 0);
    }

    #[test]
    fn a_new_transport_is_counted_from_its_own_start() {
        let mut w = Window::default();
        w.delivered(1_000);
        w.queued(500);
        w.delivered(1_200);
        assert_eq!(w.outstanding(), 300);
        w.new_transport(Some(50));
        w.delivered(100);
        assert_eq!(
            w.outstanding(),
            250,
            "only what the new one delivered since"
        );
        w.new_transport(None);
        w.delivered(7);
        assert_eq!(
            w.outstanding(),
            250,
            "the first look at a count is its baseline"
        );
        w.delivered(57);
        assert_eq!(w.outstanding(), 200);
    }

    #[test]
    fn the_budget_bounds_every_replay_together_and_is_given_back() {
        let b = budget(1_000);
        let mut r1 = Reservation::new(&b);
        let mut r2 = Reservation::new(&b);
        r1.delivered(0);
        r2.delivered(0);
        assert!(r1.admit(800));
        assert!(
            r2.admit(900),
            "nothing outstanding: one message goes over the budget"
        );
        assert_eq!(b.used(), 1_700);
        assert_eq!(b.gauge.get(), 1_700);
        assert!(!r1.admit(10), "over the budget with something outstanding");
        r2.delivered(900);
        assert_eq!(b.used(), 800, "what was delivered is given back");
        assert!(r1.admit(150));
        r1.cancel(150);
        assert_eq!(b.used(), 800);
        drop(r1);
        assert_eq!(b.used(), 0, "the rest when the replay ends");
        assert_eq!(b.gauge.get(), 0);
        drop(r2);
        assert_eq!(b.used(), 0);
    }
}
