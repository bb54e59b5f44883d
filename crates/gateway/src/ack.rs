//! Acks that are never dropped in silence, and never piled up without bound.
//!
//! socketioxide's `AckSender::send` fails at once when the connection's outgoing queue
//! (`--max-buffer` packets) is full. A client that sends a burst of acked events — 200 `join`s
//! when it re-joins its rooms after a reconnect — fills that queue faster than its writer task
//! drains it, and the acks that do not fit were lost: no error, no metric, and an `emitWithAck`
//! without a timeout waited forever.
//!
//! The relay answers through [`Ack`] instead. The extractor keeps the socket and the ack id (it
//! is built from socketioxide's public `FromMessageParts`, the same way `AckSender` is). A
//! reply that finds the queue full is put in the connection's [`Replies`], in order, and the
//! handler returns; one task per connection (started when the first reply has to wait) sends
//! them as room appears, with a short back-off (1 ms doubling to 50 ms), which in the burst
//! case takes milliseconds. Each reply that waits is counted in `acks_delayed_total`.
//!
//! A client that does not read is not served any more, and costs a bounded amount meanwhile:
//! when the waiting replies make no progress for [`ACK_DEADLINE`] (wall-clock time), or when
//! more than [`MAX_WAITING`] wait at once (a client sending acked events it never reads, even
//! ones refused by the rate limit) or more than [`MAX_WAITING_BYTES`] (a backend's answers to
//! upstream events can be large, and may echo what the client sent), the waiting replies are
//! dropped and counted as
//! `dropped_messages_total{reason="ack_undeliverable"}`, one warning is logged for the
//! connection (at most one every 10 s for the node), and its transport is cut (so a stock
//! client reconnects). Replies asked for
//! after that are dropped and counted, without a warning or a task each. Earlier, every waiting
//! reply was a task of its own with its own deadline and its own warning: one raw websocket
//! sending 200,000 acked events it never read held 160 MB and most of a core, and a polling
//! client made one warning per event.
use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use socketioxide::{
    SendError, SocketError,
    adapter::Adapter,
    extract::AckSender,
    handler::{FromMessageParts, Value},
    socket::Socket,
};

use crate::{state::Gateway, warn_limit::WarnLimit};

/// How long waiting replies may make no progress before the client counts as not reading.
pub const ACK_DEADLINE: Duration = Duration::from_secs(10);

/// Replies one connection may have waiting at once. Far above an honest burst that outruns
/// its writer (1,000 acked events at once leave at most ~900 waiting behind a 128-packet
/// queue), and small in memory: a refusal waits as one enum (no allocation), another reply
/// as its JSON value, and the replies that are not refusals are bounded by the event rate.
pub const MAX_WAITING: usize = 4096;

/// Bytes of JSON one connection may have waiting at once (a reply that arrives when nothing
/// waits is always taken, whatever its size).
pub const MAX_WAITING_BYTES: usize = 4 << 20;

/// Longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// The ack of one client event (a no-op when the client asked for none).
pub struct Ack<A: Adapter> {
    socket: Arc<Socket<A>>,
    id: Option<i64>,
}

impl<A: Adapter> FromMessageParts<A> for Ack<A> {
    type Error = std::convert::Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        _: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        Ok(Ack {
            socket: s.clone(),
            id: *ack_id,
        })
    }
}

/// What a reply says.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    /// `{ok:false, error:"rate limited"}`: the common refusal, kept without allocating.
    RateLimited,
    Json(serde_json::Value),
}

/// The JSON of [`Reply::RateLimited`], made once.
static RATE_LIMITED: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(|| serde_json::json!({ "ok": false, "error": "rate limited" }));

impl Reply {
    fn json(&self) -> &serde_json::Value {
        match self {
            Reply::RateLimited => &RATE_LIMITED,
            Reply::Json(v) => v,
        }
    }
}

/// A fresh `AckSender` for `id` (socketioxide's `send` consumes it).
fn sender<A: Adapter>(socket: &Arc<Socket<A>>, id: i64) -> AckSender<A> {
    let mut unused = Value::Bytes(bytes::Bytes::new());
    match AckSender::from_message_parts(socket, &mut unused, &Some(id)) {
        Ok(a) => a,
        Err(never) => match never {},
    }
}

/// The replies of one connection that wait for room in its queue (see the module doc): made on
/// the first reply that has to wait, so a connection whose replies always fit holds no
/// allocation for it.
#[derive(Debug, Default)]
pub struct Replies(std::sync::OnceLock<Arc<Queue>>);

impl Replies {
    /// The list, if a reply ever had to wait.
    fn get(&self) -> Option<&Arc<Queue>> {
        self.0.get()
    }

    fn made(&self) -> &Arc<Queue> {
        self.0.get_or_init(Arc::default)
    }
}

/// The waiting replies of one connection and their state.
#[derive(Debug, Default)]
struct Queue {
    /// Replies wait (or the client was given up on): a new one goes behind them. Read once per
    /// reply, so a reply that fits while none waits takes no lock.
    busy: AtomicBool,
    // Locked once per reply that finds the queue full or others waiting, and once per round
    // of the sending task.
    state: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    /// Ack id, reply, and its JSON size ([`Reply::size`], measured once).
    list: VecDeque<(i64, Reply, usize)>,
    /// JSON bytes of the waiting [`Reply::Json`]s.
    bytes: usize,
    /// A task is sending `list`.
    sending: bool,
    /// The client was given up on: replies are dropped (and counted) from now on.
    given_up: bool,
}

/// What to do with a reply that did not fit.
#[derive(Debug, PartialEq)]
enum Queued {
    /// Waits; start the sending task.
    StartSending,
    /// Waits behind others; the task runs already.
    Behind,
    /// Dropped: the client was given up on before.
    Dropped,
    /// Over [`MAX_WAITING`] or [`MAX_WAITING_BYTES`]: the client is given up on now; this many
    /// replies were dropped.
    GiveUp(usize),
}

impl Reply {
    /// Its JSON size, counted without building the text (only replies that wait are measured).
    fn size(&self) -> usize {
        match self {
            Reply::RateLimited => 0,
            Reply::Json(v) => {
                let mut n = Count(0);
                // Writing into a counter cannot fail, and a `Value` always serialises.
                let _ = serde_json::to_writer(&mut n, v);
                n.0
            }
        }
    }
}

/// A writer that only counts.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Waiting {
    /// Put `reply` (of JSON size `size`) behind the waiting ones.
    fn queue(&mut self, id: i64, reply: Reply, size: usize) -> Queued {
        if self.given_up {
            return Queued::Dropped;
        }
        if self.list.len() >= MAX_WAITING
            || (!self.list.is_empty() && self.bytes + size > MAX_WAITING_BYTES)
        {
            return Queued::GiveUp(self.give_up() + 1);
        }
        self.bytes += size;
        self.list.push_back((id, reply, size));
        if std::mem::replace(&mut self.sending, true) {
            Queued::Behind
        } else {
            Queued::StartSending
        }
    }

    /// Drop every waiting reply; how many.
    fn give_up(&mut self) -> usize {
        self.given_up = true;
        self.sending = false;
        let n = self.list.len();
        self.list.clear();
        self.bytes = 0;
        n
    }

    /// The front reply was sent (or could not be).
    fn pop(&mut self) {
        if let Some((_, _, size)) = self.list.pop_front() {
            self.bytes = self.bytes.saturating_sub(size);
        }
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<A: Adapter> Ack<A> {
    /// Answer `{ok:false, error:"rate limited"}` (see [`Ack::send`]).
    pub fn rate_limited(self, gw: &Arc<Gateway>, replies: &Replies) {
        self.answer(gw, replies, &RATE_LIMITED, || Reply::RateLimited);
    }

    /// Send `v` now if the client's queue has room, else leave it to the connection's sending
    /// task (see the module doc). Never waits.
    pub fn send(self, gw: &Arc<Gateway>, replies: &Replies, v: &serde_json::Value) {
        // The value is copied only when it has to wait.
        self.answer(gw, replies, v, || Reply::Json(v.clone()));
    }

    fn answer(
        self,
        gw: &Arc<Gateway>,
        replies: &Replies,
        v: &serde_json::Value,
        waiting: impl FnOnce() -> Reply,
    ) {
        let Some(id) = self.id else { return };
        // Not ahead of replies already waiting: they keep their order.
        if replies
            .get()
            .is_none_or(|w| !w.busy.load(Ordering::Acquire))
        {
            match sender(&self.socket, id).send(v) {
                Ok(()) => return,
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {}
                // Gone: nobody left to answer.
                Err(SendError::Socket(SocketError::Closed)) => return,
                Err(e) => {
                    // Serialising our own JSON replies cannot fail; if it ever does, say so.
                    gw.metrics.dropped_send_failed.inc();
                    tracing::warn!(sid = %self.socket.id, error = %e, "ack not sent");
                    return;
                }
            }
        }
        let reply = waiting();
        let size = reply.size();
        let queued = {
            let replies = replies.made();
            let mut w = replies.lock();
            let q = w.queue(id, reply, size);
            replies.busy.store(true, Ordering::Release);
            q
        };
        match queued {
            Queued::Behind => gw.metrics.acks_delayed_total.inc(),
            Queued::StartSending => {
                gw.metrics.acks_delayed_total.inc();
                tokio::spawn(send_waiting(
                    gw.clone(),
                    replies.made().clone(),
                    self.socket,
                ));
            }
            Queued::Dropped => gw.metrics.dropped_ack_undeliverable.inc(),
            Queued::GiveUp(dropped) => give_up(gw, self.socket, dropped, "too many acks waiting"),
        }
    }
}

/// The connection's sending task: sends the waiting replies in order as room appears, until
/// none is left, the socket closes, or they make no progress for [`ACK_DEADLINE`].
async fn send_waiting<A: Adapter>(gw: Arc<Gateway>, replies: Arc<Queue>, socket: Arc<Socket<A>>) {
    let mut backoff = Duration::from_millis(1);
    let mut progress = Instant::now();
    loop {
        {
            let mut w = replies.lock();
            if w.given_up {
                return;
            }
            while let Some((id, r, _)) = w.list.front() {
                match sender(&socket, *id).send(r.json()) {
                    Ok(()) => {
                        w.pop();
                        progress = Instant::now();
                        backoff = Duration::from_millis(1);
                    }
                    Err(SendError::Socket(SocketError::InternalChannelFull)) => break,
                    Err(SendError::Socket(SocketError::Closed)) => {
                        w.list.clear();
                        w.bytes = 0;
                        w.sending = false;
                        return;
                    }
                    Err(e) => {
                        w.pop();
                        gw.metrics.dropped_send_failed.inc();
                        tracing::warn!(sid = %socket.id, error = %e, "ack not sent");
                    }
                }
            }
            if w.list.is_empty() {
                w.sending = false;
                replies.busy.store(false, Ordering::Release);
                return;
            }
            if progress.elapsed() >= ACK_DEADLINE {
                let dropped = w.give_up();
                drop(w);
                give_up(&gw, socket, dropped, "client does not read its acks");
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Count the dropped replies, warn (at most every 10 s for the node, with the count held back:
/// a client can give reasons again and again over new connections), and close the transport.
fn give_up<A: Adapter>(gw: &Gateway, socket: Arc<Socket<A>>, dropped: usize, why: &str) {
    static WARN: WarnLimit = WarnLimit::new(Duration::from_secs(10));
    gw.metrics.dropped_ack_undeliverable.inc_by(dropped as u64);
    if let Some(held_back) = WARN.allow() {
        tracing::warn!(
            node_id = %gw.node_id(),
            sid = %socket.id,
            dropped,
            held_back,
            "{why}: closing the connection (each dropped reply is counted in dropped_messages_total{{reason=\"ack_undeliverable\"}})"
        );
    }
    close_transport(gw, socket);
}

/// Close a client whose queue stays full the drain's way (`Drain::cut_transport`), so that it
/// looks lost and a stock client reconnects: a websocket's TCP connection is shut down, a
/// polling session's next poll is answered with CLOSE (one that does not poll is closed by its
/// heartbeat timeout). Only when its websocket's connection is not known, a Socket.IO
/// DISCONNECT (which needs room in that same queue, and which clients take as final).
fn close_transport<A: Adapter>(gw: &Gateway, s: Arc<Socket<A>>) {
    let sid = s.id;
    if gw.drain.cut_transport(&gw.conns, &s) {
        return;
    }
    if s.disconnect().is_ok() {
        return;
    }
    tracing::debug!(%sid, "transport not found; the heartbeat closes it");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queue `r` with its measured size, as `Ack::answer` does.
    fn queue(w: &mut Waiting, id: i64, r: Reply) -> Queued {
        let size = r.size();
        w.queue(id, r, size)
    }

    #[test]
    fn waiting_replies_are_capped_and_dropped_once_given_up() {
        let mut w = Waiting::default();
        assert_eq!(queue(&mut w, 1, Reply::RateLimited), Queued::StartSending);
        assert_eq!(
            queue(&mut w, 2, Reply::Json(serde_json::json!({"ok": true}))),
            Queued::Behind
        );
        for id in 3..=MAX_WAITING as i64 {
            assert_eq!(queue(&mut w, id, Reply::RateLimited), Queued::Behind);
        }
        assert_eq!(w.list.len(), MAX_WAITING);
        // One more: everything waiting and this one are dropped, and the client given up on.
        assert_eq!(
            queue(&mut w, 0, Reply::RateLimited),
            Queued::GiveUp(MAX_WAITING + 1)
        );
        assert!(w.list.is_empty());
        assert_eq!(queue(&mut w, 7, Reply::RateLimited), Queued::Dropped);
        assert!(w.list.is_empty(), "nothing waits after giving up");
    }

    #[test]
    fn waiting_replies_are_capped_in_bytes() {
        let mut w = Waiting::default();
        let quarter = || Reply::Json(serde_json::json!("x".repeat(MAX_WAITING_BYTES / 4)));
        // Alone, any size waits.
        let whole = Reply::Json(serde_json::json!("x".repeat(MAX_WAITING_BYTES)));
        assert_eq!(queue(&mut w, 1, whole), Queued::StartSending);
        w.pop();
        assert_eq!(w.bytes, 0, "what was sent no longer counts");
        for id in 2..=4 {
            assert_eq!(queue(&mut w, id, quarter()), Queued::Behind);
        }
        // A fourth quarter (with its quotes) would pass the bound: all four are dropped.
        assert_eq!(queue(&mut w, 5, quarter()), Queued::GiveUp(4));
        assert_eq!((w.list.len(), w.bytes), (0, 0));
    }

    #[test]
    fn a_waiting_reply_is_small() {
        // The refusals a flooding client causes wait without a heap allocation each.
        assert!(std::mem::size_of::<(i64, Reply, usize)>() <= 48);
    }
}
